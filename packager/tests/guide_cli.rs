//! Every `airlift-pack` command of docs/operator-guide.md, run as written through the real
//! binary, in the guide's order, in a folder holding the files the guide names, against a real
//! `docker-registry` (TLS) and the test cluster. Only hosts, the kubeconfig and absolute paths
//! are substituted; flags and subcommands stay as printed. A command the test does not know
//! fails the test. The `airlift-install` commands are run by `installer/tests/guide_cli.rs`.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::{Command, Output, Stdio};

use airlift_testkit::bundles::{ShopBundles, ShopVersion};
use airlift_testkit::cluster::{ClusterOptions, TestCluster};
use airlift_testkit::images::{LayerSpec, LayoutBuilder};
use airlift_testkit::registry::TestRegistry;

/// A small SaaS in namespace `shop`, its image in the registry `REGISTRY`.
const SAAS: &str = "\
apiVersion: v1
kind: Namespace
metadata:
  name: shop
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: api-config
  namespace: shop
data:
  LOG_LEVEL: info
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
          image: REGISTRY/acme/api:1.0
          envFrom:
            - configMapRef: {name: api-config}
";

fn text(out: &Output) -> String {
    format!(
        "exit {:?}\n--- stdout\n{}--- stderr\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn kubectl(kubeconfig: &Path, args: &[&str]) -> Output {
    Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(args)
        .output()
        .unwrap()
}

/// Waits (bounded by a number of polls) until the Pods of `shop` report their image ids.
fn wait_running(cluster: &TestCluster) {
    for _ in 0..300 {
        let out = kubectl(
            cluster.kubeconfig_path(),
            &["get", "pods", "-n", "shop", "-o", "json"],
        );
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        let items = v["items"].as_array().cloned().unwrap_or_default();
        if !items.is_empty()
            && items.iter().all(|p| {
                p["status"]["containerStatuses"]
                    .as_array()
                    .is_some_and(|cs| cs.iter().all(|c| c["imageID"] != ""))
            })
        {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    panic!("the Pods of shop never ran");
}

#[test]
fn every_packager_command_in_the_operator_guide_runs_as_written() {
    let doc = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/operator-guide.md"),
    )
    .unwrap();
    let commands = airlift_cli::docs::command_lines(&doc, "airlift-pack");
    assert!(
        commands.len() >= 6,
        "the guide shows {} commands",
        commands.len()
    );

    let tmp = tempfile::tempdir().unwrap();
    let work = tmp.path().join("work");
    std::fs::create_dir(&work).unwrap();
    let registry = TestRegistry::tls();
    let host = registry.host();

    // The vendor's files, under the names the guide uses.
    std::fs::create_dir(tmp.path().join("bundles")).unwrap();
    let bundles = ShopBundles::new(&tmp.path().join("bundles")).unwrap();
    std::fs::copy(
        bundles.write(&ShopVersion::new("1.2.0")).unwrap(),
        work.join("shop-1.2.0.airlift"),
    )
    .unwrap();
    std::fs::copy(registry.ca_pem().unwrap(), work.join("vendor-ca.pem")).unwrap();
    let pack = |args: &[String]| {
        Command::new(env!("CARGO_BIN_EXE_airlift-pack"))
            .args(args)
            .current_dir(&work)
            .env("NO_COLOR", "1")
            .env("SSL_CERT_FILE", registry.ca_pem().unwrap())
            .env("DOCKER_CONFIG", tmp.path().join("docker"))
            .env("XDG_CACHE_HOME", tmp.path().join("cache"))
            .env_remove("REGISTRY_AUTH_FILE")
            .stdin(Stdio::null())
            .output()
            .unwrap()
    };
    // vendor.key signs what `build` and `license issue` write; vendor.pub is the key of the
    // published shop bundle (the guide's publisher and snapshot author are one vendor).
    let keygen = pack(&["keygen".into(), "--out".into(), "vendor".into()]);
    assert!(keygen.status.success(), "{}", text(&keygen));
    std::fs::copy(bundles.public_key().unwrap(), work.join("vendor.pub")).unwrap();

    // The SaaS the guide snapshots: its image in the registry, its Pods running it.
    let layout = tmp.path().join("layout");
    let mut b = LayoutBuilder::create(&layout).unwrap();
    let api = b
        .image("linux/amd64", &[LayerSpec::new(7, 16 << 10)])
        .unwrap();
    b.tag("api", &api.descriptor());
    b.finish().unwrap();
    let digest = registry.seed(&layout, "api", "acme/api:1.0");
    let cluster = TestCluster::start(ClusterOptions::default()).unwrap();
    cluster.pull_digest(&format!("{host}/acme/api:1.0"), &digest.to_string());
    let saas = tmp.path().join("saas.yaml");
    std::fs::write(&saas, SAAS.replace("REGISTRY", &host)).unwrap();
    let applied = kubectl(
        cluster.kubeconfig_path(),
        &["apply", "-f", saas.to_str().unwrap()],
    );
    assert!(applied.status.success(), "{}", text(&applied));
    wait_running(&cluster);

    // The guide's example expiry is a fixed date: a year from today keeps the test true.
    let next_year = Command::new("date")
        .args(["-u", "-d", "+1 year", "+%F"])
        .output()
        .unwrap();
    let next_year = String::from_utf8_lossy(&next_year.stdout)
        .trim()
        .to_string();
    for argv in &commands {
        let line = argv.join(" ");
        let args: Vec<String> = argv
            .iter()
            .enumerate()
            .skip(1)
            .map(|(i, w)| match w.as_str() {
                _ if argv[i - 1] == "--expires" => next_year.clone(),
                "saas.kubeconfig" => cluster.kubeconfig_path().display().to_string(),
                // The guide's system folder for man pages becomes one in the work folder.
                "/usr/local/share/man/man1" => "man1".to_string(),
                _ => w.replace("registry.vendor.io", &host),
            })
            .collect();
        let expect: &[&str] = match argv[1].as_str() {
            "publish" => &["1.2.0"],
            "version" => &[env!("CARGO_PKG_VERSION")],
            "man" => &[],
            "snapshot" => &["1 images pinned"],
            "lint" => &[],
            "build" => &["shop-0.1.0.airlift"],
            "license" => &["example.lic"],
            other => panic!("the guide shows `{line}`: teach this test to run `{other}`"),
        };
        let out = pack(&args);
        assert_eq!(out.status.code(), Some(0), "`{line}`:\n{}", text(&out));
        let all = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        for e in expect {
            assert!(
                all.contains(e),
                "`{line}` does not show {e:?}:\n{}",
                text(&out)
            );
        }
    }
    // What the commands left behind is what the guide says they write.
    assert!(work.join("example.lic").is_file());
    assert!(work.join("shop/airlift.yaml").is_file());
    assert!(work.join("shop/SNAPSHOT.md").is_file());
    assert!(work.join("dist/shop-0.1.0.airlift").is_file());
    assert!(work.join("man1/airlift-pack.1").is_file());
    let published = registry.raw_manifest("acme/shop:1.2.0");
    assert!(
        String::from_utf8_lossy(&published).contains("application/vnd.airlift.bundle.v1alpha1"),
        "the tag holds the bundle artifact"
    );
}
