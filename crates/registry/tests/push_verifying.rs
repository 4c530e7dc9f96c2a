//! `push_verifying`: every blob hashed while it streams into an upload session, committed only
//! once every blob of the push verified. Against a real docker-registry, checked with skopeo.

#![allow(clippy::unwrap_used)]

mod common;

use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Arc;

use airlift_bundle::NoProgress;
use airlift_registry::client::RegistryClient;
use airlift_registry::mapping::Destination;
use airlift_registry::push::{push_verifying, PushError, PushReport};
use airlift_testkit::registry::TestRegistry;
use common::*;

async fn push_checked(
    s: &Sample,
    reg: &TestRegistry,
    target: &str,
) -> Result<PushReport, PushError> {
    let opts = options_for(reg);
    let dest = Destination::parse(target, false).unwrap();
    let client = RegistryClient::new(&dest.registry, &opts).unwrap();
    let source = s.store.clone();
    push_verifying(
        &client,
        source,
        &s.images,
        &dest,
        opts.concurrency,
        Arc::new(NoProgress),
    )
    .await
}

/// Every file under `dir`, recursively, relative to it.
fn files_under(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let path = e.path();
            if path.is_dir() {
                stack.push(path);
            } else {
                out.push(path.strip_prefix(dir).unwrap().display().to_string());
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verifying_push_sends_each_blob_once_and_mounts_shared_ones() {
    let tmp = tempfile::tempdir().unwrap();
    let s = sample(tmp.path(), 700, 1 << 20);
    let reg = TestRegistry::plain();
    let target = format!("{}/vendor", reg.host());
    let report = push_checked(&s, &reg, &target).await.unwrap();
    verify_with_skopeo(&reg, &report, tmp.path());
    assert_eq!(report.bytes_pushed, unique_blob_bytes(&s), "{report:?}");
    assert_eq!(report.bytes_skipped, 0, "{report:?}");
    let base = s.set.api.layers[0].blob.size;
    assert_eq!(report.bytes_mounted, 2 * base, "{report:?}");

    let again = push_checked(&s, &reg, &target).await.unwrap();
    assert_eq!(again.bytes_pushed, 0, "{again:?}");
    assert_eq!(again.manifests_pushed, 0, "{again:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tampered_blob_leaves_no_blob_data_manifest_or_tag() {
    let tmp = tempfile::tempdir().unwrap();
    let s = sample(tmp.path(), 710, 1 << 20);
    // One byte of the worker's own layer changes on disk after the layout was written.
    let layer = &s.set.worker.layers.last().unwrap().blob;
    let path = s.set.dir.join("blobs/sha256").join(layer.digest.hex());
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&path)
        .unwrap();
    let mut b = [0u8; 1];
    f.read_exact_at(&mut b, layer.size / 2).unwrap();
    b[0] ^= 0x01;
    f.write_all_at(&b, layer.size / 2).unwrap();

    let reg = TestRegistry::plain();
    let err = push_checked(&s, &reg, &reg.host()).await.unwrap_err();
    match &err {
        PushError::Tampered {
            image,
            digest,
            actual,
        } => {
            assert_eq!(image, "ghcr.io/acme/worker:1.0");
            assert_eq!(digest, &layer.digest);
            assert_ne!(actual, &layer.digest);
        }
        other => panic!("{other:?}"),
    }
    assert!(err.to_string().contains("failed verification"), "{err}");
    // The other blobs streamed into sessions too, but every session was cancelled: no blob data,
    // committed or not; only the hash states docker distribution rewrites after a cancel.
    let storage = reg.storage_dir().join("docker/registry/v2");
    let left: Vec<String> = files_under(&storage)
        .into_iter()
        .filter(|f| !(f.contains("/_uploads/") && f.contains("/hashstates/")))
        .collect();
    assert!(left.is_empty(), "the registry holds {left:?}");
    assert!(
        files_under(&storage)
            .iter()
            .any(|f| f.contains("/_uploads/")),
        "sessions were opened (the blobs did stream)"
    );
}
