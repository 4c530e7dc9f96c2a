//! Observations 5 and 6: an interrupted install or upgrade stops at a safe point, records the
//! revision as interrupted, releases the lock and says how to go on; running the command again
//! converges. One operation at a time per release: a held lock refuses a second one at once,
//! naming the holder; a stale lock is taken over.

#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;

use airlift_bundle::{Diagnose, ExitKind, NoProgress, Progress};
use airlift_cluster::cancel::Cancel;
use airlift_cluster::lifecycle::LifecycleError;
use airlift_cluster::lock::{lease_name, ReleaseLock};
use airlift_cluster::release::ReleaseStatus;
use airlift_deploy::{releases, DeployError, Intent};
use airlift_testkit::bundles::ShopVersion;
use common::{cleanup, deploy, deploy_with, envs, live, options, unique};

/// Sets `cancel` when the engine announces the step whose message starts with `prefix`, as a
/// Ctrl-C at that moment would.
struct CancelAt {
    prefix: &'static str,
    cancel: Cancel,
}

impl Progress for CancelAt {
    fn start(&self, _label: &str, _total: Option<u64>) {}
    fn advance(&self, _label: &str, _bytes: u64) {}
    fn finish(&self, _label: &str) {}
    fn message(&self, msg: &str) {
        if msg.starts_with(self.prefix) {
            self.cancel.cancel();
        }
    }
}

fn interrupted(e: &DeployError) -> (Option<u32>, Option<u32>) {
    match e.lifecycle() {
        Some(LifecycleError::Interrupted {
            revision, deployed, ..
        }) => (*revision, *deployed),
        _ => panic!("expected an interruption, got {e:?}"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn interrupted_deploys_say_so_and_a_rerun_converges() {
    for env in envs() {
        let cluster = env.connect().await;
        let ns = unique("intr");
        let site = env.site("shop", Some(&ns));
        let v1 = env.bundle(&ShopVersion::new("1.0.0"));
        let mut two = ShopVersion::new("2.0.0");
        two.extra =
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: extra\ndata:\n  a: b\n".into();
        let v2 = env.bundle(&two);

        // Ctrl-C as the first install starts applying.
        let cancel = Cancel::new();
        let progress = Arc::new(CancelAt {
            prefix: "install: release",
            cancel: cancel.clone(),
        });
        let err = deploy_with(
            &env,
            &v1,
            &site,
            Intent::Install,
            &options(),
            progress,
            cancel,
        )
        .await
        .unwrap_err();
        assert_eq!(err.exit_kind(), ExitKind::Interrupted, "[{}]", env.tier);
        assert_eq!(interrupted(&err), (Some(1), None));
        assert!(
            err.fix().unwrap().contains("uninstall shop"),
            "{:?}",
            err.fix()
        );
        let s = releases::status(&cluster, &NoProgress, &ns, "shop")
            .await
            .unwrap();
        assert_eq!(s.latest.status, ReleaseStatus::Interrupted);
        assert!(s.summary.contains("no revision deployed"), "{}", s.summary);
        assert!(s.locked_by.is_none(), "the lock was released");
        assert!(live(
            &cluster,
            "coordination.k8s.io/v1",
            "Lease",
            Some(&ns),
            &lease_name("shop")
        )
        .await
        .is_none());

        // The same command again converges.
        let done = deploy(&env, &v1, &site, Intent::Install).await.unwrap();
        assert_eq!(done.outcome.revision, 2);

        // Ctrl-C during an upgrade: the old revision stays recorded as deployed, status says
        // the last operation was interrupted, and `rollback` (no revision) returns to it.
        let cancel = Cancel::new();
        let progress = Arc::new(CancelAt {
            prefix: "upgrade: release",
            cancel: cancel.clone(),
        });
        let err = deploy_with(
            &env,
            &v2,
            &site,
            Intent::Upgrade,
            &options(),
            progress,
            cancel,
        )
        .await
        .unwrap_err();
        assert_eq!(interrupted(&err), (Some(3), Some(2)), "[{}]", env.tier);
        assert!(
            err.fix().unwrap().contains("rollback shop"),
            "{:?}",
            err.fix()
        );
        let s = releases::status(&cluster, &NoProgress, &ns, "shop")
            .await
            .unwrap();
        assert_eq!(s.deployed.as_ref().map(|d| d.revision), Some(2));
        assert!(s.summary.contains("interrupted"), "{}", s.summary);
        let back = releases::rollback(&cluster, &NoProgress, &ns, "shop", None, &options(), false)
            .await
            .unwrap();
        assert_eq!(back.revision, 4);
        // Whatever the interrupted upgrade created is gone again.
        assert!(live(&cluster, "v1", "ConfigMap", Some(&ns), "extra")
            .await
            .is_none());

        // And the upgrade run again converges to the new version.
        let up = deploy(&env, &v2, &site, Intent::Upgrade).await.unwrap();
        assert_eq!(up.outcome.revision, 5);
        assert!(live(&cluster, "v1", "ConfigMap", Some(&ns), "extra")
            .await
            .is_some());
        cleanup(&cluster, &ns, "shop").await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn one_operation_at_a_time_per_release() {
    for env in envs() {
        let cluster = env.connect().await;
        let ns = unique("lock");
        let site = env.site("shop", Some(&ns));
        let v1 = env.bundle(&ShopVersion::new("1.0.0"));
        deploy(&env, &v1, &site, Intent::Install).await.unwrap();

        // Someone else holds the lock: refused at once, naming the holder, nothing recorded.
        let held = ReleaseLock::acquire(cluster.client().clone(), &ns, "shop", "upgrade", false)
            .await
            .unwrap();
        let v2 = env.bundle(&ShopVersion::new("2.0.0"));
        let err = deploy(&env, &v2, &site, Intent::Upgrade).await.unwrap_err();
        assert_eq!(err.exit_kind(), ExitKind::Locked, "[{}] {err}", env.tier);
        assert_eq!(ExitKind::Locked.code(), 9);
        assert!(err.to_string().contains("pid"), "{err}");
        assert!(err.to_string().contains(": upgrade since"), "{err}");
        let s = releases::status(&cluster, &NoProgress, &ns, "shop")
            .await
            .unwrap();
        assert_eq!(s.history.len(), 1, "nothing recorded while locked");
        assert!(s.locked_by.is_some());
        let err = releases::uninstall(
            &cluster,
            &NoProgress,
            &ns,
            "shop",
            false,
            false,
            Default::default(),
        )
        .await
        .unwrap_err();
        assert_eq!(err.exit_kind(), ExitKind::Locked);
        // --force-unlock takes it over.
        drop(held);
        let forced = releases::rollback(
            &cluster,
            &NoProgress,
            &ns,
            "shop",
            Some(1),
            &options(),
            true,
        )
        .await
        .unwrap();
        assert_eq!(forced.revision, 2);

        // Two upgrades at once: one runs, the other is refused or finds it done; no record is
        // overwritten and none is marked failed.
        let (a, b) = tokio::join!(
            deploy(&env, &v2, &site, Intent::Upgrade),
            deploy(&env, &v2, &site, Intent::Upgrade)
        );
        for r in [&a, &b] {
            if let Err(e) = r {
                assert_eq!(e.exit_kind(), ExitKind::Locked, "[{}] {e}", env.tier);
            }
        }
        assert!(a.is_ok() || b.is_ok());
        let s = releases::status(&cluster, &NoProgress, &ns, "shop")
            .await
            .unwrap();
        let states: Vec<ReleaseStatus> = s.history.iter().map(|r| r.status).collect();
        assert!(
            !states.contains(&ReleaseStatus::Failed),
            "[{}] {states:?}",
            env.tier
        );
        assert_eq!(s.deployed.map(|d| d.bundle.version), Some("2.0.0".into()));
        cleanup(&cluster, &ns, "shop").await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stale_lock_is_taken_over() {
    use k8s_openapi::api::coordination::v1::Lease;
    use kube::api::{Api, Patch, PatchParams};
    for env in envs() {
        let cluster = env.connect().await;
        let ns = unique("stale");
        let site = env.site("shop", Some(&ns));
        let v1 = env.bundle(&ShopVersion::new("1.0.0"));
        deploy(&env, &v1, &site, Intent::Install).await.unwrap();
        // A process that died long ago left its lock.
        let lock = ReleaseLock::acquire(cluster.client().clone(), &ns, "shop", "upgrade", false)
            .await
            .unwrap();
        drop(lock);
        let leases: Api<Lease> = Api::namespaced(cluster.client().clone(), &ns);
        leases
            .patch(
                &lease_name("shop"),
                &PatchParams::default(),
                &Patch::Merge(serde_json::json!({"spec": {
                    "acquireTime": "2020-01-01T00:00:00.000000Z",
                    "renewTime": "2020-01-01T00:00:00.000000Z"}})),
            )
            .await
            .unwrap();
        let v2 = env.bundle(&ShopVersion::new("2.0.0"));
        deploy(&env, &v2, &site, Intent::Upgrade).await.unwrap();
        cleanup(&cluster, &ns, "shop").await;
    }
}
