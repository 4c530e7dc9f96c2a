//! Blob contents start at a multiple of 4096 bytes, so a filesystem that shares extents (XFS
//! with reflink, btrfs) can take a blob into a bundle, or out of it into the cache, without
//! copying it (blobs of at least 4096 bytes: a smaller one has no whole block to share). The
//! alignment is part of the one canonical encoding: a PAX `comment` record in front of each blob
//! that needs one, exactly as the writer writes it, and nowhere else. GNU tar
//! lists and extracts such a bundle as before.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns

mod common;

use std::path::{Path, PathBuf};

use airlift_bundle::canonical::{alignment_record, is_aligned, CONTENT_ALIGN};
use airlift_bundle::reader::BLOBS_PREFIX;
use airlift_bundle::{Bundle, BundleError, Digest, TarError};
use common::*;

/// Opens with the key and verifies every digest, as an operator's `verify` does.
fn check(path: &Path, b: &Built) -> Result<(), BundleError> {
    verify_with_key(path, &b.key)
}

fn write(b: &Built, name: &str, bytes: &[u8]) -> PathBuf {
    let p = b.dir.path().join(name);
    std::fs::write(&p, bytes).unwrap();
    export_fuzz_seed(&p, &format!("alignment-{name}"));
    p
}

#[test]
fn every_blob_starts_at_a_multiple_of_4096_and_tar_sees_only_the_members() {
    let b = built();
    let bytes = std::fs::read(&b.bundle).unwrap();
    let bundle = Bundle::open(&b.bundle).unwrap();
    let mtime = bundle.members()[0].mtime;
    let (mut aligned, mut small_blobs, mut records, mut end) = (0, 0, 0, 0u64);
    for m in bundle.members() {
        if is_aligned(&m.path, m.size) {
            aligned += 1;
            assert_eq!(m.data_offset % CONTENT_ALIGN, 0, "{}", m.path);
        } else if m.path.starts_with(BLOBS_PREFIX) {
            small_blobs += 1;
            assert!(m.size < CONTENT_ALIGN);
        }
        // Between two members: nothing, or (only in front of a blob of 4 KiB or more) the
        // alignment record.
        if m.header_offset != end {
            assert!(is_aligned(&m.path, m.size), "a gap in front of {}", m.path);
            let record = alignment_record(end, mtime).unwrap().unwrap();
            assert_eq!(&bytes[end as usize..m.header_offset as usize], &record[..]);
            records += 1;
        }
        end = m.data_offset + m.size + airlift_bundle::canonical::padding(m.size);
    }
    assert!(
        aligned > 0 && small_blobs > 1 && records > 0,
        "{aligned} aligned blobs, {small_blobs} small ones, {records} records"
    );

    // GNU tar lists the members in order, and no PAX header among them.
    let listed = tool("tar").arg("-tf").arg(&b.bundle).output().unwrap();
    assert!(listed.status.success() && listed.stderr.is_empty());
    let paths: Vec<&str> = bundle.members().iter().map(|m| m.path.as_str()).collect();
    assert_eq!(
        String::from_utf8(listed.stdout)
            .unwrap()
            .lines()
            .collect::<Vec<_>>(),
        paths
    );
    // It extracts every blob whole, without a warning about the records.
    let out = b.dir.path().join("x");
    std::fs::create_dir(&out).unwrap();
    let x = tool("tar")
        .arg("-xf")
        .arg(&b.bundle)
        .arg("-C")
        .arg(&out)
        .output()
        .unwrap();
    assert!(x.status.success(), "{}", String::from_utf8_lossy(&x.stderr));
    assert!(
        x.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&x.stderr)
    );
    for path in paths.iter().filter(|p| p.starts_with(BLOBS_PREFIX)) {
        let data = std::fs::read(out.join(path)).unwrap();
        assert_eq!(Digest::of_bytes(&data).hex(), &path[BLOBS_PREFIX.len()..]);
    }
    assert!(!out.join("PaxHeaders").exists());
}

#[test]
fn a_bundle_without_alignment_records_is_refused_at_its_first_unaligned_blob() {
    let b = built();
    let (members, mtime) = members_of(&b.bundle);
    let mut tar = CanonicalTar::new(Vec::new(), mtime);
    tar.align = false;
    let mut first = None;
    for (path, data) in &members {
        let content_at = tar.pos() + 512;
        let needs = is_aligned(path, data.len() as u64) && content_at % CONTENT_ALIGN != 0;
        if first.is_none() && needs {
            first = Some((path.clone(), content_at));
        }
        tar.member(path, data);
    }
    let p = write(&b, "unaligned.airlift", &tar.finish());
    let (path, offset) = first.unwrap();
    let err = check(&p, &b).unwrap_err();
    assert!(err.hint().contains("older airlift-pack"), "{}", err.hint());
    match tar_err(err) {
        TarError::Unaligned { path: p, offset: o } => assert_eq!((p, o), (path, offset)),
        other => panic!("expected Unaligned, got {other:?}"),
    }
}

/// Re-encodes the bundle's members, calling `tamper` with the archive before each member
/// (whether it is one that [`is_aligned`]) and once more before the trailer (`None`); returns
/// the file.
fn reencoded(
    b: &Built,
    name: &str,
    mut tamper: impl FnMut(&mut CanonicalTar<Vec<u8>>, Option<bool>, u64),
) -> PathBuf {
    let (members, mtime) = members_of(&b.bundle);
    let mut tar = CanonicalTar::new(Vec::new(), mtime);
    for (path, data) in &members {
        tamper(&mut tar, Some(is_aligned(path, data.len() as u64)), mtime);
        tar.member(path, data);
    }
    tamper(&mut tar, None, mtime);
    write(b, name, &tar.finish())
}

fn assert_extension_at(b: &Built, p: &Path, offset: Option<u64>) {
    match tar_err(check(p, b).unwrap_err()) {
        TarError::Extension {
            kind: 'x',
            offset: o,
        } => assert_eq!(Some(o), offset),
        other => panic!("expected Extension, got {other:?}"),
    }
}

#[test]
fn alignment_records_are_accepted_only_where_and_as_the_writer_writes_them() {
    let b = built();
    let untouched = reencoded(&b, "same.airlift", |_, _, _| {});
    assert_eq!(
        std::fs::read(&untouched).unwrap(),
        std::fs::read(&b.bundle).unwrap()
    );
    check(&untouched, &b).unwrap();

    // In front of a member that is not a blob, and in front of a blob under 4 KiB.
    for (name, small_blob) in [
        ("before-member.airlift", false),
        ("before-small.airlift", true),
    ] {
        let (members, _) = members_of(&b.bundle);
        let mut i = 0;
        let mut at = None;
        let p = reencoded(&b, name, |tar, aligned, mtime| {
            let Some((path, data)) = members.get(i) else {
                return;
            };
            i += 1;
            let wanted = !aligned.unwrap_or(true)
                && path.starts_with(BLOBS_PREFIX) == small_blob
                && data.len() < 4096;
            if let (true, None, Some(r)) = (wanted, at, alignment_record(tar.pos(), mtime).unwrap())
            {
                at = Some(tar.pos());
                tar.raw(&r);
            }
        });
        assert!(at.is_some(), "{name}");
        assert_extension_at(&b, &p, at);
    }

    // In front of the trailer.
    let mut at = None;
    let p = reencoded(&b, "before-trailer.airlift", |tar, aligned, mtime| {
        let record = alignment_record(tar.pos(), mtime).unwrap();
        if let (None, Some(r)) = (aligned, record) {
            at = Some(tar.pos());
            tar.raw(&r);
        }
    });
    assert!(at.is_some(), "the trailer happened to be aligned");
    assert_extension_at(&b, &p, at);

    // A second record behind the first (the next header is aligned already: none is due).
    let mut at = None;
    let p = reencoded(&b, "twice.airlift", |tar, aligned, mtime| {
        if let (Some(true), None, Some(r)) =
            (aligned, at, alignment_record(tar.pos(), mtime).unwrap())
        {
            tar.raw(&r);
            at = Some(tar.pos());
            let mut again = r.clone();
            again.truncate(512 + 512);
            // A record of the minimum size, well-formed, at a place that needs none.
            let mut h = tar::Header::new_ustar();
            h.as_mut_bytes().copy_from_slice(&r[..512]);
            h.set_size(512);
            h.set_cksum();
            again[..512].copy_from_slice(h.as_bytes());
            tar.raw(&again);
            // Keep the blob aligned behind both.
            tar.raw(&vec![0u8; 3072]);
        }
    });
    assert_extension_at(&b, &p, at);

    // The writer's record with one byte of its comment changed, or its header's time (with
    // the header's checksum recomputed).
    for name in ["comment.airlift", "mtime.airlift"] {
        let mut at = None;
        let p = reencoded(&b, name, |tar, aligned, mtime| {
            if let (Some(true), None, Some(mut r)) =
                (aligned, at, alignment_record(tar.pos(), mtime).unwrap())
            {
                at = Some(tar.pos());
                if name == "comment.airlift" {
                    let last_space = r.len() - 2;
                    r[last_space] = b'x';
                } else {
                    let mut h = tar::Header::new_ustar();
                    h.as_mut_bytes().copy_from_slice(&r[..512]);
                    h.set_mtime(mtime + 1);
                    h.set_cksum();
                    r[..512].copy_from_slice(h.as_bytes());
                }
                // The blob's header follows at an aligned place: the encoder adds no record.
                tar.raw(&r);
            }
        });
        assert_extension_at(&b, &p, at);
    }
}

#[test]
fn every_flipped_byte_of_an_alignment_record_is_refused() {
    let b = built();
    let bundle = Bundle::open(&b.bundle).unwrap();
    let mut records = Vec::new();
    let mut end = 0;
    for m in bundle.members() {
        if m.header_offset != end {
            records.push(end..m.header_offset);
        }
        end = m.data_offset + m.size + airlift_bundle::canonical::padding(m.size);
    }
    drop(bundle);
    assert!(!records.is_empty());
    let original = std::fs::read(&b.bundle).unwrap();
    let p = b.dir.path().join("flipped.airlift");
    let mut flipped = 0;
    for range in records {
        for offset in range.clone() {
            let mut bytes = original.clone();
            bytes[offset as usize] ^= 1 << (offset % 8);
            std::fs::write(&p, &bytes).unwrap();
            match tar_err(check(&p, &b).unwrap_err()) {
                TarError::Checksum { offset: o } | TarError::Extension { offset: o, .. } => {
                    assert_eq!(o, range.start, "byte {offset}")
                }
                other => panic!("byte {offset}: expected Checksum or Extension, got {other:?}"),
            }
            flipped += 1;
        }
    }
    assert!(flipped >= 1024, "{flipped}");
}
