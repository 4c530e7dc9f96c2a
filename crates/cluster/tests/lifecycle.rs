//! Install, re-install, upgrade with pruning, uninstall, CRDs, Jobs, generated values and release
//! records (rollbacks are in `rollback.rs`), against the test cluster (and a real cluster
//! when `AIRLIFT_E2E_KUBECONFIG` is set).

mod common;

use airlift_bundle::NoProgress;
use airlift_cluster::lifecycle::{Engine, LifecycleError};
use airlift_cluster::release::{ReleaseStatus, RELEASE_SECRET_TYPE};
use airlift_testkit::cluster::ClusterOptions;
use base64::Engine as _;
use common::*;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, ListParams};
use serde_json::json;

#[tokio::test(flavor = "multi_thread")]
async fn install_then_idempotent_reinstall() {
    for env in envs(ClusterOptions::default()) {
        let cluster = env.connect().await;
        let engine = Engine::new(&cluster, &NoProgress);
        let ns = unique("idem");
        let req = demo(&ns, "1.0.0", 1, GOOD_IMAGE_V1, "pw-1");

        let first = engine.install(&req, &options()).await.unwrap();
        assert_eq!(
            (first.revision, first.recorded),
            (1, true),
            "[{}]",
            env.tier
        );
        let deploy = live(&cluster, "apps/v1", "Deployment", Some(&ns), "web")
            .await
            .unwrap();
        assert!(
            ready(&deploy),
            "[{}] deployment not ready: {deploy}",
            env.tier
        );
        let labels = &deploy["metadata"]["labels"];
        assert_eq!(labels["app.kubernetes.io/managed-by"], "airlift");
        assert_eq!(labels["airlift.dev/release"], "demo");
        assert_eq!(labels["airlift.dev/component"], "web");
        let managers: Vec<String> = deploy["metadata"]["managedFields"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|m| m["operation"] == "Apply")
            .map(|m| m["manager"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(
            managers,
            ["airlift"],
            "[{}] server-side apply by `airlift`",
            env.tier
        );
        let cm_before = live(&cluster, "v1", "ConfigMap", Some(&ns), "web-config")
            .await
            .unwrap();

        let again = engine.install(&req, &options()).await.unwrap();
        assert_eq!(
            (again.revision, again.recorded),
            (1, false),
            "[{}]",
            env.tier
        );
        assert!(again.deleted.is_empty());
        // Nothing changed: the Deployment's spec generation stays (no new rollout), and the
        // ConfigMap is the same object with the same content. (A real apiserver also keeps the
        // resourceVersion on a no-op apply; the test cluster bumps it, so it is not compared.)
        let deploy_after = live(&cluster, "apps/v1", "Deployment", Some(&ns), "web")
            .await
            .unwrap();
        assert_eq!(
            deploy["metadata"]["generation"], deploy_after["metadata"]["generation"],
            "[{}] an identical re-apply must not start a rollout",
            env.tier
        );
        let cm_after = live(&cluster, "v1", "ConfigMap", Some(&ns), "web-config")
            .await
            .unwrap();
        for field in ["uid", "labels", "creationTimestamp"] {
            assert_eq!(
                cm_before["metadata"][field], cm_after["metadata"][field],
                "[{}] {field}",
                env.tier
            );
        }
        assert_eq!(cm_before["data"], cm_after["data"]);
        let history = engine.status(&ns, "demo").await.unwrap();
        assert_eq!(history.len(), 1);
        assert_eq!(history[0].status, ReleaseStatus::Deployed);

        // A different bundle is refused by install.
        let other = demo(&ns, "2.0.0", 2, GOOD_IMAGE_V2, "pw-1");
        let err = engine.install(&other, &options()).await.unwrap_err();
        assert!(
            matches!(err, LifecycleError::AlreadyInstalled { .. }),
            "{err}"
        );
        assert!(err.hint().contains("upgrade"), "{}", err.hint());
        cleanup(&cluster, &ns, "demo").await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn upgrade_prunes_what_the_new_version_dropped() {
    for env in envs(ClusterOptions::default()) {
        let cluster = env.connect().await;
        let engine = Engine::new(&cluster, &NoProgress);
        let ns = unique("upg");
        let v1 = demo(&ns, "1.0.0", 1, GOOD_IMAGE_V1, "pw-1");
        engine.install(&v1, &options()).await.unwrap();
        assert!(live(&cluster, "v1", "ConfigMap", Some(&ns), "legacy")
            .await
            .is_some());

        let mut v2 = demo(&ns, "2.0.0", 2, GOOD_IMAGE_V2, "pw-1");
        v2.config.insert("web.tls".into(), json!(true));
        let plan = engine.plan(&v2).await.unwrap();
        assert_eq!(
            plan.config.added,
            ["web.tls"],
            "[{}] plan: {plan}",
            env.tier
        );
        assert!(plan.config.removed.is_empty() && plan.config.changed.is_empty());
        let deletes: Vec<String> = plan.delete.iter().map(|o| o.name.clone()).collect();
        assert_eq!(deletes, ["legacy"], "[{}] plan: {plan}", env.tier);
        assert!(
            plan.change.iter().any(|c| c.object.name == "web"
                && c.object.kind == "Deployment"
                && c.fields.iter().any(|f| f.contains("image"))),
            "[{}] plan: {plan}",
            env.tier
        );
        assert!(
            plan.images
                .iter()
                .any(|i| i.from.as_deref() == Some(GOOD_IMAGE_V1) && i.to == GOOD_IMAGE_V2),
            "[{}] plan: {plan}",
            env.tier
        );
        assert!(plan.create.is_empty(), "[{}] plan: {plan}", env.tier);
        // Planning changed nothing.
        let deploy = live(&cluster, "apps/v1", "Deployment", Some(&ns), "web")
            .await
            .unwrap();
        assert_eq!(image_of(&deploy), GOOD_IMAGE_V1);

        let out = engine.upgrade(&v2, &options()).await.unwrap();
        assert_eq!(out.revision, 2);
        assert_eq!(
            out.deleted
                .iter()
                .map(|o| o.name.as_str())
                .collect::<Vec<_>>(),
            ["legacy"]
        );
        assert!(live(&cluster, "v1", "ConfigMap", Some(&ns), "legacy")
            .await
            .is_none());
        let deploy = live(&cluster, "apps/v1", "Deployment", Some(&ns), "web")
            .await
            .unwrap();
        assert_eq!(image_of(&deploy), GOOD_IMAGE_V2);
        assert!(ready(&deploy), "[{}] {deploy}", env.tier);
        let history = engine.status(&ns, "demo").await.unwrap();
        let states: Vec<(u32, ReleaseStatus)> =
            history.iter().map(|r| (r.revision, r.status)).collect();
        assert_eq!(
            states,
            [(1, ReleaseStatus::Superseded), (2, ReleaseStatus::Deployed)]
        );
        assert_eq!(history[1].description, "upgrade from 1.0.0");

        // Downgrades are refused unless forced.
        let err = engine.upgrade(&v1, &options()).await.unwrap_err();
        assert!(matches!(err, LifecycleError::Downgrade { .. }), "{err}");
        cleanup(&cluster, &ns, "demo").await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn uninstall_keeps_pvcs_unless_asked() {
    for env in envs(ClusterOptions::default()) {
        let cluster = env.connect().await;
        let engine = Engine::new(&cluster, &NoProgress);
        let ns = unique("unin");
        let v1 = demo(&ns, "1.0.0", 1, GOOD_IMAGE_V1, "pw");
        engine.install(&v1, &options()).await.unwrap();

        let out = engine.uninstall(&ns, "demo", false).await.unwrap();
        let kept: Vec<String> = out
            .kept
            .iter()
            .map(|o| format!("{}/{}", o.object.kind, o.object.name))
            .collect();
        assert_eq!(
            kept,
            [
                "PersistentVolumeClaim/data".to_string(),
                format!("Namespace/{ns}")
            ]
        );
        assert!(live(&cluster, "apps/v1", "Deployment", Some(&ns), "web")
            .await
            .is_none());
        assert!(live(&cluster, "v1", "Service", Some(&ns), "web")
            .await
            .is_none());
        assert!(
            live(&cluster, "v1", "PersistentVolumeClaim", Some(&ns), "data")
                .await
                .is_some()
        );
        assert!(live(&cluster, "v1", "Namespace", None, &ns).await.is_some());
        assert!(
            engine.status(&ns, "demo").await.unwrap().is_empty(),
            "records removed"
        );
        let err = engine.uninstall(&ns, "demo", false).await.unwrap_err();
        assert!(matches!(err, LifecycleError::NotInstalled { .. }), "{err}");

        // Re-install over the kept data, then uninstall with the data.
        engine.install(&v1, &options()).await.unwrap();
        let out = engine.uninstall(&ns, "demo", true).await.unwrap();
        assert!(out.kept.is_empty(), "{:?}", out.kept);
        assert!(out
            .deleted
            .iter()
            .any(|o| o.kind == "PersistentVolumeClaim"));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn crd_then_its_custom_resource() {
    for env in envs(ClusterOptions::default()) {
        let cluster = env.connect().await;
        let engine = Engine::new(&cluster, &NoProgress);
        let ns = unique("crd");
        let group = format!("{ns}.airlift.dev");
        let mk = |component: &str, order, v| {
            airlift_cluster::ManagedObject::new(component, order, 0, v).unwrap()
        };
        // The custom resource comes first in the rendered output: ordering must fix that.
        let objects = vec![
            mk(
                "app",
                2,
                json!({"apiVersion": format!("{group}/v1"), "kind": "Widget",
                "metadata": {"name": "w1"}, "spec": {"size": 3}}),
            ),
            mk(
                "app",
                2,
                json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}),
            ),
            mk(
                "crds",
                1,
                json!({
                "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
                "metadata": {"name": format!("widgets.{group}")},
                "spec": {"group": group, "scope": "Namespaced",
                    "names": {"plural": "widgets", "singular": "widget", "kind": "Widget", "listKind": "WidgetList"},
                    "versions": [{"name": "v1", "served": true, "storage": true,
                        "schema": {"openAPIV3Schema": {"type": "object",
                            "x-kubernetes-preserve-unknown-fields": true}}}]}}),
            ),
        ];
        let req = demo_request("widgets", &ns, "1.0.0", objects);
        let out = engine.install(&req, &options()).await.unwrap();
        assert_eq!(out.revision, 1);
        let w = live(&cluster, &format!("{group}/v1"), "Widget", Some(&ns), "w1")
            .await
            .unwrap();
        assert_eq!(w["spec"]["size"], 3);
        assert_eq!(w["metadata"]["labels"]["airlift.dev/component"], "app");
        let record = &engine.status(&ns, "widgets").await.unwrap()[0];
        let kinds: Vec<&str> = record.inventory.iter().map(|o| o.kind.as_str()).collect();
        assert_eq!(kinds, ["CustomResourceDefinition", "Namespace", "Widget"]);
        // uninstall with data removes the CRD too.
        let out = engine.uninstall(&ns, "widgets", true).await.unwrap();
        assert!(out
            .deleted
            .iter()
            .any(|o| o.kind == "CustomResourceDefinition"));
    }
}

/// Keeps every progress message.
#[derive(Default)]
struct Recorder(std::sync::Mutex<Vec<String>>);

impl airlift_bundle::Progress for Recorder {
    fn start(&self, label: &str, _: Option<u64>) {
        self.message(label);
    }
    fn advance(&self, _: &str, _: u64) {}
    fn finish(&self, _: &str) {}
    fn message(&self, msg: &str) {
        self.0.lock().expect("recorder lock").push(msg.to_string());
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn secrets_never_reach_release_records() {
    const PASSWORD: &str = "s3cr3t-Passw0rd-never-recorded";
    for env in envs(ClusterOptions::default()) {
        let cluster = env.connect().await;
        let recorder = Recorder::default();
        let engine = Engine::new(&cluster, &recorder);
        let ns = unique("sec");
        let engine = engine.redacting_values([PASSWORD.to_string()]);
        let mut req = demo(&ns, "1.0.0", 1, GOOD_IMAGE_V1, PASSWORD);
        let fingerprint = airlift_bundle::Digest::of_bytes(PASSWORD.as_bytes()).to_string();
        req.config.insert("web.password".into(), json!(fingerprint));
        engine.install(&req, &options()).await.unwrap();

        let secrets: Api<Secret> = Api::namespaced(cluster.client().clone(), &ns);
        let records: Vec<Secret> = secrets
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .into_iter()
            .filter(|s| s.type_.as_deref() == Some(RELEASE_SECRET_TYPE))
            .collect();
        assert_eq!(records.len(), 1, "[{}] one record per revision", env.tier);
        assert_eq!(
            records[0].metadata.name.as_deref(),
            Some("airlift-release-demo-v1")
        );
        let body =
            String::from_utf8(records[0].data.as_ref().unwrap()["release"].0.clone()).unwrap();
        let b64 = base64::engine::general_purpose::STANDARD.encode(PASSWORD);
        assert!(
            !body.contains(PASSWORD),
            "[{}] password in clear in the record",
            env.tier
        );
        assert!(
            !body.contains(&b64),
            "[{}] password in base64 in the record",
            env.tier
        );
        assert!(
            body.contains(&fingerprint),
            "the hashed configuration is recorded"
        );
        assert!(body.contains("\"redactedKeys\":[\"password\"]"), "{body}");
        assert!(
            body.contains("/spec/template/spec/containers/0/env/0/value"),
            "the env var holding the password is scrubbed: {body}"
        );
        let deploy = live(&cluster, "apps/v1", "Deployment", Some(&ns), "web")
            .await
            .unwrap();
        assert_eq!(
            deploy["spec"]["template"]["spec"]["containers"][0]["env"][0]["value"], PASSWORD,
            "the cluster gets the real value"
        );
        // The applied Secret itself does hold the value.
        let live_secret = live(&cluster, "v1", "Secret", Some(&ns), "web-secret")
            .await
            .unwrap();
        assert_eq!(live_secret["data"]["password"], b64);
        let messages = recorder.0.lock().unwrap().join("\n");
        assert!(messages.contains("applied Secret"), "{messages}");
        // The checks are announced before the first object is applied (bench/apply.sh times
        // the apply phase from this line).
        let checking = messages.find(" objects against the cluster (read, dry-run apply)");
        assert!(
            checking.is_some_and(|c| messages.find("applied ").is_some_and(|a| c < a)),
            "{messages}"
        );
        assert!(
            !messages.contains(PASSWORD) && !messages.contains(&b64),
            "{messages}"
        );
        cleanup(&cluster, &ns, "demo").await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn failed_install_names_the_image_and_records_the_failure() {
    for env in envs(ClusterOptions::default()) {
        env.break_images();
        let cluster = env.connect().await;
        let engine = Engine::new(&cluster, &NoProgress);
        let ns = unique("bad");
        let req = demo(&ns, "1.0.0", 1, BROKEN_IMAGE, "pw");
        let err = engine
            .install(&req, &env.failing_options())
            .await
            .unwrap_err();
        let text = format!(
            "{err}: {}",
            std::error::Error::source(&err)
                .map(ToString::to_string)
                .unwrap_or_default()
        );
        assert!(
            matches!(err, LifecycleError::Failed { revision: 1, .. }),
            "{text}"
        );
        assert!(text.contains("Deployment.apps"), "{text}");
        assert!(text.contains(BROKEN_IMAGE), "{text}");
        assert!(
            err.hint().contains("image could not be pulled"),
            "{}",
            err.hint()
        );
        let history = engine.status(&ns, "demo").await.unwrap();
        assert_eq!(history[0].status, ReleaseStatus::Failed);
        cleanup(&cluster, &ns, "demo").await;
        assert!(live(&cluster, "apps/v1", "Deployment", Some(&ns), "web")
            .await
            .is_none());
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn generated_values_survive_upgrades_and_data_keeping_uninstalls() {
    for env in envs(ClusterOptions::default()) {
        let cluster = env.connect().await;
        let engine = Engine::new(&cluster, &NoProgress);
        let ns = unique("gen");
        use airlift_cluster::generated;
        assert!(generated::load(&cluster, &ns, "demo")
            .await
            .unwrap()
            .is_empty());
        let first: std::collections::BTreeMap<String, String> =
            [("db.password".to_string(), "generated-Value-1".to_string())].into();
        generated::store(&cluster, &ns, "demo", &first)
            .await
            .unwrap();
        // A later store adds keys and keeps the others.
        let second = [("api.token".to_string(), "generated-Value-2".to_string())].into();
        generated::store(&cluster, &ns, "demo", &second)
            .await
            .unwrap();
        let all = generated::load(&cluster, &ns, "demo").await.unwrap();
        assert_eq!(all.len(), 2);
        assert_eq!(all["db.password"], "generated-Value-1");

        let v1 = demo(&ns, "1.0.0", 1, GOOD_IMAGE_V1, "pw");
        engine.install(&v1, &options()).await.unwrap();
        let v2 = demo(&ns, "2.0.0", 2, GOOD_IMAGE_V2, "pw");
        engine.upgrade(&v2, &options()).await.unwrap();
        assert_eq!(generated::load(&cluster, &ns, "demo").await.unwrap(), all);
        engine.uninstall(&ns, "demo", false).await.unwrap();
        assert_eq!(
            generated::load(&cluster, &ns, "demo").await.unwrap(),
            all,
            "[{}] kept with the data",
            env.tier
        );
        engine.install(&v1, &options()).await.unwrap();
        engine.uninstall(&ns, "demo", true).await.unwrap();
        generated::delete(&cluster, &ns, "demo").await.unwrap();
        assert!(generated::load(&cluster, &ns, "demo")
            .await
            .unwrap()
            .is_empty());
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn upgrade_changes_a_completed_jobs_template() {
    // A real apiserver refuses a new pod template on an existing Job (immutable): the engine
    // replaces the Job. The test cluster accepts the change in place (and keeps the completed
    // status), so only the real tier exercises the replacement.
    const JOB_V1: &str = "registry.k8s.io/e2e-test-images/busybox:1.36.1-1";
    const JOB_V2: &str = "registry.k8s.io/e2e-test-images/busybox:1.37.0-1";
    for env in envs(ClusterOptions::default()) {
        let cluster = env.connect().await;
        let engine = Engine::new(&cluster, &NoProgress);
        let ns = unique("job");
        let job = |image: &str| {
            airlift_cluster::ManagedObject::new(
                "migrate",
                1,
                0,
                json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "migrate"},
                       "spec": {"backoffLimit": 1, "template": {"spec": {
                           "restartPolicy": "Never",
                           "containers": [{"name": "m", "image": image, "command": ["true"]}]}}}}),
            )
            .unwrap()
        };
        let mut v1 = demo_objects(&ns, 1, GOOD_IMAGE_V1, "pw");
        v1.push(job(JOB_V1));
        engine
            .install(&demo_request("demo", &ns, "1.0.0", v1), &options())
            .await
            .unwrap();
        let mut v2 = demo_objects(&ns, 2, GOOD_IMAGE_V2, "pw");
        v2.push(job(JOB_V2));
        engine
            .upgrade(&demo_request("demo", &ns, "2.0.0", v2), &options())
            .await
            .unwrap_or_else(|e| panic!("[{}] {e}: {}", env.tier, e.hint()));
        let live_job = live(&cluster, "batch/v1", "Job", Some(&ns), "migrate")
            .await
            .unwrap();
        assert_eq!(image_of(&live_job), JOB_V2, "[{}]", env.tier);
        let complete = live_job["status"]["conditions"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|c| c["type"] == "Complete" && c["status"] == "True");
        assert!(complete, "[{}] the new Job ran: {live_job}", env.tier);
        cleanup(&cluster, &ns, "demo").await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn history_is_kept_to_its_depth() {
    for env in envs(ClusterOptions::default()) {
        let cluster = env.connect().await;
        let engine = Engine::new(&cluster, &NoProgress);
        let ns = unique("hist");
        let mut opts = options();
        opts.history = 2;
        for (i, version) in ["1.0.0", "1.1.0", "1.2.0"].iter().enumerate() {
            let req = demo(&ns, version, 2, GOOD_IMAGE_V1, "pw");
            if i == 0 {
                engine.install(&req, &opts).await.unwrap();
            } else {
                engine.upgrade(&req, &opts).await.unwrap();
            }
        }
        let revisions: Vec<(u32, ReleaseStatus)> = engine
            .status(&ns, "demo")
            .await
            .unwrap()
            .iter()
            .map(|r| (r.revision, r.status))
            .collect();
        assert_eq!(
            revisions,
            [(2, ReleaseStatus::Superseded), (3, ReleaseStatus::Deployed)],
            "[{}]",
            env.tier
        );
        cleanup(&cluster, &ns, "demo").await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn install_right_after_an_uninstall_waits_for_the_namespace_to_go() {
    // The namespace controller takes its time (2 s here; seconds on a real cluster): until then
    // the namespace refuses new objects, and the install must wait, not fail.
    let options_2s = ClusterOptions::default().with_ready_delay(std::time::Duration::from_secs(2));
    for env in envs(options_2s) {
        let cluster = env.connect().await;
        let engine = Engine::new(&cluster, &NoProgress);
        let ns = unique("again");
        let v1 = demo(&ns, "1.0.0", 1, GOOD_IMAGE_V1, "pw");
        engine.install(&v1, &options()).await.unwrap();
        let out = engine.uninstall(&ns, "demo", true).await.unwrap();
        assert!(
            out.deleted.iter().any(|o| o.kind == "Namespace"),
            "[{}] {:?}",
            env.tier,
            out.deleted
        );
        if env.test.is_some() {
            let deleting = namespace_deleting(&cluster, &ns).await;
            assert_eq!(deleting, Some(true), "the namespace is still terminating");
        }

        let report = engine.install(&v1, &options()).await.unwrap();
        assert_eq!(report.revision, 1, "[{}]", env.tier);
        let deleting = namespace_deleting(&cluster, &ns).await;
        assert_eq!(deleting, Some(false), "[{}]", env.tier);
        assert!(live(&cluster, "apps/v1", "Deployment", Some(&ns), "web")
            .await
            .is_some());
        cleanup(&cluster, &ns, "demo").await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn install_into_a_namespace_being_deleted_waits_and_starts_afresh() {
    // `kubectl delete namespace` with a release in it: until the namespace controller is done
    // (2 s here), the release's records and objects are still there, going. An install then
    // must not read them as a release to upgrade, nor check objects against them: it waits,
    // and installs revision 1 into a new namespace.
    let options_2s = ClusterOptions::default().with_ready_delay(std::time::Duration::from_secs(2));
    for env in envs(options_2s) {
        let cluster = env.connect().await;
        let engine = Engine::new(&cluster, &NoProgress);
        let ns = unique("gone");
        let v1 = demo(&ns, "1.0.0", 1, GOOD_IMAGE_V1, "pw");
        engine.install(&v1, &options()).await.unwrap();
        let namespaces: Api<k8s_openapi::api::core::v1::Namespace> =
            Api::all(cluster.client().clone());
        namespaces.delete(&ns, &Default::default()).await.unwrap();
        if env.test.is_some() {
            let records: Api<Secret> = Api::namespaced(cluster.client().clone(), &ns);
            let left = records.list(&ListParams::default()).await.unwrap();
            assert!(
                left.items
                    .iter()
                    .any(|s| s.type_.as_deref() == Some(RELEASE_SECRET_TYPE)),
                "the release record is still there while the namespace terminates"
            );
        }

        let report = engine.install(&v1, &options()).await.unwrap();
        assert_eq!(report.revision, 1, "[{}]", env.tier);
        let deleting = namespace_deleting(&cluster, &ns).await;
        assert_eq!(deleting, Some(false), "[{}]", env.tier);
        // A release recorded in the new namespace, with its objects: not an "unchanged
        // reinstall" of the records that went with the old one.
        let revisions: Vec<(u32, ReleaseStatus)> = engine
            .status(&ns, "demo")
            .await
            .unwrap()
            .iter()
            .map(|r| (r.revision, r.status))
            .collect();
        assert_eq!(revisions, [(1, ReleaseStatus::Deployed)], "[{}]", env.tier);
        assert!(live(&cluster, "apps/v1", "Deployment", Some(&ns), "web")
            .await
            .is_some());
        cleanup(&cluster, &ns, "demo").await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn reinstall_right_after_an_uninstall_waits_for_every_namespace_the_bundle_made() {
    // A bundle with a namespace of its own besides the release's: the uninstall deletes both,
    // and an install at once must wait for both to go before it creates them again.
    let options_2s = ClusterOptions::default().with_ready_delay(std::time::Duration::from_secs(2));
    for env in envs(options_2s) {
        let cluster = env.connect().await;
        let engine = Engine::new(&cluster, &NoProgress);
        let ns = unique("multi");
        let extra = format!("{ns}-mon");
        let mut objects = demo_objects(&ns, 1, GOOD_IMAGE_V1, "pw");
        objects.push(obj(
            "base",
            1,
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": extra}}),
        ));
        objects.push(obj(
            "web",
            2,
            json!({"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": "dashboards", "namespace": extra}, "data": {"a": "b"}}),
        ));
        let request = demo_request("demo", &ns, "1.0.0", objects);
        engine.install(&request, &options()).await.unwrap();
        // Something holds the extra namespace a while longer than the release's (a finalizer
        // another controller removes when it is done): the install must wait for it too.
        let namespaces: Api<k8s_openapi::api::core::v1::Namespace> =
            Api::all(cluster.client().clone());
        let finalizers =
            |list: Vec<&str>| kube::api::Patch::Merge(json!({"metadata": {"finalizers": list}}));
        namespaces
            .patch(
                &extra,
                &Default::default(),
                &finalizers(vec!["example.com/hold"]),
            )
            .await
            .unwrap();
        let out = engine.uninstall(&ns, "demo", true).await.unwrap();
        assert!(
            out.deleted
                .iter()
                .any(|o| o.kind == "Namespace" && o.name == extra),
            "[{}] {:?}",
            env.tier,
            out.deleted
        );
        if env.test.is_some() {
            let deleting = namespace_deleting(&cluster, &extra).await;
            assert_eq!(
                deleting,
                Some(true),
                "the extra namespace is still terminating"
            );
        }

        let release = {
            let namespaces = namespaces.clone();
            let extra = extra.clone();
            tokio::spawn(async move {
                tokio::time::sleep(std::time::Duration::from_secs(4)).await;
                namespaces
                    .patch(&extra, &Default::default(), &finalizers(vec![]))
                    .await
                    .unwrap();
            })
        };
        let report = engine.install(&request, &options()).await.unwrap();
        release.await.unwrap();
        assert_eq!(report.revision, 1, "[{}]", env.tier);
        let deleting = namespace_deleting(&cluster, &extra).await;
        assert_eq!(deleting, Some(false), "[{}]", env.tier);
        assert!(
            live(&cluster, "v1", "ConfigMap", Some(&extra), "dashboards")
                .await
                .is_some(),
            "[{}]",
            env.tier
        );
        cleanup(&cluster, &ns, "demo").await;
    }
}
