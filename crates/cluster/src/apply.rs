//! Ordered server-side apply: labels and namespaces filled in, objects applied phase by phase
//! with the fixed field manager `airlift` (forced), and every CRD waited for until Established
//! before anything that uses it. Objects of one phase and component order go to the server
//! concurrently (a bounded number at once); phases stay in order.
//!
//! Before anything changes, every object that exists is dry-run applied: when the server answers
//! that it cannot change in place (422 with "field is immutable", "may not change once set" or a
//! forbidden update), the object is replaced instead (see [`crate::replace`]), except
//! PersistentVolumeClaims and CRDs, which are refused before any change (replacing them would
//! delete data).

use std::time::Duration;

use airlift_bundle::{Diagnose, ExitKind, Progress};
use futures::{stream, StreamExt, TryStreamExt};
use kube::api::{DeleteParams, DynamicObject, Patch, PatchParams};
use serde::Serialize;
use serde_json::Value;

use crate::object::{object_ref, sort_for_apply, ManagedObject, ObjectRef, FIELD_MANAGER};
use crate::resolve::{ResolveError, Resolver};
use crate::status::ServerError;

/// Errors from applying objects.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// The kind of an object is not served and no CRD in the set defines it.
    #[error("cannot apply {object}")]
    Resolve {
        /// The object.
        object: String,
        /// Why its kind could not be resolved.
        #[source]
        source: ResolveError,
    },
    /// The API server refused the apply.
    #[error("the cluster refused to apply {object}")]
    Apply {
        /// The object.
        object: String,
        /// The server's answer.
        #[source]
        source: ServerError,
    },
    /// A CRD did not become Established in time.
    #[error("CRD `{name}` did not become Established within {waited:?}")]
    CrdNotEstablished {
        /// The CRD's name.
        name: String,
        /// How long we waited.
        waited: Duration,
    },
    /// Reading a CRD's status failed.
    #[error("failed to read the status of CRD `{name}`")]
    CrdStatus {
        /// The CRD's name.
        name: String,
        /// The server's answer.
        #[source]
        source: ServerError,
    },
    /// An object being replaced was not gone in time.
    #[error("{object} was still being deleted after {waited:?}")]
    StillDeleting {
        /// The object.
        object: String,
        /// How long we waited.
        waited: Duration,
    },
    /// Reading a live object failed.
    #[error("failed to read {object} from the cluster")]
    Read {
        /// The object.
        object: String,
        /// The server's answer.
        #[source]
        source: ServerError,
    },
    /// An object lacks `apiVersion`, `kind` or `metadata.name`.
    #[error("an object of component `{component}` has no apiVersion, kind or metadata.name")]
    NoIdentity {
        /// The component that rendered it.
        component: String,
    },
    /// Deleting an object failed.
    #[error("failed to delete {object}")]
    Delete {
        /// The object.
        object: String,
        /// The server's answer.
        #[source]
        source: ServerError,
    },
    /// Objects cannot change in place and must not be replaced (it would delete their data);
    /// nothing was changed.
    #[error("{}; nothing was changed", refusals_text(.0))]
    Refused(Vec<Refusal>),
}

/// An object that cannot change in place and that Airlift refuses to delete and recreate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Refusal {
    /// The object.
    pub object: ObjectRef,
    /// The server's reasons: `field: cause`.
    pub causes: Vec<String>,
}

fn refusals_text(refusals: &[Refusal]) -> String {
    refusals
        .iter()
        .map(|r| {
            let what = if r.object.kind == "PersistentVolumeClaim" {
                "replacing it would delete its data"
            } else {
                "replacing it would delete every custom resource of that kind"
            };
            format!(
                "{} cannot change in place ({}) and {what}",
                r.object,
                r.causes.join("; ")
            )
        })
        .collect::<Vec<_>>()
        .join("; ")
}

impl ApplyError {
    /// How the operator can fix it (never a repeat of the message).
    pub fn hint(&self) -> String {
        match self {
            Self::Resolve { source, .. } => source.hint(),
            Self::Apply { source, .. }
            | Self::Delete { source, .. }
            | Self::Read { source, .. } => server_hint(source),
            Self::CrdNotEstablished { .. } => "check the CRD's conditions \
                (`kubectl get crd NAME -o yaml`): a NamesAccepted=False condition means its names \
                clash with another CRD"
                .into(),
            Self::CrdStatus { source, .. } => server_hint(source),
            Self::StillDeleting { .. } => "check the object's finalizers \
                (`kubectl get -o yaml`) and run the command again"
                .into(),
            Self::NoIdentity { .. } => "every manifest needs apiVersion, kind and metadata.name; \
                ask the vendor for a fixed bundle"
                .into(),
            Self::Refused(refusals) => {
                if refusals
                    .iter()
                    .any(|r| r.causes.iter().any(|c| c.contains("less than previous")))
                {
                    "a volume can only grow: set the storage size back to at least its current \
                     value"
                        .into()
                } else if refusals
                    .iter()
                    .all(|r| r.object.kind == "PersistentVolumeClaim")
                {
                    "keep the claim's storage class, access modes and selector as they are (set \
                     the configuration back), or use a new claim name and migrate the data into \
                     it; only resources.requests.storage may grow in place"
                        .into()
                } else {
                    "keep the CRD's scope as it is, or back up its custom resources, delete the \
                     CRD by hand and run the command again"
                        .into()
                }
            }
        }
    }
}

/// What to do about an error the API server returned.
pub(crate) fn server_hint(source: &ServerError) -> String {
    match source.code() {
        Some(404) => "the object's namespace does not exist: the bundle must create it, or \
            create it before installing"
            .into(),
        Some(422) | Some(400) => "the bundle's manifests may need a newer Kubernetes version, \
            or a configuration value is malformed"
            .into(),
        _ => crate::kubeconfig::api_hint(source.inner()),
    }
}

impl Diagnose for ApplyError {
    fn exit_kind(&self) -> ExitKind {
        match self {
            Self::Refused(_) | Self::NoIdentity { .. } => ExitKind::Config,
            _ => ExitKind::Cluster,
        }
    }

    fn fix(&self) -> Option<String> {
        Some(self.hint())
    }
}

/// Labels, namespaces and order: returns the objects as they will be applied. Namespaced objects
/// without a namespace get `default_ns`; cluster-scoped ones lose any namespace. Kinds not served
/// yet are looked up among the CRDs of the set.
pub async fn prepare(
    resolver: &Resolver,
    objects: &[ManagedObject],
    release: &str,
    default_ns: &str,
) -> Result<Vec<ManagedObject>, ApplyError> {
    let mut out = Vec::with_capacity(objects.len());
    for o in objects {
        let mut o = o.clone();
        o.set_labels(release);
        let id = o.id().ok_or_else(|| ApplyError::NoIdentity {
            component: o.component.clone(),
        })?;
        let namespaced = match resolver.resolve(&id.api_version(), &id.kind).await {
            Ok(r) => r.namespaced,
            Err(e) => match crd_scope_in_set(objects, &id.group, &id.kind) {
                Some(namespaced) => namespaced,
                None => {
                    return Err(ApplyError::Resolve {
                        object: id.to_string(),
                        source: e,
                    })
                }
            },
        };
        if let Some(meta) = o.object.get_mut("metadata").and_then(Value::as_object_mut) {
            if namespaced {
                if id.namespace.is_none() {
                    meta.insert("namespace".into(), default_ns.into());
                }
            } else {
                meta.remove("namespace");
            }
        }
        out.push(o);
    }
    sort_for_apply(&mut out);
    Ok(out)
}

/// Whether a CRD in `objects` defines `group`/`kind`, and if so whether it is namespaced.
fn crd_scope_in_set(objects: &[ManagedObject], group: &str, kind: &str) -> Option<bool> {
    objects.iter().find_map(|o| {
        let spec = o.object.get("spec")?;
        (o.kind() == "CustomResourceDefinition"
            && spec.get("group")?.as_str()? == group
            && spec.pointer("/names/kind")?.as_str()? == kind)
            .then(|| spec.get("scope").and_then(Value::as_str) != Some("Cluster"))
    })
}

/// Server-side applies `object` (already prepared), forced, as field manager `airlift`.
pub async fn apply_one(
    resolver: &Resolver,
    object: &Value,
    dry_run: bool,
) -> Result<DynamicObject, ApplyError> {
    let id = object_ref(object).ok_or_else(|| ApplyError::NoIdentity {
        component: String::new(),
    })?;
    let (api, _) =
        resolver
            .api_for(&id, "default")
            .await
            .map_err(|source| ApplyError::Resolve {
                object: id.to_string(),
                source,
            })?;
    let mut params = PatchParams::apply(FIELD_MANAGER).force();
    if dry_run {
        params = params.dry_run();
    }
    api.patch(&id.name, &params, &Patch::Apply(object))
        .await
        .map_err(|source| ApplyError::Apply {
            object: id.to_string(),
            source: source.into(),
        })
}

/// Applies prepared objects in order, waiting for each CRD to be Established (then refreshing
/// discovery). Every object applied is pushed onto `applied`, also when a later one fails, so a
/// caller can undo a partial apply. Same as [`apply_set`], without the report.
pub async fn apply_all(
    resolver: &Resolver,
    objects: &[ManagedObject],
    crd_timeout: Duration,
    progress: &dyn Progress,
    applied: &mut Vec<ObjectRef>,
) -> Result<(), ApplyError> {
    apply_set(resolver, objects, crd_timeout, progress, applied)
        .await
        .map(|_| ())
}

/// How an object fits the cluster, found by a server-side dry-run apply.
#[derive(Debug, Clone, PartialEq)]
pub enum Fit {
    /// It does not exist yet.
    Create,
    /// It exists and can be applied in place; `dry` is the dry-run result.
    InPlace {
        /// The live object.
        live: Value,
        /// What it would become.
        dry: Value,
    },
    /// It exists and cannot change in place; it will be deleted and created again.
    Replace {
        /// The live object.
        live: Value,
        /// The server's reasons: `field: cause`.
        causes: Vec<String>,
    },
    /// It cannot change in place, and replacing it would lose data (PVC, CRD).
    Refuse {
        /// The server's reasons: `field: cause`.
        causes: Vec<String>,
    },
}

/// Whether a 422 cause says "this cannot change in place" (the apiserver's wordings).
fn is_immutable_cause(message: &str) -> bool {
    [
        "immutable",
        "may not change once set",
        "updates to ",
        "can not be less than",
    ]
    .iter()
    .any(|p| message.contains(p))
}

/// The causes of a 422 when all say the object cannot change in place.
fn immutable_causes(e: &ApplyError) -> Option<Vec<String>> {
    let ApplyError::Apply { source, .. } = e else {
        return None;
    };
    if source.code() != Some(422) {
        return None;
    }
    let causes = source.causes();
    (!causes.is_empty() && causes.iter().all(|(_, m)| is_immutable_cause(m))).then(|| {
        causes
            .iter()
            .map(|(f, m)| format!("{f}: {}", crate::status::cause_text(m)))
            .collect()
    })
}

/// Kinds whose replacement would delete data: refused instead.
fn never_replaced(id: &ObjectRef) -> bool {
    (id.group.is_empty() && id.kind == "PersistentVolumeClaim")
        || (id.group == "apiextensions.k8s.io" && id.kind == "CustomResourceDefinition")
}

/// Reads `object` (prepared) from the cluster and dry-run applies it. Changes nothing.
pub async fn fit(resolver: &Resolver, object: &Value) -> Result<Fit, ApplyError> {
    let id = object_ref(object).ok_or_else(|| ApplyError::NoIdentity {
        component: String::new(),
    })?;
    let Some(live) = get_live(resolver, &id).await? else {
        return Ok(Fit::Create);
    };
    match apply_one(resolver, object, true).await {
        Ok(dry) => Ok(Fit::InPlace {
            live,
            dry: serde_json::to_value(dry).unwrap_or(Value::Null),
        }),
        Err(e) => match immutable_causes(&e) {
            Some(causes) if never_replaced(&id) => Ok(Fit::Refuse { causes }),
            Some(causes) => Ok(Fit::Replace { live, causes }),
            None => Err(e),
        },
    }
}

/// [`fit`] for every prepared object (at most [`APPLY_CONCURRENCY`] at once, results in order);
/// [`ApplyError::Refused`] lists every object that cannot change in place and is never replaced.
/// Changes nothing: a lifecycle can call it before it records anything, so a refused upgrade
/// leaves no trace (`apply_set` calls it first too).
pub async fn fit_all(
    resolver: &Resolver,
    objects: &[ManagedObject],
) -> Result<Vec<Fit>, ApplyError> {
    let fits: Vec<Fit> = stream::iter(objects.iter().map(|o| async move {
        match o.id() {
            Some(_) => fit(resolver, &o.object).await,
            None => Ok(Fit::Create),
        }
    }))
    .buffered(APPLY_CONCURRENCY)
    .try_collect()
    .await?;
    let refusals: Vec<Refusal> = objects
        .iter()
        .zip(&fits)
        .filter_map(|(o, f)| match f {
            Fit::Refuse { causes } => Some(Refusal {
                object: o.id()?,
                causes: causes.clone(),
            }),
            _ => None,
        })
        .collect();
    if refusals.is_empty() {
        Ok(fits)
    } else {
        Err(ApplyError::Refused(refusals))
    }
}

/// An object deleted and created again because it could not change in place.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Replaced {
    /// The object.
    pub object: ObjectRef,
    /// The server's reasons: `field: cause`.
    pub causes: Vec<String>,
}

/// What [`apply_set`] did, object by object.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ApplyReport {
    /// Objects that did not exist.
    pub created: Vec<ObjectRef>,
    /// Objects changed in place.
    pub changed: Vec<ObjectRef>,
    /// Objects the apply left as they were.
    pub unchanged: Vec<ObjectRef>,
    /// Objects deleted and created again.
    pub replaced: Vec<Replaced>,
    /// ReplicaSets, Pods and ControllerRevisions of replaced workloads, left running (orphaned)
    /// so the old version keeps serving; [`crate::replace::cleanup_orphans`] deletes them once
    /// the new workload is ready.
    pub orphaned: Vec<ObjectRef>,
}

/// Applies prepared objects in order, like [`apply_all`], and reports what it did.
///
/// First every existing object is dry-run applied ([`fit`]); if any PVC or CRD cannot change in
/// place, nothing is changed and [`ApplyError::Refused`] lists them all. Then objects are
/// applied in order; one that cannot change in place is replaced ([`crate::replace::replace`]):
/// Deployments, DaemonSets and ReplicaSets are deleted with `propagationPolicy=Orphan` so their
/// Pods keep serving until the lifecycle calls [`crate::replace::cleanup_orphans`] after
/// readiness (which [`crate::readiness::wait_ready`] does itself); anything else is deleted
/// (Background) and created again.
pub async fn apply_set(
    resolver: &Resolver,
    objects: &[ManagedObject],
    crd_timeout: Duration,
    progress: &dyn Progress,
    applied: &mut Vec<ObjectRef>,
) -> Result<ApplyReport, ApplyError> {
    let fits = fit_all(resolver, objects).await?;
    apply_fitted(resolver, objects, fits, crd_timeout, progress, applied).await
}

/// The apply of [`apply_set`] for objects already fitted by [`fit_all`] (same order), so a
/// lifecycle that checks ownership and refusals from the fits first does not dry-run twice.
///
/// Objects are applied batch by batch, a batch being the consecutive objects of one phase and
/// component order (see [`crate::object::sort_for_apply`]): the objects of a batch are
/// independent of each other and go at most [`APPLY_CONCURRENCY`] at once; a batch starts only
/// when the one before it is applied (and its CRDs Established). When an object fails, the rest
/// of its batch still completes (so `applied` lists every object that was changed) and no later
/// batch starts.
pub async fn apply_fitted(
    resolver: &Resolver,
    objects: &[ManagedObject],
    fits: Vec<Fit>,
    crd_timeout: Duration,
    progress: &dyn Progress,
    applied: &mut Vec<ObjectRef>,
) -> Result<ApplyReport, ApplyError> {
    let mut report = ApplyReport::default();
    // Progress bars count bytes; objects are reported as messages.
    let total = objects.len();
    let mut pending: Vec<(usize, &ManagedObject, Fit)> = objects
        .iter()
        .zip(fits)
        .enumerate()
        .map(|(i, (o, f))| (i, o, f))
        .collect();
    pending.reverse();
    while let Some(&(_, first, _)) = pending.last() {
        let key = batch_key(first);
        let mut batch = Vec::new();
        while pending.last().is_some_and(|(_, o, _)| batch_key(o) == key) {
            batch.extend(pending.pop());
        }
        let outcomes: Vec<_> = stream::iter(batch.into_iter().map(|(i, o, f)| async move {
            (
                i,
                o,
                apply_fitted_one(resolver, o, f, crd_timeout, progress).await,
            )
        }))
        .buffered(APPLY_CONCURRENCY)
        .collect()
        .await;
        let mut failed = None;
        let mut crds = Vec::new();
        for (i, o, outcome) in outcomes {
            let (id, outcome) = match outcome {
                Ok(Some(done)) => done,
                Ok(None) => continue,
                Err(e) => {
                    failed.get_or_insert(e);
                    continue;
                }
            };
            match outcome {
                Outcome::Created => report.created.push(id.clone()),
                Outcome::Changed => report.changed.push(id.clone()),
                Outcome::Unchanged => report.unchanged.push(id.clone()),
                Outcome::Replaced { causes, orphaned } => {
                    report.orphaned.extend(orphaned);
                    report.replaced.push(Replaced {
                        object: id.clone(),
                        causes,
                    });
                }
            }
            if !applied.contains(&id) {
                applied.push(id.clone());
            }
            progress.message(&format!("applied {id} ({}/{total})", i + 1));
            if o.kind() == "CustomResourceDefinition" && id.group == "apiextensions.k8s.io" {
                crds.push(id.name);
            }
        }
        if let Some(e) = failed {
            return Err(e);
        }
        for name in &crds {
            wait_crd_established(resolver, name, crd_timeout).await?;
        }
        if !crds.is_empty() {
            resolver.refresh().await;
        }
    }
    Ok(report)
}

/// How many objects of one batch [`apply_fitted`] applies at once, and how many [`fit_all`]
/// dry-runs at once. Each is one request (two for a replacement) to the API server, which serves
/// them in parallel; client-side throttling aside, a real apiserver admits hundreds of concurrent
/// requests per client (`--max-mutating-requests-inflight` defaults to 200).
pub const APPLY_CONCURRENCY: usize = 8;

/// Objects with the same key form one batch of independent objects.
fn batch_key(o: &ManagedObject) -> (u8, i32) {
    crate::object::sort_key(o)
}

/// What applying one object did.
enum Outcome {
    Created,
    Changed,
    Unchanged,
    Replaced {
        causes: Vec<String>,
        orphaned: Vec<ObjectRef>,
    },
}

/// Applies one fitted object: in place, or replaced when it cannot change in place. `None` for
/// an object without identity (nothing to do).
async fn apply_fitted_one(
    resolver: &Resolver,
    o: &ManagedObject,
    fit: Fit,
    crd_timeout: Duration,
    progress: &dyn Progress,
) -> Result<Option<(ObjectRef, Outcome)>, ApplyError> {
    let Some(id) = o.id() else { return Ok(None) };
    let (live, causes) = match fit {
        Fit::Replace { live, causes } => (Some(live), Some(causes)),
        Fit::InPlace { live, .. } => (Some(live), None),
        _ => (None, None),
    };
    let causes = match causes {
        Some(c) => c,
        None => match apply_one(resolver, &o.object, false).await {
            Ok(done) => {
                let rv = |v: &Value| v.pointer("/metadata/resourceVersion").cloned();
                let done = serde_json::to_value(done).unwrap_or(Value::Null);
                let outcome = match &live {
                    None => Outcome::Created,
                    Some(l) if rv(l) == rv(&done) => Outcome::Unchanged,
                    Some(_) => Outcome::Changed,
                };
                return Ok(Some((id, outcome)));
            }
            // It changed between the dry run and now: still replaceable.
            Err(e) => match (immutable_causes(&e), &live) {
                (Some(c), Some(_)) if !never_replaced(&id) => c,
                _ => return Err(e),
            },
        },
    };
    progress.message(&format!(
        "{id} cannot change in place ({}); replacing it",
        causes.join("; ")
    ));
    let live = live.unwrap_or(Value::Null);
    let orphaned = crate::replace::replace(resolver, &id, &o.object, &live, crd_timeout).await?;
    Ok(Some((id, Outcome::Replaced { causes, orphaned })))
}

/// Polls a CRD until its `Established` condition is `True`.
pub async fn wait_crd_established(
    resolver: &Resolver,
    name: &str,
    timeout: Duration,
) -> Result<(), ApplyError> {
    let id = ObjectRef {
        group: "apiextensions.k8s.io".into(),
        version: "v1".into(),
        kind: "CustomResourceDefinition".into(),
        namespace: None,
        name: name.to_string(),
    };
    let (api, _) =
        resolver
            .api_for(&id, "default")
            .await
            .map_err(|source| ApplyError::Resolve {
                object: id.to_string(),
                source,
            })?;
    let start = tokio::time::Instant::now();
    loop {
        let crd = api
            .get(name)
            .await
            .map_err(|source| ApplyError::CrdStatus {
                name: name.to_string(),
                source: source.into(),
            })?;
        let established = crd
            .data
            .pointer("/status/conditions")
            .and_then(Value::as_array)
            .is_some_and(|conds| {
                conds.iter().any(|c| {
                    c.get("type").and_then(Value::as_str) == Some("Established")
                        && c.get("status").and_then(Value::as_str) == Some("True")
                })
            });
        if established {
            return Ok(());
        }
        if start.elapsed() >= timeout {
            return Err(ApplyError::CrdNotEstablished {
                name: name.to_string(),
                waited: timeout,
            });
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Deletes one object (background propagation); an object already gone is not an error.
/// Returns whether it existed.
pub async fn delete_one(resolver: &Resolver, id: &ObjectRef) -> Result<bool, ApplyError> {
    let (api, _) = match resolver.api_for(id, "default").await {
        Ok(a) => a,
        // The kind is gone (its CRD was deleted first): so is the object.
        Err(ResolveError::GroupNotServed { .. } | ResolveError::KindNotServed { .. }) => {
            return Ok(false)
        }
        Err(source) => {
            return Err(ApplyError::Resolve {
                object: id.to_string(),
                source,
            })
        }
    };
    match api.delete(&id.name, &DeleteParams::background()).await {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(false),
        Err(source) => Err(ApplyError::Delete {
            object: id.to_string(),
            source: source.into(),
        }),
    }
}

/// Reads one live object; `None` when it (or its kind) does not exist.
pub async fn get_live(resolver: &Resolver, id: &ObjectRef) -> Result<Option<Value>, ApplyError> {
    let (api, _) = match resolver.api_for(id, "default").await {
        Ok(a) => a,
        Err(ResolveError::GroupNotServed { .. } | ResolveError::KindNotServed { .. }) => {
            return Ok(None)
        }
        Err(source) => {
            return Err(ApplyError::Resolve {
                object: id.to_string(),
                source,
            })
        }
    };
    match api.get_opt(&id.name).await {
        Ok(Some(o)) => Ok(Some(serde_json::to_value(o).unwrap_or(Value::Null))),
        Ok(None) => Ok(None),
        Err(source) => Err(ApplyError::Read {
            object: id.to_string(),
            source: source.into(),
        }),
    }
}
