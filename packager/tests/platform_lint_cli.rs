//! `airlift-pack lint` on Kubernetes API removals (against the bundle's range and against one
//! `--kubernetes` release) and on a definition with platform needs, run as a real process.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn lint(dir: &Path, extra: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_airlift-pack"))
        .arg("lint")
        .arg(dir)
        .args(extra)
        .env("NO_COLOR", "1")
        .env_remove("AIRLIFT_CACHE_DIR")
        .env(
            "XDG_CACHE_HOME",
            std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("platform-lint-xdg"),
        )
        .output()
        .expect("run airlift-pack")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn a_removed_api_inside_the_range_fails_lint_naming_object_version_and_replacement() {
    let out = lint(&fixture("14-removed-api"), &[]);
    assert_eq!(out.status.code(), Some(6), "{}", stderr(&out));
    let err = stderr(&out);
    for expected in [
        "failed lint with 2 problem(s)",
        "[apis] PodSecurityPolicy/restricted (`manifests/old.yaml` document 1) uses policy/v1beta1 PodSecurityPolicy, which Kubernetes 1.25 removed (inside the supported range `>=1.24.0, <1.30.0`): use Pod Security Admission",
        "[apis] HorizontalPodAutoscaler/web (`manifests/old.yaml` document 2) uses autoscaling/v2beta2 HorizontalPodAutoscaler, which Kubernetes 1.26 removed",
        "use autoscaling/v2",
    ] {
        assert!(err.contains(expected), "missing {expected:?} in\n{err}");
    }
    // v1beta3 FlowSchemas are removed only in 1.32, outside the range: a warning.
    assert!(
        err.contains("warning: FlowSchema/app (`manifests/old.yaml` document 3) uses flowcontrol.apiserver.k8s.io/v1beta3 FlowSchema, deprecated since Kubernetes 1.29"),
        "{err}"
    );
    assert!(!err.contains("ConfigMap/fine"), "{err}");
}

#[test]
fn one_target_release_is_checked_with_kubernetes_flag() {
    let out = lint(&fixture("14-removed-api"), &["--kubernetes", "1.33"]);
    assert_eq!(out.status.code(), Some(6));
    let err = stderr(&out);
    assert!(err.contains("failed lint with 3 problem(s)"), "{err}");
    assert!(
        err.contains("FlowSchema, which Kubernetes 1.32 removed (inside Kubernetes 1.33): use flowcontrol.apiserver.k8s.io/v1"),
        "{err}"
    );
    // Before any removal: deprecations only, lint passes.
    let out = lint(&fixture("14-removed-api"), &["--kubernetes", "1.24"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stderr(&out).contains("deprecated since Kubernetes 1.21"));
    let out = lint(&fixture("14-removed-api"), &["--kubernetes", "latest"]);
    assert_eq!(out.status.code(), Some(6));
    assert!(stderr(&out).contains("--kubernetes `latest` is not a Kubernetes release"));
}

#[test]
fn platform_needs_render_in_lint() {
    let out = lint(&fixture("15-platform-needs"), &[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("4 objects"), "{text}");
}
