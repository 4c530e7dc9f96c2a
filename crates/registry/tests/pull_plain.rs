//! Pulling from a real plain-HTTP docker-registry seeded with skopeo.
#![allow(clippy::unwrap_used)]

mod pull_support;

use airlift_bundle::{BlobSource, Digest, NoProgress};
use airlift_registry::error::RegistryError;
use airlift_registry::pull::{PullError, RegistryPuller};
use airlift_testkit::images::{sample_set, OCI_INDEX, OCI_MANIFEST};
use airlift_testkit::registry::TestRegistry;
use pull_support::{options_for, platforms, store};

fn assert_in_store(store: &airlift_bundle::DirBlobStore, d: &Digest, size: u64) {
    assert_eq!(store.blob_size(d), Some(size), "{d} missing from the store");
    let bytes = std::fs::read(store.path_of(d)).unwrap();
    assert_eq!(&Digest::of_bytes(&bytes), d);
}

#[tokio::test]
async fn pulls_single_arch_image_by_tag_and_pins_it() {
    let tmp = tempfile::tempdir().unwrap();
    let set = sample_set(&tmp.path().join("layout"), 11, 200_000).unwrap();
    let reg = TestRegistry::plain();
    let seeded = reg.seed(&set.dir, "api", "acme/api:1.0");
    assert_eq!(seeded, set.api.manifest.digest);

    let store = store(tmp.path());
    let puller = RegistryPuller::new(store.clone(), options_for(&reg, &[])).unwrap();
    let reference = format!("{}/acme/api:1.0", reg.host());
    let img = puller
        .pull(&reference, &platforms(&["linux/amd64"]), &NoProgress)
        .await
        .unwrap();

    assert_eq!(img.reference, reference);
    assert_eq!(img.top.digest, seeded);
    assert_eq!(img.source_digest, seeded);
    assert_eq!(img.top.media_type, OCI_MANIFEST);
    assert_eq!(img.pinned, format!("{}/acme/api@{seeded}", reg.host()));
    assert_eq!(img.platforms, platforms(&["linux/amd64"]));
    let want: Vec<Digest> = set.api.blob_digests();
    let got: Vec<Digest> = img.blobs.iter().map(|b| b.digest.clone()).collect();
    assert_eq!(got, want);
    for b in img.blobs.iter().chain(&img.manifests) {
        assert_in_store(&store, &b.digest, b.size);
    }
    // The layers were really transferred (the config was fetched while planning).
    let layer_bytes: u64 = set.api.layers.iter().map(|l| l.blob.size).sum();
    assert_eq!(img.bytes_transferred, layer_bytes);

    // Pulling by the pinned digest gives the same image, without downloading again.
    let again = puller
        .pull(
            &format!("{}/acme/api@{seeded}", reg.host()),
            &[],
            &NoProgress,
        )
        .await
        .unwrap();
    assert_eq!(again.top, img.top);
    assert_eq!(again.bytes_transferred, 0);
}

#[tokio::test]
async fn multi_arch_index_keeps_exactly_the_required_platforms() {
    let tmp = tempfile::tempdir().unwrap();
    let set = sample_set(&tmp.path().join("layout"), 21, 100_000).unwrap();
    let reg = TestRegistry::plain();
    let seeded = reg.seed(&set.dir, "multi", "acme/multi:2.0");
    assert_eq!(seeded, set.multi.index.digest);
    let reference = format!("{}/acme/multi:2.0", reg.host());

    // Both platforms required: the index is kept byte for byte.
    let store_all = store(&tmp.path().join("all"));
    let puller = RegistryPuller::new(store_all.clone(), options_for(&reg, &[])).unwrap();
    let img = puller
        .pull(
            &reference,
            &platforms(&["linux/arm64", "linux/amd64"]),
            &NoProgress,
        )
        .await
        .unwrap();
    assert_eq!(img.top.digest, seeded);
    assert_eq!(img.top.media_type, OCI_INDEX);
    assert_eq!(img.manifests.len(), 3);
    assert_eq!(img.platforms, platforms(&["linux/amd64", "linux/arm64"]));
    for i in &set.multi.images {
        for d in i.blob_digests() {
            assert!(img.blobs.iter().any(|b| b.digest == d), "{d} not pulled");
        }
    }

    // Only amd64 required: a new index with one entry, same media type, source recorded.
    let store_one = store(&tmp.path().join("one"));
    let puller = RegistryPuller::new(store_one.clone(), options_for(&reg, &[])).unwrap();
    let img = puller
        .pull(&reference, &platforms(&["linux/amd64"]), &NoProgress)
        .await
        .unwrap();
    assert_ne!(img.top.digest, seeded);
    assert_eq!(img.source_digest, seeded);
    assert_eq!(img.top.media_type, OCI_INDEX);
    assert_eq!(img.platforms, platforms(&["linux/amd64"]));
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(store_one.path_of(&img.top.digest)).unwrap())
            .unwrap();
    assert_eq!(index["mediaType"], OCI_INDEX);
    let entries = index["manifests"].as_array().unwrap();
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0]["platform"]["architecture"], "amd64");
    let amd = &set.multi.images[0];
    let arm = &set.multi.images[1];
    assert_eq!(entries[0]["digest"], amd.manifest.digest.to_string());
    assert!(!store_one.contains(&arm.manifest.digest));
    assert!(!store_one.contains(&arm.layers[1].blob.digest));
    assert_eq!(img.blobs.len(), amd.blob_digests().len());
}

#[tokio::test]
async fn missing_platform_fails_naming_image_and_platform() {
    let tmp = tempfile::tempdir().unwrap();
    let set = sample_set(&tmp.path().join("layout"), 31, 50_000).unwrap();
    let reg = TestRegistry::plain();
    reg.seed(&set.dir, "multi", "acme/multi:2.0");
    reg.seed(&set.dir, "arm-only", "acme/arm:1.0");
    let store = store(tmp.path());
    let puller = RegistryPuller::new(store.clone(), options_for(&reg, &[])).unwrap();

    let reference = format!("{}/acme/multi:2.0", reg.host());
    let err = puller
        .pull(
            &reference,
            &platforms(&["linux/amd64", "linux/s390x"]),
            &NoProgress,
        )
        .await
        .unwrap_err();
    match &err {
        PullError::PlatformMissing {
            image,
            platform,
            available,
        } => {
            assert_eq!(image, &reference);
            assert_eq!(platform.to_string(), "linux/s390x");
            assert!(available.contains("linux/arm64"), "{available}");
        }
        other => panic!("expected PlatformMissing, got {other:?}"),
    }
    assert!(err.to_string().contains("linux/s390x"));
    assert!(err.hint().contains("linux/s390x"));

    // A single-platform image is checked through its config.
    let reference = format!("{}/acme/arm:1.0", reg.host());
    let err = puller
        .pull(&reference, &platforms(&["linux/amd64"]), &NoProgress)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, PullError::PlatformMissing { platform, available, .. }
            if platform.to_string() == "linux/amd64" && available.contains("linux/arm64")),
        "{err:?}"
    );
    // Nothing but the small documents read while checking reached the store.
    assert!(!store.contains(&set.arm_only.layers[0].blob.digest));
}

#[tokio::test]
async fn images_sharing_layers_store_them_once() {
    let tmp = tempfile::tempdir().unwrap();
    let set = sample_set(&tmp.path().join("layout"), 41, 300_000).unwrap();
    let reg = TestRegistry::plain();
    reg.seed(&set.dir, "api", "acme/api:1.0");
    reg.seed(&set.dir, "worker", "acme/worker:1.0");
    let store = store(tmp.path());
    let puller = RegistryPuller::new(store.clone(), options_for(&reg, &[])).unwrap();
    let p = platforms(&["linux/amd64"]);
    let api = puller
        .pull(&format!("{}/acme/api:1.0", reg.host()), &p, &NoProgress)
        .await
        .unwrap();
    let worker = puller
        .pull(&format!("{}/acme/worker:1.0", reg.host()), &p, &NoProgress)
        .await
        .unwrap();
    let base = &set.api.layers[0].blob;
    assert_eq!(base, &set.worker.layers[0].blob);
    assert!(api.blobs.iter().any(|b| b.digest == base.digest));
    assert!(worker.blobs.iter().any(|b| b.digest == base.digest));
    // The worker pull found the base layer in the store and did not fetch it again.
    assert!(worker.blobs_cached >= 1);
    assert_eq!(worker.bytes_transferred, set.worker.layers[1].blob.size);
    // The store holds every distinct blob exactly once.
    let mut distinct: Vec<&Digest> = api
        .blobs
        .iter()
        .chain(&api.manifests)
        .chain(&worker.blobs)
        .chain(&worker.manifests)
        .map(|b| &b.digest)
        .collect();
    distinct.sort();
    distinct.dedup();
    let files = std::fs::read_dir(store.root().join("sha256"))
        .unwrap()
        .count();
    assert_eq!(files, distinct.len());
}

#[tokio::test]
async fn missing_tag_and_repository_are_not_found() {
    let tmp = tempfile::tempdir().unwrap();
    let set = sample_set(&tmp.path().join("layout"), 51, 10_000).unwrap();
    let reg = TestRegistry::plain();
    reg.seed(&set.dir, "api", "acme/api:1.0");
    let puller = RegistryPuller::new(store(tmp.path()), options_for(&reg, &[])).unwrap();
    for reference in [
        format!("{}/acme/api:no-such-tag", reg.host()),
        format!("{}/acme/nothing-here:1.0", reg.host()),
    ] {
        let err = puller.pull(&reference, &[], &NoProgress).await.unwrap_err();
        let PullError::Registry(RegistryError::NotFound { target, .. }) = &err else {
            panic!("expected NotFound for {reference}, got {err:?}");
        };
        assert_eq!(target.registry, reg.host());
        let msg = err.to_string();
        assert!(msg.contains(&reg.host()) && msg.contains("acme/"), "{msg}");
        assert!(err.hint().contains("does not exist"), "{}", err.hint());
    }
}

#[tokio::test]
async fn unreachable_registry_is_named() {
    let port = airlift_testkit::registry::free_port();
    let host = format!("127.0.0.1:{port}");
    let tmp = tempfile::tempdir().unwrap();
    let opts = airlift_registry::RegistryOptions::default()
        .without_auth_files()
        .with_insecure(host.clone())
        .with_retry(airlift_registry::RetryPolicy::none());
    let puller = RegistryPuller::new(store(tmp.path()), opts).unwrap();
    let err = puller
        .pull(&format!("{host}/acme/api:1.0"), &[], &NoProgress)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, PullError::Registry(RegistryError::Unreachable { target, .. }) if target.registry == host),
        "{err:?}"
    );
    assert!(err.hint().contains(&host));
}

#[tokio::test]
async fn plain_http_registry_is_not_used_without_the_insecure_flag() {
    let tmp = tempfile::tempdir().unwrap();
    let set = sample_set(&tmp.path().join("layout"), 57, 10_000).unwrap();
    let reg = TestRegistry::plain();
    reg.seed(&set.dir, "api", "acme/api:1.0");
    let opts = airlift_registry::RegistryOptions::default()
        .without_auth_files()
        .with_retry(airlift_registry::RetryPolicy::none());
    let puller = RegistryPuller::new(store(tmp.path()), opts).unwrap();
    let err = puller
        .pull(&format!("{}/acme/api:1.0", reg.host()), &[], &NoProgress)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, PullError::Registry(RegistryError::Unreachable { .. })),
        "{err:?}"
    );
    assert!(err.hint().contains("--insecure-registry"), "{}", err.hint());
}

#[tokio::test]
async fn blob_missing_from_the_registry_is_named() {
    let tmp = tempfile::tempdir().unwrap();
    let set = sample_set(&tmp.path().join("layout"), 59, 10_000).unwrap();
    let reg = TestRegistry::plain();
    reg.seed(&set.dir, "api", "acme/api:1.0");
    let layer = &set.api.layers[1].blob.digest;
    let data = reg
        .storage_dir()
        .join("docker/registry/v2/blobs/sha256")
        .join(&layer.hex()[..2])
        .join(layer.hex())
        .join("data");
    std::fs::remove_file(&data).unwrap();
    let puller = RegistryPuller::new(store(tmp.path()), options_for(&reg, &[])).unwrap();
    let err = puller
        .pull(&format!("{}/acme/api:1.0", reg.host()), &[], &NoProgress)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, PullError::Registry(RegistryError::NotFound { what, .. }) if what.contains(layer.hex())),
        "{err:?}"
    );
}
