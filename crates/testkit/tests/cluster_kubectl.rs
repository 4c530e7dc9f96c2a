//! kubectl (the real client, /usr/bin/kubectl) against the test cluster: the check that it speaks
//! the real protocol. If kubectl is missing these tests fail, they do not skip.
#![allow(clippy::unwrap_used)] // tests may unwrap

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use airlift_testkit::cluster::{ClusterOptions, TestCluster};
use serde_json::Value;

const KUBECTL: &str = "/usr/bin/kubectl";

fn kubectl(cluster: &TestCluster, args: &[&str]) -> (bool, String, String) {
    assert!(
        Path::new(KUBECTL).exists(),
        "kubectl is required at {KUBECTL} for these tests; install it (it is part of the test toolchain)"
    );
    let out = Command::new(KUBECTL)
        .arg("--kubeconfig")
        .arg(cluster.kubeconfig_path())
        .args(args)
        .env_remove("KUBECONFIG")
        .env("HOME", cluster.kubeconfig_path().parent().unwrap())
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn ok(cluster: &TestCluster, args: &[&str]) -> String {
    let (success, stdout, stderr) = kubectl(cluster, args);
    assert!(
        success,
        "kubectl {args:?} failed:\nstdout: {stdout}\nstderr: {stderr}"
    );
    stdout
}

fn start() -> TestCluster {
    TestCluster::start(ClusterOptions::default().with_ready_delay(Duration::from_millis(100)))
        .unwrap()
}

const MANIFEST: &str = r#"apiVersion: v1
kind: Namespace
metadata:
  name: shop
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: settings
  namespace: shop
data:
  mode: production
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: api
  namespace: shop
spec:
  replicas: 2
  selector:
    matchLabels: {app: api}
  template:
    metadata:
      labels: {app: api}
    spec:
      containers:
      - name: api
        image: registry.local/shop/api@sha256:0000000000000000000000000000000000000000000000000000000000000000
        ports:
        - containerPort: 8080
---
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.example.com
spec:
  group: example.com
  scope: Namespaced
  names: {plural: widgets, singular: widget, kind: Widget, shortNames: [wd]}
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        x-kubernetes-preserve-unknown-fields: true
"#;

#[test]
fn kubectl_version_reports_the_server_version() {
    let cluster = TestCluster::start(ClusterOptions::default().with_version("1.29.7")).unwrap();
    let out = ok(&cluster, &["version", "-o", "json"]);
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["serverVersion"]["gitVersion"], "v1.29.7");
}

#[test]
fn kubectl_get_namespaces_lists_the_defaults() {
    let cluster = start();
    let out = ok(&cluster, &["get", "ns"]);
    let first = out.lines().next().unwrap();
    assert!(
        first.starts_with("NAME") && first.contains("STATUS") && first.contains("AGE"),
        "{out}"
    );
    for ns in ["default", "kube-system", "kube-public"] {
        assert!(
            out.lines()
                .any(|l| l.starts_with(ns) && l.contains("Active")),
            "{ns} missing:\n{out}"
        );
    }
}

#[test]
fn kubectl_apply_server_side_then_get_deployments_as_json() {
    let cluster = start();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("app.yaml");
    std::fs::write(&file, MANIFEST).unwrap();
    let out = ok(
        &cluster,
        &[
            "apply",
            "--server-side",
            "--field-manager",
            "airlift",
            "-f",
            file.to_str().unwrap(),
        ],
    );
    for line in [
        "namespace/shop serverside-applied",
        "configmap/settings serverside-applied",
        "deployment.apps/api serverside-applied",
        "customresourcedefinition.apiextensions.k8s.io/widgets.example.com serverside-applied",
    ] {
        assert!(out.contains(line), "missing {line:?} in:\n{out}");
    }
    // Re-applying is idempotent.
    let out = ok(
        &cluster,
        &[
            "apply",
            "--server-side",
            "--field-manager",
            "airlift",
            "-f",
            file.to_str().unwrap(),
        ],
    );
    assert!(
        out.contains("deployment.apps/api serverside-applied"),
        "{out}"
    );

    let start = Instant::now();
    loop {
        let out = ok(&cluster, &["get", "deploy", "-A", "-o", "json"]);
        let v: Value = serde_json::from_str(&out).unwrap();
        let items = v["items"].as_array().unwrap();
        assert_eq!(items.len(), 1);
        assert_eq!(items[0]["metadata"]["namespace"], "shop");
        assert_eq!(
            items[0]["metadata"]["managedFields"],
            Value::Null,
            "kubectl hides managedFields by default"
        );
        if items[0]["status"]["readyReplicas"] == 2 {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "never ready: {out}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    ok(
        &cluster,
        &[
            "rollout",
            "status",
            "deployment/api",
            "-n",
            "shop",
            "--timeout=10s",
        ],
    );
    let out = ok(
        &cluster,
        &[
            "get",
            "cm",
            "settings",
            "-n",
            "shop",
            "-o",
            "jsonpath={.data.mode}",
        ],
    );
    assert_eq!(out, "production");
    let out = ok(
        &cluster,
        &[
            "get",
            "cm",
            "settings",
            "-n",
            "shop",
            "-o",
            "json",
            "--show-managed-fields",
        ],
    );
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["metadata"]["managedFields"][0]["manager"], "airlift");
}

#[test]
fn kubectl_gets_a_custom_resource_after_its_crd() {
    let cluster = start();
    let dir = tempfile::tempdir().unwrap();
    let crd = dir.path().join("crd.yaml");
    std::fs::write(&crd, MANIFEST).unwrap();
    ok(
        &cluster,
        &["apply", "--server-side", "-f", crd.to_str().unwrap()],
    );
    ok(
        &cluster,
        &[
            "wait",
            "--for=condition=Established",
            "crd/widgets.example.com",
            "--timeout=10s",
        ],
    );
    let cr = dir.path().join("cr.yaml");
    std::fs::write(&cr, "apiVersion: example.com/v1\nkind: Widget\nmetadata:\n  name: gizmo\n  namespace: shop\nspec:\n  size: 3\n").unwrap();
    let out = ok(
        &cluster,
        &["apply", "--server-side", "-f", cr.to_str().unwrap()],
    );
    assert!(
        out.contains("widget.example.com/gizmo serverside-applied"),
        "{out}"
    );
    let out = ok(&cluster, &["get", "wd", "-n", "shop"]);
    assert!(out.lines().any(|l| l.starts_with("gizmo")), "{out}");
    let out = ok(
        &cluster,
        &[
            "get",
            "widgets.example.com",
            "gizmo",
            "-n",
            "shop",
            "-o",
            "jsonpath={.spec.size}",
        ],
    );
    assert_eq!(out, "3");
}

#[test]
fn kubectl_reports_not_found_and_forbidden_like_a_real_server() {
    let cluster = start();
    let (success, _, stderr) = kubectl(&cluster, &["get", "cm", "nope", "-n", "default"]);
    assert!(!success);
    assert!(
        stderr.contains("Error from server (NotFound): configmaps \"nope\" not found"),
        "{stderr}"
    );
    cluster.deny(airlift_testkit::cluster::DenyRule::new(
        "list", "", "secrets",
    ));
    let (success, _, stderr) = kubectl(&cluster, &["get", "secrets", "-n", "default"]);
    assert!(!success);
    assert!(stderr.contains("Error from server (Forbidden)"), "{stderr}");
    let out = ok(&cluster, &["auth", "can-i", "list", "configmaps"]);
    assert_eq!(out.trim(), "yes");
    let (success, out, _) = kubectl(&cluster, &["auth", "can-i", "list", "secrets"]);
    assert!(!success);
    assert_eq!(out.trim(), "no");
}

#[test]
fn kubectl_rejects_a_kubeconfig_with_a_wrong_token() {
    let cluster = start();
    let text = std::fs::read_to_string(cluster.kubeconfig_path()).unwrap();
    let bad = text.replace(cluster.token(), "not-the-token");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kubeconfig");
    std::fs::write(&path, bad).unwrap();
    let out = Command::new(KUBECTL)
        .arg("--kubeconfig")
        .arg(&path)
        .args(["get", "ns"])
        .env_remove("KUBECONFIG")
        .env("HOME", dir.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("Unauthorized") || stderr.contains("must be logged in"),
        "{stderr}"
    );
}

/// Kills the child process when the test ends, even if it panics.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn the_binary_serves_a_cluster_until_it_is_killed() {
    use std::io::{BufRead, BufReader};
    let dir = tempfile::tempdir().unwrap();
    let kc = dir.path().join("kubeconfig");
    let mut child = KillOnDrop(
        Command::new(env!("CARGO_BIN_EXE_airlift-test-cluster"))
            .args([
                "--kubeconfig-out",
                kc.to_str().unwrap(),
                "--version",
                "1.31.1",
                "--nodes",
                "arm64",
            ])
            .args(["--fail-image", "broken=CrashLoopBackOff"])
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let mut url = String::new();
    BufReader::new(child.0.stdout.take().unwrap())
        .read_line(&mut url)
        .unwrap();
    assert!(url.starts_with("https://127.0.0.1:"), "{url}");
    let run = |args: &[&str]| {
        Command::new(KUBECTL)
            .arg("--kubeconfig")
            .arg(&kc)
            .args(args)
            .env_remove("KUBECONFIG")
            .env("HOME", dir.path())
            .output()
            .unwrap()
    };
    let out = run(&[
        "get",
        "nodes",
        "-o",
        "jsonpath={.items[*].status.nodeInfo.architecture}",
    ]);
    let version = run(&["version", "-o", "json"]);
    drop(child);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "arm64");
    let v: Value = serde_json::from_slice(&version.stdout).unwrap();
    assert_eq!(v["serverVersion"]["gitVersion"], "v1.31.1");

    let bad = Command::new(env!("CARGO_BIN_EXE_airlift-test-cluster"))
        .args([
            "--kubeconfig-out",
            kc.to_str().unwrap(),
            "--listen",
            "0.0.0.0:0",
        ])
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("not a loopback address"));
}
