//! Where the test cluster is as strict as a real kube-apiserver: immutable fields refused with
//! the apiserver's 422 Status (also on dry-run), defaults, the pvc-protection finalizer, and
//! RBAC for users other than the admin.
#![allow(clippy::unwrap_used)] // tests may unwrap

mod cluster_common;

use std::time::Duration;

use airlift_testkit::cluster::{ClusterOptions, TestCluster};
use cluster_common::Api;
use serde_json::{json, Value};

fn job(image: &str) -> Value {
    json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "migrate"},
        "spec": {"template": {"spec": {"restartPolicy": "Never",
            "containers": [{"name": "m", "image": image}]}}}})
}

#[tokio::test]
async fn a_job_template_change_is_refused_with_the_apiservers_status_even_on_dry_run() {
    let cluster = TestCluster::start(ClusterOptions::default()).unwrap();
    let api = Api::new(&cluster);
    let path = "/apis/batch/v1/namespaces/default/jobs/migrate";
    let (code, created) = api.apply(path, "t", true, &job("m:1")).await;
    assert_eq!(code, 201, "{created}");
    // Defaults a real apiserver adds.
    assert_eq!(created["spec"]["completionMode"], "NonIndexed");
    assert_eq!(
        created["spec"]["podReplacementPolicy"],
        "TerminatingOrFailed"
    );
    let pod = &created["spec"]["template"]["spec"];
    assert_eq!(pod["dnsPolicy"], "ClusterFirst");
    assert_eq!(pod["containers"][0]["imagePullPolicy"], "IfNotPresent");
    assert_eq!(
        pod["containers"][0]["terminationMessagePath"],
        "/dev/termination-log"
    );
    for dry in ["&dryRun=All", ""] {
        let (code, status) = api
            .apply(&format!("{path}?x=1{dry}"), "t", true, &job("m:2"))
            .await;
        assert_eq!(code, 422, "{status}");
        assert_eq!(status["reason"], "Invalid");
        assert_eq!(status["details"]["kind"], "Job");
        assert_eq!(status["details"]["name"], "migrate");
        let cause = &status["details"]["causes"][0];
        assert_eq!(cause["reason"], "FieldValueInvalid");
        assert_eq!(cause["field"], "spec.template");
        let msg = status["message"].as_str().unwrap();
        assert!(
            msg.starts_with("Job.batch \"migrate\" is invalid: spec.template: Invalid value: ")
                && msg.ends_with(": field is immutable"),
            "{msg}"
        );
    }
    let (_, live) = api.get(path).await;
    assert_eq!(
        live["spec"]["template"]["spec"]["containers"][0]["image"],
        "m:1"
    );
}

#[tokio::test]
async fn a_job_without_a_restart_policy_is_invalid() {
    let cluster = TestCluster::start(ClusterOptions::default()).unwrap();
    let api = Api::new(&cluster);
    let mut j = job("m:1");
    j["spec"]["template"]["spec"]
        .as_object_mut()
        .unwrap()
        .remove("restartPolicy");
    let (code, status) = api
        .apply(
            "/apis/batch/v1/namespaces/default/jobs/migrate",
            "t",
            true,
            &j,
        )
        .await;
    assert_eq!(code, 422, "{status}");
    assert_eq!(
        status["details"]["causes"][0]["field"],
        "spec.template.spec.restartPolicy"
    );
}

#[tokio::test]
async fn a_pvc_gets_the_default_class_and_protection_and_may_only_grow() {
    let cluster = TestCluster::start(ClusterOptions::default()).unwrap();
    let api = Api::new(&cluster);
    let path = "/api/v1/namespaces/default/persistentvolumeclaims/data";
    let pvc = |size: &str, class: Option<&str>| {
        let mut v = json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim",
            "metadata": {"name": "data"},
            "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": size}}}});
        if let Some(c) = class {
            v["spec"]["storageClassName"] = c.into();
        }
        v
    };
    let (code, created) = api.apply(path, "t", true, &pvc("1Gi", None)).await;
    assert_eq!(code, 201, "{created}");
    assert_eq!(created["spec"]["storageClassName"], "standard");
    assert_eq!(created["spec"]["volumeMode"], "Filesystem");
    assert_eq!(
        created["metadata"]["finalizers"],
        json!(["kubernetes.io/pvc-protection"])
    );
    let (code, _) = api.apply(path, "t", true, &pvc("2Gi", None)).await;
    assert_eq!(code, 200, "growing is allowed");
    let (code, status) = api.apply(path, "t", true, &pvc("1Gi", None)).await;
    assert_eq!(code, 422);
    assert_eq!(
        status["message"],
        "PersistentVolumeClaim \"data\" is invalid: spec.resources.requests.storage: Forbidden: field can not be less than previous value"
    );
    let (code, status) = api.apply(path, "t", true, &pvc("2Gi", Some("fast"))).await;
    assert_eq!(code, 422);
    assert_eq!(
        status["details"]["causes"][0]["reason"],
        "FieldValueForbidden"
    );
    assert_eq!(status["details"]["causes"][0]["field"], "spec");

    // Deleting: the finalizer holds it until no Pod mounts it (none does), then it is gone.
    let (code, deleting) = api.delete(path).await;
    assert_eq!(code, 200);
    assert!(deleting["metadata"]["deletionTimestamp"].is_string());
    let mut gone = false;
    for _ in 0..200 {
        if api.get(path).await.0 == 404 {
            gone = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        gone,
        "the pvc-protection controller released the unused claim"
    );
}

#[tokio::test]
async fn a_user_allowed_nothing_gets_the_rbac_403_until_granted() {
    let cluster = TestCluster::start(ClusterOptions::default().with_user("dev")).unwrap();
    let mut api = Api::new(&cluster);
    api.token = cluster.user_token("dev").unwrap().to_string();
    let (code, status) = api.get("/api/v1/namespaces/default/secrets").await;
    assert_eq!(code, 403, "{status}");
    assert_eq!(status["reason"], "Forbidden");
    assert_eq!(
        status["message"],
        "secrets is forbidden: User \"dev\" cannot list resource \"secrets\" in API group \"\" in the namespace \"default\""
    );
    let review = json!({"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview",
        "spec": {"resourceAttributes": {"verb": "list", "resource": "secrets", "namespace": "default"}}});
    let path = "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews";
    let (_, answer) = api.post(path, &review).await;
    assert_eq!(answer["status"]["allowed"], false);
    let (_, who) = api
        .post(
            "/apis/authentication.k8s.io/v1/selfsubjectreviews",
            &json!({"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"}),
        )
        .await;
    assert_eq!(who["status"]["userInfo"]["username"], "dev");

    cluster.grant(
        "dev",
        Some("default"),
        json!([{"apiGroups": [""], "resources": ["secrets"], "verbs": ["get", "list"]}]),
    );
    assert_eq!(api.get("/api/v1/namespaces/default/secrets").await.0, 200);
    assert_eq!(
        api.get("/api/v1/namespaces/kube-system/secrets").await.0,
        403
    );
    let (_, answer) = api.post(path, &review).await;
    assert_eq!(answer["status"]["allowed"], true);
    let (_, rules) = api
        .post(
            "/apis/authorization.k8s.io/v1/selfsubjectrulesreviews",
            &json!({"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectRulesReview",
                "spec": {"namespace": "default"}}),
        )
        .await;
    assert!(
        rules["status"]["resourceRules"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["resources"] == json!(["secrets"])),
        "{rules}"
    );
}

#[tokio::test]
async fn pod_logs_are_served_with_container_previous_and_tail_lines() {
    let cluster = TestCluster::start(ClusterOptions::default().with_user("dev")).unwrap();
    cluster.fail_workload(
        "crashy",
        airlift_testkit::cluster::FailureMode::CrashLoopBackOff,
    );
    let api = Api::new(&cluster);
    let deploy = |name: &str| {
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
            "spec": {"replicas": 1, "selector": {"matchLabels": {"app": name}},
                "template": {"metadata": {"labels": {"app": name}},
                    "spec": {"containers": [{"name": "c", "image": "i:1"}, {"name": "s", "image": "s:1"}]}}}})
    };
    for name in ["web", "crashy"] {
        let (code, v) = api
            .apply(
                &format!("/apis/apps/v1/namespaces/default/deployments/{name}"),
                "t",
                true,
                &deploy(name),
            )
            .await;
        assert_eq!(code, 201, "{v}");
    }
    // Wait for a running web pod and a crash-looping crashy pod.
    let mut pods = Value::Null;
    for _ in 0..200 {
        pods = api.get("/api/v1/namespaces/default/pods").await.1;
        let ready = |app: &str, pred: &dyn Fn(&Value) -> bool| {
            pods["items"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|p| p["metadata"]["labels"]["app"] == app && pred(p))
        };
        if ready("web", &|p| p["status"]["phase"] == "Running")
            && ready("crashy", &|p| {
                p["status"]["containerStatuses"][0]["state"]["waiting"]["reason"]
                    == "CrashLoopBackOff"
            })
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let name_of = |app: &str| {
        pods["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["metadata"]["labels"]["app"] == app)
            .map(|p| p["metadata"]["name"].as_str().unwrap().to_string())
            .unwrap()
    };
    let (web, crashy) = (name_of("web"), name_of("crashy"));
    let log = |pod: &str, q: &str| format!("/api/v1/namespaces/default/pods/{pod}/log{q}");

    let (code, v) = api.get(&log(&web, "")).await;
    assert_eq!(code, 400, "two containers need a choice: {v}");
    assert_eq!(
        v["message"],
        format!("a container name must be specified for pod {web}, choose one of: [c s]")
    );
    let (code, text) = api.get(&log(&web, "?container=c")).await;
    assert_eq!(code, 200);
    assert!(
        text.as_str().unwrap().contains("starting c (image i:1)"),
        "{text}"
    );
    let (code, text) = api.get(&log(&web, "?container=c&tailLines=1")).await;
    assert_eq!((code, text.as_str().unwrap().lines().count()), (200, 1));
    let (code, v) = api.get(&log(&web, "?container=c&previous=true")).await;
    assert_eq!(code, 400);
    assert_eq!(
        v["message"],
        format!("previous terminated container \"c\" in pod \"{web}\" not found")
    );
    let (code, v) = api.get(&log(&web, "?container=nope")).await;
    assert_eq!(
        (code, v["message"].as_str().unwrap()),
        (400, &*format!("container nope is not valid for pod {web}"))
    );
    let (code, text) = api.get(&log(&crashy, "?container=c&previous=true")).await;
    assert_eq!(code, 200);
    assert!(
        text.as_str().unwrap().contains("c exited with code 1"),
        "{text}"
    );

    // RBAC: pods/log is its own resource.
    let mut dev = Api::new(&cluster);
    dev.token = cluster.user_token("dev").unwrap().to_string();
    let (code, v) = dev.get(&log(&web, "?container=c")).await;
    assert_eq!(code, 403, "{v}");
    cluster.grant(
        "dev",
        Some("default"),
        json!([{"apiGroups": [""], "resources": ["pods/log"], "verbs": ["get"]}]),
    );
    assert_eq!(dev.get(&log(&web, "?container=c")).await.0, 200);
}
