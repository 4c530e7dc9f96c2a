//! The exit-code table of docs/architecture.md for `airlift-pack`, through the real binary, and
//! the error object `--output json` prints on stderr.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use airlift_testkit::files::copy_tree;

fn pack(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_airlift-pack"))
        .args(args)
        .env("NO_COLOR", "1")
        .env_remove("AIRLIFT_CACHE_DIR")
        .env(
            "XDG_CACHE_HOME",
            std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("exit-codes-xdg"),
        )
        .output()
        .unwrap()
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

#[track_caller]
fn assert_code(o: &Output, code: i32) {
    assert_eq!(
        o.status.code(),
        Some(code),
        "stdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
}

#[test]
fn every_row_the_packager_can_reach() {
    let dir = tempfile::tempdir().unwrap();
    let demo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../bundles/demo");

    // 0: success.
    assert_code(&pack(&["lint", s(&demo)]), 0);
    let prefix = dir.path().join("vendor");
    assert_code(&pack(&["keygen", "--out", s(&prefix)]), 0);

    // 1: any other failure: the key files cannot be written.
    assert_code(&pack(&["keygen", "--out", "/proc/airlift-vendor"]), 1);

    // 2: a wrong command line, including a public key where the signing key belongs and a
    // definition folder that does not exist.
    assert_code(&pack(&["lint", s(&demo), "--no-such-flag"]), 2);
    let public = dir.path().join("vendor.pub");
    let out = dir.path().join("out");
    let o = pack(&[
        "build",
        s(&demo),
        "--key",
        s(&public),
        "--out",
        s(&out),
        "--cache-dir",
        s(&dir.path().join("cache")),
    ]);
    assert_code(&o, 2);
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("vendor.pub"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert_code(&pack(&["lint", "/nonexistent/definition"]), 2);

    // 6: the definition is invalid.
    assert_code(&pack(&["lint", s(&fixture("12-invalid-definition"))]), 6);
}

#[test]
fn errors_under_output_json_are_one_object_on_stderr() {
    for format in ["json", "yaml"] {
        let o = pack(&[
            "lint",
            s(&fixture("12-invalid-definition")),
            "--output",
            format,
        ]);
        assert_code(&o, 6);
        let stderr = String::from_utf8_lossy(&o.stderr);
        let v: serde_json::Value = serde_json::from_str(stderr.trim())
            .unwrap_or_else(|e| panic!("stderr is one JSON object ({e}):\n{stderr}"));
        assert_eq!(v["exitCode"], 6, "{v}");
        assert!(v["message"].as_str().is_some_and(|m| !m.is_empty()), "{v}");
        assert!(v["causes"].is_array(), "{v}");
    }
}

#[test]
fn results_print_as_json_and_yaml_with_camel_case_keys() {
    let dir = tempfile::tempdir().unwrap();
    let demo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../bundles/demo");
    for (i, format) in ["json", "yaml"].into_iter().enumerate() {
        let prefix = dir.path().join(format!("vendor-{i}"));
        for args in [
            vec!["lint", s(&demo), "-o", format],
            vec!["keygen", "--out", s(&prefix), "-o", format],
        ] {
            let o = pack(&args);
            assert_code(&o, 0);
            let text = String::from_utf8_lossy(&o.stdout);
            let doc: serde_json::Value = if format == "json" {
                serde_json::from_str(&text).unwrap()
            } else {
                serde_yaml::from_str(&text).unwrap()
            };
            let keys: Vec<&String> = doc.as_object().unwrap().keys().collect();
            assert!(
                keys.iter().all(|k| !k.contains('_') && !k.contains('-')),
                "{args:?}: {keys:?}"
            );
        }
    }
}

#[test]
fn a_local_image_that_cannot_be_built_is_an_invalid_definition_for_lint_and_build() {
    // `build`'s pre-check does not build local images (the build does, once); the failure must
    // still be exit 6 naming the cause, as `lint` reports it.
    let dir = tempfile::tempdir().unwrap();
    let def = dir.path().join("demo");
    copy_tree(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("../bundles/demo"),
        &def,
    );
    std::os::unix::fs::symlink("/etc/hostname", def.join("images/web/escape")).unwrap();
    let o = pack(&["lint", s(&def)]);
    assert_code(&o, 6);
    let named = "symlink `escape` points to `/etc/hostname`, outside the build context";
    assert!(String::from_utf8_lossy(&o.stderr).contains(named), "{o:?}");

    let prefix = dir.path().join("vendor");
    assert_code(&pack(&["keygen", "--out", s(&prefix)]), 0);
    let o = pack(&[
        "build",
        s(&def),
        "--key",
        s(&dir.path().join("vendor.key")),
        "--out",
        s(&dir.path().join("out")),
        "--cache-dir",
        s(&dir.path().join("cache")),
    ]);
    assert_code(&o, 6);
    assert!(String::from_utf8_lossy(&o.stderr).contains(named), "{o:?}");
    assert!(!dir.path().join("out/demo-0.1.0.airlift").exists());
}
