//! A definition's NOTES template through the real `airlift-pack lint`: rendered with the
//! defaults so a typo fails at build time, not after a customer's install; bounded in size.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::{Command, Output};

/// A copy of `bundles/demo` whose definition ends with `notes`.
fn demo_with_notes(dir: &Path, notes: &str) -> std::path::PathBuf {
    let demo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../bundles/demo");
    let copy = dir.join("demo");
    std::fs::create_dir_all(dir).unwrap();
    let cp = Command::new("cp")
        .arg("-r")
        .arg(&demo)
        .arg(&copy)
        .status()
        .unwrap();
    assert!(cp.success());
    let file = copy.join("airlift.yaml");
    let mut text = std::fs::read_to_string(&file).unwrap();
    text.push_str(&format!(
        "notes: {}\n",
        serde_json::to_string(notes).unwrap()
    ));
    std::fs::write(&file, text).unwrap();
    copy
}

fn lint(dir: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_airlift-pack"))
        .arg("lint")
        .arg(dir)
        .env("NO_COLOR", "1")
        .env_remove("AIRLIFT_CACHE_DIR")
        .env(
            "XDG_CACHE_HOME",
            std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("notes-lint-xdg"),
        )
        .output()
        .unwrap()
}

fn all(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn notes_that_render_pass_and_a_typo_or_an_oversized_template_fails() {
    let tmp = tempfile::tempdir().unwrap();
    let good = demo_with_notes(
        &tmp.path().join("good"),
        "Open https://{{ config.web.hostname }}/ ({{ bundle.version }})",
    );
    let out = lint(&good);
    assert_eq!(out.status.code(), Some(0), "{}", all(&out));

    let typo = demo_with_notes(&tmp.path().join("typo"), "Open {{ config.web.hostnme }}");
    let out = lint(&typo);
    assert_eq!(out.status.code(), Some(6), "{}", all(&out));
    assert!(
        all(&out).contains(
            "template `notes` failed to render at line 1: `config.web.hostnme` is not defined"
        ),
        "{}",
        all(&out)
    );

    let big = demo_with_notes(&tmp.path().join("big"), &"x".repeat(16 * 1024 + 1));
    let out = lint(&big);
    assert_eq!(out.status.code(), Some(6), "{}", all(&out));
    assert!(
        all(&out).contains("notes: is 16385 bytes; at most 16384 are allowed"),
        "{}",
        all(&out)
    );
}
