//! Operations on installed releases: live status, list, rollback, uninstall and the site's
//! values. Rollback and uninstall take the release lock.

use std::collections::BTreeMap;

use airlift_bundle::Progress;
use airlift_cluster::apply::get_live;
use airlift_cluster::cancel::Cancel;
use airlift_cluster::lifecycle::{DeployOptions, Engine, LifecycleError, Outcome};
use airlift_cluster::lock::{lease_name, ReleaseLock};
use airlift_cluster::object::{is_workload, ObjectRef};
use airlift_cluster::readiness::{evaluate, State};
use airlift_cluster::release::{list_releases, Release, ReleaseStatus, ReleaseSummary};
use airlift_cluster::Cluster;
use k8s_openapi::api::coordination::v1::Lease;
use serde::Serialize;
use serde_json::Value;

use crate::error::DeployError;

/// One workload's readiness, read live.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkloadStatus {
    /// The workload.
    pub object: ObjectRef,
    /// Ready replicas (or completed pods for Jobs).
    pub ready: i64,
    /// Desired replicas.
    pub desired: i64,
    /// Ready, progressing, or why not.
    pub condition: String,
}

/// An object whose live value differs from what the release applied.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Changed {
    /// The object.
    pub object: ObjectRef,
    /// The fields that differ (paths only).
    pub fields: Vec<String>,
    /// The same fields with their values and the field manager that wrote each; fields another
    /// manager added that the release never applied come last.
    pub details: Vec<FieldChange>,
}

/// One field of a live object that is not as the release applied it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FieldChange {
    /// The JSON pointer, e.g. `/spec/replicas`.
    pub path: String,
    /// What the release applied (`None` when it never set the field; always `None` on Secrets).
    pub applied: Option<Value>,
    /// What is live (`None` when the field is gone; always `None` on Secrets).
    pub live: Option<Value>,
    /// The field manager that last wrote it, from managedFields, e.g. `kubectl-edit (Update)`.
    pub manager: Option<String>,
}

/// One revision as status shows it: no rendered objects.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Revision {
    /// The revision number.
    pub revision: u32,
    /// Its state.
    pub status: ReleaseStatus,
    /// The bundle.
    pub bundle: airlift_cluster::release::BundleInfo,
    /// When it was recorded.
    pub time: String,
    /// What happened.
    pub description: String,
    /// Who ran it (the cluster identity), when known.
    pub operator: Option<String>,
    /// How many objects it applied.
    pub objects: usize,
    /// The configuration in effect, secrets as fingerprints.
    pub config: BTreeMap<String, Value>,
}

impl From<&Release> for Revision {
    fn from(r: &Release) -> Self {
        Self {
            revision: r.revision,
            status: r.status,
            bundle: r.bundle.clone(),
            time: r.time.clone(),
            description: r.description.clone(),
            operator: r.operator.clone(),
            objects: r.inventory.len(),
            config: r.config.clone(),
        }
    }
}

/// A release as the cluster shows it now.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StatusReport {
    /// The release.
    pub release: String,
    /// The release namespace.
    pub namespace: String,
    /// The revision recorded as deployed, if any.
    pub deployed: Option<Revision>,
    /// The newest revision (the last operation), which may be newer than the deployed one.
    pub latest: Revision,
    /// Every revision, oldest first.
    pub history: Vec<Revision>,
    /// Workloads, read live.
    pub workloads: Vec<WorkloadStatus>,
    /// Objects of the deployed revision that no longer exist.
    pub missing: Vec<ObjectRef>,
    /// Objects whose live fields differ from what was applied.
    pub changed: Vec<Changed>,
    /// Who holds the release lock now, and since when.
    pub locked_by: Option<String>,
    /// The registry the release pulls from.
    pub registry: Option<String>,
    /// One sentence for the state: `deployed`, `deployed, 1 of 2 workloads not ready`, ...
    pub summary: String,
    /// The cluster's platform, as detected now.
    pub platform: airlift_cluster::platform::PlatformReport,
}

/// Reads the release's records and the live state of its objects.
pub async fn status(
    cluster: &Cluster,
    progress: &dyn Progress,
    namespace: &str,
    release: &str,
) -> Result<StatusReport, DeployError> {
    let engine = Engine::new(cluster, progress);
    let history = existing(&engine, namespace, release).await?;
    // `existing` never returns an empty history.
    let Some(latest) = history.last().cloned() else {
        return Err(LifecycleError::NotInstalled {
            release: release.to_string(),
            namespace: namespace.to_string(),
            elsewhere: Vec::new(),
        }
        .into());
    };
    let deployed = history
        .iter()
        .rev()
        .find(|r| r.status == ReleaseStatus::Deployed)
        .cloned();
    let resolver = engine.resolver();
    let mut workloads = Vec::new();
    let mut missing = Vec::new();
    let mut changed = Vec::new();
    if let Some(d) = &deployed {
        for stored in &d.objects {
            let Some(id) = stored.object.id() else {
                continue;
            };
            let live = get_live(resolver, &id)
                .await
                .map_err(|e| DeployError::from(LifecycleError::from(e)))?;
            let Some(live) = live else {
                missing.push(id);
                continue;
            };
            let mut skip: Vec<String> = stored.redacted_paths.clone();
            if !stored.redacted_keys.is_empty() {
                skip.push("/data".into());
                skip.push("/stringData".into());
            }
            let mut fields = Vec::new();
            differing(&stored.object.object, &live, "", &skip, &mut fields);
            let details = field_changes(&id, &stored.object.object, &live, &fields);
            for d in details.iter().skip(fields.len()) {
                fields.push(d.path.clone());
            }
            if !fields.is_empty() {
                changed.push(Changed {
                    object: id.clone(),
                    fields,
                    details,
                });
            }
            if is_workload(&id.group, &id.kind) {
                workloads.push(workload_status(&id, &live));
            }
        }
    }
    let locked_by = lock_holder(cluster, namespace, release).await;
    let summary = summarize(&latest, deployed.as_ref(), &workloads, &missing, &locked_by);
    Ok(StatusReport {
        release: release.to_string(),
        namespace: namespace.to_string(),
        registry: deployed
            .as_ref()
            .and_then(|d| d.site.as_ref())
            .and_then(|s| s.registry.clone()),
        deployed: deployed.as_ref().map(Revision::from),
        latest: Revision::from(&latest),
        history: history.iter().map(Revision::from).collect(),
        workloads,
        missing,
        changed,
        locked_by,
        summary,
        platform: airlift_cluster::platform::detect(cluster.client()).await,
    })
}

fn summarize(
    latest: &Release,
    deployed: Option<&Release>,
    workloads: &[WorkloadStatus],
    missing: &[ObjectRef],
    locked_by: &Option<String>,
) -> String {
    let mut parts = Vec::new();
    match deployed {
        Some(d) => parts.push(format!(
            "revision {} ({} {}) deployed",
            d.revision, d.bundle.name, d.bundle.version
        )),
        None => parts.push("no revision deployed".into()),
    }
    if deployed.map(|d| d.revision) != Some(latest.revision) {
        let state = match (latest.status, locked_by) {
            (ReleaseStatus::Pending, Some(_)) => "in progress".to_string(),
            (ReleaseStatus::Pending, None) => {
                "pending, but no process holds the lock: it stopped partway (run the same \
                 command again, or roll back)"
                    .to_string()
            }
            (s, _) => s.to_string(),
        };
        parts.push(format!(
            "last operation: revision {} ({}) {state}",
            latest.revision,
            airlift_cluster::status::shorten(&latest.description, 120)
        ));
    }
    let not_ready = workloads.iter().filter(|w| w.ready < w.desired).count();
    if not_ready > 0 {
        parts.push(format!(
            "{not_ready} of {} workloads not ready",
            workloads.len()
        ));
    }
    if !missing.is_empty() {
        parts.push(format!("{} objects missing", missing.len()));
    }
    parts.join("; ")
}

fn workload_status(id: &ObjectRef, live: &Value) -> WorkloadStatus {
    let status = live.get("status");
    let num = |p: &str| status.and_then(|s| s.pointer(p)).and_then(Value::as_i64);
    let (ready, desired) = match id.kind.as_str() {
        "DaemonSet" => (
            num("/numberReady").unwrap_or(0),
            num("/desiredNumberScheduled").unwrap_or(0),
        ),
        "Job" => (
            num("/succeeded").unwrap_or(0),
            live.pointer("/spec/completions")
                .and_then(Value::as_i64)
                .unwrap_or(1),
        ),
        "CronJob" => (0, 0),
        _ => (
            num("/readyReplicas").unwrap_or(0),
            live.pointer("/spec/replicas")
                .and_then(Value::as_i64)
                .unwrap_or(1),
        ),
    };
    let condition = match evaluate(&id.kind, live) {
        State::Ready => "ready".to_string(),
        other => format!("{other:?}").to_lowercase(),
    };
    WorkloadStatus {
        object: id.clone(),
        ready,
        desired,
        condition,
    }
}

/// The changed `fields` with values and managers, then the fields other managers added.
fn field_changes(
    id: &ObjectRef,
    applied: &Value,
    live: &Value,
    fields: &[String],
) -> Vec<FieldChange> {
    let owners = crate::drift::ownerships(live);
    let secret = id.group.is_empty() && id.kind == "Secret";
    let value = |v: &Value, p: &str| if secret { None } else { v.pointer(p).cloned() };
    let mut out: Vec<FieldChange> = fields
        .iter()
        .map(|p| FieldChange {
            path: p.clone(),
            applied: value(applied, p),
            live: value(live, p),
            manager: crate::drift::manager_of(&owners, p),
        })
        .collect();
    if !secret {
        for (p, manager) in crate::drift::added_by_others(applied, live, &owners) {
            if fields.iter().any(|f| p.starts_with(f.as_str())) {
                continue;
            }
            out.push(FieldChange {
                applied: None,
                live: live.pointer(&p).cloned(),
                path: p,
                manager: Some(manager),
            });
        }
    }
    out
}

/// Collects the JSON paths where `applied` has a value that `live` lacks or holds differently.
/// Only what was applied is compared, so server-set fields and defaults never count.
fn differing(applied: &Value, live: &Value, path: &str, skip: &[String], out: &mut Vec<String>) {
    if skip.iter().any(|s| s == path)
        || path == "/status"
        || path.starts_with("/metadata/managedFields")
    {
        return;
    }
    match (applied, live) {
        (Value::Object(a), Value::Object(l)) => {
            for (k, v) in a {
                let key = k.replace('~', "~0").replace('/', "~1");
                let child = format!("{path}/{key}");
                match l.get(k) {
                    Some(lv) => differing(v, lv, &child, skip, out),
                    None if v.is_null() => {}
                    None => out.push(child),
                }
            }
        }
        (Value::Array(a), Value::Array(l)) if a.len() == l.len() => {
            for (i, (av, lv)) in a.iter().zip(l).enumerate() {
                differing(av, lv, &format!("{path}/{i}"), skip, out);
            }
        }
        (a, l) if a == l => {}
        // `1` applied may read back as `1`, `"1"` stays a string: compare as text last.
        (a, l) if a.to_string().trim_matches('"') == l.to_string().trim_matches('"') => {}
        _ => out.push(if path.is_empty() {
            "/".into()
        } else {
            path.to_string()
        }),
    }
}

async fn lock_holder(cluster: &Cluster, namespace: &str, release: &str) -> Option<String> {
    let api: kube::Api<Lease> = kube::Api::namespaced(cluster.client().clone(), namespace);
    let lease = api.get_opt(&lease_name(release)).await.ok()??;
    if !airlift_cluster::lock::is_held(&lease) {
        return None;
    }
    let spec = lease.spec?;
    Some(format!(
        "{} since {}",
        spec.holder_identity.unwrap_or_default(),
        spec.acquire_time
            .map(|t| t.0.to_string())
            .unwrap_or_default()
    ))
}

/// The release's history, or why it cannot be read: not installed here (naming where it is), or
/// a preflight failure naming the permissions the user lacks.
async fn existing(
    engine: &Engine<'_>,
    namespace: &str,
    release: &str,
) -> Result<Vec<Release>, DeployError> {
    match engine.existing(namespace, release).await {
        Ok(h) => Ok(h),
        Err(e) => Err(crate::pipeline::explain_forbidden(engine.resolver(), namespace, e).await),
    }
}

/// Every release in `namespace`, or in every namespace.
pub async fn list(
    cluster: &Cluster,
    namespace: Option<&str>,
) -> Result<Vec<ReleaseSummary>, DeployError> {
    Ok(list_releases(cluster.client().clone(), namespace).await?)
}

/// Rolls back under the release lock; `options.cancel` stops it before it re-applies.
pub async fn rollback(
    cluster: &Cluster,
    progress: &dyn Progress,
    namespace: &str,
    release: &str,
    revision: Option<u32>,
    options: &DeployOptions,
    force_unlock: bool,
) -> Result<Outcome, DeployError> {
    let engine = Engine::new(cluster, progress).cancellable(options.cancel.clone());
    existing(&engine, namespace, release).await?;
    let lock = ReleaseLock::acquire(
        cluster.client().clone(),
        namespace,
        release,
        "rollback",
        force_unlock,
    )
    .await?;
    let result = engine.rollback(namespace, release, revision, options).await;
    let unlocked = lock.release().await;
    let outcome = result?;
    unlocked?;
    Ok(outcome)
}

/// Uninstalls under the release lock; `cancel` stops it between two deletions (the records
/// stay, so running it again finishes). The lock itself goes with the release.
pub async fn uninstall(
    cluster: &Cluster,
    progress: &dyn Progress,
    namespace: &str,
    release: &str,
    delete_data: bool,
    force_unlock: bool,
    cancel: Cancel,
) -> Result<Outcome, DeployError> {
    let engine = Engine::new(cluster, progress).cancellable(cancel);
    existing(&engine, namespace, release).await?;
    let lock = ReleaseLock::acquire(
        cluster.client().clone(),
        namespace,
        release,
        "uninstall",
        force_unlock,
    )
    .await?;
    let result = engine.uninstall(namespace, release, delete_data).await;
    let unlocked = lock.release().await;
    let outcome = result?;
    // The namespace may be gone with the lease in it.
    if let Err(e) = unlocked {
        let gone = matches!(&e, airlift_cluster::lock::LockError::Api { source, .. }
            if matches!(source.code(), Some(404 | 409)));
        if !gone {
            return Err(e.into());
        }
    }
    Ok(outcome)
}

/// One configuration item: the SaaS default beside the site's value.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ValueRow {
    /// The key.
    pub key: String,
    /// The SaaS default of the deployed bundle (`None` for secrets and items without one).
    pub saas_default: Option<Value>,
    /// The site's own value, if it gave one (`(secret)` for secrets).
    pub site: Option<Value>,
    /// The value in effect (secrets as fingerprints).
    pub effective: Option<Value>,
}

/// The site's overrides beside the SaaS defaults of the deployed revision.
pub async fn values(
    cluster: &Cluster,
    progress: &dyn Progress,
    namespace: &str,
    release: &str,
) -> Result<Vec<ValueRow>, DeployError> {
    let engine = Engine::new(cluster, progress);
    let history = existing(&engine, namespace, release).await?;
    let Some(d) = history
        .iter()
        .rev()
        .find(|r| r.status == ReleaseStatus::Deployed)
    else {
        return Ok(Vec::new());
    };
    let site = d.site.clone().unwrap_or_default();
    let mut keys: BTreeMap<&str, ()> = BTreeMap::new();
    for k in d
        .config
        .keys()
        .chain(d.saas_defaults.keys())
        .chain(site.values.keys())
    {
        keys.insert(k, ());
    }
    Ok(keys
        .into_keys()
        .map(|k| ValueRow {
            key: k.to_string(),
            saas_default: d.saas_defaults.get(k).cloned(),
            site: site.values.get(k).cloned().or_else(|| {
                site.secret_keys
                    .iter()
                    .any(|s| s == k)
                    .then(|| Value::String("(secret)".into()))
            }),
            effective: d.config.get(k).cloned(),
        })
        .collect())
}
