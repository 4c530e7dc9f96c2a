//! `airlift-pack build` of unchanged inputs, as the real binary, from a real `docker-registry`:
//! when the cache holds exactly the bundle the build would write, nothing is written; when it
//! does not (another output still uses it, or a byte of it changed), the bundle is written.

#![allow(clippy::unwrap_used)]

mod common;

use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};

use common::*;

/// `(device, inode, mtime in ns)` of `path`.
fn identity(path: &Path) -> (u64, u64, i128) {
    let m = std::fs::metadata(path).unwrap();
    (
        m.dev(),
        m.ino(),
        i128::from(m.mtime()) * 1_000_000_000 + i128::from(m.mtime_nsec()),
    )
}

/// Checks the bundle's signature with the public half of `key` and hashes every member and blob.
fn verify(bundle: &Path, key: &Path) {
    let public = airlift_bundle::sign::PublicKey::load(&key.with_extension("pub")).unwrap();
    let trust = airlift_bundle::Trust::Key(public);
    let b = airlift_bundle::Bundle::open_trusted(bundle, &trust).unwrap();
    b.verify(&trust, &airlift_bundle::NoProgress)
        .unwrap_or_else(|e| panic!("{} does not verify: {e}", bundle.display()));
}

#[test]
fn a_rebuild_of_unchanged_inputs_writes_nothing_unless_the_held_bundle_differs() {
    let dir = tempfile::tempdir().unwrap();
    let RegistrySite {
        reg: _reg,
        set: _,
        host,
        def,
        key,
    } = registry_site(dir.path(), 21, 256 << 10);
    let cache = dir.path().join("cache");
    let build = |out: &str| {
        let o = run_build(
            dir.path(),
            &def,
            &key,
            out,
            "cache",
            &["--insecure-registry", &host, "--output", "json"],
        );
        let summary = json(&o);
        (PathBuf::from(summary["bundle"].as_str().unwrap()), summary)
    };
    let (first, cold) = build("a");
    assert!(cold["downloadedBytes"].as_u64().unwrap() > 0);
    assert!(cold.get("reused").is_none(), "{cold}");
    let original = std::fs::read(&first).unwrap();
    let (_, held, _) = largest_held_blob(&cache);

    // Into the same folder: the file there is already this bundle, and is not touched.
    let before = identity(&first);
    let (same, again) = build("a");
    assert_eq!(again["reused"], "unchanged", "{again}");
    assert_eq!(same, first);
    assert_eq!(identity(&first), before, "the bundle was written again");
    let o = run_build(
        dir.path(),
        &def,
        &key,
        "a",
        "cache",
        &["--insecure-registry", &host],
    );
    assert!(
        text(&o).contains("unchanged: the file there already has exactly these bytes"),
        "{}",
        text(&o)
    );

    // The first output deleted: the cache's link is the only one, and becomes the new output.
    std::fs::remove_file(&first).unwrap();
    let (second, linked) = build("b");
    assert_eq!(linked["reused"], "linked", "{linked}");
    assert_eq!(linked["downloadedBytes"], 0);
    assert_same_file(&second, &held);
    assert_eq!(std::fs::metadata(&second).unwrap().nlink(), 2);
    assert!(std::fs::read(&second).unwrap() == original);
    assert_eq!(
        std::fs::metadata(&second).unwrap().mode() & 0o777,
        0o644,
        "a bundle is not secret"
    );
    verify(&second, &key);

    // Another output still has it: a third folder gets a copy of its own, not a shared file.
    let (third, copied) = build("c");
    assert!(copied.get("reused").is_none(), "{copied}");
    assert_ne!(identity(&third).1, identity(&second).1);
    assert!(std::fs::read(&third).unwrap() == original);

    // A byte of the held bundle outside any layer changed, its time put back as it was (so every
    // layer's proof still holds): the check of every other byte finds it, and the build writes
    // a correct bundle.
    std::fs::remove_file(&second).unwrap();
    std::fs::remove_file(&third).unwrap();
    let (_, held, _) = largest_held_blob(&cache);
    let f = std::fs::OpenOptions::new().write(true).open(&held).unwrap();
    let modified = f.metadata().unwrap().modified().unwrap();
    let len = f.metadata().unwrap().len();
    f.write_all_at(b"x", len - 1).unwrap();
    f.set_modified(modified).unwrap();
    drop(f);
    let (fourth, rewritten) = build("d");
    assert!(rewritten.get("reused").is_none(), "{rewritten}");
    assert!(std::fs::read(&fourth).unwrap() == original);
    verify(&fourth, &key);
}
