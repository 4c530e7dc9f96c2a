//! `version`, `completion` and `man` through the real `airlift-pack` binary: what they print is checked
//! with the real tools (bash completes with the script, `man` renders the pages).

#![allow(clippy::unwrap_used)]

use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_airlift-pack");

fn run(args: &[&str]) -> Output {
    let out = Command::new(BIN)
        .args(args)
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn text(out: &Output) -> String {
    String::from_utf8(out.stdout.clone()).unwrap()
}

/// The commit of this checkout, when the tests run from a git checkout.
fn head() -> Option<String> {
    let out = Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

#[test]
fn version_prints_build_facts_as_text_and_json() {
    let plain = text(&run(&["version"]));
    assert!(
        plain.starts_with(concat!("airlift-pack ", env!("CARGO_PKG_VERSION"), "\n")),
        "{plain}"
    );
    assert!(
        plain.contains("bundle format: airlift.dev/v1alpha1"),
        "{plain}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&text(&run(&["version", "--output", "json"]))).unwrap();
    assert_eq!(json["name"], "airlift-pack");
    assert_eq!(json["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(json["bundleFormat"], "airlift.dev/v1alpha1");
    assert!(
        json["rustc"].as_str().unwrap().starts_with("rustc "),
        "{json}"
    );
    assert!(json["target"].as_str().unwrap().contains('-'), "{json}");
    if let Some(head) = head() {
        assert_eq!(json["gitCommit"], head.as_str(), "built from this checkout");
    }
}

#[test]
fn bash_completes_subcommands_with_the_generated_script() {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("completion.bash");
    std::fs::write(&script, run(&["completion", "bash"]).stdout).unwrap();
    let probe = format!(
        "source {}; COMP_WORDS=(airlift-pack buil); COMP_CWORD=1; COMP_LINE='airlift-pack buil'; \
         COMP_POINT=${{#COMP_LINE}}; f=$(complete -p airlift-pack | sed -E 's/.* -F ([^ ]+) .*/\\1/'); \
         $f airlift-pack buil airlift-pack; printf '%s\\n' \"${{COMPREPLY[@]}}\"",
        script.display()
    );
    let out = Command::new("bash").args(["-c", &probe]).output().unwrap();
    let words = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        words.lines().any(|w| w == "build"),
        "completions: {words:?}"
    );
    for shell in ["zsh", "fish"] {
        let script = text(&run(&["completion", shell]));
        assert!(script.contains("build"), "{shell}: {script}");
    }
    let bad = Command::new(BIN)
        .args(["completion", "tcsh"])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
}

#[test]
fn man_pages_render_with_man() {
    let dir = tempfile::tempdir().unwrap();
    let listed = text(&run(&["man", "--out", dir.path().to_str().unwrap()]));
    let top = dir.path().join("airlift-pack.1");
    let sub = dir.path().join("airlift-pack-build.1");
    assert!(listed.contains("airlift-pack-build.1"), "{listed}");
    assert!(!dir.path().join("airlift-pack-help.1").exists());
    let rendered = Command::new("man")
        .arg("-l")
        .arg(&sub)
        .env("MANWIDTH", "100")
        .env("MANPAGER", "cat")
        .output()
        .unwrap();
    let page = String::from_utf8_lossy(&rendered.stdout);
    assert!(
        rendered.status.success(),
        "{}",
        String::from_utf8_lossy(&rendered.stderr)
    );
    assert!(page.contains("NAME") && page.contains("OPTIONS"), "{page}");
    assert!(page.contains("--help"), "{page}");
    assert!(std::fs::read_to_string(&top).unwrap().contains(".TH"));
}
