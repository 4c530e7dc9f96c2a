//! The test kubelet's image pulls (`ClusterOptions::pull_images`) against real registries: an
//! image in the registry runs with its real digest as `imageID`; a missing tag, a wrong or
//! missing pull secret, an untrusted TLS registry and a platform mismatch leave the Pod in
//! ImagePullBackOff with the kubelet's Events; pushing the missing image later lets it run.
#![allow(clippy::unwrap_used)] // tests may unwrap

mod cluster_common;

use std::time::Duration;

use airlift_testkit::cluster::{ClusterOptions, TestCluster};
use airlift_testkit::images::{sample_set, SampleSet};
use airlift_testkit::registry::TestRegistry;
use base64::Engine;
use cluster_common::Api;
use serde_json::{json, Value};

const WAIT: Duration = Duration::from_secs(20);

fn images() -> (tempfile::TempDir, SampleSet) {
    let dir = tempfile::tempdir().unwrap();
    let set = sample_set(&dir.path().join("layout"), 70, 16 << 10).unwrap();
    (dir, set)
}

fn start(opts: ClusterOptions) -> (TestCluster, Api) {
    let cluster = TestCluster::start(opts.with_ready_delay(Duration::from_millis(100))).unwrap();
    let api = Api::new(&cluster);
    (cluster, api)
}

fn deployment(name: &str, image: &str, secret: Option<&str>) -> Value {
    let mut spec = json!({"containers": [{"name": "main", "image": image}]});
    if let Some(s) = secret {
        spec["imagePullSecrets"] = json!([{"name": s}]);
    }
    json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}}, "spec": spec}}})
}

async fn deploy(api: &Api, name: &str, image: &str, secret: Option<&str>) {
    let path = format!("/apis/apps/v1/namespaces/app/deployments/{name}");
    let (code, v) = api
        .apply(&path, "airlift", true, &deployment(name, image, secret))
        .await;
    assert!(code == 200 || code == 201, "{v}");
}

/// Waits for the first Pod of `app` to satisfy `pred`, and returns it.
async fn pod_where(api: &Api, app: &str, pred: impl Fn(&Value) -> bool) -> Value {
    let list = api
        .wait_for(
            &format!("/api/v1/namespaces/app/pods?labelSelector=app%3D{app}"),
            WAIT,
            |l| l["items"].as_array().unwrap().iter().any(&pred),
        )
        .await;
    list["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| pred(p))
        .cloned()
        .unwrap()
}

fn running(p: &Value) -> bool {
    p["status"]["phase"] == "Running"
        && p["status"]["containerStatuses"][0]["ready"] == true
        && p["status"]["containerStatuses"][0]["state"]["running"].is_object()
}

fn backing_off(p: &Value) -> bool {
    p["status"]["containerStatuses"][0]["state"]["waiting"]["reason"] == "ImagePullBackOff"
}

/// Waits for a Pod of `app` in ImagePullBackOff and returns its kubelet `Failed` Event message.
async fn pull_failure(api: &Api, app: &str, image: &str) -> String {
    let pod = pod_where(api, app, backing_off).await;
    assert_eq!(pod["status"]["phase"], "Pending");
    assert_eq!(
        pod["status"]["containerStatuses"][0]["state"]["waiting"]["message"],
        format!("Back-off pulling image \"{image}\"")
    );
    let name = pod["metadata"]["name"].as_str().unwrap();
    let events = api
        .wait_for(
            &format!("/api/v1/namespaces/app/events?fieldSelector=involvedObject.name%3D{name}"),
            WAIT,
            |l| l["items"].as_array().unwrap().len() >= 2,
        )
        .await;
    let items = events["items"].as_array().unwrap();
    assert!(
        items.iter().any(|e| e["reason"] == "BackOff"
            && e["type"] == "Warning"
            && e["message"] == format!("Back-off pulling image \"{image}\"")),
        "{items:#?}"
    );
    let failed = items
        .iter()
        .find(|e| e["reason"] == "Failed")
        .unwrap_or_else(|| panic!("no Failed event: {items:#?}"));
    assert_eq!(failed["type"], "Warning");
    assert_eq!(failed["source"]["component"], "kubelet");
    failed["message"].as_str().unwrap().to_string()
}

/// A `kubernetes.io/dockerconfigjson` Secret; `auth_only` writes just the `auth` field (as
/// `kubectl create secret docker-registry` does not, but many tools do).
async fn pull_secret(api: &Api, name: &str, host: &str, user: &str, password: &str) {
    pull_secret_as(api, name, host, user, password, false).await;
}

async fn pull_secret_as(
    api: &Api,
    name: &str,
    host: &str,
    user: &str,
    password: &str,
    auth_only: bool,
) {
    let b64 = base64::engine::general_purpose::STANDARD;
    let auth = b64.encode(format!("{user}:{password}"));
    let entry = if auth_only {
        json!({"auth": auth})
    } else {
        json!({"username": user, "password": password, "auth": "bm90OnVzZWQ="})
    };
    let config = json!({"auths": {format!("https://{host}"): entry}});
    let (code, v) = api
        .post(
            "/api/v1/namespaces/app/secrets",
            &json!({"metadata": {"name": name}, "type": "kubernetes.io/dockerconfigjson",
                "data": {".dockerconfigjson": b64.encode(config.to_string())}}),
        )
        .await;
    assert_eq!(code, 201, "{v}");
}

#[tokio::test]
async fn plain_registry_image_runs_with_its_digest_and_a_missing_tag_backs_off_until_pushed() {
    let (_dir, set) = images();
    let reg = TestRegistry::plain();
    let host = reg.host();
    let digest = reg.seed(&set.dir, "api", "acme/api:1.0");
    assert_eq!(digest, set.api.manifest.digest);
    let (_cluster, api) = start(ClusterOptions::default().insecure_registry(&host));
    api.create_namespace("app").await;

    let image = format!("{host}/acme/api:1.0");
    deploy(&api, "web", &image, None).await;
    let pod = pod_where(&api, "web", running).await;
    assert_eq!(
        pod["status"]["containerStatuses"][0]["imageID"],
        format!("{host}/acme/api@{digest}")
    );

    let missing = format!("{host}/acme/api:2.0");
    deploy(&api, "next", &missing, None).await;
    let message = pull_failure(&api, "next", &missing).await;
    assert_eq!(
        message,
        format!(
            "Failed to pull image \"{missing}\": rpc error: code = NotFound desc = failed to pull \
             and unpack image \"{missing}\": failed to resolve reference \"{missing}\": \
             {missing}: not found"
        )
    );

    // A real kubelet retries with back-off: once the image exists, the Pod runs.
    let pushed = reg.seed(&set.dir, "worker", "acme/api:2.0");
    let pod = pod_where(&api, "next", running).await;
    assert_eq!(
        pod["status"]["containerStatuses"][0]["imageID"],
        format!("{host}/acme/api@{pushed}")
    );

    // The knob still wins over the registry.
    _cluster.pull_digest(&format!("{host}/acme/ghost:1"), &digest.to_string());
    deploy(&api, "ghost", &format!("{host}/acme/ghost:1"), None).await;
    let pod = pod_where(&api, "ghost", running).await;
    assert_eq!(
        pod["status"]["containerStatuses"][0]["imageID"],
        format!("{host}/acme/ghost@{digest}")
    );
}

#[tokio::test]
async fn an_index_gives_the_nodes_platform_and_a_single_platform_mismatch_fails() {
    let (_dir, set) = images();
    let reg = TestRegistry::plain();
    let host = reg.host();
    let index = reg.seed(&set.dir, "multi", "acme/multi:1");
    assert_eq!(index, set.multi.index.digest);
    reg.seed(&set.dir, "api", "acme/api:1.0");
    let (_cluster, api) = start(
        ClusterOptions::default()
            .with_nodes(&["arm64"])
            .insecure_registry(&host),
    );
    api.create_namespace("app").await;

    // containerd reports the repo digest of what the tag names: the index.
    deploy(&api, "multi", &format!("{host}/acme/multi:1"), None).await;
    let pod = pod_where(&api, "multi", running).await;
    assert_eq!(
        pod["status"]["containerStatuses"][0]["imageID"],
        format!("{host}/acme/multi@{index}")
    );

    // Pinned to the index's amd64-only child: no arm64 entry to pick.
    let amd = &set.multi.images[0];
    assert_eq!(amd.platform, "linux/amd64");
    for (app, image) in [
        ("amd", format!("{host}/acme/api:1.0")),
        (
            "child",
            format!("{host}/acme/multi@{}", amd.manifest.digest),
        ),
    ] {
        deploy(&api, app, &image, None).await;
        let message = pull_failure(&api, app, &image).await;
        assert_eq!(
            message,
            format!(
                "Failed to pull image \"{image}\": rpc error: code = NotFound desc = failed to \
                 pull and unpack image \"{image}\": no match for platform in manifest: not found"
            )
        );
    }
}

#[tokio::test]
async fn tls_registry_needs_its_ca_and_the_right_pull_secret() {
    let (_dir, set) = images();
    let reg = TestRegistry::tls_with_auth("alice", "s3cret");
    let host = reg.host();
    let digest = reg.seed(&set.dir, "api", "acme/api:1.0");
    let ca = std::fs::read_to_string(reg.ca_pem().unwrap()).unwrap();
    let image = format!("{host}/acme/api:1.0");
    let (_cluster, api) = start(ClusterOptions::default().registry_ca(&ca));
    api.create_namespace("app").await;
    pull_secret(&api, "good", &host, "alice", "s3cret").await;
    pull_secret_as(&api, "auth-only", &host, "alice", "s3cret", true).await;
    pull_secret(&api, "bad", &host, "alice", "wrong").await;

    for app in ["good", "auth-only"] {
        deploy(&api, app, &image, Some(app)).await;
        let pod = pod_where(&api, app, running).await;
        assert_eq!(
            pod["status"]["containerStatuses"][0]["imageID"],
            format!("{host}/acme/api@{digest}")
        );
    }

    let unauthorized = format!(
        "Failed to pull image \"{image}\": rpc error: code = Unknown desc = failed to pull and \
         unpack image \"{image}\": failed to resolve reference \"{image}\": unexpected status \
         from HEAD request to https://{host}/v2/acme/api/manifests/1.0: 401 Unauthorized"
    );
    deploy(&api, "bad", &image, Some("bad")).await;
    assert_eq!(pull_failure(&api, "bad", &image).await, unauthorized);
    deploy(&api, "anonymous", &image, None).await;
    assert_eq!(pull_failure(&api, "anonymous", &image).await, unauthorized);

    // A node that does not trust the registry's CA cannot even connect.
    let (_other, api) = start(ClusterOptions::default().pull_images());
    api.create_namespace("app").await;
    pull_secret(&api, "good", &host, "alice", "s3cret").await;
    deploy(&api, "good", &image, Some("good")).await;
    let message = pull_failure(&api, "good", &image).await;
    let prefix = format!(
        "Failed to pull image \"{image}\": rpc error: code = Unknown desc = failed to pull and \
         unpack image \"{image}\": failed to resolve reference \"{image}\": failed to do \
         request: Head \
         \"https://{host}/v2/acme/api/manifests/1.0\": "
    );
    assert!(message.starts_with(&prefix), "{message}");
    assert!(message.to_lowercase().contains("certificate"), "{message}");
}
