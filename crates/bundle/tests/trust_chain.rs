//! Writing, reading and verifying real bundles: layout, determinism, signatures, keys, proofs.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns

mod common;

use std::io::Read;
use std::os::unix::fs::PermissionsExt;

use airlift_bundle::reader::blob_member_path;
use airlift_bundle::schema::manifest::{MANIFEST_PATH, SIGNATURE_PATH};
use airlift_bundle::{
    keygen, BlobSource, Bundle, BundleError, KeyError, NoProgress, PrivateKey, ProofStore,
    SignatureStatus, Trust, TrustError,
};
use common::*;

#[test]
fn writes_members_in_the_documented_order_and_shares_layers() {
    let b = built();
    let bundle = Bundle::open(&b.bundle).unwrap();
    let paths: Vec<&str> = bundle.members().iter().map(|m| m.path.as_str()).collect();
    assert_eq!(
        &paths[..5],
        &[
            MANIFEST_PATH,
            SIGNATURE_PATH,
            "oci-layout",
            "index.json",
            "components/api/deployment.yaml"
        ]
    );
    let blob_paths: Vec<&str> = paths[5..].to_vec();
    let mut sorted = blob_paths.clone();
    sorted.sort_unstable();
    assert_eq!(blob_paths, sorted, "blobs are sorted by digest");
    // The shared base layer is stored once though four manifests use it.
    let shared = blob_member_path(&b.fixture.shared_layer);
    assert_eq!(paths.iter().filter(|p| **p == shared).count(), 1);
    // 4 manifests + 1 index + 4 configs + base + 4 app layers.
    assert_eq!(bundle.manifest().blobs.len(), 14);

    // Headers are fixed: mode 0644, uid/gid 0, no owner names, mtime from build.created.
    let mut archive = tar::Archive::new(std::fs::File::open(&b.bundle).unwrap());
    for entry in archive.entries().unwrap() {
        let entry = entry.unwrap();
        let h = entry.header();
        assert_eq!(h.mode().unwrap(), 0o644);
        assert_eq!((h.uid().unwrap(), h.gid().unwrap()), (0, 0));
        assert_eq!(h.username().unwrap(), Some(""));
        assert_eq!(h.mtime().unwrap(), 1_767_323_045); // 2026-01-02T03:04:05Z
    }
}

#[test]
fn verifies_with_the_right_key_and_serves_blobs_by_positioned_reads() {
    let b = built();
    let trust = Trust::Key(b.key.public_key());
    let bundle = Bundle::open_trusted(&b.bundle, &trust).unwrap();
    assert!(matches!(
        bundle.signature_status(),
        SignatureStatus::Verified { .. }
    ));
    let report = bundle.verify(&trust, &NoProgress).unwrap();
    assert_eq!(report.blobs, 14);
    assert_eq!(report.images, 3);
    assert!(report.bytes_hashed > 64 * 1024);
    // Every blob read through BlobSource equals the source store's copy.
    for rec in &bundle.manifest().blobs {
        let mut got = Vec::new();
        bundle
            .blob_reader(&rec.digest)
            .unwrap()
            .read_to_end(&mut got)
            .unwrap();
        assert_eq!(
            got,
            std::fs::read(b.fixture.store.path_of(&rec.digest)).unwrap()
        );
    }
    // A ranged read in the middle.
    let rec = bundle
        .manifest()
        .blobs
        .iter()
        .max_by_key(|r| r.size)
        .unwrap();
    let mut buf = [0u8; 100];
    let n = bundle.read_blob_at(&rec.digest, 1000, &mut buf).unwrap();
    let whole = std::fs::read(b.fixture.store.path_of(&rec.digest)).unwrap();
    assert_eq!(&buf[..n], &whole[1000..1000 + n]);
    // index.json names every image.
    let index = bundle.index().unwrap();
    for (reference, digest) in &b.fixture.images {
        assert!(index
            .manifests
            .iter()
            .any(|d| d.ref_name() == Some(reference.as_str()) && &d.digest == digest));
    }
}

#[test]
fn two_builds_of_the_same_inputs_are_byte_identical() {
    let dir = tempfile::tempdir().unwrap();
    let f = fixture();
    let key = PrivateKey::generate();
    let (a, b) = (dir.path().join("a.airlift"), dir.path().join("b.airlift"));
    build(&f, Some(&key), &a);
    build(&f, Some(&key), &b);
    assert_eq!(std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
    // No temporary file is left next to the output.
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 2);
}

#[test]
fn key_given_but_bundle_unsigned_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let f = fixture();
    let out = dir.path().join("u.airlift");
    build(&f, None, &out);
    let key = PrivateKey::generate();
    let err = Bundle::open_trusted(&out, &Trust::Key(key.public_key())).unwrap_err();
    assert!(
        matches!(err, BundleError::Trust(TrustError::Unsigned { .. })),
        "{err:?}"
    );
    assert!(err.hint().contains("--insecure-skip-verify"));
    // Unsigned and no key: refused too, with its own error.
    let err = Bundle::open_trusted(&out, &Trust::NoKey).unwrap_err();
    assert!(
        matches!(err, BundleError::Trust(TrustError::UnsignedNoKey)),
        "{err:?}"
    );
    // Explicit skip: digests still verified.
    let bundle = Bundle::open_trusted(&out, &Trust::InsecureSkipVerify).unwrap();
    let report = bundle
        .verify(&Trust::InsecureSkipVerify, &NoProgress)
        .unwrap();
    assert_eq!(report.signature, SignatureStatus::Skipped);
}

#[test]
fn signed_but_no_key_is_refused_unless_skip_is_explicit() {
    let b = built();
    let err = Bundle::open_trusted(&b.bundle, &Trust::NoKey).unwrap_err();
    match &err {
        BundleError::Trust(TrustError::SignedButNoKey { claimed_signer }) => {
            assert_eq!(
                claimed_signer.as_ref(),
                Some(&b.key.public_key().fingerprint())
            );
        }
        other => panic!("expected SignedButNoKey, got {other:?}"),
    }
    assert!(err.hint().contains("--key"));
    Bundle::open_trusted(&b.bundle, &Trust::InsecureSkipVerify)
        .unwrap()
        .verify(&Trust::InsecureSkipVerify, &NoProgress)
        .unwrap();
}

#[test]
fn wrong_key_is_named_with_the_signer_fingerprint() {
    let b = built();
    let other = PrivateKey::generate();
    let err = Bundle::open_trusted(&b.bundle, &Trust::Key(other.public_key())).unwrap_err();
    match &err {
        BundleError::Trust(TrustError::WrongKey { signer, given }) => {
            assert_eq!(signer, &b.key.public_key().fingerprint());
            assert_eq!(given, &other.public_key().fingerprint());
        }
        other => panic!("expected WrongKey, got {other:?}"),
    }
    assert!(err
        .hint()
        .contains(&b.key.public_key().fingerprint().to_string()));
}

#[test]
fn keygen_writes_0600_private_key_and_never_overwrites() {
    let dir = tempfile::tempdir().unwrap();
    let prefix = dir.path().join("vendor");
    let files = keygen(&prefix).unwrap();
    let mode = std::fs::metadata(&files.private_key)
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    let key = PrivateKey::load(&files.private_key).unwrap();
    let public = airlift_bundle::PublicKey::load(&files.public_key).unwrap();
    assert_eq!(key.public_key(), public);
    let before = std::fs::read(&files.private_key).unwrap();
    let err = keygen(&prefix).unwrap_err();
    assert!(matches!(err, KeyError::Exists { .. }), "{err:?}");
    assert_eq!(std::fs::read(&files.private_key).unwrap(), before);
    // Only the .pub exists: still refused, and no .key is created.
    let prefix2 = dir.path().join("other");
    std::fs::write(dir.path().join("other.pub"), "x").unwrap();
    assert!(matches!(keygen(&prefix2), Err(KeyError::Exists { .. })));
    assert!(!dir.path().join("other.key").exists());
}

#[test]
fn openssl_verifies_the_signature_on_extracted_members() {
    let b = built();
    let d = b.dir.path();
    let pub_path = d.join("vendor.pub");
    std::fs::write(&pub_path, b.key.public_key().to_pem().unwrap()).unwrap();
    let out = d.join("x");
    std::fs::create_dir(&out).unwrap();
    let st = tool("tar")
        .args(["-xf"])
        .arg(&b.bundle)
        .arg("-C")
        .arg(&out)
        .args([MANIFEST_PATH, SIGNATURE_PATH])
        .status()
        .unwrap();
    assert!(st.success());
    let run = |manifest: &std::path::Path| {
        tool("openssl")
            .args(["dgst", "-sha256", "-verify"])
            .arg(&pub_path)
            .arg("-signature")
            .arg(out.join(SIGNATURE_PATH))
            .arg(manifest)
            .output()
            .unwrap()
    };
    let ok = run(&out.join(MANIFEST_PATH));
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&ok.stdout).trim(), "Verified OK");
    // And openssl rejects an altered manifest (the test can fail).
    let mut bytes = std::fs::read(out.join(MANIFEST_PATH)).unwrap();
    bytes.push(b'\n');
    std::fs::write(out.join("altered.yaml"), bytes).unwrap();
    assert!(!run(&out.join("altered.yaml")).status.success());
    // The fingerprint is openssl's sha256 of the SPKI DER.
    let der = tool("openssl")
        .args(["pkey", "-pubin", "-outform", "DER", "-in"])
        .arg(&pub_path)
        .output()
        .unwrap();
    assert!(der.status.success());
    assert_eq!(
        airlift_bundle::Digest::of_bytes(&der.stdout),
        b.key.public_key().fingerprint()
    );
}

#[test]
fn recorded_proof_skips_hashing_but_catches_any_change() {
    let b = built();
    let proofs = ProofStore::at(b.dir.path().join("state"));
    let trust = Trust::Key(b.key.public_key());
    let first = Bundle::open_trusted(&b.bundle, &trust)
        .unwrap()
        .verify_with_proof(&trust, &NoProgress, &proofs)
        .unwrap();
    assert!(!first.from_proof);
    let second = Bundle::open_trusted(&b.bundle, &trust)
        .unwrap()
        .verify_with_proof(&trust, &NoProgress, &proofs)
        .unwrap();
    assert!(second.from_proof);
    assert_eq!(second.bytes_hashed, 0);
    // The file's sha256 is the one `sha256sum` prints, recorded with the proof.
    let bytes = std::fs::read(&b.bundle).unwrap();
    assert_eq!(first.sha256, airlift_bundle::Digest::of_bytes(&bytes));
    assert_eq!(second.sha256, first.sha256);
    // Flip a bit in a layer in place (same size, same inode), then restore the mtime: the ctime
    // still moved, so the proof no longer applies and the tamper is caught.
    let bundle = Bundle::open(&b.bundle).unwrap();
    let rec = bundle
        .manifest()
        .blobs
        .iter()
        .max_by_key(|r| r.size)
        .unwrap();
    let offset = bundle.blob_member(&rec.digest).unwrap().data_offset + 10;
    let mtime = std::fs::metadata(&b.bundle).unwrap().modified().unwrap();
    drop(bundle);
    flip_bit(&b.bundle, offset);
    let f = std::fs::File::options()
        .write(true)
        .open(&b.bundle)
        .unwrap();
    f.set_modified(mtime).unwrap();
    drop(f);
    let err = Bundle::open_trusted(&b.bundle, &trust)
        .unwrap()
        .verify_with_proof(&trust, &NoProgress, &proofs)
        .unwrap_err();
    assert!(
        matches!(
            err,
            BundleError::Integrity(airlift_bundle::IntegrityError::TamperedBlob { .. })
        ),
        "{err:?}"
    );
    // A proof made with one policy does not apply to another.
    let other = Trust::InsecureSkipVerify;
    let key_a = proofs
        .key_for(&Bundle::open(&b.bundle).unwrap(), &trust)
        .unwrap();
    let key_b = proofs
        .key_for(&Bundle::open(&b.bundle).unwrap(), &other)
        .unwrap();
    assert_ne!(key_a, key_b);
}

#[test]
fn forged_or_unauthenticated_proof_is_refused() {
    let b = built();
    let dir = b.dir.path().join("state");
    let proofs = ProofStore::at(&dir);
    let trust = Trust::Key(b.key.public_key());
    let open = || Bundle::open_trusted(&b.bundle, &trust).unwrap();
    let first = open()
        .verify_with_proof(&trust, &NoProgress, &proofs)
        .unwrap();
    assert!(!first.from_proof);
    let key_file = dir.join(airlift_bundle::proof::MAC_KEY_FILE);
    assert_eq!(
        std::fs::metadata(&key_file).unwrap().permissions().mode() & 0o777,
        0o600
    );
    // Whoever can write the folder but not read the key rewrites the proof: a recomputed
    // MAC under another key, or no MAC at all, is refused and the file is hashed again.
    let key = proofs.key_for(&open(), &trust).unwrap();
    let proof_file = dir.join(key.id().hex());
    let text = std::fs::read_to_string(&proof_file).unwrap();
    let forged = text.replace(first.sha256.hex(), &"0".repeat(64));
    std::fs::write(&proof_file, &forged).unwrap();
    assert!(matches!(proofs.lookup(&key), Err(e) if e.why.contains("MAC does not check")));
    let again = open()
        .verify_with_proof(&trust, &NoProgress, &proofs)
        .unwrap();
    assert!(!again.from_proof);
    assert_eq!(again.sha256, first.sha256);
    // A key file others can read is not used.
    std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o644)).unwrap();
    assert!(matches!(proofs.lookup(&key), Err(e) if e.why.contains("not private")));
}

fn flip_bit(path: &std::path::Path, offset: u64) {
    use std::os::unix::fs::FileExt;
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

#[test]
fn the_file_sha256_of_a_many_chunk_bundle_is_openssls_and_a_late_tamper_is_still_caught() {
    // An 11 MiB layer: the whole-file hash runs on its own thread, fed in 1 MiB chunks with a few
    // buffers in flight, so this bundle goes round the buffers several times.
    let dir = tempfile::tempdir().unwrap();
    let fixture = fixture_with(11 * 1024 * 1024 + 12_345);
    let key = PrivateKey::generate();
    let path = dir.path().join("big.airlift");
    build(&fixture, Some(&key), &path);
    let trust = Trust::Key(key.public_key());
    let bundle = Bundle::open_trusted(&path, &trust).unwrap();
    let report = bundle.verify(&trust, &NoProgress).unwrap();
    let len = std::fs::metadata(&path).unwrap().len();
    assert!(len > 11 * 1024 * 1024, "the bundle is {len} bytes");
    assert_eq!(report.bytes_hashed, len);
    let openssl = tool("openssl")
        .args(["dgst", "-sha256", "-r"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(openssl.status.success());
    let hex = String::from_utf8(openssl.stdout).unwrap();
    let hex = hex.split_whitespace().next().unwrap();
    assert_eq!(report.sha256.hex(), hex);
    assert_eq!(
        bundle.file_sha256(&NoProgress, "sha256").unwrap(),
        report.sha256
    );
    // A bit flipped near the end of the big layer: every chunk before it has been handed to the
    // file hasher when the layer's digest fails; the error comes back (no hang, no panic).
    let rec = bundle
        .manifest()
        .blobs
        .iter()
        .max_by_key(|r| r.size)
        .unwrap()
        .clone();
    let offset = bundle.blob_member(&rec.digest).unwrap().data_offset + rec.size - 100;
    drop(bundle);
    flip_bit(&path, offset);
    let err = verify_with_key(&path, &key).unwrap_err();
    assert!(
        matches!(
            &err,
            BundleError::Integrity(airlift_bundle::IntegrityError::TamperedBlob { digest, .. })
                if *digest == rec.digest
        ),
        "{err:?}"
    );
}
