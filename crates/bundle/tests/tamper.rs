//! Tamper tests: one flipped bit in each kind of member, truncation, and added, removed or resized
//! members each fail verification with the right named error.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns

mod common;

use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use airlift_bundle::reader::blob_member_path;
use airlift_bundle::schema::manifest::{MANIFEST_PATH, SIGNATURE_PATH};
use airlift_bundle::{
    Bundle, BundleError, Digest, IntegrityError, NoProgress, TarError, Trust, TrustError,
};
use common::*;

fn flip_bit(path: &Path, offset: u64) {
    let f = std::fs::File::options()
        .read(true)
        .write(true)
        .open(path)
        .unwrap();
    let mut b = [0u8; 1];
    f.read_exact_at(&mut b, offset).unwrap();
    b[0] ^= 0x01;
    f.write_all_at(&b, offset).unwrap();
}

fn offset_of(bundle: &Path, member: &str) -> (u64, u64) {
    let b = Bundle::open(bundle).unwrap();
    let m = b.member(member).unwrap();
    (m.data_offset, m.size)
}

/// Opens with the key and verifies everything; returns the first error.
fn verify(b: &Built) -> BundleError {
    let trust = Trust::Key(b.key.public_key());
    match Bundle::open_trusted(&b.bundle, &trust) {
        Err(e) => e,
        Ok(bundle) => bundle.verify(&trust, &NoProgress).unwrap_err(),
    }
}

#[test]
fn untouched_bundle_verifies() {
    let b = built();
    let trust = Trust::Key(b.key.public_key());
    Bundle::open_trusted(&b.bundle, &trust)
        .unwrap()
        .verify(&trust, &NoProgress)
        .unwrap();
}

#[test]
fn flipped_bit_in_manifest_is_tampered_manifest() {
    let b = built();
    let (off, size) = offset_of(&b.bundle, MANIFEST_PATH);
    let text = std::fs::read(&b.bundle).unwrap()[off as usize..(off + size) as usize].to_vec();
    let at = text.windows(4).position(|w| w == b"Acme").unwrap() as u64;
    flip_bit(&b.bundle, off + at + 1); // `Acme` -> `Abme`: still valid YAML
    let err = verify(&b);
    assert!(
        matches!(err, BundleError::Trust(TrustError::TamperedManifest { .. })),
        "{err:?}"
    );
    // The unverified open still parses it, and verify() refuses it the same way.
    let bundle = Bundle::open(&b.bundle).unwrap();
    let err = bundle
        .verify(&Trust::Key(b.key.public_key()), &NoProgress)
        .unwrap_err();
    assert!(
        matches!(err, BundleError::Trust(TrustError::TamperedManifest { .. })),
        "{err:?}"
    );
}

#[test]
fn flipped_bit_in_manifest_structure_is_still_tampered_manifest() {
    // A flip that breaks the YAML is reported as tampering, not as a parse error: the signature
    // is checked before the manifest is parsed.
    let b = built();
    let (off, _) = offset_of(&b.bundle, MANIFEST_PATH);
    flip_bit(&b.bundle, off + 3); // `apiVersion` -> `apiWersion`... any byte of the first key
    let err = verify(&b);
    assert!(
        matches!(err, BundleError::Trust(TrustError::TamperedManifest { .. })),
        "{err:?}"
    );
}

#[test]
fn flipped_bit_in_signature_is_tampered_manifest() {
    let b = built();
    let (off, size) = offset_of(&b.bundle, SIGNATURE_PATH);
    flip_bit(&b.bundle, off + size - 1); // last byte of `s`: still valid DER
    let err = verify(&b);
    assert!(
        matches!(err, BundleError::Trust(TrustError::TamperedManifest { .. })),
        "{err:?}"
    );
}

#[test]
fn flipped_bit_in_signature_der_header_is_malformed_signature() {
    let b = built();
    let (off, _) = offset_of(&b.bundle, SIGNATURE_PATH);
    flip_bit(&b.bundle, off); // 0x30 SEQUENCE -> 0x31
    let err = verify(&b);
    assert!(
        matches!(err, BundleError::Trust(TrustError::MalformedSignature)),
        "{err:?}"
    );
}

#[test]
fn flipped_bit_in_index_json_is_tampered_member() {
    let b = built();
    let (off, size) = offset_of(&b.bundle, "index.json");
    flip_bit(&b.bundle, off + size / 2);
    match verify(&b) {
        BundleError::Integrity(IntegrityError::TamperedMember { path, .. }) => {
            assert_eq!(path, "index.json")
        }
        other => panic!("expected TamperedMember(index.json), got {other:?}"),
    }
}

#[test]
fn flipped_bit_in_component_file_is_tampered_member() {
    let b = built();
    let (off, _) = offset_of(&b.bundle, "components/api/deployment.yaml");
    flip_bit(&b.bundle, off + 2);
    match verify(&b) {
        BundleError::Integrity(IntegrityError::TamperedMember { path, .. }) => {
            assert_eq!(path, "components/api/deployment.yaml")
        }
        other => panic!("expected TamperedMember, got {other:?}"),
    }
}

fn assert_tampered_blob(b: &Built, digest: &Digest) {
    let member = blob_member_path(digest);
    let (off, size) = offset_of(&b.bundle, &member);
    flip_bit(&b.bundle, off + size / 2);
    match verify(b) {
        BundleError::Integrity(IntegrityError::TamperedBlob {
            digest: d,
            member: m,
            actual,
        }) => {
            assert_eq!(&d, digest);
            assert_eq!(m, member);
            assert_ne!(&actual, digest);
            let msg = IntegrityError::TamperedBlob {
                digest: d.clone(),
                member: m,
                actual,
            }
            .to_string();
            assert!(
                msg.contains(&d.to_string()),
                "the message names the digest: {msg}"
            );
        }
        other => panic!("expected TamperedBlob({digest}), got {other:?}"),
    }
}

#[test]
fn flipped_bit_in_layer_is_tampered_blob() {
    let b = built();
    let layer = b.fixture.shared_layer.clone();
    assert_tampered_blob(&b, &layer);
}

#[test]
fn flipped_bit_in_config_is_tampered_blob() {
    let b = built();
    let config = b.fixture.a_config.clone();
    assert_tampered_blob(&b, &config);
}

#[test]
fn flipped_bit_in_image_manifest_is_tampered_blob() {
    let b = built();
    let top = b.fixture.images[0].1.clone();
    assert_tampered_blob(&b, &top);
}

#[test]
fn truncation_inside_a_blob_is_past_eof() {
    let b = built();
    let bundle = Bundle::open(&b.bundle).unwrap();
    let last = bundle.members().last().unwrap().clone();
    drop(bundle);
    assert!(last.size > 1);
    let f = std::fs::File::options()
        .write(true)
        .open(&b.bundle)
        .unwrap();
    f.set_len(last.data_offset + last.size / 2).unwrap();
    match verify(&b) {
        BundleError::Tar {
            source: TarError::PastEof { .. },
            ..
        } => {}
        other => panic!("expected PastEof, got {other:?}"),
    }
}

#[test]
fn truncation_at_a_member_boundary_is_missing_end() {
    let b = built();
    let bundle = Bundle::open(&b.bundle).unwrap();
    let last = bundle.members().last().unwrap().clone();
    drop(bundle);
    let f = std::fs::File::options()
        .write(true)
        .open(&b.bundle)
        .unwrap();
    f.set_len(last.header_offset).unwrap();
    // Without its end-of-archive blocks the file is not a canonical bundle.
    match verify(&b) {
        BundleError::Tar {
            source: TarError::MissingEnd { offset },
            ..
        } => assert_eq!(offset, last.header_offset),
        other => panic!("expected MissingEnd, got {other:?}"),
    }
}

/// Copies the bundle's tar with canonical headers, letting `edit` drop or replace members and append extra ones.
fn rewrite(
    src: &Path,
    dst: &Path,
    edit: impl Fn(&str, Vec<u8>) -> Option<Vec<u8>>,
    extra: &[(&str, &[u8])],
) {
    let src = Bundle::open(src).unwrap();
    let bytes = std::fs::read(src.path()).unwrap();
    let mtime = src.members()[0].mtime;
    let mut out = CanonicalTar::new(std::fs::File::create(dst).unwrap(), mtime);
    for m in src.members() {
        let start = m.data_offset as usize;
        let data = bytes[start..start + m.size as usize].to_vec();
        if let Some(data) = edit(&m.path, data) {
            out.member(&m.path, &data);
        }
    }
    for (path, data) in extra {
        out.member(path, data);
    }
    out.finish();
}

fn rewritten(b: &Built, name: &str) -> PathBuf {
    b.dir.path().join(name)
}

#[test]
fn extra_blob_is_named() {
    let b = built();
    let dst = rewritten(&b, "extra-blob.airlift");
    let payload = b"smuggled";
    let member = blob_member_path(&Digest::of_bytes(payload));
    rewrite(&b.bundle, &dst, |_, d| Some(d), &[(&member, payload)]);
    let err = Bundle::open_trusted(&dst, &Trust::Key(b.key.public_key())).unwrap_err();
    match err {
        BundleError::Integrity(IntegrityError::ExtraBlob { member: m, .. }) => {
            assert_eq!(m, member)
        }
        other => panic!("expected ExtraBlob, got {other:?}"),
    }
}

#[test]
fn extra_member_is_named() {
    let b = built();
    let dst = rewritten(&b, "extra-member.airlift");
    rewrite(
        &b.bundle,
        &dst,
        |_, d| Some(d),
        &[("install.sh", b"rm -rf /")],
    );
    let err = Bundle::open_trusted(&dst, &Trust::Key(b.key.public_key())).unwrap_err();
    assert!(
        matches!(&err, BundleError::Integrity(IntegrityError::ExtraMember { path }) if path == "install.sh"),
        "{err:?}"
    );
}

#[test]
fn missing_blob_is_named() {
    let b = built();
    let dst = rewritten(&b, "missing-blob.airlift");
    let gone = blob_member_path(&b.fixture.shared_layer);
    rewrite(&b.bundle, &dst, |p, d| (p != gone).then_some(d), &[]);
    let err = Bundle::open_trusted(&dst, &Trust::Key(b.key.public_key())).unwrap_err();
    assert!(
        matches!(&err, BundleError::Integrity(IntegrityError::MissingBlob { member, .. }) if *member == gone),
        "{err:?}"
    );
}

#[test]
fn missing_member_is_named() {
    let b = built();
    let dst = rewritten(&b, "missing-member.airlift");
    rewrite(
        &b.bundle,
        &dst,
        |p, d| (p != "index.json").then_some(d),
        &[],
    );
    let err = Bundle::open_trusted(&dst, &Trust::Key(b.key.public_key())).unwrap_err();
    assert!(
        matches!(&err, BundleError::Integrity(IntegrityError::MissingMember { path }) if path == "index.json"),
        "{err:?}"
    );
}

#[test]
fn truncated_blob_with_rewritten_header_is_blob_size() {
    let b = built();
    let dst = rewritten(&b, "short-blob.airlift");
    let short = blob_member_path(&b.fixture.shared_layer);
    rewrite(
        &b.bundle,
        &dst,
        |p, mut d| {
            if p == short {
                d.truncate(d.len() / 2);
            }
            Some(d)
        },
        &[],
    );
    let err = Bundle::open_trusted(&dst, &Trust::Key(b.key.public_key())).unwrap_err();
    assert!(
        matches!(&err, BundleError::Integrity(IntegrityError::BlobSize { member, .. }) if *member == short),
        "{err:?}"
    );
}

#[test]
fn signed_manifest_claiming_a_platform_the_image_lacks_fails_verify() {
    // Even a validly signed manifest is checked against the images: a vendor-side mistake is
    // caught at verify time, not at deploy time.
    let b = built();
    let dst = rewritten(&b, "wrong-platform.airlift");
    let bundle = Bundle::open(&b.bundle).unwrap();
    let mut manifest = bundle.manifest().clone();
    drop(bundle);
    manifest.components[0].images[1].platforms = vec!["linux/arm64".parse().unwrap()];
    let yaml = serde_yaml::to_string(&manifest).unwrap().into_bytes();
    let sig = b.key.sign(&yaml);
    rewrite(
        &b.bundle,
        &dst,
        |p, d| match p {
            MANIFEST_PATH => Some(yaml.clone()),
            SIGNATURE_PATH => Some(sig.clone()),
            _ => Some(d),
        },
        &[],
    );
    let trust = Trust::Key(b.key.public_key());
    let err = Bundle::open_trusted(&dst, &trust)
        .unwrap()
        .verify(&trust, &NoProgress)
        .unwrap_err();
    assert!(
        matches!(
            &err,
            BundleError::Integrity(IntegrityError::Image(
                airlift_bundle::walk::WalkError::PlatformMismatch { .. }
            ))
        ),
        "{err:?}"
    );
}
