//! A signed bundle of the testkit sample set, and helpers to run `airlift-install push`.
#![allow(dead_code, clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use airlift_bundle::schema::common::{ComponentMode, Layer, Metadata, Requirements};
use airlift_bundle::schema::config::ConfigSchema;
use airlift_bundle::schema::manifest::{BuildInfo, BundleManifest, Component, ImageRecord};
use airlift_bundle::{write_bundle, BundleContents, Digest, DirBlobStore, NoProgress, PrivateKey};
use airlift_testkit::images::{sample_set, ImageInfo, SampleSet, OCI_INDEX, OCI_MANIFEST};
use airlift_testkit::registry::TestRegistry;

pub struct Env {
    pub dir: tempfile::TempDir,
    pub bundle: PathBuf,
    pub key: PathBuf,
    pub set: SampleSet,
}

fn record(reference: &str, digest: &Digest, media_type: &str, platforms: &[&str]) -> ImageRecord {
    ImageRecord {
        reference: reference.into(),
        source: format!("oci-layout:test@{digest}"),
        digest: digest.clone(),
        media_type: media_type.into(),
        platforms: platforms.iter().map(|p| p.parse().unwrap()).collect(),
    }
}

fn single(reference: &str, i: &ImageInfo) -> ImageRecord {
    record(
        reference,
        &i.manifest.digest,
        OCI_MANIFEST,
        &[i.platform.as_str()],
    )
}

/// A signed bundle of the sample set with a `base_size`-byte shared base layer.
pub fn env(base_size: u64) -> Env {
    let dir = tempfile::tempdir().unwrap();
    let set = sample_set(&dir.path().join("layout"), 42, base_size).unwrap();
    let store = DirBlobStore::open(set.dir.join("blobs")).unwrap();
    let manifest = BundleManifest {
        api_version: "airlift.dev/v1alpha1".into(),
        kind: "Bundle".into(),
        metadata: Metadata {
            name: "demo".into(),
            version: "1.0.0".into(),
            channel: "stable".into(),
            vendor: "Acme".into(),
            description: None,
        },
        build: BuildInfo {
            created: "2026-01-02T03:04:05Z".into(),
            tool: "test".into(),
            definition_digest: Digest::of_bytes(b"def"),
            signer: None,
        },
        requirements: Requirements {
            kubernetes: ">=1.28.0".into(),
            platforms: vec!["linux/amd64".parse().unwrap()],
            storage_classes: vec![],
            crds: vec![],
        },
        components: vec![Component {
            name: "api".into(),
            description: "the API".into(),
            mode: ComponentMode::Required,
            layer: Layer::Workload,
            order: 0,
            images: vec![
                single("registry.example.com/acme/api:1.0", &set.api),
                single("registry.example.com/acme/worker:1.0", &set.worker),
                record(
                    "registry.example.com/acme/multi:1.0",
                    &set.multi.index.digest,
                    OCI_INDEX,
                    &["linux/amd64", "linux/arm64"],
                ),
                single("registry.example.com/acme/arm-only:1.0", &set.arm_only),
            ],
            manifests: vec![],
        }],
        config: ConfigSchema { groups: vec![] },
        members: vec![],
        blobs: vec![],
    };
    let key = PrivateKey::generate();
    let bundle = dir.path().join("demo-1.0.0.airlift");
    write_bundle(
        BundleContents {
            manifest,
            files: vec![],
        },
        &store,
        Some(&key),
        &bundle,
        &NoProgress,
    )
    .unwrap();
    let key_path = dir.path().join("vendor.pub");
    std::fs::write(&key_path, key.public_key().to_pem().unwrap()).unwrap();
    Env {
        dir,
        bundle,
        key: key_path,
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

pub fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

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
            c.arg("--insecure");
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
