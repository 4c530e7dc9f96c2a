//! Push into a real plain-HTTP docker-registry, checked with skopeo.

#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;

use airlift_bundle::NoProgress;
use airlift_testkit::registry::TestRegistry;
use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_relocates_every_image_and_skopeo_copies_each() {
    let tmp = tempfile::tempdir().unwrap();
    let s = sample(tmp.path(), 100, 3 << 20);
    let reg = TestRegistry::plain();
    let opts = options_for(&reg);
    let rec = Arc::new(Recorder::default());
    let target = format!("{}/vendor", reg.host());
    let report = push_to(
        &opts,
        &target,
        false,
        s.store.clone(),
        &s.images,
        rec.clone(),
    )
    .await
    .unwrap();

    // Every image is in, under the mapped name, with the original tag, and digests match.
    let map = &report.relocation_map.images;
    assert_eq!(map.len(), 4);
    let api = &map["ghcr.io/acme/api:1.0"];
    assert_eq!(api.repository, format!("{}/vendor/acme/api", reg.host()));
    assert_eq!(api.tag.as_deref(), Some("1.0"));
    assert_eq!(api.digest, s.set.api.manifest.digest);
    assert_eq!(
        api.reference,
        format!("{}/vendor/acme/api@{}", reg.host(), api.digest)
    );
    assert_eq!(
        map["acme/multi:2.0"].repository,
        format!("{}/vendor/acme/multi", reg.host())
    );
    let arm = map
        .values()
        .find(|r| r.repository.ends_with("/arm-only"))
        .unwrap();
    assert_eq!(
        arm.tag, None,
        "an image given by digest is pushed by digest only"
    );
    verify_with_skopeo(&reg, &report, tmp.path());

    // The shared base layer went over the wire once and was mounted into the other repositories.
    let unique = unique_blob_bytes(&s);
    assert!(
        report.blobs_mounted >= 2,
        "base mounted into worker and multi: {report:?}"
    );
    assert_eq!(
        report.bytes_pushed, unique,
        "each unique blob sent exactly once: {report:?}"
    );
    assert_eq!(report.bytes_skipped, 0);
    let base = s.set.api.layers[0].blob.size;
    assert_eq!(report.bytes_mounted, 2 * base, "{report:?}");

    // Progress: overall equals the sum of the per-image totals.
    let totals = rec.totals.lock().unwrap().clone();
    let bytes = rec.bytes.lock().unwrap().clone();
    let per_image: u64 = report.images.iter().map(|i| i.bytes).sum();
    assert_eq!(totals["push"], Some(per_image));
    assert_eq!(bytes["push"], per_image);
    for i in &report.images {
        assert_eq!(bytes[&i.reference], i.bytes, "{}", i.reference);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn second_push_sends_no_blob_bytes() {
    let tmp = tempfile::tempdir().unwrap();
    let s = sample(tmp.path(), 200, 1 << 20);
    let reg = TestRegistry::plain();
    let opts = options_for(&reg);
    let first = s.push(&opts, &reg.host()).await.unwrap();
    assert!(first.bytes_pushed > 0);
    let second = s.push(&opts, &reg.host()).await.unwrap();
    assert_eq!(second.bytes_pushed, 0, "{second:?}");
    assert_eq!(second.blobs_pushed, 0);
    assert_eq!(second.blobs_mounted, 0);
    assert_eq!(second.manifests_pushed, 0, "nothing re-written");
    assert!(second.images.iter().all(|i| i.already_present));
    assert_eq!(second.relocation_map, first.relocation_map);
    verify_with_skopeo(&reg, &second, tmp.path());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flatten_puts_every_image_in_a_single_segment_repository() {
    let tmp = tempfile::tempdir().unwrap();
    let s = sample(tmp.path(), 300, 256 << 10);
    let reg = TestRegistry::plain();
    let opts = options_for(&reg);
    let target = format!("{}/vendor", reg.host());
    let report = push_to(
        &opts,
        &target,
        true,
        s.store.clone(),
        &s.images,
        Arc::new(NoProgress),
    )
    .await
    .unwrap();
    for rel in report.relocation_map.images.values() {
        let repo = rel
            .repository
            .strip_prefix(&format!("{}/vendor/", reg.host()))
            .unwrap();
        assert!(!repo.contains('/'), "{repo} is flat");
    }
    assert_eq!(
        report.relocation_map.images["ghcr.io/acme/api:1.0"].repository,
        format!("{}/vendor/acme-api", reg.host())
    );
    verify_with_skopeo(&reg, &report, tmp.path());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_dropped_midway_resumes_without_resending_held_blobs() {
    let tmp = tempfile::tempdir().unwrap();
    // A large base layer so the push is still running when it is dropped.
    let s = sample(tmp.path(), 400, 24 << 20);
    let reg = TestRegistry::plain();
    let opts = options_for(&reg).with_concurrency(1);
    let unique = unique_blob_bytes(&s);
    let rec = Arc::new(Recorder::tripping_at(unique / 2));
    let host = reg.host();
    let run = push_to(&opts, &host, false, s.store.clone(), &s.images, rec.clone());
    let tripped = tokio::select! {
        r = run => panic!("the push finished before it could be interrupted: {r:?}"),
        _ = rec.trip.as_ref().unwrap().notified() => true,
    };
    assert!(tripped);

    // Nothing is tagged unless complete: every tag that exists can be pulled whole.
    for (orig, repo_tag) in [
        ("api", "acme/api:1.0"),
        ("worker", "acme/worker:1.0"),
        ("multi", "acme/multi:2.0"),
    ] {
        if tag_exists(&reg, repo_tag) {
            reg.skopeo_pull_to_layout(repo_tag, &tmp.path().join(format!("partial-{orig}")), "x");
        }
    }

    let again = s.push(&opts, &reg.host()).await.unwrap();
    assert!(
        again.bytes_skipped + again.bytes_mounted > 0,
        "something was kept: {again:?}"
    );
    assert!(
        again.bytes_pushed < unique,
        "the re-run sent {} of {unique} bytes: it must not start over",
        again.bytes_pushed
    );
    verify_with_skopeo(&reg, &again, tmp.path());
}
