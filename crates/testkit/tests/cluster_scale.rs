//! The `scale` subresource and the kubelet's `imageID`, through the real kubectl: `kubectl
//! scale` leaves the managedFields entry a real apiserver leaves (manager from the user agent,
//! `Update`, `subresource: scale`, the main resource's apiVersion), and Pods report the repo
//! digest of their image.
#![allow(clippy::unwrap_used)] // tests may unwrap

use std::process::Command;

use airlift_testkit::cluster::{ClusterOptions, TestCluster};
use serde_json::Value;

fn kubectl(cluster: &TestCluster, args: &[&str]) -> (i32, String, String) {
    let out = Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(cluster.kubeconfig_path())
        .args(args)
        .env_remove("KUBECONFIG")
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

const DEPLOYMENT: &str = r#"{"apiVersion": "apps/v1", "kind": "Deployment",
  "metadata": {"name": "web", "namespace": "default"},
  "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "web"}},
    "template": {"metadata": {"labels": {"app": "web"}},
      "spec": {"containers": [{"name": "web", "image": "reg.example:5000/acme/web:1.0"}]}}}}"#;

#[test]
fn kubectl_scale_is_recorded_as_a_scale_subresource_update() {
    let cluster = TestCluster::start(ClusterOptions::default()).unwrap();
    let digest = format!("sha256:{}", "b".repeat(64));
    cluster.pull_digest("reg.example:5000/acme/web:1.0", &digest);
    let file = cluster.kubeconfig_path().with_file_name("web.json");
    std::fs::write(&file, DEPLOYMENT).unwrap();
    let (code, _, err) = kubectl(
        &cluster,
        &["apply", "--server-side", "-f", file.to_str().unwrap()],
    );
    assert_eq!(code, 0, "{err}");

    let (code, out, err) = kubectl(&cluster, &["scale", "deployment/web", "--replicas=3"]);
    assert_eq!(code, 0, "{out}{err}");
    let d = cluster
        .object("apps", "deployments", "default", "web")
        .unwrap();
    assert_eq!(d["spec"]["replicas"], 3);
    let entries = d["metadata"]["managedFields"].as_array().unwrap();
    let scale = entries
        .iter()
        .find(|e| e["subresource"] == "scale")
        .unwrap_or_else(|| panic!("no scale entry: {entries:?}"));
    assert_eq!(scale["manager"], "kubectl");
    assert_eq!(scale["operation"], "Update");
    assert_eq!(scale["apiVersion"], "apps/v1");
    assert_eq!(
        scale["fieldsV1"],
        serde_json::json!({"f:spec": {"f:replicas": {}}})
    );
    // The applier no longer owns the field it lost.
    let applied = entries.iter().find(|e| e["operation"] == "Apply").unwrap();
    assert!(
        applied["fieldsV1"]["f:spec"].get("f:replicas").is_none(),
        "{applied}"
    );

    let (code, out, err) = kubectl(
        &cluster,
        &["get", "deployment/web", "--subresource=scale", "-o", "json"],
    );
    assert_eq!(code, 0, "{err}");
    let s: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(s["kind"], "Scale");
    assert_eq!(s["apiVersion"], "autoscaling/v1");
    assert_eq!(s["spec"]["replicas"], 3);
    assert_eq!(s["status"]["selector"], "app=web");

    let (code, _, err) = kubectl(&cluster, &["scale", "deployment/web", "--replicas=-1"]);
    assert_ne!(code, 0);
    assert!(err.contains("replicas"), "{err}");

    // The Pods, once running, report the digest the kubelet pulled.
    let mut id = String::new();
    for _ in 0..200 {
        let (_, out, _) = kubectl(&cluster, &["get", "pods", "-o", "json"]);
        let v: Value = serde_json::from_str(&out).unwrap();
        if let Some(s) = v["items"][0]["status"]["containerStatuses"][0]["imageID"].as_str() {
            if !s.is_empty() {
                id = s.to_string();
                break;
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert_eq!(id, format!("reg.example:5000/acme/web@{digest}"));
}
