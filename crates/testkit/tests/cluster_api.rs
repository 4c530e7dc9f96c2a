//! The test cluster's Kubernetes API over real HTTPS (reqwest, verifying the cluster's own CA).
#![allow(clippy::unwrap_used)] // tests may unwrap

mod cluster_common;

use std::time::Duration;

use airlift_testkit::cluster::{ClusterOptions, DenyRule, TestCluster};
use cluster_common::Api;
use serde_json::json;

const WAIT: Duration = Duration::from_secs(10);

fn start() -> (TestCluster, Api) {
    let cluster = TestCluster::start(ClusterOptions::default()).unwrap();
    let api = Api::new(&cluster);
    (cluster, api)
}

#[tokio::test]
async fn missing_or_wrong_token_gets_a_401_status() {
    let (cluster, api) = start();
    let resp = api
        .client
        .get(format!("{}/api/v1/namespaces", cluster.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 401);
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["kind"], "Status");
    assert_eq!(body["reason"], "Unauthorized");
    assert_eq!(body["code"], 401);
    let resp = api
        .client
        .get(format!("{}/version", cluster.url()))
        .bearer_auth("wrong")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 401);
}

#[tokio::test]
async fn a_client_without_the_cluster_ca_is_refused_by_tls() {
    let (cluster, _api) = start();
    let client = reqwest::Client::builder()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .build()
        .unwrap();
    let err = client
        .get(format!("{}/version", cluster.url()))
        .send()
        .await
        .unwrap_err();
    assert!(err.is_connect() || err.is_request(), "{err:?}");
}

#[tokio::test]
async fn version_and_discovery_documents() {
    let cluster = TestCluster::start(ClusterOptions::default().with_version("1.28.4")).unwrap();
    let api = Api::new(&cluster);
    let (_, v) = api.get("/version").await;
    assert_eq!(v["gitVersion"], "v1.28.4");
    assert_eq!(v["minor"], "28");
    let (_, v) = api.get("/api").await;
    assert_eq!(v["versions"], json!(["v1"]));
    let (_, v) = api.get("/apis").await;
    let groups: Vec<&str> = v["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["name"].as_str().unwrap())
        .collect();
    for g in [
        "apps",
        "batch",
        "rbac.authorization.k8s.io",
        "apiextensions.k8s.io",
        "authorization.k8s.io",
        "networking.k8s.io",
        "storage.k8s.io",
    ] {
        assert!(groups.contains(&g), "{g} missing from {groups:?}");
    }
    let (_, v) = api.get("/apis/apps/v1").await;
    let deploy = v["resources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "deployments")
        .unwrap();
    assert_eq!(deploy["kind"], "Deployment");
    assert_eq!(deploy["namespaced"], true);
    assert_eq!(deploy["shortNames"], json!(["deploy"]));
    let (code, v) = api.get("/apis/nope.example.com/v1").await;
    assert_eq!(code, 404);
    assert_eq!(v["reason"], "NotFound");
    cluster.set_version("1.31.0");
    assert_eq!(api.get("/version").await.1["gitVersion"], "v1.31.0");
}

#[tokio::test]
async fn configmap_crud_with_real_status_errors() {
    let (_cluster, api) = start();
    api.create_namespace("app").await;
    let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c1", "labels": {"tier": "a"}}, "data": {"k": "v"}});
    let (code, created) = api.post("/api/v1/namespaces/app/configmaps", &cm).await;
    assert_eq!(code, 201, "{created}");
    assert_eq!(created["metadata"]["namespace"], "app");
    assert!(created["metadata"]["uid"].as_str().unwrap().len() == 36);
    assert!(created["metadata"]["creationTimestamp"]
        .as_str()
        .unwrap()
        .ends_with('Z'));
    let (code, err) = api.post("/api/v1/namespaces/app/configmaps", &cm).await;
    assert_eq!((code, err["reason"].as_str()), (409, Some("AlreadyExists")));
    assert_eq!(err["message"], "configmaps \"c1\" already exists");

    let other = json!({"metadata": {"name": "c2", "labels": {"tier": "b"}}});
    assert_eq!(
        api.post("/api/v1/namespaces/app/configmaps", &other)
            .await
            .0,
        201
    );
    let (_, list) = api
        .get("/api/v1/namespaces/app/configmaps?labelSelector=tier%3Da")
        .await;
    assert_eq!(list["kind"], "ConfigMapList");
    let names: Vec<&str> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["metadata"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec!["c1"]);
    let (_, all) = api
        .get("/api/v1/configmaps?labelSelector=tier%20in%20(a,b)")
        .await;
    assert_eq!(all["items"].as_array().unwrap().len(), 2);

    let mut stale = created.clone();
    stale["data"]["k"] = "new".into();
    let (code, v) = api
        .put("/api/v1/namespaces/app/configmaps/c1", &stale)
        .await;
    assert_eq!(code, 200, "{v}");
    assert_ne!(
        v["metadata"]["resourceVersion"],
        created["metadata"]["resourceVersion"]
    );
    let (code, err) = api
        .put("/api/v1/namespaces/app/configmaps/c1", &stale)
        .await;
    assert_eq!((code, err["reason"].as_str()), (409, Some("Conflict")));

    let (code, _) = api
        .delete("/api/v1/namespaces/app/configmaps/c1?propagationPolicy=Foreground")
        .await;
    assert_eq!(code, 200);
    let (code, err) = api.get("/api/v1/namespaces/app/configmaps/c1").await;
    assert_eq!(code, 404);
    assert_eq!(err["message"], "configmaps \"c1\" not found");
    assert_eq!(err["details"]["kind"], "configmaps");

    let (code, err) = api.post("/api/v1/namespaces/missing/configmaps", &cm).await;
    assert_eq!(
        (code, err["message"].as_str()),
        (404, Some("namespaces \"missing\" not found"))
    );
    let bad = json!({"metadata": {"name": "Bad_Name"}});
    let (code, err) = api.post("/api/v1/namespaces/app/configmaps", &bad).await;
    assert_eq!((code, err["reason"].as_str()), (422, Some("Invalid")));
}

#[tokio::test]
async fn secrets_string_data_is_encoded_and_services_get_cluster_ips() {
    let (_cluster, api) = start();
    api.create_namespace("app").await;
    let (_, s) = api
        .post(
            "/api/v1/namespaces/app/secrets",
            &json!({"metadata": {"name": "s"}, "stringData": {"pw": "hunter2"}}),
        )
        .await;
    assert_eq!(s["data"]["pw"], "aHVudGVyMg==");
    assert!(s.get("stringData").is_none());
    assert_eq!(s["type"], "Opaque");
    let (_, svc) = api
        .post(
            "/api/v1/namespaces/app/services",
            &json!({"metadata": {"name": "web"}, "spec": {"ports": [{"port": 80}]}}),
        )
        .await;
    assert!(svc["spec"]["clusterIP"]
        .as_str()
        .unwrap()
        .starts_with("10.96."));
    assert_eq!(svc["spec"]["ports"][0]["targetPort"], 80);
}

#[tokio::test]
async fn server_side_apply_owns_merges_and_removes_fields() {
    let (_cluster, api) = start();
    api.create_namespace("app").await;
    let path = "/api/v1/namespaces/app/configmaps/cfg";
    let v1 = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cfg"}, "data": {"a": "1", "b": "2"}});
    let (code, obj) = api.apply(path, "airlift", false, &v1).await;
    assert_eq!(code, 201, "{obj}");
    let mf = &obj["metadata"]["managedFields"][0];
    assert_eq!(mf["manager"], "airlift");
    assert_eq!(mf["operation"], "Apply");
    assert_eq!(mf["fieldsType"], "FieldsV1");
    assert_eq!(mf["fieldsV1"]["f:data"]["f:a"], json!({}));

    // Another manager changes a field with a plain update (merge patch).
    let (code, _) = api
        .patch(
            &format!("{path}?fieldManager=editor"),
            "application/merge-patch+json",
            &json!({"data": {"c": "3"}}),
        )
        .await;
    assert_eq!(code, 200);
    // Re-applying without b removes b (owned by airlift only) and keeps c (owned by editor).
    let v2 = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cfg"}, "data": {"a": "1"}});
    let (code, obj) = api.apply(path, "airlift", false, &v2).await;
    assert_eq!(code, 200, "{obj}");
    assert_eq!(obj["data"], json!({"a": "1", "c": "3"}));

    // Changing c conflicts with editor unless forced.
    let v3 = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cfg"}, "data": {"a": "1", "c": "9"}});
    let (code, err) = api.apply(path, "airlift", false, &v3).await;
    assert_eq!(
        (code, err["reason"].as_str()),
        (409, Some("Conflict")),
        "{err}"
    );
    assert!(err["message"].as_str().unwrap().contains("editor"), "{err}");
    assert_eq!(err["details"]["causes"][0]["field"], ".data.c");
    let (code, obj) = api.apply(path, "airlift", true, &v3).await;
    assert_eq!(code, 200);
    assert_eq!(obj["data"]["c"], "9");

    // The manager is required for apply.
    let (code, err) = api.patch(path, "application/apply-patch+yaml", &v3).await;
    assert_eq!((code, err["reason"].as_str()), (422, Some("Invalid")));
    // YAML bodies are accepted.
    let resp = api
        .req(
            reqwest::Method::PATCH,
            &format!("{path}?fieldManager=airlift"),
        )
        .header("content-type", "application/apply-patch+yaml")
        .body("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cfg\ndata:\n  a: '2'\n")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
}

#[tokio::test]
async fn dry_run_apply_and_create_store_nothing() {
    let (cluster, api) = start();
    api.create_namespace("app").await;
    let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "dry"}, "data": {"a": "1"}});
    let (code, v) = api
        .apply(
            "/api/v1/namespaces/app/configmaps/dry?dryRun=All",
            "airlift",
            true,
            &cm,
        )
        .await;
    assert_eq!(code, 201, "{v}");
    assert_eq!(v["data"]["a"], "1");
    let (code, _) = api
        .post("/api/v1/namespaces/app/configmaps?dryRun=All", &cm)
        .await;
    assert_eq!(code, 201);
    assert!(cluster.object("", "configmaps", "app", "dry").is_none());
    assert_eq!(
        api.get("/api/v1/namespaces/app/configmaps/dry").await.0,
        404
    );
}

#[tokio::test]
async fn crds_become_established_and_their_resources_are_served() {
    let (_cluster, api) = start();
    api.create_namespace("app").await;
    let crd = json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "widgets.example.com"},
        "spec": {"group": "example.com", "scope": "Namespaced",
            "names": {"plural": "widgets", "singular": "widget", "kind": "Widget", "shortNames": ["wd"]},
            "versions": [{"name": "v1", "served": true, "storage": true, "subresources": {"status": {}},
                "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}]}});
    let (code, v) = api
        .apply(
            "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/widgets.example.com",
            "airlift",
            true,
            &crd,
        )
        .await;
    assert_eq!(code, 201, "{v}");
    api.wait_for(
        "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/widgets.example.com",
        WAIT,
        |v| {
            v["status"]["conditions"].as_array().is_some_and(|c| {
                c.iter()
                    .any(|c| c["type"] == "Established" && c["status"] == "True")
            })
        },
    )
    .await;
    let (_, disc) = api.get("/apis/example.com/v1").await;
    assert_eq!(disc["resources"][0]["name"], "widgets");
    assert_eq!(disc["resources"][0]["shortNames"], json!(["wd"]));

    let w = json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w1"}, "spec": {"size": 3}});
    let (code, v) = api
        .apply(
            "/apis/example.com/v1/namespaces/app/widgets/w1",
            "airlift",
            true,
            &w,
        )
        .await;
    assert_eq!(code, 201, "{v}");
    assert_eq!(v["metadata"]["generation"], 1);
    let (code, v) = api
        .patch(
            "/apis/example.com/v1/namespaces/app/widgets/w1/status",
            "application/merge-patch+json",
            &json!({"status": {"ok": true}}),
        )
        .await;
    assert_eq!(code, 200, "{v}");
    assert_eq!(v["status"]["ok"], true);
    assert_eq!(
        v["metadata"]["generation"], 1,
        "status writes do not bump generation"
    );
    let (_, list) = api.get("/apis/example.com/v1/widgets").await;
    assert_eq!(list["kind"], "WidgetList");
    assert_eq!(list["items"].as_array().unwrap().len(), 1);

    // Deleting the CRD stops serving its resources.
    assert_eq!(
        api.delete("/apis/apiextensions.k8s.io/v1/customresourcedefinitions/widgets.example.com")
            .await
            .0,
        200
    );
    assert_eq!(
        api.get("/apis/example.com/v1/namespaces/app/widgets/w1")
            .await
            .0,
        404
    );
    assert_eq!(api.get("/apis/example.com/v1").await.0, 404);
}

#[tokio::test]
async fn access_reviews_and_requests_honour_the_deny_knob() {
    let (cluster, api) = start();
    cluster.deny(DenyRule::new(
        "create",
        "rbac.authorization.k8s.io",
        "clusterroles",
    ));
    let review = |verb: &str, group: &str, resource: &str| {
        json!({"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview",
            "spec": {"resourceAttributes": {"verb": verb, "group": group, "resource": resource}}})
    };
    let (code, v) = api
        .post(
            "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
            &review("create", "rbac.authorization.k8s.io", "clusterroles"),
        )
        .await;
    assert_eq!(code, 201);
    assert_eq!(v["status"]["allowed"], false);
    let (_, v) = api
        .post(
            "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
            &review("create", "", "configmaps"),
        )
        .await;
    assert_eq!(v["status"]["allowed"], true);

    let (code, err) = api
        .post(
            "/apis/rbac.authorization.k8s.io/v1/clusterroles",
            &json!({"metadata": {"name": "r"}}),
        )
        .await;
    assert_eq!((code, err["reason"].as_str()), (403, Some("Forbidden")));
    assert!(
        err["message"]
            .as_str()
            .unwrap()
            .contains("cannot create resource \"clusterroles\""),
        "{err}"
    );
    cluster.clear_denials();
    let (code, _) = api
        .post(
            "/apis/rbac.authorization.k8s.io/v1/clusterroles",
            &json!({"metadata": {"name": "r"}}),
        )
        .await;
    assert_eq!(code, 201);
}

#[tokio::test]
async fn nodes_report_their_architectures() {
    let cluster =
        TestCluster::start(ClusterOptions::default().with_nodes(&["amd64", "arm64"])).unwrap();
    let api = Api::new(&cluster);
    let (_, nodes) = api.get("/api/v1/nodes").await;
    let arches: Vec<(&str, &str)> = nodes["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| {
            (
                n["status"]["nodeInfo"]["architecture"].as_str().unwrap(),
                n["metadata"]["labels"]["kubernetes.io/arch"]
                    .as_str()
                    .unwrap(),
            )
        })
        .collect();
    assert_eq!(arches, vec![("amd64", "amd64"), ("arm64", "arm64")]);
    let (_, sc) = api.get("/apis/storage.k8s.io/v1/storageclasses").await;
    assert_eq!(
        sc["items"][0]["metadata"]["annotations"]["storageclass.kubernetes.io/is-default-class"],
        "true"
    );
}

#[tokio::test]
async fn namespace_deletion_removes_its_objects() {
    let (_cluster, api) = start();
    api.create_namespace("gone").await;
    api.post(
        "/api/v1/namespaces/gone/configmaps",
        &json!({"metadata": {"name": "c"}}),
    )
    .await;
    let (code, ns) = api.delete("/api/v1/namespaces/gone").await;
    assert_eq!(code, 200);
    assert_eq!(ns["status"]["phase"], "Terminating");
    let start = std::time::Instant::now();
    while api.get("/api/v1/namespaces/gone").await.0 != 404 {
        assert!(start.elapsed() < WAIT, "namespace never went away");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(api.get("/api/v1/namespaces/gone/configmaps/c").await.0, 404);
}

#[tokio::test]
async fn watch_streams_changes_after_a_resource_version() {
    let (_cluster, api) = start();
    api.create_namespace("w").await;
    let (_, list) = api.get("/api/v1/namespaces/w/configmaps").await;
    let rv = list["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_string();
    api.post(
        "/api/v1/namespaces/w/configmaps",
        &json!({"metadata": {"name": "first"}}),
    )
    .await;
    let mut resp = api
        .req(
            reqwest::Method::GET,
            &format!(
                "/api/v1/namespaces/w/configmaps?watch=1&resourceVersion={rv}&timeoutSeconds=5&fieldSelector=metadata.name%3Dfirst"
            ),
        )
        .send()
        .await
        .unwrap();
    let chunk = resp.chunk().await.unwrap().unwrap();
    let ev: serde_json::Value = serde_json::from_slice(&chunk).unwrap();
    assert_eq!(ev["type"], "ADDED");
    assert_eq!(ev["object"]["metadata"]["name"], "first");
    api.delete("/api/v1/namespaces/w/configmaps/first").await;
    let chunk = resp.chunk().await.unwrap().unwrap();
    let ev: serde_json::Value = serde_json::from_slice(&chunk).unwrap();
    assert_eq!(ev["type"], "DELETED");
}

#[tokio::test]
async fn tables_and_partial_metadata_are_negotiated() {
    let (_cluster, api) = start();
    let resp = api
        .req(reqwest::Method::GET, "/api/v1/namespaces")
        .header(
            "accept",
            "application/json;as=Table;v=v1;g=meta.k8s.io,application/json",
        )
        .send()
        .await
        .unwrap();
    let t: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(t["kind"], "Table");
    assert_eq!(t["columnDefinitions"][0]["name"], "Name");
    assert_eq!(t["rows"][0]["object"]["kind"], "PartialObjectMetadata");
    let resp = api
        .req(reqwest::Method::GET, "/api/v1/namespaces")
        .header(
            "accept",
            "application/json;as=PartialObjectMetadataList;v=v1;g=meta.k8s.io",
        )
        .send()
        .await
        .unwrap();
    let t: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(t["kind"], "PartialObjectMetadataList");
    // Aggregated discovery is answered with legacy discovery, marked as plain JSON.
    let resp = api
        .req(reqwest::Method::GET, "/apis")
        .header(
            "accept",
            "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["content-type"], "application/json");
    let t: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(t["kind"], "APIGroupList");
}

#[tokio::test]
async fn orphan_deletion_keeps_dependents_and_finalizers_delay_deletion() {
    let (_cluster, api) = start();
    api.create_namespace("gc").await;
    let (_, owner) = api
        .post(
            "/api/v1/namespaces/gc/configmaps",
            &json!({"metadata": {"name": "owner"}}),
        )
        .await;
    let dependent = |name: &str| {
        json!({"metadata": {"name": name, "ownerReferences": [{"apiVersion": "v1", "kind": "ConfigMap",
            "name": "owner", "uid": owner["metadata"]["uid"]}]}})
    };
    api.post("/api/v1/namespaces/gc/configmaps", &dependent("dep"))
        .await;
    let (code, _) = api
        .req(
            reqwest::Method::DELETE,
            "/api/v1/namespaces/gc/configmaps/owner",
        )
        .json(&json!({"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": "Orphan"}))
        .send()
        .await
        .map(|r| (r.status().as_u16(), ()))
        .unwrap();
    assert_eq!(code, 200);
    let (code, dep) = api.get("/api/v1/namespaces/gc/configmaps/dep").await;
    assert_eq!(code, 200);
    assert!(
        dep["metadata"]["ownerReferences"]
            .as_array()
            .is_none_or(|r| r.is_empty()),
        "{dep}"
    );

    let (_, held) = api
        .post(
            "/api/v1/namespaces/gc/configmaps",
            &json!({"metadata": {"name": "held", "finalizers": ["example.com/hold"]}}),
        )
        .await;
    assert_eq!(held["metadata"]["finalizers"][0], "example.com/hold");
    let (code, v) = api.delete("/api/v1/namespaces/gc/configmaps/held").await;
    assert_eq!(code, 200);
    assert!(v["metadata"]["deletionTimestamp"].is_string(), "{v}");
    assert_eq!(
        api.get("/api/v1/namespaces/gc/configmaps/held").await.0,
        200
    );
    let (code, _) = api
        .patch(
            "/api/v1/namespaces/gc/configmaps/held",
            "application/json-patch+json",
            &json!([{"op": "remove", "path": "/metadata/finalizers"}]),
        )
        .await;
    assert_eq!(code, 200);
    assert_eq!(
        api.get("/api/v1/namespaces/gc/configmaps/held").await.0,
        404
    );
}

#[tokio::test]
async fn http2_is_negotiated_and_requests_are_recorded() {
    let (cluster, api) = start();
    let resp = api
        .req(reqwest::Method::GET, "/version")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.version(), reqwest::Version::HTTP_2);
    api.delete("/api/v1/namespaces/default/configmaps/none")
        .await;
    let recorded = cluster.requests();
    assert!(recorded
        .iter()
        .any(|r| r.method == "GET" && r.path == "/version" && r.status == 200));
    assert!(recorded
        .iter()
        .any(|r| r.method == "DELETE" && r.status == 404));
}
