//! `airlift-pack license issue`, run as the real binary: the license verifies with our reader
//! and with `openssl dgst -verify`, and a changed byte fails both.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns

use std::path::Path;
use std::process::{Command, Output};

fn pack(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_airlift-pack"))
        .args(args)
        .env("NO_COLOR", "1")
        .output()
        .unwrap()
}

/// Splits the license into the signed body and the DER signature, as the bundle-format doc
/// tells a user to do with `sed` and `base64 -d`, and runs `openssl dgst -verify`.
fn openssl_verifies(dir: &Path, license: &[u8], public: &Path) -> bool {
    let text = std::str::from_utf8(license).unwrap();
    let (body, sig) = text.split_once("\n---\nsignature: ").unwrap();
    std::fs::write(dir.join("body"), format!("{body}\n")).unwrap();
    std::fs::write(dir.join("sig.b64"), sig).unwrap();
    let der = Command::new("openssl")
        .args(["base64", "-d", "-A", "-in"])
        .arg(dir.join("sig.b64"))
        .output()
        .expect("openssl is required for this test");
    std::fs::write(dir.join("sig.der"), der.stdout).unwrap();
    Command::new("openssl")
        .args(["dgst", "-sha256", "-verify"])
        .arg(public)
        .arg("-signature")
        .arg(dir.join("sig.der"))
        .arg(dir.join("body"))
        .output()
        .unwrap()
        .status
        .success()
}

#[test]
fn an_issued_license_verifies_with_openssl_and_with_the_reader() {
    let dir = tempfile::tempdir().unwrap();
    let prefix = dir.path().join("vendor");
    assert!(pack(&["keygen", "--out", prefix.to_str().unwrap()])
        .status
        .success());
    let key = dir.path().join("vendor.key");
    let public = dir.path().join("vendor.pub");
    let out = dir.path().join("acme.lic");
    let o = pack(&[
        "license",
        "issue",
        "--key",
        key.to_str().unwrap(),
        "--customer",
        "Example Corp",
        "--customer-id",
        "cust-42",
        "--channel",
        "stable",
        "--expires",
        "2099-12-31",
        "--max-nodes",
        "5",
        "--entitlement",
        "reports=true",
        "--entitlement",
        "seats=25",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(
        stdout.contains("for Example Corp (cust-42), channel stable"),
        "{stdout}"
    );
    let bytes = std::fs::read(&out).unwrap();
    let text = String::from_utf8(bytes.clone()).unwrap();
    for line in [
        "kind: License\n",
        "customer: Example Corp\n",
        "expires: 2099-12-31T23:59:59Z\n",
        "maxNodes: 5\n",
        "  seats: '25'\n",
    ] {
        assert!(text.contains(line), "{line} missing:\n{text}");
    }
    let pubkey = airlift_bundle::PublicKey::load(&public).unwrap();
    let license = airlift_bundle::license::verify(&bytes, &pubkey).unwrap();
    assert_eq!(license.customer_id, "cust-42");
    assert!(openssl_verifies(dir.path(), &bytes, &public));

    let tampered = text.replace("maxNodes: 5", "maxNodes: 6");
    assert!(!openssl_verifies(dir.path(), tampered.as_bytes(), &public));
    assert!(airlift_bundle::license::verify(tampered.as_bytes(), &pubkey).is_err());

    // Never overwritten; a bad date is a usage error.
    let again = pack(&[
        "license",
        "issue",
        "--key",
        key.to_str().unwrap(),
        "--customer",
        "X",
        "--customer-id",
        "x",
        "--channel",
        "stable",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(again.status.code(), Some(1));
    assert_eq!(std::fs::read(&out).unwrap(), bytes);
    let bad = pack(&[
        "license",
        "issue",
        "--key",
        key.to_str().unwrap(),
        "--customer",
        "X",
        "--customer-id",
        "x",
        "--channel",
        "stable",
        "--expires",
        "next year",
        "--out",
        dir.path().join("bad.lic").to_str().unwrap(),
    ]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("is not a date"));
}
