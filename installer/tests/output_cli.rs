//! Output through a closed pipe: `airlift-install inspect BUNDLE --output json | head -c 1` must
//! exit 0 quietly, not panic with exit 101 and a backtrace.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns

use std::process::{Command, Output, Stdio};

use airlift_bundle::schema::config::ConfigSchema;
use airlift_bundle::DirBlobStore;
use airlift_testkit::images::sample_set;
use support::s;

mod support;

/// Runs `airlift-install ARGS` with a stdout whose reader is already gone: every write to it
/// fails with EPIPE, as when `head -c 1` has read its byte and exited.
fn run_into_closed_pipe(state: &std::path::Path, args: &[&str]) -> Output {
    let (reader, writer) = rustix::pipe::pipe().unwrap();
    drop(reader);
    Command::new(env!("CARGO_BIN_EXE_airlift-install"))
        .args(args)
        .env("NO_COLOR", "1")
        .env("AIRLIFT_STATE_DIR", state)
        .env("RUST_BACKTRACE", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::from(writer))
        .output()
        .unwrap()
}

#[test]
fn inspect_into_a_closed_pipe_exits_0_with_nothing_on_stderr() {
    let dir = tempfile::tempdir().unwrap();
    let set = sample_set(&dir.path().join("layout"), 3, 4 << 10).unwrap();
    let store = DirBlobStore::open(set.dir.join("blobs")).unwrap();
    let components = vec![support::component(
        "api",
        support::sample_images(&set),
        vec![],
    )];
    let m = support::manifest("demo", components, ConfigSchema::default());
    let written = support::write(dir.path(), m, vec![], &store, true);
    let state = dir.path().join("state");
    for output in ["json", "text"] {
        let o = run_into_closed_pipe(&state, &["inspect", s(&written.bundle), "--output", output]);
        assert_eq!(
            o.status.code(),
            Some(0),
            "--output {output}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        assert!(
            o.stderr.is_empty(),
            "--output {output}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
    // The same command into a live pipe still prints the whole document.
    let o = support::airlift_install(&state, &["inspect", s(&written.bundle), "--output", "json"]);
    assert!(o.status.success());
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["components"][0]["name"], "api");
}
