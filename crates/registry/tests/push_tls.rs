//! Push into a real TLS + htpasswd docker-registry with its own CA, and the named failures:
//! wrong password, missing or wrong CA, unreachable registry. A failed push tags nothing.

#![allow(clippy::unwrap_used)]

mod common;

use airlift_registry::auth::{Credentials, Secret};
use airlift_registry::error::RegistryError;
use airlift_registry::options::RegistryOptions;
use airlift_registry::push::PushError;
use airlift_testkit::registry::{free_port, TestRegistry};
use common::*;

fn registry_error(e: PushError) -> RegistryError {
    match e {
        PushError::Registry { source, .. } => *source,
        other => panic!("expected a registry error, got {other:?}"),
    }
}

/// No tag of the sample exists in `reg` (checked with skopeo, with the right credentials).
fn assert_nothing_tagged(reg: &TestRegistry) {
    for repo_tag in ["acme/api:1.0", "acme/worker:1.0", "acme/multi:2.0"] {
        assert!(
            !tag_exists(reg, repo_tag),
            "{repo_tag} must not be tagged after a failed push"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_over_tls_with_htpasswd_and_custom_ca() {
    let tmp = tempfile::tempdir().unwrap();
    let s = sample(tmp.path(), 500, 1 << 20);
    let reg = TestRegistry::tls_with_auth("alice", "correct horse");
    let opts = options_for(&reg);
    let report = s.push(&opts, &reg.host()).await.unwrap();
    assert!(report.bytes_pushed > 0);
    assert!(
        report.blobs_mounted > 0,
        "mounts work with basic auth: {report:?}"
    );
    verify_with_skopeo(&reg, &report, tmp.path());
    let again = s.push(&opts, &reg.host()).await.unwrap();
    assert_eq!(again.bytes_pushed, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_password_is_named_and_tags_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let s = sample(tmp.path(), 510, 64 << 10);
    let reg = TestRegistry::tls_with_auth("alice", "correct horse");
    let opts = options_for(&reg).with_credentials(
        reg.host(),
        Credentials::basic("alice", Secret::new("wrong")),
    );
    let err = s.push(&opts, &reg.host()).await.unwrap_err();
    let text = format!("{err}");
    assert!(text.contains("failed to push image"), "{text}");
    let e = registry_error(err);
    assert!(
        matches!(
            e,
            RegistryError::AuthRefused {
                status: 401,
                had_credentials: true,
                ..
            }
        ),
        "{e:?}"
    );
    assert!(
        e.to_string().contains(&reg.host()),
        "names the registry: {e}"
    );
    assert!(e.hint().contains("check the user"), "{}", e.hint());
    assert!(
        !format!("{e:?}").contains("wrong"),
        "the password never shows"
    );
    assert_nothing_tagged(&reg);

    // No credentials at all: the same error, with a hint to log in.
    let anon = RegistryOptions::default()
        .without_auth_files()
        .with_ca_file(reg.ca_pem().unwrap())
        .with_retry(fast_retry());
    let e = registry_error(s.push(&anon, &reg.host()).await.unwrap_err());
    assert!(
        matches!(
            e,
            RegistryError::AuthRefused {
                had_credentials: false,
                ..
            }
        ),
        "{e:?}"
    );
    assert_nothing_tagged(&reg);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_or_wrong_ca_is_unknown_issuer_and_tags_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let s = sample(tmp.path(), 520, 64 << 10);
    let reg = TestRegistry::tls_with_auth("alice", "pw");
    let other = TestRegistry::tls();
    let (u, p) = reg.credentials().unwrap();
    let base = RegistryOptions::default()
        .without_auth_files()
        .with_retry(fast_retry())
        .with_credentials(reg.host(), Credentials::basic(u, Secret::new(p)));
    for (what, opts) in [
        ("no CA", base.clone()),
        (
            "another registry's CA",
            base.clone().with_ca_file(other.ca_pem().unwrap()),
        ),
    ] {
        let e = registry_error(s.push(&opts, &reg.host()).await.unwrap_err());
        if what == "no CA" {
            assert!(
                matches!(e, RegistryError::UnknownCa { .. }),
                "{what}: {e:?}"
            );
            assert!(e.hint().contains("--registry-ca"), "{what}: {}", e.hint());
        } else {
            // Both test CAs share a subject name, so rustls finds an issuer by name and then
            // rejects the signature: still a named certificate failure, never a generic one.
            assert!(
                matches!(
                    e,
                    RegistryError::UnknownCa { .. } | RegistryError::BadCertificate { .. }
                ),
                "{what}: {e:?}"
            );
        }
        assert!(e.to_string().contains(&reg.host()), "{what}: {e}");
    }
    assert_nothing_tagged(&reg);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_registry_is_named() {
    let tmp = tempfile::tempdir().unwrap();
    let s = sample(tmp.path(), 530, 64 << 10);
    let host = format!("127.0.0.1:{}", free_port());
    let opts = RegistryOptions::default()
        .without_auth_files()
        .with_insecure(host.clone())
        .with_retry(fast_retry());
    let e = registry_error(s.push(&opts, &host).await.unwrap_err());
    assert!(matches!(e, RegistryError::Unreachable { .. }), "{e:?}");
    assert!(e.to_string().contains(&host), "{e}");
    assert!(e.hint().contains(&host), "{}", e.hint());
}
