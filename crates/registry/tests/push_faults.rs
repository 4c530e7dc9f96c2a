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
