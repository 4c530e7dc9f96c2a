//! A signed bundle of the testkit sample set, and helpers to run `airlift-install push`.
#![allow(dead_code, clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use airlift_bundle::schema::config::ConfigSchema;
use airlift_bundle::DirBlobStore;
use airlift_testkit::images::{sample_set, SampleSet};
use airlift_testkit::registry::TestRegistry;

#[path = "../support/mod.rs"]
mod support;

pub struct Env {
    pub dir: tempfile::TempDir,
    pub bundle: PathBuf,
    pub key: PathBuf,
    pub set: SampleSet,
}

/// A signed bundle of the sample set with a `base_size`-byte shared base layer.
pub fn env(base_size: u64) -> Env {
    let dir = tempfile::tempdir().unwrap();
    let set = sample_set(&dir.path().join("layout"), 42, base_size).unwrap();
    let store = DirBlobStore::open(set.dir.join("blobs")).unwrap();
    let components = vec![support::component(
        "api",
        support::sample_images(&set),
        vec![],
    )];
    let m = support::manifest("demo", components, ConfigSchema { groups: vec![] });
    let written = support::write(dir.path(), m, vec![], &store, true);
    Env {
        dir,
        bundle: written.bundle,
        key: written.key,
        set,
    }
}

/// The repositories and tags of the bundle, as pushed with no prefix.
pub const TAGS: [&str; 4] = [
    "acme/api:1.0",
    "acme/worker:1.0",
    "acme/multi:1.0",
    "acme/arm-only:1.0",
];

pub use support::s;

/// `airlift-install push` against `reg`, with the right trust and access flags plus `extra`.
pub fn push_cmd(e: &Env, reg: &TestRegistry, extra: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_airlift-install"));
    c.args([
        "push",
        s(&e.bundle),
        "--key",
        s(&e.key),
        "--registry",
        &reg.host(),
        "--no-progress",
    ])
    .env("NO_COLOR", "1")
    .env("AIRLIFT_STATE_DIR", e.dir.path().join("state"))
    .env("DOCKER_CONFIG", e.dir.path().join("no-docker-config"))
    .env("REGISTRY_AUTH_FILE", e.dir.path().join("no-auth.json"))
    .env_remove("AIRLIFT_REGISTRY_PASSWORD");
    match reg.ca_pem() {
        Some(ca) => {
            c.args(["--registry-ca", s(ca)]);
        }
        None => {
            c.args(["--insecure-registry", &reg.host()]);
        }
    }
    if let Some((u, p)) = reg.credentials() {
        c.args(["--registry-user", u])
            .env("AIRLIFT_REGISTRY_PASSWORD", p);
    }
    c.args(extra);
    c
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Skopeo inspect of `repo_tag`: true when the tag exists.
pub fn tag_exists(reg: &TestRegistry, repo_tag: &str) -> bool {
    let mut args = vec![
        "--insecure-policy".to_string(),
        "inspect".into(),
        "--raw".into(),
        "--retry-times=0".into(),
    ];
    for f in reg.skopeo_flags("src") {
        args.push(f.replacen("--src-", "--", 1));
    }
    args.push(format!("docker://{}/{repo_tag}", reg.host()));
    Command::new("skopeo")
        .args(&args)
        .output()
        .unwrap()
        .status
        .success()
}

/// Every tag that exists can be pulled whole by skopeo (no tag points at something incomplete).
pub fn existing_tags_are_complete(reg: &TestRegistry, scratch: &Path) -> usize {
    let mut n = 0;
    for t in TAGS {
        if tag_exists(reg, t) {
            let out = scratch.join(format!(
                "check-{}-{}",
                t.replace([':', '/'], "-"),
                rand_suffix()
            ));
            reg.skopeo_pull_to_layout(t, &out, "x");
            let _ = std::fs::remove_dir_all(&out);
            n += 1;
        }
    }
    n
}

fn rand_suffix() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

/// The relocated images of a `--output json` push, checked with skopeo: each digest matches.
pub fn verify_json_report(reg: &TestRegistry, stdout: &[u8], scratch: &Path) -> serde_json::Value {
    let v: serde_json::Value = serde_json::from_slice(stdout).unwrap();
    let map = v["relocationMap"].as_object().unwrap();
    assert_eq!(map.len(), 4, "{v}");
    for (orig, rel) in map {
        let reference = rel["reference"].as_str().unwrap();
        let (repo, digest) = reference.split_once('@').unwrap();
        let repo = repo.split_once('/').unwrap().1;
        let got = reg.manifest_digest(&format!("{repo}@{digest}"));
        assert_eq!(got.to_string(), digest, "{orig}");
        let tag = rel["tag"].as_str().unwrap();
        assert_eq!(
            reg.manifest_digest(&format!("{repo}:{tag}")).to_string(),
            digest,
            "{orig} by tag"
        );
        reg.skopeo_pull_to_layout(
            &format!("{repo}@{digest}"),
            &scratch.join(format!("final-{}", repo.replace('/', "-"))),
            "x",
        );
    }
    v
}
