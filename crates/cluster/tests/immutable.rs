//! Objects that cannot change in place (issue 16): replaced when that is safe, refused before any
//! change when it would lose data, and shown as such by `plan`; against the test cluster (and a
//! real cluster when `AIRLIFT_E2E_KUBECONFIG` is set).

mod common;

use airlift_bundle::NoProgress;
use airlift_cluster::apply::{apply_set, prepare, ApplyError};
use airlift_cluster::lifecycle::{DeployOptions, Engine, LifecycleError};
use airlift_cluster::readiness::wait_ready;
use airlift_cluster::replace::LABEL_ORPHANED;
use airlift_cluster::{ManagedObject, ObjectRef};
use airlift_testkit::cluster::ClusterOptions;
use common::*;
use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams};
use serde_json::{json, Value};

fn obj(component: &str, order: i32, v: Value) -> ManagedObject {
    ManagedObject::new(component, order, 0, v).expect("a valid object")
}

fn job(image: &str) -> ManagedObject {
    obj(
        "migrate",
        1,
        json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "migrate"},
               "spec": {"backoffLimit": 1, "template": {"spec": {"restartPolicy": "Never",
                   "containers": [{"name": "m", "image": image, "command": ["true"]}]}}}}),
    )
}

fn uid(v: &Value) -> String {
    v["metadata"]["uid"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_job_template_change_is_replaced_and_runs_to_completion_and_plan_says_so() {
    for env in envs(ClusterOptions::default()) {
        let cluster = env.connect().await;
        let engine = Engine::new(&cluster, &NoProgress);
        let ns = unique("imjob");
        let mut v1 = demo_objects(&ns, 1, GOOD_IMAGE_V1, "pw");
        v1.push(job(GOOD_IMAGE_V1));
        engine
            .install(&demo_request("demo", &ns, "1.0.0", v1), &options())
            .await
            .unwrap_or_else(|e| panic!("[{}] {e}: {}", env.tier, e.hint()));
        let before = live(&cluster, "batch/v1", "Job", Some(&ns), "migrate")
            .await
            .unwrap();

        let mut v2 = demo_objects(&ns, 1, GOOD_IMAGE_V1, "pw");
        v2.push(job(GOOD_IMAGE_V2));
        let request = demo_request("demo", &ns, "2.0.0", v2);
        let plan = engine.plan(&request).await.unwrap();
        let replaced: Vec<&str> = plan
            .replace
            .iter()
            .map(|r| r.object.name.as_str())
            .collect();
        assert_eq!(replaced, ["migrate"], "[{}] {plan}", env.tier);
        assert!(
            plan.replace[0]
                .causes
                .iter()
                .any(|c| c.starts_with("spec.template: ") && c.contains("immutable")),
            "[{}] {plan}",
            env.tier
        );
        assert!(plan.to_string().contains("± replace"), "{plan}");
        assert!(!plan.change.iter().any(|c| c.object.name == "migrate"));

        engine
            .upgrade(&request, &options())
            .await
            .unwrap_or_else(|e| panic!("[{}] {e}: {}", env.tier, e.hint()));
        let after = live(&cluster, "batch/v1", "Job", Some(&ns), "migrate")
            .await
            .unwrap();
        assert_ne!(uid(&before), uid(&after), "[{}] a new Job", env.tier);
        assert_eq!(image_of(&after), GOOD_IMAGE_V2);
        let complete = after["status"]["conditions"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|c| c["type"] == "Complete" && c["status"] == "True");
        assert!(complete, "[{}] {after:#}", env.tier);
        cleanup(&cluster, &ns, "demo").await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_immutable_configmap_is_recreated_with_the_new_data() {
    for env in envs(ClusterOptions::default()) {
        let cluster = env.connect().await;
        let engine = Engine::new(&cluster, &NoProgress);
        let ns = unique("imcm");
        let frozen = |v: &str| {
            obj(
                "web",
                2,
                json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "frozen"},
                       "immutable": true, "data": {"v": v}}),
            )
        };
        let mut v1 = demo_objects(&ns, 1, GOOD_IMAGE_V1, "pw");
        v1.push(frozen("1"));
        engine
            .install(&demo_request("demo", &ns, "1.0.0", v1), &options())
            .await
            .unwrap();
        let before = live(&cluster, "v1", "ConfigMap", Some(&ns), "frozen")
            .await
            .unwrap();
        let mut v2 = demo_objects(&ns, 1, GOOD_IMAGE_V1, "pw");
        v2.push(frozen("2"));
        engine
            .upgrade(&demo_request("demo", &ns, "2.0.0", v2), &options())
            .await
            .unwrap_or_else(|e| panic!("[{}] {e}: {}", env.tier, e.hint()));
        let after = live(&cluster, "v1", "ConfigMap", Some(&ns), "frozen")
            .await
            .unwrap();
        assert_eq!(after["data"]["v"], "2", "[{}]", env.tier);
        assert_ne!(uid(&before), uid(&after));
        cleanup(&cluster, &ns, "demo").await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_pvc_storage_class_change_is_refused_before_anything_changes() {
    for env in envs(ClusterOptions::default()) {
        let cluster = env.connect().await;
        let engine = Engine::new(&cluster, &NoProgress);
        let ns = unique("impvc");
        engine
            .install(&demo(&ns, "1.0.0", 1, GOOD_IMAGE_V1, "pw"), &options())
            .await
            .unwrap();
        let pvc_before = live(&cluster, "v1", "PersistentVolumeClaim", Some(&ns), "data")
            .await
            .unwrap();
        // Version 2 changes the ConfigMap and the Deployment's image, and moves the claim to
        // another class: the refusal must come before any of those changes.
        let mut v2 = demo_objects(&ns, 2, GOOD_IMAGE_V2, "pw");
        for o in &mut v2 {
            if o.kind() == "PersistentVolumeClaim" {
                o.object["spec"]["storageClassName"] = "fast-ssd".into();
            }
        }
        let request = demo_request("demo", &ns, "2.0.0", v2);
        let plan = engine.plan(&request).await.unwrap();
        assert_eq!(plan.refuse.len(), 1, "[{}] {plan}", env.tier);
        assert_eq!(plan.refuse[0].object.name, "data");

        let writes_before = env.test.as_ref().map(|t| t.requests().len());
        let opts = DeployOptions {
            no_rollback: true,
            ..options()
        };
        let err = engine.upgrade(&request, &opts).await.unwrap_err();
        // Refused before anything is written: not even a release record.
        let LifecycleError::Apply(cause @ ApplyError::Refused(refusals)) = &err else {
            panic!(
                "[{}] expected a refusal before any write, got {err}",
                env.tier
            );
        };
        assert_eq!(refusals[0].object.kind, "PersistentVolumeClaim");
        assert!(cause.hint().contains("new claim name"), "{}", cause.hint());
        assert!(
            !cause.hint().contains(&cause.to_string()),
            "the hint never repeats the message"
        );
        assert_eq!(engine.status(&ns, "demo").await.unwrap().len(), 1);

        // Nothing was written, and nothing was deleted.
        if let (Some(t), Some(n)) = (&env.test, writes_before) {
            let objects_path = format!("/namespaces/{ns}/");
            let writes: Vec<String> = t.requests()[n..]
                .iter()
                .filter(|r| r.method != "GET" && r.path.contains(&objects_path))
                .filter(|r| !r.query.contains("dryRun=All"))
                .map(|r| format!("{} {}?{}", r.method, r.path, r.query))
                .collect();
            assert!(writes.is_empty(), "{writes:#?}");
        }
        let pvc_after = live(&cluster, "v1", "PersistentVolumeClaim", Some(&ns), "data")
            .await
            .unwrap();
        assert_eq!(uid(&pvc_before), uid(&pvc_after));
        assert_eq!(
            pvc_before["spec"]["storageClassName"],
            pvc_after["spec"]["storageClassName"]
        );
        let web = live(&cluster, "apps/v1", "Deployment", Some(&ns), "web")
            .await
            .unwrap();
        assert_eq!(image_of(&web), GOOD_IMAGE_V1, "[{}]", env.tier);
        cleanup(&cluster, &ns, "demo").await;
    }
}

fn web(selector_track: Option<&str>, image: &str) -> ManagedObject {
    let mut labels = json!({"app": "sel"});
    if let Some(t) = selector_track {
        labels["track"] = t.into();
    }
    obj(
        "web",
        2,
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "sel"},
               "spec": {"replicas": 2, "selector": {"matchLabels": labels},
                   "template": {"metadata": {"labels": labels},
                       "spec": {"containers": [{"name": "web", "image": image}]}}}}),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn a_deployment_selector_change_keeps_the_old_pods_until_the_new_ones_are_ready() {
    for env in envs(ClusterOptions::default()) {
        let cluster = env.connect().await;
        let engine = Engine::new(&cluster, &NoProgress);
        let resolver = engine.resolver();
        let ns = unique("imsel");
        let namespace = obj(
            "base",
            1,
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}),
        );
        let wait = options().wait;
        let v1 = prepare(
            resolver,
            &[namespace.clone(), web(None, GOOD_IMAGE_V1)],
            "sel",
            &ns,
        )
        .await
        .unwrap();
        let mut applied = Vec::new();
        apply_set(
            resolver,
            &v1,
            options().crd_timeout,
            &NoProgress,
            &mut applied,
        )
        .await
        .unwrap();
        let ids: Vec<ObjectRef> = v1.iter().filter_map(ManagedObject::id).collect();
        wait_ready(resolver, &ids, wait, &NoProgress).await.unwrap();
        let pods: Api<Pod> = Api::namespaced(cluster.client().clone(), &ns);
        let old_pods: Vec<String> = pods
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .into_iter()
            .filter_map(|p| p.metadata.name)
            .collect();
        assert_eq!(old_pods.len(), 2, "[{}] {old_pods:?}", env.tier);

        let v2 = prepare(
            resolver,
            &[namespace, web(Some("v2"), GOOD_IMAGE_V2)],
            "sel",
            &ns,
        )
        .await
        .unwrap();
        let report = apply_set(
            resolver,
            &v2,
            options().crd_timeout,
            &NoProgress,
            &mut applied,
        )
        .await
        .unwrap_or_else(|e| panic!("[{}] {e}: {}", env.tier, e.hint()));
        assert_eq!(report.replaced.len(), 1, "[{}] {report:?}", env.tier);
        assert!(report.replaced[0].causes[0].starts_with("spec.selector: "));
        assert!(report.orphaned.iter().any(|o| o.kind == "ReplicaSet"));

        // Before readiness: the old Pods still run, their ReplicaSet orphaned and labelled.
        let still: Vec<String> = pods
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .into_iter()
            .filter_map(|p| p.metadata.name)
            .filter(|n| old_pods.contains(n))
            .collect();
        assert_eq!(still.len(), 2, "[{}] old pods kept: {still:?}", env.tier);
        let rs: Api<ReplicaSet> = Api::namespaced(cluster.client().clone(), &ns);
        let orphaned = rs
            .list(&ListParams::default().labels(&format!("{LABEL_ORPHANED}=true")))
            .await
            .unwrap();
        assert_eq!(orphaned.items.len(), 1, "[{}]", env.tier);

        // After readiness: the new ones serve and the old ones are gone.
        wait_ready(resolver, &ids, wait, &NoProgress).await.unwrap();
        let deploy = live(&cluster, "apps/v1", "Deployment", Some(&ns), "sel")
            .await
            .unwrap();
        assert!(ready(&deploy), "[{}] {deploy:#}", env.tier);
        let mut left = Vec::new();
        for _ in 0..100 {
            left = pods
                .list(&ListParams::default())
                .await
                .unwrap()
                .items
                .into_iter()
                .filter_map(|p| p.metadata.name)
                .filter(|n| old_pods.contains(n))
                .collect();
            if left.is_empty() {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
        assert!(left.is_empty(), "[{}] old pods left: {left:?}", env.tier);
        let _ = airlift_cluster::apply::delete_one(resolver, &ids[0]).await;
    }
}
