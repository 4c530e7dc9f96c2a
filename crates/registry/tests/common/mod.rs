//! Shared helpers of the registry integration tests.
#![allow(dead_code, missing_docs, clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use airlift_bundle::{BlobSource, Digest, DirBlobStore, NoProgress, Progress};
use airlift_registry::auth::{Credentials, Secret};
use airlift_registry::client::RegistryClient;
use airlift_registry::mapping::Destination;
use airlift_registry::options::{RegistryOptions, RetryPolicy};
use airlift_registry::push::{push, PushError, PushImage, PushReport};
use airlift_testkit::images::{sample_set, SampleSet, OCI_INDEX, OCI_MANIFEST};
use airlift_testkit::registry::{run_skopeo, TestRegistry};

/// The sample image set under original references that exercise the mapping: two hosts, a
/// Docker Hub short name, and an image given by digest only.
pub struct Sample {
    pub set: SampleSet,
    pub store: Arc<DirBlobStore>,
    pub images: Vec<PushImage>,
}

impl Sample {
    /// Pushes every image of the sample to `target`, nested, without progress.
    pub async fn push(
        &self,
        opts: &RegistryOptions,
        target: &str,
    ) -> Result<PushReport, PushError> {
        push_to(
            opts,
            target,
            false,
            self.store.clone(),
            &self.images,
            Arc::new(NoProgress),
        )
        .await
    }
}

pub fn sample(dir: &Path, seed: u64, base_size: u64) -> Sample {
    let set = sample_set(&dir.join("layout"), seed, base_size).unwrap();
    let store = Arc::new(DirBlobStore::open(set.dir.join("blobs")).unwrap());
    let images = vec![
        PushImage {
            reference: "ghcr.io/acme/api:1.0".into(),
            digest: set.api.manifest.digest.clone(),
            media_type: OCI_MANIFEST.into(),
        },
        PushImage {
            reference: "ghcr.io/acme/worker:1.0".into(),
            digest: set.worker.manifest.digest.clone(),
            media_type: OCI_MANIFEST.into(),
        },
        PushImage {
            reference: "acme/multi:2.0".into(),
            digest: set.multi.index.digest.clone(),
            media_type: OCI_INDEX.into(),
        },
        PushImage {
            reference: format!("quay.io/acme/arm-only@{}", set.arm_only.manifest.digest),
            digest: set.arm_only.manifest.digest.clone(),
            media_type: OCI_MANIFEST.into(),
        },
    ];
    Sample { set, store, images }
}

/// Sum of the sizes of every unique config and layer blob of the sample.
pub fn unique_blob_bytes(s: &Sample) -> u64 {
    let mut all: BTreeMap<Digest, u64> = BTreeMap::new();
    let mut add = |i: &airlift_testkit::images::ImageInfo| {
        all.insert(i.config.digest.clone(), i.config.size);
        for l in &i.layers {
            all.insert(l.blob.digest.clone(), l.blob.size);
        }
    };
    add(&s.set.api);
    add(&s.set.worker);
    add(&s.set.arm_only);
    for i in &s.set.multi.images {
        add(i);
    }
    all.values().sum()
}

/// Fast retries, so fault tests do not sleep for long.
pub fn fast_retry() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 8,
        initial_backoff: Duration::from_millis(20),
        max_backoff: Duration::from_millis(200),
        max_retry_after: Duration::from_millis(200),
        ..RetryPolicy::default()
    }
}

/// Options that reach `reg`: plain HTTP or its CA, its credentials, no auth files.
pub fn options_for(reg: &TestRegistry) -> RegistryOptions {
    let mut o = RegistryOptions::default()
        .without_auth_files()
        .with_retry(fast_retry());
    match reg.ca_pem() {
        Some(ca) => o = o.with_ca_file(ca),
        None => o = o.with_insecure(reg.host()),
    }
    if let Some((u, p)) = reg.credentials() {
        o = o.with_credentials(reg.host(), Credentials::basic(u, Secret::new(p)));
    }
    o
}

/// Pushes `images` to `registry` (`host[:port][/prefix]`).
pub async fn push_to(
    opts: &RegistryOptions,
    target: &str,
    flatten: bool,
    source: Arc<dyn BlobSource>,
    images: &[PushImage],
    progress: Arc<dyn Progress>,
) -> Result<PushReport, PushError> {
    let dest = Destination::parse(target, flatten).unwrap();
    let client = RegistryClient::new(&dest.registry, opts).unwrap();
    push(&client, source, images, &dest, opts.concurrency, progress).await
}

/// For every relocated image: skopeo reads it by digest and by tag, its raw manifest hashes to the
/// source digest, and `skopeo copy --all` pulls the whole image (every blob) into a fresh layout.
pub fn verify_with_skopeo(reg: &TestRegistry, report: &PushReport, scratch: &Path) {
    assert!(!report.relocation_map.images.is_empty());
    for (i, (orig, rel)) in report.relocation_map.images.iter().enumerate() {
        // The push may have gone through a proxy; skopeo reads the registry itself.
        let repo = rel.repository.split_once('/').unwrap().1;
        let by_digest = format!("{repo}@{}", rel.digest);
        assert_eq!(
            reg.manifest_digest(&by_digest),
            rel.digest,
            "{orig} by digest"
        );
        if let Some(tag) = &rel.tag {
            assert_eq!(
                reg.manifest_digest(&format!("{repo}:{tag}")),
                rel.digest,
                "{orig} by tag"
            );
        }
        let out = scratch.join(format!("pulled-{i}"));
        reg.skopeo_pull_to_layout(&by_digest, &out, "x");
        let index: serde_json::Value =
            serde_json::from_slice(&std::fs::read(out.join("index.json")).unwrap()).unwrap();
        assert_eq!(
            index["manifests"][0]["digest"].as_str().unwrap(),
            rel.digest.to_string(),
            "skopeo pulled {orig} with the same digest"
        );
    }
}

/// True when `repo:tag` exists (checked with skopeo, which fails on a missing tag).
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
    std::process::Command::new("skopeo")
        .args(&args)
        .output()
        .unwrap()
        .status
        .success()
}

/// Records progress: bytes per label, and fires a callback once the overall count passes a mark.
#[derive(Default)]
pub struct Recorder {
    pub bytes: Mutex<BTreeMap<String, u64>>,
    pub totals: Mutex<BTreeMap<String, Option<u64>>>,
    pub overall: AtomicU64,
    pub trip_at: Option<u64>,
    pub trip: Option<tokio::sync::Notify>,
}

impl Recorder {
    pub fn tripping_at(bytes: u64) -> Self {
        Self {
            trip_at: Some(bytes),
            trip: Some(tokio::sync::Notify::new()),
            ..Self::default()
        }
    }
}

impl Progress for Recorder {
    fn start(&self, label: &str, total: Option<u64>) {
        self.totals.lock().unwrap().insert(label.to_string(), total);
    }
    fn advance(&self, label: &str, bytes: u64) {
        *self
            .bytes
            .lock()
            .unwrap()
            .entry(label.to_string())
            .or_default() += bytes;
        if label == airlift_registry::push::OVERALL_LABEL {
            let now = self.overall.fetch_add(bytes, Ordering::SeqCst) + bytes;
            if let (Some(at), Some(n)) = (self.trip_at, &self.trip) {
                if now >= at {
                    n.notify_one();
                }
            }
        }
    }
    fn finish(&self, _label: &str) {}
}

pub fn skopeo_available() {
    run_skopeo(&["--version".to_string()]);
}
