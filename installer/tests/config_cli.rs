//! Configuration as the operator meets it: `config` and `render` run as the real binary on a real
//! signed bundle whose schema has required values without SaaS defaults, non-interactively and at
//! a real prompt in a pseudo-terminal.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use airlift_bundle::schema::config::{ConfigGroup, ConfigItem, ConfigSchema, ConfigType};
use airlift_bundle::{ComponentFile, DirBlobStore};
use support::s;

mod support;

const TEMPLATE: &str = "\
apiVersion: v1
kind: ConfigMap
metadata:
  name: site
data:
  name: \"{{ config.site.name }}\"
  replicas: \"{{ config.site.replicas }}\"
---
apiVersion: v1
kind: Secret
metadata:
  name: site-credentials
stringData:
  password: \"{{ config.site.password }}\"
";

struct Env {
    dir: tempfile::TempDir,
    bundle: PathBuf,
    key: PathBuf,
}

fn item(name: &str, kind: ConfigType, default: Option<serde_json::Value>) -> ConfigItem {
    ConfigItem {
        name: name.into(),
        kind,
        description: format!("the site's {name}"),
        default,
        required: true,
        validation: Default::default(),
        generate: None,
    }
}

/// A signed bundle with one component (a ConfigMap and a Secret) and three required items, two
/// of which have no SaaS default.
fn env() -> Env {
    let dir = tempfile::tempdir().unwrap();
    let store = DirBlobStore::open(dir.path().join("blobs")).unwrap();
    let path = "components/site/site.yaml".to_string();
    let config = ConfigSchema {
        groups: vec![ConfigGroup {
            name: "site".into(),
            title: None,
            description: None,
            items: vec![
                item("name", ConfigType::String, None),
                item("replicas", ConfigType::Int, Some(serde_json::json!(2))),
                item("password", ConfigType::Secret, None),
            ],
        }],
    };
    let m = support::manifest(
        "site",
        vec![support::component("site", vec![], vec![path.clone()])],
        config,
    );
    let files = vec![ComponentFile {
        path,
        data: TEMPLATE.as_bytes().to_vec(),
    }];
    let written = support::write(dir.path(), m, files, &store, true);
    Env {
        dir,
        bundle: written.bundle,
        key: written.key,
    }
}

fn run(env: &Env, args: &[&str]) -> Output {
    support::airlift_install(&env.dir.path().join("state"), args)
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn missing_values_are_listed_in_one_error_when_not_interactive() {
    let e = env();
    let o = run(&e, &["config", s(&e.bundle), "--key", s(&e.key), "--yes"]);
    let all = text(&o);
    assert_eq!(o.status.code(), Some(6), "{all}");
    assert!(all.contains("`site.name`"), "{all}");
    assert!(all.contains("`site.password`"), "{all}");
    assert!(
        !all.contains("`site.replicas`"),
        "a defaulted item is not missing: {all}"
    );
    assert!(all.contains("hint:"), "{all}");
}

#[test]
fn invalid_values_name_the_key_and_the_rule() {
    let e = env();
    let o = run(
        &e,
        &[
            "config",
            s(&e.bundle),
            "--key",
            s(&e.key),
            "--yes",
            "--set",
            "site.name=acme",
            "--set",
            "site.password=x",
            "--set",
            "site.replicas=many",
        ],
    );
    let all = text(&o);
    assert_eq!(o.status.code(), Some(6), "{all}");
    assert!(all.contains("site.replicas"), "{all}");
}

#[test]
fn render_writes_objects_and_never_prints_secrets() {
    let e = env();
    let out = e.dir.path().join("out");
    let o = run(
        &e,
        &[
            "render",
            s(&e.bundle),
            "--key",
            s(&e.key),
            "--registry",
            "registry.corp:5000/vendor",
            "--yes",
            "--set",
            "site.name=acme",
            "--set",
            "site.password=hunter2-secret",
            "--out",
            s(&out),
        ],
    );
    let all = text(&o);
    assert_eq!(o.status.code(), Some(0), "{all}");
    assert!(!all.contains("hunter2-secret"), "secret in output: {all}");
    let mut files: Vec<PathBuf> = Vec::new();
    for dir in std::fs::read_dir(&out).unwrap() {
        for f in std::fs::read_dir(dir.unwrap().path()).unwrap() {
            files.push(f.unwrap().path());
        }
    }
    files.sort();
    assert_eq!(files.len(), 2, "{files:?}");
    let cm = std::fs::read_to_string(&files[0]).unwrap();
    assert!(
        cm.contains("name: acme") && cm.contains("replicas: '2'"),
        "{cm}"
    );
    let secret = &files[1];
    assert!(std::fs::read_to_string(secret)
        .unwrap()
        .contains("hunter2-secret"));
    let mode = std::fs::metadata(secret).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "a Secret manifest must be written 0600");
}

/// Runs `config` at a real prompt: `script` gives the binary a pseudo-terminal on stdin and
/// stderr, and the answers are typed one at a time, each after its prompt appears.
#[test]
fn prompts_ask_for_missing_values_in_a_terminal_and_hide_secrets() {
    let e = env();
    let cmd = format!(
        "{} config {} --key {}",
        env!("CARGO_BIN_EXE_airlift-install"),
        s(&e.bundle),
        s(&e.key)
    );
    let log = e.dir.path().join("typescript");
    let mut child = Command::new("script")
        .args(["-q", "-f", "-e", "-c", &cmd, s(&log)])
        .env("NO_COLOR", "1")
        .env("TERM", "dumb")
        .env("AIRLIFT_STATE_DIR", e.dir.path().join("state"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("`script` (util-linux) runs the prompt test in a pseudo-terminal");
    let mut stdin = child.stdin.take().unwrap();
    let wait_for = |needle: &str| {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let seen = std::fs::read_to_string(&log).unwrap_or_default();
            if seen.contains(needle) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "prompt `{needle}` never appeared; terminal showed:\n{seen}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    wait_for("site.name (string)");
    stdin.write_all(b"acme\r").unwrap();
    stdin.flush().unwrap();
    wait_for("site.password (secret)");
    stdin.write_all(b"pw-typed-secret\r").unwrap();
    stdin.flush().unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        assert!(
            Instant::now() < deadline,
            "config did not finish after the answers"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    drop(stdin);
    let screen = std::fs::read_to_string(&log).unwrap();
    assert!(status.success(), "config failed at the prompt:\n{screen}");
    assert!(
        screen.contains("site.name") && screen.contains("acme"),
        "the answer is in effect:\n{screen}"
    );
    assert!(
        !screen.contains("pw-typed-secret"),
        "the secret was echoed or printed:\n{screen}"
    );
}
