//! Cloud profiles end to end: the test cluster presents itself as EKS, GKE, AKS, OpenShift and a
//! bare datacenter; for each, the platform is detected with its evidence, the bundle's
//! `platform:` needs land in the rendered objects as that platform's concrete values, and
//! preflight reports each mapping. A bundle whose kinds the cluster does not serve fails
//! preflight listing them all. A real cluster in `AIRLIFT_E2E_KUBECONFIG` is detected too.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::sync::Arc;

use airlift_bundle::schema::platform::{
    AccessMode, IdentityNeed, IngressNeed, LoadBalancerNeed, LoadBalancerScope, PlatformNeeds,
    StorageNeed, StorageTier,
};
use airlift_bundle::{NoProgress, PublicKey, Trust};
use airlift_cluster::cancel::Cancel;
use airlift_cluster::platform::detect;
use airlift_cluster::{Cluster, ConnectOptions};
use airlift_deploy::{open_verified, DeployError, Deployer, Intent, NonInteractive, SiteRequest};
use airlift_registry::RegistryOptions;
use airlift_testkit::bundles::{ShopBundles, ShopVersion};
use airlift_testkit::cluster::{ClusterOptions, PlatformPreset, TestCluster};
use airlift_testkit::registry::TestRegistry;
use serde_json::Value;

const PLATFORM_TEMPLATE: &str = "\
apiVersion: v1
kind: ServiceAccount
metadata:
  name: {{ platform.identity.api.serviceAccount }}
  annotations: {{ platform.identity.api.annotations | tojson }}
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: data}
spec:
  accessModes: [{{ platform.storage.data.accessMode }}]
  storageClassName: {{ platform.storage.data.className | tojson }}
  resources: {requests: {storage: 10Gi}}
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: uploads}
spec:
  accessModes: [{{ platform.storage.uploads.accessMode }}]
  storageClassName: {{ platform.storage.uploads.className | tojson }}
  resources: {requests: {storage: 50Gi}}
---
apiVersion: v1
kind: Service
metadata:
  name: web-lb
  annotations: {{ platform.loadBalancer.annotations | tojson }}
spec:
  type: LoadBalancer
  selector: {app: web}
  ports: [{port: 443, targetPort: 8080}]
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: web
  annotations: {{ platform.ingress.annotations | tojson }}
spec:
{% if platform.ingress.className %}  ingressClassName: {{ platform.ingress.className }}
{% endif %}  defaultBackend: {service: {name: web-lb, port: {number: 443}}}
";

fn needs() -> PlatformNeeds {
    let storage = |access_mode, tier| StorageNeed {
        access_mode,
        tier,
        description: None,
    };
    PlatformNeeds {
        storage: BTreeMap::from([
            (
                "data".to_string(),
                storage(AccessMode::ReadWriteOnce, StorageTier::Fast),
            ),
            (
                "uploads".to_string(),
                storage(AccessMode::ReadWriteMany, StorageTier::Standard),
            ),
        ]),
        load_balancer: Some(LoadBalancerNeed {
            scope: LoadBalancerScope::Internal,
        }),
        ingress: Some(IngressNeed::default()),
        identity: BTreeMap::from([(
            "api".to_string(),
            IdentityNeed {
                service_account: "api".into(),
                description: None,
            },
        )]),
    }
}

struct Site {
    cluster: TestCluster,
    _registry: TestRegistry,
    registry: String,
    bundles: ShopBundles,
    dir: tempfile::TempDir,
}

fn start(preset: PlatformPreset) -> Site {
    // A test harness cannot serve as the render worker: templates render in this process.
    airlift_render::isolate::set_default_isolation(airlift_render::isolate::Isolation::InProcess);
    let cluster = TestCluster::start(ClusterOptions::default().as_platform(preset)).unwrap();
    let registry = TestRegistry::plain();
    let dir = tempfile::tempdir().unwrap();
    let bundles = ShopBundles::new(dir.path()).unwrap();
    eprintln!("[test-cluster as {preset:?}] {}", cluster.url());
    Site {
        registry: registry.host(),
        _registry: registry,
        cluster,
        bundles,
        dir,
    }
}

async fn connect(kubeconfig: &std::path::Path) -> Cluster {
    Cluster::connect(&ConnectOptions {
        kubeconfig: Some(kubeconfig.to_path_buf()),
        context: None,
    })
    .await
    .unwrap()
}

impl Site {
    fn request(&self, set: &[&str], values: Option<&str>) -> SiteRequest {
        let mut registry_options = RegistryOptions::default();
        registry_options.insecure.insert(self.registry.clone());
        let values_files = values
            .map(|text| {
                let p = self.dir.path().join("values.yaml");
                std::fs::write(&p, text).unwrap();
                vec![p]
            })
            .unwrap_or_default();
        SiteRequest {
            release: Some("shop".into()),
            registry: Some(self.registry.clone()),
            registry_options,
            set: set.iter().map(|s| s.to_string()).collect(),
            values_files,
            ..SiteRequest::default()
        }
    }

    /// Prepares the platform bundle, returns the rendered objects by `Kind/name` and the
    /// preflight result.
    async fn prepare_and_preflight(
        &self,
        v: &ShopVersion,
        request: &SiteRequest,
    ) -> (BTreeMap<String, Value>, Result<(), DeployError>) {
        let path = self.bundles.write(v).unwrap();
        let trust = Trust::Key(PublicKey::load(&self.bundles.public_key().unwrap()).unwrap());
        let (bundle, _) = open_verified(&path, &trust, &NoProgress, true).unwrap();
        let cluster = connect(self.cluster.kubeconfig_path()).await;
        let deployer = Deployer::new(
            &cluster,
            Arc::new(NoProgress),
            &NonInteractive,
            Cancel::new(),
        );
        let prepared = deployer
            .prepare(Arc::new(bundle), request, Intent::Install)
            .await
            .unwrap();
        let objects = prepared
            .request
            .objects
            .iter()
            .map(|o| {
                (
                    format!(
                        "{}/{}",
                        o.kind(),
                        o.object["metadata"]["name"].as_str().unwrap()
                    ),
                    o.object.clone(),
                )
            })
            .collect();
        let preflight = deployer.preflight(&prepared, Intent::Install, false).await;
        (objects, preflight)
    }
}

fn platform_bundle() -> ShopVersion {
    let mut v = ShopVersion::new("1.0.0");
    v.extra = PLATFORM_TEMPLATE.into();
    v.platform = needs();
    v
}

fn class(objects: &BTreeMap<String, Value>, pvc: &str) -> Value {
    objects[&format!("PersistentVolumeClaim/{pvc}")]["spec"]["storageClassName"].clone()
}

fn annotations(objects: &BTreeMap<String, Value>, id: &str) -> Value {
    objects[id]["metadata"]["annotations"].clone()
}

fn preflight_text(r: &Result<(), DeployError>) -> String {
    match r {
        Ok(()) => String::new(),
        Err(e) => e.to_string(),
    }
}

#[tokio::test]
async fn eks_is_detected_and_maps_to_gp3_efs_nlb_alb_and_irsa() {
    let site = start(PlatformPreset::Eks);
    let cluster = connect(site.cluster.kubeconfig_path()).await;
    let report = detect(cluster.client()).await;
    assert_eq!(report.provider, "aws");
    let evidence = report.provider_evidence.join("\n");
    for e in [
        "`-eks-`",
        "providerID `aws://…`",
        "eks.amazonaws.com/nodegroup",
    ] {
        assert!(evidence.contains(e), "missing {e} in {evidence}");
    }
    assert_eq!(report.region.as_deref(), Some("us-west-2"));
    assert_eq!(report.zones, ["us-west-2a", "us-west-2b"]);
    assert_eq!(report.default_storage_class.as_deref(), Some("gp3"));

    let role = "arn:aws:iam::111122223333:role/shop-api";
    let request = site.request(&[&format!("platform.identity.api.value={role}")], None);
    let (objects, preflight) = site
        .prepare_and_preflight(&platform_bundle(), &request)
        .await;
    assert_eq!(class(&objects, "data"), "gp3");
    assert_eq!(class(&objects, "uploads"), "efs-sc");
    let lb = annotations(&objects, "Service/web-lb");
    assert_eq!(
        lb["service.beta.kubernetes.io/aws-load-balancer-scheme"],
        "internal"
    );
    assert_eq!(
        lb["service.beta.kubernetes.io/aws-load-balancer-type"],
        "external"
    );
    assert_eq!(objects["Ingress/web"]["spec"]["ingressClassName"], "alb");
    assert_eq!(
        annotations(&objects, "ServiceAccount/api")["eks.amazonaws.com/role-arn"],
        role
    );
    assert!(preflight.is_ok(), "{}", preflight_text(&preflight));
}

#[tokio::test]
async fn gke_is_detected_and_maps_to_pd_filestore_internal_lb_gce_ingress_and_workload_identity() {
    let site = start(PlatformPreset::Gke);
    let cluster = connect(site.cluster.kubeconfig_path()).await;
    let report = detect(cluster.client()).await;
    assert_eq!(report.provider, "gcp");
    assert!(report.provider_evidence.iter().any(|e| e.contains("-gke.")));
    assert_eq!(report.region.as_deref(), Some("us-central1"));
    assert_eq!(
        report.default_storage_class.as_deref(),
        Some("standard-rwo")
    );
    assert!(report.ingress_classes.is_empty());

    let gsa = "shop-api@acme-prod.iam.gserviceaccount.com";
    let request = site.request(&[&format!("platform.identity.api.value={gsa}")], None);
    let (objects, preflight) = site
        .prepare_and_preflight(&platform_bundle(), &request)
        .await;
    assert_eq!(class(&objects, "data"), "premium-rwo");
    assert_eq!(class(&objects, "uploads"), "standard-rwx");
    assert_eq!(
        annotations(&objects, "Service/web-lb")["networking.gke.io/load-balancer-type"],
        "Internal"
    );
    // GKE's controller is selected by annotation; no ingressClassName naming no object.
    assert_eq!(
        annotations(&objects, "Ingress/web")["kubernetes.io/ingress.class"],
        "gce"
    );
    assert!(objects["Ingress/web"]["spec"]
        .get("ingressClassName")
        .is_none());
    assert_eq!(
        annotations(&objects, "ServiceAccount/api")["iam.gke.io/gcp-service-account"],
        gsa
    );
    assert!(preflight.is_ok(), "{}", preflight_text(&preflight));
}

#[tokio::test]
async fn aks_is_detected_and_maps_to_azure_disk_files_internal_lb_app_routing_and_workload_identity(
) {
    let site = start(PlatformPreset::Aks);
    let cluster = connect(site.cluster.kubeconfig_path()).await;
    let report = detect(cluster.client()).await;
    assert_eq!(report.provider, "azure");
    let evidence = report.provider_evidence.join("\n");
    assert!(evidence.contains("providerID `azure://…`"), "{evidence}");
    assert!(evidence.contains("kubernetes.azure.com/"), "{evidence}");
    assert_eq!(report.region.as_deref(), Some("eastus"));
    assert_eq!(report.zones, ["eastus-1", "eastus-2"]);
    assert_eq!(report.default_storage_class.as_deref(), Some("default"));

    let client_id = "5a1f8d2e-0c3b-4e7a-9f61-2b8c4d0e9a73";
    let request = site.request(&[&format!("platform.identity.api.value={client_id}")], None);
    let (objects, preflight) = site
        .prepare_and_preflight(&platform_bundle(), &request)
        .await;
    assert_eq!(class(&objects, "data"), "managed-csi-premium");
    assert_eq!(class(&objects, "uploads"), "azurefile-csi");
    assert_eq!(
        annotations(&objects, "Service/web-lb")
            ["service.beta.kubernetes.io/azure-load-balancer-internal"],
        "true"
    );
    assert_eq!(
        objects["Ingress/web"]["spec"]["ingressClassName"],
        "webapprouting.kubernetes.azure.com"
    );
    assert_eq!(
        annotations(&objects, "ServiceAccount/api")["azure.workload.identity/client-id"],
        client_id
    );
    assert!(preflight.is_ok(), "{}", preflight_text(&preflight));
}

#[tokio::test]
async fn openshift_is_detected_maps_to_odf_and_takes_identity_annotations_from_values() {
    let site = start(PlatformPreset::OpenShift);
    let cluster = connect(site.cluster.kubeconfig_path()).await;
    let report = detect(cluster.client()).await;
    assert_eq!(report.provider, "openshift");
    let evidence = report.provider_evidence.join("\n");
    assert!(evidence.contains("node.openshift.io/os_id"), "{evidence}");
    assert!(
        evidence.contains("openshift.io/ingress-to-route"),
        "{evidence}"
    );
    assert_eq!(report.region, None);

    // Without a value the identity fails preflight, with the fix.
    let (_, preflight) = site
        .prepare_and_preflight(&platform_bundle(), &site.request(&[], None))
        .await;
    let text = preflight_text(&preflight);
    assert!(text.contains("workload identity api"), "{text}");
    assert!(text.contains("has no workload-identity mapping"), "{text}");

    // OpenShift on AWS with STS: the customer gives the annotation in a values file.
    let values = "platform:\n  identity:\n    api:\n      annotations:\n        eks.amazonaws.com/role-arn: arn:aws:iam::111122223333:role/shop\n";
    let (objects, preflight) = site
        .prepare_and_preflight(&platform_bundle(), &site.request(&[], Some(values)))
        .await;
    assert_eq!(class(&objects, "data"), "ocs-storagecluster-ceph-rbd");
    assert_eq!(class(&objects, "uploads"), "ocs-storagecluster-cephfs");
    assert_eq!(
        annotations(&objects, "Service/web-lb"),
        serde_json::json!({})
    );
    assert_eq!(
        objects["Ingress/web"]["spec"]["ingressClassName"],
        "openshift-default"
    );
    assert_eq!(
        annotations(&objects, "ServiceAccount/api")["eks.amazonaws.com/role-arn"],
        "arn:aws:iam::111122223333:role/shop"
    );
    assert!(preflight.is_ok(), "{}", preflight_text(&preflight));
}

#[tokio::test]
async fn a_datacenter_without_a_default_storage_class_fails_preflight_naming_each_fix() {
    let site = start(PlatformPreset::Datacenter);
    let cluster = connect(site.cluster.kubeconfig_path()).await;
    let report = detect(cluster.client()).await;
    assert_eq!(report.provider, "datacenter");
    assert!(report.provider_evidence[0].contains("no provider signal"));
    assert_eq!(report.default_storage_class, None);

    let (objects, preflight) = site
        .prepare_and_preflight(&platform_bundle(), &site.request(&[], None))
        .await;
    assert_eq!(objects["Ingress/web"]["spec"]["ingressClassName"], "nginx");
    let Err(DeployError::Preflight(failures)) = &preflight else {
        panic!(
            "expected preflight failures, got {}",
            preflight_text(&preflight)
        );
    };
    let platform: Vec<String> = failures
        .iter()
        .filter(|f| f.area == "platform")
        .map(|f| format!("{} | fix: {}", f.problem, f.fix))
        .collect();
    assert_eq!(platform.len(), 3, "{platform:#?}");
    let all = platform.join("\n");
    for expected in [
        "storage role data: no storage class serves ReadWriteOnce and the cluster has no default class; the cluster has: none",
        "mark it default (`kubectl annotate storageclass NAME storageclass.kubernetes.io/is-default-class=true`)",
        "--set platform.storage.data.className=NAME",
        "storage role uploads: no storage class serves ReadWriteMany",
        "provisioner nfs.csi.k8s.io or cephfs.csi.ceph.com",
        "workload identity api",
    ] {
        assert!(all.contains(expected), "missing {expected:?} in\n{all}");
    }
    // The customer names classes created since: the overrides win and preflight names them.
    let (objects, preflight) = site
        .prepare_and_preflight(
            &platform_bundle(),
            &site.request(&["platform.storage.data.className=fast-ssd"], None),
        )
        .await;
    assert_eq!(class(&objects, "data"), "fast-ssd");
    let text = preflight_text(&preflight);
    assert!(
        text.contains("storage class `fast-ssd` does not exist"),
        "{text}"
    );
}

#[tokio::test]
async fn kinds_the_cluster_does_not_serve_fail_preflight_all_listed_except_bundled_crds() {
    let site = start(PlatformPreset::Eks);
    let mut v = ShopVersion::new("1.0.0");
    v.extra = "\
apiVersion: policy/v1beta1
kind: PodSecurityPolicy
metadata: {name: restricted}
spec: {privileged: false}
---
apiVersion: monitoring.coreos.com/v1
kind: ServiceMonitor
metadata: {name: web}
spec: {endpoints: [{port: http}]}
---
apiVersion: monitoring.coreos.com/v1
kind: ServiceMonitor
metadata: {name: api}
spec: {endpoints: [{port: http}]}
---
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: widgets.shop.example.com}
spec:
  group: shop.example.com
  scope: Namespaced
  names: {plural: widgets, singular: widget, kind: Widget}
  versions:
    - name: v1
      served: true
      storage: true
      schema: {openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}}
---
apiVersion: shop.example.com/v1
kind: Widget
metadata: {name: w}
"
    .into();
    let (_, preflight) = site
        .prepare_and_preflight(&v, &site.request(&[], None))
        .await;
    let Err(DeployError::Preflight(failures)) = &preflight else {
        panic!(
            "expected preflight failures, got {}",
            preflight_text(&preflight)
        );
    };
    let served: Vec<&airlift_deploy::PreflightFailure> = failures
        .iter()
        .filter(|f| f.problem.starts_with("served kinds"))
        .collect();
    assert_eq!(served.len(), 1, "{failures:#?}");
    let p = &served[0].problem;
    assert!(p.contains("does not serve 2 kind(s)"), "{p}");
    assert!(
        p.contains("monitoring.coreos.com/v1 ServiceMonitor (web, api)"),
        "{p}"
    );
    assert!(
        p.contains("policy/v1beta1 PodSecurityPolicy (restricted)"),
        "{p}"
    );
    assert!(!p.contains("Widget"), "the bundle installs that CRD: {p}");
    assert!(served[0].fix.contains("--kubernetes"), "{}", served[0].fix);
}

#[tokio::test]
async fn a_real_cluster_is_detected_too() {
    let Some(kc) = std::env::var_os("AIRLIFT_E2E_KUBECONFIG").filter(|v| !v.is_empty()) else {
        eprintln!("note: AIRLIFT_E2E_KUBECONFIG is not set: the real-cluster tier is skipped");
        return;
    };
    let cluster = connect(std::path::Path::new(&kc)).await;
    let report = detect(cluster.client()).await;
    eprintln!(
        "[real-cluster] {}\n{:#?}",
        report.summary(),
        report.provider_evidence
    );
    assert!(report.kubernetes.is_some(), "{:?}", report.unreadable);
    assert!(!report.provider_evidence.is_empty());
}
