//! The test controller: workloads become ready with owned Pods, or fail on demand with the
//! waiting reasons and Events a real kubelet reports.
#![allow(clippy::unwrap_used)] // tests may unwrap

mod cluster_common;

use std::time::Duration;

use airlift_testkit::cluster::{ClusterOptions, FailureMode, TestCluster};
use cluster_common::Api;
use serde_json::{json, Value};

const WAIT: Duration = Duration::from_secs(10);

fn start(arches: &[&str]) -> (TestCluster, Api) {
    let cluster = TestCluster::start(
        ClusterOptions::default()
            .with_nodes(arches)
            .with_ready_delay(Duration::from_millis(100)),
    )
    .unwrap();
    let api = Api::new(&cluster);
    (cluster, api)
}

fn deployment(name: &str, image: &str, replicas: i64) -> Value {
    json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "main", "image": image}]}}}})
}

fn deployment_ready(d: &Value) -> bool {
    let want = d["spec"]["replicas"].as_i64().unwrap_or(1);
    d["status"]["observedGeneration"] == d["metadata"]["generation"]
        && d["status"]["updatedReplicas"].as_i64() == Some(want)
        && d["status"]["availableReplicas"].as_i64() == Some(want)
        && d["status"]["replicas"].as_i64() == Some(want)
}

async fn pods(api: &Api, ns: &str, selector: &str) -> Vec<Value> {
    let (_, list) = api
        .get(&format!(
            "/api/v1/namespaces/{ns}/pods?labelSelector={selector}"
        ))
        .await;
    list["items"].as_array().unwrap().clone()
}

#[tokio::test]
async fn deployment_becomes_ready_with_owned_replicaset_and_pods() {
    let (_cluster, api) = start(&["amd64"]);
    api.create_namespace("app").await;
    let (code, v) = api
        .apply(
            "/apis/apps/v1/namespaces/app/deployments/web",
            "airlift",
            true,
            &deployment("web", "nginx:1", 2),
        )
        .await;
    assert_eq!(code, 201, "{v}");
    let d = api
        .wait_for(
            "/apis/apps/v1/namespaces/app/deployments/web",
            WAIT,
            deployment_ready,
        )
        .await;
    let conds = d["status"]["conditions"].as_array().unwrap();
    assert!(conds
        .iter()
        .any(|c| c["type"] == "Available" && c["status"] == "True"));
    assert!(conds
        .iter()
        .any(|c| c["type"] == "Progressing" && c["reason"] == "NewReplicaSetAvailable"));

    let ps = pods(&api, "app", "app%3Dweb").await;
    assert_eq!(ps.len(), 2);
    let owner = &ps[0]["metadata"]["ownerReferences"][0];
    assert_eq!(owner["kind"], "ReplicaSet");
    assert_eq!(owner["controller"], true);
    let (_, rs) = api
        .get(&format!(
            "/apis/apps/v1/namespaces/app/replicasets/{}",
            owner["name"].as_str().unwrap()
        ))
        .await;
    assert_eq!(
        rs["metadata"]["ownerReferences"][0]["uid"],
        d["metadata"]["uid"]
    );
    assert_eq!(ps[0]["status"]["phase"], "Running");
    assert_eq!(ps[0]["status"]["containerStatuses"][0]["ready"], true);
    assert_eq!(ps[0]["spec"]["nodeName"], "node-1");

    // Deleting the Deployment collects its ReplicaSet and Pods.
    assert_eq!(
        api.delete("/apis/apps/v1/namespaces/app/deployments/web")
            .await
            .0,
        200
    );
    assert!(pods(&api, "app", "app%3Dweb").await.is_empty());
}

#[tokio::test]
async fn image_pull_failure_keeps_the_old_pods_and_reports_events() {
    let (cluster, api) = start(&["amd64"]);
    cluster.fail_image("broken", FailureMode::ImagePullBackOff);
    api.create_namespace("app").await;
    let path = "/apis/apps/v1/namespaces/app/deployments/web";
    api.apply(path, "airlift", true, &deployment("web", "reg/ok:1", 1))
        .await;
    api.wait_for(path, WAIT, deployment_ready).await;

    api.apply(path, "airlift", true, &deployment("web", "reg/broken:2", 1))
        .await;
    let failing = api
        .wait_for(
            "/api/v1/namespaces/app/pods?labelSelector=app%3Dweb",
            WAIT,
            |l| {
                l["items"].as_array().unwrap().iter().any(|p| {
                    p["status"]["containerStatuses"][0]["state"]["waiting"]["reason"]
                        == "ImagePullBackOff"
                })
            },
        )
        .await;
    let items = failing["items"].as_array().unwrap();
    let bad = items
        .iter()
        .find(|p| p["spec"]["containers"][0]["image"] == "reg/broken:2")
        .unwrap();
    let waiting = &bad["status"]["containerStatuses"][0]["state"]["waiting"];
    assert_eq!(
        waiting["message"],
        "Back-off pulling image \"reg/broken:2\""
    );
    assert!(
        items
            .iter()
            .any(|p| p["spec"]["containers"][0]["image"] == "reg/ok:1"
                && p["status"]["phase"] == "Running"),
        "the old pod keeps running"
    );

    let name = bad["metadata"]["name"].as_str().unwrap();
    let events = api
        .wait_for(
            &format!("/api/v1/namespaces/app/events?fieldSelector=involvedObject.name%3D{name}"),
            WAIT,
            |l| l["items"].as_array().unwrap().len() >= 2,
        )
        .await;
    let reasons: Vec<&str> = events["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["reason"].as_str().unwrap())
        .collect();
    assert!(
        reasons.contains(&"BackOff") && reasons.contains(&"Failed"),
        "{reasons:?}"
    );
    assert!(events["items"]
        .as_array()
        .unwrap()
        .iter()
        .all(|e| e["type"] == "Warning"));

    // It never becomes ready while the knob is set...
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (_, d) = api.get(path).await;
    assert!(!deployment_ready(&d), "{d:#}");
    assert_eq!(d["status"]["updatedReplicas"], 1);
    assert_eq!(
        d["status"]["availableReplicas"], 1,
        "the old ReplicaSet still serves"
    );
    // ...and rolling back to the old template reuses the old ReplicaSet and retires the bad one.
    api.apply(path, "airlift", true, &deployment("web", "reg/ok:1", 1))
        .await;
    api.wait_for(path, WAIT, deployment_ready).await;
    let ps = pods(&api, "app", "app%3Dweb").await;
    assert_eq!(ps.len(), 1);
    assert_eq!(ps[0]["spec"]["containers"][0]["image"], "reg/ok:1");
}

#[tokio::test]
async fn crash_loop_by_workload_name_on_a_statefulset() {
    let (cluster, api) = start(&["amd64"]);
    cluster.fail_workload("db", FailureMode::CrashLoopBackOff);
    api.create_namespace("app").await;
    let sts = json!({"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "db"},
        "spec": {"replicas": 1, "serviceName": "db", "selector": {"matchLabels": {"app": "db"}},
            "template": {"metadata": {"labels": {"app": "db"}}, "spec": {"containers": [{"name": "pg", "image": "postgres:16"}]}},
            "volumeClaimTemplates": [{"metadata": {"name": "data"}, "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}]}});
    let (code, v) = api
        .apply(
            "/apis/apps/v1/namespaces/app/statefulsets/db",
            "airlift",
            true,
            &sts,
        )
        .await;
    assert_eq!(code, 201, "{v}");
    let pod = api
        .wait_for("/api/v1/namespaces/app/pods/db-0", WAIT, |p| {
            p["status"]["containerStatuses"][0]["state"]["waiting"]["reason"] == "CrashLoopBackOff"
        })
        .await;
    assert_eq!(
        pod["status"]["containerStatuses"][0]["lastState"]["terminated"]["exitCode"],
        1
    );
    assert!(
        pod["status"]["containerStatuses"][0]["restartCount"]
            .as_i64()
            .unwrap()
            > 0
    );
    let (_, pvc) = api
        .get("/api/v1/namespaces/app/persistentvolumeclaims/data-db-0")
        .await;
    assert_eq!(pvc["spec"]["resources"]["requests"]["storage"], "1Gi");
    let (_, s) = api
        .get("/apis/apps/v1/namespaces/app/statefulsets/db")
        .await;
    assert_ne!(s["status"]["readyReplicas"], 1);

    cluster.clear_failures();
    api.wait_for("/apis/apps/v1/namespaces/app/statefulsets/db", WAIT, |s| {
        s["status"]["readyReplicas"] == 1
            && s["status"]["currentRevision"] == s["status"]["updateRevision"]
    })
    .await;
    api.wait_for(
        "/api/v1/namespaces/app/persistentvolumeclaims/data-db-0",
        WAIT,
        |p| p["status"]["phase"] == "Bound",
    )
    .await;
}

#[tokio::test]
async fn daemonset_runs_on_matching_nodes_and_jobs_complete() {
    let (_cluster, api) = start(&["amd64", "arm64", "arm64"]);
    api.create_namespace("app").await;
    let ds = json!({"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "agent"},
        "spec": {"selector": {"matchLabels": {"app": "agent"}},
            "template": {"metadata": {"labels": {"app": "agent"}},
                "spec": {"nodeSelector": {"kubernetes.io/arch": "arm64"}, "containers": [{"name": "a", "image": "agent:1"}]}}}});
    api.apply(
        "/apis/apps/v1/namespaces/app/daemonsets/agent",
        "airlift",
        true,
        &ds,
    )
    .await;
    let d = api
        .wait_for("/apis/apps/v1/namespaces/app/daemonsets/agent", WAIT, |d| {
            d["status"]["numberReady"] == 2
        })
        .await;
    assert_eq!(d["status"]["desiredNumberScheduled"], 2);

    let job = json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "migrate"},
        "spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "m", "image": "migrate:1"}]}}}});
    api.apply(
        "/apis/batch/v1/namespaces/app/jobs/migrate",
        "airlift",
        true,
        &job,
    )
    .await;
    let j = api
        .wait_for("/apis/batch/v1/namespaces/app/jobs/migrate", WAIT, |j| {
            j["status"]["conditions"].as_array().is_some_and(|c| {
                c.iter()
                    .any(|c| c["type"] == "Complete" && c["status"] == "True")
            })
        })
        .await;
    assert_eq!(j["status"]["succeeded"], 1);
    let ps = pods(&api, "app", "job-name%3Dmigrate").await;
    assert_eq!(ps[0]["status"]["phase"], "Succeeded");
}

#[tokio::test]
async fn a_pod_for_a_missing_architecture_is_unschedulable() {
    let (_cluster, api) = start(&["amd64"]);
    api.create_namespace("app").await;
    let mut d = deployment("armonly", "img:1", 1);
    d["spec"]["template"]["spec"]["nodeSelector"] = json!({"kubernetes.io/arch": "arm64"});
    api.apply(
        "/apis/apps/v1/namespaces/app/deployments/armonly",
        "airlift",
        true,
        &d,
    )
    .await;
    let list = api
        .wait_for(
            "/api/v1/namespaces/app/pods?labelSelector=app%3Darmonly",
            WAIT,
            |l| l["items"][0]["status"]["conditions"][0]["reason"] == "Unschedulable",
        )
        .await;
    assert_eq!(list["items"][0]["status"]["phase"], "Pending");
    let (_, ev) = api
        .get("/api/v1/namespaces/app/events?fieldSelector=reason%3DFailedScheduling")
        .await;
    assert_eq!(ev["items"].as_array().unwrap().len(), 1);
}
