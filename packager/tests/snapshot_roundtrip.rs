//! Issue 13, end to end: a sample SaaS applied to test cluster A with kubectl; `airlift-pack
//! snapshot` → `lint` → `build` → `airlift-install install` into test cluster B; the objects in B
//! equal those in A after cleaning, except the documented differences. Planted secret values
//! appear nowhere; a rerun is byte-identical; `drift` names the manager of a `kubectl scale` and
//! a `kubectl edit` with exit code 11, and is in step again after `upgrade`.
//!
//! Also against a real SaaS cluster: when `AIRLIFT_E2E_KUBECONFIG` is set, the same round trip
//! runs a second time with that cluster as A (its images pushed to `AIRLIFT_E2E_REGISTRY`, which
//! its nodes pull from; plain HTTP when `AIRLIFT_E2E_REGISTRY_INSECURE=1`), so the snapshot reads
//! what a real apiserver, controllers and kubelets made of the sample. B stays a test cluster.
//! The real cluster's `shop` namespace and the sample's cluster-scoped objects are deleted before
//! and after: give it a disposable cluster.

// Test helpers outside #[test] functions unwrap too: a failure is the test failing.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use airlift_testkit::cluster::{ClusterOptions, TestCluster};
use airlift_testkit::images::{ImageInfo, LayerSpec, LayoutBuilder};
use airlift_testkit::registry::TestRegistry;
use serde_json::Value;

/// Planted: looks like a password a person chose (becomes a required secret).
const PLANTED_PASSWORD: &str = "planted-Password-Do-Not-Leak-77";
/// Planted: looks random (becomes a generated secret).
const PLANTED_TOKEN: &str = "Zq8rT2mXv9LkP4sNa7BcWd3F";

fn sample(registry: &str) -> String {
    include_str!("fixtures/saas-sample.yaml").replace("REGISTRY", registry)
}

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

fn run(cmd: &mut Command) -> Run {
    let out: Output = cmd.stdin(Stdio::null()).output().expect("runs");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn pack() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_airlift-pack"));
    c.env("NO_COLOR", "1").env_remove("AIRLIFT_CACHE_DIR").env(
        "XDG_CACHE_HOME",
        std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("snapshot-roundtrip-xdg"),
    );
    c
}

/// `airlift-install`, next to `airlift-pack`, brought up to date first (cargo builds nothing
/// when it is fresh), so the test never runs a stale installer.
fn install_bin() -> PathBuf {
    static BUILT: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BUILT
        .get_or_init(|| {
            let pack = PathBuf::from(env!("CARGO_BIN_EXE_airlift-pack"));
            let ok = Command::new(env!("CARGO"))
                .args(["build", "--offline", "-p", "airlift-install"])
                .status()
                .expect("cargo runs")
                .success();
            assert!(ok, "cargo build -p airlift-install");
            pack.with_file_name("airlift-install")
        })
        .clone()
}

fn kubectl(kubeconfig: &Path, args: &[&str]) -> Run {
    run(Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(args))
}

/// Waits (bounded by a number of polls, not a timed assertion) until every container of the
/// namespace's Pods reports an imageID.
fn wait_running(kubeconfig: &Path, ns: &str, polls: u32) {
    for _ in 0..polls {
        let out = kubectl(kubeconfig, &["get", "pods", "-n", ns, "-o", "json"]);
        let v: Value = serde_json::from_str(&out.stdout).unwrap_or(Value::Null);
        let items = v["items"].as_array().cloned().unwrap_or_default();
        let ready = !items.is_empty()
            && items.iter().all(|p| {
                p["status"]["phase"] == "Succeeded"
                    || p["status"]["containerStatuses"]
                        .as_array()
                        .is_some_and(|cs| cs.iter().all(|c| c["imageID"] != ""))
            });
        if ready {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(250));
    }
    panic!("the Pods of {ns} never ran");
}

fn files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let rel = p.strip_prefix(dir).unwrap().to_string_lossy().into_owned();
                out.insert(rel, std::fs::read(&p).unwrap());
            }
        }
    }
    out
}

fn assert_no_planted(what: &str, bytes: &[u8]) {
    use base64::Engine as _;
    for planted in [PLANTED_PASSWORD, PLANTED_TOKEN] {
        let b64 = base64::engine::general_purpose::STANDARD.encode(planted);
        for needle in [planted.to_string(), b64] {
            let found = bytes.windows(needle.len()).any(|w| w == needle.as_bytes());
            assert!(!found, "a planted secret value appears in {what}");
        }
    }
}

/// An object as `kubectl get -o json` shows it, cleaned like the snapshot cleans, minus the
/// documented differences: images (B runs the relocated copy, same digest), Secret data,
/// Airlift's labels and annotations, pull secrets, and cloud items (set to the SaaS values here).
fn normalised(kubeconfig: &Path, kind: &str, ns: Option<&str>, name: &str) -> Value {
    let mut args = vec!["get", kind, name, "-o", "json"];
    if let Some(ns) = ns {
        args.extend(["-n", ns]);
    }
    let out = kubectl(kubeconfig, &args);
    assert_eq!(out.code, 0, "kubectl get {kind} {name}: {}", out.stderr);
    let mut v: Value = serde_json::from_str(&out.stdout).unwrap();
    airlift_snapshot::clean::clean(&mut v);
    strip(&mut v);
    v
}

fn normalised_raw(kubeconfig: &Path, kind: &str, name: &str) -> Value {
    let out = kubectl(kubeconfig, &["get", kind, name, "-n", "shop", "-o", "json"]);
    serde_json::from_str(&out.stdout).unwrap()
}

fn strip(v: &mut Value) {
    match v {
        Value::Object(m) => {
            m.remove("imagePullSecrets");
            m.remove("data");
            m.remove("stringData");
            if m.get("image").is_some_and(Value::is_string) {
                m.insert("image".into(), Value::String("(relocated)".into()));
            }
            for key in ["labels", "annotations"] {
                if let Some(Value::Object(l)) = m.get_mut(key) {
                    l.retain(|k, _| {
                        !k.starts_with("airlift.dev/") && k != "app.kubernetes.io/managed-by"
                    });
                    if l.is_empty() {
                        m.remove(key);
                    }
                }
            }
            for c in m.values_mut() {
                strip(c);
            }
        }
        Value::Array(a) => a.iter_mut().for_each(strip),
        _ => {}
    }
}

/// The sample's cluster-scoped objects, deleted from a real cluster before and after.
const CLUSTER_SCOPED: &[&str] = &[
    "customresourcedefinition/widgets.acme.example.com",
    "clusterrole/shop-reader",
    "clusterrolebinding/shop-reader",
];

/// Cluster A, the SaaS, and the registry its images live in.
struct Saas {
    /// `test-cluster` or `real-cluster`.
    tier: &'static str,
    kubeconfig: PathBuf,
    /// What the SaaS's image references start with: `host[:port][/prefix]`.
    images: String,
    /// `host[:port]` of the image registry when it speaks plain HTTP.
    insecure_host: Option<String>,
    /// The test cluster (test tier only).
    test: Option<TestCluster>,
    /// The loopback registry (test tier only).
    registry: Option<TestRegistry>,
    /// Held while a real-cluster scenario runs.
    _lock: Option<std::fs::File>,
}

impl Saas {
    fn test_tier() -> Self {
        let registry = TestRegistry::plain();
        // Its kubelet resolves the images against the registry, so `imageID` is what was pulled.
        let test =
            TestCluster::start(ClusterOptions::default().insecure_registry(&registry.host()))
                .unwrap();
        Self {
            tier: "test-cluster",
            kubeconfig: test.kubeconfig_path().to_path_buf(),
            images: registry.host(),
            insecure_host: Some(registry.host()),
            test: Some(test),
            registry: Some(registry),
            _lock: None,
        }
    }

    fn real_tier(kubeconfig: PathBuf) -> Self {
        let lock = airlift_testkit::e2e::real_cluster_lock().unwrap();
        let registry = std::env::var("AIRLIFT_E2E_REGISTRY").unwrap_or_else(|_| {
            panic!(
                "AIRLIFT_E2E_KUBECONFIG is set: also set AIRLIFT_E2E_REGISTRY to a registry both \
                 this machine and the cluster's nodes reach (HOST[:PORT][/PREFIX])"
            )
        });
        let insecure = std::env::var("AIRLIFT_E2E_REGISTRY_INSECURE").as_deref() == Ok("1");
        let host = registry.split('/').next().unwrap_or_default().to_string();
        let run = format!("{:x}", std::process::id() ^ now_nanos());
        let saas = Self {
            tier: "real-cluster",
            kubeconfig,
            images: format!("{}/airlift-e2e-snap-{run}", registry.trim_end_matches('/')),
            insecure_host: insecure.then_some(host),
            test: None,
            registry: None,
            _lock: Some(lock),
        };
        saas.clean();
        saas
    }

    /// Deletes the sample from a real cluster (and waits for its namespace to go).
    fn clean(&self) {
        if self.test.is_some() {
            return;
        }
        for args in [
            &[
                "delete",
                "namespace",
                "shop",
                "--ignore-not-found",
                "--wait=true",
                "--timeout=300s",
            ][..],
            &[&["delete", "--ignore-not-found"][..], CLUSTER_SCOPED].concat(),
        ] {
            let out = kubectl(&self.kubeconfig, args);
            assert_eq!(out.code, 0, "cleaning the real cluster: {}", out.stderr);
        }
    }

    /// Puts `tag` of the layout at `repo:tag_name` in the SaaS's registry; returns its digest.
    fn seed(&self, layout: &Path, tag: &str, image: &ImageInfo, target: &str) -> String {
        if let Some(registry) = &self.registry {
            return registry.seed(layout, tag, target).to_string();
        }
        let mut c = Command::new("skopeo");
        c.args(["copy", "--quiet", "--preserve-digests"]);
        if self.insecure_host.is_some() {
            c.arg("--dest-tls-verify=false");
        }
        let out = run(c
            .arg(format!("oci:{}:{tag}", layout.display()))
            .arg(format!("docker://{}/{target}", self.images)));
        assert_eq!(
            out.code, 0,
            "skopeo copy to {}: {}",
            self.images, out.stderr
        );
        image.manifest.digest.to_string()
    }

    /// Polls for the Pods to run: briefly on the test cluster, up to 5 minutes on a real one.
    fn polls(&self) -> u32 {
        if self.test.is_some() {
            200
        } else {
            1200
        }
    }
}

impl Drop for Saas {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            self.clean();
        }
    }
}

fn now_nanos() -> u32 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or_default()
}

/// The SaaS tiers: the test cluster, then a real one when `AIRLIFT_E2E_KUBECONFIG` is set.
fn saas_tiers() -> Vec<Saas> {
    let mut out = vec![Saas::test_tier()];
    match std::env::var_os("AIRLIFT_E2E_KUBECONFIG").filter(|v| !v.is_empty()) {
        Some(kc) => out.push(Saas::real_tier(PathBuf::from(kc))),
        None => eprintln!(
            "note: AIRLIFT_E2E_KUBECONFIG is not set: the real-cluster tier is skipped; the \
             test-cluster tier runs"
        ),
    }
    out
}

#[test]
fn issue_13_snapshot_round_trip_secrets_rerun_and_drift() {
    for saas in saas_tiers() {
        eprintln!(
            "tier: SaaS cluster A on the {}, cluster B on a test cluster",
            saas.tier
        );
        round_trip(&saas);
    }
}

fn round_trip(saas: &Saas) {
    let tmp = tempfile::tempdir().unwrap();
    let host = saas.images.clone();

    // The SaaS's images, in the SaaS's registry.
    let layout = tmp.path().join("layout");
    let mut b = LayoutBuilder::create(&layout).unwrap();
    let api = b
        .image("linux/amd64", &[LayerSpec::new(1, 32 << 10)])
        .unwrap();
    b.tag("api", &api.descriptor());
    let worker = b
        .image("linux/amd64", &[LayerSpec::new(2, 32 << 10)])
        .unwrap();
    b.tag("worker", &worker.descriptor());
    b.finish().unwrap();
    let api_digest = saas.seed(&layout, "api", &api, "acme/api:1.0");
    let worker_digest = saas.seed(&layout, "worker", &worker, "acme/worker:2.0");

    let a_kc = saas.kubeconfig.as_path();
    // B pulls from the site's registry: the relocated images must really be there.
    let site_registry = TestRegistry::plain();
    let b_cluster =
        TestCluster::start(ClusterOptions::default().insecure_registry(&site_registry.host()))
            .unwrap();
    let crd_file = tmp.path().join("crd.yaml");
    std::fs::write(&crd_file, include_str!("fixtures/saas-crd.yaml")).unwrap();
    let applied = kubectl(a_kc, &["apply", "-f", crd_file.to_str().unwrap()]);
    assert_eq!(applied.code, 0, "kubectl apply: {}", applied.stderr);
    let established = kubectl(
        a_kc,
        &[
            "wait",
            "--for=condition=Established",
            "crd/widgets.acme.example.com",
            "--timeout=60s",
        ],
    );
    assert_eq!(established.code, 0, "{}", established.stderr);
    let sample_file = tmp.path().join("saas.yaml");
    std::fs::write(&sample_file, sample(&host)).unwrap();
    let applied = kubectl(a_kc, &["apply", "-f", sample_file.to_str().unwrap()]);
    assert_eq!(applied.code, 0, "kubectl apply: {}", applied.stderr);
    wait_running(a_kc, "shop", saas.polls());

    // Snapshot, twice: the same bytes.
    let def = tmp.path().join("def");
    let snap = |output: &str| {
        run(pack()
            .args(["snapshot", "--kubeconfig"])
            .arg(a_kc)
            .args([
                "-n", "shop", "--name", "shop", "--vendor", "Acme", "--output", output, "--out",
            ])
            .arg(&def))
    };
    let first = snap("text");
    assert_eq!(first.code, 0, "{}\n{}", first.stdout, first.stderr);
    let before = files(&def);
    let second = snap("json");
    assert_eq!(second.code, 0, "{}", second.stderr);
    assert_eq!(
        before,
        files(&def),
        "a rerun on an unchanged SaaS changed files"
    );
    let report: Value = serde_json::from_str(&second.stdout).unwrap();
    eprintln!("[{}] snapshot:\n{}", saas.tier, first.stdout);

    // What was taken and skipped.
    let taken: Vec<&str> = report["taken"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["object"].as_str().unwrap())
        .collect();
    for want in [
        "Deployment shop/api",
        "StatefulSet shop/db",
        "CronJob shop/report",
        "Service shop/public",
        "Ingress shop/web",
        "ConfigMap shop/api-config",
        "Secret shop/db-credentials",
        "ServiceAccount shop/api",
        "Role shop/api",
        "RoleBinding shop/api",
        "ClusterRole shop-reader",
        "ClusterRoleBinding shop-reader",
        "CustomResourceDefinition widgets.acme.example.com",
        "Widget shop/main",
    ] {
        assert!(taken.contains(&want), "{want} not taken: {taken:?}");
    }
    let skipped = &report["skipped"];
    assert!(!skipped["owned by a controller"]
        .as_array()
        .unwrap()
        .is_empty());
    assert!(
        skipped["pods (run by a controller or the kubelet)"]
            .as_array()
            .unwrap()
            .len()
            >= 3
    );
    assert!(
        skipped["the default ServiceAccount"]
            .as_array()
            .unwrap()
            .len()
            == 1
    );
    assert!(skipped["claims created from a StatefulSet's volumeClaimTemplates"].is_array());
    let keys: BTreeMap<String, Value> = report["params"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["key"].as_str().unwrap().to_string(), p.clone()))
        .collect();
    assert_eq!(keys["deployment_api.replicas"]["saasValue"], "2");
    assert_eq!(keys["deployment_api.api_log_level"]["saasValue"], "info");
    assert_eq!(
        keys["secrets.db_credentials_password"]["secretMode"],
        "required"
    );
    assert_eq!(
        keys["secrets.db_credentials_token"]["secretMode"],
        "generated"
    );
    assert_eq!(keys["serviceaccount_api.role_arn"]["kind"], "cloud");
    assert_eq!(
        report["images"][format!("{host}/acme/api:1.0")],
        format!("{host}/acme/api:1.0@{api_digest}")
    );
    assert_eq!(
        report["images"][format!("{host}/acme/worker:2.0")],
        format!("{host}/acme/worker:2.0@{worker_digest}")
    );

    // Lint and build.
    let lint = run(pack().arg("lint").arg(&def));
    assert_eq!(lint.code, 0, "lint: {}\n{}", lint.stdout, lint.stderr);
    let keygen = run(pack()
        .args(["keygen", "--out"])
        .arg(tmp.path().join("vendor")));
    assert_eq!(keygen.code, 0, "{}", keygen.stderr);
    let dist = tmp.path().join("dist");
    let build = run(pack()
        .arg("build")
        .arg(&def)
        .arg("--key")
        .arg(tmp.path().join("vendor.key"))
        .arg("--out")
        .arg(&dist)
        .arg("--cache-dir")
        .arg(tmp.path().join("cache"))
        .args(
            saas.insecure_host
                .iter()
                .flat_map(|h| ["--insecure-registry", h.as_str()]),
        ));
    assert_eq!(build.code, 0, "build: {}\n{}", build.stdout, build.stderr);
    let bundle = dist.join("shop-0.1.0.airlift");

    // Install into B, the cloud items set to the SaaS values, the required secret by the site.
    let mut sets: Vec<String> = Vec::new();
    for (k, p) in &keys {
        if p["kind"] == "cloud" {
            sets.push(format!("{k}={}", p["saasValue"].as_str().unwrap()));
        }
    }
    sets.push("secrets.db_credentials_password=site-own-password-123".into());
    let state = tmp.path().join("state");
    let install = |cmd: &str| {
        let mut c = Command::new(install_bin());
        c.arg(cmd)
            .arg(&bundle)
            .arg("--key")
            .arg(tmp.path().join("vendor.pub"))
            .args([
                "--registry",
                &site_registry.host(),
                "--insecure-registry",
                &site_registry.host(),
                "--timeout",
                "2m",
                "--yes",
            ])
            .env("NO_COLOR", "1")
            .env("KUBECONFIG", b_cluster.kubeconfig_path())
            .env("AIRLIFT_STATE_DIR", &state);
        for s in &sets {
            c.args(["--set", s]);
        }
        run(&mut c)
    };
    let installed = install("install");
    assert_eq!(
        installed.code, 0,
        "install: {}\n{}",
        installed.stdout, installed.stderr
    );

    // B equals A, after cleaning, but for the documented differences.
    for t in report["taken"].as_array().unwrap() {
        let object = t["object"].as_str().unwrap();
        let (kind, rest) = object.split_once(' ').unwrap();
        let (ns, name) = match rest.split_once('/') {
            Some((ns, name)) => (Some(ns), name),
            None => (None, rest),
        };
        let kind = if kind == "Widget" {
            "widgets.acme.example.com"
        } else {
            kind
        };
        let in_a = normalised(a_kc, kind, ns, name);
        let in_b = normalised(b_cluster.kubeconfig_path(), kind, ns, name);
        assert_eq!(
            in_a, in_b,
            "[{}] {object} differs between A and B",
            saas.tier
        );
    }

    let live_api = normalised_raw(b_cluster.kubeconfig_path(), "deployment", "api");
    let image = live_api["spec"]["template"]["spec"]["containers"][0]["image"]
        .as_str()
        .unwrap();
    assert!(
        image.starts_with(&site_registry.host()) && image.ends_with(&api_digest),
        "{image}"
    );

    // The planted secrets: nowhere.
    for (f, bytes) in files(&def) {
        assert_no_planted(&f, &bytes);
    }
    assert_no_planted("the bundle", &std::fs::read(&bundle).unwrap());
    for (what, r) in [
        ("snapshot", &first),
        ("snapshot --output json", &second),
        ("lint", &lint),
        ("build", &build),
        ("install", &installed),
    ] {
        assert_no_planted(what, r.stdout.as_bytes());
        assert_no_planted(what, r.stderr.as_bytes());
    }

    // Drift: in step, then `kubectl scale` and `kubectl edit` on B, then in step after upgrade.
    let drift = |output: &str| {
        run(Command::new(install_bin())
            .args(["drift", "shop", "-n", "shop", "--output", output])
            .env("NO_COLOR", "1")
            .env("KUBECONFIG", b_cluster.kubeconfig_path()))
    };
    let clean_run = drift("text");
    assert_eq!(
        clean_run.code, 0,
        "{}\n{}",
        clean_run.stdout, clean_run.stderr
    );
    assert!(clean_run.stdout.contains("in step"), "{}", clean_run.stdout);
    let kc = b_cluster.kubeconfig_path();
    let scaled = kubectl(
        kc,
        &["scale", "deployment/api", "-n", "shop", "--replicas=5"],
    );
    assert_eq!(scaled.code, 0, "{}", scaled.stderr);
    let editor = tmp.path().join("editor.sh");
    std::fs::write(
        &editor,
        "#!/bin/sh\nsed -i 's/LOG_LEVEL: info/LOG_LEVEL: debug/' \"$1\"\n",
    )
    .unwrap();
    std::fs::set_permissions(&editor, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let edited = run(Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(kc)
        .args(["edit", "configmap/api-config", "-n", "shop"])
        .env("KUBE_EDITOR", &editor));
    assert_eq!(
        edited.code, 0,
        "kubectl edit: {}\n{}",
        edited.stdout, edited.stderr
    );
    let drifted = drift("text");
    assert_eq!(drifted.code, 11, "{}\n{}", drifted.stdout, drifted.stderr);
    assert!(
        drifted
            .stdout
            .contains("/spec/replicas: 2 -> 5  by kubectl"),
        "{}",
        drifted.stdout
    );
    assert!(
        drifted
            .stdout
            .contains("/data/LOG_LEVEL: info -> debug  by kubectl-edit (Update)"),
        "{}",
        drifted.stdout
    );
    let json = drift("json");
    assert_eq!(json.code, 11);
    let j: Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(j["inStep"], false);

    let upgraded = install("upgrade");
    assert_eq!(
        upgraded.code, 0,
        "upgrade: {}\n{}",
        upgraded.stdout, upgraded.stderr
    );
    let after = drift("text");
    assert_eq!(after.code, 0, "{}\n{}", after.stdout, after.stderr);
}
