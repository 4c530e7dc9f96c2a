//! Members-only bundles (issue 17, `install oci://…` without a second local copy): the file holds
//! the manifest, the signature and the component files; the blobs come from another
//! [`BlobSource`], only as the signed manifest lists them. The file is checked like any bundle's
//! members; a blob in it, a changed member or a bad signature is refused.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns

mod common;

use std::sync::Arc;

use airlift_bundle::reader::BLOBS_PREFIX;
use airlift_bundle::walk::walk_image;
use airlift_bundle::{
    BlobSource, Bundle, BundleError, Digest, IntegrityError, NoProgress, Trust, TrustError,
};
use common::*;

/// The members of `bundle` (everything before the first blob) in the canonical encoding,
/// with `edit` applied to each (path, data) first, as an anonymous file.
fn members_file(
    bundle: &Bundle,
    file: &[u8],
    keep_blobs: usize,
    edit: impl Fn(&str, &mut Vec<u8>),
) -> std::fs::File {
    let mtime = bundle.members()[0].mtime;
    let mut out = CanonicalTar::new(tempfile::tempfile().unwrap(), mtime);
    let mut blobs = 0;
    for m in bundle.members() {
        if m.path.starts_with(BLOBS_PREFIX) {
            if blobs == keep_blobs {
                break;
            }
            blobs += 1;
        }
        let start = m.data_offset as usize;
        let mut data = file[start..start + m.size as usize].to_vec();
        edit(&m.path, &mut data);
        out.member(&m.path, &data);
    }
    out.finish()
}

#[test]
fn members_only_bundle_serves_listed_blobs_from_its_source_and_nothing_else() {
    let b = built();
    let trust = Trust::Key(b.key.public_key());
    let full = Arc::new(Bundle::open_trusted(&b.bundle, &trust).unwrap());
    let bytes = std::fs::read(&b.bundle).unwrap();
    let file = members_file(&full, &bytes, 0, |_, _| {});
    let origin = "oci://registry.vendor.io/acme/demo:1.0.0";
    let remote = Bundle::open_members_trusted(file, origin, &trust, full.clone()).unwrap();

    assert_eq!(remote.blobs_origin(), Some(origin));
    assert_eq!(remote.path().to_str(), Some(origin));
    assert_eq!(remote.manifest_bytes(), full.manifest_bytes());
    let path = &remote.manifest().components[0].manifests[0];
    assert_eq!(
        remote.read_member(path, 1 << 20).unwrap(),
        full.read_member(path, 1 << 20).unwrap()
    );
    // Every image walks through the source, sizes from the signed listing.
    for record in remote.manifest().components.iter().flat_map(|c| &c.images) {
        let graph = walk_image(
            &remote,
            &record.reference,
            &record.digest,
            &record.media_type,
        )
        .unwrap();
        for (d, size) in &graph.blobs {
            assert_eq!(remote.blob_size(d), Some(*size));
        }
    }
    let listed = &remote.manifest().blobs[0];
    assert_eq!(
        remote.read_blob(&listed.digest, 1 << 30).unwrap().len() as u64,
        listed.size
    );
    // A blob the signed manifest does not list is not read from the source at all.
    let unlisted = Digest::of_bytes(b"not listed");
    assert_eq!(remote.blob_size(&unlisted), None);
    let e = remote
        .read_blob_at(&unlisted, 0, &mut [0u8; 16])
        .unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::NotFound);
    // Reads stop at the listed size, whatever the source holds beyond it.
    let mut buf = vec![0u8; listed.size as usize + 100];
    let n = remote.read_blob_at(&listed.digest, 0, &mut buf).unwrap();
    assert!(n as u64 <= listed.size);
    assert_eq!(
        remote
            .read_blob_at(&listed.digest, listed.size, &mut buf)
            .unwrap(),
        0
    );
    // There is no whole file to hash: verification refuses by name, not by a partial pass.
    let e = remote.verify(&trust, &NoProgress).unwrap_err();
    assert!(matches!(e, BundleError::BlobsElsewhere { .. }), "{e}");
    assert!(!e.is_trust_failure());
    assert!(e.hint().contains("airlift-install pull"), "{}", e.hint());
}

#[test]
fn members_only_bundle_refuses_blobs_changed_members_and_bad_signatures() {
    let b = built();
    let trust = Trust::Key(b.key.public_key());
    let full = Arc::new(Bundle::open_trusted(&b.bundle, &trust).unwrap());
    let bytes = std::fs::read(&b.bundle).unwrap();
    let origin = "oci://r/acme/demo:1.0.0";
    let open = |file| Bundle::open_members_trusted(file, origin, &trust, full.clone());

    // A blob in the file: a members-only file holds none.
    let e = open(members_file(&full, &bytes, 1, |_, _| {})).unwrap_err();
    assert!(
        matches!(e, BundleError::Integrity(IntegrityError::ExtraBlob { .. })),
        "{e}"
    );
    // A changed component file: its size no longer matches the listing (a same-size change is
    // caught by `read_member`'s digest check).
    let path = full.manifest().components[0].manifests[0].clone();
    let grown = members_file(&full, &bytes, 0, |p, d| {
        if p == path {
            d.extend_from_slice(b"# more\n");
        }
    });
    let e = open(grown).unwrap_err();
    assert!(
        matches!(e, BundleError::Integrity(IntegrityError::MemberSize { .. })),
        "{e}"
    );
    let flipped = members_file(&full, &bytes, 0, |p, d| {
        if p == path {
            d[0] ^= 1;
        }
    });
    let e = open(flipped)
        .unwrap()
        .read_member(&path, 1 << 20)
        .unwrap_err();
    assert!(
        matches!(
            e,
            BundleError::Integrity(IntegrityError::TamperedMember { .. })
        ),
        "{e}"
    );
    // A changed manifest: the signature is checked before it is parsed.
    let changed = members_file(&full, &bytes, 0, |p, d| {
        if p == "airlift.yaml" {
            let last = d.len() - 1;
            d[last] = b' ';
        }
    });
    let e = open(changed).unwrap_err();
    assert!(
        matches!(e, BundleError::Trust(TrustError::TamperedManifest { .. })),
        "{e:?}"
    );
}
