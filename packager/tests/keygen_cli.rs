//! `airlift-pack keygen`, run as the real binary.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns

use std::os::unix::fs::PermissionsExt;
use std::process::Command;

fn keygen(prefix: &std::path::Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_airlift-pack"))
        .args(["keygen", "--out"])
        .arg(prefix)
        .env("NO_COLOR", "1")
        .output()
        .unwrap()
}

#[test]
fn keygen_writes_a_0600_key_and_a_public_key_openssl_reads() {
    let dir = tempfile::tempdir().unwrap();
    let prefix = dir.path().join("vendor");
    let o = keygen(&prefix);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("fingerprint       sha256:"), "{out}");
    let key = dir.path().join("vendor.key");
    let public = dir.path().join("vendor.pub");
    assert_eq!(
        std::fs::metadata(&key).unwrap().permissions().mode() & 0o777,
        0o600
    );
    // openssl reads both files, and the public key matches the private one.
    let derived = Command::new("openssl")
        .args(["pkey", "-pubout", "-in"])
        .arg(&key)
        .output()
        .expect("openssl is required for this test");
    assert!(derived.status.success());
    assert_eq!(derived.stdout, std::fs::read(&public).unwrap());
}

#[test]
fn keygen_never_overwrites_and_says_why() {
    let dir = tempfile::tempdir().unwrap();
    let prefix = dir.path().join("vendor");
    assert!(keygen(&prefix).status.success());
    let before = std::fs::read(dir.path().join("vendor.key")).unwrap();
    let o = keygen(&prefix);
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("already exists; refusing to overwrite it"),
        "{err}"
    );
    assert!(err.contains("hint: choose another --out prefix"), "{err}");
    assert_eq!(
        std::fs::read(dir.path().join("vendor.key")).unwrap(),
        before
    );
}
