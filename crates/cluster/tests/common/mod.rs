//! Shared helpers for the cluster integration tests.
//!
//! Every scenario runs against the test cluster (always) and, when `AIRLIFT_E2E_KUBECONFIG` names
//! a kubeconfig, against that real cluster too, unchanged. Without the variable the real tier is
//! skipped and says so once.

#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::Once;
use std::time::Duration;

use airlift_cluster::lifecycle::{DeployOptions, DeployRequest, Engine};
use airlift_cluster::readiness::WaitOptions;
use airlift_cluster::release::BundleInfo;
use airlift_cluster::{Cluster, ConnectOptions, ManagedObject};
use airlift_testkit::cluster::{ClusterOptions, FailureMode, TestCluster};
use serde_json::{json, Value};

/// An image every real cluster can pull and run.
pub const GOOD_IMAGE_V1: &str = "registry.k8s.io/pause:3.9";
/// The same, newer.
pub const GOOD_IMAGE_V2: &str = "registry.k8s.io/pause:3.10";
/// An image no cluster can pull; the test cluster fails it on purpose, a real one for real.
pub const BROKEN_IMAGE: &str = "registry.invalid/airlift/broken:1";

static SKIP_NOTICE: Once = Once::new();

/// Where a scenario runs.
pub struct Env {
    /// `test-cluster` or `real-cluster`.
    pub tier: &'static str,
    /// The kubeconfig.
    pub kubeconfig: PathBuf,
    /// The test cluster, when this is the test tier (for knobs and direct reads).
    pub test: Option<TestCluster>,
}

impl Env {
    /// Connects with the tier's kubeconfig and its current context.
    pub async fn connect(&self) -> Cluster {
        Cluster::connect(&ConnectOptions {
            kubeconfig: Some(self.kubeconfig.clone()),
            context: None,
        })
        .await
        .unwrap_or_else(|e| panic!("[{}] connect failed: {e}: {}", self.tier, e.hint()))
    }

    /// Options for scenarios expected to fail readiness: a short timeout on the test cluster,
    /// long enough on a real one for the kubelet to report the pull failure.
    pub fn failing_options(&self) -> DeployOptions {
        let secs = if self.test.is_some() { 8 } else { 60 };
        DeployOptions {
            wait: WaitOptions {
                timeout: Duration::from_secs(secs),
                poll: Duration::from_millis(300),
                ..WaitOptions::default()
            },
            ..DeployOptions::default()
        }
    }

    /// Makes [`BROKEN_IMAGE`] fail to pull (a real cluster fails it by itself).
    pub fn break_images(&self) {
        if let Some(t) = &self.test {
            t.fail_image("broken", FailureMode::ImagePullBackOff);
        }
    }
}

/// The tiers to run: the test cluster with `options`, then the real cluster if configured.
pub fn envs(options: ClusterOptions) -> Vec<Env> {
    let test = TestCluster::start(options).expect("the test cluster starts");
    let mut out = vec![Env {
        tier: "test-cluster",
        kubeconfig: test.kubeconfig_path().to_path_buf(),
        test: Some(test),
    }];
    match std::env::var_os("AIRLIFT_E2E_KUBECONFIG").filter(|v| !v.is_empty()) {
        Some(path) => out.push(Env {
            tier: "real-cluster",
            kubeconfig: PathBuf::from(path),
            test: None,
        }),
        None => SKIP_NOTICE.call_once(|| {
            eprintln!(
                "note: AIRLIFT_E2E_KUBECONFIG is not set: the real-cluster tier is skipped; \
                 the test-cluster tier runs"
            )
        }),
    }
    out
}

/// A unique lowercase suffix, so real-cluster runs never collide.
pub fn unique(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!(
        "{prefix}-{:x}{:x}",
        std::process::id() % 0xfff,
        nanos % 0xfffff
    )
}

/// Fast waits for tests.
pub fn options() -> DeployOptions {
    DeployOptions {
        wait: WaitOptions {
            timeout: Duration::from_secs(60),
            poll: Duration::from_millis(300),
            ..WaitOptions::default()
        },
        ..DeployOptions::default()
    }
}

/// A managed object of `component`, applied in phase `order`.
pub fn obj(component: &str, order: i32, v: Value) -> ManagedObject {
    ManagedObject::new(component, order, 0, v).expect("a valid object")
}

/// The demo product at `version`: namespace, config, secret, RBAC, service, PVC and a
/// Deployment running `image` (with `password` rendered into an env var, as careless
/// templates do). Version 1 also has a ConfigMap `legacy` that version 2 drops.
pub fn demo_objects(ns: &str, version: u32, image: &str, password: &str) -> Vec<ManagedObject> {
    let mut out = vec![
        obj(
            "web",
            2,
            json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web"},
            "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
                "template": {"metadata": {"labels": {"app": "web"}},
                    "spec": {"serviceAccountName": "web",
                        "containers": [{"name": "web", "image": image,
                            "env": [{"name": "APP_PASSWORD", "value": password}]}]}}}}),
        ),
        obj(
            "web",
            2,
            json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
            "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 8080}]}}),
        ),
        obj(
            "web",
            2,
            json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "web-config"}, "data": {"version": version.to_string()}}),
        ),
        obj(
            "web",
            2,
            json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "web-secret"},
            "type": "Opaque", "stringData": {"password": password}}),
        ),
        obj(
            "web",
            2,
            json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "web"}}),
        ),
        obj(
            "base",
            1,
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}),
        ),
        obj(
            "base",
            1,
            json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim",
            "metadata": {"name": "data"},
            "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}),
        ),
    ];
    if version == 1 {
        out.push(obj(
            "web",
            2,
            json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "legacy"}, "data": {"old": "yes"}}),
        ));
    }
    out
}

/// Release `demo` of the demo product at `version`, with [`demo_objects`] of `objects_version`.
pub fn demo(
    ns: &str,
    version: &str,
    objects_version: u32,
    image: &str,
    password: &str,
) -> DeployRequest {
    demo_request(
        "demo",
        ns,
        version,
        demo_objects(ns, objects_version, image, password),
    )
}

/// A deploy request for the demo product.
pub fn demo_request(
    release: &str,
    ns: &str,
    version: &str,
    objects: Vec<ManagedObject>,
) -> DeployRequest {
    DeployRequest {
        release: release.to_string(),
        namespace: ns.to_string(),
        bundle: BundleInfo {
            name: "demo".into(),
            version: version.into(),
            digest: format!("sha256:{:0>64}", version.replace('.', "")),
        },
        config: [("web.replicas".to_string(), json!(2))]
            .into_iter()
            .collect(),
        saas_defaults: [("web.replicas".to_string(), json!(2))]
            .into_iter()
            .collect(),
        site: None,
        operator: None,
        objects,
    }
}

/// Whether the namespace `name` is being deleted (it has a deletion timestamp); `None` when it
/// does not exist.
pub async fn namespace_deleting(cluster: &Cluster, name: &str) -> Option<bool> {
    live(cluster, "v1", "Namespace", None, name)
        .await
        .map(|ns| !ns["metadata"]["deletionTimestamp"].is_null())
}

/// Reads a live object as JSON through the API (works on both tiers).
pub async fn live(
    cluster: &Cluster,
    api_version: &str,
    kind: &str,
    ns: Option<&str>,
    name: &str,
) -> Option<Value> {
    let engine = Engine::new(cluster, &airlift_bundle::NoProgress);
    let (group, version) = match api_version.split_once('/') {
        Some((g, v)) => (g.to_string(), v.to_string()),
        None => (String::new(), api_version.to_string()),
    };
    let id = airlift_cluster::ObjectRef {
        group,
        version,
        kind: kind.into(),
        namespace: ns.map(str::to_string),
        name: name.into(),
    };
    airlift_cluster::apply::get_live(engine.resolver(), &id)
        .await
        .expect("read")
}

/// Removes everything a scenario left behind (data included).
pub async fn cleanup(cluster: &Cluster, ns: &str, release: &str) {
    let engine = Engine::new(cluster, &airlift_bundle::NoProgress);
    let _ = engine.uninstall(ns, release, true).await;
}

/// The first container's image of a workload.
pub fn image_of(deploy: &serde_json::Value) -> String {
    deploy["spec"]["template"]["spec"]["containers"][0]["image"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// Whether a Deployment has all replicas updated and available.
pub fn ready(deploy: &serde_json::Value) -> bool {
    deploy["status"]["availableReplicas"].as_i64() == deploy["spec"]["replicas"].as_i64()
        && deploy["status"]["updatedReplicas"].as_i64() == deploy["spec"]["replicas"].as_i64()
}
