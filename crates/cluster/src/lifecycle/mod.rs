//! Install, upgrade (with automatic rollback), rollback, uninstall and status.
//!
//! Rollback and Secrets: release records never hold Secret values (see [`crate::release`]).
//! - An automatic rollback after a failed upgrade restores the previous Secrets exactly: their
//!   live data is read into memory before the upgrade touches anything, and re-applied from there.
//! - A manual rollback re-applies the old revision's Secrets with the data the cluster holds now
//!   for the keys that revision had; a key the cluster no longer has is an error naming the Secret
//!   (install that bundle version again instead).
//!
//! A failed upgrade never deletes anything the running release needs: pruning happens only after
//! every workload of the new set is ready. Nothing is deleted unless its live ownership names the
//! release ([`crate::ownership`]). Callers hold the release lock ([`crate::lock`]) around every
//! operation that writes.

mod deploy;
mod error;
mod remove;

use std::collections::BTreeMap;

use airlift_bundle::Progress;
use serde::Serialize;
use serde_json::Value;

use crate::apply::{fit_all, prepare};
use crate::cancel::Cancel;
use crate::kubeconfig::Cluster;
use crate::object::{ManagedObject, ObjectRef};
use crate::ownership::{fit_live, sort_by_owner, Conflict, Owner, OwnershipReport};
use crate::plan::{plan, ConfigDiff, Plan};
use crate::readiness::WaitOptions;
use crate::release::{
    BundleInfo, Release, ReleaseStatus, ReleaseStore, SiteInputs, DEFAULT_HISTORY,
};
use crate::resolve::Resolver;

pub use error::{DeployFailure, LifecycleError};

/// What to deploy.
#[derive(Debug, Clone)]
pub struct DeployRequest {
    /// The release name.
    pub release: String,
    /// The release namespace: holds the records, and namespaced objects that name none.
    pub namespace: String,
    /// The bundle.
    pub bundle: BundleInfo,
    /// The configuration in effect, secrets already replaced by fingerprints.
    pub config: BTreeMap<String, Value>,
    /// The bundle's SaaS defaults (non-secret items), recorded for later plans.
    pub saas_defaults: BTreeMap<String, Value>,
    /// The site's inputs, remembered for later upgrades.
    pub site: Option<SiteInputs>,
    /// Who runs the operation (the cluster identity), recorded with the revision.
    pub operator: Option<String>,
    /// The rendered objects.
    pub objects: Vec<ManagedObject>,
}

/// Knobs for deploys.
#[derive(Debug, Clone)]
pub struct DeployOptions {
    /// How long to wait for workloads.
    pub wait: WaitOptions,
    /// How long to wait for each CRD to become Established.
    pub crd_timeout: std::time::Duration,
    /// How many revisions to keep.
    pub history: usize,
    /// Do not roll back automatically when an upgrade fails.
    pub no_rollback: bool,
    /// Allow a downgrade.
    pub force: bool,
    /// Take over objects that exist and belong to no release or to another one.
    pub adopt: bool,
    /// Stop at the next safe point when set.
    pub cancel: Cancel,
}

impl Default for DeployOptions {
    fn default() -> Self {
        Self {
            wait: WaitOptions::default(),
            crd_timeout: std::time::Duration::from_secs(60),
            history: DEFAULT_HISTORY,
            no_rollback: false,
            force: false,
            adopt: false,
            cancel: Cancel::new(),
        }
    }
}

/// An object left in place on purpose, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Kept {
    /// The object.
    pub object: ObjectRef,
    /// Why it was kept.
    pub reason: String,
}

/// Exactly what an operation did to the cluster.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Outcome {
    /// The revision now deployed (for uninstall: the last one).
    pub revision: u32,
    /// Whether a new revision was recorded (false for a re-install that changed nothing).
    pub recorded: bool,
    /// Objects that did not exist and were created.
    pub created: Vec<ObjectRef>,
    /// Objects changed in place.
    pub changed: Vec<ObjectRef>,
    /// Objects applied again and left as they were.
    pub unchanged: Vec<ObjectRef>,
    /// Objects that could not change in place and were deleted and created again.
    pub replaced: Vec<crate::apply::Replaced>,
    /// Objects deleted: pruned because the new set no longer has them, or uninstalled.
    pub deleted: Vec<ObjectRef>,
    /// Objects kept on purpose, with the reason (volumes, CRDs, namespaces holding data, and
    /// objects whose live ownership names another release).
    pub kept: Vec<Kept>,
    /// Objects taken over with `--adopt`, with their previous owner.
    pub adopted: Vec<Conflict>,
}

impl Outcome {
    /// What applying did (`report`), then what pruning deleted and kept.
    fn applied(
        revision: u32,
        report: crate::apply::ApplyReport,
        deleted: Vec<ObjectRef>,
        kept: Vec<Kept>,
    ) -> Self {
        Self {
            revision,
            recorded: true,
            created: report.created,
            changed: report.changed,
            unchanged: report.unchanged,
            replaced: report.replaced,
            deleted,
            kept,
            adopted: Vec::new(),
        }
    }
}

/// The lifecycle engine for one cluster.
pub struct Engine<'a> {
    resolver: Resolver,
    cluster: &'a Cluster,
    progress: &'a dyn Progress,
    /// Secret configuration values, scrubbed from every object stored in a release record.
    secrets: Vec<String>,
    /// Checked between deletions by rollback and uninstall.
    cancel: Cancel,
}

impl<'a> Engine<'a> {
    /// An engine over `cluster`, reporting to `progress`.
    pub fn new(cluster: &'a Cluster, progress: &'a dyn Progress) -> Self {
        Self {
            resolver: Resolver::new(cluster.client().clone()),
            cluster,
            progress,
            secrets: Vec::new(),
            cancel: Cancel::new(),
        }
    }

    /// Makes rollback and uninstall stop at a safe point (between two deletions, before
    /// re-applying) when `cancel` is set. Install and upgrade take theirs from
    /// [`DeployOptions::cancel`].
    pub fn cancellable(mut self, cancel: Cancel) -> Self {
        self.cancel = cancel;
        self
    }

    /// Scrubs the values of `config`'s secret items from the objects stored in release records,
    /// wherever a template rendered them (Secrets' data is always removed). A rollback puts the
    /// live values back.
    pub fn redacting(mut self, config: &airlift_render::Config) -> Self {
        self.secrets.extend(
            config
                .entries()
                .iter()
                .filter(|e| e.is_secret())
                .filter_map(|e| match &e.value {
                    Some((Value::String(s), _)) => Some(s.clone()),
                    _ => None,
                }),
        );
        self
    }

    /// Like [`Engine::redacting`], from plain values.
    pub fn redacting_values(mut self, values: impl IntoIterator<Item = String>) -> Self {
        self.secrets.extend(values);
        self
    }

    /// The discovery cache (for preflight and plan).
    pub fn resolver(&self) -> &Resolver {
        &self.resolver
    }

    /// The cluster.
    pub fn cluster(&self) -> &Cluster {
        self.cluster
    }

    fn store(&self, namespace: &str, release: &str) -> ReleaseStore {
        ReleaseStore::new(self.cluster.client().clone(), namespace, release)
    }

    /// The release's history, oldest first (empty when never installed).
    pub async fn status(
        &self,
        namespace: &str,
        release: &str,
    ) -> Result<Vec<Release>, LifecycleError> {
        Ok(self.store(namespace, release).history().await?)
    }

    /// The release's history, or [`LifecycleError::NotInstalled`] (naming the namespaces where
    /// a release of that name does exist) when it has none.
    pub async fn existing(
        &self,
        namespace: &str,
        release: &str,
    ) -> Result<Vec<Release>, LifecycleError> {
        let history = self.status(namespace, release).await?;
        if history.is_empty() {
            return Err(self.not_installed(namespace, release).await);
        }
        Ok(history)
    }

    async fn not_installed(&self, namespace: &str, release: &str) -> LifecycleError {
        let elsewhere = crate::release::namespaces_of(self.cluster.client().clone(), release).await;
        LifecycleError::NotInstalled {
            release: release.to_string(),
            namespace: namespace.to_string(),
            elsewhere: elsewhere.into_iter().filter(|n| n != namespace).collect(),
        }
    }

    /// Checks, changing nothing, that every object of `request` can be applied (a PVC or CRD
    /// that cannot change in place is refused) and is absent or already the release's. With
    /// `adopt`, someone else's objects are reported as adopted instead.
    pub async fn check(
        &self,
        request: &DeployRequest,
        adopt: bool,
    ) -> Result<OwnershipReport, LifecycleError> {
        let history = self.status(&request.namespace, &request.release).await?;
        let known = known_inventory(&history);
        let prepared = self.prepare(request).await?;
        let owner = Owner::new(&request.namespace, &request.release);
        // The same read-and-dry-run the deploy starts with: a PVC or CRD that cannot change in
        // place is refused here already.
        let fits = fit_all(&self.resolver, &prepared).await?;
        Ok(sort_by_owner(
            &prepared,
            fits.iter().map(fit_live),
            &owner,
            &known,
            adopt,
        ))
    }

    /// The objects as they will be applied: labels, ownership, namespaces and order.
    async fn prepare(&self, request: &DeployRequest) -> Result<Vec<ManagedObject>, LifecycleError> {
        let mut prepared = prepare(
            &self.resolver,
            &request.objects,
            &request.release,
            &request.namespace,
        )
        .await?;
        crate::ownership::stamp(
            &mut prepared,
            &Owner::new(&request.namespace, &request.release),
        );
        Ok(prepared)
    }

    /// What deploying `request` would do, changing nothing.
    pub async fn plan(&self, request: &DeployRequest) -> Result<Plan, LifecycleError> {
        let store = self.store(&request.namespace, &request.release);
        let history = store.history().await?;
        let current = inventory_since_deployed(&history);
        let prepared = self.prepare(request).await?;
        let mut plan = plan(&self.resolver, &prepared, &current).await?;
        if let Some(deployed) = history
            .iter()
            .rev()
            .find(|r| r.status == ReleaseStatus::Deployed)
        {
            plan.config = ConfigDiff::between(&deployed.config, &request.config)
                .with_defaults(&deployed.saas_defaults, &request.saas_defaults);
        }
        Ok(plan)
    }

    /// Installs. Running it again with the same bundle and configuration converges the cluster
    /// and records nothing new; with a different bundle it refuses (use [`Engine::upgrade`]).
    pub async fn install(
        &self,
        request: &DeployRequest,
        options: &DeployOptions,
    ) -> Result<Outcome, LifecycleError> {
        let store = self.store(&request.namespace, &request.release);
        if let Some(current) = store.deployed().await? {
            if current.bundle != request.bundle {
                return Err(LifecycleError::AlreadyInstalled {
                    release: request.release.clone(),
                    namespace: request.namespace.clone(),
                    installed: format!("{} {}", current.bundle.name, current.bundle.version),
                    new: format!("{} {}", request.bundle.name, request.bundle.version),
                });
            }
        }
        self.deploy(request, options, "install").await
    }

    /// Refuses an upgrade that cannot go ahead: the release is not installed, or the version
    /// is older without `force`. Reads only.
    pub async fn check_upgrade(
        &self,
        request: &DeployRequest,
        force: bool,
    ) -> Result<Release, LifecycleError> {
        let store = self.store(&request.namespace, &request.release);
        let Some(current) = store.deployed().await? else {
            return Err(self
                .not_installed(&request.namespace, &request.release)
                .await);
        };
        let bad = |v: &str| {
            let v = v.to_string();
            move |source| LifecycleError::BadVersion { version: v, source }
        };
        let new = semver::Version::parse(&request.bundle.version)
            .map_err(bad(&request.bundle.version))?;
        let old = semver::Version::parse(&current.bundle.version)
            .map_err(bad(&current.bundle.version))?;
        if new < old && !force {
            return Err(LifecycleError::Downgrade {
                release: request.release.clone(),
                from: current.bundle.version,
                to: request.bundle.version.clone(),
            });
        }
        Ok(current)
    }

    /// Upgrades (or reconfigures) a deployed release; refuses a downgrade unless
    /// `options.force`. On failure the previous release is restored unless `options.no_rollback`.
    pub async fn upgrade(
        &self,
        request: &DeployRequest,
        options: &DeployOptions,
    ) -> Result<Outcome, LifecycleError> {
        self.check_upgrade(request, options.force).await?;
        self.deploy(request, options, "upgrade").await
    }
}

/// Objects of the deployed revision and of every later (failed, pending or interrupted) one:
/// what the cluster may hold.
fn inventory_since_deployed(history: &[Release]) -> Vec<ObjectRef> {
    let start = history
        .iter()
        .rposition(|r| r.status == ReleaseStatus::Deployed)
        .unwrap_or(0);
    union(history[start..].iter())
}

/// Every object any kept revision lists: what may carry this release's label without the
/// ownership annotation (applied by an older Airlift).
fn known_inventory(history: &[Release]) -> Vec<ObjectRef> {
    union(history.iter())
}

fn union<'r>(revisions: impl Iterator<Item = &'r Release>) -> Vec<ObjectRef> {
    let mut out: Vec<ObjectRef> = Vec::new();
    for r in revisions {
        for o in &r.inventory {
            if !out.iter().any(|x| x.same_object(o)) {
                out.push(o.clone());
            }
        }
    }
    out
}

fn same_set(a: &[ObjectRef], b: &[ObjectRef]) -> bool {
    a.len() == b.len() && a.iter().all(|x| b.contains(x))
}
