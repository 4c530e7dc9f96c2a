//! Pulling from a real docker-registry with TLS (its own CA) and htpasswd auth.
#![allow(clippy::unwrap_used)]

mod pull_support;

use airlift_bundle::NoProgress;
use airlift_registry::auth::{Credentials, Secret};
use airlift_registry::error::RegistryError;
use airlift_registry::pull::{PullError, RegistryPuller};
use airlift_registry::{RegistryOptions, RetryPolicy};
use airlift_testkit::images::sample_set;
use airlift_testkit::registry::TestRegistry;
use pull_support::{options_for, platforms, store};

fn seeded() -> (
    tempfile::TempDir,
    TestRegistry,
    airlift_testkit::images::SampleSet,
) {
    let tmp = tempfile::tempdir().unwrap();
    let set = sample_set(&tmp.path().join("layout"), 61, 150_000).unwrap();
    let reg = TestRegistry::tls_with_auth("alice", "correct horse");
    reg.seed(&set.dir, "multi", "acme/multi:2.0");
    (tmp, reg, set)
}

#[tokio::test]
async fn pulls_over_tls_with_ca_file_and_credentials() {
    let (tmp, reg, set) = seeded();
    let puller = RegistryPuller::new(store(tmp.path()), options_for(&reg, &[])).unwrap();
    let img = puller
        .pull(
            &format!("{}/acme/multi:2.0", reg.host()),
            &platforms(&["linux/amd64", "linux/arm64"]),
            &NoProgress,
        )
        .await
        .unwrap();
    assert_eq!(img.top.digest, set.multi.index.digest);
    assert_eq!(img.manifests.len(), 3);
}

#[tokio::test]
async fn credentials_from_an_auth_file_are_used() {
    let (tmp, reg, set) = seeded();
    let auth = tmp.path().join("auth.json");
    std::fs::write(
        &auth,
        format!(
            r#"{{"auths":{{"{}":{{"username":"alice","password":"correct horse"}}}}}}"#,
            reg.host()
        ),
    )
    .unwrap();
    let opts = RegistryOptions::default()
        .with_ca_file(reg.ca_pem().unwrap())
        .with_auth_file(&auth);
    let puller = RegistryPuller::new(store(tmp.path()), opts).unwrap();
    let img = puller
        .pull(&format!("{}/acme/multi:2.0", reg.host()), &[], &NoProgress)
        .await
        .unwrap();
    assert_eq!(img.top.digest, set.multi.index.digest);
}

#[tokio::test]
async fn wrong_password_is_auth_refused_with_a_hint() {
    let (tmp, reg, _set) = seeded();
    let opts = RegistryOptions::default()
        .without_auth_files()
        .with_ca_file(reg.ca_pem().unwrap())
        .with_credentials(
            reg.host(),
            Credentials::basic("alice", Secret::new("wrong")),
        );
    let puller = RegistryPuller::new(store(tmp.path()), opts).unwrap();
    let err = puller
        .pull(&format!("{}/acme/multi:2.0", reg.host()), &[], &NoProgress)
        .await
        .unwrap_err();
    let PullError::Registry(RegistryError::AuthRefused {
        target,
        status,
        had_credentials,
    }) = &err
    else {
        panic!("expected AuthRefused, got {err:?}");
    };
    assert_eq!(target.registry, reg.host());
    assert_eq!(*status, 401);
    assert!(had_credentials);
    assert!(
        err.hint().contains("check the user and password"),
        "{}",
        err.hint()
    );
    assert!(
        !format!("{err:?}").contains("wrong"),
        "the password leaked: {err:?}"
    );

    // Without any credentials the hint says to log in.
    let opts = RegistryOptions::default()
        .without_auth_files()
        .with_ca_file(reg.ca_pem().unwrap());
    let puller = RegistryPuller::new(store(tmp.path()), opts).unwrap();
    let err = puller
        .pull(&format!("{}/acme/multi:2.0", reg.host()), &[], &NoProgress)
        .await
        .unwrap_err();
    assert!(
        matches!(
            &err,
            PullError::Registry(RegistryError::AuthRefused {
                had_credentials: false,
                ..
            })
        ),
        "{err:?}"
    );
    assert!(err.hint().contains("--registry-user"), "{}", err.hint());
}

#[tokio::test]
async fn unknown_ca_is_named_with_a_hint() {
    let (tmp, reg, _set) = seeded();
    // Right credentials, but the registry's CA is not given.
    let opts = RegistryOptions::default()
        .without_auth_files()
        .with_retry(RetryPolicy::none())
        .with_credentials(
            reg.host(),
            Credentials::basic("alice", Secret::new("correct horse")),
        );
    let puller = RegistryPuller::new(store(tmp.path()), opts).unwrap();
    let err = puller
        .pull(&format!("{}/acme/multi:2.0", reg.host()), &[], &NoProgress)
        .await
        .unwrap_err();
    let PullError::Registry(RegistryError::UnknownCa { target, .. }) = &err else {
        panic!("expected UnknownCa, got {err:?}");
    };
    assert_eq!(target.registry, reg.host());
    assert!(err.to_string().contains("unknown issuer"), "{err}");
    assert!(err.hint().contains("--registry-ca"), "{}", err.hint());

    // Plain HTTP against a TLS registry is not silently "fixed": it fails too.
    let opts = RegistryOptions::default()
        .without_auth_files()
        .with_retry(RetryPolicy::none())
        .with_insecure(reg.host());
    let puller = RegistryPuller::new(store(tmp.path()), opts).unwrap();
    let err = puller
        .pull(&format!("{}/acme/multi:2.0", reg.host()), &[], &NoProgress)
        .await;
    assert!(err.is_err());
}

#[tokio::test]
async fn unreadable_ca_file_is_named() {
    let tmp = tempfile::tempdir().unwrap();
    let bad = tmp.path().join("not-a-ca.pem");
    std::fs::write(&bad, "hello").unwrap();
    let err = RegistryPuller::new(
        store(tmp.path()),
        RegistryOptions::default().with_ca_file(&bad),
    )
    .unwrap_err();
    assert!(matches!(err, PullError::Tls(_)), "{err:?}");
    let chain = format!("{}: {}", err, std::error::Error::source(&err).unwrap());
    assert!(chain.contains("not-a-ca.pem"), "{chain}");
}
