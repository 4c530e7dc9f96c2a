//! Failed upgrades rolled back automatically (or not, on request), manual rollbacks, and the
//! reasons readiness gives for workloads that never become ready, against
//! the test cluster (and a real cluster when `AIRLIFT_E2E_KUBECONFIG` is set).

mod common;

use airlift_bundle::NoProgress;
use airlift_cluster::lifecycle::{DeployFailure, Engine, LifecycleError};
use airlift_cluster::readiness::ReadinessError;
use airlift_cluster::release::ReleaseStatus;
use airlift_testkit::cluster::ClusterOptions;
use base64::Engine as _;
use common::*;
use serde_json::json;

#[tokio::test(flavor = "multi_thread")]
async fn failed_upgrade_rolls_back_and_the_old_version_keeps_running() {
    for env in envs(ClusterOptions::default()) {
        env.break_images();
        let cluster = env.connect().await;
        let engine = Engine::new(&cluster, &NoProgress);
        let ns = unique("rb");
        let engine = engine.redacting_values(["pw-old".to_string(), "pw-new".to_string()]);
        let v1 = demo(&ns, "1.0.0", 1, GOOD_IMAGE_V1, "pw-old");
        engine.install(&v1, &options()).await.unwrap();
        let before = live(&cluster, "apps/v1", "Deployment", Some(&ns), "web")
            .await
            .unwrap();

        let mut objects = demo_objects(&ns, 2, BROKEN_IMAGE, "pw-new");
        objects.push(
            airlift_cluster::ManagedObject::new(
                "web",
                2,
                0,
                json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "extra"},
                       "data": {"new": "yes"}}),
            )
            .unwrap(),
        );
        let v2 = demo_request("demo", &ns, "2.0.0", objects);
        let err = engine
            .upgrade(&v2, &env.failing_options())
            .await
            .unwrap_err();
        let LifecycleError::RolledBack { running, cause, .. } = &err else {
            panic!(
                "[{}] expected a rollback, got {err}: {}",
                env.tier,
                err.hint()
            );
        };
        assert_eq!(*running, 1);
        let DeployFailure::Readiness(ReadinessError::NotReady { not_ready, .. }) = cause else {
            panic!("[{}] expected a readiness failure, got {cause}", env.tier);
        };
        assert_eq!(not_ready[0].object.name, "web");
        let reasons = not_ready[0].reasons.join("; ");
        assert!(
            reasons.contains(&format!("on image {BROKEN_IMAGE}")),
            "[{}] reasons must name the image: {reasons}",
            env.tier
        );
        assert!(err.to_string().contains("rolled back"), "{err}");

        // The old version runs, unchanged.
        let after = live(&cluster, "apps/v1", "Deployment", Some(&ns), "web")
            .await
            .unwrap();
        assert_eq!(image_of(&after), GOOD_IMAGE_V1);
        assert!(ready(&after), "[{}] {after}", env.tier);
        assert_eq!(
            after["spec"], before["spec"],
            "[{}] spec restored exactly",
            env.tier
        );
        assert!(live(&cluster, "v1", "ConfigMap", Some(&ns), "legacy")
            .await
            .is_some());
        assert!(live(&cluster, "v1", "ConfigMap", Some(&ns), "extra")
            .await
            .is_none());
        let secret = live(&cluster, "v1", "Secret", Some(&ns), "web-secret")
            .await
            .unwrap();
        let pw = base64::engine::general_purpose::STANDARD
            .decode(secret["data"]["password"].as_str().unwrap())
            .unwrap();
        assert_eq!(
            pw, b"pw-old",
            "[{}] the old Secret value is restored",
            env.tier
        );
        let cm = live(&cluster, "v1", "ConfigMap", Some(&ns), "web-config")
            .await
            .unwrap();
        assert_eq!(cm["data"]["version"], "1");

        let history = engine.status(&ns, "demo").await.unwrap();
        let states: Vec<(u32, ReleaseStatus)> =
            history.iter().map(|r| (r.revision, r.status)).collect();
        assert_eq!(
            states,
            [(1, ReleaseStatus::Deployed), (2, ReleaseStatus::Failed)]
        );

        // Once fixed, the upgrade goes through and cleans up the failed attempt's leftovers.
        let v2_fixed = demo(&ns, "2.0.0", 2, GOOD_IMAGE_V2, "pw-new");
        let out = engine.upgrade(&v2_fixed, &options()).await.unwrap();
        assert_eq!(out.revision, 3);
        cleanup(&cluster, &ns, "demo").await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn failed_upgrade_without_rollback_stays_failed() {
    for env in envs(ClusterOptions::default()) {
        env.break_images();
        let cluster = env.connect().await;
        let engine = Engine::new(&cluster, &NoProgress);
        let ns = unique("norb");
        let v1 = demo(&ns, "1.0.0", 1, GOOD_IMAGE_V1, "pw");
        engine.install(&v1, &options()).await.unwrap();
        let v2 = demo(&ns, "2.0.0", 2, BROKEN_IMAGE, "pw");
        let mut opts = env.failing_options();
        opts.no_rollback = true;
        let err = engine.upgrade(&v2, &opts).await.unwrap_err();
        assert!(
            matches!(err, LifecycleError::Failed { revision: 2, .. }),
            "{err}"
        );
        let deploy = live(&cluster, "apps/v1", "Deployment", Some(&ns), "web")
            .await
            .unwrap();
        assert_eq!(image_of(&deploy), BROKEN_IMAGE);
        cleanup(&cluster, &ns, "demo").await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn manual_rollback_returns_to_an_earlier_revision() {
    for env in envs(ClusterOptions::default()) {
        let cluster = env.connect().await;
        let engine = Engine::new(&cluster, &NoProgress);
        let ns = unique("mrb");
        let v1 = demo(&ns, "1.0.0", 1, GOOD_IMAGE_V1, "pw");
        let v2 = demo(&ns, "2.0.0", 2, GOOD_IMAGE_V2, "pw");
        engine.install(&v1, &options()).await.unwrap();
        engine.upgrade(&v2, &options()).await.unwrap();
        assert!(live(&cluster, "v1", "ConfigMap", Some(&ns), "legacy")
            .await
            .is_none());

        let out = engine
            .rollback(&ns, "demo", None, &options())
            .await
            .unwrap();
        assert_eq!(out.revision, 3);
        let deploy = live(&cluster, "apps/v1", "Deployment", Some(&ns), "web")
            .await
            .unwrap();
        assert_eq!(image_of(&deploy), GOOD_IMAGE_V1);
        assert!(ready(&deploy), "[{}] {deploy}", env.tier);
        assert!(live(&cluster, "v1", "ConfigMap", Some(&ns), "legacy")
            .await
            .is_some());
        let secret = live(&cluster, "v1", "Secret", Some(&ns), "web-secret")
            .await
            .unwrap();
        assert!(
            secret["data"]["password"].is_string(),
            "Secret data kept on rollback"
        );

        let history = engine.status(&ns, "demo").await.unwrap();
        let states: Vec<(u32, ReleaseStatus, String)> = history
            .iter()
            .map(|r| (r.revision, r.status, r.bundle.version.clone()))
            .collect();
        assert_eq!(
            states,
            [
                (1, ReleaseStatus::Superseded, "1.0.0".into()),
                (2, ReleaseStatus::RolledBack, "2.0.0".into()),
                (3, ReleaseStatus::Deployed, "1.0.0".into()),
            ]
        );
        assert_eq!(history[2].description, "rollback to 1");

        // Rolling back to revision 2 explicitly works too.
        engine
            .rollback(&ns, "demo", Some(2), &options())
            .await
            .unwrap();
        let deploy = live(&cluster, "apps/v1", "Deployment", Some(&ns), "web")
            .await
            .unwrap();
        assert_eq!(image_of(&deploy), GOOD_IMAGE_V2);
        cleanup(&cluster, &ns, "demo").await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn readiness_names_crash_loops_and_unschedulable_pods() {
    for env in envs(ClusterOptions::default()) {
        if let Some(t) = &env.test {
            t.fail_workload(
                "crash",
                airlift_testkit::cluster::FailureMode::CrashLoopBackOff,
            );
            t.fail_workload(
                "pending",
                airlift_testkit::cluster::FailureMode::Unschedulable,
            );
        }
        let cluster = env.connect().await;
        let engine = Engine::new(&cluster, &NoProgress);
        let ns = unique("why");
        let deployment = |name: &str, extra: serde_json::Value| {
            let mut spec = json!({"containers": [{"name": name,
                "image": "registry.k8s.io/e2e-test-images/busybox:1.36.1-1",
                "command": ["false"]}]});
            if let (Some(spec), Some(extra)) = (spec.as_object_mut(), extra.as_object()) {
                spec.extend(extra.clone());
            }
            airlift_cluster::ManagedObject::new(
                "app",
                1,
                0,
                json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
                    "spec": {"replicas": 1, "selector": {"matchLabels": {"app": name}},
                        "template": {"metadata": {"labels": {"app": name}}, "spec": spec}}}),
            )
            .unwrap()
        };
        let objects = vec![
            airlift_cluster::ManagedObject::new(
                "app",
                0,
                0,
                json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}),
            )
            .unwrap(),
            // Exits at once: the kubelet restarts it into CrashLoopBackOff.
            deployment("crash", json!({})),
            // No node has this label: the scheduler reports Unschedulable.
            deployment(
                "pending",
                json!({"nodeSelector": {"airlift.dev/no-such-node": "true"}}),
            ),
        ];
        let opts = env.failing_options();
        let err = engine
            .install(&demo_request("why", &ns, "1.0.0", objects), &opts)
            .await
            .unwrap_err();
        let LifecycleError::Failed {
            cause: DeployFailure::Readiness(ReadinessError::NotReady { not_ready, .. }),
            ..
        } = &err
        else {
            panic!("[{}] expected a readiness failure, got {err}", env.tier);
        };
        let reasons = |name: &str| {
            not_ready
                .iter()
                .find(|n| n.object.name == name)
                .map(|n| n.reasons.join("; "))
                .unwrap_or_else(|| panic!("[{}] {name} not reported: {not_ready:?}", env.tier))
        };
        let crash = reasons("crash");
        assert!(
            crash.contains("CrashLoopBackOff in container crash"),
            "[{}] {crash}",
            env.tier
        );
        let pending = reasons("pending");
        assert!(
            pending.contains("Unschedulable"),
            "[{}] {pending}",
            env.tier
        );
        assert!(
            err.hint().contains("crashing") || err.hint().contains("scheduled"),
            "{}",
            err.hint()
        );
        cleanup(&cluster, &ns, "why").await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_interrupted_upgrade_is_cleaned_up_by_the_next_one() {
    use airlift_cluster::release::{now, Release, ReleaseStore};
    for env in envs(ClusterOptions::default()) {
        let cluster = env.connect().await;
        let engine = Engine::new(&cluster, &NoProgress);
        let ns = unique("intr");
        let v1 = demo(&ns, "1.0.0", 1, GOOD_IMAGE_V1, "pw");
        engine.install(&v1, &options()).await.unwrap();
        // What an upgrade killed mid-apply leaves: its pending record, and an object it created
        // (stamped with the release's ownership, as the engine stamps everything it applies).
        let mut orphan = json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "orphan", "namespace": ns}, "data": {"a": "b"}});
        airlift_cluster::ownership::stamp_value(
            &mut orphan,
            &airlift_cluster::ownership::Owner::new(&ns, "demo"),
        );
        airlift_cluster::apply::apply_one(engine.resolver(), &orphan, false)
            .await
            .unwrap();
        let store = ReleaseStore::new(cluster.client().clone(), &ns, "demo");
        let mut pending: Release = store.get(1).await.unwrap();
        pending.revision = 2;
        pending.status = ReleaseStatus::Pending;
        pending.description = "upgrade in progress".into();
        pending.time = now();
        pending
            .inventory
            .push(airlift_cluster::object::object_ref(&orphan).unwrap());
        store.write(&pending).await.unwrap();

        let v2 = demo(&ns, "2.0.0", 2, GOOD_IMAGE_V2, "pw");
        let out = engine.upgrade(&v2, &options()).await.unwrap();
        assert_eq!(out.revision, 3);
        assert!(
            out.deleted.iter().any(|o| o.name == "orphan"),
            "[{}] {:?}",
            env.tier,
            out.deleted
        );
        assert!(live(&cluster, "v1", "ConfigMap", Some(&ns), "orphan")
            .await
            .is_none());
        let history = engine.status(&ns, "demo").await.unwrap();
        let states: Vec<(u32, ReleaseStatus)> =
            history.iter().map(|r| (r.revision, r.status)).collect();
        assert_eq!(
            states,
            [
                (1, ReleaseStatus::Superseded),
                (2, ReleaseStatus::Failed),
                (3, ReleaseStatus::Deployed)
            ]
        );
        assert!(history[1].description.ends_with("(its process stopped)"));
        cleanup(&cluster, &ns, "demo").await;
    }
}
