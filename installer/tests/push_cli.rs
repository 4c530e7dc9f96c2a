//! `airlift-install push` as the real binary against real registries: success with a relocation
//! map, and each failure with its named error, exit code, and an untouched registry.

#![allow(clippy::unwrap_used)]

mod push_support;

use std::os::unix::fs::FileExt;

use airlift_testkit::registry::TestRegistry;
use push_support::*;

fn repositories_dir(reg: &TestRegistry) -> std::path::PathBuf {
    reg.storage_dir().join("docker/registry/v2/repositories")
}

#[test]
fn push_writes_the_relocation_map_and_a_second_push_sends_nothing() {
    let e = env(1 << 20);
    let reg = TestRegistry::tls_with_auth("alice", "s3cret-pw");
    let map = e.dir.path().join("relocation.json");
    let o = push_cmd(&e, &reg, &["--output", "json", "--relocation-map", s(&map)])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        !stderr(&o).contains("s3cret-pw")
            && !String::from_utf8_lossy(&o.stdout).contains("s3cret-pw")
    );
    let v = verify_json_report(&reg, &o.stdout, e.dir.path());
    assert!(v["bytesPushed"].as_u64().unwrap() > 1 << 20);
    let written: serde_json::Value = serde_json::from_slice(&std::fs::read(&map).unwrap()).unwrap();
    assert_eq!(written, v["relocationMap"]);

    let o = push_cmd(&e, &reg, &["--output", "json"]).output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["bytesPushed"], 0, "{v}");
    assert_eq!(v["manifestsPushed"], 0, "{v}");

    // Text output: the summary and the map.
    let o = push_cmd(&e, &reg, &[]).output().unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("pushed demo 1.0.0 to"), "{out}");
    assert!(
        out.contains(&format!(
            "registry.example.com/acme/api:1.0 -> {}/acme/api@sha256:",
            reg.host()
        )),
        "{out}"
    );
}

/// Every file under `dir`, recursively (paths relative to `dir`).
fn files_under(dir: &std::path::Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let path = e.path();
            if path.is_dir() {
                stack.push(path);
            } else {
                out.push(path.strip_prefix(dir).unwrap().display().to_string());
            }
        }
    }
    out
}

#[test]
fn tampered_bundle_leaves_no_blob_data_manifest_or_tag_in_the_registry() {
    let e = env(256 << 10);
    // Flip one byte in the middle of the file (inside a layer).
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&e.bundle)
        .unwrap();
    let len = f.metadata().unwrap().len();
    let mut b = [0u8; 1];
    f.read_exact_at(&mut b, len / 2).unwrap();
    b[0] ^= 0xff;
    f.write_all_at(&b, len / 2).unwrap();
    let reg = TestRegistry::plain();
    let o = push_cmd(&e, &reg, &[]).output().unwrap();
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert!(stderr(&o).contains("failed verification"), "{}", stderr(&o));
    // The push streamed the other blobs (hashing each on the way) but committed none: no blob
    // data anywhere in the storage (committed or in an upload session), no manifest, no tag, no
    // layer link. What may remain are the hash states docker distribution rewrites after a
    // cancelled session (see crates/registry/src/preflight.rs).
    let storage = reg.storage_dir().join("docker/registry/v2");
    let files = files_under(&storage);
    let leftovers: Vec<&String> = files
        .iter()
        .filter(|f| !f.contains("/_uploads/") || !f.contains("/hashstates/"))
        .collect();
    assert!(leftovers.is_empty(), "the registry holds {leftovers:?}");
    assert!(!storage.join("blobs").exists() || files_under(&storage.join("blobs")).is_empty());
    let repos = files_under(&repositories_dir(&reg));
    assert!(
        repos
            .iter()
            .all(|f| !f.contains("_manifests") && !f.contains("_layers")),
        "{repos:?}"
    );
}

#[test]
fn wrong_password_missing_ca_and_unreachable_fail_preflight_by_name_with_exit_4() {
    let e = env(64 << 10);
    let reg = TestRegistry::tls_with_auth("alice", "right");

    let o = push_cmd(&e, &reg, &[])
        .env("AIRLIFT_REGISTRY_PASSWORD", "wrong")
        .output()
        .unwrap();
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(4), "{err}");
    assert!(err.contains(&reg.host()), "{err}");
    assert!(err.contains("hint: 401"), "{err}");
    assert!(err.contains("check the user"), "{err}");
    assert!(!err.contains("wrong"), "no password in output: {err}");

    let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_airlift-install"));
    c.args([
        "push",
        s(&e.bundle),
        "--key",
        s(&e.key),
        "--registry",
        &reg.host(),
        "--no-progress",
        "--registry-user",
        "alice",
    ])
    .env("AIRLIFT_REGISTRY_PASSWORD", "right")
    .env("AIRLIFT_STATE_DIR", e.dir.path().join("state"));
    let o = c.output().unwrap();
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(4), "{err}");
    assert!(
        err.contains("unknown issuer: pass the registry's CA with --registry-ca"),
        "{err}"
    );
    for t in TAGS {
        assert!(!tag_exists(&reg, t), "{t}");
    }

    let dead = format!("127.0.0.1:{}", airlift_testkit::registry::free_port());
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_airlift-install"))
        .args([
            "push",
            s(&e.bundle),
            "--key",
            s(&e.key),
            "--registry",
            &dead,
            "--insecure-registry",
            &dead,
            "--no-progress",
        ])
        .env("AIRLIFT_STATE_DIR", e.dir.path().join("state"))
        .output()
        .unwrap();
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(4), "{err}");
    assert!(err.contains(&dead), "{err}");
}
