//! A bundle is a standard OCI archive: the real skopeo (1.9.3 here) reads every image out of it,
//! and the digests match the sources.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns

mod common;

use std::path::Path;

use airlift_bundle::{Digest, PrivateKey};
use common::*;

fn skopeo_copy_all(bundle: &Path, reference: &str, dest: &Path) {
    let out = tool("skopeo")
        .args(["copy", "--all", "--preserve-digests"])
        .arg(format!("oci-archive:{}:{reference}", bundle.display()))
        .arg(format!("dir:{}", dest.display()))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "skopeo copy of `{reference}` failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn skopeo_raw(bundle: &Path, reference: &str) -> Vec<u8> {
    let out = tool("skopeo")
        .args(["inspect", "--raw"])
        .arg(format!("oci-archive:{}:{reference}", bundle.display()))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "skopeo inspect of `{reference}` failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

#[test]
fn skopeo_copies_every_image_out_of_a_bundle_with_matching_digests() {
    let b = built();
    assert_eq!(b.fixture.images.len(), 3);
    for (i, (reference, digest)) in b.fixture.images.iter().enumerate() {
        // The raw top-level manifest is byte-identical to the source.
        let raw = skopeo_raw(&b.bundle, reference);
        assert_eq!(&Digest::of_bytes(&raw), digest, "{reference}");
        assert_eq!(raw, std::fs::read(b.fixture.store.path_of(digest)).unwrap());
        // A full copy (all platforms) gives the same manifest and intact blobs.
        let dest = b.dir.path().join(format!("copy{i}"));
        skopeo_copy_all(&b.bundle, reference, &dest);
        let manifest = std::fs::read(dest.join("manifest.json")).unwrap();
        assert_eq!(&Digest::of_bytes(&manifest), digest, "{reference}");
        let mut blobs = 0;
        for entry in std::fs::read_dir(&dest).unwrap() {
            let entry = entry.unwrap();
            let name = entry.file_name().into_string().unwrap();
            if name.len() == 64 {
                let data = std::fs::read(entry.path()).unwrap();
                assert_eq!(
                    Digest::of_bytes(&data).hex(),
                    name,
                    "{reference}: blob {name}"
                );
                blobs += 1;
            }
        }
        assert!(
            blobs >= 2,
            "{reference}: expected config and layers, found {blobs} blobs"
        );
    }
    // The multi-arch image carries both platforms' manifests.
    let api_dir = b.dir.path().join("copy0");
    let per_instance = std::fs::read_dir(&api_dir)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .ends_with(".manifest.json")
        })
        .count();
    assert_eq!(per_instance, 2, "both platform manifests of {API_REF}");
}

/// skopeo 1.9.3 matches `oci-archive:FILE:REF` against `org.opencontainers.image.ref.name` as an
/// exact string, splitting FILE from REF at the first colon. Full references work, including a
/// registry port and a digest; a name that is not in index.json is refused.
#[test]
fn skopeo_accepts_full_reference_forms_as_ref_names() {
    let dir = tempfile::tempdir().unwrap();
    let mut f = fixture();
    let api_digest = f.images[0].1.clone();
    let forms = [
        "registry.example.com:5000/acme/api:1.0".to_string(),
        format!("registry.example.com/acme/worker@{}", f.images[1].1),
        "redis:7.2".to_string(),
    ];
    let mut i = 0;
    for c in &mut f.manifest.components {
        for img in &mut c.images {
            img.reference = forms[i].clone();
            i += 1;
        }
    }
    let key = PrivateKey::generate();
    let bundle = dir.path().join("forms.airlift");
    build(&f, Some(&key), &bundle);
    let raw = skopeo_raw(&bundle, &forms[0]);
    assert_eq!(Digest::of_bytes(&raw), api_digest);
    let raw = skopeo_raw(&bundle, &forms[1]);
    assert_eq!(Digest::of_bytes(&raw), f.images[1].1);
    let raw = skopeo_raw(&bundle, &forms[2]);
    assert_eq!(Digest::of_bytes(&raw), f.images[2].1);
    // A reference that is not a ref.name in index.json is refused.
    let out = tool("skopeo")
        .args(["inspect", "--raw"])
        .arg(format!(
            "oci-archive:{}:docker.io/library/redis:7.2",
            bundle.display()
        ))
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no descriptor found"));
}
