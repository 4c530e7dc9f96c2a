//! Issue 10: templates must not exhaust the vendor's memory. `airlift-pack lint` and `build`
//! on `fixtures/16-evil-templates` (a string doubled by `~` in a macro, a string squared by
//! `replace`, a list grown by `+`), run as real processes under an outer address-space bound
//! of 2 GiB: each template is refused with the named memory error, the packager survives to
//! report all three, the peak memory of the packager and its render workers stays under the
//! worker's 512 MiB bound, and it takes seconds.

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use airlift_testkit::measure::{run_bounded, Measured};

/// What the packager may use in all (prlimit on the parent; the worker lowers it further).
const OUTER_ADDRESS_SPACE: u64 = 2 << 30;
/// The render worker's bound (`MAX_TEMPLATE_MEMORY`), in KiB: no process may peak above it.
const WORKER_BOUND_KIB: u64 = 512 * 1024;
/// Far under the test's budget; measured at 5–6 s for the three templates on the 2-core CI
/// machine (debug build).
const WALL_BUDGET: Duration = Duration::from_secs(30);

const EVIL: [&str; 3] = [
    "manifests/doubling.yaml",
    "manifests/list.yaml",
    "manifests/replace.yaml",
];

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/16-evil-templates")
}

fn pack(args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_airlift-pack"));
    cmd.args(args)
        .env("NO_COLOR", "1")
        .env_remove("AIRLIFT_CACHE_DIR")
        .env(
            "XDG_CACHE_HOME",
            std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("evil-templates-xdg"),
        );
    cmd
}

/// Exit 6, each evil template named with the memory bound, the peak under the worker's bound.
fn assert_refused_by_the_memory_bound(m: &Measured) {
    assert_eq!(m.code(), Some(6), "{m}");
    let err = m.stderr();
    assert!(err.contains("failed lint with 3 problem(s)"), "{m}");
    for file in EVIL {
        let named = format!(
            "[templates] template `{file}` failed to render: it needed more than the 512 MiB \
             memory limit"
        );
        assert!(err.contains(&named), "missing {named:?} in\n{m}");
    }
    assert_eq!(
        err.matches("the render worker was stopped: memory allocation of")
            .count(),
        3,
        "{m}"
    );
    assert!(
        m.max_rss_kib < WORKER_BOUND_KIB,
        "peak RSS {} KiB is not under the worker's bound\n{m}",
        m.max_rss_kib
    );
    assert!(m.wall < WALL_BUDGET, "{m}");
}

#[test]
fn lint_names_each_evil_template_and_the_memory_bound() {
    let dir = tempfile::tempdir().unwrap();
    let fixture = fixture();
    let m = run_bounded(
        &pack(&["lint", fixture.to_str().unwrap()]),
        OUTER_ADDRESS_SPACE,
        dir.path(),
    )
    .unwrap();
    assert_refused_by_the_memory_bound(&m);
    eprintln!(
        "lint: {:.2} s, peak RSS {} KiB",
        m.wall.as_secs_f64(),
        m.max_rss_kib
    );
}

#[test]
fn build_refuses_the_evil_definition_and_writes_no_bundle() {
    let dir = tempfile::tempdir().unwrap();
    let keygen = pack(&[
        "keygen",
        "--out",
        dir.path().join("vendor").to_str().unwrap(),
    ])
    .output()
    .unwrap();
    assert!(keygen.status.success(), "{keygen:?}");
    let out = dir.path().join("dist");
    let fixture = fixture();
    let m = run_bounded(
        pack(&[
            "build",
            fixture.to_str().unwrap(),
            "--key",
            dir.path().join("vendor.key").to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--cache-dir",
            dir.path().join("cache").to_str().unwrap(),
        ])
        .env("XDG_CACHE_HOME", dir.path().join("xdg")),
        OUTER_ADDRESS_SPACE,
        dir.path(),
    )
    .unwrap();
    assert_refused_by_the_memory_bound(&m);
    let written: Vec<_> = std::fs::read_dir(&out)
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    assert!(written.is_empty(), "no bundle may be written: {written:?}");
}
