//! Readiness ends early (issue 16): a Pod whose image cannot be pulled, or that keeps crashing,
//! fails the wait long before its timeout, with a diagnosis naming the pod, container, image and
//! reason; against the test cluster (and a real cluster when `AIRLIFT_E2E_KUBECONFIG` is set).

mod common;

use std::time::Duration;

use airlift_bundle::{Diagnose, ExitKind, NoProgress};
use airlift_cluster::lifecycle::{DeployFailure, DeployOptions, Engine, LifecycleError};
use airlift_cluster::readiness::{ReadinessError, WaitOptions};
use airlift_testkit::cluster::{ClusterOptions, FailureMode};
use common::*;

/// A timeout far longer than any test may take: the wait must end on its own.
fn patient() -> DeployOptions {
    DeployOptions {
        wait: WaitOptions {
            timeout: Duration::from_secs(3600),
            poll: Duration::from_millis(300),
            ..WaitOptions::default()
        },
        ..DeployOptions::default()
    }
}

fn readiness_failure(err: &LifecycleError) -> &ReadinessError {
    match err {
        LifecycleError::Failed {
            cause: DeployFailure::Readiness(r),
            ..
        } => r,
        other => panic!("expected a readiness failure, got {other}"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_image_that_cannot_be_pulled_ends_the_wait_early() {
    for env in envs(ClusterOptions::default()) {
        env.break_images();
        let cluster = env.connect().await;
        let engine = Engine::new(&cluster, &NoProgress);
        let ns = unique("pull");
        let err = engine
            .install(&demo(&ns, "1.0.0", 1, BROKEN_IMAGE, "pw"), &patient())
            .await
            .unwrap_err();
        let r = readiness_failure(&err);
        assert_eq!(r.exit_kind(), ExitKind::Cluster);
        let ReadinessError::NotReady {
            not_ready, early, ..
        } = r
        else {
            panic!("[{}] {r}", env.tier);
        };
        assert!(*early, "[{}] ended before the timeout: {r}", env.tier);
        let web = &not_ready[0];
        assert_eq!(web.object.name, "web");
        assert!(
            web.state
                .contains(&format!("cannot pull image {BROKEN_IMAGE}"))
                && web.state.contains("pod web-"),
            "[{}] {}",
            env.tier,
            web.state
        );
        let reasons = web.reasons.join("; ");
        assert!(reasons.contains("(container web)"), "{reasons}");
        assert!(reasons.contains("event Failed"), "{reasons}");
        cleanup(&cluster, &ns, "demo").await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_crash_loop_past_the_restart_threshold_ends_the_wait_early() {
    let env = envs(ClusterOptions::default()).remove(0);
    let test = env.test.as_ref().unwrap();
    test.fail_workload("web", FailureMode::CrashLoopBackOff);
    let cluster = env.connect().await;
    let engine = Engine::new(&cluster, &NoProgress);
    let ns = unique("crash");
    let err = engine
        .install(&demo(&ns, "1.0.0", 1, GOOD_IMAGE_V1, "pw"), &patient())
        .await
        .unwrap_err();
    let r = readiness_failure(&err);
    let ReadinessError::NotReady {
        not_ready, early, ..
    } = r
    else {
        panic!("{r}");
    };
    assert!(*early, "{r}");
    assert!(
        not_ready[0].state.contains("keeps crashing (3 restarts)"),
        "{}",
        not_ready[0].state
    );
    assert!(r.hint().contains("logs --previous"), "{}", r.hint());
}
