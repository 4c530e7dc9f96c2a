//! insta snapshots of `airlift-pack`'s help text and main error messages (real stderr and exit
//! code), paths filtered, so wording changes are deliberate.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::Command;

fn pack(args: &[&str]) -> String {
    let o = Command::new(env!("CARGO_BIN_EXE_airlift-pack"))
        .args(args)
        .env("NO_COLOR", "1")
        .env("COLUMNS", "100")
        .env_remove("AIRLIFT_CACHE_DIR")
        .env(
            "XDG_CACHE_HOME",
            std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("snapshots-xdg"),
        )
        .output()
        .unwrap();
    format!(
        "exit {}\n--- stdout\n{}--- stderr\n{}",
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn settings() -> insta::Settings {
    let mut s = insta::Settings::clone_current();
    s.add_filter(r"/tmp/\.tmp[A-Za-z0-9]+", "[TMP]");
    s.add_filter(env!("CARGO_MANIFEST_DIR"), "[PACKAGER]");
    s.add_filter(r"sha256:[0-9a-f]{64}", "sha256:[DIGEST]");
    s.add_filter(r"airlift-pack \d+\.\d+\.\d+", "airlift-pack [VERSION]");
    s.set_prepend_module_to_snapshot(false);
    s
}

#[test]
fn help_texts() {
    let _guard = settings().bind_to_scope();
    insta::assert_snapshot!("help", pack(&["--help"]));
    for cmd in ["build", "keygen", "lint"] {
        insta::assert_snapshot!(format!("help-{cmd}"), pack(&[cmd, "--help"]));
    }
}

#[test]
fn main_error_messages() {
    let _guard = settings().bind_to_scope();
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    for name in [
        "10-uncarried-image",
        "11-template-typo",
        "12-invalid-definition",
    ] {
        let dir = fixtures.join(name);
        insta::assert_snapshot!(
            format!("lint-{name}"),
            pack(&["lint", dir.to_str().unwrap()])
        );
    }
    insta::assert_snapshot!(
        "lint-missing-folder",
        pack(&["lint", "/nonexistent/definition"])
    );
    let dir = tempfile::tempdir().unwrap();
    let prefix = dir.path().join("vendor");
    pack(&["keygen", "--out", prefix.to_str().unwrap()]);
    insta::assert_snapshot!(
        "keygen-exists",
        pack(&["keygen", "--out", prefix.to_str().unwrap()])
    );
    let demo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../bundles/demo");
    let public = dir.path().join("vendor.pub");
    let out = dir.path().join("out");
    insta::assert_snapshot!(
        "build-public-key",
        pack(&[
            "build",
            demo.to_str().unwrap(),
            "--key",
            public.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ])
    );
}
