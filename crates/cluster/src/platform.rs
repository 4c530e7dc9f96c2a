//! Platform detection: which provider runs the cluster (aws, gcp, azure, openshift, k3s, rke2,
//! vsphere, openstack, or a generic datacenter), its region and zones, its default storage
//! class and its ingress classes, each with the evidence it was read from: Node
//! `spec.providerID` prefixes and provider labels, the server's git version, StorageClass
//! provisioners and IngressClass controllers. Reads only; a list the user may not read is noted
//! in the evidence, never fatal.
//!
//! [`platform_checks`] turns a resolved platform (see `airlift_render::platform`) into preflight
//! checks: each storage role has a class, the ingress class exists, each identity has a value.

use std::collections::{BTreeMap, BTreeSet};

use airlift_render::platform::{
    ClusterFacts, IngressClassFact, ResolvedPlatform, StorageClassFact,
};
use k8s_openapi::api::core::v1::Node;
use k8s_openapi::api::networking::v1::IngressClass;
use k8s_openapi::api::storage::v1::StorageClass;
use kube::api::{Api, ListParams};
use serde::{Deserialize, Serialize};

use crate::preflight::Check;

/// The annotation that marks the default StorageClass.
pub const DEFAULT_STORAGE_CLASS: &str = "storageclass.kubernetes.io/is-default-class";
/// The beta spelling some older clusters still carry.
pub const DEFAULT_STORAGE_CLASS_BETA: &str = "storageclass.beta.kubernetes.io/is-default-class";
/// The annotation that marks the default IngressClass.
pub const DEFAULT_INGRESS_CLASS: &str = "ingressclass.kubernetes.io/is-default-class";

/// What the cluster showed, read from its API.
#[derive(Debug, Clone, Default)]
pub struct Observed {
    /// `/version`'s `gitVersion`, e.g. `v1.30.4-eks-a737599`.
    pub git_version: Option<String>,
    /// The nodes.
    pub nodes: Vec<Node>,
    /// The storage classes.
    pub storage_classes: Vec<StorageClass>,
    /// The ingress classes.
    pub ingress_classes: Vec<IngressClass>,
    /// What could not be read, e.g. `cannot list nodes: forbidden`.
    pub unreadable: Vec<String>,
}

/// The detected platform, each part with its evidence.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PlatformReport {
    /// `aws`, `gcp`, `azure`, `openshift`, `k3s`, `rke2`, `vsphere`, `openstack` or `datacenter`.
    pub provider: String,
    /// Why: each signal that points at the provider.
    pub provider_evidence: Vec<String>,
    /// The server's git version.
    pub kubernetes: Option<String>,
    /// The region, when the nodes tell.
    pub region: Option<String>,
    /// The zones the nodes run in.
    pub zones: Vec<String>,
    /// Where region and zones were read.
    pub location_evidence: Vec<String>,
    /// The default storage class, if one is marked.
    pub default_storage_class: Option<String>,
    /// Every storage class.
    pub storage_classes: Vec<StorageClassFact>,
    /// Every ingress class.
    pub ingress_classes: Vec<IngressClassFact>,
    /// What could not be read.
    pub unreadable: Vec<String>,
}

impl PlatformReport {
    /// The facts the mapping tables need.
    pub fn facts(&self) -> ClusterFacts {
        ClusterFacts {
            provider: self.provider.clone(),
            region: self.region.clone(),
            zones: self.zones.clone(),
            storage_classes: self.storage_classes.clone(),
            ingress_classes: self.ingress_classes.clone(),
        }
    }

    /// One line: `aws (us-west-2: us-west-2a, us-west-2b), default storage class gp2`.
    pub fn summary(&self) -> String {
        let mut s = self.provider.clone();
        if let Some(r) = &self.region {
            s.push_str(&format!(" ({r}"));
            if !self.zones.is_empty() {
                s.push_str(&format!(": {}", self.zones.join(", ")));
            }
            s.push(')');
        }
        match &self.default_storage_class {
            Some(d) => s.push_str(&format!(", default storage class {d}")),
            None => s.push_str(", no default storage class"),
        }
        if !self.ingress_classes.is_empty() {
            let names: Vec<&str> = self
                .ingress_classes
                .iter()
                .map(|c| c.name.as_str())
                .collect();
            s.push_str(&format!(", ingress classes {}", names.join(", ")));
        }
        s
    }
}

/// Reads what detection needs. Never fails: what cannot be read is listed in `unreadable`.
pub async fn observe(client: &kube::Client) -> Observed {
    let mut o = Observed::default();
    match client.apiserver_version().await {
        Ok(v) => o.git_version = Some(v.git_version),
        Err(e) => o.unreadable.push(format!(
            "cannot read /version: {}",
            crate::status::describe(&e)
        )),
    }
    let lp = ListParams::default();
    match Api::<Node>::all(client.clone()).list(&lp).await {
        Ok(l) => o.nodes = l.items,
        Err(e) => o.unreadable.push(format!(
            "cannot list nodes: {}",
            crate::status::describe(&e)
        )),
    }
    match Api::<StorageClass>::all(client.clone()).list(&lp).await {
        Ok(l) => o.storage_classes = l.items,
        Err(e) => o.unreadable.push(format!(
            "cannot list storage classes: {}",
            crate::status::describe(&e)
        )),
    }
    match Api::<IngressClass>::all(client.clone()).list(&lp).await {
        Ok(l) => o.ingress_classes = l.items,
        Err(e) => o.unreadable.push(format!(
            "cannot list ingress classes: {}",
            crate::status::describe(&e)
        )),
    }
    o
}

/// Observes the cluster and detects its platform.
pub async fn detect(client: &kube::Client) -> PlatformReport {
    detect_from(&observe(client).await)
}

/// Ranks providers: a distribution (OpenShift, K3s, RKE2) wins over the cloud it runs on, a
/// managed service's own labels over a bare providerID.
fn rank(provider: &str) -> u8 {
    match provider {
        "openshift" => 0,
        "k3s" | "rke2" => 1,
        "aws" | "gcp" | "azure" => 2,
        "vsphere" | "openstack" => 3,
        _ => 4,
    }
}

const PROVIDER_IDS: [(&str, &str); 7] = [
    ("aws://", "aws"),
    ("gce://", "gcp"),
    ("azure://", "azure"),
    ("vsphere://", "vsphere"),
    ("openstack://", "openstack"),
    ("k3s://", "k3s"),
    ("rke2://", "rke2"),
];

const LABEL_PREFIXES: [(&str, &str); 5] = [
    ("eks.amazonaws.com/", "aws"),
    ("cloud.google.com/gke-", "gcp"),
    ("kubernetes.azure.com/", "azure"),
    ("node.openshift.io/", "openshift"),
    ("rke.cattle.io/", "rke2"),
];

const GIT_VERSION_MARKS: [(&str, &str); 4] = [
    ("-eks-", "aws"),
    ("-gke.", "gcp"),
    ("+k3s", "k3s"),
    ("+rke2", "rke2"),
];

const PROVISIONERS: [(&str, &str); 8] = [
    ("ebs.csi.aws.com", "aws"),
    ("kubernetes.io/aws-ebs", "aws"),
    ("pd.csi.storage.gke.io", "gcp"),
    ("disk.csi.azure.com", "azure"),
    ("file.csi.azure.com", "azure"),
    ("openshift-storage.rbd.csi.ceph.com", "openshift"),
    ("csi.vsphere.vmware.com", "vsphere"),
    ("cinder.csi.openstack.org", "openstack"),
];

/// Detects the platform from what the cluster showed.
pub fn detect_from(o: &Observed) -> PlatformReport {
    // provider -> evidence lines
    let mut signals: BTreeMap<&'static str, Vec<String>> = BTreeMap::new();
    let mut add = |p: &'static str, why: String| {
        let lines = signals.entry(p).or_default();
        if !lines.contains(&why) {
            lines.push(why);
        }
    };
    if let Some(v) = &o.git_version {
        for (mark, p) in GIT_VERSION_MARKS {
            if v.contains(mark) {
                add(p, format!("server version {v} contains `{mark}`"));
            }
        }
    }
    let mut regions: BTreeMap<String, usize> = BTreeMap::new();
    let mut zones: BTreeSet<String> = BTreeSet::new();
    let mut location_evidence = Vec::new();
    for node in &o.nodes {
        let name = node.metadata.name.clone().unwrap_or_default();
        if let Some(id) = node.spec.as_ref().and_then(|s| s.provider_id.as_deref()) {
            for (prefix, p) in PROVIDER_IDS {
                if id.starts_with(prefix) {
                    add(p, format!("node providerID `{prefix}…`"));
                }
            }
        }
        let labels = node.metadata.labels.clone().unwrap_or_default();
        for key in labels.keys() {
            for (prefix, p) in LABEL_PREFIXES {
                if key.starts_with(prefix) {
                    add(p, format!("node label `{key}`"));
                }
            }
        }
        match labels
            .get("node.kubernetes.io/instance-type")
            .map(String::as_str)
        {
            Some("k3s") => add(
                "k3s",
                "node label node.kubernetes.io/instance-type=k3s".into(),
            ),
            Some("rke2") => add(
                "rke2",
                "node label node.kubernetes.io/instance-type=rke2".into(),
            ),
            _ => {}
        }
        let region = labels
            .get("topology.kubernetes.io/region")
            .or_else(|| labels.get("failure-domain.beta.kubernetes.io/region"));
        if let Some(r) = region {
            *regions.entry(r.clone()).or_default() += 1;
        }
        let zone = labels
            .get("topology.kubernetes.io/zone")
            .or_else(|| labels.get("failure-domain.beta.kubernetes.io/zone"));
        if let Some(z) = zone {
            if zones.insert(z.clone()) {
                location_evidence.push(format!("node {name}: topology.kubernetes.io/zone={z}"));
            }
        }
    }
    for sc in &o.storage_classes {
        for (prov, p) in PROVISIONERS {
            if sc.provisioner == prov {
                add(p, format!("storage class provisioner `{prov}`"));
            }
        }
    }
    for ic in &o.ingress_classes {
        if ic.spec.as_ref().and_then(|s| s.controller.as_deref())
            == Some("openshift.io/ingress-to-route")
        {
            add(
                "openshift",
                "ingress controller `openshift.io/ingress-to-route`".into(),
            );
        }
    }
    let provider = signals
        .iter()
        .min_by_key(|(p, lines)| (rank(p), std::cmp::Reverse(lines.len())))
        .map(|(p, _)| p.to_string())
        .unwrap_or_else(|| "datacenter".into());
    let mut provider_evidence = signals.remove(provider.as_str()).unwrap_or_default();
    if provider == "datacenter" {
        provider_evidence.push(
            "no provider signal: no providerID prefix, provider label, distribution version or \
             cloud provisioner"
                .into(),
        );
    }
    let region = regions
        .iter()
        .max_by_key(|(_, n)| **n)
        .map(|(r, _)| r.clone());
    if let Some(r) = &region {
        location_evidence.insert(
            0,
            format!(
                "topology.kubernetes.io/region={r} on {} node(s)",
                regions.get(r).copied().unwrap_or(0)
            ),
        );
    }
    let storage_classes: Vec<StorageClassFact> = o
        .storage_classes
        .iter()
        .map(|sc| {
            let ann = sc.metadata.annotations.clone().unwrap_or_default();
            StorageClassFact {
                name: sc.metadata.name.clone().unwrap_or_default(),
                provisioner: sc.provisioner.clone(),
                is_default: ann.get(DEFAULT_STORAGE_CLASS).map(String::as_str) == Some("true")
                    || ann.get(DEFAULT_STORAGE_CLASS_BETA).map(String::as_str) == Some("true"),
            }
        })
        .collect();
    let ingress_classes = o
        .ingress_classes
        .iter()
        .map(|ic| IngressClassFact {
            name: ic.metadata.name.clone().unwrap_or_default(),
            controller: ic
                .spec
                .as_ref()
                .and_then(|s| s.controller.clone())
                .unwrap_or_default(),
            is_default: ic
                .metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(DEFAULT_INGRESS_CLASS))
                .map(String::as_str)
                == Some("true"),
        })
        .collect();
    PlatformReport {
        provider,
        provider_evidence,
        kubernetes: o.git_version.clone(),
        region,
        zones: zones.into_iter().collect(),
        location_evidence,
        default_storage_class: storage_classes
            .iter()
            .find(|s| s.is_default)
            .map(|s| s.name.clone()),
        storage_classes,
        ingress_classes,
        unreadable: o.unreadable.clone(),
    }
}

/// The preflight checks of a resolved platform: the detected platform, then one check per
/// storage role, the ingress class and each identity, every failure with its fix.
pub fn platform_checks(report: &PlatformReport, resolved: &ResolvedPlatform) -> Vec<Check> {
    let mut checks = vec![Check::pass("platform", report.summary())];
    for (role, s) in &resolved.storage {
        let name = format!("storage role {role}");
        if s.found {
            checks.push(Check::pass(
                name,
                format!("{} ({}): {}", s.class_name, s.access_mode, s.how),
            ));
            continue;
        }
        let have: Vec<String> = report
            .storage_classes
            .iter()
            .map(|c| format!("{} ({})", c.name, c.provisioner))
            .collect();
        let detail = if s.class_name.is_empty() {
            format!("{}; the cluster has: {}", s.how, list_or_none(&have))
        } else {
            format!(
                "storage class `{}` does not exist ({}); the cluster has: {}",
                s.class_name,
                s.how,
                list_or_none(&have)
            )
        };
        let create = match &s.suggestion {
            Some(sug) => format!("create a {} StorageClass ({sug})", s.access_mode),
            None => format!("create a {} StorageClass", s.access_mode),
        };
        let fix = if report.default_storage_class.is_none() && s.access_mode == "ReadWriteOnce" {
            format!(
                "{create} and mark it default (`kubectl annotate storageclass NAME \
                 {DEFAULT_STORAGE_CLASS}=true`), or name an existing class with \
                 `--set platform.storage.{role}.className=NAME`"
            )
        } else {
            format!(
                "{create}, or name an existing class with \
                 `--set platform.storage.{role}.className=NAME`"
            )
        };
        checks.push(Check::fail(name, detail, fix));
    }
    if let Some(i) = &resolved.ingress {
        if i.found {
            let class = if i.class_name.is_empty() {
                "(by annotation)".to_string()
            } else {
                i.class_name.clone()
            };
            checks.push(Check::pass("ingress class", format!("{class}: {}", i.how)));
        } else {
            let what = if i.class_name.is_empty() {
                i.how.clone()
            } else {
                format!(
                    "ingress class `{}` does not exist ({})",
                    i.class_name, i.how
                )
            };
            checks.push(Check::fail(
                "ingress class",
                what,
                "install an ingress controller (it creates its IngressClass), mark one default \
                 (`kubectl annotate ingressclass NAME ingressclass.kubernetes.io/is-default-class=true`), \
                 or name one with `--set platform.ingress.className=NAME`",
            ));
        }
    }
    for (name, id) in &resolved.identity {
        let check = format!("workload identity {name}");
        if id.found {
            let keys: Vec<&str> = id.annotations.keys().map(String::as_str).collect();
            checks.push(Check::pass(
                check,
                format!(
                    "ServiceAccount {} gets {}",
                    id.service_account,
                    keys.join(", ")
                ),
            ));
        } else {
            checks.push(Check::fail(
                check,
                format!("ServiceAccount {} {}", id.service_account, id.how),
                format!(
                    "create the cloud identity and give it with `--set platform.identity.{name}.value=…` \
                     (or `platform.identity.{name}.annotations` in a values file)"
                ),
            ));
        }
    }
    checks
}

fn list_or_none(items: &[String]) -> String {
    if items.is_empty() {
        "none".into()
    } else {
        items.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::NodeSpec;
    use kube::api::ObjectMeta;

    fn node(name: &str, provider_id: Option<&str>, labels: &[(&str, &str)]) -> Node {
        Node {
            metadata: ObjectMeta {
                name: Some(name.into()),
                labels: Some(
                    labels
                        .iter()
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .collect(),
                ),
                ..Default::default()
            },
            spec: Some(NodeSpec {
                provider_id: provider_id.map(str::to_string),
                ..Default::default()
            }),
            status: None,
        }
    }

    #[test]
    fn a_distribution_wins_over_the_cloud_it_runs_on() {
        let o = Observed {
            git_version: Some("v1.29.6+aa3ca5d".into()),
            nodes: vec![node(
                "w1",
                Some("aws:///us-east-1a/i-0abc"),
                &[
                    ("node.openshift.io/os_id", "rhcos"),
                    ("topology.kubernetes.io/region", "us-east-1"),
                    ("topology.kubernetes.io/zone", "us-east-1a"),
                ],
            )],
            ..Default::default()
        };
        let r = detect_from(&o);
        assert_eq!(r.provider, "openshift");
        assert_eq!(
            r.provider_evidence,
            ["node label `node.openshift.io/os_id`"]
        );
        assert_eq!(r.region.as_deref(), Some("us-east-1"));
        assert_eq!(r.zones, ["us-east-1a"]);
    }

    #[test]
    fn k3s_rke2_and_nothing_at_all_are_told_apart() {
        let k3s = Observed {
            git_version: Some("v1.30.1+k3s1".into()),
            nodes: vec![node(
                "n",
                Some("k3s://n"),
                &[("node.kubernetes.io/instance-type", "k3s")],
            )],
            ..Default::default()
        };
        let r = detect_from(&k3s);
        assert_eq!(r.provider, "k3s");
        assert_eq!(r.provider_evidence.len(), 3, "{:?}", r.provider_evidence);
        let rke2 = Observed {
            git_version: Some("v1.30.4+rke2r1".into()),
            ..Default::default()
        };
        assert_eq!(detect_from(&rke2).provider, "rke2");
        let bare = Observed {
            git_version: Some("v1.31.2".into()),
            nodes: vec![node("n", None, &[])],
            unreadable: vec!["cannot list storage classes: forbidden".into()],
            ..Default::default()
        };
        let r = detect_from(&bare);
        assert_eq!(r.provider, "datacenter");
        assert_eq!(r.region, None);
        assert_eq!(r.unreadable.len(), 1);
        assert!(r.summary().contains("no default storage class"));
    }
}
