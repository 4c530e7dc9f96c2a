//! The canonical encoding (issue 10): the reader accepts exactly the bytes the writer produces.
//! Every single-bit flip of a small bundle is refused with the named error for its region, and
//! each attack that was accepted before (reformatted headers, extension records, reordered
//! members, data after the end, a high-S signature, a removed signature, an altered signer, a
//! deeply nested manifest) is refused by name.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns

mod common;

use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use airlift_bundle::canonical::{member_header, padding};
use airlift_bundle::limits::LimitError;
use airlift_bundle::schema::manifest::{MANIFEST_PATH, SIGNATURE_PATH};
use airlift_bundle::{
    Bundle, BundleError, IntegrityError, PrivateKey, TarError, Trust, TrustError,
};
use common::*;

/// A signed bundle of one component with one small single-platform image and one file: about
/// a dozen kilobytes, so that flipping every byte stays cheap.
fn small_bundle(dir: &Path) -> (PathBuf, PrivateKey) {
    let mut f = fixture_with(0);
    let cache = f.manifest.components.remove(1);
    f.manifest.components = vec![airlift_bundle::schema::manifest::Component {
        manifests: vec!["components/cache/values.yaml".into()],
        ..cache
    }];
    f.files = vec![airlift_bundle::ComponentFile {
        path: "components/cache/values.yaml".into(),
        data: b"maxmemory: 64mb\n".to_vec(),
    }];
    let key = PrivateKey::generate();
    let out = dir.join("small.airlift");
    build(&f, Some(&key), &out);
    export_fuzz_seed(&out, "small.airlift");
    (out, key)
}

/// Opens with the key and verifies every digest: the path an operator's `verify` takes.
fn check(path: &Path, key: &PrivateKey) -> Result<(), BundleError> {
    verify_with_key(path, key)
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Region {
    Header,
    Manifest,
    Signature,
    Data,
    Padding,
    /// The alignment record in front of a blob.
    Alignment,
    Trailer,
}

fn regions(path: &Path) -> Vec<Region> {
    let len = std::fs::metadata(path).unwrap().len() as usize;
    let bundle = Bundle::open(path).unwrap();
    let mut map = vec![Region::Trailer; len];
    let mut end = 0;
    for m in bundle.members() {
        let (h, d, s) = (
            m.header_offset as usize,
            m.data_offset as usize,
            m.size as usize,
        );
        map[end..h].fill(Region::Alignment);
        end = d + s + padding(m.size) as usize;
        map[h..d].fill(Region::Header);
        let data = match m.path.as_str() {
            MANIFEST_PATH => Region::Manifest,
            SIGNATURE_PATH => Region::Signature,
            _ => Region::Data,
        };
        map[d..d + s].fill(data);
        map[d + s..d + s + padding(m.size) as usize].fill(Region::Padding);
    }
    map
}

fn flip(path: &Path, offset: u64, bit: u8) {
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .unwrap();
    let mut b = [0u8];
    f.read_exact_at(&mut b, offset).unwrap();
    b[0] ^= 1 << bit;
    f.write_all_at(&b, offset).unwrap();
}

fn named_for(region: Region, e: &BundleError) -> bool {
    use BundleError as B;
    match region {
        Region::Header => matches!(
            e,
            B::Tar {
                source: TarError::Checksum { .. }
                    | TarError::NonCanonicalHeader { .. }
                    | TarError::NotTar,
                ..
            }
        ),
        Region::Manifest => matches!(e, B::Trust(TrustError::TamperedManifest { .. })),
        Region::Signature => matches!(
            e,
            B::Trust(
                TrustError::TamperedManifest { .. }
                    | TrustError::MalformedSignature
                    | TrustError::NonCanonicalSignature { .. }
            )
        ),
        Region::Data => matches!(
            e,
            B::Integrity(
                IntegrityError::TamperedBlob { .. } | IntegrityError::TamperedMember { .. }
            )
        ),
        Region::Padding => matches!(
            e,
            B::Tar {
                source: TarError::Padding { .. },
                ..
            }
        ),
        Region::Alignment => matches!(
            e,
            B::Tar {
                source: TarError::Checksum { .. } | TarError::Extension { kind: 'x', .. },
                ..
            }
        ),
        Region::Trailer => matches!(
            e,
            B::Tar {
                source: TarError::Trailer { .. },
                ..
            }
        ),
    }
}

#[test]
fn every_flipped_byte_is_refused_with_the_error_for_its_region() {
    let dir = tempfile::tempdir().unwrap();
    let (path, key) = small_bundle(dir.path());
    check(&path, &key).unwrap();
    let map = regions(&path);
    let mut counts = std::collections::BTreeMap::new();
    for (offset, region) in map.iter().enumerate() {
        let bit = (offset % 8) as u8;
        flip(&path, offset as u64, bit);
        match check(&path, &key) {
            Ok(()) => panic!("flipping bit {bit} of byte {offset} ({region:?}) was accepted"),
            Err(e) => assert!(
                named_for(*region, &e),
                "byte {offset} ({region:?}, bit {bit}): unexpected {e:?}"
            ),
        }
        flip(&path, offset as u64, bit);
        *counts.entry(format!("{region:?}")).or_insert(0) += 1;
    }
    check(&path, &key).unwrap();
    eprintln!(
        "{} bytes flipped one bit each, all refused: {counts:?}",
        map.len()
    );
    // Every region was exercised (this bundle's blobs are all under 4 KiB, so it has no
    // alignment record: `alignment.rs` flips each byte of one).
    for r in [
        "Header",
        "Manifest",
        "Signature",
        "Data",
        "Padding",
        "Trailer",
    ] {
        assert!(
            counts.get(r).copied().unwrap_or(0) > 0,
            "{r} not covered: {counts:?}"
        );
    }
}

/// Rewrites the header at `offset` with `edit`, recomputing its checksum unless `edit` wrote one.
fn edit_header_at(bundle: &Path, offset: u64, edit: impl FnOnce(&mut tar::Header)) {
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(bundle)
        .unwrap();
    let mut block = [0u8; 512];
    f.read_exact_at(&mut block, offset).unwrap();
    let mut h = tar::Header::new_old();
    h.as_mut_bytes().copy_from_slice(&block);
    edit(&mut h);
    if h.as_bytes()[148..156] == block[148..156] {
        h.set_cksum();
    }
    f.write_all_at(h.as_bytes(), offset).unwrap();
}

/// Rewrites the header of member `member` with `edit`.
fn edit_header(bundle: &Path, member: &str, edit: impl FnOnce(&mut tar::Header)) {
    let offset = Bundle::open(bundle)
        .unwrap()
        .member(member)
        .unwrap()
        .header_offset;
    edit_header_at(bundle, offset, edit);
}

fn header_field_refused(edit: impl FnOnce(&mut tar::Header), field: &str) {
    let dir = tempfile::tempdir().unwrap();
    let (path, key) = small_bundle(dir.path());
    edit_header(&path, "oci-layout", edit);
    match tar_err(check(&path, &key).unwrap_err()) {
        TarError::NonCanonicalHeader { path, field: f, .. } => {
            assert_eq!((path.as_str(), f), ("oci-layout", field))
        }
        other => panic!("expected NonCanonicalHeader({field}), got {other:?}"),
    }
}

#[test]
fn setuid_mode_with_recomputed_checksum_is_refused() {
    header_field_refused(|h| h.set_mode(0o4755), "mode");
}

#[test]
fn changed_uid_is_refused() {
    header_field_refused(|h| h.set_uid(1000), "uid");
}

#[test]
fn changed_mtime_of_one_member_is_refused() {
    header_field_refused(|h| h.set_mtime(1), "mtime");
}

#[test]
fn changed_uname_is_refused() {
    header_field_refused(|h| h.set_username("root").unwrap(), "uname");
}

#[test]
fn gnu_magic_is_refused() {
    header_field_refused(
        |h| h.as_mut_bytes()[257..265].copy_from_slice(b"ustar  \0"),
        "magic",
    );
}

#[test]
fn linkname_on_a_regular_file_is_refused() {
    header_field_refused(|h| h.set_link_name("/etc/shadow").unwrap(), "linkname");
}

#[test]
fn nul_typeflag_is_refused() {
    header_field_refused(|h| h.as_mut_bytes()[156] = 0, "typeflag");
}

#[test]
fn reformatted_checksum_is_refused() {
    header_field_refused(
        |h| {
            h.set_cksum();
            let sum = h.cksum().unwrap();
            // GNU tar's layout: six digits, NUL, space (the writer emits seven digits and NUL).
            let text = format!("{sum:06o}\0 ");
            assert_ne!(&h.as_bytes()[148..156], text.as_bytes());
            h.as_mut_bytes()[148..156].copy_from_slice(text.as_bytes());
        },
        "checksum",
    );
}

#[test]
fn one_mtime_for_every_member_must_be_build_created() {
    let dir = tempfile::tempdir().unwrap();
    let (path, key) = small_bundle(dir.path());
    // Every header, the alignment records' too, with the same other time.
    let (members, _) = members_of(&path);
    std::fs::write(&path, encode(&members, 7)).unwrap();
    match check(&path, &key).unwrap_err() {
        BundleError::Integrity(IntegrityError::HeaderTime { mtime: 7, .. }) => {}
        other => panic!("expected HeaderTime, got {other:?}"),
    }
}

/// Writes members with canonical headers, padding and trailer: what the writer would write for
/// these members in this order.
fn encode(members: &[(String, Vec<u8>)], mtime: u64) -> Vec<u8> {
    let mut tar = CanonicalTar::new(Vec::new(), mtime);
    for (p, d) in members {
        tar.member(p, d);
    }
    tar.finish()
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    export_fuzz_seed(&p, &format!("canonical-{name}"));
    p
}

#[test]
fn canonical_reencoding_of_the_members_is_byte_identical() {
    // The fixture helper `encode` is the writer's encoding: proof that the attacks below differ
    // from a real bundle only in what they attack.
    let dir = tempfile::tempdir().unwrap();
    let (path, _) = small_bundle(dir.path());
    let (members, mtime) = members_of(&path);
    assert_eq!(encode(&members, mtime), std::fs::read(&path).unwrap());
}

#[test]
fn pax_and_gnu_extension_records_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (path, key) = small_bundle(dir.path());
    let (members, mtime) = members_of(&path);
    for (kind, name) in [(b'x', "PaxHeader"), (b'L', "././@LongLink")] {
        let mut bytes = encode(&members[..3], mtime);
        bytes.truncate(bytes.len() - 1024);
        let record = b"27 mtime=1700000000.123\n";
        let mut h = member_header(name, record.len() as u64, mtime).unwrap();
        h[156] = kind;
        let mut th = tar::Header::new_old();
        th.as_mut_bytes().copy_from_slice(&h);
        th.set_cksum();
        let offset = bytes.len() as u64;
        bytes.extend_from_slice(th.as_bytes());
        bytes.extend_from_slice(record);
        bytes.resize(bytes.len() + padding(record.len() as u64) as usize, 0);
        bytes.extend_from_slice(&encode(&members[3..], mtime));
        let p = write(dir.path(), "ext.airlift", &bytes);
        match tar_err(check(&p, &key).unwrap_err()) {
            TarError::Extension { kind: k, offset: o } => {
                assert_eq!((k, o), (char::from(kind), offset))
            }
            other => panic!("expected Extension, got {other:?}"),
        }
    }
}

#[test]
fn reordered_members_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (path, key) = small_bundle(dir.path());
    let (mut members, mtime) = members_of(&path);
    let n = members.len();
    members.swap(n - 1, n - 2);
    let p = write(dir.path(), "reordered.airlift", &encode(&members, mtime));
    match check(&p, &key).unwrap_err() {
        BundleError::Integrity(IntegrityError::MemberOrder { position, .. }) => {
            assert_eq!(position, n - 1)
        }
        other => panic!("expected MemberOrder, got {other:?}"),
    }
}

#[test]
fn anything_after_the_end_of_the_archive_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (path, key) = small_bundle(dir.path());
    let good = std::fs::read(&path).unwrap();
    let (members, mtime) = members_of(&path);
    let end = good.len() as u64 - 1024;
    let extra = encode(&[("extra".to_string(), b"x".to_vec())], mtime);
    let one_zero_block_then_data = {
        let mut b = good[..good.len() - 512].to_vec();
        b.extend_from_slice(&extra);
        b
    };
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("garbage", [good.clone(), b"garbage".to_vec()].concat()),
        ("extra-member", [good.clone(), extra.clone()].concat()),
        ("third-zero-block", [good.clone(), vec![0u8; 512]].concat()),
        ("one-zero-block-then-data", one_zero_block_then_data),
    ];
    for (name, bytes) in cases {
        let p = write(dir.path(), name, &bytes);
        match tar_err(check(&p, &key).unwrap_err()) {
            TarError::Trailer { offset } => assert_eq!(offset, end, "{name}"),
            other => panic!("{name}: expected Trailer, got {other:?}"),
        }
    }
    let p = write(
        dir.path(),
        "no-end",
        &encode(&members, mtime)[..good.len() - 1024],
    );
    assert!(matches!(
        tar_err(check(&p, &key).unwrap_err()),
        TarError::MissingEnd { .. }
    ));
}

#[test]
fn high_s_twin_of_the_signature_is_refused() {
    use p256::ecdsa::Signature;
    let dir = tempfile::tempdir().unwrap();
    let (path, key) = small_bundle(dir.path());
    let (mut members, mtime) = members_of(&path);
    let sig = Signature::from_der(&members[1].1).unwrap();
    let (r, s) = sig.split_scalars();
    let twin = Signature::from_scalars(r.to_bytes(), (-s).to_bytes()).unwrap();
    let twin_der = twin.to_der().as_bytes().to_vec();
    // The twin is a valid signature of the same manifest: only canonical form tells them apart.
    assert!(key.public_key().verifies(&members[0].1, &twin_der));
    members[1].1 = twin_der;
    let p = write(dir.path(), "high-s.airlift", &encode(&members, mtime));
    assert!(matches!(
        check(&p, &key).unwrap_err(),
        BundleError::Trust(TrustError::NonCanonicalSignature { .. })
    ));
}

#[test]
fn removed_signature_is_tampering_under_every_policy() {
    let dir = tempfile::tempdir().unwrap();
    let (path, key) = small_bundle(dir.path());
    let (mut members, mtime) = members_of(&path);
    members.remove(1);
    let p = write(dir.path(), "unsigned.airlift", &encode(&members, mtime));
    for trust in [
        Trust::Key(key.public_key()),
        Trust::NoKey,
        Trust::InsecureSkipVerify,
    ] {
        let e = Bundle::open_trusted(&p, &trust).unwrap_err();
        match &e {
            BundleError::Trust(TrustError::SignatureRemoved { signer }) => {
                assert_eq!(signer, &key.public_key().fingerprint())
            }
            other => panic!("{trust:?}: expected SignatureRemoved, got {other:?}"),
        }
        assert!(!e.hint().contains("--insecure-skip-verify"), "{}", e.hint());
    }
    // Also without any policy (`inspect` without --key): never shown as "unsigned".
    assert!(matches!(
        Bundle::open(&p).unwrap_err(),
        BundleError::Trust(TrustError::SignatureRemoved { .. })
    ));
}

#[test]
fn flipped_signer_is_an_altered_manifest_not_a_wrong_key() {
    let dir = tempfile::tempdir().unwrap();
    let (path, key) = small_bundle(dir.path());
    let bytes = std::fs::read(&path).unwrap();
    let at = bytes
        .windows(17)
        .position(|w| w == b"  signer: sha256:")
        .unwrap()
        + 17;
    let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    let c = if bytes[at] == b'0' { b"1" } else { b"0" };
    f.write_all_at(c, at as u64).unwrap();
    let e = check(&path, &key).unwrap_err();
    assert!(
        matches!(e, BundleError::Trust(TrustError::TamperedManifest { .. })),
        "{e:?}"
    );
    assert!(!e.hint().contains("fingerprint"), "{}", e.hint());
}

/// A bundle whose manifest is `manifest` with a well-formed signature by another key.
fn hostile_manifest_bundle(dir: &Path, manifest: Vec<u8>) -> PathBuf {
    let sig = PrivateKey::generate().sign(b"something else");
    let members = vec![
        (MANIFEST_PATH.to_string(), manifest),
        (SIGNATURE_PATH.to_string(), sig),
    ];
    write(dir, "deep.airlift", &encode(&members, 0))
}

#[test]
fn deeply_nested_16_mib_manifest_is_refused_before_it_is_parsed() {
    let dir = tempfile::tempdir().unwrap();
    let key = PrivateKey::generate();
    let flow = [b"a: ".to_vec(), vec![b'['; 16 * 1024 * 1024 - 3]].concat();
    let mut block = Vec::new();
    for i in 0..5000 {
        block.extend_from_slice(" ".repeat(i).as_bytes());
        block.extend_from_slice(b"k:\n");
    }
    for manifest in [flow, block] {
        let p = hostile_manifest_bundle(dir.path(), manifest);
        // With a key: the signature check over the raw bytes refuses it, no parse.
        assert!(matches!(
            Bundle::open_trusted(&p, &Trust::Key(key.public_key())).unwrap_err(),
            BundleError::Trust(TrustError::TamperedManifest { .. })
        ));
        // Without a key: signed but no key, no parse either.
        assert!(matches!(
            Bundle::open_trusted(&p, &Trust::NoKey).unwrap_err(),
            BundleError::Trust(TrustError::SignedButNoKey {
                claimed_signer: None
            })
        ));
        // Opened unchecked (`inspect` without --key): the nesting bound refuses it.
        assert!(matches!(
            Bundle::open(&p).unwrap_err(),
            BundleError::Limit(LimitError::TooDeep { .. })
        ));
    }
}

#[test]
fn empty_and_non_tar_files_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let empty = write(dir.path(), "empty.airlift", b"");
    assert!(matches!(
        tar_err(Bundle::open(&empty).unwrap_err()),
        TarError::Empty { len: 0 }
    ));
    let trailer_only = write(dir.path(), "zeros.airlift", &[0u8; 1024]);
    assert!(matches!(
        tar_err(Bundle::open(&trailer_only).unwrap_err()),
        TarError::Empty { len: 1024 }
    ));
    let text = write(dir.path(), "text.airlift", &[b'x'; 2048]);
    let e = Bundle::open(&text).unwrap_err();
    assert!(!e.to_string().contains("``"));
    assert!(matches!(tar_err(e), TarError::NotTar));
}

#[test]
fn control_characters_in_member_names_are_refused_and_never_printed() {
    let dir = tempfile::tempdir().unwrap();
    let members = vec![
        (MANIFEST_PATH.to_string(), b"kind: Bundle\n".to_vec()),
        (
            "components/x/\u{1b}]0;owned\u{7}\u{1b}[8m.yaml".to_string(),
            b"x".to_vec(),
        ),
    ];
    let p = write(dir.path(), "esc.airlift", &encode(&members, 0));
    let e = Bundle::open(&p).unwrap_err();
    let text = format!("{e} {}", std::error::Error::source(&e).unwrap());
    assert!(
        !text.contains('\u{1b}') && !text.contains('\u{7}'),
        "{text:?}"
    );
    assert!(text.contains("\\e]0;owned"), "{text}");
    assert!(matches!(tar_err(e), TarError::ControlCharacter { .. }));
}
