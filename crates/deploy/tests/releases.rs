//! Releases an operator can trust, through the library, in-process, without root: where a
//! release lives, who owns what, what uninstall keeps, what a refused operation writes, what
//! rollback reports, and what status reads from the cluster. Each test runs on the test cluster
//! with a real docker-registry and, when configured, on a real cluster.

#![allow(clippy::unwrap_used)]

mod common;

use airlift_bundle::{Diagnose, ExitKind, NoProgress};
use airlift_cluster::lifecycle::LifecycleError;
use airlift_deploy::{releases, DeployError, Intent};
use airlift_testkit::bundles::ShopVersion;
use common::{cleanup, deploy, envs, live, options, unique};
use kube::api::{Api, DeleteParams, DynamicObject, Patch, PatchParams};

fn not_installed_elsewhere(e: &DeployError) -> Vec<String> {
    match e.lifecycle() {
        Some(LifecycleError::NotInstalled { elsewhere, .. }) => elsewhere.clone(),
        _ => panic!("expected NotInstalled, got {e:?}"),
    }
}

/// Observation 1: `install --release X` without `-n` goes to namespace X, where `status X`
/// looks; an unknown release is an error naming where one of that name exists.
#[tokio::test(flavor = "multi_thread")]
async fn a_release_lives_in_the_namespace_named_after_it() {
    for env in envs() {
        let cluster = env.connect().await;
        let release = unique("staging-copy");
        let v1 = env.bundle(&ShopVersion::new("1.0.0"));
        let report = deploy(&env, &v1, &env.site(&release, None), Intent::Install)
            .await
            .unwrap();
        assert_eq!(report.namespace, release, "[{}]", env.tier);
        let status = releases::status(&cluster, &NoProgress, &release, &release)
            .await
            .unwrap();
        assert!(
            status.summary.contains("deployed"),
            "[{}] {}",
            env.tier,
            status.summary
        );

        let err = releases::status(&cluster, &NoProgress, "default", &release)
            .await
            .unwrap_err();
        assert_ne!(err.exit_kind().code(), 0, "an unknown release is an error");
        assert_eq!(
            not_installed_elsewhere(&err),
            vec![release.clone()],
            "[{}]",
            env.tier
        );
        assert!(
            err.fix().unwrap().contains(&format!("-n {release}")),
            "{:?}",
            err.fix()
        );
        let unknown = releases::status(&cluster, &NoProgress, "nowhere", "nowhere")
            .await
            .unwrap_err();
        assert!(not_installed_elsewhere(&unknown).is_empty());
        cleanup(&cluster, &release, &release).await;
    }
}

/// Observation 2: a second release of the same bundle in the same namespace is refused before
/// any change, naming each object and its owner; uninstalling one release never deletes the
/// other's objects.
#[tokio::test(flavor = "multi_thread")]
async fn a_second_release_never_takes_over_the_first() {
    for env in envs() {
        let cluster = env.connect().await;
        let ns = unique("owned");
        let v1 = env.bundle(&ShopVersion::new("1.0.0"));
        deploy(&env, &v1, &env.site("one", Some(&ns)), Intent::Install)
            .await
            .unwrap();

        let err = deploy(&env, &v1, &env.site("two", Some(&ns)), Intent::Install)
            .await
            .unwrap_err();
        assert_eq!(err.exit_kind(), ExitKind::Preflight, "[{}] {err}", env.tier);
        let text = err.to_string();
        for object in ["ConfigMap", "Deployment", "Secret"] {
            assert!(
                text.contains(object) && text.contains("release `one`"),
                "[{}] {text}",
                env.tier
            );
        }
        // Nothing was written for release two.
        let none = releases::status(&cluster, &NoProgress, &ns, "two")
            .await
            .unwrap_err();
        assert!(matches!(
            none.lifecycle(),
            Some(LifecycleError::NotInstalled { .. })
        ));
        let cm = live(&cluster, "v1", "ConfigMap", Some(&ns), "web-config")
            .await
            .unwrap();
        assert_eq!(
            cm["metadata"]["annotations"]["airlift.dev/owned-by"],
            format!("{ns}/one")
        );

        // Release two in its own namespace installs, and its uninstall leaves one alone.
        let ns2 = unique("owned2");
        deploy(&env, &v1, &env.site("two", Some(&ns2)), Intent::Install)
            .await
            .unwrap();
        let out = cleanup(&cluster, &ns2, "two").await;
        assert!(out
            .deleted
            .iter()
            .all(|o| o.namespace.as_deref() != Some(&ns) && o.name != ns));
        let one = releases::status(&cluster, &NoProgress, &ns, "one")
            .await
            .unwrap();
        assert!(one.missing.is_empty(), "[{}] {:?}", env.tier, one.missing);
        cleanup(&cluster, &ns, "one").await;
    }
}

/// Observation 4: the generated secret values survive an uninstall that keeps data (and the
/// namespace holding them stays); a re-install gets the same password.
#[tokio::test(flavor = "multi_thread")]
async fn generated_secrets_survive_uninstall_and_reinstall() {
    for env in envs() {
        let cluster = env.connect().await;
        let ns = unique("gen");
        let v1 = env.bundle(&ShopVersion::new("1.0.0"));
        deploy(&env, &v1, &env.site("shop", Some(&ns)), Intent::Install)
            .await
            .unwrap();
        let password = |s: serde_json::Value| s["data"]["password"].as_str().unwrap().to_string();
        let first = password(
            live(&cluster, "v1", "Secret", Some(&ns), "db")
                .await
                .unwrap(),
        );

        let out = releases::uninstall(
            &cluster,
            &NoProgress,
            &ns,
            "shop",
            false,
            false,
            Default::default(),
        )
        .await
        .unwrap();
        assert!(
            out.kept
                .iter()
                .any(|k| k.object.kind == "Namespace" && k.reason.contains("generated")),
            "[{}] {:?}",
            env.tier,
            out.kept
        );
        assert!(live(
            &cluster,
            "v1",
            "Secret",
            Some(&ns),
            "airlift-generated-shop"
        )
        .await
        .is_some());
        assert!(live(&cluster, "apps/v1", "Deployment", Some(&ns), "web")
            .await
            .is_none());

        deploy(&env, &v1, &env.site("shop", Some(&ns)), Intent::Install)
            .await
            .unwrap();
        let again = password(
            live(&cluster, "v1", "Secret", Some(&ns), "db")
                .await
                .unwrap(),
        );
        assert_eq!(first, again, "[{}] the same generated password", env.tier);
        cleanup(&cluster, &ns, "shop").await;
        assert!(live(
            &cluster,
            "v1",
            "Secret",
            Some(&ns),
            "airlift-generated-shop"
        )
        .await
        .is_none_or(|s| s["metadata"]["deletionTimestamp"].is_string()));
    }
}

/// Observation 7: an upgrade of a release that is not installed is refused with no write at
/// all: no namespace, no generated secret, no record.
#[tokio::test(flavor = "multi_thread")]
async fn a_refused_upgrade_writes_nothing() {
    for env in envs() {
        let cluster = env.connect().await;
        let ns = unique("absent");
        let v1 = env.bundle(&ShopVersion::new("1.0.0"));
        let before = env.test.as_ref().map(|t| t.requests().len());
        let err = deploy(&env, &v1, &env.site("shop", Some(&ns)), Intent::Upgrade)
            .await
            .unwrap_err();
        assert!(
            matches!(err.lifecycle(), Some(LifecycleError::NotInstalled { .. })),
            "[{}] {err:?}",
            env.tier
        );
        assert!(live(&cluster, "v1", "Namespace", None, &ns).await.is_none());
        if let (Some(t), Some(before)) = (&env.test, before) {
            let writes: Vec<String> = t.requests()[before..]
                .iter()
                .filter(|r| r.method != "GET")
                .filter(|r| !r.path.contains("selfsubject") && !r.query.contains("dryRun"))
                .map(|r| format!("{} {}", r.method, r.path))
                .collect();
            assert!(writes.is_empty(), "writes: {writes:?}");
        }
    }
}

/// Observation 8: rollback reports exactly the objects it deleted.
#[tokio::test(flavor = "multi_thread")]
async fn rollback_reports_what_it_deleted() {
    for env in envs() {
        let cluster = env.connect().await;
        let ns = unique("rb");
        let v1 = env.bundle(&ShopVersion::new("1.0.0"));
        let mut two = ShopVersion::new("2.0.0");
        two.extra =
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: extra\ndata:\n  a: b\n".into();
        let v2 = env.bundle(&two);
        deploy(&env, &v1, &env.site("shop", Some(&ns)), Intent::Install)
            .await
            .unwrap();
        let up = deploy(&env, &v2, &env.site("shop", Some(&ns)), Intent::Upgrade)
            .await
            .unwrap();
        assert!(up.outcome.created.iter().any(|o| o.name == "extra"));
        let out = releases::rollback(&cluster, &NoProgress, &ns, "shop", None, &options(), false)
            .await
            .unwrap();
        let deleted: Vec<String> = out.deleted.iter().map(ToString::to_string).collect();
        assert_eq!(
            deleted,
            vec![format!("ConfigMap {ns}/extra")],
            "[{}]",
            env.tier
        );
        assert!(live(&cluster, "v1", "ConfigMap", Some(&ns), "extra")
            .await
            .is_none());
        cleanup(&cluster, &ns, "shop").await;
    }
}

/// Observation 9: status reads the cluster: ready/desired per workload, objects gone, fields
/// changed by hand.
#[tokio::test(flavor = "multi_thread")]
async fn status_reads_the_cluster() {
    for env in envs() {
        let cluster = env.connect().await;
        let ns = unique("live");
        let v1 = env.bundle(&ShopVersion::new("1.0.0"));
        deploy(&env, &v1, &env.site("shop", Some(&ns)), Intent::Install)
            .await
            .unwrap();
        let s = releases::status(&cluster, &NoProgress, &ns, "shop")
            .await
            .unwrap();
        let web = s.workloads.iter().find(|w| w.object.name == "web").unwrap();
        assert_eq!((web.ready, web.desired), (1, 1), "[{}]", env.tier);
        assert!(s.latest.operator.is_some(), "who ran it is recorded");

        let gvk = |v: &str, k: &str| {
            kube::api::ApiResource::from_gvk(&kube::api::GroupVersionKind::gvk(
                v.split('/')
                    .next()
                    .filter(|_| v.contains('/'))
                    .unwrap_or(""),
                v.rsplit('/').next().unwrap(),
                k,
            ))
        };
        let cms: Api<DynamicObject> =
            Api::namespaced_with(cluster.client().clone(), &ns, &gvk("v1", "ConfigMap"));
        cms.patch(
            "web-config",
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({"data": {"color": "purple"}})),
        )
        .await
        .unwrap();
        let deployments: Api<DynamicObject> =
            Api::namespaced_with(cluster.client().clone(), &ns, &gvk("apps/v1", "Deployment"));
        deployments
            .delete("web", &DeleteParams::default())
            .await
            .unwrap();
        let s = releases::status(&cluster, &NoProgress, &ns, "shop")
            .await
            .unwrap();
        assert!(
            s.missing.iter().any(|m| m.name == "web"),
            "[{}] {:?}",
            env.tier,
            s.missing
        );
        assert!(s.summary.contains("missing"), "{}", s.summary);
        let changed = s
            .changed
            .iter()
            .find(|c| c.object.name == "web-config")
            .unwrap();
        assert_eq!(changed.fields, vec!["/data/color".to_string()]);
        cleanup(&cluster, &ns, "shop").await;
    }
}

/// Preflight reports the cluster's, the registry's and ownership's failures together, once, and
/// changes nothing.
#[tokio::test(flavor = "multi_thread")]
async fn preflight_reports_every_failure_at_once() {
    use airlift_testkit::cluster::{ClusterOptions, TestCluster};
    let old = TestCluster::start(ClusterOptions::default().with_version("1.27.3")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let bundles = airlift_testkit::bundles::ShopBundles::new(dir.path()).unwrap();
    let bundle = bundles.write(&ShopVersion::new("1.0.0")).unwrap();
    let key = airlift_bundle::PublicKey::load(&bundles.public_key().unwrap()).unwrap();
    let cluster = airlift_cluster::Cluster::connect(&airlift_cluster::ConnectOptions {
        kubeconfig: Some(old.kubeconfig_path().to_path_buf()),
        context: None,
    })
    .await
    .unwrap();
    // A port nothing listens on.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let registry = format!("127.0.0.1:{port}");
    let site = airlift_deploy::SiteRequest {
        release: Some("shop".into()),
        registry: Some(registry.clone()),
        registry_options: airlift_registry::RegistryOptions::default().with_insecure(registry),
        ..Default::default()
    };
    let (b, _) =
        airlift_deploy::open_verified(&bundle, &airlift_bundle::Trust::Key(key), &NoProgress, true)
            .unwrap();
    let deployer = airlift_deploy::Deployer::new(
        &cluster,
        std::sync::Arc::new(NoProgress),
        &airlift_deploy::NonInteractive,
        Default::default(),
    );
    let prepared = deployer
        .prepare(std::sync::Arc::new(b), &site, Intent::Install)
        .await
        .unwrap();
    let before = old.requests().len();
    let err = deployer
        .deploy(&prepared, Intent::Install, &options(), false)
        .await
        .unwrap_err();
    assert_eq!(err.exit_kind(), ExitKind::Preflight);
    let DeployError::Preflight(failures) = &err else {
        panic!("{err:?}")
    };
    let areas: Vec<&str> = failures.iter().map(|f| f.area).collect();
    assert!(
        areas.contains(&"cluster") && areas.contains(&"registry"),
        "{failures:?}"
    );
    assert!(err.to_string().contains("1.27.3"), "{err}");
    let writes = old.requests()[before..]
        .iter()
        .filter(|r| {
            r.method != "GET" && !r.path.contains("selfsubject") && !r.query.contains("dryRun")
        })
        .count();
    assert_eq!(writes, 0, "nothing changed");
}

/// An object that exists without Airlift's ownership is a conflict; `--adopt` takes it over and
/// the revision records that.
#[tokio::test(flavor = "multi_thread")]
async fn adopting_takes_over_foreign_objects_and_records_it() {
    for env in envs() {
        let cluster = env.connect().await;
        let ns = unique("adopt");
        let resolver = airlift_cluster::resolve::Resolver::new(cluster.client().clone());
        let put = |v: serde_json::Value| {
            let resolver = &resolver;
            async move {
                airlift_cluster::apply::apply_one(resolver, &v, false)
                    .await
                    .unwrap();
            }
        };
        put(serde_json::json!({"apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": ns}}))
        .await;
        put(serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "web-config", "namespace": ns}, "data": {"hand": "made"}}))
        .await;
        let v1 = env.bundle(&ShopVersion::new("1.0.0"));
        let err = deploy(&env, &v1, &env.site("shop", Some(&ns)), Intent::Install)
            .await
            .unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains(&format!(
                "ConfigMap {ns}/web-config exists and is not managed by Airlift"
            )),
            "[{}] {text}",
            env.tier
        );
        assert!(text.contains(&format!("Namespace {ns} exists")), "{text}");

        let site = env.site("shop", Some(&ns));
        let mut opts = options();
        opts.adopt = true;
        let report = common::deploy_with(
            &env,
            &v1,
            &site,
            Intent::Install,
            &opts,
            std::sync::Arc::new(NoProgress),
            Default::default(),
        )
        .await
        .unwrap();
        let adopted: Vec<&str> = report
            .outcome
            .adopted
            .iter()
            .map(|a| a.object.as_str())
            .collect();
        assert!(
            adopted.contains(&format!("ConfigMap {ns}/web-config").as_str()),
            "{adopted:?}"
        );
        let cm = live(&cluster, "v1", "ConfigMap", Some(&ns), "web-config")
            .await
            .unwrap();
        assert_eq!(
            cm["metadata"]["annotations"]["airlift.dev/owned-by"],
            format!("{ns}/shop")
        );
        let s = releases::status(&cluster, &NoProgress, &ns, "shop")
            .await
            .unwrap();
        assert!(
            s.latest.description.contains("adopted"),
            "{}",
            s.latest.description
        );
        cleanup(&cluster, &ns, "shop").await;
    }
}
