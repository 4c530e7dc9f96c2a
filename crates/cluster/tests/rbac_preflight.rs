//! A user with no rights (issue 16): preflight reports every permission the install and the
//! engine itself need (release records, the release lock, the namespace) in one error with exit
//! kind Preflight, and a 403 from reading the release history becomes that same kind of error.
//! Test cluster only: a real cluster would need an admin to create a user allowed nothing.

mod common;

use airlift_bundle::schema::common::Requirements;
use airlift_bundle::{Diagnose, ExitKind, NoProgress};
use airlift_cluster::lifecycle::Engine;
use airlift_cluster::preflight::{
    forbidden_as_preflight, preflight, PreflightError, PreflightInput,
};
use airlift_cluster::{Cluster, ConnectOptions};
use airlift_testkit::cluster::{ClusterOptions, TestCluster};
use common::*;
use serde_json::json;

async fn connect_as(cluster: &TestCluster, user: &str) -> Cluster {
    Cluster::connect(&ConnectOptions {
        kubeconfig: Some(cluster.kubeconfig_path().to_path_buf()),
        context: Some(user.to_string()),
    })
    .await
    .unwrap_or_else(|e| panic!("connect as {user}: {e}"))
}

fn requirements() -> Requirements {
    Requirements {
        kubernetes: ">=1.28.0".into(),
        platforms: vec!["linux/amd64".parse().expect("a platform")],
        storage_classes: vec![],
        crds: vec![],
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_user_with_no_rights_gets_one_preflight_error_listing_every_missing_permission() {
    let test = TestCluster::start(ClusterOptions::default().with_user("nobody")).unwrap();
    let cluster = connect_as(&test, "nobody").await;
    let engine = Engine::new(&cluster, &NoProgress);
    let ns = unique("norights");
    let objects = demo_objects(&ns, 1, GOOD_IMAGE_V1, "pw");
    let req = requirements();
    let err = preflight(
        engine.resolver(),
        &PreflightInput {
            requirements: &req,
            objects: &objects,
            namespace: &ns,
        },
    )
    .await
    .unwrap_err();
    assert_eq!(err.exit_kind(), ExitKind::Preflight);
    assert_eq!(err.exit_kind().code(), 7);
    let PreflightError::Failed(report) = &err;
    let text = err.to_string();
    for needed in [
        "forbidden to get/list/create/update/patch/delete secrets in namespace",
        "forbidden to get/list/create/update/patch/delete leases.coordination.k8s.io in namespace",
        "forbidden to create/patch/get/list/delete namespaces cluster-wide",
        &format!("forbidden to get namespaces named `{ns}`"),
        "forbidden to create/patch/get/list/delete deployments.apps",
        "forbidden to create/patch/get/list/delete persistentvolumeclaims",
        "forbidden to get/list pods",
    ] {
        assert!(text.contains(needed), "missing `{needed}` in:\n{text}");
    }
    assert!(report.failures().count() >= 8, "{report}");
    // Nothing was created.
    assert!(test.object("", "namespaces", "", &ns).is_none());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_403_reading_the_release_history_becomes_a_preflight_failure() {
    let test = TestCluster::start(ClusterOptions::default().with_user("reader")).unwrap();
    // Allowed to read the records, not to write them or to take the lock.
    test.grant(
        "reader",
        Some("default"),
        json!([{"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]}]),
    );
    let cluster = connect_as(&test, "reader").await;
    let engine = Engine::new(&cluster, &NoProgress);
    let err = engine.status("default", "demo").await.unwrap_err();
    let failure = forbidden_as_preflight(engine.resolver(), "default", &err)
        .await
        .unwrap_or_else(|| panic!("a 403 is explained: {err}"));
    assert_eq!(failure.exit_kind(), ExitKind::Preflight);
    let text = failure.to_string();
    assert!(
        text.contains(
            "forbidden to list/create/update/patch/delete secrets in namespace `default`"
        ),
        "{text}"
    );
    assert!(text.contains("leases.coordination.k8s.io"), "{text}");
    assert!(!text.contains("Status {"), "{text}");

    // Any other error is not a preflight failure.
    let admin = Cluster::connect(&ConnectOptions {
        kubeconfig: Some(test.kubeconfig_path().to_path_buf()),
        context: None,
    })
    .await
    .unwrap();
    let engine = Engine::new(&admin, &NoProgress);
    let other = std::io::Error::other("not a 403");
    assert!(forbidden_as_preflight(engine.resolver(), "default", &other)
        .await
        .is_none());
}
