//! `airlift-pack lint` run as a real process on `bundles/demo` and on hostile fixtures.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// `airlift-pack` with this test run's own default cache (lint keeps built layers there), not
/// the user's.
fn pack() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_airlift-pack"));
    cmd.env("NO_COLOR", "1")
        .env_remove("AIRLIFT_CACHE_DIR")
        .env(
            "XDG_CACHE_HOME",
            Path::new(env!("CARGO_TARGET_TMPDIR")).join("lint-cli-xdg"),
        );
    cmd
}

fn lint(dir: &Path, json: bool) -> Output {
    let mut cmd = pack();
    cmd.arg("lint").arg(dir);
    if json {
        cmd.args(["--output", "json"]);
    }
    cmd.output().expect("run airlift-pack")
}

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn demo_bundle_passes_lint() {
    let out = lint(&repo().join("bundles/demo"), false);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("passes lint: 2 components, 7 manifests, 11 objects, 2 images"),
        "{text}"
    );
}

#[test]
fn demo_bundle_json_report_is_reproducible() {
    let run = || {
        let out = lint(&repo().join("bundles/demo"), true);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        serde_json::from_slice::<serde_json::Value>(&out.stdout).expect("json report")
    };
    let (a, b) = (run(), run());
    assert_eq!(a["ok"], true);
    assert_eq!(a["problems"], serde_json::json!([]));
    assert_eq!(a["warnings"], serde_json::json!([]));
    assert_eq!(
        a["images"],
        serde_json::json!([
            "registry.example.com/airlift-demo/web:0.1.0",
            "registry.example.com/airlift-demo/worker:0.1.0"
        ])
    );
    let built = a["built"].as_object().expect("built images");
    assert_eq!(built.len(), 2);
    assert_eq!(
        a["built"], b["built"],
        "local images build to the same digests"
    );
}

#[test]
fn uncarried_and_unparsable_images_are_named() {
    let out = lint(&fixture("10-uncarried-image"), false);
    assert_eq!(out.status.code(), Some(6), "exit 6 = invalid definition");
    let err = stderr(&out);
    for expected in [
        "failed lint with 2 problem(s)",
        "`registry.example.com/fixture/migrate:1.0` in `manifests/api.yaml` (Deployment/api) of component `app`",
        "`busybox:1.36` in `manifests/cron.yaml` (CronJob/report) of component `app`",
        "`manifests/cron.yaml` Pod/debug: `spec.containers[0].image` holds an invalid image reference",
        "repository part `Fixture` must be lowercase",
        "hint: ",
    ] {
        assert!(err.contains(expected), "missing {expected:?} in\n{err}");
    }
    assert!(
        !err.contains("fixture/api:1.0` in"),
        "a carried image is not reported:\n{err}"
    );
    assert!(
        !err.contains("warning:"),
        "every carried image is used:\n{err}"
    );
}

#[test]
fn template_typo_names_file_and_line() {
    let out = lint(&fixture("11-template-typo"), true);
    assert_eq!(out.status.code(), Some(6));
    // Under --output json the error is one JSON object on stderr, too.
    let error: serde_json::Value = serde_json::from_slice(&out.stderr).expect("json error");
    assert_eq!(error["exitCode"], 6);
    assert!(
        error["message"].as_str().unwrap().contains("failed lint"),
        "{error}"
    );
    assert!(error["hint"]
        .as_str()
        .unwrap()
        .contains("airlift-pack lint"));
    assert_eq!(error["causes"], serde_json::json!([]));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json report");
    assert_eq!(report["ok"], false);
    assert_eq!(report["placeholders"], serde_json::json!(["web.license"]));
    let problems = report["problems"].as_array().expect("problems");
    let find = |check: &str| {
        problems
            .iter()
            .find(|p| p["check"] == check)
            .and_then(|p| p["message"].as_str())
            .unwrap_or_else(|| panic!("no {check} problem in {problems:?}"))
            .to_string()
    };
    assert_eq!(report["warnings"], serde_json::json!([]));
    let t = find("templates");
    assert!(
        t.starts_with(
            "template `manifests/b-deploy.yaml` failed to render at line 6: `config.web.replcas` is not defined"
        ),
        "{t}"
    );
    assert!(t.contains("undefined"), "{t}");
    let dup = problems
        .iter()
        .filter_map(|p| p["message"].as_str())
        .find(|m| m.contains("defined twice"))
        .unwrap_or_else(|| panic!("no duplicate reported in {problems:?}"));
    assert_eq!(
        dup,
        "ConfigMap/typo/web-config is defined twice: in `manifests/a-config.yaml` document 1 and in `manifests/d-duplicate.yaml` document 1"
    );
    let o = find("objects");
    assert!(
        o.contains("`manifests/c-broken.yaml` document 2 (ConfigMap): `metadata.name` is missing"),
        "{o}"
    );
}

#[test]
fn invalid_definition_lists_every_problem() {
    let out = lint(&fixture("12-invalid-definition"), false);
    assert_eq!(out.status.code(), Some(6));
    let err = stderr(&out);
    for expected in [
        "has 10 problem(s)",
        "metadata.name: `Invalid_Name` is not a valid name",
        "metadata.version: `1.0` is not a semver version",
        "requirements.kubernetes: `newest please` is not a semver range",
        "requirements.platforms: must list at least one platform",
        "components[0].manifests[0]: `../../../../etc` must be a relative path inside",
        "components[1].name: component `app` is defined twice",
        "`db.password` is a secret and must not have a default",
        "`db.mode`: the default `fast` is not one of the allowed values: safe, slow",
        "`db.port` is not a secret: only `secret` items can be generated",
        "`db.port`: the default `\"5432\"` is not an int",
    ] {
        assert!(err.contains(expected), "missing {expected:?} in\n{err}");
    }
    assert!(
        !err.contains("hunter2"),
        "a secret default is never echoed:\n{err}"
    );
}

#[test]
fn missing_folder_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope");
    let out = lint(&missing, false);
    // A folder named on the command line that does not exist: a wrong command line (exit 2).
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(err.contains("nope` does not exist"), "{err}");
}

#[test]
fn unused_carried_image_is_a_warning_not_a_failure() {
    let out = lint(&fixture("13-unused-image"), false);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("warning: component `app` carries image `registry.example.com/fixture/old-sidecar:0.9` but no manifest uses it"),
        "{err}"
    );
    assert!(!err.contains("fixture/api:1.0"), "{err}");
}

#[test]
fn images_from_layouts_and_archives_are_checked_without_building() {
    let dir = tempfile::tempdir().unwrap();
    let def = dir.path();
    let set =
        airlift_testkit::images::sample_set(&def.join("images/layout"), 21, 64 << 10).unwrap();
    // `worker` loses its own layer; `api` and `multi` are whole.
    let own = &set.worker.layers[1].blob.digest;
    std::fs::remove_file(set.dir.join("blobs/sha256").join(own.hex())).unwrap();
    let images = [
        (
            "acme.example/api:1",
            "{ociLayout: {path: images/layout, tag: api}}",
        ),
        (
            "acme.example/multi:1",
            "{ociLayout: {path: images/layout, tag: multi}}",
        ),
        (
            "acme.example/arm:1",
            "{ociLayout: {path: images/layout, tag: arm-only}}",
        ),
        (
            "acme.example/gone:1",
            "{ociLayout: {path: images/layout, tag: nope}}",
        ),
        (
            "acme.example/worker:1",
            "{ociLayout: {path: images/layout, tag: worker}}",
        ),
        (
            "acme.example/absent:1",
            "{ociArchive: {path: images/absent.tar, tag: x}}",
        ),
    ];
    airlift_testkit::definitions::write_definition(def, "local", &["linux/amd64"], &images)
        .unwrap();
    let before = airlift_testkit::files::files_under(&def.join("images"));

    let out = lint(def, false);
    assert_eq!(out.status.code(), Some(6), "exit 6 = invalid definition");
    let err = stderr(&out);
    for expected in [
        "failed lint with 4 problem(s)",
        "image `acme.example/arm:1`",
        "has no `linux/amd64` variant",
        "image `acme.example/gone:1`",
        "no image tagged `nope`",
        "image `acme.example/worker:1`",
        &format!("blob {own} is referenced but missing"),
        "image `acme.example/absent:1`",
        "absent.tar",
    ] {
        assert!(err.contains(expected), "missing {expected:?} in\n{err}");
    }
    for whole in ["acme.example/api:1`", "acme.example/multi:1`"] {
        assert!(!err.contains(whole), "{whole} is reported:\n{err}");
    }
    // Lint reads the sources; it writes nothing into them.
    assert_eq!(
        airlift_testkit::files::files_under(&def.join("images")),
        before
    );
}

fn json_of(o: &Output) -> serde_json::Value {
    assert_eq!(o.status.code(), Some(0), "{}", stderr(o));
    serde_json::from_slice(&o.stdout).unwrap()
}

/// `lint` builds the images made from local files into the blob cache `build` uses: a build
/// right after it, of the same unchanged files, compresses nothing again and makes the images
/// lint reported. With `--no-cache` lint keeps nothing and creates no cache.
#[test]
fn lint_then_build_compresses_each_unchanged_local_image_once() {
    let dir = tempfile::tempdir().unwrap();
    let def = dir.path().join("demo");
    airlift_testkit::files::copy_tree(&repo().join("bundles/demo"), &def);
    // Files changed within two seconds of a build are built but not recorded for reuse.
    std::thread::sleep(std::time::Duration::from_millis(2200));
    let keygen = pack()
        .args(["keygen", "--out"])
        .arg(dir.path().join("vendor"))
        .output()
        .unwrap();
    assert_eq!(keygen.status.code(), Some(0), "{}", stderr(&keygen));
    let cache = dir.path().join("cache");
    let build = |cache: &Path, out: &str| {
        json_of(
            &pack()
                .arg("build")
                .arg(&def)
                .arg("--key")
                .arg(dir.path().join("vendor.key"))
                .arg("--out")
                .arg(dir.path().join(out))
                .arg("--cache-dir")
                .arg(cache)
                .args(["--output", "json"])
                .output()
                .unwrap(),
        )
    };

    let unused = dir.path().join("unused-cache");
    let scratch = pack()
        .arg("lint")
        .arg(&def)
        .arg("--no-cache")
        .arg("--cache-dir")
        .arg(&unused)
        .output()
        .unwrap();
    assert_eq!(scratch.status.code(), Some(0), "{}", stderr(&scratch));
    assert!(!unused.exists(), "lint --no-cache created the cache");

    let linted = json_of(
        &pack()
            .arg("lint")
            .arg(&def)
            .arg("--cache-dir")
            .arg(&cache)
            .args(["--output", "json"])
            .output()
            .unwrap(),
    );
    let built = build(&cache, "dist");
    let images = built["images"].as_array().unwrap();
    assert_eq!(images.len(), 2);
    for image in images {
        let reference = image["reference"].as_str().unwrap();
        assert_eq!(image["layerReused"], true, "{image}");
        assert_eq!(image["digest"], linted["built"][reference], "{reference}");
    }
    // The control: a build into another cache compresses both layers itself.
    let fresh = build(&dir.path().join("other-cache"), "dist-other");
    for image in fresh["images"].as_array().unwrap() {
        assert_eq!(image["layerReused"], false, "{image}");
    }
}

/// A default cache that cannot be made does not fail a check: lint warns and builds in scratch.
/// A cache folder the operator named and that cannot be made is an error.
#[test]
fn lint_goes_on_without_a_default_cache_but_not_without_a_named_one() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a-file");
    std::fs::write(&file, "not a folder").unwrap();
    let demo = repo().join("bundles/demo");
    let o = pack()
        .arg("lint")
        .arg(&demo)
        .env("XDG_CACHE_HOME", &file)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(err.contains("warning: cannot open the blob cache"), "{err}");
    assert!(
        err.contains("scratch folder") && err.contains("--cache-dir"),
        "{err}"
    );

    let named = file.join("cache");
    let o = pack()
        .arg("lint")
        .arg(&demo)
        .arg("--cache-dir")
        .arg(&named)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(
        err.contains(&format!("cannot open the blob cache `{}`", named.display())),
        "{err}"
    );
}
