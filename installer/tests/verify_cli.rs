//! `airlift-install verify` and `inspect`, run as the real binary on real bundles.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns

use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::process::Output;

use airlift_bundle::schema::config::{ConfigGroup, ConfigItem, ConfigSchema, ConfigType};
use airlift_bundle::{Digest, DirBlobStore, PrivateKey};
use airlift_testkit::images::sample_set;
use support::s;

mod support;

struct Env {
    dir: tempfile::TempDir,
    bundle: PathBuf,
    key: PathBuf,
    layer: Digest,
}

/// A signed bundle of the testkit sample set (4 images, one multi-arch), plus its public key.
fn env(signed: bool) -> Env {
    let dir = tempfile::tempdir().unwrap();
    let set = sample_set(&dir.path().join("layout"), 7, 256 << 10).unwrap();
    let store = DirBlobStore::open(set.dir.join("blobs")).unwrap();
    let config = ConfigSchema {
        groups: vec![ConfigGroup {
            name: "ingress".into(),
            title: None,
            description: None,
            items: vec![ConfigItem {
                name: "hostname".into(),
                kind: ConfigType::Hostname,
                description: "public host name".into(),
                default: Some(serde_json::json!("app.example.com")),
                required: true,
                validation: Default::default(),
                generate: None,
            }],
        }],
    };
    let components = vec![support::component(
        "api",
        support::sample_images(&set),
        vec![],
    )];
    let m = support::manifest("demo", components, config);
    let written = support::write(dir.path(), m, vec![], &store, signed);
    Env {
        layer: set.api.layers[1].blob.digest.clone(),
        dir,
        bundle: written.bundle,
        key: written.key,
    }
}

fn run(env: &Env, args: &[&str]) -> Output {
    support::airlift_install(&env.dir.path().join("state"), args)
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn verify_with_the_right_key_succeeds() {
    let e = env(true);
    let o = run(&e, &["verify", s(&e.bundle), "--key", s(&e.key)]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(out.contains("bundle demo 1.0.0 (Acme) is intact"), "{out}");
    assert!(out.contains("verified with key sha256:"), "{out}");
    assert!(out.contains("4 images"), "{out}");
}

#[test]
fn verify_json_output_and_recorded_proof() {
    let e = env(true);
    let o = run(
        &e,
        &[
            "verify",
            s(&e.bundle),
            "--key",
            s(&e.key),
            "--output",
            "json",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["verified"], true);
    assert_eq!(v["images"], 4);
    assert_eq!(v["fromProof"], false);
    assert_eq!(v["signature"]["status"], "verified");
    assert!(v["bytesHashed"].as_u64().unwrap() > 256 << 10);
    // The second run uses the recorded proof; --no-cache hashes again.
    let o = run(
        &e,
        &[
            "verify",
            s(&e.bundle),
            "--key",
            s(&e.key),
            "--output",
            "json",
        ],
    );
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["fromProof"], true);
    assert_eq!(v["bytesHashed"], 0);
    let o = run(
        &e,
        &[
            "verify",
            s(&e.bundle),
            "--key",
            s(&e.key),
            "--output",
            "json",
            "--no-cache",
        ],
    );
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["fromProof"], false);
}

#[test]
fn verify_tampered_layer_exits_3_naming_the_blob_with_a_hint() {
    let e = env(true);
    // Record a proof first: the tamper must still be caught.
    assert!(run(&e, &["verify", s(&e.bundle), "--key", s(&e.key)])
        .status
        .success());
    let b = airlift_bundle::Bundle::open(&e.bundle).unwrap();
    let at = b.blob_member(&e.layer).unwrap().data_offset + 100;
    drop(b);
    let f = std::fs::File::options()
        .read(true)
        .write(true)
        .open(&e.bundle)
        .unwrap();
    let mut byte = [0u8; 1];
    f.read_exact_at(&mut byte, at).unwrap();
    byte[0] ^= 0x80;
    f.write_all_at(&byte, at).unwrap();
    drop(f);
    let o = run(&e, &["verify", s(&e.bundle), "--key", s(&e.key)]);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(err.contains("failed verification"), "{err}");
    assert!(
        err.contains(&format!(
            "blob {} (member `blobs/sha256/{}`) was tampered with",
            e.layer,
            e.layer.hex()
        )),
        "{err}"
    );
    assert!(err.contains("hint: do not install this bundle"), "{err}");
}

#[test]
fn verify_signed_bundle_without_key_exits_3_asking_for_the_key() {
    let e = env(true);
    let o = run(&e, &["verify", s(&e.bundle)]);
    assert_eq!(o.status.code(), Some(3));
    let err = stderr(&o);
    assert!(err.contains("the bundle is signed"), "{err}");
    assert!(
        err.contains("hint: pass the vendor's public key with --key"),
        "{err}"
    );
    // Explicit skip is accepted and says so.
    let o = run(&e, &["verify", s(&e.bundle), "--insecure-skip-verify"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("NOT checked (--insecure-skip-verify)"));
}

#[test]
fn verify_with_wrong_key_exits_3_naming_the_signer() {
    let e = env(true);
    let other = e.dir.path().join("other.pub");
    std::fs::write(
        &other,
        PrivateKey::generate().public_key().to_pem().unwrap(),
    )
    .unwrap();
    let o = run(&e, &["verify", s(&e.bundle), "--key", s(&other)]);
    assert_eq!(o.status.code(), Some(3));
    let err = stderr(&o);
    assert!(err.contains("was signed by key sha256:"), "{err}");
    assert!(
        err.contains("hint: pass the public key whose fingerprint is sha256:"),
        "{err}"
    );
}

#[test]
fn verify_unsigned_bundle_with_key_exits_3() {
    let e = env(false);
    let o = run(&e, &["verify", s(&e.bundle), "--key", s(&e.key)]);
    assert_eq!(o.status.code(), Some(3));
    let err = stderr(&o);
    assert!(
        err.contains("was given but the bundle is unsigned"),
        "{err}"
    );
}

#[test]
fn verify_with_a_private_key_as_key_is_a_usage_error() {
    let e = env(true);
    let wrong = e.dir.path().join("private.pem");
    std::fs::write(&wrong, PrivateKey::generate().to_pem().unwrap().expose()).unwrap();
    let o = run(&e, &["verify", s(&e.bundle), "--key", s(&wrong)]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("not the private key"), "{}", stderr(&o));
}

#[test]
fn verify_missing_bundle_names_the_path() {
    let e = env(true);
    let missing = e.dir.path().join("nope.airlift");
    let o = run(&e, &["verify", s(&missing), "--key", s(&e.key)]);
    // A file named on the command line that does not exist: a wrong command line.
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("nope.airlift"), "{}", stderr(&o));
}

#[test]
fn inspect_shows_images_platforms_components_config_and_signature() {
    let e = env(true);
    let o = run(&e, &["inspect", s(&e.bundle)]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    for want in [
        "Bundle     demo 1.0.0 (stable) by Acme",
        "signed, NOT checked (pass --key vendor.pub)",
        "registry.example.com/acme/multi:1.0",
        "linux/amd64,linux/arm64",
        "ingress.hostname",
        "\"app.example.com\"",
        "COMPONENT",
    ] {
        assert!(out.contains(want), "missing `{want}` in:\n{out}");
    }
    let o = run(
        &e,
        &[
            "inspect",
            s(&e.bundle),
            "--key",
            s(&e.key),
            "--output",
            "json",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["signature"]["status"], "verified");
    assert_eq!(v["images"].as_array().unwrap().len(), 4);
    let multi = v["images"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["reference"] == "registry.example.com/acme/multi:1.0")
        .unwrap();
    assert_eq!(
        multi["platforms"],
        serde_json::json!(["linux/amd64", "linux/arm64"])
    );
    assert!(multi["size"].as_u64().unwrap() > 256 << 10);
    assert_eq!(v["config"][0]["key"], "ingress.hostname");
    assert_eq!(v["components"][0]["name"], "api");
}
