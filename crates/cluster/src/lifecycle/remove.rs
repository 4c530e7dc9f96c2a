//! Rollback, uninstall, and the prune step they share with upgrade. Nothing is deleted unless
//! its live ownership names the release.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Secret};
use kube::api::{Api, ListParams};

use super::deploy::settle;
use super::{
    inventory_since_deployed, known_inventory, DeployOptions, Engine, Kept, LifecycleError, Outcome,
};
use crate::apply::{delete_one, get_live};
use crate::generated::GeneratedValues;
use crate::object::{sort_for_delete, ObjectRef};
use crate::ownership::{live_owner, owned_by, LiveOwner, Owner};
use crate::release::{now, Release, ReleaseStatus, LABEL_RECORD};

impl Engine<'_> {
    /// Rolls back to `revision`. Without one: when the newest revision is deployed, to the
    /// newest earlier revision that was deployed; when the newest failed or was interrupted
    /// (the cluster may run a mix), back to the revision still recorded as deployed.
    pub async fn rollback(
        &self,
        namespace: &str,
        release: &str,
        revision: Option<u32>,
        options: &DeployOptions,
    ) -> Result<Outcome, LifecycleError> {
        let store = self.store(namespace, release);
        let history = self.existing(namespace, release).await?;
        let latest = history
            .last()
            .cloned()
            .ok_or_else(|| LifecycleError::NotInstalled {
                release: release.to_string(),
                namespace: namespace.to_string(),
                elsewhere: Vec::new(),
            })?;
        let deployed = history
            .iter()
            .rev()
            .find(|r| r.status == ReleaseStatus::Deployed)
            .cloned();
        let target = match revision {
            Some(n) => {
                let r = history.iter().find(|r| r.revision == n).cloned().ok_or(
                    crate::release::ReleaseError::NoRevision {
                        release: release.to_string(),
                        revision: n,
                    },
                )?;
                if !r.status.was_deployed() {
                    return Err(LifecycleError::NeverDeployed {
                        release: release.to_string(),
                        revision: n,
                        status: r.status.to_string(),
                    });
                }
                r
            }
            None => {
                let n =
                    rollback_target(&history).ok_or_else(|| LifecycleError::NoEarlierRevision {
                        release: release.to_string(),
                        namespace: namespace.to_string(),
                        current: latest.revision,
                    })?;
                history.iter().find(|r| r.revision == n).cloned().ok_or(
                    crate::release::ReleaseError::NoRevision {
                        release: release.to_string(),
                        revision: n,
                    },
                )?
            }
        };
        let leftovers = inventory_since_deployed(&history);
        let known = known_inventory(&history);
        if self.cancel.is_cancelled() || options.cancel.is_cancelled() {
            return Err(LifecycleError::Interrupted {
                action: "rollback",
                release: release.to_string(),
                namespace: namespace.to_string(),
                revision: None,
                phase: "checks",
                deployed: deployed.as_ref().map(|d| d.revision),
            });
        }
        let (report, deleted, kept) = self
            .restore(&target, &BTreeMap::new(), &leftovers, &known, options)
            .await?;
        let new_revision = latest.revision + 1;
        let mut record = target.clone();
        record.revision = new_revision;
        record.status = ReleaseStatus::Deployed;
        record.time = now();
        record.description = format!("rollback to {}", target.revision);
        store.write(&record).await?;
        for r in history {
            let status = if Some(r.revision) == deployed.as_ref().map(|d| d.revision) {
                ReleaseStatus::RolledBack
            } else {
                ReleaseStatus::Superseded
            };
            settle(&store, r, status).await?;
        }
        store.prune(options.history).await?;
        Ok(Outcome::applied(new_revision, report, deleted, kept))
    }

    /// Deletes every object of every revision that the release still owns, in reverse apply
    /// order, then the records. PersistentVolumeClaims, CRDs (which hold custom resources), the
    /// generated secret values and the namespaces holding any of them are kept unless
    /// `delete_data`; a namespace holding another release is always kept.
    pub async fn uninstall(
        &self,
        namespace: &str,
        release: &str,
        delete_data: bool,
    ) -> Result<Outcome, LifecycleError> {
        let store = self.store(namespace, release);
        let history = self.existing(namespace, release).await?;
        let all = known_inventory(&history);
        let owner = Owner::new(namespace, release);
        let (deleted, kept) = self.prune(&all, &[], &owner, &all, delete_data).await?;
        if self.cancel.is_cancelled() {
            // The records stay, so the same uninstall run again finishes the job.
            return Err(LifecycleError::Interrupted {
                action: "uninstall",
                release: release.to_string(),
                namespace: namespace.to_string(),
                revision: None,
                phase: "deletion",
                deployed: None,
            });
        }
        let client = self.cluster.client().clone();
        if delete_data {
            GeneratedValues::new(client.clone(), namespace, release)
                .delete()
                .await?;
        }
        GeneratedValues::site(client.clone(), namespace, release)
            .delete()
            .await?;
        // The license was stored with the release; it goes with it.
        GeneratedValues::license(client, namespace, release)
            .delete()
            .await?;
        store.delete_all().await?;
        Ok(Outcome {
            revision: history.last().map_or(0, |r| r.revision),
            recorded: false,
            deleted,
            kept,
            ..Outcome::default()
        })
    }

    /// Deletes `candidates` that are not in `keep`, in reverse apply order, if their live
    /// ownership names `owner`. Unless `delete_data`, PVCs, CRDs and namespaces still holding
    /// PVCs or the release's generated values are kept. Returns (deleted, kept).
    pub(super) async fn prune(
        &self,
        candidates: &[ObjectRef],
        keep: &[ObjectRef],
        owner: &Owner,
        known: &[ObjectRef],
        delete_data: bool,
    ) -> Result<(Vec<ObjectRef>, Vec<Kept>), LifecycleError> {
        let mut doomed: Vec<ObjectRef> = candidates
            .iter()
            .filter(|c| !keep.iter().any(|k| k.same_object(c)))
            .cloned()
            .collect();
        sort_for_delete(&mut doomed);
        let mut deleted = Vec::new();
        let mut kept = Vec::new();
        for id in doomed {
            if self.cancel.is_cancelled() {
                break;
            }
            let Some(live) = get_live(&self.resolver, &id).await? else {
                continue;
            };
            if !owned_by(&live, owner, &id, known) {
                let reason = match live_owner(&live) {
                    LiveOwner::Release(o) => format!("it belongs to {o}"),
                    LiveOwner::Legacy(r) => format!("it belongs to release `{r}`"),
                    LiveOwner::Foreign => "it is no longer managed by Airlift".into(),
                };
                kept.push(Kept { object: id, reason });
                continue;
            }
            if let Some(reason) = self.keep_reason(&id, owner, delete_data).await? {
                kept.push(Kept { object: id, reason });
                continue;
            }
            if delete_one(&self.resolver, &id).await? {
                self.progress.message(&format!("deleted {id}"));
                deleted.push(id);
            }
        }
        Ok((deleted, kept))
    }

    /// Why an object the release owns must stay: it holds data, or (a namespace) holds another
    /// release.
    async fn keep_reason(
        &self,
        id: &ObjectRef,
        owner: &Owner,
        delete_data: bool,
    ) -> Result<Option<String>, LifecycleError> {
        let data_hint = "--delete-data deletes it";
        if id.group == "apiextensions.k8s.io" && id.kind == "CustomResourceDefinition" {
            return Ok((!delete_data).then(|| format!("a CRD holds custom resources; {data_hint}")));
        }
        if id.group.is_empty() && id.kind == "PersistentVolumeClaim" {
            return Ok((!delete_data).then(|| format!("a volume holds data; {data_hint}")));
        }
        if !(id.group.is_empty() && id.kind == "Namespace") {
            return Ok(None);
        }
        let client = self.cluster.client().clone();
        let list_err = |what: &'static str, namespace: &str| {
            let namespace = namespace.to_string();
            move |source: kube::Error| LifecycleError::List {
                what,
                namespace,
                source: source.into(),
            }
        };
        let records: Api<Secret> = Api::namespaced(client.clone(), &id.name);
        let others: Vec<String> = match records
            .list(&ListParams::default().labels(LABEL_RECORD))
            .await
        {
            Ok(l) => l
                .items
                .into_iter()
                .filter_map(|s| s.metadata.labels?.get(LABEL_RECORD).cloned())
                .filter(|r| !(r == &owner.release && id.name == owner.namespace))
                .collect(),
            Err(kube::Error::Api(s)) if s.code == 404 => Vec::new(),
            Err(e) => return Err(list_err("release records", &id.name)(e)),
        };
        if let Some(other) = others.first() {
            return Ok(Some(format!("it holds release `{other}`")));
        }
        if delete_data {
            return Ok(None);
        }
        let pvcs: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), &id.name);
        let has_pvcs = match pvcs.list(&ListParams::default()).await {
            Ok(l) => !l.items.is_empty(),
            Err(kube::Error::Api(s)) if s.code == 404 => false,
            Err(e) => return Err(list_err("PersistentVolumeClaims", &id.name)(e)),
        };
        if has_pvcs {
            return Ok(Some(format!("it holds volumes; {data_hint}")));
        }
        if id.name == owner.namespace {
            let generated = GeneratedValues::new(client, &id.name, &owner.release);
            if !generated.read().await?.is_empty() {
                return Ok(Some(format!(
                    "it holds the generated secret values `{}`; {data_hint}",
                    generated.name()
                )));
            }
        }
        Ok(None)
    }
}

/// The revision a rollback without a revision number would return to, if any.
pub fn rollback_target(history: &[Release]) -> Option<u32> {
    let latest = history.last()?;
    if latest.status == ReleaseStatus::Deployed {
        history
            .iter()
            .rev()
            .find(|r| r.revision < latest.revision && r.status.was_deployed())
            .map(|r| r.revision)
    } else {
        history
            .iter()
            .rev()
            .find(|r| r.status == ReleaseStatus::Deployed)
            .map(|r| r.revision)
    }
}
