//! Observation 3: an upgrade never silently forgets the site's settings. Remembered values,
//! registry and credentials are reused; a remembered value equal to the old SaaS default follows
//! the new one; `plan` shows each changed value old → new and why; `--reset-values` starts over.

#![allow(clippy::unwrap_used)]

mod common;

use airlift_bundle::NoProgress;
use airlift_deploy::{releases, Intent};
use airlift_testkit::bundles::ShopVersion;
use common::{cleanup, deploy, envs, live, plan, unique};

#[tokio::test(flavor = "multi_thread")]
async fn upgrades_keep_the_sites_values_and_plans_say_why_values_change() {
    for env in envs() {
        let cluster = env.connect().await;
        let ns = unique("site");
        let v1 = env.bundle(&ShopVersion::new("1.0.0"));
        let mut two = ShopVersion::new("2.0.0");
        two.color = "red".into();
        two.replicas = 2;
        let v2 = env.bundle(&two);

        let values = env.dir.path().join("site.yaml");
        // `color: blue` equals the SaaS default: it follows the vendor's next default.
        std::fs::write(&values, "web:\n  hostname: shop.site.test\n  color: blue\n").unwrap();
        let mut site = env.site("shop", Some(&ns));
        site.values_files = vec![values];
        deploy(&env, &v1, &site, Intent::Install).await.unwrap();

        // The next upgrade names only one value, and the registry not at all.
        let mut next = env.site("shop", Some(&ns));
        next.registry = None;
        next.set = vec!["web.replicas=3".into()];
        let p = plan(&env, &v2, &next).await.unwrap();
        let change = |key: &str| p.values.iter().find(|c| c.key == key).cloned();
        assert!(
            change("web.hostname").is_none(),
            "[{}] {:?}",
            env.tier,
            p.values
        );
        let replicas = change("web.replicas").unwrap();
        assert_eq!(
            (replicas.from.as_deref(), replicas.to.as_deref()),
            (Some("1"), Some("3"))
        );
        assert_eq!(replicas.reason, "set by --set");
        let color = change("web.color").unwrap();
        assert_eq!(
            (color.from.as_deref(), color.to.as_deref()),
            (Some("blue"), Some("red"))
        );
        assert_eq!(color.reason, "the SaaS default changed");
        let follows = p.defaults.iter().find(|d| d.key == "web.color").unwrap();
        assert_eq!(follows.site, "follows the new default");
        let overrides = p.defaults.iter().find(|d| d.key == "web.replicas").unwrap();
        assert!(
            overrides.site.starts_with("overrides it with 3"),
            "{}",
            overrides.site
        );
        assert!(
            p.objects.delete.is_empty(),
            "[{}] nothing is deleted: {:?}",
            env.tier,
            p.objects.delete
        );

        deploy(&env, &v2, &next, Intent::Upgrade).await.unwrap();
        let cm = live(&cluster, "v1", "ConfigMap", Some(&ns), "web-config")
            .await
            .unwrap();
        assert_eq!(cm["data"]["hostname"], "shop.site.test", "[{}]", env.tier);
        assert_eq!(cm["data"]["color"], "red");
        let rows = releases::values(&cluster, &NoProgress, &ns, "shop")
            .await
            .unwrap();
        let row = rows.iter().find(|r| r.key == "web.hostname").unwrap();
        assert_eq!(row.site, Some(serde_json::json!("shop.site.test")));
        assert_eq!(
            row.saas_default,
            Some(serde_json::json!("shop.example.com"))
        );

        // A second upgrade with no flags at all changes nothing.
        let mut bare = env.site("shop", Some(&ns));
        bare.registry = None;
        let again = plan(&env, &v2, &bare).await.unwrap();
        assert!(again.values.is_empty(), "[{}] {:?}", env.tier, again.values);

        // --reset-values starts from the SaaS defaults again.
        bare.reset_values = true;
        let reset = plan(&env, &v2, &bare).await.unwrap();
        let host = reset
            .values
            .iter()
            .find(|c| c.key == "web.hostname")
            .unwrap();
        assert_eq!(host.to.as_deref(), Some("shop.example.com"));
        assert_eq!(host.reason, "the site override was removed");
        cleanup(&cluster, &ns, "shop").await;
    }
}

/// Registry credentials given at install are remembered (the password in the site Secret,
/// never in a record): an upgrade without `--registry-user` keeps the pull secret.
#[tokio::test(flavor = "multi_thread")]
async fn registry_credentials_are_remembered() {
    use airlift_registry::Credentials;
    use airlift_testkit::registry::TestRegistry;
    let registry = TestRegistry::tls_with_auth("site", "pull-Password-1");
    // The test tier only, its nodes trusting the site registry's CA.
    for env in [common::test_env_trusting(registry.ca_pem().unwrap())] {
        let cluster = env.connect().await;
        let ns = unique("creds");
        let v1 = env.bundle(&ShopVersion::new("1.0.0"));
        let v2 = env.bundle(&ShopVersion::new("1.1.0"));
        let mut site = env.site("shop", Some(&ns));
        site.registry = Some(registry.host());
        site.registry_options = airlift_registry::RegistryOptions::default()
            .with_ca_file(registry.ca_pem().unwrap())
            .with_credentials(
                registry.host(),
                Credentials::basic(
                    "site",
                    airlift_registry::Secret::new("pull-Password-1".to_string()),
                ),
            );
        deploy(&env, &v1, &site, Intent::Install).await.unwrap();
        assert!(
            live(&cluster, "v1", "Secret", Some(&ns), "airlift-registry")
                .await
                .is_some()
        );

        let mut next = env.site("shop", Some(&ns));
        next.registry = None;
        next.registry_options =
            airlift_registry::RegistryOptions::default().with_ca_file(registry.ca_pem().unwrap());
        let p = plan(&env, &v2, &next).await.unwrap();
        assert!(
            !p.objects
                .delete
                .iter()
                .any(|d| d.name == "airlift-registry"),
            "{:?}",
            p.objects.delete
        );
        deploy(&env, &v2, &next, Intent::Upgrade).await.unwrap();
        assert!(
            live(&cluster, "v1", "Secret", Some(&ns), "airlift-registry")
                .await
                .is_some()
        );
        let records = releases::status(&cluster, &NoProgress, &ns, "shop")
            .await
            .unwrap();
        let text = serde_json::to_string(&records.history).unwrap();
        assert!(
            !text.contains("pull-Password-1"),
            "no password in any record"
        );
        cleanup(&cluster, &ns, "shop").await;
    }
}

/// Records hold secrets only as fingerprints keyed with the release's own key (kept with the
/// generated values, apart from the records), so a weak secret cannot be brute-forced from a
/// record; a plan still tells an unchanged secret from a changed one.
#[tokio::test(flavor = "multi_thread")]
async fn secret_fingerprints_in_records_are_keyed_per_release() {
    use airlift_bundle::Secret;
    use airlift_cluster::generated::{load, FINGERPRINT_KEY};
    for env in envs() {
        let cluster = env.connect().await;
        let ns = unique("fp");
        let v1 = env.bundle(&ShopVersion::new("1.0.0"));
        let site = env.site("shop", Some(&ns));
        deploy(&env, &v1, &site, Intent::Install).await.unwrap();

        let kept = load(&cluster, &ns, "shop").await.unwrap();
        let password = Secret::new(kept["db.password"].clone());
        let key = Secret::new(kept[FINGERPRINT_KEY].clone());
        let engine = airlift_cluster::lifecycle::Engine::new(&cluster, &NoProgress);
        let history = engine.status(&ns, "shop").await.unwrap();
        let recorded = history[0].config["db.password"]
            .as_str()
            .unwrap()
            .to_string();
        assert_eq!(recorded, password.keyed_fingerprint(&key), "[{}]", env.tier);
        assert_ne!(recorded, password.fingerprint(), "not the unkeyed sha256");
        assert!(!recorded.contains(password.expose()));

        // Unchanged: no value change; a new password: a change, masked.
        let mut next = env.site("shop", Some(&ns));
        next.registry = None;
        let p = plan(&env, &v1, &next).await.unwrap();
        assert!(p.values.is_empty(), "[{}] {:?}", env.tier, p.values);
        next.set = vec!["db.password=a-new-password-1".into()];
        let p = plan(&env, &v1, &next).await.unwrap();
        let change = p.values.iter().find(|c| c.key == "db.password").unwrap();
        let shown = format!("{change:?}");
        assert!(!shown.contains("a-new-password-1"), "{shown}");
        cleanup(&cluster, &ns, "shop").await;
    }
}
