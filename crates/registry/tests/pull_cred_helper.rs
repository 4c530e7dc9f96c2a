//! Credentials from a real `docker-credential-<name>` helper program named in an auth file.
//! (Its own test binary: it puts the helper on this process's PATH.)
#![allow(clippy::unwrap_used)]

mod pull_support;

use std::os::unix::fs::PermissionsExt;

use airlift_bundle::NoProgress;
use airlift_registry::auth::{resolve_credentials, CredentialOrigin, Credentials, Secret};
use airlift_registry::pull::{PullError, RegistryPuller};
use airlift_registry::RegistryOptions;
use airlift_testkit::images::sample_set;
use airlift_testkit::registry::TestRegistry;
use pull_support::store;

#[tokio::test]
async fn credential_helper_supplies_the_password() {
    let tmp = tempfile::tempdir().unwrap();
    let set = sample_set(&tmp.path().join("layout"), 151, 20_000).unwrap();
    let reg = TestRegistry::tls_with_auth("carol", "from the helper");
    reg.seed(&set.dir, "api", "acme/api:1.0");

    // A helper that answers for our registry only, like docker-credential-pass does.
    let bin = tmp.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let helper = bin.join("docker-credential-airlift-test");
    std::fs::write(
        &helper,
        format!(
            "#!/bin/sh\n[ \"$1\" = get ] || exit 2\nread host\n\
             if [ \"$host\" = \"{}\" ]; then\n\
             printf '{{\"ServerURL\":\"%s\",\"Username\":\"carol\",\"Secret\":\"from the helper\"}}' \"$host\"\n\
             else echo 'credentials not found in native keychain'; exit 1; fi\n",
            reg.host()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&helper, std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    std::env::set_var("PATH", path);

    let auth = tmp.path().join("config.json");
    std::fs::write(&auth, r#"{"auths":{},"credsStore":"airlift-test"}"#).unwrap();
    let opts = RegistryOptions::default()
        .with_ca_file(reg.ca_pem().unwrap())
        .with_auth_file(&auth);

    let found = resolve_credentials(&reg.host(), &opts).unwrap().unwrap();
    assert_eq!(
        found.credentials,
        Credentials::basic("carol", Secret::new("from the helper"))
    );
    assert_eq!(
        found.origin,
        CredentialOrigin::Helper("airlift-test".into())
    );
    // "Not found" from the helper means anonymous, not an error.
    assert!(resolve_credentials("other.example:5000", &opts)
        .unwrap()
        .is_none());

    let puller = RegistryPuller::new(store(tmp.path()), opts.clone()).unwrap();
    let img = puller
        .pull(&format!("{}/acme/api:1.0", reg.host()), &[], &NoProgress)
        .await
        .unwrap();
    assert_eq!(img.top.digest, set.api.manifest.digest);

    // A helper that fails is a named error, not a silent anonymous pull.
    std::fs::write(&helper, "#!/bin/sh\necho 'keychain locked' >&2\nexit 3\n").unwrap();
    let puller = RegistryPuller::new(store(&tmp.path().join("2")), opts).unwrap();
    let err = puller
        .pull(&format!("{}/acme/api:1.0", reg.host()), &[], &NoProgress)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, PullError::Auth { registry, .. } if *registry == reg.host()),
        "{err:?}"
    );
    let chain = format!("{err}: {}", std::error::Error::source(&err).unwrap());
    assert!(chain.contains("keychain locked"), "{chain}");
}
