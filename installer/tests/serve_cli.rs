//! `airlift-install serve` as the real binary: it verifies the bundle, then skopeo pulls every
//! image out of it by tag, with the digests the bundle records.

#![allow(clippy::unwrap_used)]

mod push_support;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use airlift_testkit::registry::run_skopeo;
use push_support::*;

struct Killed(std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn skopeo_pulls_every_image_from_a_served_bundle() {
    let e = env(512 << 10);
    let child = Command::new(env!("CARGO_BIN_EXE_airlift-install"))
        .args([
            "serve",
            s(&e.bundle),
            "--key",
            s(&e.key),
            "--listen",
            "127.0.0.1:0",
            "--no-progress",
        ])
        .env("AIRLIFT_STATE_DIR", e.dir.path().join("state"))
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut child = Killed(child);
    let mut lines = BufReader::new(child.0.stdout.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    let addr = first
        .split("http://")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .unwrap_or_else(|| panic!("no address in `{first}`"))
        .to_string();
    let cases = [
        ("acme/api:1.0", &e.set.api.manifest.digest),
        ("acme/worker:1.0", &e.set.worker.manifest.digest),
        ("acme/multi:1.0", &e.set.multi.index.digest),
        ("acme/arm-only:1.0", &e.set.arm_only.manifest.digest),
    ];
    for (i, (reference, digest)) in cases.iter().enumerate() {
        let out = e.dir.path().join(format!("pulled-{i}"));
        run_skopeo(&[
            "--insecure-policy".into(),
            "copy".into(),
            "--all".into(),
            "--preserve-digests".into(),
            "--src-tls-verify=false".into(),
            "--src-no-creds".into(),
            format!("docker://{addr}/{reference}"),
            format!("oci:{}:x", out.display()),
        ]);
        let index: serde_json::Value =
            serde_json::from_slice(&std::fs::read(out.join("index.json")).unwrap()).unwrap();
        assert_eq!(
            index["manifests"][0]["digest"],
            digest.to_string(),
            "{reference}"
        );
    }
    // The listing names each image.
    let rest: Vec<String> = lines.take(4).map(Result::unwrap).collect();
    assert!(
        rest.iter().any(|l| l.contains("/acme/multi:1.0")),
        "{rest:?}"
    );
}
