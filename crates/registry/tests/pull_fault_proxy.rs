//! Pulling through the testkit's fault-injecting proxy: 500s, 429s and resets are retried;
//! persistent failures give up with a named error; bearer-token auth works.
#![allow(clippy::unwrap_used)]

mod pull_support;

use airlift_bundle::NoProgress;
use airlift_registry::auth::{Credentials, Secret};
use airlift_registry::error::RegistryError;
use airlift_registry::pull::{PullError, RegistryPuller};
use airlift_testkit::fault_proxy::{Fault, FaultProxy, Rule, Schedule};
use airlift_testkit::images::sample_set;
use airlift_testkit::registry::TestRegistry;
use pull_support::{options_for, platforms, store};

#[tokio::test]
async fn server_errors_rate_limits_and_resets_are_retried() {
    let tmp = tempfile::tempdir().unwrap();
    let set = sample_set(&tmp.path().join("layout"), 121, 2 << 20).unwrap();
    let reg = TestRegistry::plain();
    reg.seed(&set.dir, "multi", "acme/multi:2.0");
    let proxy = FaultProxy::start(
        reg.host().parse().unwrap(),
        vec![
            Rule::new(Fault::Status(429), Schedule::FirstN(1))
                .method("GET")
                .path_contains("/manifests/"),
            Rule::new(Fault::Status(500), Schedule::FirstN(2))
                .method("GET")
                .path_contains("/blobs/"),
            Rule::new(
                Fault::ResetResponseBody { after: 128 << 10 },
                Schedule::EveryNth(2),
            )
            .method("GET")
            .path_contains("/blobs/")
            .max(3),
        ],
    )
    .await;
    let store = store(tmp.path());
    let puller = RegistryPuller::new(
        store.clone(),
        options_for(&reg, std::slice::from_ref(&proxy.host())),
    )
    .unwrap();
    let img = puller
        .pull(
            &format!("{}/acme/multi:2.0", proxy.host()),
            &platforms(&["linux/amd64", "linux/arm64"]),
            &NoProgress,
        )
        .await
        .unwrap();
    assert_eq!(img.top.digest, set.multi.index.digest);
    assert!(
        proxy.injected() >= 4,
        "too few faults injected: {:?}",
        proxy.fault_log()
    );
    for b in &img.blobs {
        assert!(store.contains(&b.digest));
    }
}

#[tokio::test]
async fn persistent_server_errors_give_up_with_a_named_error() {
    let tmp = tempfile::tempdir().unwrap();
    let set = sample_set(&tmp.path().join("layout"), 131, 10_000).unwrap();
    let reg = TestRegistry::plain();
    reg.seed(&set.dir, "api", "acme/api:1.0");
    let proxy = FaultProxy::start(
        reg.host().parse().unwrap(),
        vec![Rule::new(Fault::Status(503), Schedule::Always)
            .path_contains("/blobs/")
            .max(1000)],
    )
    .await;
    let puller = RegistryPuller::new(
        store(tmp.path()),
        options_for(&reg, std::slice::from_ref(&proxy.host())),
    )
    .unwrap();
    let err = puller
        .pull(&format!("{}/acme/api:1.0", proxy.host()), &[], &NoProgress)
        .await
        .unwrap_err();
    assert!(
        matches!(
            &err,
            PullError::Registry(RegistryError::Status { status: 503, target, .. })
                if target.registry == proxy.host()
        ),
        "{err:?}"
    );
    // Every attempt of the retry policy was used (4), then it gave up.
    assert_eq!(proxy.injected(), 4, "{:?}", proxy.fault_log());
    assert!(err.hint().contains("logs"), "{}", err.hint());
}

#[tokio::test]
async fn bearer_token_auth_is_followed() {
    let tmp = tempfile::tempdir().unwrap();
    let set = sample_set(&tmp.path().join("layout"), 141, 50_000).unwrap();
    let reg = TestRegistry::plain();
    reg.seed(&set.dir, "api", "acme/api:1.0");
    let proxy =
        FaultProxy::start_with_token_auth(reg.host().parse().unwrap(), vec![], "bob", "tok-pw")
            .await;
    let reference = format!("{}/acme/api:1.0", proxy.host());
    let opts = options_for(&reg, std::slice::from_ref(&proxy.host()));

    let puller = RegistryPuller::new(
        store(tmp.path()),
        opts.clone().with_credentials(
            proxy.host(),
            Credentials::basic("bob", Secret::new("tok-pw")),
        ),
    )
    .unwrap();
    let img = puller.pull(&reference, &[], &NoProgress).await.unwrap();
    assert_eq!(img.top.digest, set.api.manifest.digest);
    assert!(proxy.tokens_issued() >= 1);

    let puller = RegistryPuller::new(
        store(&tmp.path().join("second")),
        opts.with_credentials(proxy.host(), Credentials::basic("bob", Secret::new("nope"))),
    )
    .unwrap();
    let err = puller.pull(&reference, &[], &NoProgress).await.unwrap_err();
    assert!(
        matches!(
            &err,
            PullError::Registry(RegistryError::AuthRefused { status: 401, .. })
        ),
        "{err:?}"
    );
}
