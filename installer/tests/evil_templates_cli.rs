//! Issue 10: templates must not exhaust the operator's memory. The observed attack: a
//! self-growing template behind `{% if config.web.replicas > 10 %}` passes lint and build with
//! the defaults, then `--set web.replicas=11` at the customer ran past 60 s and 545 MB.
//!
//! Here each of the packager's hostile fixtures (`16-evil-templates`: `~` doubling in a
//! macro, `replace` squaring, a list grown by `+`) goes into a signed shop bundle whose default
//! is 1 replica, and the real `airlift-install` runs `render`, `install` and `upgrade` against
//! the test cluster with `--set web.replicas=11`, under an outer address-space bound of 2 GiB:
//! each is refused with the named memory error (exit 6) in seconds, before any change, and the
//! peak memory of the installer and its render worker stays under the worker's 512 MiB bound.

#![allow(clippy::unwrap_used)]

mod releases_support;

use std::path::{Path, PathBuf};
use std::time::Duration;

use airlift_testkit::measure::{run_bounded, Measured};
use releases_support::{ShopVersion, Site};

/// What the installer may use in all (prlimit on the parent; the worker lowers it further).
const OUTER_ADDRESS_SPACE: u64 = 2 << 30;
/// The render worker's bound (`MAX_TEMPLATE_MEMORY`), in KiB: no process may peak above it.
const WORKER_BOUND_KIB: u64 = 512 * 1024;
/// Far under the test's budget; each run measured at 1–3 s on the 2-core CI machine.
const WALL_BUDGET: Duration = Duration::from_secs(30);
/// Where the shop bundle keeps its one template.
const SHOP_TEMPLATE: &str = "components/shop/shop.yaml";

/// The packager's hostile fixtures, by name.
fn evil_templates() -> Vec<(&'static str, String)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../packager/tests/fixtures/16-evil-templates/manifests");
    ["doubling", "replace", "list"]
        .into_iter()
        .map(|name| {
            let text = std::fs::read_to_string(dir.join(format!("{name}.yaml"))).unwrap();
            assert!(
                text.contains("config.web.replicas > 10"),
                "{name}: the attack is behind the replicas gate"
            );
            (name, text)
        })
        .collect()
}

/// A shop bundle carrying `template` as an extra document.
fn evil_bundle(site: &Site, name: &str, template: &str) -> PathBuf {
    let mut v = ShopVersion::new(&format!("1.0.{}", name.len()));
    v.name = format!("shop-{name}");
    v.extra = template.to_string();
    site.bundle(&v)
}

/// Runs the installer with `args` under the outer bound, measured.
fn measured(site: &Site, args: &[String]) -> Measured {
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    run_bounded(&site.command(&refs), OUTER_ADDRESS_SPACE, site.dir.path()).unwrap()
}

/// Exit 6 naming the shop template and the memory bound, the peak under the worker's bound.
fn assert_refused_by_the_memory_bound(what: &str, m: &Measured) {
    assert_eq!(m.code(), Some(6), "{what}: {m}");
    let named = format!(
        "template `{SHOP_TEMPLATE}` failed to render: it needed more than the 512 MiB memory \
         limit"
    );
    let err = m.stderr();
    assert!(err.contains(&named), "{what}: missing {named:?} in\n{m}");
    assert!(
        err.contains("the render worker was stopped: memory allocation of"),
        "{what}: {m}"
    );
    assert!(
        err.contains("hint: the template grows a value without bound"),
        "{what}: {m}"
    );
    assert!(
        m.max_rss_kib < WORKER_BOUND_KIB,
        "{what}: peak RSS {} KiB is not under the worker's bound\n{m}",
        m.max_rss_kib
    );
    assert!(m.wall < WALL_BUDGET, "{what}: {m}");
    eprintln!(
        "{what}: exit 6 in {:.2} s, peak RSS {} KiB",
        m.wall.as_secs_f64(),
        m.max_rss_kib
    );
}

#[test]
fn render_with_the_triggering_value_is_refused_and_renders_without_it() {
    let site = Site::start();
    for (name, template) in evil_templates() {
        let bundle = evil_bundle(&site, name, &template);
        let render = |out: &Path, extra: &[&str]| {
            let mut args: Vec<String> = [
                "render",
                bundle.to_str().unwrap(),
                "--key",
                site.key().to_str().unwrap(),
                "--registry",
                &site.registry_host(),
                "--out",
                out.to_str().unwrap(),
            ]
            .iter()
            .map(|s| s.to_string())
            .collect();
            args.extend(extra.iter().map(|s| s.to_string()));
            measured(&site, &args)
        };
        // With the defaults the gate is closed: it renders, as it passed lint and build.
        let fine = site.dir.path().join(format!("{name}-fine"));
        let m = render(&fine, &[]);
        assert_eq!(m.code(), Some(0), "{name}: {m}");
        let out = site.dir.path().join(format!("{name}-out"));
        let m = render(&out, &["--set", "web.replicas=11"]);
        assert_refused_by_the_memory_bound(&format!("render {name}"), &m);
        assert!(!out.exists(), "{name}: nothing is written");
    }
}

#[test]
fn install_with_the_triggering_value_is_refused_before_any_change() {
    let site = Site::start();
    for (name, template) in evil_templates() {
        let bundle = evil_bundle(&site, name, &template);
        let args = site.deploy_args("install", &bundle, &["--set", "web.replicas=11"], true);
        let m = measured(&site, &args);
        assert_refused_by_the_memory_bound(&format!("install {name}"), &m);
        assert!(
            site.try_object("", "namespaces", "", &format!("shop-{name}"))
                .is_none(),
            "{name}: no release namespace"
        );
        assert!(!site.pushed_anything(), "{name}: no image was pushed");
    }
}

#[test]
fn upgrade_to_an_evil_version_is_refused_and_the_release_keeps_running() {
    let site = Site::start();
    let v1 = site.bundle(&ShopVersion::new("1.0.0"));
    let out = site.install(&v1, &[]);
    assert!(out.ok(), "{out}");
    let before = site.resource_version("configmaps", "shop", "web-config");
    let (_, template) = evil_templates().remove(0);
    let mut v2 = ShopVersion::new("1.1.0");
    v2.extra = template;
    let v2 = site.bundle(&v2);
    let args = site.deploy_args(
        "upgrade",
        &v2,
        &["--yes", "--set", "web.replicas=11"],
        false,
    );
    let m = measured(&site, &args);
    assert_refused_by_the_memory_bound("upgrade doubling", &m);
    assert_eq!(
        site.resource_version("configmaps", "shop", "web-config"),
        before,
        "revision 1 is untouched"
    );
    let status = site.run(&["status", "shop", "-o", "json"]);
    assert!(status.ok(), "{status}");
    let json: serde_json::Value = serde_json::from_str(&status.stdout).unwrap();
    assert_eq!(json["deployed"]["revision"], 1, "{status}");
    assert_eq!(json["deployed"]["bundle"]["version"], "1.0.0", "{status}");
    assert_eq!(
        json["history"].as_array().map(Vec::len),
        Some(1),
        "{status}"
    );
}
