//! Presets that make the test cluster present itself as a real platform: the version string,
//! node labels and `spec.providerID`, storage classes and ingress classes that platform shows.
//!
//! Each is a cluster as an operator typically prepares it (named below), built from the
//! provider's documentation:
//! - EKS: managed node group, EBS CSI and EFS CSI add-ons, AWS Load Balancer Controller;
//!   gp2 is no longer default on clusters created at 1.30 and later (a gp3 class made default
//!   by the operator). <https://docs.aws.amazon.com/eks/latest/userguide/kubernetes-versions-standard.html>
//! - GKE Standard: Compute Engine PD CSI (default `standard-rwo`), Filestore CSI enabled; GKE
//!   creates no IngressClass objects (its controller is selected by annotation).
//!   <https://cloud.google.com/kubernetes-engine/docs/how-to/persistent-volumes/gce-pd-csi-driver>
//! - AKS: the storage classes AKS creates (`default` = Standard SSD, `managed-csi*`,
//!   `azurefile-csi*`), the application routing add-on's IngressClass.
//!   <https://learn.microsoft.com/en-us/azure/aks/concepts-storage#storage-classes>
//! - OpenShift 4.16 on bare metal with OpenShift Data Foundation: no providerID, RHCOS node
//!   labels, `openshift-default` IngressClass.
//! - Datacenter: kubeadm on bare metal, ingress-nginx installed, no storage class at all.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use super::{ClusterOptions, NodeSpec};

/// A platform the test cluster can present itself as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlatformPreset {
    /// Amazon EKS 1.30 in us-west-2.
    Eks,
    /// Google GKE 1.30 in us-central1.
    Gke,
    /// Azure AKS 1.30 in eastus.
    Aks,
    /// OpenShift 4.16 (Kubernetes 1.29) on bare metal.
    OpenShift,
    /// A kubeadm cluster in a datacenter, with no storage class.
    Datacenter,
}

impl PlatformPreset {
    /// Every preset.
    pub const ALL: [PlatformPreset; 5] = [
        PlatformPreset::Eks,
        PlatformPreset::Gke,
        PlatformPreset::Aks,
        PlatformPreset::OpenShift,
        PlatformPreset::Datacenter,
    ];

    /// The provider Airlift should detect, e.g. `aws`.
    pub fn provider(self) -> &'static str {
        match self {
            PlatformPreset::Eks => "aws",
            PlatformPreset::Gke => "gcp",
            PlatformPreset::Aks => "azure",
            PlatformPreset::OpenShift => "openshift",
            PlatformPreset::Datacenter => "datacenter",
        }
    }
}

fn node(name: &str, provider_id: Option<String>, labels: &[(&str, &str)]) -> NodeSpec {
    NodeSpec {
        name: name.into(),
        arch: "amd64".into(),
        labels: labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect::<BTreeMap<_, _>>(),
        provider_id,
    }
}

fn sc(name: &str, provisioner: &str, default: bool, parameters: Value) -> Value {
    let mut v = json!({
        "metadata": {"name": name},
        "provisioner": provisioner,
        "parameters": parameters,
        "reclaimPolicy": "Delete",
        "volumeBindingMode": "WaitForFirstConsumer",
        "allowVolumeExpansion": true,
    });
    if default {
        v["metadata"]["annotations"] =
            json!({"storageclass.kubernetes.io/is-default-class": "true"});
    }
    v
}

fn ic(name: &str, controller: &str) -> Value {
    json!({"metadata": {"name": name}, "spec": {"controller": controller}})
}

impl ClusterOptions {
    /// Presents the cluster as `preset`: its version string, nodes (labels, providerID),
    /// storage classes and ingress classes.
    pub fn as_platform(self, preset: PlatformPreset) -> Self {
        let (version, nodes, storage, ingress) = match preset {
            PlatformPreset::Eks => {
                let n = |i: u8, zone: &str, id: &str| {
                    node(
                        &format!("ip-192-168-{i}-17.us-west-2.compute.internal"),
                        Some(format!("aws:///{zone}/{id}")),
                        &[
                            ("eks.amazonaws.com/nodegroup", "ng-default"),
                            ("eks.amazonaws.com/nodegroup-image", "ami-0c2d3b4a5e6f70819"),
                            ("eks.amazonaws.com/capacityType", "ON_DEMAND"),
                            ("node.kubernetes.io/instance-type", "m5.large"),
                            ("topology.kubernetes.io/region", "us-west-2"),
                            ("topology.kubernetes.io/zone", zone),
                            ("failure-domain.beta.kubernetes.io/region", "us-west-2"),
                            ("failure-domain.beta.kubernetes.io/zone", zone),
                            ("topology.k8s.aws/zone-id", "usw2-az1"),
                        ],
                    )
                };
                (
                    "1.30.4-eks-a737599",
                    vec![
                        n(12, "us-west-2a", "i-0a1b2c3d4e5f60718"),
                        n(45, "us-west-2b", "i-0f1e2d3c4b5a69788"),
                    ],
                    vec![
                        sc(
                            "gp2",
                            "kubernetes.io/aws-ebs",
                            false,
                            json!({"type": "gp2", "fsType": "ext4"}),
                        ),
                        sc(
                            "gp3",
                            "ebs.csi.aws.com",
                            true,
                            json!({"type": "gp3", "encrypted": "true"}),
                        ),
                        sc(
                            "efs-sc",
                            "efs.csi.aws.com",
                            false,
                            json!({"provisioningMode": "efs-ap", "fileSystemId": "fs-0123456789abcdef0", "directoryPerms": "700"}),
                        ),
                    ],
                    vec![ic("alb", "ingress.k8s.aws/alb")],
                )
            }
            PlatformPreset::Gke => {
                let n = |suffix: &str, zone: &str| {
                    let name = format!("gke-prod-default-pool-3f2a1b4c-{suffix}");
                    node(
                        &name,
                        Some(format!("gce://acme-prod/{zone}/{name}")),
                        &[
                            ("cloud.google.com/gke-nodepool", "default-pool"),
                            ("cloud.google.com/gke-os-distribution", "cos"),
                            ("cloud.google.com/gke-boot-disk", "pd-balanced"),
                            ("cloud.google.com/gke-container-runtime", "containerd"),
                            ("cloud.google.com/machine-family", "e2"),
                            ("node.kubernetes.io/instance-type", "e2-standard-4"),
                            ("topology.kubernetes.io/region", "us-central1"),
                            ("topology.kubernetes.io/zone", zone),
                            ("topology.gke.io/zone", zone),
                        ],
                    )
                };
                (
                    "1.30.5-gke.1014001",
                    vec![n("x1y2", "us-central1-a"), n("k9m3", "us-central1-b")],
                    vec![
                        sc(
                            "premium-rwo",
                            "pd.csi.storage.gke.io",
                            false,
                            json!({"type": "pd-ssd"}),
                        ),
                        sc(
                            "standard",
                            "kubernetes.io/gce-pd",
                            false,
                            json!({"type": "pd-standard"}),
                        ),
                        sc(
                            "standard-rwo",
                            "pd.csi.storage.gke.io",
                            true,
                            json!({"type": "pd-balanced"}),
                        ),
                        sc(
                            "standard-rwx",
                            "filestore.csi.storage.gke.io",
                            false,
                            json!({"tier": "standard", "network": "default"}),
                        ),
                        sc(
                            "premium-rwx",
                            "filestore.csi.storage.gke.io",
                            false,
                            json!({"tier": "premium", "network": "default"}),
                        ),
                    ],
                    vec![],
                )
            }
            PlatformPreset::Aks => {
                let n = |i: u8, zone: &str| {
                    node(
                        &format!("aks-nodepool1-12345678-vmss00000{i}"),
                        Some(format!(
                            "azure:///subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/mc_acme_prod_eastus/providers/Microsoft.Compute/virtualMachineScaleSets/aks-nodepool1-12345678-vmss/virtualMachines/{i}"
                        )),
                        &[
                            ("agentpool", "nodepool1"),
                            ("kubernetes.azure.com/agentpool", "nodepool1"),
                            ("kubernetes.azure.com/cluster", "MC_acme_prod_eastus"),
                            ("kubernetes.azure.com/mode", "system"),
                            ("kubernetes.azure.com/os-sku", "Ubuntu"),
                            ("kubernetes.azure.com/role", "agent"),
                            ("kubernetes.azure.com/node-image-version", "AKSUbuntu-2204gen2containerd-202410.15.0"),
                            ("node.kubernetes.io/instance-type", "Standard_D4s_v3"),
                            ("topology.kubernetes.io/region", "eastus"),
                            ("topology.kubernetes.io/zone", zone),
                        ],
                    )
                };
                (
                    "1.30.3",
                    vec![n(0, "eastus-1"), n(1, "eastus-2")],
                    vec![
                        sc(
                            "azurefile",
                            "file.csi.azure.com",
                            false,
                            json!({"skuName": "Standard_LRS"}),
                        ),
                        sc(
                            "azurefile-csi",
                            "file.csi.azure.com",
                            false,
                            json!({"skuName": "Standard_LRS"}),
                        ),
                        sc(
                            "azurefile-csi-premium",
                            "file.csi.azure.com",
                            false,
                            json!({"skuName": "Premium_LRS"}),
                        ),
                        sc(
                            "default",
                            "disk.csi.azure.com",
                            true,
                            json!({"skuname": "StandardSSD_LRS"}),
                        ),
                        sc(
                            "managed",
                            "disk.csi.azure.com",
                            false,
                            json!({"skuname": "StandardSSD_LRS", "kind": "Managed"}),
                        ),
                        sc(
                            "managed-csi",
                            "disk.csi.azure.com",
                            false,
                            json!({"skuname": "StandardSSD_LRS"}),
                        ),
                        sc(
                            "managed-csi-premium",
                            "disk.csi.azure.com",
                            false,
                            json!({"skuname": "Premium_LRS"}),
                        ),
                        sc(
                            "managed-premium",
                            "disk.csi.azure.com",
                            false,
                            json!({"skuname": "Premium_LRS", "kind": "Managed"}),
                        ),
                    ],
                    vec![ic(
                        "webapprouting.kubernetes.azure.com",
                        "webapprouting.kubernetes.azure.com/nginx",
                    )],
                )
            }
            PlatformPreset::OpenShift => {
                let n = |i: u8, role: &str| {
                    node(
                        &format!("{role}-{i}.ocp.acme.internal"),
                        None,
                        &[
                            (&*format!("node-role.kubernetes.io/{role}"), ""),
                            ("node.openshift.io/os_id", "rhcos"),
                            ("cluster.ocs.openshift.io/openshift-storage", ""),
                        ],
                    )
                };
                (
                    "1.29.6+aa3ca5d",
                    vec![n(0, "master"), n(0, "worker"), n(1, "worker")],
                    vec![
                        sc(
                            "ocs-storagecluster-ceph-rbd",
                            "openshift-storage.rbd.csi.ceph.com",
                            true,
                            json!({"clusterID": "openshift-storage", "pool": "ocs-storagecluster-cephblockpool"}),
                        ),
                        sc(
                            "ocs-storagecluster-cephfs",
                            "openshift-storage.cephfs.csi.ceph.com",
                            false,
                            json!({"clusterID": "openshift-storage", "fsName": "ocs-storagecluster-cephfilesystem"}),
                        ),
                        sc(
                            "openshift-storage.noobaa.io",
                            "openshift-storage.noobaa.io/obc",
                            false,
                            json!({"bucketclass": "noobaa-default-bucket-class"}),
                        ),
                    ],
                    vec![ic("openshift-default", "openshift.io/ingress-to-route")],
                )
            }
            PlatformPreset::Datacenter => (
                "1.31.2",
                vec![
                    node(
                        "k8s-cp-01",
                        None,
                        &[("node-role.kubernetes.io/control-plane", "")],
                    ),
                    node("k8s-worker-01", None, &[]),
                    node("k8s-worker-02", None, &[]),
                ],
                vec![],
                vec![ic("nginx", "k8s.io/ingress-nginx")],
            ),
        };
        let mut opts = self.with_version(version);
        opts.nodes = nodes;
        opts.storage_classes = Some(storage);
        opts.ingress_classes = ingress;
        opts
    }
}
