//! The deploy flow shared by install and upgrade, and the restore step shared by the automatic
//! and the manual rollback.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{json, Map, Value};

use super::{
    inventory_since_deployed, known_inventory, same_set, DeployFailure, DeployOptions,
    DeployRequest, Engine, Kept, LifecycleError, Outcome,
};
use crate::apply::{apply_fitted, apply_one, apply_set, fit_all, get_live, ApplyReport, Fit};
use crate::object::{ManagedObject, ObjectRef};
use crate::ownership::{check_ownership, fit_live, sort_by_owner, stamp_value, Owner};
use crate::readiness::wait_ready;
use crate::release::{now, Release, ReleaseStatus, ReleaseStore, StoredObject};

/// Why a deploy stopped before its new revision was ready.
enum Stop {
    /// Applying or waiting failed.
    Failed(DeployFailure),
    /// The operator interrupted it during this phase.
    Interrupted(&'static str),
}

impl Engine<'_> {
    pub(super) async fn deploy(
        &self,
        request: &DeployRequest,
        options: &DeployOptions,
        action: &'static str,
    ) -> Result<Outcome, LifecycleError> {
        let owner = Owner::new(&request.namespace, &request.release);
        // A release namespace being deleted (an uninstall a moment ago) is waited out before
        // anything is read from it or checked against it: its records and objects are going,
        // and a dry run of an object that went meanwhile would be refused as new content.
        self.settle_namespace(&owner.namespace).await?;
        let store = self.store(&request.namespace, &request.release);
        let history = store.history().await?;
        let previous = history
            .iter()
            .rev()
            .find(|r| r.status == ReleaseStatus::Deployed)
            .cloned();
        let leftovers = inventory_since_deployed(&history);
        let known = known_inventory(&history);
        let prepared = self.prepare(request).await?;
        // So may the other namespaces the bundle creates or puts objects in (an uninstall
        // deletes those the release owned): each is waited out too, never created here.
        for namespace in other_namespaces(&prepared, &request.namespace) {
            self.settle_namespace(&namespace).await?;
        }
        self.progress.message(&format!(
            "{action}: checking {} objects against the cluster (read, dry-run apply)",
            prepared.len()
        ));

        // Every check before the first write: each object is read and dry-run applied once
        // (a PVC or CRD that cannot change in place is refused here), and nothing of another
        // release or of nobody's is touched unless the operator adopts it.
        let fits = fit_all(&self.resolver, &prepared).await?;
        let ownership = sort_by_owner(
            &prepared,
            fits.iter().map(fit_live),
            &owner,
            &known,
            options.adopt,
        );
        if !ownership.conflicts.is_empty() {
            return Err(LifecycleError::Conflicts {
                release: request.release.clone(),
                namespace: request.namespace.clone(),
                conflicts: ownership.conflicts,
            });
        }
        if options.cancel.is_cancelled() {
            return Err(LifecycleError::Interrupted {
                action,
                release: request.release.clone(),
                namespace: request.namespace.clone(),
                revision: None,
                phase: "checks",
                deployed: previous.as_ref().map(|p| p.revision),
            });
        }

        self.ensure_namespace(&owner).await?;
        let inventory: Vec<ObjectRef> = prepared.iter().filter_map(ManagedObject::id).collect();
        let revision = history.last().map_or(1, |r| r.revision + 1);
        let unchanged_reinstall = previous.as_ref().is_some_and(|p| {
            p.bundle == request.bundle
                && p.config == request.config
                && p.site == request.site
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
            site: request.site.clone(),
            operator: request.operator.clone(),
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
        let result = self
            .apply_and_wait(&prepared, fits, &inventory, options, &mut applied)
            .await;
        let report = match result {
            Ok(report) => report,
            Err(stop) => {
                // Everything this attempt may have created is recorded, so uninstall and later
                // deploys can find it.
                let mut touched = inventory.clone();
                for a in &applied {
                    if !touched.contains(a) {
                        touched.push(a.clone());
                    }
                }
                let cause = match stop {
                    Stop::Interrupted(phase) => {
                        store
                            .write(&record(
                                ReleaseStatus::Interrupted,
                                format!(
                                "{action} interrupted during {phase} ({} of {} objects applied)",
                                applied.len(),
                                inventory.len()
                            ),
                                touched,
                            ))
                            .await?;
                        return Err(LifecycleError::Interrupted {
                            action,
                            release: request.release.clone(),
                            namespace: request.namespace.clone(),
                            revision: Some(revision),
                            phase,
                            deployed: previous.as_ref().map(|p| p.revision),
                        });
                    }
                    Stop::Failed(cause) => cause,
                };
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
                return match self
                    .restore(&prev, &snapshot, &inventory, &known, options)
                    .await
                {
                    Ok(_) => Err(LifecycleError::RolledBack {
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
        };
        let (deleted, kept) = self
            .prune(&leftovers, &inventory, &owner, &known, false)
            .await?;
        let mut outcome = Outcome {
            recorded: !unchanged_reinstall,
            adopted: ownership.adopted,
            ..Outcome::applied(revision, report, deleted, kept)
        };
        if unchanged_reinstall {
            outcome.revision = previous.map_or(revision, |p| p.revision);
            self.progress
                .message(&format!("release {} is up to date", request.release));
            return Ok(outcome);
        }
        let mut description = match &previous {
            Some(p) if action == "upgrade" => format!("upgrade from {}", p.bundle.version),
            Some(_) => "re-install".to_string(),
            None => action.to_string(),
        };
        if !outcome.adopted.is_empty() {
            let names: Vec<String> = outcome.adopted.iter().map(|a| a.to_string()).collect();
            description.push_str(&format!("; adopted: {}", names.join("; ")));
        }
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
        Ok(outcome)
    }

    /// Applies in order and waits for readiness, stopping at a safe point when cancelled.
    async fn apply_and_wait(
        &self,
        prepared: &[ManagedObject],
        fits: Vec<Fit>,
        inventory: &[ObjectRef],
        options: &DeployOptions,
        applied: &mut Vec<ObjectRef>,
    ) -> Result<ApplyReport, Stop> {
        if options.cancel.is_cancelled() {
            return Err(Stop::Interrupted("apply"));
        }
        // Dropping the apply between two requests is safe: every object is one atomic
        // server-side apply, and the pending record already lists them all.
        let report = tokio::select! {
            r = apply_fitted(&self.resolver, prepared, fits, options.crd_timeout, self.progress, applied) => {
                r.map_err(|e| Stop::Failed(e.into()))?
            }
            _ = options.cancel.cancelled() => return Err(Stop::Interrupted("apply")),
        };
        tokio::select! {
            r = wait_ready(&self.resolver, inventory, options.wait, self.progress) => {
                r.map_err(|e| Stop::Failed(e.into()))?
            }
            _ = options.cancel.cancelled() => return Err(Stop::Interrupted("readiness wait")),
        }
        Ok(report)
    }

    /// Re-applies `target`'s objects (Secrets with the data from `snapshot`, or else the live
    /// data), deletes what later attempts added (if the release owns it), and waits. Returns
    /// what was deleted and kept.
    pub(super) async fn restore(
        &self,
        target: &Release,
        snapshot: &BTreeMap<ObjectRef, Value>,
        attempted: &[ObjectRef],
        known: &[ObjectRef],
        options: &DeployOptions,
    ) -> Result<(ApplyReport, Vec<ObjectRef>, Vec<Kept>), LifecycleError> {
        let owner = Owner::new(&target.namespace, &target.name);
        let mut objects = self.rehydrate(target, snapshot).await?;
        for o in &mut objects {
            stamp_value(&mut o.object, &owner);
        }
        let ownership = check_ownership(&self.resolver, &objects, &owner, known, false).await?;
        if !ownership.conflicts.is_empty() {
            return Err(LifecycleError::Conflicts {
                release: target.name.clone(),
                namespace: target.namespace.clone(),
                conflicts: ownership.conflicts,
            });
        }
        let mut applied = Vec::new();
        let report = apply_set(
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
        let (deleted, kept) = self
            .prune(&added, &target.inventory, &owner, known, false)
            .await?;
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
        Ok((report, deleted, kept))
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

    /// Creates the release namespace, owned by the release, when it does not exist (it is not
    /// part of the inventory unless the bundle itself declares it). An existing namespace is
    /// left as it is.
    pub async fn ensure_namespace(&self, owner: &Owner) -> Result<(), LifecycleError> {
        if !self.settle_namespace(&owner.namespace).await? {
            let mut ns = json!({"apiVersion": "v1", "kind": "Namespace",
                "metadata": {"name": owner.namespace}});
            stamp_value(&mut ns, owner);
            apply_one(&self.resolver, &ns, false).await?;
        }
        Ok(())
    }

    /// Waits while `namespace` is being deleted (it refuses new objects until it is gone; see
    /// [`crate::namespace::settle`]); returns whether it exists.
    async fn settle_namespace(&self, namespace: &str) -> Result<bool, LifecycleError> {
        let id = ObjectRef {
            group: String::new(),
            version: "v1".into(),
            kind: "Namespace".into(),
            namespace: None,
            name: namespace.to_string(),
        };
        crate::namespace::settle(namespace, crate::namespace::DELETION_WAIT, || async {
            Ok::<_, LifecycleError>(crate::namespace::Found::of(
                get_live(&self.resolver, &id)
                    .await?
                    .map(|ns| !ns["metadata"]["deletionTimestamp"].is_null()),
            ))
        })
        .await
    }
}

/// The namespaces `objects` are created in, or are, other than `release_namespace`.
fn other_namespaces(objects: &[ManagedObject], release_namespace: &str) -> BTreeSet<String> {
    objects
        .iter()
        .filter_map(ManagedObject::id)
        .filter_map(|id| {
            if id.group.is_empty() && id.kind == "Namespace" {
                Some(id.name)
            } else {
                id.namespace
            }
        })
        .filter(|ns| ns != release_namespace)
        .collect()
}

/// After a new revision is deployed: the previously deployed one becomes `replaced_as`, and a
/// pending one (a deploy whose process died) becomes failed.
pub(super) async fn settle(
    store: &ReleaseStore,
    mut r: Release,
    replaced_as: ReleaseStatus,
) -> Result<(), crate::release::ReleaseError> {
    match r.status {
        ReleaseStatus::Deployed => r.status = replaced_as,
        ReleaseStatus::Pending => {
            r.status = ReleaseStatus::Failed;
            r.description = format!("{} (its process stopped)", r.description);
        }
        _ => return Ok(()),
    }
    store.write(&r).await
}
