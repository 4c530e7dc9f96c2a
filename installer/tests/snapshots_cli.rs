//! insta snapshots of `airlift-install`'s help text and main error messages (real stderr and
//! exit code), with paths, ports, digests and durations filtered, so wording changes are
//! deliberate: a changed message fails here until its snapshot is reviewed and accepted.
#![allow(clippy::unwrap_used)]

mod releases_support;

use clap_help::COMMANDS;

use releases_support::{Run, ShopVersion, Site};

mod clap_help {
    /// Every subcommand whose `--help` is snapshotted.
    pub const COMMANDS: &[&str] = &[
        "verify",
        "push",
        "serve",
        "inspect",
        "install",
        "plan",
        "upgrade",
        "config",
        "render",
        "status",
        "list",
        "values",
        "rollback",
        "uninstall",
    ];
}

/// Filters for everything that differs between runs or machines.
fn settings() -> insta::Settings {
    let mut s = insta::Settings::clone_current();
    s.add_filter(r"/tmp/\.tmp[A-Za-z0-9]+", "[TMP]");
    s.add_filter(r"127\.0\.0\.1:\d+", "127.0.0.1:[PORT]");
    s.add_filter(r"sha256:[0-9a-f]{64}", "sha256:[DIGEST]");
    s.add_filter(r"sha256:[0-9a-f]{12}\b", "sha256:[SHORT]");
    s.add_filter(r"\b\d+(\.\d+)?(ms|s)\b", "[DURATION]");
    s.add_filter(r"pid \d+", "pid [PID]");
    s.add_filter(r"@[A-Za-z0-9._-]+ pid", "@[HOST] pid");
    s.add_filter(r"since \S+", "since [TIME]");
    s.add_filter(
        r"airlift-install \d+\.\d+\.\d+",
        "airlift-install [VERSION]",
    );
    s.set_prepend_module_to_snapshot(false);
    s
}

fn report(r: &Run) -> String {
    format!("exit {}\n{}", r.code, r.stderr)
}

#[test]
fn help_texts() {
    let site = Site::start();
    let _guard = settings().bind_to_scope();
    let top = site
        .command(&["--help"])
        .env("COLUMNS", "100")
        .output()
        .unwrap();
    insta::assert_snapshot!("help", String::from_utf8_lossy(&top.stdout));
    for cmd in COMMANDS {
        let out = site
            .command(&[cmd, "--help"])
            .env("COLUMNS", "100")
            .output()
            .unwrap();
        assert!(out.status.success(), "{cmd}");
        insta::assert_snapshot!(format!("help-{cmd}"), String::from_utf8_lossy(&out.stdout));
    }
}

#[test]
fn main_error_messages() {
    let site = Site::start();
    let _guard = settings().bind_to_scope();
    let b = site.bundle(&ShopVersion::new("0.1.0"));
    let bundle = b.to_str().unwrap();
    let key = site.key().to_str().unwrap().to_string();

    let r = site.run(&["verify", "/nonexistent/shop.airlift", "--key", &key]);
    insta::assert_snapshot!("error-missing-bundle", report(&r));
    let r = site.run(&["verify", bundle]);
    insta::assert_snapshot!("error-signed-without-key", report(&r));
    let mut bytes = std::fs::read(&b).unwrap();
    let at = bytes.len() - 2048 - 100;
    bytes[at] ^= 1;
    let tampered = site.dir.path().join("tampered.airlift");
    std::fs::write(&tampered, bytes).unwrap();
    let r = site.run(&["verify", tampered.to_str().unwrap(), "--key", &key]);
    insta::assert_snapshot!("error-tampered", report(&r));
    let r = site.run_deploy("install", &b, &["--set", "nosuch.item=1"], true);
    insta::assert_snapshot!("error-unknown-config-item", report(&r));
    let dead = format!("127.0.0.1:{}", airlift_testkit::registry::free_port());
    let r = site.run(&[
        "push",
        bundle,
        "--key",
        &key,
        "--registry",
        &dead,
        "--insecure-registry",
        &dead,
    ]);
    insta::assert_snapshot!("error-registry-unreachable", report(&r));
    let r = site.run(&["status", "nosuch"]);
    insta::assert_snapshot!("error-unknown-release", report(&r));
    let r = site.run(&["status", "shop", "--context", "nosuch"]);
    insta::assert_snapshot!("error-unknown-context", report(&r));
    site.cluster().deny(airlift_testkit::cluster::DenyRule::new(
        "create",
        "apps",
        "deployments",
    ));
    let r = site.install(&b, &[]);
    insta::assert_snapshot!("error-preflight-rbac", report(&r));
}
