//! Objects of one phase go to the server concurrently (issue 12), but phases stay in order: no
//! object of a later phase is written before every object of the earlier ones is applied. Against
//! the test cluster (and a real cluster when `AIRLIFT_E2E_KUBECONFIG` is set; the request-order
//! check needs the test cluster's request log).

mod common;

use airlift_bundle::NoProgress;
use airlift_cluster::lifecycle::Engine;
use airlift_cluster::ManagedObject;
use airlift_testkit::cluster::ClusterOptions;
use common::*;
use serde_json::json;

const EXTRA: usize = 30;

fn many(ns: &str) -> Vec<ManagedObject> {
    let mut objects = demo_objects(ns, 1, GOOD_IMAGE_V1, "pw");
    for i in 0..EXTRA {
        let kind = if i % 2 == 0 { "ConfigMap" } else { "Secret" };
        objects.push(
            ManagedObject::new(
                "web",
                2,
                0,
                json!({"apiVersion": "v1", "kind": kind,
                       "metadata": {"name": format!("extra-{i}")}, "data": {}}),
            )
            .expect("a valid object"),
        );
    }
    objects
}

#[tokio::test(flavor = "multi_thread")]
async fn a_big_phase_is_applied_whole_before_the_next_phase_starts() {
    for env in envs(ClusterOptions::default()) {
        println!("tier: {}", env.tier);
        let cluster = env.connect().await;
        let engine = Engine::new(&cluster, &NoProgress);
        let ns = unique("batches");
        let before = env.test.as_ref().map(|t| t.requests().len());
        let outcome = engine
            .install(&demo_request("demo", &ns, "1.0.0", many(&ns)), &options())
            .await
            .unwrap_or_else(|e| panic!("[{}] {e}: {}", env.tier, e.hint()));
        for i in 0..EXTRA {
            let kind = if i % 2 == 0 { "ConfigMap" } else { "Secret" };
            let name = format!("extra-{i}");
            assert!(
                live(&cluster, "v1", kind, Some(&ns), &name).await.is_some(),
                "[{}] {kind} {name} {outcome:?}",
                env.tier
            );
        }
        if let (Some(t), Some(n)) = (&env.test, before) {
            // The apply writes (server-side apply PATCHes, not dry runs) in the order the server
            // answered them.
            let writes: Vec<String> = t.requests()[n..]
                .iter()
                .filter(|r| r.method == "PATCH" && !r.query.contains("dryRun=All"))
                .filter(|r| r.path.contains(&format!("/namespaces/{ns}/")))
                // Release records are written by the lifecycle, not by the apply.
                .filter(|r| !r.path.contains("/secrets/airlift-release-"))
                .map(|r| r.path.clone())
                .collect();
            let phase = |p: &String| {
                if p.contains("/serviceaccounts/") {
                    1
                } else if p.contains("/configmaps/")
                    || p.contains("/secrets/")
                    || p.contains("/persistentvolumeclaims/")
                {
                    2
                } else if p.contains("/services/") {
                    3
                } else if p.contains("/deployments/") {
                    4
                } else {
                    0
                }
            };
            let phases: Vec<u8> = writes.iter().map(phase).filter(|&p| p > 0).collect();
            assert!(phases.len() >= EXTRA + 5, "{writes:#?}");
            assert!(
                phases.windows(2).all(|w| w[0] <= w[1]),
                "a later phase was written before an earlier one finished: {writes:#?}"
            );
        }
        cleanup(&cluster, &ns, "demo").await;
    }
}
