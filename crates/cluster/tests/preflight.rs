//! Preflight against the test cluster (and a real cluster when `AIRLIFT_E2E_KUBECONFIG` is set):
//! every failure reported at once, each with a fix, and nothing changed.

mod common;

use airlift_bundle::schema::common::Requirements;
use airlift_bundle::NoProgress;
use airlift_cluster::lifecycle::Engine;
use airlift_cluster::preflight::{preflight, PreflightError, PreflightInput};
use airlift_cluster::ManagedObject;
use airlift_testkit::cluster::{ClusterOptions, DenyRule};
use common::*;
use serde_json::json;

fn requirements(kubernetes: &str, platforms: &[&str]) -> Requirements {
    Requirements {
        kubernetes: kubernetes.into(),
        platforms: platforms
            .iter()
            .map(|p| p.parse().expect("a platform"))
            .collect(),
        storage_classes: vec![],
        crds: vec![],
    }
}

fn with_cluster_role(ns: &str) -> Vec<ManagedObject> {
    let mut objects = demo_objects(ns, 1, GOOD_IMAGE_V1, "pw");
    objects.push(
        ManagedObject::new(
            "web",
            2,
            0,
            json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
                   "metadata": {"name": format!("{ns}-reader")},
                   "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}]}),
        )
        .expect("a valid object"),
    );
    objects
}

#[tokio::test(flavor = "multi_thread")]
async fn preflight_passes_on_a_matching_cluster() {
    for env in envs(ClusterOptions::default().with_nodes(&["amd64", "arm64"])) {
        let cluster = env.connect().await;
        let engine = Engine::new(&cluster, &NoProgress);
        let ns = unique("pfok");
        let objects = with_cluster_role(&ns);
        let req = requirements(">=1.28.0", &["linux/amd64", "linux/arm64"]);
        let report = preflight(
            engine.resolver(),
            &PreflightInput {
                requirements: &req,
                objects: &objects,
                namespace: &ns,
            },
        )
        .await
        .unwrap_or_else(|e| panic!("[{}] {e}", env.tier));
        assert!(report.checks.len() >= 3, "{report}");
        assert!(
            report.to_string().contains("Kubernetes version"),
            "{report}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn preflight_reports_every_failure_at_once_and_changes_nothing() {
    let options = ClusterOptions::default()
        .with_version("1.27.3")
        .with_nodes(&["amd64", "arm64"]);
    for env in envs(options) {
        if let Some(t) = &env.test {
            t.deny(DenyRule::new(
                "create",
                "rbac.authorization.k8s.io",
                "clusterroles",
            ));
        }
        let cluster = env.connect().await;
        let engine = Engine::new(&cluster, &NoProgress);
        let ns = unique("pf");
        let mut objects = with_cluster_role(&ns);
        objects.push(
            ManagedObject::new(
                "web",
                2,
                0,
                json!({"apiVersion": "example.invalid/v1", "kind": "Gadget",
                       "metadata": {"name": "g"}}),
            )
            .unwrap(),
        );
        // Too old for the test cluster (1.27.3) and for any real one (<1.99 is every release).
        let mut req = requirements(">=1.99.0", &["linux/amd64"]);
        if env.test.is_some() {
            req.kubernetes = ">=1.28.0".into();
        } else {
            // No real cluster runs only on this platform.
            req.platforms = vec!["linux/mips64le".parse().unwrap()];
        }
        req.storage_classes = vec!["fast-ssd-airlift-missing".into()];
        req.crds = vec!["certificates.cert-manager.invalid".into()];
        let requests_before = env.test.as_ref().map(|t| t.requests().len());
        let err = preflight(
            engine.resolver(),
            &PreflightInput {
                requirements: &req,
                objects: &objects,
                namespace: &ns,
            },
        )
        .await
        .unwrap_err();
        let PreflightError::Failed(report) = &err;
        let failed: Vec<&str> = report.failures().map(|c| c.name.as_str()).collect();
        let text = err.to_string();
        assert!(
            failed.contains(&"Kubernetes version"),
            "[{}] {text}",
            env.tier
        );
        assert!(failed.contains(&"node platforms"), "[{}] {text}", env.tier);
        assert!(failed.contains(&"storage classes"), "[{}] {text}", env.tier);
        assert!(
            failed.contains(&"CRD certificates.cert-manager.invalid"),
            "[{}] {text}",
            env.tier
        );
        // Every unserved kind is listed in one check.
        assert!(failed.contains(&"served kinds"), "[{}] {text}", env.tier);
        assert!(text.contains("Gadget"), "[{}] {text}", env.tier);
        if env.test.is_some() {
            assert!(text.contains("server v1.27.3 is outside"), "{text}");
            assert!(text.contains("linux/arm64 on node-2"), "{text}");
            assert!(
                failed.contains(&"permission on clusterroles.rbac.authorization.k8s.io"),
                "{text}"
            );
            assert!(text.contains("forbidden to create clusterroles"), "{text}");
            assert!(text.contains("cluster-wide"), "{text}");
        }
        for c in report.failures() {
            assert!(
                c.fix.as_deref().is_some_and(|f| !f.is_empty()),
                "no fix for {}",
                c.name
            );
        }
        // Nothing was written: only reads and access reviews.
        if let (Some(t), Some(before)) = (&env.test, requests_before) {
            let writes: Vec<String> = t.requests()[before..]
                .iter()
                .filter(|r| r.method != "GET" && !r.path.ends_with("selfsubjectaccessreviews"))
                .map(|r| format!("{} {}", r.method, r.path))
                .collect();
            assert!(writes.is_empty(), "preflight changed something: {writes:?}");
        }
        assert!(live(&cluster, "v1", "Namespace", None, &ns).await.is_none());
    }
}
