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
//! every workload of the new set is ready.

mod error;

use std::collections::BTreeMap;

use airlift_bundle::Progress;
use k8s_openapi::api::core::v1::PersistentVolumeClaim;
use kube::api::{Api, ListParams};
use serde_json::{json, Map, Value};

use crate::apply::{apply_all, apply_one, delete_one, get_live, prepare};
use crate::kubeconfig::Cluster;
use crate::object::{sort_for_delete, ManagedObject, ObjectRef};
use crate::plan::{plan, ConfigDiff, Plan};
use crate::readiness::{wait_ready, WaitOptions};
use crate::release::{
    now, BundleInfo, Release, ReleaseError, ReleaseStatus, ReleaseStore, StoredObject,
    DEFAULT_HISTORY,
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
    /// The rendered objects.
    pub objects: Vec<ManagedObject>,
}

/// Knobs for deploys.
#[derive(Debug, Clone, Copy)]
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
}

impl Default for DeployOptions {
    fn default() -> Self {
        Self {
            wait: WaitOptions::default(),
            crd_timeout: std::time::Duration::from_secs(60),
            history: DEFAULT_HISTORY,
            no_rollback: false,
            force: false,
        }
    }
}

/// What a deploy did.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// The revision now deployed.
    pub revision: u32,
    /// Whether a new revision was recorded (false for a re-install that changed nothing).
    pub recorded: bool,
    /// Objects deleted because the new set no longer has them.
    pub pruned: Vec<ObjectRef>,
    /// Objects kept on purpose (PersistentVolumeClaims and the namespaces holding them).
    pub kept: Vec<ObjectRef>,
}

/// The lifecycle engine for one cluster.
pub struct Engine<'a> {
    resolver: Resolver,
    cluster: &'a Cluster,
    progress: &'a dyn Progress,
    /// Secret configuration values, scrubbed from every object stored in a release record.
    secrets: Vec<String>,
}

impl<'a> Engine<'a> {
    /// An engine over `cluster`, reporting to `progress`.
    pub fn new(cluster: &'a Cluster, progress: &'a dyn Progress) -> Self {
        Self {
            resolver: Resolver::new(cluster.client().clone()),
            cluster,
            progress,
            secrets: Vec::new(),
        }
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

    /// What deploying `request` would do, changing nothing.
    pub async fn plan(&self, request: &DeployRequest) -> Result<Plan, LifecycleError> {
        let store = self.store(&request.namespace, &request.release);
        let history = store.history().await?;
        let current = inventory_since_deployed(&history);
        let prepared = prepare(
            &self.resolver,
            &request.objects,
            &request.release,
            &request.namespace,
        )
        .await?;
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
                    installed: format!("{} {}", current.bundle.name, current.bundle.version),
                    new: format!("{} {}", request.bundle.name, request.bundle.version),
                });
            }
        }
        self.deploy(request, options, "install").await
    }

    /// Upgrades (or reconfigures) a deployed release; refuses a downgrade unless
    /// `options.force`. On failure the previous release is restored unless `options.no_rollback`.
    pub async fn upgrade(
        &self,
        request: &DeployRequest,
        options: &DeployOptions,
    ) -> Result<Outcome, LifecycleError> {
        let store = self.store(&request.namespace, &request.release);
        let Some(current) = store.deployed().await? else {
            return Err(LifecycleError::NotInstalled {
                release: request.release.clone(),
                namespace: request.namespace.clone(),
            });
        };
        let bad = |v: &str| {
            let v = v.to_string();
            move |source| LifecycleError::BadVersion { version: v, source }
        };
        let new = semver::Version::parse(&request.bundle.version)
            .map_err(bad(&request.bundle.version))?;
        let old = semver::Version::parse(&current.bundle.version)
            .map_err(bad(&current.bundle.version))?;
        if new < old && !options.force {
            return Err(LifecycleError::Downgrade {
                release: request.release.clone(),
                from: current.bundle.version,
                to: request.bundle.version.clone(),
            });
        }
        self.deploy(request, options, "upgrade").await
    }

    async fn deploy(
        &self,
        request: &DeployRequest,
        options: &DeployOptions,
        action: &'static str,
    ) -> Result<Outcome, LifecycleError> {
        let store = self.store(&request.namespace, &request.release);
        let history = store.history().await?;
        let previous = history
            .iter()
            .rev()
            .find(|r| r.status == ReleaseStatus::Deployed)
            .cloned();
        let leftovers = inventory_since_deployed(&history);
        self.ensure_namespace(&request.namespace).await?;
        let prepared = prepare(
            &self.resolver,
            &request.objects,
            &request.release,
            &request.namespace,
        )
        .await?;
        let inventory: Vec<ObjectRef> = prepared.iter().filter_map(ManagedObject::id).collect();
        let revision = history.last().map_or(1, |r| r.revision + 1);
        let unchanged_reinstall = previous.as_ref().is_some_and(|p| {
            p.bundle == request.bundle
                && p.config == request.config
                && same_set(&p.inventory, &inventory)
        });
        // Secret values of the running release, in memory only, for an exact rollback.
        let snapshot = match &previous {
            Some(p) => self.snapshot_secrets(p).await?,
            None => BTreeMap::new(),
        };
        self.progress.message(&format!(
            "{action}: release {} revision {revision} ({} {})",
            request.release, request.bundle.name, request.bundle.version
        ));
        let record = |status, description: String, inventory: Vec<ObjectRef>| Release {
            name: request.release.clone(),
            namespace: request.namespace.clone(),
            revision,
            bundle: request.bundle.clone(),
            config: request.config.clone(),
            saas_defaults: request.saas_defaults.clone(),
            inventory,
            objects: prepared
                .iter()
                .map(|o| StoredObject::redact_with(o, &self.secrets))
                .collect(),
            status,
            time: now(),
            description,
        };
        if !unchanged_reinstall {
            // Recorded before anything changes, so an interrupted deploy leaves a trace of what
            // it may have created: a later deploy or rollback prunes it.
            store
                .write(&record(
                    ReleaseStatus::Pending,
                    format!("{action} in progress"),
                    inventory.clone(),
                ))
                .await?;
        }
        let mut applied = Vec::new();
        let result = match apply_all(
            &self.resolver,
            &prepared,
            options.crd_timeout,
            self.progress,
            &mut applied,
        )
        .await
        {
            Ok(()) => wait_ready(&self.resolver, &inventory, options.wait, self.progress)
                .await
                .map_err(DeployFailure::from),
            Err(e) => Err(DeployFailure::from(e)),
        };
        if let Err(cause) = result {
            // Everything this attempt may have created is recorded, so uninstall and later
            // deploys can find it.
            let mut touched = inventory.clone();
            for a in &applied {
                if !touched.contains(a) {
                    touched.push(a.clone());
                }
            }
            store
                .write(&record(
                    ReleaseStatus::Failed,
                    format!("{action} failed: {cause}"),
                    touched,
                ))
                .await?;
            let Some(prev) = previous.filter(|_| !options.no_rollback && !unchanged_reinstall)
            else {
                return Err(LifecycleError::Failed {
                    action,
                    release: request.release.clone(),
                    revision,
                    cause,
                });
            };
            self.progress.message(&format!(
                "{action} failed; rolling back to revision {}",
                prev.revision
            ));
            return match self.restore(&prev, &snapshot, &inventory, options).await {
                Ok(()) => Err(LifecycleError::RolledBack {
                    release: request.release.clone(),
                    version: request.bundle.version.clone(),
                    running: prev.revision,
                    running_version: prev.bundle.version.clone(),
                    cause,
                }),
                Err(e) => Err(LifecycleError::RollbackFailed {
                    release: request.release.clone(),
                    previous: prev.revision,
                    rollback_error: format!("{e}: {}", e.hint()),
                    cause,
                }),
            };
        }
        let (pruned, kept) = self.prune(&leftovers, &inventory, false).await?;
        if unchanged_reinstall {
            let revision = previous.map_or(revision, |p| p.revision);
            self.progress
                .message(&format!("release {} is up to date", request.release));
            return Ok(Outcome {
                revision,
                recorded: false,
                pruned,
                kept,
            });
        }
        let description = match &previous {
            Some(p) if action == "upgrade" => format!("upgrade from {}", p.bundle.version),
            Some(_) => "re-install".to_string(),
            None => action.to_string(),
        };
        store
            .write(&record(
                ReleaseStatus::Deployed,
                description,
                inventory.clone(),
            ))
            .await?;
        for r in history {
            settle(&store, r, ReleaseStatus::Superseded).await?;
        }
        store.prune(options.history).await?;
        Ok(Outcome {
            revision,
            recorded: true,
            pruned,
            kept,
        })
    }

    /// Re-applies `target`'s objects (Secrets with the data from `secrets`, or else the live
    /// data), deletes what the failed attempt added, and waits.
    async fn restore(
        &self,
        target: &Release,
        snapshot: &BTreeMap<ObjectRef, Value>,
        attempted: &[ObjectRef],
        options: &DeployOptions,
    ) -> Result<(), LifecycleError> {
        let objects = self.rehydrate(target, snapshot).await?;
        let mut applied = Vec::new();
        apply_all(
            &self.resolver,
            &objects,
            options.crd_timeout,
            self.progress,
            &mut applied,
        )
        .await?;
        let added: Vec<ObjectRef> = attempted
            .iter()
            .filter(|a| !target.inventory.iter().any(|t| t.same_object(a)))
            .cloned()
            .collect();
        self.prune(&added, &target.inventory, false).await?;
        wait_ready(
            &self.resolver,
            &target.inventory,
            options.wait,
            self.progress,
        )
        .await
        .map_err(|cause| LifecycleError::Failed {
            action: "rollback",
            release: target.name.clone(),
            revision: target.revision,
            cause: cause.into(),
        })?;
        Ok(())
    }

    /// Rolls back to `revision` (default: the newest earlier revision that was deployed).
    pub async fn rollback(
        &self,
        namespace: &str,
        release: &str,
        revision: Option<u32>,
        options: &DeployOptions,
    ) -> Result<Outcome, LifecycleError> {
        let store = self.store(namespace, release);
        let history = store.history().await?;
        let Some(current) = history
            .iter()
            .rev()
            .find(|r| r.status == ReleaseStatus::Deployed)
            .cloned()
        else {
            return Err(LifecycleError::NotInstalled {
                release: release.to_string(),
                namespace: namespace.to_string(),
            });
        };
        let target = match revision {
            Some(n) => store.get(n).await?,
            None => history
                .iter()
                .rev()
                .find(|r| r.revision < current.revision && r.status != ReleaseStatus::Failed)
                .cloned()
                .ok_or(ReleaseError::NoRevision {
                    release: release.to_string(),
                    revision: current.revision.saturating_sub(1),
                })?,
        };
        let leftovers = inventory_since_deployed(&history);
        self.restore(&target, &BTreeMap::new(), &leftovers, options)
            .await?;
        let new_revision = history.last().map_or(1, |r| r.revision + 1);
        let mut record = target.clone();
        record.revision = new_revision;
        record.status = ReleaseStatus::Deployed;
        record.time = now();
        record.description = format!("rollback to {}", target.revision);
        store.write(&record).await?;
        for r in history {
            let status = if r.revision == current.revision {
                ReleaseStatus::RolledBack
            } else {
                ReleaseStatus::Superseded
            };
            settle(&store, r, status).await?;
        }
        store.prune(options.history).await?;
        Ok(Outcome {
            revision: new_revision,
            recorded: true,
            pruned: Vec::new(),
            kept: Vec::new(),
        })
    }

    /// Deletes every object of every revision in reverse apply order, then the records.
    /// PersistentVolumeClaims, the namespaces holding them, CRDs (which hold custom resources)
    /// and the generated secret values are kept unless `delete_data`.
    pub async fn uninstall(
        &self,
        namespace: &str,
        release: &str,
        delete_data: bool,
    ) -> Result<Outcome, LifecycleError> {
        let store = self.store(namespace, release);
        let history = store.history().await?;
        if history.is_empty() {
            return Err(LifecycleError::NotInstalled {
                release: release.to_string(),
                namespace: namespace.to_string(),
            });
        }
        let mut all: Vec<ObjectRef> = Vec::new();
        for r in &history {
            for o in &r.inventory {
                if !all.iter().any(|a| a.same_object(o)) {
                    all.push(o.clone());
                }
            }
        }
        let (pruned, kept) = self.prune(&all, &[], delete_data).await?;
        store.delete_all().await?;
        if delete_data {
            crate::generated::GeneratedValues::new(
                self.cluster.client().clone(),
                namespace,
                release,
            )
            .delete()
            .await?;
        }
        let revision = history.last().map_or(0, |r| r.revision);
        Ok(Outcome {
            revision,
            recorded: false,
            pruned,
            kept,
        })
    }

    /// Deletes `candidates` that are not in `keep`, in reverse apply order. Unless `delete_data`,
    /// PVCs, CRDs and namespaces still holding PVCs are kept. Returns (deleted, kept).
    async fn prune(
        &self,
        candidates: &[ObjectRef],
        keep: &[ObjectRef],
        delete_data: bool,
    ) -> Result<(Vec<ObjectRef>, Vec<ObjectRef>), LifecycleError> {
        let mut doomed: Vec<ObjectRef> = candidates
            .iter()
            .filter(|c| !keep.iter().any(|k| k.same_object(c)))
            .cloned()
            .collect();
        sort_for_delete(&mut doomed);
        let mut deleted = Vec::new();
        let mut kept = Vec::new();
        for id in doomed {
            let is_data = (id.group.is_empty() && id.kind == "PersistentVolumeClaim")
                || (id.group == "apiextensions.k8s.io" && id.kind == "CustomResourceDefinition");
            if !delete_data && is_data {
                kept.push(id);
                continue;
            }
            if !delete_data && id.group.is_empty() && id.kind == "Namespace" {
                let pvcs: Api<PersistentVolumeClaim> =
                    Api::namespaced(self.cluster.client().clone(), &id.name);
                let has_pvcs = match pvcs.list(&ListParams::default()).await {
                    Ok(l) => !l.items.is_empty(),
                    Err(kube::Error::Api(s)) if s.code == 404 => false,
                    Err(source) => {
                        return Err(LifecycleError::ListPvcs {
                            namespace: id.name.clone(),
                            source,
                        })
                    }
                };
                if has_pvcs {
                    kept.push(id);
                    continue;
                }
            }
            if delete_one(&self.resolver, &id).await? {
                self.progress.message(&format!("deleted {id}"));
                deleted.push(id);
            }
        }
        Ok((deleted, kept))
    }

    /// Reads the live objects whose stored copy lacks secret values (Secrets, and objects with
    /// scrubbed strings), in memory only, so an automatic rollback restores them exactly.
    async fn snapshot_secrets(
        &self,
        release: &Release,
    ) -> Result<BTreeMap<ObjectRef, Value>, LifecycleError> {
        let mut out = BTreeMap::new();
        for stored in &release.objects {
            if stored.redacted_keys.is_empty() && stored.redacted_paths.is_empty() {
                continue;
            }
            let Some(id) = stored.object.id() else {
                continue;
            };
            if let Some(live) = get_live(&self.resolver, &id).await? {
                out.insert(id, live);
            }
        }
        Ok(out)
    }

    /// `release`'s stored objects with their secret values put back: from `snapshot` when it
    /// has the object, else from the live object.
    async fn rehydrate(
        &self,
        release: &Release,
        snapshot: &BTreeMap<ObjectRef, Value>,
    ) -> Result<Vec<ManagedObject>, LifecycleError> {
        let mut out = Vec::new();
        for stored in &release.objects {
            let mut o = stored.object.clone();
            if stored.redacted_keys.is_empty() && stored.redacted_paths.is_empty() {
                out.push(o);
                continue;
            }
            let Some(id) = o.id() else { continue };
            let source = match snapshot.get(&id) {
                Some(v) => Some(v.clone()),
                None => get_live(&self.resolver, &id).await?,
            }
            .unwrap_or(Value::Null);
            let mut missing = Vec::new();
            if !stored.redacted_keys.is_empty() {
                let data = source.get("data").and_then(Value::as_object);
                let mut kept = Map::new();
                for key in &stored.redacted_keys {
                    match data.and_then(|d| d.get(key)) {
                        Some(v) => {
                            kept.insert(key.clone(), v.clone());
                        }
                        None => missing.push(key.clone()),
                    }
                }
                o.object["data"] = Value::Object(kept);
            }
            for path in &stored.redacted_paths {
                match (source.pointer(path), o.object.pointer_mut(path)) {
                    (Some(v), Some(slot)) => *slot = v.clone(),
                    _ => missing.push(path.clone()),
                }
            }
            if !missing.is_empty() {
                return Err(LifecycleError::SecretDataLost {
                    object: id.to_string(),
                    keys: missing,
                });
            }
            out.push(o);
        }
        Ok(out)
    }

    /// Creates the release namespace when it does not exist (it is not part of the inventory).
    async fn ensure_namespace(&self, namespace: &str) -> Result<(), LifecycleError> {
        let id = ObjectRef {
            group: String::new(),
            version: "v1".into(),
            kind: "Namespace".into(),
            namespace: None,
            name: namespace.to_string(),
        };
        if get_live(&self.resolver, &id).await?.is_none() {
            let ns = json!({"apiVersion": "v1", "kind": "Namespace",
                "metadata": {"name": namespace}});
            apply_one(&self.resolver, &ns, false).await?;
        }
        Ok(())
    }
}

/// After a new revision is deployed: the previously deployed one becomes `replaced_as`, and a
/// pending one (a deploy that was interrupted) becomes failed.
async fn settle(
    store: &ReleaseStore,
    mut r: Release,
    replaced_as: ReleaseStatus,
) -> Result<(), ReleaseError> {
    match r.status {
        ReleaseStatus::Deployed => r.status = replaced_as,
        ReleaseStatus::Pending => {
            r.status = ReleaseStatus::Failed;
            r.description = format!("{} (interrupted)", r.description);
        }
        _ => return Ok(()),
    }
    store.write(&r).await
}

/// Objects of the deployed revision and of every later (failed or pending) one: what the cluster may hold.
fn inventory_since_deployed(history: &[Release]) -> Vec<ObjectRef> {
    let start = history
        .iter()
        .rposition(|r| r.status == ReleaseStatus::Deployed)
        .unwrap_or(0);
    let mut out: Vec<ObjectRef> = Vec::new();
    for r in &history[start..] {
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
