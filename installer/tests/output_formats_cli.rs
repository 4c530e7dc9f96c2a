//! `-o text|json|yaml` on every command that prints a result: the JSON parses, the YAML is the
//! same document, every key is camelCase, and text is not JSON.
#![allow(clippy::unwrap_used)]

mod releases_support;

use releases_support::{Run, ShopVersion, Site};

/// Every object key in `v` (recursively), with its path, that is not camelCase. Maps whose keys
/// are data rather than field names (labels, values, config items) are skipped by name.
fn non_camel_keys(v: &serde_json::Value, path: &str, out: &mut Vec<String>) {
    match v {
        serde_json::Value::Object(map) => {
            for (k, child) in map {
                let here = format!("{path}.{k}");
                if k.contains('_') || k.contains('-') || k.starts_with(|c: char| c.is_uppercase()) {
                    out.push(here.clone());
                }
                if !DATA_MAPS.contains(&k.as_str()) {
                    non_camel_keys(child, &here, out);
                }
            }
        }
        serde_json::Value::Array(items) => {
            for (i, child) in items.iter().enumerate() {
                non_camel_keys(child, &format!("{path}[{i}]"), out);
            }
        }
        _ => {}
    }
}

/// Maps keyed by data (names chosen by the vendor or the site), not by Airlift's field names.
const DATA_MAPS: &[&str] = &[
    "values",
    "defaults",
    "siteValues",
    "saasDefaults",
    "labels",
    "annotations",
    "relocations",
    "config",
    "data",
];

#[track_caller]
fn check_formats(site: &Site, args: &[&str]) {
    let text = run(site, args, "text");
    assert!(
        serde_json::from_str::<serde_json::Value>(&text.stdout).is_err(),
        "text output is for people: {args:?}\n{text}"
    );
    let json = run(site, args, "json");
    let doc: serde_json::Value = serde_json::from_str(&json.stdout)
        .unwrap_or_else(|e| panic!("{args:?} -o json does not parse: {e}\n{json}"));
    let yaml = run(site, args, "yaml");
    let ydoc: serde_json::Value = serde_yaml::from_str(&yaml.stdout)
        .unwrap_or_else(|e| panic!("{args:?} -o yaml does not parse: {e}\n{yaml}"));
    assert_eq!(
        without_volatile(doc.clone()),
        without_volatile(ydoc),
        "{args:?}: the YAML is the JSON document"
    );
    let mut bad = Vec::new();
    non_camel_keys(&doc, "", &mut bad);
    assert!(bad.is_empty(), "{args:?}: keys not in camelCase: {bad:?}");
}

/// Times and durations differ between two runs of the same command.
fn without_volatile(mut v: serde_json::Value) -> serde_json::Value {
    fn walk(v: &mut serde_json::Value) {
        match v {
            serde_json::Value::Object(map) => {
                for (k, child) in map.iter_mut() {
                    let lower = k.to_lowercase();
                    if lower.contains("time")
                        || lower.contains("age")
                        || lower.contains("elapsed")
                        || lower.contains("updated")
                        || lower.contains("since")
                        || lower == "at"
                        || lower == "seconds"
                    {
                        *child = serde_json::Value::Null;
                    } else {
                        walk(child);
                    }
                }
            }
            serde_json::Value::Array(items) => items.iter_mut().for_each(walk),
            _ => {}
        }
    }
    walk(&mut v);
    v
}

fn run(site: &Site, args: &[&str], format: &str) -> Run {
    let mut all: Vec<&str> = args.to_vec();
    all.extend(["-o", format]);
    let r = site.run(&all);
    assert_eq!(r.code, 0, "{all:?}\n{r}");
    r
}

#[test]
fn every_result_prints_as_text_json_and_yaml_in_camel_case() {
    let site = Site::start();
    let v1 = site.bundle(&ShopVersion::new("0.1.0"));
    let v2 = site.bundle(&ShopVersion::new("0.2.0"));
    let b1 = v1.to_str().unwrap();
    let key = site.key().to_str().unwrap().to_string();
    let host = site.registry().host();

    check_formats(&site, &["verify", b1, "--key", &key]);
    check_formats(&site, &["inspect", b1, "--key", &key]);
    check_formats(&site, &["config", b1, "--key", &key]);

    // Commands that change something run once per format, each on a fresh state.
    for (i, format) in ["json", "yaml", "text"].into_iter().enumerate() {
        let out = site.dir.path().join(format!("rendered-{i}"));
        let mut args = vec!["render", b1, "--key", &key, "--registry", &host];
        let out_s = out.to_str().unwrap().to_string();
        args.extend(["--out", &out_s, "-o", format]);
        let r = site.run(&args);
        assert_eq!(r.code, 0, "{r}");
        assert_machine(format, &r);
    }
    for format in ["json", "yaml", "text"] {
        let r = site.install(&v1, &["-o", format]);
        assert_eq!(r.code, 0, "{r}");
        assert_machine(format, &r);
        let r = site.run_deploy("upgrade", &v2, &["-o", format], false);
        assert_eq!(r.code, 0, "{r}");
        assert_machine(format, &r);
        let r = site.run(&["rollback", "shop", "-o", format]);
        assert_eq!(r.code, 0, "{r}");
        assert_machine(format, &r);
        let r = site.run(&["uninstall", "shop", "-o", format]);
        assert_eq!(r.code, 0, "{r}");
        assert_machine(format, &r);
    }
    let r = site.install(&v1, &[]);
    assert_eq!(r.code, 0, "{r}");
    check_formats(&site, &["status", "shop"]);
    check_formats(&site, &["list", "-A"]);
    check_formats(&site, &["values", "shop"]);
    let plan = site.deploy_args("plan", &v2, &[], false);
    let plan: Vec<&str> = plan.iter().map(String::as_str).collect();
    check_formats(&site, &plan);
}

/// A machine format parses, and its keys are camelCase; text does not parse as JSON.
#[track_caller]
fn assert_machine(format: &str, r: &Run) {
    let doc: Option<serde_json::Value> = match format {
        "json" => Some(serde_json::from_str(&r.stdout).unwrap_or_else(|e| panic!("{e}\n{r}"))),
        "yaml" => Some(serde_yaml::from_str(&r.stdout).unwrap_or_else(|e| panic!("{e}\n{r}"))),
        _ => None,
    };
    match doc {
        Some(doc) => {
            let mut bad = Vec::new();
            non_camel_keys(&doc, "", &mut bad);
            assert!(bad.is_empty(), "keys not in camelCase: {bad:?}\n{r}");
        }
        None => assert!(
            serde_json::from_str::<serde_json::Value>(&r.stdout).is_err(),
            "{r}"
        ),
    }
}

#[test]
fn a_long_operation_in_a_log_prints_plain_progress_lines() {
    let site = Site::start();
    let v1 = site.bundle(&ShopVersion::new("0.1.0"));
    let args = site.deploy_args("install", &v1, &[], true);
    let out = site
        .command(&args.iter().map(String::as_str).collect::<Vec<_>>())
        .env("AIRLIFT_PROGRESS_INTERVAL", "0")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    // stderr is a pipe here, as in CI: phases and byte counts as plain lines, no bar redraws.
    assert!(stderr.contains("progress: "), "{stderr}");
    assert!(stderr.contains(" items, "), "{stderr}");
    assert!(stderr.contains("is ready"), "{stderr}");
    assert!(
        !stderr.contains('\r') && !stderr.contains('\x1b'),
        "{stderr}"
    );

    let r = site.run_deploy(
        "upgrade",
        &v1,
        &["--no-progress", "--set", "web.replicas=2"],
        false,
    );
    assert_eq!(r.code, 0, "{r}");
    assert!(
        !r.stderr.contains("progress: ") && !r.stderr.contains("is ready"),
        "{r}"
    );
}
