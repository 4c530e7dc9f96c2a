//! Replacing objects that cannot change in place, and cleaning up after a replaced workload.
//!
//! - Deployments, DaemonSets and ReplicaSets are deleted with `propagationPolicy=Orphan`: their
//!   ReplicaSets and Pods keep serving. Those are labelled [`LABEL_ORPHANED`] (and annotated
//!   with the workload they came from), the new object is created, and once it is ready
//!   [`cleanup_orphans`] deletes them.
//! - Anything else (Jobs, StatefulSets, Services, immutable Secrets and ConfigMaps, ...) is
//!   deleted with `propagationPolicy=Background`, waited for until gone, and created again.
//!   A StatefulSet's Pods are named after it, so orphans would block the new one's Pods.
//! - PersistentVolumeClaims and CRDs are never replaced (see [`crate::apply::apply_set`]).

use std::time::Duration;

use kube::api::{DeleteParams, ListParams, Patch, PatchParams};
use serde_json::{json, Value};

use crate::apply::{apply_one, delete_one, get_live, ApplyError};
use crate::object::{ObjectRef, FIELD_MANAGER};
use crate::resolve::Resolver;

/// Label on the ReplicaSets, Pods and ControllerRevisions a replaced workload left running.
pub const LABEL_ORPHANED: &str = "airlift.dev/orphaned";
/// Annotation naming the workload (`Kind/name`) they belonged to.
pub const ANNOTATION_ORPHANED_FROM: &str = "airlift.dev/orphaned-from";

/// Whether a replaced `id` leaves its Pods running (deleted with `propagationPolicy=Orphan`).
pub fn orphans_pods(id: &ObjectRef) -> bool {
    id.group == "apps" && matches!(id.kind.as_str(), "Deployment" | "DaemonSet" | "ReplicaSet")
}

/// The kinds a workload owns.
fn dependent_kinds(ns: &str) -> [ObjectRef; 3] {
    let r = |group: &str, kind: &str| ObjectRef {
        group: group.into(),
        version: "v1".into(),
        kind: kind.into(),
        namespace: Some(ns.to_string()),
        name: String::new(),
    };
    [
        r("apps", "ReplicaSet"),
        r("", "Pod"),
        r("apps", "ControllerRevision"),
    ]
}

/// Deletes `id` (whose live state is `live`), waits until it is gone, and applies `object`.
/// Returns the objects left running on purpose (see [`orphans_pods`]), already labelled.
pub async fn replace(
    resolver: &Resolver,
    id: &ObjectRef,
    object: &Value,
    live: &Value,
    timeout: Duration,
) -> Result<Vec<ObjectRef>, ApplyError> {
    let resolve_err = |source| ApplyError::Resolve {
        object: id.to_string(),
        source,
    };
    let (api, _) = resolver.api_for(id, "default").await.map_err(resolve_err)?;
    let orphan = orphans_pods(id);
    let dependents = match (&id.namespace, orphan) {
        (Some(ns), true) => owned_by(resolver, ns, live).await?,
        _ => Vec::new(),
    };
    let params = if orphan {
        DeleteParams::orphan()
    } else {
        DeleteParams::background()
    };
    match api.delete(&id.name, &params).await {
        Ok(_) => {}
        Err(kube::Error::Api(s)) if s.code == 404 => {}
        Err(source) => {
            return Err(ApplyError::Delete {
                object: id.to_string(),
                source: source.into(),
            })
        }
    }
    let start = tokio::time::Instant::now();
    while get_live(resolver, id).await?.is_some() {
        if start.elapsed() >= timeout {
            return Err(ApplyError::StillDeleting {
                object: id.to_string(),
                waited: timeout,
            });
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let from = format!("{}/{}", id.kind, id.name);
    for d in &dependents {
        mark_orphan(resolver, d, &from).await?;
    }
    apply_one(resolver, object, false).await?;
    Ok(dependents)
}

/// The ReplicaSets, Pods and ControllerRevisions in `ns` whose owner is `live`.
async fn owned_by(
    resolver: &Resolver,
    ns: &str,
    live: &Value,
) -> Result<Vec<ObjectRef>, ApplyError> {
    let Some(uid) = live.pointer("/metadata/uid").and_then(Value::as_str) else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for kind in dependent_kinds(ns) {
        for item in list(resolver, &kind, &ListParams::default()).await? {
            let owned = item
                .metadata
                .owner_references
                .iter()
                .flatten()
                .any(|o| o.uid == uid);
            if let (true, Some(name)) = (owned, item.metadata.name) {
                out.push(ObjectRef {
                    name,
                    ..kind.clone()
                });
            }
        }
    }
    Ok(out)
}

async fn list(
    resolver: &Resolver,
    kind: &ObjectRef,
    params: &ListParams,
) -> Result<Vec<kube::api::DynamicObject>, ApplyError> {
    let (api, _) =
        resolver
            .api_for(kind, "default")
            .await
            .map_err(|source| ApplyError::Resolve {
                object: kind.kind.clone(),
                source,
            })?;
    api.list(params)
        .await
        .map(|l| l.items)
        .map_err(|source| ApplyError::Read {
            object: format!(
                "{} in namespace {}",
                kind.kind,
                kind.namespace.as_deref().unwrap_or("")
            ),
            source: source.into(),
        })
}

async fn mark_orphan(resolver: &Resolver, id: &ObjectRef, from: &str) -> Result<(), ApplyError> {
    let (api, _) = resolver
        .api_for(id, "default")
        .await
        .map_err(|source| ApplyError::Resolve {
            object: id.to_string(),
            source,
        })?;
    let patch = json!({"metadata": {"labels": {LABEL_ORPHANED: "true"},
        "annotations": {ANNOTATION_ORPHANED_FROM: from}}});
    match api
        .patch(
            &id.name,
            &PatchParams::apply(FIELD_MANAGER),
            &Patch::Merge(&patch),
        )
        .await
    {
        Ok(_) => Ok(()),
        // Already gone (a Pod that finished): nothing to clean up later.
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
        Err(source) => Err(ApplyError::Apply {
            object: id.to_string(),
            source: source.into(),
        }),
    }
}

/// Deletes what replaced `workloads` left running ([`LABEL_ORPHANED`], annotated with one of
/// them, and still without an owner), once they are ready. Call it after readiness;
/// [`crate::readiness::wait_ready`] does. Returns what it deleted.
pub async fn cleanup_orphans(
    resolver: &Resolver,
    workloads: &[ObjectRef],
) -> Result<Vec<ObjectRef>, ApplyError> {
    let mut deleted = Vec::new();
    let mut namespaces: Vec<&str> = workloads
        .iter()
        .filter(|w| orphans_pods(w))
        .filter_map(|w| w.namespace.as_deref())
        .collect();
    namespaces.sort_unstable();
    namespaces.dedup();
    let params = ListParams::default().labels(&format!("{LABEL_ORPHANED}=true"));
    for ns in namespaces {
        for kind in dependent_kinds(ns) {
            for item in list(resolver, &kind, &params).await? {
                let from = item
                    .metadata
                    .annotations
                    .as_ref()
                    .and_then(|a| a.get(ANNOTATION_ORPHANED_FROM))
                    .cloned()
                    .unwrap_or_default();
                let ours = workloads.iter().any(|w| {
                    w.namespace.as_deref() == Some(ns) && from == format!("{}/{}", w.kind, w.name)
                });
                let adopted = item
                    .metadata
                    .owner_references
                    .as_ref()
                    .is_some_and(|o| !o.is_empty());
                let Some(name) = item.metadata.name else {
                    continue;
                };
                if !ours || adopted {
                    continue;
                }
                let id = ObjectRef {
                    name,
                    ..kind.clone()
                };
                if delete_one(resolver, &id).await? {
                    deleted.push(id);
                }
            }
        }
    }
    Ok(deleted)
}
