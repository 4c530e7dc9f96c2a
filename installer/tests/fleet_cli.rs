//! `airlift-install fleet` through the real binary, over five test clusters (one canary stage of
//! one, then two stages of two) and a real docker-registry: a broken canary is rolled back and
//! halts the rollout with the other four untouched; a good version reaches all five; a rollout
//! killed with SIGKILL in stage two finishes on a rerun without touching the clusters already
//! done; bake time holds the next stage and a failing HTTP gate rolls the canary back. Every
//! "untouched" is asserted on the clusters' own request logs.
//!
//! Test-cluster tier only: the request-log assertions need the test cluster's log, and five
//! real clusters are not available here.

#![allow(clippy::unwrap_used)]

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use airlift_testkit::bundles::{ShopBundles, ShopVersion};
use airlift_testkit::cluster::{ClusterOptions, FailureMode, TestCluster};
use airlift_testkit::registry::TestRegistry;

const NAMES: [&str; 5] = ["canary", "eu-1", "eu-2", "us-1", "us-2"];

/// Five clusters, one registry, signed bundles.
struct Estate {
    clusters: Vec<TestCluster>,
    registry: TestRegistry,
    bundles: ShopBundles,
    key: PathBuf,
    dir: tempfile::TempDir,
}

/// A worker Deployment the broken version adds; the clusters fail its image pulls.
const WORKER: &str = "\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: worker
spec:
  replicas: 1
  selector:
    matchLabels: {app: worker}
  template:
    metadata:
      labels: {app: worker}
    spec:
      containers:
        - name: worker
          image: registry.example.com/acme/api:1.0
";

impl Estate {
    fn start(ready_delay: Duration) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let bundles = ShopBundles::new(dir.path()).unwrap();
        let key = bundles.public_key().unwrap();
        let clusters = NAMES
            .iter()
            .map(|_| {
                TestCluster::start(ClusterOptions::default().with_ready_delay(ready_delay)).unwrap()
            })
            .collect();
        Self {
            clusters,
            registry: TestRegistry::plain(),
            bundles,
            key,
            dir,
        }
    }

    fn bundle(&self, v: &ShopVersion) -> PathBuf {
        self.bundles.write(v).unwrap()
    }

    /// Writes a fleet file; `canary` is extra YAML for the canary stage (indented 6).
    fn fleet(&self, file: &str, canary: &str) -> PathBuf {
        let mut y = String::from(
            "apiVersion: airlift.dev/v1alpha1\nkind: Fleet\nmetadata:\n  name: test-estate\n\
             defaults:\n  release: shop\nclusters:\n",
        );
        for (i, name) in NAMES.iter().enumerate() {
            let labels = match i {
                0 => "{tier: canary}",
                1 | 2 => "{tier: prod, wave: one}",
                _ => "{tier: prod, wave: two}",
            };
            y.push_str(&format!(
                "  - name: {name}\n    kubeconfig: {}\n    labels: {labels}\n    \
                 registry: {{destination: {}/acme, insecure: true}}\n",
                self.clusters[i].kubeconfig_path().display(),
                self.registry.host()
            ));
        }
        y.push_str(&format!(
            "rollout:\n  timeout: 20s\n  gateInterval: 1s\n  stages:\n\
             \x20   - name: canary\n      selector: {{tier: canary}}\n{canary}\
             \x20   - name: wave-1\n      selector: {{wave: one}}\n      maxParallel: 2\n\
             \x20   - name: wave-2\n      selector: {{wave: two}}\n      maxParallel: 2\n"
        ));
        let path = self.dir.path().join(file);
        std::fs::write(&path, y).unwrap();
        path
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_airlift-install"));
        c.args(args)
            .env("NO_COLOR", "1")
            .env("AIRLIFT_STATE_DIR", self.dir.path().join("state"))
            .env_remove("KUBECONFIG")
            .stdin(Stdio::null());
        c
    }

    fn rollout_args<'a>(&'a self, fleet: &'a Path, bundle: &'a Path) -> Vec<&'a str> {
        vec![
            "fleet",
            "rollout",
            fleet.to_str().unwrap(),
            bundle.to_str().unwrap(),
            "--key",
            self.key.to_str().unwrap(),
        ]
    }

    fn rollout(&self, fleet: &Path, bundle: &Path) -> Output {
        self.command(&self.rollout_args(fleet, bundle))
            .output()
            .unwrap()
    }

    fn status(&self, fleet: &Path) -> serde_json::Value {
        let out = self
            .command(&[
                "fleet",
                "status",
                fleet.to_str().unwrap(),
                "--output",
                "json",
            ])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", text(&out));
        serde_json::from_slice(&out.stdout).unwrap()
    }

    /// How many requests each cluster has received so far.
    fn marks(&self) -> Vec<usize> {
        self.clusters.iter().map(|c| c.requests().len()).collect()
    }

    /// Every request cluster `i` received since `mark`.
    fn since(&self, i: usize, mark: usize) -> Vec<String> {
        self.clusters[i].requests()[mark..]
            .iter()
            .map(|r| format!("{} {}", r.method, r.path))
            .collect()
    }

    /// The writes cluster `i` received since `mark` (access reviews and dry runs are reads).
    fn writes(&self, i: usize, mark: usize) -> Vec<String> {
        self.clusters[i].requests()[mark..]
            .iter()
            .filter(|r| {
                r.method != "GET" && !r.path.contains("selfsubject") && !r.query.contains("dryRun")
            })
            .map(|r| format!("{} {}", r.method, r.path))
            .collect()
    }
}

fn text(out: &Output) -> String {
    format!(
        "exit {:?}\n--- stdout\n{}--- stderr\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn version_of(status: &serde_json::Value, cluster: &str) -> String {
    status["clusters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["cluster"] == cluster)
        .and_then(|c| c["version"].as_str())
        .unwrap_or("-")
        .to_string()
}

fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(180);
    while !done() {
        assert!(Instant::now() < deadline, "gave up waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_broken_canary_is_rolled_back_and_halts_then_a_good_version_reaches_all_five() {
    let estate = Estate::start(Duration::from_millis(300));
    let fleet = estate.fleet("fleet.yaml", "");
    let v1 = estate.bundle(&ShopVersion::new("0.1.0"));
    let out = estate.rollout(&fleet, &v1);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("5 of 5 clusters at 0.1.0"),
        "{}",
        text(&out)
    );

    // The broken version adds a worker whose image cannot be pulled, on every cluster.
    let mut broken = ShopVersion::new("0.2.0-rc.1");
    broken.extra = WORKER.to_string();
    let broken = estate.bundle(&broken);
    for c in &estate.clusters {
        c.fail_workload("worker", FailureMode::ImagePullBackOff);
    }
    let mark = estate.marks();
    let out = estate.rollout(&fleet, &broken);
    assert_eq!(out.status.code(), Some(10), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("halted in stage `canary`")
            && stderr.contains("cluster `canary`")
            && stderr.contains("ImagePullBackOff"),
        "{}",
        text(&out)
    );
    assert!(
        stderr.contains("run the same `fleet rollout` again"),
        "{stderr}"
    );
    assert!(
        !estate.writes(0, mark[0]).is_empty(),
        "the canary was upgraded"
    );
    for i in 1..5 {
        assert_eq!(
            estate.since(i, mark[i]),
            Vec::<String>::new(),
            "{} was contacted after the canary failed",
            NAMES[i]
        );
    }
    let status = estate.status(&fleet);
    assert_eq!(version_of(&status, "canary"), "0.1.0", "{status}");
    assert_eq!(status["summary"], "5 of 5 clusters at 0.1.0", "{status}");
    assert!(
        estate.clusters[0]
            .object("apps", "deployments", "shop", "worker")
            .is_none(),
        "the rollback removed the broken worker"
    );

    let v2 = estate.bundle(&ShopVersion::new("0.2.0"));
    let out = estate.rollout(&fleet, &v2);
    assert!(out.status.success(), "{}", text(&out));
    let status = estate.status(&fleet);
    assert_eq!(status["summary"], "5 of 5 clusters at 0.2.0", "{status}");
    let plain = estate
        .command(&["fleet", "status", fleet.to_str().unwrap()])
        .output()
        .unwrap();
    let plain = String::from_utf8_lossy(&plain.stdout);
    assert!(plain.contains("5 of 5 clusters at 0.2.0"), "{plain}");
    assert!(plain.contains("clean"), "drift is shown: {plain}");
}

#[test]
fn a_rollout_killed_in_stage_two_finishes_on_a_rerun_without_touching_done_clusters() {
    // Pods take 1.5 s to become ready, so the kill lands while wave-1 is upgrading.
    let estate = Estate::start(Duration::from_millis(1500));
    let fleet = estate.fleet("fleet.yaml", "");
    let v1 = estate.bundle(&ShopVersion::new("0.1.0"));
    let out = estate.rollout(&fleet, &v1);
    assert!(out.status.success(), "{}", text(&out));

    let v2 = estate.bundle(&ShopVersion::new("0.2.0"));
    let mark = estate.marks();
    let mut child = estate
        .command(&estate.rollout_args(&fleet, &v2))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for("a write to a wave-1 cluster", || {
        !estate.writes(1, mark[1]).is_empty() || !estate.writes(2, mark[2]).is_empty()
    });
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();

    let killed = estate.marks();
    assert!(!estate.writes(0, mark[0]).is_empty(), "the canary was done");
    for i in 3..5 {
        assert!(
            estate.writes(i, mark[i]).is_empty(),
            "{} was touched before stage two ended",
            NAMES[i]
        );
    }

    let out = estate.rollout(&fleet, &v2);
    assert!(out.status.success(), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("5 of 5 clusters at 0.2.0"), "{stdout}");
    assert_eq!(
        estate.writes(0, killed[0]),
        Vec::<String>::new(),
        "the rerun wrote to the canary, which was already done"
    );
    let canary_line = stdout.lines().find(|l| l.contains(" canary ")).unwrap();
    assert!(canary_line.contains("current"), "{stdout}");
    for i in 3..5 {
        assert!(
            !estate.writes(i, killed[i]).is_empty(),
            "{} was upgraded by the rerun",
            NAMES[i]
        );
    }
    let status = estate.status(&fleet);
    assert_eq!(status["summary"], "5 of 5 clusters at 0.2.0", "{status}");
}

/// A health endpoint that answers 200, or 503 once told to fail; counts requests per path.
struct Gate {
    port: u16,
    failing: Arc<AtomicBool>,
    hits: Arc<AtomicUsize>,
}

impl Gate {
    fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let failing = Arc::new(AtomicBool::new(false));
        let hits = Arc::new(AtomicUsize::new(0));
        let (f, h) = (failing.clone(), hits.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut s) = stream else { continue };
                let mut buf = [0u8; 4096];
                let _ = s.read(&mut buf);
                h.fetch_add(1, Ordering::SeqCst);
                let status = if f.load(Ordering::SeqCst) {
                    "503 Service Unavailable"
                } else {
                    "200 OK"
                };
                let _ = write!(
                    s,
                    "HTTP/1.1 {status}\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok"
                );
            }
        });
        Self {
            port,
            failing,
            hits,
        }
    }
}

#[test]
fn bake_time_holds_the_next_stage_and_a_failing_http_gate_rolls_the_canary_back() {
    let estate = Estate::start(Duration::from_millis(300));
    let plain = estate.fleet("fleet.yaml", "");
    let v1 = estate.bundle(&ShopVersion::new("0.1.0"));
    let out = estate.rollout(&plain, &v1);
    assert!(out.status.success(), "{}", text(&out));

    let gate = Gate::start();
    let baked = estate.fleet(
        "baked.yaml",
        &format!(
            "      bakeTime: 10m\n      gates:\n        http:\n          \
             - url: http://127.0.0.1:{}/healthz/{{cluster}}\n",
            gate.port
        ),
    );
    let v2 = estate.bundle(&ShopVersion::new("0.2.0"));
    let mark = estate.marks();
    let child = estate
        .command(&estate.rollout_args(&baked, &v2))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The first check follows the canary's upgrade; the next ones come while it bakes.
    wait_for("gate checks during the bake", || {
        gate.hits.load(Ordering::SeqCst) >= 3
    });
    for i in 1..5 {
        assert_eq!(
            estate.since(i, mark[i]),
            Vec::<String>::new(),
            "{} was contacted while the canary baked",
            NAMES[i]
        );
    }
    gate.failing.store(true, Ordering::SeqCst);
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(10), "{}", text(&out));
    let all = text(&out);
    assert!(
        all.contains("HTTP gate") && all.contains("answered 503") && all.contains("rolled back"),
        "{all}"
    );
    assert!(all.contains("baking"), "the bake timer is shown: {all}");
    for i in 1..5 {
        assert_eq!(
            estate.since(i, mark[i]),
            Vec::<String>::new(),
            "{} was contacted after the gate failed",
            NAMES[i]
        );
    }
    let status = estate.status(&plain);
    assert_eq!(version_of(&status, "canary"), "0.1.0", "{status}");
}

#[test]
fn plan_shows_every_cluster_and_changes_nothing() {
    let estate = Estate::start(Duration::from_millis(300));
    let fleet = estate.fleet("fleet.yaml", "");
    let v1 = estate.bundle(&ShopVersion::new("0.1.0"));
    let mark = estate.marks();
    let out = estate
        .command(&[
            "fleet",
            "plan",
            fleet.to_str().unwrap(),
            v1.to_str().unwrap(),
            "--key",
            estate.key.to_str().unwrap(),
            "--output",
            "json",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let plan: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let clusters = plan["clusters"].as_array().unwrap();
    assert_eq!(clusters.len(), 5);
    for c in clusters {
        assert!(c["error"].is_null(), "{c}");
        assert!(c["counts"]["create"].as_u64().unwrap() > 0, "{c}");
        assert_eq!(c["preflight"], serde_json::json!([]), "{c}");
        assert_eq!(c["server"]["supported"], true, "{c}");
    }
    for i in 0..5 {
        assert_eq!(
            estate.writes(i, mark[i]),
            Vec::<String>::new(),
            "plan wrote to {}",
            NAMES[i]
        );
    }
    // A bundle whose Kubernetes range excludes a cluster is refused, naming it.
    estate.clusters[3].set_version("1.27.3");
    let out = estate
        .command(&[
            "fleet",
            "plan",
            fleet.to_str().unwrap(),
            v1.to_str().unwrap(),
            "--key",
            estate.key.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(7), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("us-1 (v1.27.3)"),
        "{}",
        text(&out)
    );
}

#[test]
fn ctrl_c_starts_no_new_cluster_exits_130_and_a_rerun_finishes() {
    // Pods take 1.5 s to become ready, so SIGINT lands while the canary is being upgraded.
    let estate = Estate::start(Duration::from_millis(1500));
    let fleet = estate.fleet("fleet.yaml", "");
    let v1 = estate.bundle(&ShopVersion::new("0.1.0"));
    let out = estate.rollout(&fleet, &v1);
    assert!(out.status.success(), "{}", text(&out));

    let v2 = estate.bundle(&ShopVersion::new("0.2.0"));
    let mark = estate.marks();
    let child = estate
        .command(&estate.rollout_args(&fleet, &v2))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for("a write to the canary", || {
        !estate.writes(0, mark[0]).is_empty()
    });
    let status = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130), "{}", text(&out));
    for i in 1..5 {
        assert_eq!(
            estate.since(i, mark[i]),
            Vec::<String>::new(),
            "{} was started after Ctrl-C",
            NAMES[i]
        );
    }
    let out = estate.rollout(&fleet, &v2);
    assert!(out.status.success(), "{}", text(&out));
    let status = estate.status(&fleet);
    assert_eq!(status["summary"], "5 of 5 clusters at 0.2.0", "{status}");
}

/// The registry requests of `method` for blobs (`HEAD`/`GET` of `/blobs/sha256:…`, or the
/// committing `PUT` of an upload, whose digest is in its query), counted per digest.
fn blob_requests(log: &str, method: &str) -> std::collections::BTreeMap<String, usize> {
    let mut counts = std::collections::BTreeMap::new();
    for line in log.lines() {
        let Some(start) = line.find(&format!("\"{method} /v2/")) else {
            continue;
        };
        let request = line[start..].replace("%3A", ":");
        let digest = match (
            request.find("/blobs/sha256:"),
            request.find("digest=sha256"),
        ) {
            (_, Some(q)) => &request[q + "digest=".len()..],
            (Some(b), None) => &request[b + "/blobs/".len()..],
            _ => continue,
        };
        let digest: String = digest
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == ':')
            .collect();
        *counts.entry(digest).or_insert(0) += 1;
    }
    counts
}

#[test]
fn clusters_sharing_a_registry_get_the_images_pushed_once() {
    let mut estate = Estate::start(Duration::from_millis(100));
    estate.registry = TestRegistry::plain_logged();
    let mut y = String::from(
        "apiVersion: airlift.dev/v1alpha1\nkind: Fleet\nmetadata:\n  name: shared\n\
         defaults:\n  release: shop\nclusters:\n",
    );
    for (i, name) in NAMES.iter().enumerate() {
        y.push_str(&format!(
            "  - name: {name}\n    kubeconfig: {}\n    labels: {{tier: prod}}\n    \
             registry: {{destination: {}/acme, insecure: true}}\n",
            estate.clusters[i].kubeconfig_path().display(),
            estate.registry.host()
        ));
    }
    y.push_str(
        "rollout:\n  timeout: 20s\n  stages:\n    - name: all\n      selector: {tier: prod}\n      \
         maxParallel: 5\n",
    );
    let fleet = estate.dir.path().join("shared.yaml");
    std::fs::write(&fleet, y).unwrap();
    let v1 = estate.bundle(&ShopVersion::new("0.1.0"));
    let out = estate.rollout(&fleet, &v1);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("5 of 5 clusters at 0.1.0"),
        "{}",
        text(&out)
    );

    // Five clusters upgraded at once, one registry: every blob was looked up and sent once.
    let log = estate.registry.log();
    let heads = blob_requests(&log, "HEAD");
    let commits = blob_requests(&log, "PUT");
    assert!(!commits.is_empty(), "no blob upload in the log:\n{log}");
    for (digest, n) in commits.iter().chain(heads.iter()) {
        assert_eq!(*n, 1, "{digest} was requested {n} times:\n{log}");
    }
}
