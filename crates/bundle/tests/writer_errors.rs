//! The writer refuses incomplete images, corrupt sources and unsafe paths, and leaves nothing
//! behind when it fails.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns

mod common;

use airlift_bundle::walk::WalkError;
use airlift_bundle::{write_bundle, BundleContents, ComponentFile, NoProgress, WriteError};
use common::*;

fn try_write(
    f: &Fixture,
    files: Vec<ComponentFile>,
    dir: &std::path::Path,
) -> Result<(), WriteError> {
    write_bundle(
        BundleContents {
            manifest: f.manifest.clone(),
            files,
        },
        &f.store,
        None,
        &dir.join("out.airlift"),
        &NoProgress,
    )
    .map(|_| ())
}

fn assert_nothing_written(dir: &std::path::Path) {
    assert_eq!(
        std::fs::read_dir(dir).unwrap().count(),
        0,
        "no output or temp file is left"
    );
}

#[test]
fn incomplete_image_is_refused_naming_the_blob() {
    let dir = tempfile::tempdir().unwrap();
    let f = fixture();
    std::fs::remove_file(f.store.path_of(&f.shared_layer)).unwrap();
    match try_write(&f, f.files.clone(), dir.path()) {
        Err(WriteError::Image(WalkError::Missing { digest, .. })) => {
            assert_eq!(digest, f.shared_layer)
        }
        other => panic!("expected a missing blob, got {other:?}"),
    }
    assert_nothing_written(dir.path());
}

#[test]
fn corrupt_source_blob_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let f = fixture();
    let p = f.store.path_of(&f.shared_layer);
    let mut data = std::fs::read(&p).unwrap();
    let last = data.len() - 1;
    data[last] ^= 1;
    std::fs::write(&p, data).unwrap();
    match try_write(&f, f.files.clone(), dir.path()) {
        Err(WriteError::SourceCorrupt { digest, .. }) => assert_eq!(digest, f.shared_layer),
        other => panic!("expected SourceCorrupt, got {other:?}"),
    }
    assert_nothing_written(dir.path());
}

#[test]
fn unsafe_component_paths_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let f = fixture();
    for bad in [
        "components/../evil",
        "outside/x.yaml",
        "components/x",
        "/components/a/b",
    ] {
        let files = vec![ComponentFile {
            path: bad.into(),
            data: b"x".to_vec(),
        }];
        let err = try_write(&f, files, dir.path()).unwrap_err();
        assert!(matches!(err, WriteError::BadPath { .. }), "{bad}: {err:?}");
    }
    let dup = ComponentFile {
        path: "components/a/x.yaml".into(),
        data: b"x".to_vec(),
    };
    let err = try_write(&f, vec![dup.clone(), dup], dir.path()).unwrap_err();
    assert!(matches!(err, WriteError::DuplicateFile { .. }), "{err:?}");
    assert_nothing_written(dir.path());
}

#[test]
fn one_reference_with_two_digests_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut f = fixture();
    let other = f.manifest.components[0].images[1].digest.clone();
    let mut clash = f.manifest.components[0].images[0].clone();
    clash.digest = other;
    clash.media_type = airlift_bundle::oci::MEDIA_TYPE_OCI_MANIFEST.into();
    clash.platforms = vec!["linux/amd64".parse().unwrap()];
    f.manifest.components[1].images.push(clash);
    let err = try_write(&f, vec![], dir.path()).unwrap_err();
    assert!(
        matches!(err, WriteError::ConflictingReference { .. }),
        "{err:?}"
    );
}

#[test]
fn listed_component_file_that_is_missing_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let f = fixture();
    let err = try_write(&f, vec![], dir.path()).unwrap_err();
    assert!(
        matches!(&err, WriteError::MissingComponentFile { component, path }
            if component == "api" && path == "components/api/deployment.yaml"),
        "{err:?}"
    );
    assert_nothing_written(dir.path());
}

#[test]
fn long_component_paths_round_trip_through_the_ustar_prefix() {
    let dir = tempfile::tempdir().unwrap();
    let mut f = fixture();
    let long = format!("components/api/{}/{}.yaml", "d".repeat(120), "n".repeat(60));
    assert!(long.len() > 100);
    f.manifest.components[0].manifests.push(long.clone());
    let mut files = f.files.clone();
    files.push(ComponentFile {
        path: long.clone(),
        data: b"kind: ConfigMap\n".to_vec(),
    });
    f.files = files;
    let key = airlift_bundle::PrivateKey::generate();
    let out = dir.path().join("long.airlift");
    build(&f, Some(&key), &out);
    let trust = airlift_bundle::Trust::Key(key.public_key());
    let bundle = airlift_bundle::Bundle::open_trusted(&out, &trust).unwrap();
    bundle.verify(&trust, &NoProgress).unwrap();
    assert_eq!(
        bundle.read_member(&long, 1024).unwrap(),
        b"kind: ConfigMap\n"
    );
    // GNU tar reads the same path.
    let listing = tool("tar").arg("-tf").arg(&out).output().unwrap();
    assert!(String::from_utf8_lossy(&listing.stdout)
        .lines()
        .any(|l| l == long));
}

#[test]
fn recorded_platform_the_image_lacks_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut f = fixture();
    // The worker image is linux/amd64 only (its config says so).
    f.manifest.components[0].images[1].platforms = vec!["linux/arm64".parse().unwrap()];
    match try_write(&f, f.files.clone(), dir.path()) {
        Err(WriteError::Image(WalkError::PlatformMismatch {
            reference,
            recorded,
            actual,
        })) => {
            assert_eq!(reference, WORKER_REF);
            assert_eq!(recorded.to_string(), "linux/arm64");
            assert_eq!(actual, "linux/amd64");
        }
        other => panic!("expected PlatformMismatch, got {other:?}"),
    }
    // An index is checked against its entries.
    let mut f = fixture();
    f.manifest.components[0].images[0]
        .platforms
        .push("linux/s390x".parse().unwrap());
    assert!(matches!(
        try_write(&f, f.files.clone(), dir.path()),
        Err(WriteError::Image(WalkError::PlatformMismatch { .. }))
    ));
    assert_nothing_written(dir.path());
}
