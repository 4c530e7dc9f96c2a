//! `airlift-pack publish` against a real `docker-registry` with TLS and htpasswd (issue 17):
//! images and the artifact land, a second run changes nothing, a tag holding another bundle is
//! refused, and a bundle that does not verify sends nothing.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::{Command, Stdio};

use airlift_bundle::PrivateKey;
use airlift_testkit::bundles::{ShopBundles, ShopVersion};
use airlift_testkit::registry::TestRegistry;

const USER: &str = "vendor";
const PASSWORD: &str = "pack-s3cret";

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl std::fmt::Display for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit {}\n--- stdout\n{}--- stderr\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

fn publish(registry: &TestRegistry, bundle: &Path, key: &Path, target: &str) -> Run {
    let out = Command::new(env!("CARGO_BIN_EXE_airlift-pack"))
        .args(["publish", bundle.to_str().unwrap(), target, "--key"])
        .arg(key)
        .arg("--registry-ca")
        .arg(registry.ca_pem().unwrap())
        .args(["--registry-user", USER])
        .env("AIRLIFT_REGISTRY_PASSWORD", PASSWORD)
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn raw_manifest(registry: &TestRegistry, reference: &str) -> serde_json::Value {
    let tls = registry.tls_files().unwrap();
    let out = Command::new("skopeo")
        .args(["inspect", "--raw"])
        .arg(format!("--cert-dir={}", tls.cert_dir.display()))
        .arg(format!("--creds={USER}:{PASSWORD}"))
        .arg(format!("docker://{}/{reference}", registry.host()))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn publish_is_idempotent_and_never_replaces_a_published_tag() {
    let dir = tempfile::tempdir().unwrap();
    let bundles = ShopBundles::new(dir.path()).unwrap();
    let key = bundles.public_key().unwrap();
    let registry = TestRegistry::tls_with_auth(USER, PASSWORD);
    let bundle = bundles.write(&ShopVersion::new("1.0.0")).unwrap();
    let target = format!("oci://{}/acme/shop", registry.host());

    let r = publish(&registry, &bundle, &key, &target);
    assert_eq!(r.code, 0, "{r}");
    assert!(
        r.stdout.contains(&format!(
            "Published shop 1.0.0 (channel stable) as oci://{}/acme/shop:1.0.0\n",
            registry.host()
        )),
        "{r}"
    );
    let first = raw_manifest(&registry, "acme/shop:1.0.0");
    assert_eq!(
        first["artifactType"],
        "application/vnd.airlift.bundle.v1alpha1"
    );
    assert_eq!(
        first["annotations"]["dev.airlift.bundle.channel"], "stable",
        "{first}"
    );
    let image = raw_manifest(&registry, "acme/shop/acme/api:1.0");
    assert!(
        image["mediaType"].is_string(),
        "the image is an ordinary image: {image}"
    );

    let r = publish(&registry, &bundle, &key, &target);
    assert_eq!(r.code, 0, "{r}");
    assert!(
        r.stdout.contains("already published: nothing changed"),
        "{r}"
    );
    assert!(r.stdout.contains("0 layers sent"), "{r}");

    let mut other = ShopVersion::new("1.0.0");
    other.color = "red".into();
    let rebuilt = bundles.write(&other).unwrap();
    let r = publish(&registry, &rebuilt, &key, &target);
    assert_eq!(r.code, 2, "{r}");
    assert!(r.stderr.contains("already holds another bundle"), "{r}");
    assert!(r.stderr.contains("hint:"), "{r}");
    assert_eq!(
        raw_manifest(&registry, "acme/shop:1.0.0"),
        first,
        "the published tag is unchanged"
    );

    // The same bundle under an explicit tag is fine.
    let r = publish(&registry, &rebuilt, &key, &format!("{target}:1.0.0-red"));
    assert_eq!(r.code, 0, "{r}");
}

#[test]
fn flatten_puts_every_image_one_segment_below_the_repository() {
    let dir = tempfile::tempdir().unwrap();
    let bundles = ShopBundles::new(dir.path()).unwrap();
    let key = bundles.public_key().unwrap();
    let registry = TestRegistry::tls_with_auth(USER, PASSWORD);
    let bundle = bundles.write(&ShopVersion::new("1.0.0")).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_airlift-pack"))
        .args(["publish", bundle.to_str().unwrap()])
        .arg(format!("oci://{}/marketplace/shop", registry.host()))
        .arg("--key")
        .arg(&key)
        .arg("--flatten")
        .arg("--registry-ca")
        .arg(registry.ca_pem().unwrap())
        .args(["--registry-user", USER])
        .env("AIRLIFT_REGISTRY_PASSWORD", PASSWORD)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let image = raw_manifest(&registry, "marketplace/shop/acme-api:1.0");
    assert!(image["mediaType"].is_string(), "{image}");
    let artifact = raw_manifest(&registry, "marketplace/shop:1.0.0");
    let published: Vec<&str> = artifact["layers"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|l| l["annotations"]["dev.airlift.image.published"].as_str())
        .collect();
    assert_eq!(published.len(), 1, "{artifact}");
    assert!(
        published[0].starts_with(&format!(
            "{}/marketplace/shop/acme-api@sha256:",
            registry.host()
        )),
        "{published:?}"
    );
}

#[test]
fn a_bundle_that_does_not_verify_publishes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let bundles = ShopBundles::new(dir.path()).unwrap();
    let registry = TestRegistry::tls_with_auth(USER, PASSWORD);
    let bundle = bundles.write(&ShopVersion::new("1.0.0")).unwrap();
    let other_key = dir.path().join("other.pub");
    std::fs::write(
        &other_key,
        PrivateKey::generate().public_key().to_pem().unwrap(),
    )
    .unwrap();
    let r = publish(
        &registry,
        &bundle,
        &other_key,
        &format!("oci://{}/acme/shop", registry.host()),
    );
    assert_eq!(r.code, 3, "{r}");
    assert!(
        !registry
            .storage_dir()
            .join("docker/registry/v2/repositories")
            .exists(),
        "nothing reached the registry"
    );
}
