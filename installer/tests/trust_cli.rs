//! Issue 10 through the real `airlift-install`: the bundle's sha256 as its identity, bounded
//! inputs (`--key /dev/zero`, `--values /dev/zero`, `--password-stdin < /dev/zero`), hostile text
//! escaped before it reaches the terminal, and tampering reported as tampering.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use airlift_bundle::schema::config::ConfigSchema;
use airlift_bundle::schema::manifest::SIGNATURE_PATH;
use airlift_bundle::{Bundle, DirBlobStore};
use airlift_testkit::canonical_tar::CanonicalTar;
use airlift_testkit::images::sample_set;
use support::s;

mod support;

struct Env {
    dir: tempfile::TempDir,
    bundle: PathBuf,
    key: PathBuf,
}

/// A signed bundle of the sample set whose vendor and description carry terminal escapes.
fn env(vendor: &str) -> Env {
    let dir = tempfile::tempdir().unwrap();
    let set = sample_set(&dir.path().join("layout"), 11, 16 << 10).unwrap();
    let store = DirBlobStore::open(set.dir.join("blobs")).unwrap();
    let components = vec![support::component(
        "api",
        support::sample_images(&set),
        vec![],
    )];
    let mut m = support::manifest("demo", components, ConfigSchema::default());
    m.metadata.vendor = vendor.into();
    m.metadata.description = Some(format!("{vendor} product"));
    let written = support::write(dir.path(), m, vec![], &store, true);
    Env {
        dir,
        bundle: written.bundle,
        key: written.key,
    }
}

fn run(env: &Env, args: &[&str]) -> Output {
    support::airlift_install(&env.dir.path().join("state"), args)
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// `sha256sum FILE`, the hex digest.
fn sha256sum(path: &Path) -> String {
    let o = Command::new("sha256sum").arg(path).output().unwrap();
    assert!(o.status.success(), "sha256sum is installed");
    String::from_utf8(o.stdout).unwrap()[..64].to_string()
}

#[test]
fn verify_and_inspect_print_the_bundle_sha256_that_sha256sum_prints() {
    let e = env("Acme");
    let want = sha256sum(&e.bundle);
    let o = run(&e, &["verify", s(&e.bundle), "--key", s(&e.key)]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains(&format!("sha256:    {want}")),
        "{}",
        text(&o)
    );
    // From a recorded proof too, and as JSON.
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
    assert_eq!(v["sha256"], format!("sha256:{want}"));
    let o = run(&e, &["inspect", s(&e.bundle)]);
    assert!(
        text(&o).contains(&format!("SHA-256    {want}")),
        "{}",
        text(&o)
    );
    let o = run(&e, &["inspect", s(&e.bundle), "--output", "json"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["sha256"], want);
}

#[test]
fn inspect_without_a_key_escapes_terminal_sequences_from_the_bundle() {
    // ESC[8m would hide the "NOT checked" line; OSC 0 would set the terminal title.
    let e = env("Acme\u{1b}[8m\u{1b}]0;pwned\u{7}");
    let o = run(&e, &["inspect", s(&e.bundle)]);
    assert!(o.status.success(), "{}", text(&o));
    let out = text(&o);
    assert!(!out.contains('\u{1b}') && !out.contains('\u{7}'), "{out:?}");
    assert!(out.contains("Acme\\e[8m\\e]0;pwned\\u{7}"), "{out}");
    assert!(out.contains("NOT checked"), "{out}");
    let o = run(&e, &["verify", s(&e.bundle), "--key", s(&e.key)]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(!text(&o).contains('\u{1b}'), "{:?}", text(&o));
}

#[test]
fn key_from_dev_zero_is_refused_by_name() {
    let e = env("Acme");
    let o = run(&e, &["verify", s(&e.bundle), "--key", "/dev/zero"]);
    let out = text(&o);
    assert_eq!(o.status.code(), Some(2), "{out}");
    assert!(
        out.contains("key file `/dev/zero` is larger than the 65536-byte limit"),
        "{out}"
    );
}

#[test]
fn garbage_public_key_file_is_named_as_not_a_key() {
    let e = env("Acme");
    let garbage = e.dir.path().join("garbage.pub");
    std::fs::write(&garbage, [0xffu8, 0xfe, 0x00, 0x80, 0x01]).unwrap();
    let o = run(&e, &["verify", s(&e.bundle), "--key", s(&garbage)]);
    let out = text(&o);
    assert_eq!(o.status.code(), Some(2), "{out}");
    assert!(
        out.contains("is not an SPKI PEM ECDSA P-256 public key"),
        "{out}"
    );
    assert!(!out.contains("cannot read"), "{out}");
}

#[test]
fn values_from_dev_zero_is_refused_by_name() {
    let e = env("Acme");
    let o = run(
        &e,
        &[
            "config",
            s(&e.bundle),
            "--key",
            s(&e.key),
            "--yes",
            "--values",
            "/dev/zero",
        ],
    );
    let out = text(&o);
    assert!(!o.status.success(), "{out}");
    assert!(
        out.contains("values file `/dev/zero` is refused before it is parsed"),
        "{out}"
    );
    assert!(out.contains("larger than the 16777216-byte limit"), "{out}");
}

#[test]
fn password_from_an_endless_stdin_is_refused_by_name() {
    let e = env("Acme");
    let o = Command::new(env!("CARGO_BIN_EXE_airlift-install"))
        .args([
            "push",
            s(&e.bundle),
            "--key",
            s(&e.key),
            "--registry",
            "127.0.0.1:9",
            "--no-progress",
            "--registry-user",
            "alice",
            "--password-stdin",
        ])
        .env("NO_COLOR", "1")
        .env("AIRLIFT_STATE_DIR", e.dir.path().join("state"))
        .stdin(Stdio::from(std::fs::File::open("/dev/zero").unwrap()))
        .output()
        .unwrap();
    let out = text(&o);
    assert!(!o.status.success(), "{out}");
    assert!(
        out.contains("cannot read the password from standard input"),
        "{out}"
    );
    assert!(out.contains("larger than the 65536-byte limit"), "{out}");
}

#[test]
fn removed_signature_is_reported_as_tampering_without_suggesting_to_skip() {
    let e = env("Acme");
    let bundle = Bundle::open(&e.bundle).unwrap();
    let members = bundle.members().to_vec();
    let bytes = std::fs::read(&e.bundle).unwrap();
    drop(bundle);
    // The same members without the signature, in the canonical encoding (the blobs realigned,
    // as a careful attacker would).
    let mut stripped = CanonicalTar::new(Vec::new(), members[0].mtime);
    for m in members.iter().filter(|m| m.path != SIGNATURE_PATH) {
        stripped.member(
            &m.path,
            &bytes[m.data_offset as usize..(m.data_offset + m.size) as usize],
        );
    }
    let stripped = stripped.finish();
    let p = e.dir.path().join("stripped.airlift");
    std::fs::write(&p, stripped).unwrap();
    for args in [
        vec!["verify", s(&p), "--key", s(&e.key)],
        vec!["verify", s(&p)],
        vec!["verify", s(&p), "--insecure-skip-verify"],
        vec!["inspect", s(&p)],
    ] {
        let o = run(&e, &args);
        let out = text(&o);
        assert_eq!(o.status.code(), Some(3), "{args:?}: {out}");
        assert!(out.contains("the signature was removed"), "{out}");
        assert!(!out.contains("--insecure-skip-verify"), "{out}");
    }
}

#[test]
fn empty_file_says_it_is_not_a_bundle() {
    let e = env("Acme");
    let p = e.dir.path().join("empty.airlift");
    std::fs::write(&p, b"").unwrap();
    let o = run(&e, &["verify", s(&p), "--key", s(&e.key)]);
    let out = text(&o);
    assert_eq!(o.status.code(), Some(3), "{out}");
    assert!(
        out.contains("holds no tar member (0 bytes): it is not an Airlift bundle"),
        "{out}"
    );
    assert!(!out.contains("``"), "{out}");
}
