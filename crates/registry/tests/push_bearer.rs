//! Bearer-token auth (the flow of Harbor, GHCR, Docker Hub): a real docker-registry behind the
//! testkit proxy's token gate. The client answers the `WWW-Authenticate: Bearer` challenge,
//! fetches a token per repository scope with basic credentials, caches it, and pushes.

#![allow(clippy::unwrap_used)]

mod common;

use airlift_registry::auth::{Credentials, Secret};
use airlift_registry::error::RegistryError;
use airlift_registry::options::RegistryOptions;
use airlift_registry::push::PushError;
use airlift_testkit::fault_proxy::FaultProxy;
use airlift_testkit::registry::TestRegistry;
use common::*;

fn opts(proxy: &FaultProxy, password: Option<&str>) -> RegistryOptions {
    let mut o = RegistryOptions::default()
        .without_auth_files()
        .with_insecure(proxy.host())
        .with_retry(fast_retry());
    if let Some(p) = password {
        o = o.with_credentials(proxy.host(), Credentials::basic("bob", Secret::new(p)));
    }
    o
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_with_bearer_tokens_per_scope() {
    let tmp = tempfile::tempdir().unwrap();
    let s = sample(tmp.path(), 900, 512 << 10);
    let reg = TestRegistry::plain();
    let upstream = format!("127.0.0.1:{}", reg.port()).parse().unwrap();
    let gate = FaultProxy::start_with_token_auth(upstream, vec![], "bob", "tok3n-pw").await;
    let report = s
        .push(&opts(&gate, Some("tok3n-pw")), &gate.host())
        .await
        .unwrap();
    verify_with_skopeo(&reg, &report, tmp.path());
    assert!(report.blobs_mounted >= 1, "{report:?}");
    // One token per repository scope (4 repositories), reused for every request in it.
    let issued = gate.tokens_issued();
    assert!(
        (4..=6).contains(&issued),
        "tokens are cached per scope: {issued} issued"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bearer_with_wrong_or_no_password_is_refused_by_name() {
    let tmp = tempfile::tempdir().unwrap();
    let s = sample(tmp.path(), 910, 64 << 10);
    let reg = TestRegistry::plain();
    let upstream = format!("127.0.0.1:{}", reg.port()).parse().unwrap();
    let gate = FaultProxy::start_with_token_auth(upstream, vec![], "bob", "tok3n-pw").await;
    for (password, had) in [(Some("wrong"), true), (None, false)] {
        let err = s
            .push(&opts(&gate, password), &gate.host())
            .await
            .unwrap_err();
        let PushError::Registry { source, .. } = err else {
            panic!("{err:?}")
        };
        assert!(
            matches!(*source, RegistryError::AuthRefused { status: 401, had_credentials, .. } if had_credentials == had),
            "{source:?}"
        );
        assert!(source.to_string().contains(&gate.host()), "{source}");
    }
    for t in ["acme/api:1.0", "acme/worker:1.0", "acme/multi:2.0"] {
        assert!(!tag_exists(&reg, t), "{t}");
    }
}
