//! Push through a fault-injecting proxy in front of a real docker-registry: connection resets
//! mid-upload, 500s and slow bodies. The push completes, and skopeo verifies the result against
//! the registry itself. Every test checks that faults really were injected.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use airlift_registry::options::{RegistryOptions, RetryPolicy};
use airlift_registry::push::PushError;
use airlift_testkit::fault_proxy::{Fault, FaultProxy, Rule, Schedule};
use airlift_testkit::registry::TestRegistry;
use common::*;

fn via_proxy(proxy: &FaultProxy) -> RegistryOptions {
    RegistryOptions::default()
        .without_auth_files()
        .with_insecure(proxy.host())
        .with_retry(fast_retry())
}

fn upstream(reg: &TestRegistry) -> std::net::SocketAddr {
    format!("127.0.0.1:{}", reg.port()).parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_completes_through_resets_mid_upload() {
    let tmp = tempfile::tempdir().unwrap();
    let s = sample(tmp.path(), 600, 2 << 20);
    let reg = TestRegistry::plain();
    let proxy = FaultProxy::start(
        upstream(&reg),
        vec![Rule::new(
            Fault::ResetRequestBody { after: 96 << 10 },
            Schedule::EveryNth(2),
        )
        .method("PUT")
        .path_contains("/blobs/uploads/")
        .max(6)],
    )
    .await;
    let report = s
        .push(&via_proxy(&proxy), &proxy.host())
        .await
        .unwrap_or_else(|e| panic!("push failed: {e:?}\nfaults: {:?}", proxy.fault_log()));
    assert!(
        proxy.injected() >= 2,
        "resets were injected: {:?}",
        proxy.fault_log()
    );
    verify_with_skopeo(&reg, &report, tmp.path());
    // The resets cost re-sends, but the counted payload is each unique blob once.
    assert_eq!(report.bytes_pushed, unique_blob_bytes(&s));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_completes_through_500s_on_every_kind_of_request() {
    let tmp = tempfile::tempdir().unwrap();
    let s = sample(tmp.path(), 610, 512 << 10);
    let reg = TestRegistry::plain();
    let proxy = FaultProxy::start(
        upstream(&reg),
        vec![
            Rule::new(Fault::Status(503), Schedule::FirstN(2))
                .method("PUT")
                .path_contains("/manifests/"),
            Rule::new(Fault::Status(500), Schedule::EveryNth(3)).max(12),
        ],
    )
    .await;
    let report = s
        .push(&via_proxy(&proxy), &proxy.host())
        .await
        .unwrap_or_else(|e| panic!("push failed: {e:?}\nfaults: {:?}", proxy.fault_log()));
    let log = proxy.fault_log();
    assert!(proxy.injected() >= 5, "{log:?}");
    assert!(
        log.iter().any(|l| l.starts_with("HEAD")),
        "HEADs hit: {log:?}"
    );
    assert!(
        log.iter()
            .any(|l| l.starts_with("PUT") && l.contains("/manifests/")),
        "{log:?}"
    );
    verify_with_skopeo(&reg, &report, tmp.path());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_completes_with_slow_bodies() {
    let tmp = tempfile::tempdir().unwrap();
    let s = sample(tmp.path(), 620, 1 << 20);
    let reg = TestRegistry::plain();
    let proxy = FaultProxy::start(
        upstream(&reg),
        vec![Rule::new(
            Fault::Slow {
                delay: Duration::from_millis(3),
            },
            Schedule::Always,
        )
        .method("PUT")
        .max(40)],
    )
    .await;
    let report = s.push(&via_proxy(&proxy), &proxy.host()).await.unwrap();
    assert!(proxy.injected() >= 5, "{:?}", proxy.fault_log());
    verify_with_skopeo(&reg, &report, tmp.path());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_killed_by_a_reset_without_retries_fails_named_and_resumes() {
    let tmp = tempfile::tempdir().unwrap();
    let s = sample(tmp.path(), 630, 2 << 20);
    let reg = TestRegistry::plain();
    // Cut the connection on the 4th blob upload; with no retries, the push dies there.
    let proxy = FaultProxy::start(
        upstream(&reg),
        vec![Rule::new(
            Fault::ResetRequestBody { after: 32 << 10 },
            Schedule::Nth(vec![4]),
        )
        .method("PUT")
        .path_contains("/blobs/uploads/")],
    )
    .await;
    let no_retry = via_proxy(&proxy)
        .with_retry(RetryPolicy::none())
        .with_concurrency(1);
    let err = s.push(&no_retry, &proxy.host()).await.unwrap_err();
    assert_eq!(proxy.injected(), 1);
    match &err {
        PushError::Registry { source, .. } => {
            assert!(source.is_transient(), "{source:?}");
            assert!(source.to_string().contains(&proxy.host()), "{source}");
        }
        other => panic!("{other:?}"),
    }
    // Whatever is tagged is complete.
    for repo_tag in ["acme/api:1.0", "acme/worker:1.0", "acme/multi:2.0"] {
        if tag_exists(&reg, repo_tag) {
            reg.skopeo_pull_to_layout(
                repo_tag,
                &tmp.path().join(repo_tag.replace([':', '/'], "-")),
                "x",
            );
        }
    }
    // Resume directly against the registry: blobs that made it are not sent again.
    let opts = options_for(&reg);
    let again = s.push(&opts, &reg.host()).await.unwrap();
    assert!(again.blobs_skipped + again.blobs_mounted >= 1, "{again:?}");
    assert!(again.bytes_pushed < unique_blob_bytes(&s), "{again:?}");
    verify_with_skopeo(&reg, &again, tmp.path());
}

/// The refusal CNCF distribution 2.8 gives a manifest when it reads the repository's link to one
/// of its blobs while another push rewrites that link in place.
fn blob_link_race() -> Fault {
    Fault::Refuse {
        status: 400,
        codes: vec!["DIGEST_INVALID", "MANIFEST_BLOB_UNKNOWN"],
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_manifest_refused_for_a_blob_the_registry_holds_is_written_again() {
    let tmp = tempfile::tempdir().unwrap();
    let s = sample(tmp.path(), 640, 256 << 10);
    let reg = TestRegistry::plain();
    let proxy = FaultProxy::start(
        upstream(&reg),
        vec![Rule::new(blob_link_race(), Schedule::FirstN(3))
            .method("PUT")
            .path_contains("/manifests/")],
    )
    .await;
    let report = s
        .push(&via_proxy(&proxy), &proxy.host())
        .await
        .unwrap_or_else(|e| panic!("push failed: {e:?}\nfaults: {:?}", proxy.fault_log()));
    assert_eq!(proxy.injected(), 3, "{:?}", proxy.fault_log());
    verify_with_skopeo(&reg, &report, tmp.path());
    // The blobs were there all along: none was sent twice.
    assert_eq!(report.bytes_pushed, unique_blob_bytes(&s), "{report:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blob_the_registry_lost_before_its_manifest_is_sent_again() {
    let tmp = tempfile::tempdir().unwrap();
    let s = sample(tmp.path(), 650, 256 << 10);
    let config = s.set.api.config.clone();
    let reg = TestRegistry::plain();
    // The api manifest is refused once; from then on the registry says it lacks the config
    // (the 2nd and 3rd HEAD of it: the check after the refusal, and the push's own check).
    let proxy = FaultProxy::start(
        upstream(&reg),
        vec![
            Rule::new(blob_link_race(), Schedule::FirstN(1))
                .method("PUT")
                .path_contains("/acme/api/manifests/"),
            Rule::new(Fault::Status(404), Schedule::Nth(vec![2, 3]))
                .method("HEAD")
                .path_contains(&format!("/acme/api/blobs/{}", config.digest)),
        ],
    )
    .await;
    let report = s
        .push(&via_proxy(&proxy), &proxy.host())
        .await
        .unwrap_or_else(|e| panic!("push failed: {e:?}\nfaults: {:?}", proxy.fault_log()));
    assert_eq!(proxy.injected(), 3, "{:?}", proxy.fault_log());
    verify_with_skopeo(&reg, &report, tmp.path());
    assert_eq!(
        report.bytes_pushed,
        unique_blob_bytes(&s) + config.size,
        "the config was sent again: {report:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_manifest_refused_for_a_blob_the_registry_never_finds_fails_named() {
    let tmp = tempfile::tempdir().unwrap();
    let s = sample(tmp.path(), 660, 128 << 10);
    let reg = TestRegistry::plain();
    let proxy = FaultProxy::start(
        upstream(&reg),
        vec![Rule::new(blob_link_race(), Schedule::Always)
            .method("PUT")
            .path_contains("/acme/worker/manifests/")],
    )
    .await;
    let opts = via_proxy(&proxy).with_retry(RetryPolicy {
        max_attempts: 3,
        ..fast_retry()
    });
    let err = s.push(&opts, &proxy.host()).await.unwrap_err();
    // Three attempts, then the registry's own words.
    assert_eq!(proxy.injected(), 3, "{:?}", proxy.fault_log());
    match &err {
        PushError::Registry { image, source, .. } => {
            assert_eq!(image, "ghcr.io/acme/worker:1.0");
            assert!(source.has_code("MANIFEST_BLOB_UNKNOWN"), "{source:?}");
            assert!(source.to_string().contains("400"), "{source}");
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_pushes_of_the_same_images_into_one_registry_both_complete() {
    let tmp = tempfile::tempdir().unwrap();
    let s = sample(tmp.path(), 670, 64 << 10);
    let reg = TestRegistry::plain();
    let opts = options_for(&reg);
    // Each round pushes the same images twice at once into fresh repositories, so both pushes
    // upload the same blobs and write the same links at the same moment.
    for round in 0..6 {
        let target = format!("{}/round{round}", reg.host());
        let (a, b) = tokio::join!(s.push(&opts, &target), s.push(&opts, &target));
        let a = a.unwrap_or_else(|e| panic!("round {round}, first push: {e:?}"));
        let b = b.unwrap_or_else(|e| panic!("round {round}, second push: {e:?}"));
        assert_eq!(a.relocation_map, b.relocation_map);
        let scratch = tmp.path().join(format!("r{round}"));
        std::fs::create_dir(&scratch).unwrap();
        verify_with_skopeo(&reg, &a, &scratch);
    }
}
