//! The release lifecycle through the real binary, against the test cluster and a real
//! docker-registry: each of the nine observations of the releases issue, as the operator meets
//! them (exit codes, what stderr names, what the cluster holds afterwards).

#![allow(clippy::unwrap_used)]

mod releases_support;

use airlift_testkit::cluster::ClusterOptions;
use releases_support::{ShopVersion, Site};

#[test]
fn a_release_lives_in_the_namespace_named_after_it_and_unknown_ones_fail() {
    for site in Site::tiers(ClusterOptions::default()) {
        eprintln!("[{}]", site.tier);
        let v1 = site.bundle(&ShopVersion::new("1.0.0"));
        let out = site.install(&v1, &["--release", "staging-copy"]);
        assert!(out.ok(), "{out}");
        assert!(out.stdout.contains("in namespace staging-copy"), "{out}");
        let status = site.run(&["status", "staging-copy"]);
        assert!(status.ok(), "{status}");
        assert!(
            status.stdout.contains("revision 1 (shop 1.0.0) deployed"),
            "{status}"
        );
        let elsewhere = site.run(&["status", "staging-copy", "-n", "default"]);
        assert_eq!(elsewhere.code, 1, "{elsewhere}");
        assert!(elsewhere.stderr.contains("-n staging-copy"), "{elsewhere}");
        let unknown = site.run(&["status", "nothing-here"]);
        assert_eq!(unknown.code, 1, "{unknown}");
        let list = site.run(&["list", "--output", "json"]);
        assert!(list.ok(), "{list}");
        assert!(list.stdout.contains("\"staging-copy\""), "{list}");
    }
}

#[test]
fn a_second_release_is_refused_and_uninstall_never_deletes_anothers_objects() {
    for site in Site::tiers(ClusterOptions::default()) {
        eprintln!("[{}]", site.tier);
        let v1 = site.bundle(&ShopVersion::new("1.0.0"));
        assert!(site.install(&v1, &["-n", "shared"]).ok());
        let before = site.resource_version("configmaps", "shared", "web-config");
        let second = site.install(&v1, &["--release", "copy", "-n", "shared"]);
        assert_eq!(second.code, 7, "{second}");
        assert!(
            second.stderr.contains(
                "ConfigMap shared/web-config belongs to release `shop` in namespace `shared`"
            ),
            "{second}"
        );
        assert!(second.stderr.contains("--adopt"), "{second}");
        assert_eq!(
            site.resource_version("configmaps", "shared", "web-config"),
            before
        );
        let gone = site.run(&["uninstall", "copy", "-n", "shared", "--yes"]);
        assert_eq!(gone.code, 1, "{gone}");
        let status = site.run(&["status", "shop", "-n", "shared"]);
        assert!(status.stdout.contains("web"), "{status}");
        assert!(!status.stdout.contains("missing"), "{status}");
    }
}

#[test]
fn upgrades_keep_the_sites_values_and_credentials_and_plans_show_old_and_new() {
    for site in Site::tiers(ClusterOptions::default()) {
        eprintln!("[{}]", site.tier);
        let v1 = site.bundle(&ShopVersion::new("1.0.0"));
        let mut two = ShopVersion::new("2.0.0");
        two.color = "red".into();
        let v2 = site.bundle(&two);
        let values = site.dir.path().join("site.yaml");
        std::fs::write(&values, "web:\n  hostname: shop.site.test\n").unwrap();
        assert!(site.install(&v1, &["-f", values.to_str().unwrap()]).ok());
        // No --registry, no values file: only one --set.
        let plan = site.run_deploy("plan", &v2, &["--set", "web.replicas=3"], false);
        assert!(plan.ok(), "{plan}");
        assert!(
            plan.stdout.contains("web.replicas: 1 -> 3 (set by --set)"),
            "{plan}"
        );
        assert!(
            plan.stdout
                .contains("web.color: blue -> red (the SaaS default changed)"),
            "{plan}"
        );
        assert!(!plan.stdout.contains("web.hostname"), "{plan}");
        let up = site.run_deploy("upgrade", &v2, &["--set", "web.replicas=3", "--yes"], false);
        assert!(up.ok(), "{up}");
        let cm = site.object("", "configmaps", "shop", "web-config");
        assert_eq!(cm["data"]["hostname"], "shop.site.test");
        let values = site.run(&["values", "shop", "--output", "json"]);
        assert!(values.stdout.contains("shop.site.test"), "{values}");
    }
}

#[test]
fn generated_secrets_survive_uninstall() {
    for site in Site::tiers(ClusterOptions::default()) {
        eprintln!("[{}]", site.tier);
        let v1 = site.bundle(&ShopVersion::new("1.0.0"));
        assert!(site.install(&v1, &[]).ok());
        let first = site.object("", "secrets", "shop", "db")["data"]["password"].clone();
        let out = site.run(&["uninstall", "shop", "--yes"]);
        assert!(out.ok(), "{out}");
        assert!(
            out.stdout
                .contains("kept Namespace shop: it holds the generated secret values"),
            "{out}"
        );
        assert!(site.install(&v1, &[]).ok());
        assert_eq!(
            site.object("", "secrets", "shop", "db")["data"]["password"],
            first
        );
    }
}

#[test]
fn refused_upgrade_writes_nothing_and_rollback_reports_deletions() {
    for site in Site::tiers(ClusterOptions::default()) {
        eprintln!("[{}]", site.tier);
        let v1 = site.bundle(&ShopVersion::new("1.0.0"));
        let mut two = ShopVersion::new("2.0.0");
        two.extra =
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: extra\ndata:\n  a: b\n".into();
        let v2 = site.bundle(&two);
        let refused = site.run_deploy("upgrade", &v1, &["--yes"], true);
        assert_eq!(refused.code, 1, "{refused}");
        assert!(refused.stderr.contains("is not installed"), "{refused}");
        assert!(site.try_object("", "namespaces", "", "shop").is_none());
        assert!(site
            .try_object("", "secrets", "shop", "airlift-generated-shop")
            .is_none());

        assert!(site.install(&v1, &[]).ok());
        assert!(site.run_deploy("upgrade", &v2, &["--yes"], true).ok());
        let back = site.run(&["rollback", "shop", "--output", "json"]);
        assert!(back.ok(), "{back}");
        let json: serde_json::Value = serde_json::from_str(&back.stdout).unwrap();
        let deleted: Vec<String> = json["objects"]["deleted"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["name"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(deleted, vec!["extra".to_string()], "{back}");
    }
}

#[test]
fn concurrent_installs_never_both_write() {
    for site in Site::tiers(ClusterOptions::default()) {
        eprintln!("[{}]", site.tier);
        let v1 = site.bundle(&ShopVersion::new("1.0.0"));
        let a = site.spawn_install(&v1);
        let b = site.spawn_install(&v1);
        let (a, b) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
        let codes = [a.status.code(), b.status.code()];
        assert!(codes.contains(&Some(0)), "{codes:?}");
        for (code, out) in [(a.status.code(), &a), (b.status.code(), &b)] {
            if code != Some(0) {
                assert_eq!(code, Some(9), "{}", String::from_utf8_lossy(&out.stderr));
                assert!(String::from_utf8_lossy(&out.stderr).contains("is locked by"));
            }
        }
        let status = site.run(&["status", "shop", "--output", "json"]);
        let json: serde_json::Value = serde_json::from_str(&status.stdout).unwrap();
        for r in json["history"].as_array().unwrap() {
            assert_ne!(r["status"], "failed", "{status}");
        }
    }
}

#[test]
fn dry_run_checks_everything_and_changes_nothing() {
    for site in Site::tiers(ClusterOptions::default()) {
        eprintln!("[{}]", site.tier);
        let v1 = site.bundle(&ShopVersion::new("1.0.0"));
        let dry = site.install(&v1, &["--dry-run"]);
        assert!(dry.ok(), "{dry}");
        assert!(
            dry.stdout
                .contains("Dry run: preflight passed; nothing was changed."),
            "{dry}"
        );
        assert!(dry.stdout.contains("not installed yet"), "{dry}");
        assert!(site.try_object("", "namespaces", "", "shop").is_none());
        assert!(!site.pushed_anything(), "no image was pushed");
        // A dry run of an upgrade of a release that is not installed is refused like the upgrade.
        let refused = site.run_deploy("upgrade", &v1, &["--dry-run"], true);
        assert_eq!(refused.code, 1, "{refused}");
        let bad = site.run(&["install", v1.to_str().unwrap(), "--timeout", "5x"]);
        assert_eq!(bad.code, 2, "{bad}");
        assert!(bad.stderr.contains("`5x` is not a duration"), "{bad}");
    }
}
