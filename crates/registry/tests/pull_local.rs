//! Pulling from local sources: an OCI layout folder and an OCI archive written by skopeo.
#![allow(clippy::unwrap_used)]

mod pull_support;

use airlift_bundle::NoProgress;
use airlift_registry::pull::{pull_archive, pull_layout, resolve_layout, PullError};
use airlift_testkit::files::files_under;
use airlift_testkit::images::{sample_set, OCI_INDEX};
use airlift_testkit::registry::run_skopeo;
use pull_support::{platforms, store};

#[tokio::test]
async fn pulls_from_a_layout_folder_with_the_platform_rules() {
    let tmp = tempfile::tempdir().unwrap();
    let set = sample_set(&tmp.path().join("layout"), 91, 100_000).unwrap();
    let store = store(tmp.path());

    let img = pull_layout(
        &set.dir,
        Some("api"),
        &store,
        &platforms(&["linux/amd64"]),
        &NoProgress,
    )
    .await
    .unwrap();
    assert_eq!(img.top.digest, set.api.manifest.digest);
    assert!(img
        .pinned
        .ends_with(&format!("@{}", set.api.manifest.digest)));
    for d in set.api.blob_digests() {
        assert!(store.contains(&d));
    }

    let img = pull_layout(
        &set.dir,
        Some("multi"),
        &store,
        &platforms(&["linux/arm64"]),
        &NoProgress,
    )
    .await
    .unwrap();
    assert_eq!(img.source_digest, set.multi.index.digest);
    assert_ne!(img.top.digest, set.multi.index.digest);
    assert_eq!(img.top.media_type, OCI_INDEX);
    assert_eq!(img.platforms, platforms(&["linux/arm64"]));

    let err = pull_layout(
        &set.dir,
        Some("arm-only"),
        &store,
        &platforms(&["linux/amd64"]),
        &NoProgress,
    )
    .await
    .unwrap_err();
    assert!(matches!(err, PullError::PlatformMissing { .. }), "{err:?}");

    let err = pull_layout(&set.dir, Some("nope"), &store, &[], &NoProgress)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, PullError::Layout { detail, .. } if detail.contains("nope") && detail.contains("api")),
        "{err:?}"
    );
    let err = pull_layout(&set.dir, None, &store, &[], &NoProgress)
        .await
        .unwrap_err();
    assert!(matches!(err, PullError::Layout { .. }), "{err:?}");
}

#[tokio::test]
async fn pulls_from_an_oci_archive_written_by_skopeo() {
    let tmp = tempfile::tempdir().unwrap();
    let set = sample_set(&tmp.path().join("layout"), 101, 400_000).unwrap();
    let archive = tmp.path().join("multi.tar");
    run_skopeo(&[
        "--insecure-policy".into(),
        "copy".into(),
        "--all".into(),
        "--preserve-digests".into(),
        format!("oci:{}:multi", set.dir.display()),
        format!("oci-archive:{}:multi", archive.display()),
    ]);
    let store = store(tmp.path());
    let img = pull_archive(
        &archive,
        Some("multi"),
        &store,
        &platforms(&["linux/amd64", "linux/arm64"]),
        &NoProgress,
    )
    .await
    .unwrap();
    assert_eq!(img.top.digest, set.multi.index.digest);
    assert_eq!(img.manifests.len(), 3);
    for i in &set.multi.images {
        for d in i.blob_digests() {
            assert!(store.contains(&d), "{d} missing");
        }
    }
    let n: u64 = img.blobs.iter().map(|b| b.size).sum();
    // An index's configs are blobs like the layers: everything was transferred once.
    assert_eq!(img.bytes_transferred, n);

    // A second pull transfers nothing.
    let again = pull_archive(&archive, Some("multi"), &store, &[], &NoProgress)
        .await
        .unwrap();
    assert_eq!(again.bytes_transferred, 0);
}

#[tokio::test]
async fn compressed_or_broken_archives_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let gz = tmp.path().join("image.tar.gz");
    std::fs::write(&gz, [0x1f, 0x8b, 8, 0, 0, 0, 0, 0]).unwrap();
    let store = store(tmp.path());
    let err = pull_archive(&gz, None, &store, &[], &NoProgress)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, PullError::Layout { detail, .. } if detail.contains("gzip")),
        "{err:?}"
    );
    let err = pull_archive(
        &tmp.path().join("missing.tar"),
        None,
        &store,
        &[],
        &NoProgress,
    )
    .await
    .unwrap_err();
    assert!(matches!(err, PullError::Io { .. }), "{err:?}");
}

#[tokio::test]
async fn a_resolved_layout_is_read_in_place_and_proven_outside_it() {
    use airlift_bundle::source::BlobSourceReader;
    use airlift_bundle::{Digest, DirBlobStore};
    use std::io::Read;

    let tmp = tempfile::tempdir().unwrap();
    let set = sample_set(&tmp.path().join("layout"), 93, 100_000).unwrap();
    let before = files_under(&set.dir);
    let proving = DirBlobStore::open(tmp.path().join("cache"))
        .unwrap()
        .with_proofs();
    let local = resolve_layout(
        &set.dir,
        Some("api"),
        &proving,
        &platforms(&["linux/amd64"]),
    )
    .await
    .unwrap();
    assert_eq!(local.image.top.digest, set.api.manifest.digest);
    assert_eq!(local.image.bytes_transferred, 0);
    assert!(proving.contains(&set.api.manifest.digest));
    let layer = set.api.layers[0].blob.digest.clone();
    assert!(
        !proving.contains(&layer),
        "a layer is not copied into the store"
    );

    // Not proven until read and hashed; proven after; not once its file is written again.
    let src = local.source.as_ref();
    assert!(src.proven_range(&layer).is_none());
    let token = src
        .proof_token(&layer)
        .expect("a proving store proves layout files");
    let size = src.blob_size(&layer).unwrap();
    let mut bytes = Vec::new();
    BlobSourceReader::range(src, layer.clone(), 0, size)
        .read_to_end(&mut bytes)
        .unwrap();
    assert_eq!(Digest::of_bytes(&bytes), layer);
    src.record_proof(&layer, &token);
    assert!(src.proven_range(&layer).is_some());
    assert_eq!(
        files_under(&set.dir),
        before,
        "nothing is written into the layout"
    );
    std::fs::write(set.dir.join("blobs/sha256").join(layer.hex()), &bytes).unwrap();
    assert!(
        src.proven_range(&layer).is_none(),
        "a rewritten file is hashed again"
    );

    // A store that records no proofs proves nothing of the layout either.
    let plain = store(tmp.path());
    let local = resolve_layout(&set.dir, Some("api"), &plain, &platforms(&["linux/amd64"]))
        .await
        .unwrap();
    assert!(local.source.proof_token(&layer).is_none());
}
