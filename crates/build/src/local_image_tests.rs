use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::process::Command;

use super::*;

fn platforms() -> Vec<Platform> {
    vec![
        "linux/amd64".parse().unwrap(),
        "linux/arm64".parse().unwrap(),
    ]
}

fn spec(context: &str) -> BuildSpec {
    BuildSpec {
        context: context.into(),
        entrypoint: vec!["/bin/sh".into(), "/app/run.sh".into()],
        cmd: vec!["--port".into(), "8080".into()],
        env: [("MODE".to_string(), "demo".to_string())].into(),
        ports: vec!["8080".into(), "9090/udp".into()],
        workdir: Some("/app".into()),
        user: Some("65532:65532".into()),
    }
}

/// A context with a nested folder, an executable, a long name and an inner symlink.
fn make_context(def: &Path) {
    let ctx = def.join("images/web");
    std::fs::create_dir_all(ctx.join("app/static")).unwrap();
    std::fs::write(ctx.join("app/run.sh"), "#!/bin/sh\necho hi\n").unwrap();
    std::fs::set_permissions(
        ctx.join("app/run.sh"),
        std::fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    std::fs::write(ctx.join("app/static/index.html"), "<h1>demo</h1>\n").unwrap();
    let long = format!("app/static/{}.txt", "n".repeat(150));
    std::fs::write(ctx.join(long), "long name\n").unwrap();
    std::os::unix::fs::symlink("static/index.html", ctx.join("app/index.html")).unwrap();
}

fn read_blob(store: &DirBlobStore, d: &Digest) -> Vec<u8> {
    std::fs::read(store.path_of(d)).unwrap()
}

#[test]
fn two_builds_are_byte_identical() {
    let def = tempfile::tempdir().unwrap();
    make_context(def.path());
    let (s1, s2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let store1 = DirBlobStore::open(s1.path()).unwrap();
    let store2 = DirBlobStore::open(s2.path()).unwrap();
    let a = build_local_image(def.path(), &spec("images/web"), &platforms(), &store1).unwrap();
    // Touch every file: mtimes must not matter.
    let later = std::time::SystemTime::now() + std::time::Duration::from_secs(3600);
    let f = std::fs::File::options()
        .write(true)
        .open(def.path().join("images/web/app/run.sh"))
        .unwrap();
    f.set_modified(later).unwrap();
    let b = build_local_image(def.path(), &spec("images/web"), &platforms(), &store2).unwrap();
    assert_eq!(a, b);
    assert_eq!(a.blobs.len(), 6, "layer, 2 configs, 2 manifests, index");
    for blob in &a.blobs {
        assert_eq!(
            read_blob(&store1, &blob.digest),
            read_blob(&store2, &blob.digest)
        );
        assert_eq!(
            Digest::of_bytes(&read_blob(&store1, &blob.digest)),
            blob.digest
        );
        assert_eq!(blob.size, read_blob(&store1, &blob.digest).len() as u64);
    }
    // Nothing but blobs is left in the store (the temporary layer file is gone).
    let names: Vec<_> = std::fs::read_dir(s1.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["sha256"]);
    let mut stored: Vec<_> = std::fs::read_dir(s1.path().join("sha256"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    stored.sort();
    let mut blobs: Vec<_> = a.blobs.iter().map(|b| b.digest.hex().to_string()).collect();
    blobs.sort();
    assert_eq!(stored, blobs, "the store holds the blobs and nothing else");
}

#[test]
fn layer_is_deterministic_tar_with_modes_and_config_points_to_it() {
    let def = tempfile::tempdir().unwrap();
    make_context(def.path());
    let s = tempfile::tempdir().unwrap();
    let store = DirBlobStore::open(s.path()).unwrap();
    let img = build_local_image(def.path(), &spec("images/web"), &platforms(), &store).unwrap();
    let layer = &img.blobs[0];
    assert_eq!(layer.media_type, LAYER_MEDIA_TYPE);
    let gz = read_blob(&store, &layer.digest);
    assert_eq!(&gz[4..8], &[0, 0, 0, 0], "gzip mtime is zero");
    let mut raw = Vec::new();
    flate2::read::GzDecoder::new(&gz[..])
        .read_to_end(&mut raw)
        .unwrap();
    let mut archive = tar::Archive::new(&raw[..]);
    let mut seen = Vec::new();
    for e in archive.entries().unwrap() {
        let e = e.unwrap();
        let h = e.header();
        assert_eq!(h.mtime().unwrap(), 0);
        assert_eq!(h.uid().unwrap(), 0);
        assert_eq!(h.gid().unwrap(), 0);
        let path = e.path().unwrap().to_string_lossy().into_owned();
        if path == "app/run.sh" {
            assert_eq!(h.mode().unwrap(), 0o755);
        }
        if path == "app/index.html" {
            assert_eq!(h.entry_type(), tar::EntryType::Symlink);
            assert_eq!(
                e.link_name().unwrap().unwrap().to_str(),
                Some("static/index.html")
            );
        }
        seen.push(path);
    }
    let mut sorted = seen.clone();
    sorted.sort();
    assert_eq!(seen, sorted, "entries are sorted");
    assert!(
        seen.iter().any(|p| p.len() > 150),
        "long names survive: {seen:?}"
    );

    let index: serde_json::Value = serde_json::from_slice(&read_blob(&store, &img.digest)).unwrap();
    assert_eq!(index["mediaType"], INDEX_MEDIA_TYPE);
    let archs: Vec<&str> = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["platform"]["architecture"].as_str().unwrap())
        .collect();
    assert_eq!(archs, ["amd64", "arm64"]);
    let mdigest: Digest = index["manifests"][1]["digest"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let manifest: serde_json::Value = serde_json::from_slice(&read_blob(&store, &mdigest)).unwrap();
    assert_eq!(manifest["layers"][0]["digest"], layer.digest.to_string());
    let cdigest: Digest = manifest["config"]["digest"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let config: serde_json::Value = serde_json::from_slice(&read_blob(&store, &cdigest)).unwrap();
    assert_eq!(config["architecture"], "arm64");
    assert_eq!(
        config["rootfs"]["diff_ids"][0],
        Digest::of_bytes(&raw).to_string()
    );
    assert_eq!(config["config"]["Env"], serde_json::json!(["MODE=demo"]));
    assert_eq!(
        config["config"]["ExposedPorts"],
        serde_json::json!({"8080/tcp": {}, "9090/udp": {}})
    );
    assert_eq!(config["config"]["User"], "65532:65532");
    assert_eq!(config["config"]["WorkingDir"], "/app");
}

#[test]
fn escaping_symlinks_and_contexts_are_rejected() {
    let def = tempfile::tempdir().unwrap();
    make_context(def.path());
    let s = tempfile::tempdir().unwrap();
    let store = DirBlobStore::open(s.path()).unwrap();
    let ctx = def.path().join("images/web");
    std::os::unix::fs::symlink("../../../etc/passwd", ctx.join("app/evil")).unwrap();
    let e = build_local_image(def.path(), &spec("images/web"), &platforms(), &store)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("symlink `app/evil` points to `../../../etc/passwd`"),
        "{e}"
    );
    std::fs::remove_file(ctx.join("app/evil")).unwrap();
    std::os::unix::fs::symlink("/etc/passwd", ctx.join("app/abs")).unwrap();
    assert!(matches!(
        build_local_image(def.path(), &spec("images/web"), &platforms(), &store),
        Err(LocalImageError::SymlinkEscapes { .. })
    ));
    for bad in ["../outside", "/tmp", "missing"] {
        assert!(matches!(
            build_local_image(def.path(), &spec(bad), &platforms(), &store),
            Err(LocalImageError::Context { .. })
        ));
    }
    std::fs::remove_file(ctx.join("app/abs")).unwrap();
    let odd = std::ffi::OsStr::from_bytes(b"app/\xff.txt");
    std::fs::write(ctx.join(odd), "x").unwrap();
    assert!(matches!(
        build_local_image(def.path(), &spec("images/web"), &platforms(), &store),
        Err(LocalImageError::NonUtf8Name { .. })
    ));
    std::fs::remove_file(ctx.join(odd)).unwrap();
    let fifo = ctx.join("app/pipe");
    let status = Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(status.success(), "mkfifo is needed for this test");
    let e = build_local_image(def.path(), &spec("images/web"), &platforms(), &store).unwrap_err();
    assert_eq!(
        e.to_string(),
        "`app/pipe` is not a regular file, folder or symlink; remove it from the build context"
    );
    std::fs::remove_file(&fifo).unwrap();
    assert!(matches!(
        build_local_image(def.path(), &spec("images/web"), &[], &store),
        Err(LocalImageError::NoPlatform)
    ));
}

/// skopeo (a real OCI implementation) reads what we built, verifying every digest on copy, and
/// picks the arm64 manifest by platform.
#[test]
fn skopeo_reads_and_copies_the_built_image() {
    let skopeo = Path::new("/usr/bin/skopeo");
    assert!(
        skopeo.exists(),
        "skopeo is required for this test: apt-get install skopeo"
    );
    let def = tempfile::tempdir().unwrap();
    make_context(def.path());
    let layout = tempfile::tempdir().unwrap();
    let store = DirBlobStore::open(layout.path().join("blobs")).unwrap();
    let img = build_local_image(def.path(), &spec("images/web"), &platforms(), &store).unwrap();
    std::fs::write(
        layout.path().join("oci-layout"),
        r#"{"imageLayoutVersion":"1.0.0"}"#,
    )
    .unwrap();
    let index = serde_json::json!({
        "schemaVersion": 2,
        "manifests": [{
            "mediaType": img.media_type, "digest": img.digest.to_string(), "size": img.size,
            "annotations": {"org.opencontainers.image.ref.name": "demo"}
        }]
    });
    std::fs::write(layout.path().join("index.json"), index.to_string()).unwrap();
    let src = format!("oci:{}:demo", layout.path().display());
    let out = Command::new(skopeo)
        .args([
            "--override-arch",
            "arm64",
            "--override-os",
            "linux",
            "inspect",
            "--config",
            &src,
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let config: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(config["architecture"], "arm64");
    assert_eq!(
        config["config"]["Entrypoint"],
        serde_json::json!(["/bin/sh", "/app/run.sh"])
    );
    let dest = tempfile::tempdir().unwrap();
    let out = Command::new(skopeo)
        .args([
            "copy",
            "--all",
            &src,
            &format!("oci:{}:copy", dest.path().display()),
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let copied: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dest.path().join("index.json")).unwrap()).unwrap();
    assert_eq!(
        copied["manifests"][0]["digest"],
        img.digest.to_string(),
        "digest kept end to end"
    );
}

#[test]
fn an_unchanged_context_is_not_compressed_again_and_a_changed_one_is() {
    use std::os::unix::fs::MetadataExt;
    let def = tempfile::tempdir().unwrap();
    make_context(def.path());
    let s = tempfile::tempdir().unwrap();
    let store = DirBlobStore::open(s.path()).unwrap().with_proofs();
    let build =
        || build_local_image(def.path(), &spec("images/web"), &platforms(), &store).unwrap();
    // Files written a moment ago: built every time, nothing recorded.
    assert!(!build().layer_reused);
    assert!(
        !build().layer_reused,
        "files changed within SETTLED were recorded"
    );
    std::thread::sleep(crate::local_image_reuse::SETTLED + std::time::Duration::from_millis(100));
    // The files are settled now (the second build above may already have recorded them, when
    // it began more than SETTLED after they were written).
    let first = BuiltImage {
        layer_reused: false,
        ..build()
    };
    let layer = store.path_of(&first.blobs[0].digest);
    let before = std::fs::metadata(&layer).unwrap();
    let second = build();
    assert!(
        second.layer_reused,
        "the unchanged context was compressed again"
    );
    assert_eq!(
        BuiltImage {
            layer_reused: false,
            ..second
        },
        first,
        "the reused build differs"
    );
    let after = std::fs::metadata(&layer).unwrap();
    assert_eq!(
        (before.ino(), before.mtime(), before.mtime_nsec()),
        (after.ino(), after.mtime(), after.mtime_nsec()),
        "the layer was written again"
    );

    // One file rewritten with the same size: built again, and the new layer holds the new bytes.
    std::fs::write(
        def.path().join("images/web/app/run.sh"),
        "#!/bin/sh\necho ho\n",
    )
    .unwrap();
    let changed = build();
    assert!(!changed.layer_reused);
    assert_ne!(changed.blobs[0].digest, first.blobs[0].digest);
    let fresh = tempfile::tempdir().unwrap();
    let plain = DirBlobStore::open(fresh.path()).unwrap();
    let expected =
        build_local_image(def.path(), &spec("images/web"), &platforms(), &plain).unwrap();
    assert_eq!(changed, expected);
}

#[test]
fn a_context_past_its_bounds_is_refused_by_name() {
    let ctx = tempfile::tempdir().unwrap();
    // Entries: a, a/b, a/b/c, a/b/c/f, top: five, three folders deep.
    std::fs::create_dir_all(ctx.path().join("a/b/c")).unwrap();
    std::fs::write(ctx.path().join("a/b/c/f"), "deep\n").unwrap();
    std::fs::write(ctx.path().join("top"), "top\n").unwrap();
    let bounds = |entries, depth| ScanBounds { entries, depth };

    // At the bounds: taken whole.
    let entries = scan_context_within(ctx.path(), bounds(5, 3)).unwrap();
    let rels: Vec<&str> = entries.iter().map(rel_of).collect();
    assert_eq!(rels, ["a", "a/b", "a/b/c", "a/b/c/f", "top"]);

    // One entry past: refused, naming the context and the bound.
    let err = scan_context_within(ctx.path(), bounds(4, 3)).unwrap_err();
    assert!(
        matches!(&err, LocalImageError::TooManyEntries { context, limit: 4 } if context == ctx.path()),
        "{err:?}"
    );
    assert!(err.to_string().contains("more than 4 files"), "{err}");

    // One level past: refused, naming the first folder too deep.
    let err = scan_context_within(ctx.path(), bounds(100, 2)).unwrap_err();
    assert!(
        matches!(&err, LocalImageError::TooDeep { path, limit: 2 } if path == "a/b/c"),
        "{err:?}"
    );
    // Both are the definition's to fix (exit 6), with a way out.
    for e in [
        &err,
        &LocalImageError::TooManyEntries {
            context: ctx.path().into(),
            limit: 4,
        },
    ] {
        assert_eq!(
            airlift_bundle::Diagnose::exit_kind(e),
            airlift_bundle::ExitKind::Config
        );
        assert!(airlift_bundle::Diagnose::fix(e)
            .unwrap()
            .contains("ociLayout"));
    }
    // The defaults are the ones the definition's schema documents.
    assert_eq!(
        (ScanBounds::DEFAULT.entries, ScanBounds::DEFAULT.depth),
        (MAX_CONTEXT_ENTRIES, MAX_CONTEXT_DEPTH)
    );
    let schema = airlift_bundle::schema::json_schema::definition_schema_json();
    let thousands = MAX_CONTEXT_ENTRIES / 1000;
    let documented = format!(
        "At most {thousands} {:03} files, folders and symlinks, nested at most {MAX_CONTEXT_DEPTH} folders deep",
        MAX_CONTEXT_ENTRIES % 1000
    );
    assert!(
        schema.contains(&documented),
        "the schema does not say: {documented}"
    );
}
