//! Licenses through the real binary, against the test cluster and a real docker-registry: each
//! refusal is a named error with exit 7 and no write to the cluster; a valid license installs,
//! shows in `status` and `license show`, and `license update` renews it without a reinstall.

#![allow(clippy::unwrap_used)]

mod releases_support;

use std::path::PathBuf;

use airlift_bundle::license::{issue, LicenseRequest};
use airlift_bundle::schema::license::LicensePolicy;
use airlift_bundle::PrivateKey;
use airlift_testkit::cluster::ClusterOptions;
use releases_support::{Run, ShopVersion, Site};

const DAY: u64 = 86_400;

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// The shop with a required license, entitlements `reports` (bool, default false) and `seats`
/// (int, default 5), and the component `reports` that needs `reports`.
fn licensed_shop(version: &str) -> ShopVersion {
    let mut v = ShopVersion::new(version);
    v.license = Some(
        serde_yaml::from_str::<LicensePolicy>(
            "required: true\nentitlements:\n  - {name: reports, type: bool, description: reports, default: false}\n  - {name: seats, type: int, description: seats, default: 5}\n",
        )
        .unwrap(),
    );
    v.gated = true;
    v
}

/// A good license: stable, a year, 3 nodes, `reports=true`, `seats=25`; `f` changes it.
fn request(f: impl FnOnce(&mut LicenseRequest)) -> LicenseRequest {
    let mut r = LicenseRequest {
        customer: "Example Corp".into(),
        customer_id: "cust-42".into(),
        channel: "stable".into(),
        valid_from: None,
        expires: Some(now() + 365 * DAY),
        max_nodes: Some(3),
        entitlements: [
            ("reports".to_string(), "true".to_string()),
            ("seats".to_string(), "25".to_string()),
        ]
        .into(),
    };
    f(&mut r);
    r
}

fn write_license(site: &Site, name: &str, key: &PrivateKey, r: &LicenseRequest) -> PathBuf {
    let (_, bytes) = issue(r, key, now()).unwrap();
    let path = site.dir.path().join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

/// Writes since request `from` of the log, leaving out reviews and dry runs (which change
/// nothing).
fn writes_since(site: &Site, from: usize) -> Vec<String> {
    site.cluster().requests()[from..]
        .iter()
        .filter(|r| r.method != "GET")
        .filter(|r| !r.path.contains("selfsubject") && !r.query.contains("dryRun"))
        .map(|r| format!("{} {}", r.method, r.path))
        .collect()
}

fn refused(site: &Site, out: &Run, from: usize, named: &str) {
    assert_eq!(out.code, 7, "{out}");
    assert!(out.stderr.contains(named), "`{named}` missing:\n{out}");
    assert!(out.stderr.contains("hint:"), "{out}");
    assert_eq!(writes_since(site, from), Vec::<String>::new(), "{out}");
}

#[test]
fn every_refused_license_is_named_exits_7_and_changes_nothing() {
    // Three nodes, so a two-node license is too small.
    let site = Site::start_with(ClusterOptions::default().with_nodes(&["amd64", "amd64", "amd64"]));
    let bundle = site.bundle(&licensed_shop("1.0.0"));
    let key = site.vendor_key().clone();
    let install = |license: Option<&PathBuf>| {
        let from = site.cluster().requests().len();
        let mut extra = vec![];
        if let Some(l) = license {
            extra = vec!["--license", l.to_str().unwrap()];
        }
        (site.install(&bundle, &extra), from)
    };

    let (out, from) = install(None);
    refused(
        &site,
        &out,
        from,
        "shop 1.0.0 requires a license and none was given",
    );

    let good = write_license(&site, "good.lic", &key, &request(|_| {}));
    let tampered = site.dir.path().join("tampered.lic");
    let text = std::fs::read_to_string(&good).unwrap();
    std::fs::write(&tampered, text.replace("maxNodes: 3", "maxNodes: 30")).unwrap();
    let (out, from) = install(Some(&tampered));
    refused(&site, &out, from, "it was altered after signing");

    let other = write_license(
        &site,
        "other.lic",
        &PrivateKey::generate(),
        &request(|_| {}),
    );
    let (out, from) = install(Some(&other));
    refused(&site, &out, from, "not by this bundle's vendor key");

    let expired = request(|r| r.expires = Some(now() - 20 * DAY));
    let expired = write_license(&site, "expired.lic", &key, &expired);
    let (out, from) = install(Some(&expired));
    refused(&site, &out, from, "-day grace period ended at");

    let later = request(|r| r.valid_from = Some(now() + 5 * DAY));
    let later = write_license(&site, "later.lic", &key, &later);
    let (out, from) = install(Some(&later));
    refused(&site, &out, from, "is not valid before");

    let beta = write_license(
        &site,
        "beta.lic",
        &key,
        &request(|r| r.channel = "beta".into()),
    );
    let (out, from) = install(Some(&beta));
    refused(
        &site,
        &out,
        from,
        "is for channel `beta`, but shop 1.0.0 is on channel `stable`",
    );

    let small = write_license(
        &site,
        "small.lic",
        &key,
        &request(|r| r.max_nodes = Some(2)),
    );
    let (out, from) = install(Some(&small));
    refused(
        &site,
        &out,
        from,
        "allows at most 2 node(s), but the cluster has 3",
    );

    let plain = request(|r| {
        r.entitlements.remove("reports");
    });
    let plain = write_license(&site, "plain.lic", &key, &plain);
    let (out, from) = install(Some(&plain));
    refused(
        &site,
        &out,
        from,
        "component `reports` needs entitlement `reports`",
    );
    assert!(out.stderr.contains("--disable reports"), "{out}");

    assert!(site
        .cluster()
        .object("", "namespaces", "", "shop")
        .is_none());
}

#[test]
fn a_license_installs_shows_in_status_and_is_renewed_without_a_reinstall() {
    let site = Site::start();
    let bundle = site.bundle(&licensed_shop("1.0.0"));
    let key = site.vendor_key().clone();
    // Ten days left: it works, with a warning.
    let first = write_license(
        &site,
        "first.lic",
        &key,
        &request(|r| r.expires = Some(now() + 10 * DAY)),
    );
    let out = site.install(&bundle, &["--license", first.to_str().unwrap()]);
    assert!(out.ok(), "{out}");
    assert!(out.stderr.contains("warning: license lic-"), "{out}");
    assert!(out.stderr.contains("day(s) left"), "{out}");
    // Templates saw the license.
    let reports = site.object("", "configmaps", "shop", "reports");
    assert_eq!(reports["data"]["customer"], "Example Corp");
    assert_eq!(reports["data"]["seats"], "25");

    let status = site.run(&["status", "shop"]);
    assert!(status.ok(), "{status}");
    for line in [
        "Customer:  Example Corp (cust-42)",
        "Channel:   stable",
        "day(s) left)",
    ] {
        assert!(status.stdout.contains(line), "{line}:\n{status}");
    }

    // A renewal replaces the license and changes nothing else.
    let web = site.resource_version("configmaps", "shop", "web-config");
    let renewed = write_license(&site, "renewed.lic", &key, &request(|_| {}));
    let out = site.run(&["license", "update", "shop", renewed.to_str().unwrap()]);
    assert!(out.ok(), "{out}");
    assert!(out.stdout.contains("no reinstall"), "{out}");
    assert!(!out.stderr.contains("warning"), "{out}");
    let shown = site.run(&["license", "show", "shop", "--output", "json"]);
    assert!(shown.ok(), "{shown}");
    let shown: serde_json::Value = serde_json::from_str(&shown.stdout).unwrap();
    assert!(shown["daysLeft"].as_i64().unwrap() >= 364, "{shown}");
    assert_eq!(shown["state"], "valid");
    assert_eq!(
        site.resource_version("configmaps", "shop", "web-config"),
        web
    );
    let status = site.run(&["status", "shop", "--output", "json"]);
    let status: serde_json::Value = serde_json::from_str(&status.stdout).unwrap();
    assert_eq!(
        status["history"].as_array().unwrap().len(),
        1,
        "no new revision"
    );
    assert_eq!(status["license"]["id"], shown["id"]);

    // An update is checked like an install: an expired one is refused and the renewal stays.
    let expired = write_license(
        &site,
        "old.lic",
        &key,
        &request(|r| r.expires = Some(now() - 30 * DAY)),
    );
    let from = site.cluster().requests().len();
    let out = site.run(&["license", "update", "shop", expired.to_str().unwrap()]);
    refused(&site, &out, from, "grace period ended");
    let again = site.run(&["license", "show", "shop", "--output", "json"]);
    let again: serde_json::Value = serde_json::from_str(&again.stdout).unwrap();
    assert_eq!(again["id"], shown["id"]);

    // An upgrade without --license uses the stored one.
    let v2 = site.bundle(&licensed_shop("2.0.0"));
    let out = site.run_deploy("upgrade", &v2, &["--yes"], false);
    assert!(out.ok(), "{out}");

    // The license belongs to the release, not to a revision: a rollback keeps the renewal.
    let out = site.run(&["rollback", "shop", "-y"]);
    assert!(out.ok(), "{out}");
    let kept = site.run(&["license", "show", "shop", "--output", "json"]);
    assert!(kept.ok(), "{kept}");
    let kept: serde_json::Value = serde_json::from_str(&kept.stdout).unwrap();
    assert_eq!(
        kept["id"], shown["id"],
        "the rollback kept the renewed license"
    );
}
