//! The rollout: stage by stage, at most `maxParallel` clusters at once, each through its own
//! `airlift_deploy::Deployer` (upgrade, or install where the release is not there yet; a failed
//! upgrade rolls back on its own), then the gates, then the bake time during which the gates
//! are checked again; `onFailure` decides whether a failure halts.
//!
//! Each cluster's release records are the truth: a cluster whose deployed revision is the
//! target bundle (same digest) and passes the gates is skipped with reads only. A killed
//! rollout run again therefore continues where it stopped and does nothing twice.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use airlift_bundle::{Bundle, Diagnose, Digest, ExitKind, NoProgress};
use airlift_cluster::cancel::Cancel;
use airlift_cluster::lifecycle::DeployOptions;
use airlift_cluster::readiness::WaitOptions;
use airlift_cluster::release::BundleInfo;
use airlift_cluster::Cluster;
use airlift_deploy::registry::{chain, SharedPushes};
use airlift_deploy::releases::{self, StatusReport};
use airlift_deploy::{Deployer, Intent, NonInteractive};
use futures::StreamExt;
use serde::Serialize;

use crate::error::FleetError;
use crate::gates::{not_installed, release_problems, HttpGates};
use crate::model::OnFailure;
use crate::validate::{ResolvedCluster, ResolvedFleet, ResolvedStage};

/// What happened to one cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum ClusterResult {
    /// Already healthy at the target: only read.
    AlreadyCurrent,
    /// Upgraded to the target and healthy.
    Upgraded,
    /// Installed at the target and healthy.
    Installed,
    /// Failed; the previous revision was restored (by the upgrade itself or after a gate).
    RolledBack,
    /// Failed and left as it is (nothing to roll back to, or the rollback failed).
    Failed,
    /// Not started: the rollout halted or was interrupted first.
    NotStarted,
    /// Stopped at a safe point by Ctrl-C.
    Interrupted,
}

impl ClusterResult {
    /// Whether the cluster counts as a failure of the rollout.
    pub fn failed(self) -> bool {
        matches!(self, Self::RolledBack | Self::Failed)
    }

    /// A word for the progress line and the table.
    pub fn word(self) -> &'static str {
        match self {
            Self::AlreadyCurrent => "current",
            Self::Upgraded => "upgraded",
            Self::Installed => "installed",
            Self::RolledBack => "rolled back",
            Self::Failed => "failed",
            Self::NotStarted => "not started",
            Self::Interrupted => "interrupted",
        }
    }
}

/// One cluster's line of the rollout report.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ClusterReport {
    /// The cluster.
    pub cluster: String,
    /// Its stage.
    pub stage: String,
    /// What happened.
    pub result: ClusterResult,
    /// The version it ran before, if any.
    pub from: Option<String>,
    /// The version it runs now, as its records say.
    pub version: Option<String>,
    /// The revision deployed now.
    pub revision: Option<u32>,
    /// Why it failed, when it did.
    pub reason: Option<String>,
    /// How long it took, in milliseconds.
    pub elapsed_ms: u64,
}

/// Where a rollout stopped because of a failure.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Halt {
    /// The stage.
    pub stage: String,
    /// The cluster.
    pub cluster: String,
    /// Why.
    pub reason: String,
}

/// What a rollout did, cluster by cluster.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RolloutReport {
    /// The fleet.
    pub fleet: String,
    /// The bundle rolled out.
    pub target: BundleInfo,
    /// Every cluster, in stage order.
    pub clusters: Vec<ClusterReport>,
    /// Where it halted, if it did.
    pub halted: Option<Halt>,
    /// Whether Ctrl-C stopped it.
    pub interrupted: bool,
    /// `N of M clusters at VERSION`.
    pub summary: String,
}

impl RolloutReport {
    /// The error the rollout ends with, if it did not reach every cluster.
    pub fn error(&self) -> Option<FleetError> {
        if self.interrupted {
            return Some(FleetError::Interrupted);
        }
        if let Some(h) = &self.halted {
            return Some(FleetError::Halted {
                stage: h.stage.clone(),
                cluster: h.cluster.clone(),
                reason: h.reason.clone(),
            });
        }
        let failed: Vec<String> = self
            .clusters
            .iter()
            .filter(|c| c.result.failed())
            .map(|c| c.cluster.clone())
            .collect();
        (!failed.is_empty()).then_some(FleetError::Failed { clusters: failed })
    }
}

/// A step of the rollout, for one progress line per cluster and the bake timer.
#[derive(Debug, Clone)]
pub enum Event<'a> {
    /// A stage starts.
    Stage {
        /// The stage.
        stage: &'a str,
        /// Its clusters.
        clusters: usize,
    },
    /// A cluster changes state (`checking`, `upgrading 0.1.0 -> 0.2.0`, `gates`, a result).
    Cluster {
        /// The stage.
        stage: &'a str,
        /// The cluster.
        cluster: &'a str,
        /// The state, in words.
        state: &'a str,
        /// Time since the cluster started.
        elapsed: Duration,
    },
    /// The stage bakes: time left.
    Baking {
        /// The stage.
        stage: &'a str,
        /// Time left.
        remaining: Duration,
        /// The whole bake time.
        total: Duration,
    },
}

/// Receives rollout events (the binary prints them; tests may record them).
pub trait Reporter: Send + Sync {
    /// One event.
    fn event(&self, event: &Event<'_>);
}

/// Reports nothing.
#[derive(Debug, Clone, Copy, Default)]
pub struct Silent;

impl Reporter for Silent {
    fn event(&self, _: &Event<'_>) {}
}

/// A rollout of one verified bundle over a resolved fleet.
pub struct Rollout<'a> {
    fleet: &'a ResolvedFleet,
    file: &'a Path,
    bundle: Arc<Bundle>,
    target: BundleInfo,
    reporter: Arc<dyn Reporter>,
    cancel: Cancel,
    /// Take release locks even if another operation holds them.
    pub force_unlock: bool,
    /// The bundle's images are pushed once per distinct registry destination.
    pushes: Arc<SharedPushes>,
}

struct Ctx<'s> {
    stage: &'s ResolvedStage,
    gates: HttpGates,
}

impl<'a> Rollout<'a> {
    /// A rollout of `bundle` (already verified) over `fleet`, read from `file`.
    pub fn new(
        fleet: &'a ResolvedFleet,
        file: &'a Path,
        bundle: Arc<Bundle>,
        reporter: Arc<dyn Reporter>,
        cancel: Cancel,
    ) -> Self {
        let m = bundle.manifest();
        let target = BundleInfo {
            name: m.metadata.name.clone(),
            version: m.metadata.version.clone(),
            digest: Digest::of_bytes(bundle.manifest_bytes()).to_string(),
        };
        Self {
            fleet,
            file,
            bundle,
            target,
            reporter,
            cancel,
            force_unlock: false,
            pushes: Arc::new(SharedPushes::new()),
        }
    }

    fn options(&self) -> DeployOptions {
        DeployOptions {
            wait: WaitOptions {
                timeout: self.fleet.timeout,
                ..WaitOptions::default()
            },
            cancel: self.cancel.clone(),
            ..DeployOptions::default()
        }
    }

    /// Runs every stage. Errors only when the fleet cannot start (a gate's client); failures
    /// of clusters are in the report ([`RolloutReport::error`]).
    pub async fn run(&self) -> Result<RolloutReport, FleetError> {
        // Missing registry passwords are found before any cluster is touched.
        for c in &self.fleet.clusters {
            c.site()?;
        }
        let mut contexts = Vec::new();
        for stage in &self.fleet.stages {
            contexts.push(Ctx {
                stage,
                gates: HttpGates::new(&stage.gates, self.file)?,
            });
        }
        let mut reports: Vec<ClusterReport> = Vec::new();
        let mut halted = None;
        let mut stopped = false;
        for ctx in &contexts {
            let stage = ctx.stage;
            if stopped || self.cancel.is_cancelled() {
                reports.extend(stage.clusters.iter().map(|&i| self.not_started(i, stage)));
                continue;
            }
            self.reporter.event(&Event::Stage {
                stage: &stage.name,
                clusters: stage.clusters.len(),
            });
            let mut done = self.run_stage(ctx).await;
            if !done.iter().any(|r| r.result.failed()) || stage.on_failure == OnFailure::Continue {
                self.bake(ctx, &mut done).await;
            }
            if let Some(f) = done.iter().find(|r| r.result.failed()) {
                if stage.on_failure == OnFailure::Halt {
                    halted = Some(Halt {
                        stage: stage.name.clone(),
                        cluster: f.cluster.clone(),
                        reason: f.reason.clone().unwrap_or_default(),
                    });
                    stopped = true;
                }
            }
            if self.cancel.is_cancelled() {
                stopped = true;
            }
            reports.extend(done);
        }
        let at = reports
            .iter()
            .filter(|r| r.version.as_deref() == Some(self.target.version.as_str()))
            .filter(|r| !r.result.failed())
            .count();
        Ok(RolloutReport {
            fleet: self.fleet.name.clone(),
            target: self.target.clone(),
            summary: format!(
                "{at} of {} clusters at {}",
                reports.len(),
                self.target.version
            ),
            clusters: reports,
            halted,
            interrupted: self.cancel.is_cancelled(),
        })
    }

    fn not_started(&self, i: usize, stage: &ResolvedStage) -> ClusterReport {
        ClusterReport {
            cluster: self.fleet.clusters[i].name.clone(),
            stage: stage.name.clone(),
            result: ClusterResult::NotStarted,
            from: None,
            version: None,
            revision: None,
            reason: None,
            elapsed_ms: 0,
        }
    }

    async fn run_stage(&self, ctx: &Ctx<'_>) -> Vec<ClusterReport> {
        let stage = ctx.stage;
        let halt = AtomicBool::new(false);
        let halt = &halt;
        let mut done: Vec<(usize, ClusterReport)> = futures::stream::iter(stage.clusters.clone())
            .map(|i| async move {
                if halt.load(Ordering::SeqCst) || self.cancel.is_cancelled() {
                    let r = self.not_started(i, stage);
                    self.emit(stage, &r.cluster, r.result.word(), Duration::ZERO);
                    return (i, r);
                }
                let r = self.run_cluster(i, ctx).await;
                if r.result.failed() && stage.on_failure == OnFailure::Halt {
                    halt.store(true, Ordering::SeqCst);
                }
                (i, r)
            })
            .buffer_unordered(stage.max_parallel)
            .collect()
            .await;
        done.sort_by_key(|(i, _)| *i);
        done.into_iter().map(|(_, r)| r).collect()
    }

    fn emit(&self, stage: &ResolvedStage, cluster: &str, state: &str, elapsed: Duration) {
        self.reporter.event(&Event::Cluster {
            stage: &stage.name,
            cluster,
            state,
            elapsed,
        });
    }

    async fn run_cluster(&self, i: usize, ctx: &Ctx<'_>) -> ClusterReport {
        let c = &self.fleet.clusters[i];
        let stage = ctx.stage;
        let start = Instant::now();
        let mut report = ClusterReport {
            cluster: c.name.clone(),
            stage: stage.name.clone(),
            result: ClusterResult::Failed,
            from: None,
            version: None,
            revision: None,
            reason: None,
            elapsed_ms: 0,
        };
        self.emit(stage, &c.name, "checking", start.elapsed());
        let outcome = self.deploy_cluster(c, ctx, &mut report, start).await;
        if let Err(reason) = outcome {
            report.reason = Some(reason);
        }
        report.elapsed_ms = u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX);
        let state = match (&report.result, &report.reason) {
            (r, Some(reason)) => format!("{}: {reason}", r.word()),
            (r, None) => format!(
                "{} {}{}",
                r.word(),
                report.version.as_deref().unwrap_or("-"),
                report
                    .revision
                    .map(|n| format!(" (revision {n})"))
                    .unwrap_or_default()
            ),
        };
        self.emit(stage, &c.name, &state, start.elapsed());
        report
    }

    /// Brings one cluster to the target; `Err(reason)` with `report.result` set on failure.
    async fn deploy_cluster(
        &self,
        c: &ResolvedCluster,
        ctx: &Ctx<'_>,
        report: &mut ClusterReport,
        start: Instant,
    ) -> Result<(), String> {
        let stage = ctx.stage;
        let site = c.site().map_err(|e| e.to_string())?;
        let cluster = Cluster::connect(&c.connect)
            .await
            .map_err(|e| format!("cannot connect: {}", chain(&e)))?;
        let (release, namespace) = c.release_names(&self.target.name);
        let before = read_status(&cluster, &namespace, &release).await?;
        let deployed = before.as_ref().and_then(|b| b.deployed.clone());
        report.from = deployed.as_ref().map(|d| d.bundle.version.clone());
        report.version = report.from.clone();
        report.revision = deployed.as_ref().map(|d| d.revision);
        if let (Some(b), Some(d)) = (&before, &deployed) {
            if d.bundle.digest == self.target.digest {
                let problems = self.problems(b, ctx, &c.name).await;
                if problems.is_empty() {
                    report.result = ClusterResult::AlreadyCurrent;
                    return Ok(());
                }
                self.emit(
                    stage,
                    &c.name,
                    &format!(
                        "at the target but unhealthy ({}); deploying again",
                        problems[0]
                    ),
                    start.elapsed(),
                );
            }
        }
        let intent = if deployed.is_some() {
            Intent::Upgrade
        } else {
            Intent::Install
        };
        let verb = match (&report.from, intent) {
            (Some(from), _) => format!("upgrading {from} -> {}", self.target.version),
            (None, _) => format!("installing {}", self.target.version),
        };
        self.emit(stage, &c.name, &verb, start.elapsed());
        let deployer = Deployer::new(
            &cluster,
            Arc::new(NoProgress),
            &NonInteractive,
            self.cancel.clone(),
        )
        .with_shared_pushes(self.pushes.clone());
        let deployed_now = async {
            let prepared = deployer.prepare(self.bundle.clone(), &site, intent).await?;
            deployer
                .deploy(&prepared, intent, &self.options(), self.force_unlock)
                .await
        }
        .await;
        match deployed_now {
            Ok(done) => {
                report.version = Some(done.bundle.version.clone());
                report.revision = Some(done.outcome.revision);
            }
            Err(e) => {
                report.result = match e.exit_kind() {
                    ExitKind::RolledBack => ClusterResult::RolledBack,
                    ExitKind::Interrupted => ClusterResult::Interrupted,
                    _ => ClusterResult::Failed,
                };
                return Err(chain(&e));
            }
        }
        self.emit(stage, &c.name, "checking gates", start.elapsed());
        let problems = match read_status(&cluster, &namespace, &release).await? {
            Some(now) => self.problems(&now, ctx, &c.name).await,
            None => vec!["the release records vanished".to_string()],
        };
        if !problems.is_empty() {
            return Err(self.undo(&cluster, c, report, &problems.join("; ")).await);
        }
        report.result = if report.from.is_some() {
            ClusterResult::Upgraded
        } else {
            ClusterResult::Installed
        };
        Ok(())
    }

    /// Every gate's problems for a release whose status is `status`.
    async fn problems(&self, status: &StatusReport, ctx: &Ctx<'_>, cluster: &str) -> Vec<String> {
        let mut problems = release_problems(status, ctx.stage.gates.drift);
        problems.extend(ctx.gates.problems(cluster).await);
        problems
    }

    /// A cluster failed its gates after deploying: restores the previous revision when there
    /// is one. Sets the result; returns the reason.
    async fn undo(
        &self,
        cluster: &Cluster,
        c: &ResolvedCluster,
        report: &mut ClusterReport,
        why: &str,
    ) -> String {
        let (release, namespace) = c.release_names(&self.target.name);
        if report.from.is_none() {
            report.result = ClusterResult::Failed;
            return format!("gate failed: {why} (a first install: nothing to roll back to)");
        }
        let mut options = self.options();
        // The rollback runs to its end even when Ctrl-C came: a half-restored cluster helps
        // nobody.
        options.cancel = Cancel::new();
        match releases::rollback(
            cluster,
            &NoProgress,
            &namespace,
            &release,
            None,
            &options,
            self.force_unlock,
        )
        .await
        {
            Ok(outcome) => {
                report.result = ClusterResult::RolledBack;
                report.version = report.from.clone();
                report.revision = Some(outcome.revision);
                format!(
                    "gate failed: {why}; rolled back to {} (revision {})",
                    report.from.as_deref().unwrap_or("-"),
                    outcome.revision
                )
            }
            Err(e) => {
                report.result = ClusterResult::Failed;
                format!("gate failed: {why}; the rollback failed too: {}", chain(&e))
            }
        }
    }

    /// Keeps the stage under watch for its bake time: the gates of every cluster that reached
    /// the target are checked every `gateInterval`; a failing one is rolled back.
    async fn bake(&self, ctx: &Ctx<'_>, done: &mut [ClusterReport]) {
        let stage = ctx.stage;
        let total = stage.bake_time;
        if total.is_zero() {
            return;
        }
        let start = Instant::now();
        let mut clusters: BTreeMap<usize, Cluster> = BTreeMap::new();
        loop {
            let elapsed = start.elapsed();
            if elapsed >= total || self.cancel.is_cancelled() {
                return;
            }
            let remaining = total - elapsed;
            self.reporter.event(&Event::Baking {
                stage: &stage.name,
                remaining,
                total,
            });
            tokio::select! {
                _ = tokio::time::sleep(remaining.min(self.fleet.gate_interval)) => {}
                _ = self.cancel.cancelled() => return,
            }
            for (n, report) in done.iter_mut().enumerate() {
                if report.result.failed()
                    || !matches!(
                        report.result,
                        ClusterResult::AlreadyCurrent
                            | ClusterResult::Upgraded
                            | ClusterResult::Installed
                    )
                {
                    continue;
                }
                let i = stage.clusters[n];
                let c = &self.fleet.clusters[i];
                if let std::collections::btree_map::Entry::Vacant(e) = clusters.entry(i) {
                    match Cluster::connect(&c.connect).await {
                        Ok(cluster) => {
                            e.insert(cluster);
                        }
                        Err(err) => {
                            report.result = ClusterResult::Failed;
                            report.reason = Some(format!("cannot connect: {}", chain(&err)));
                            continue;
                        }
                    }
                }
                let Some(cluster) = clusters.get(&i) else {
                    continue;
                };
                let (release, namespace) = c.release_names(&self.target.name);
                let problems = match read_status(cluster, &namespace, &release).await {
                    Ok(Some(s)) => self.problems(&s, ctx, &c.name).await,
                    Ok(None) => vec!["the release records vanished".to_string()],
                    Err(e) => vec![e],
                };
                if problems.is_empty() {
                    continue;
                }
                let why = format!("while baking: {}", problems.join("; "));
                let reason = self.undo(cluster, c, report, &why).await;
                report.reason = Some(reason.clone());
                self.emit(
                    stage,
                    &c.name,
                    &format!("{}: {reason}", report.result.word()),
                    start.elapsed(),
                );
                if stage.on_failure == OnFailure::Halt {
                    return;
                }
            }
        }
    }
}

/// The release's status, `None` when it is not installed.
async fn read_status(
    cluster: &Cluster,
    namespace: &str,
    release: &str,
) -> Result<Option<StatusReport>, String> {
    match releases::status(cluster, &NoProgress, namespace, release).await {
        Ok(r) => Ok(Some(r)),
        Err(e) if not_installed(&e) => Ok(None),
        Err(e) => Err(format!("cannot read the release: {}", chain(&e))),
    }
}
