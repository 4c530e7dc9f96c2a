//! `airlift-pack build` interrupted (SIGINT) while a layer downloads: the real binary against a
//! real `docker-registry`, the layer slowed down by a fault proxy in front of it.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use airlift_testkit::fault_proxy::{Fault, FaultProxy, Rule, Schedule};
use airlift_testkit::images::sample_set;
use airlift_testkit::registry::TestRegistry;

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn pack_command(dir: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_airlift-pack"));
    c.args(args)
        .env("NO_COLOR", "1")
        .env("XDG_CACHE_HOME", dir.join("xdg-cache"))
        .env("DOCKER_CONFIG", dir.join("no-docker-config"))
        .env_remove("REGISTRY_AUTH_FILE")
        .env_remove("SOURCE_DATE_EPOCH");
    c
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn names_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = match std::fs::read_dir(dir) {
        Ok(entries) => entries
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect(),
        Err(_) => Vec::new(),
    };
    names.sort();
    names
}

/// Polls `check` every 20 ms for up to `secs` seconds.
fn wait_for(secs: u64, what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Waits for `child` to exit (at most `secs` seconds, else kills it and fails).
fn wait_exit(mut child: Child, secs: u64) -> Output {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("the interrupted build did not stop within {secs} s");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

fn definition(dir: &Path, host: &str) -> PathBuf {
    let def = dir.join("def");
    std::fs::create_dir_all(def.join("manifests")).unwrap();
    std::fs::write(
        def.join("airlift.yaml"),
        format!(
            "apiVersion: airlift.dev/v1alpha1
kind: BundleDefinition
metadata:
  name: reg
  version: 1.0.0
  vendor: Acme
requirements:
  kubernetes: \">=1.28.0\"
  platforms: [linux/amd64]
components:
  - name: app
    description: the app
    layer: workload
    manifests: [manifests]
    images:
      - reference: {host}/acme/api:1
"
        ),
    )
    .unwrap();
    std::fs::write(
        def.join("manifests/deploy.yaml"),
        format!(
            "apiVersion: apps/v1
kind: Deployment
metadata:
  name: api
spec:
  selector: {{matchLabels: {{app: api}}}}
  template:
    metadata: {{labels: {{app: api}}}}
    spec:
      containers:
        - {{name: api, image: \"{host}/acme/api:1\"}}
"
        ),
    )
    .unwrap();
    def
}

#[test]
fn an_interrupted_build_removes_its_partial_bundle_and_a_rerun_continues() {
    let dir = tempfile::tempdir().unwrap();
    let registry = TestRegistry::plain();
    let set = sample_set(&dir.path().join("layout"), 31, 2 << 20).unwrap();
    registry.seed(&set.dir, "api", "acme/api:1");
    let base = set.api.layers[0].blob.clone();
    let own = set.api.layers[1].blob.clone();

    // The base layer's first download crawls (100 ms before every body chunk); everything
    // else, and any later download of it, goes at full speed.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let upstream = format!("127.0.0.1:{}", registry.port()).parse().unwrap();
    let proxy = rt.block_on(FaultProxy::start(
        upstream,
        vec![Rule::new(
            Fault::Slow {
                delay: Duration::from_millis(100),
            },
            Schedule::Always,
        )
        .method("GET")
        .path_contains(&base.digest.to_string())
        .max(1)],
    ));
    let host = proxy.host();
    let def = definition(dir.path(), &host);
    let key = {
        let o = pack_command(
            dir.path(),
            &["keygen", "--out", s(&dir.path().join("vendor"))],
        )
        .output()
        .unwrap();
        assert!(o.status.success(), "{}", text(&o));
        dir.path().join("vendor.key")
    };
    let out = dir.path().join("out");
    let cache = dir.path().join("cache");
    let args = [
        "build",
        s(&def),
        "--key",
        s(&key),
        "--out",
        s(&out),
        "--cache-dir",
        s(&cache),
        "--insecure-registry",
        &host,
        "--output",
        "json",
    ];

    let child = pack_command(dir.path(), &args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The bundle is laid out and being filled; the image's own layer is downloaded and kept.
    wait_for(60, "the partial bundle", || {
        names_in(&out)
            .iter()
            .any(|n| n.starts_with(".airlift-partial-"))
    });
    let own_in_cache = cache.join("sha256").join(own.digest.hex());
    wait_for(60, "the small layer in the cache", || own_in_cache.exists());
    assert_eq!(proxy.injected(), 1, "the base layer is being slowed down");
    let status = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let o = wait_exit(child, 30);
    let all = text(&o);

    assert_eq!(o.status.code(), Some(130), "{all}");
    assert!(
        all.contains("interrupted: stopping the build at its next blob"),
        "{all}"
    );
    // Under `--output json` the error is one JSON object on stderr.
    let line = String::from_utf8_lossy(&o.stderr)
        .lines()
        .find(|l| l.starts_with('{'))
        .map(str::to_string)
        .unwrap_or_default();
    let error: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(error["exitCode"], 130, "{all}");
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .starts_with("build interrupted: no bundle was written to"),
        "{all}"
    );
    assert!(
        error["hint"]
            .as_str()
            .unwrap()
            .starts_with("run the same command again: blobs already in the cache"),
        "{all}"
    );
    assert!(
        error["causes"]
            .to_string()
            .contains("was stopped before it was complete"),
        "{all}"
    );
    // Nothing half-done is left: no bundle, no partial file, no temporary cache file, and not
    // the base layer's partial bytes; what was complete stays in the cache.
    assert!(
        names_in(&out).is_empty(),
        "left in the output folder: {all}"
    );
    let cached = names_in(&cache.join("sha256"));
    assert!(
        cached.iter().all(|n| !n.starts_with(".tmp")),
        "temporary cache files left: {cached:?}"
    );
    assert!(!cached.contains(&base.digest.hex().to_string()));
    assert!(own_in_cache.exists());

    // The same command again: only the missing layer is downloaded, and the bundle is written.
    let again = pack_command(dir.path(), &args).output().unwrap();
    assert!(again.status.success(), "{}", text(&again));
    let summary: serde_json::Value = serde_json::from_slice(&again.stdout).unwrap();
    assert_eq!(summary["downloadedBytes"], base.size, "{summary}");
    assert_eq!(names_in(&out), ["reg-1.0.0.airlift"]);
    assert_eq!(proxy.injected(), 1);
}
