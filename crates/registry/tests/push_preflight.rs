//! Preflight against real servers: a plain and a TLS + htpasswd docker-registry, a server that is
//! not a registry, a read-only registry, a missing CA, a wrong password, nothing listening.

#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;

use airlift_bundle::BlobSource;
use airlift_registry::auth::{Credentials, Secret};
use airlift_registry::client::RegistryClient;
use airlift_registry::error::RegistryError;
use airlift_registry::options::RegistryOptions;
use airlift_registry::preflight::{preflight, PreflightError};
use airlift_registry::serve::{serve, Catalog};
use airlift_testkit::fault_proxy::{Fault, FaultProxy, Rule, Schedule};
use airlift_testkit::registry::{free_port, TestRegistry};
use common::*;

async fn run(opts: &RegistryOptions, host: &str) -> Result<(), PreflightError> {
    let client = RegistryClient::new(host, opts).unwrap();
    preflight(&client, "vendor/acme/api").await
}

/// Upload sessions that still hold data (distribution 2.8 deletes a cancelled upload's `data`
/// file but leaves an empty `hashstates` folder behind).
fn open_uploads(reg: &TestRegistry) -> usize {
    fn walk(p: &std::path::Path, n: &mut usize) {
        for e in std::fs::read_dir(p).into_iter().flatten().flatten() {
            let path = e.path();
            if path.is_dir() {
                if path.file_name().is_some_and(|f| f == "_uploads") {
                    *n += std::fs::read_dir(&path)
                        .into_iter()
                        .flatten()
                        .flatten()
                        .filter(|u| {
                            u.path().join("data").exists() || u.path().join("startedat").exists()
                        })
                        .count();
                } else {
                    walk(&path, n);
                }
            }
        }
    }
    let mut n = 0;
    walk(&reg.storage_dir(), &mut n);
    n
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn preflight_passes_and_leaves_no_upload_behind() {
    let plain = TestRegistry::plain();
    run(&options_for(&plain), &plain.host()).await.unwrap();
    assert_eq!(open_uploads(&plain), 0);
    let tls = TestRegistry::tls_with_auth("alice", "pw");
    run(&options_for(&tls), &tls.host()).await.unwrap();
    assert_eq!(open_uploads(&tls), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn preflight_names_each_failure_with_its_fix() {
    let tls = TestRegistry::tls_with_auth("alice", "pw");

    // No CA.
    let no_ca = RegistryOptions::default()
        .without_auth_files()
        .with_retry(fast_retry());
    let e = run(&no_ca, &tls.host()).await.unwrap_err();
    assert!(
        matches!(
            e,
            PreflightError::Connect {
                source: RegistryError::UnknownCa { .. },
                ..
            }
        ),
        "{e:?}"
    );
    assert!(e.to_string().contains(&tls.host()));
    assert!(
        e.hint()
            .contains("unknown issuer: pass the registry's CA with --registry-ca"),
        "{}",
        e.hint()
    );

    // Wrong password.
    let wrong = options_for(&tls)
        .with_credentials(tls.host(), Credentials::basic("alice", Secret::new("nope")));
    let e = run(&wrong, &tls.host()).await.unwrap_err();
    assert!(matches!(e, PreflightError::Login { .. }), "{e:?}");
    assert!(e.hint().starts_with("401"), "{}", e.hint());
    assert!(e.hint().contains("check the user"), "{}", e.hint());

    // Nothing listening.
    let host = format!("127.0.0.1:{}", free_port());
    let opts = RegistryOptions::default()
        .without_auth_files()
        .with_insecure(host.clone())
        .with_retry(fast_retry());
    let e = run(&opts, &host).await.unwrap_err();
    assert!(
        matches!(
            e,
            PreflightError::Connect {
                source: RegistryError::Unreachable { .. },
                ..
            }
        ),
        "{e:?}"
    );
    assert!(e.to_string().contains(&host));

    // Something that is not a registry: 404 on /v2/.
    let web = FaultProxy::start(
        format!("127.0.0.1:{}", free_port()).parse().unwrap(),
        vec![Rule::new(Fault::Status(404), Schedule::Always)],
    )
    .await;
    let opts = RegistryOptions::default()
        .without_auth_files()
        .with_insecure(web.host())
        .with_retry(fast_retry());
    let e = run(&opts, &web.host()).await.unwrap_err();
    assert!(matches!(e, PreflightError::NotARegistry { .. }), "{e:?}");
    assert!(
        e.hint().contains("404 on /v2/: is this a registry?"),
        "{}",
        e.hint()
    );
    assert!(e.to_string().contains(&web.host()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn preflight_refuses_a_read_only_registry() {
    let tmp = tempfile::tempdir().unwrap();
    let s = sample(tmp.path(), 800, 64 << 10);
    let source: Arc<dyn BlobSource> = s.store.clone();
    let catalog = Catalog::from_images(&*source, &s.images).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let host = listener.local_addr().unwrap().to_string();
    let task = tokio::spawn(serve(listener, source, catalog, std::future::pending()));
    let opts = RegistryOptions::default()
        .without_auth_files()
        .with_insecure(host.clone())
        .with_retry(fast_retry());
    let e = run(&opts, &host).await.unwrap_err();
    assert!(
        matches!(
            e,
            PreflightError::CannotPush {
                source: RegistryError::Status { status: 405, .. },
                ..
            }
        ),
        "{e:?}"
    );
    assert!(
        e.to_string().contains(&format!("{host}/vendor/acme/api")),
        "{e}"
    );
    assert!(e.hint().contains("read-only"), "{}", e.hint());
    task.abort();
}
