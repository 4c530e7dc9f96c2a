//! What an operator reads when the API server refuses something (issue 16): its message once,
//! with field path and cause, long values shortened, never a `Debug` dump of `Status`, and a
//! hint that does not repeat it. Test cluster only: the long invalid name is its own fixture.

mod common;

use airlift_bundle::{Diagnose, ExitKind, NoProgress};
use airlift_cluster::lifecycle::Engine;
use airlift_cluster::ManagedObject;
use airlift_testkit::cluster::ClusterOptions;
use common::*;
use serde_json::json;

/// The error and its sources, one per line, as the binaries print them.
fn chain(e: &(dyn std::error::Error + 'static)) -> Vec<String> {
    let mut out = vec![e.to_string()];
    let mut cur = e.source();
    while let Some(s) = cur {
        out.push(s.to_string());
        cur = s.source();
    }
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn an_invalid_object_is_reported_once_readably_with_its_long_value_shortened() {
    let env = envs(ClusterOptions::default()).remove(0);
    let cluster = env.connect().await;
    let engine = Engine::new(&cluster, &NoProgress);
    let ns = unique("errtext");
    let long_name = format!("Bad{}", "x".repeat(400));
    let mut objects = demo_objects(&ns, 1, GOOD_IMAGE_V1, "pw");
    objects.push(
        ManagedObject::new(
            "web",
            2,
            0,
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": long_name},
                   "data": {"a": "b"}}),
        )
        .unwrap(),
    );
    let err = engine
        .install(&demo_request("demo", &ns, "1.0.0", objects), &options())
        .await
        .unwrap_err();
    let lines = chain(&err);
    let text = lines.join("\n  Caused by: ");
    assert!(!text.contains("Status {"), "{text}");
    assert!(!text.contains("ErrorResponse {"), "{text}");
    assert!(!text.contains("ApiError:"), "{text}");
    assert_eq!(
        text.matches("is invalid").count(),
        1,
        "the server's message appears once: {text}"
    );
    let server = lines.last().unwrap();
    assert!(
        server.starts_with("ConfigMap \"Badxxx")
            && server.contains("metadata.name: Invalid value: \"Badxxx"),
        "{server}"
    );
    assert!(
        server.contains("…: a lowercase RFC 1123 subdomain"),
        "{server}"
    );
    assert!(
        !server.contains(&long_name),
        "the value is shortened: {server}"
    );
    let hint = err.hint();
    assert!(
        !hint.contains("is invalid"),
        "the hint never repeats the message: {hint}"
    );
    assert_eq!(err_kind(&err), ExitKind::Cluster);
}

fn err_kind(err: &airlift_cluster::lifecycle::LifecycleError) -> ExitKind {
    use airlift_cluster::lifecycle::{DeployFailure, LifecycleError};
    match err {
        LifecycleError::Failed {
            cause: DeployFailure::Apply(a),
            ..
        } => a.exit_kind(),
        other => panic!("expected an apply failure, got {other}"),
    }
}
