//! Records, for `version`, what the build knows about itself: the git commit (when built from a
//! git checkout, or `AIRLIFT_GIT_COMMIT` when set), the rustc that compiled it and the target.

use std::process::Command;

fn run(cmd: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(cmd).args(args).output().ok()?;
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8(out.stdout).ok()?.trim().to_string();
    (!text.is_empty()).then_some(text)
}

fn main() {
    println!("cargo:rerun-if-env-changed=AIRLIFT_GIT_COMMIT");
    let commit = std::env::var("AIRLIFT_GIT_COMMIT")
        .ok()
        .filter(|c| !c.is_empty())
        .or_else(|| run("git", &["rev-parse", "--short=12", "HEAD"]));
    // Rebuild when HEAD moves (a commit, a checkout), so the commit shown is never stale.
    for path in ["HEAD"] {
        if let Some(p) = run("git", &["rev-parse", "--git-path", path]) {
            println!("cargo:rerun-if-changed={p}");
        }
    }
    if let Some(branch) = run("git", &["symbolic-ref", "-q", "HEAD"]) {
        if let Some(p) = run("git", &["rev-parse", "--git-path", &branch]) {
            println!("cargo:rerun-if-changed={p}");
        }
    }
    println!(
        "cargo:rustc-env=AIRLIFT_BUILD_COMMIT={}",
        commit.unwrap_or_default()
    );
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    println!(
        "cargo:rustc-env=AIRLIFT_BUILD_RUSTC={}",
        run(&rustc, &["--version"]).unwrap_or_default()
    );
    println!(
        "cargo:rustc-env=AIRLIFT_BUILD_TARGET={}",
        std::env::var("TARGET").unwrap_or_default()
    );
}
