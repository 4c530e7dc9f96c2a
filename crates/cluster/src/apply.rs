//! Ordered server-side apply: labels and namespaces filled in, objects applied phase by phase
//! with the fixed field manager `airlift` (forced), and every CRD waited for until Established
//! before anything that uses it.

use std::time::Duration;

use airlift_bundle::Progress;
use kube::api::{DeleteParams, DynamicObject, Patch, PatchParams};
use serde_json::Value;

use crate::object::{object_ref, sort_for_apply, ManagedObject, ObjectRef, FIELD_MANAGER};
use crate::resolve::{ResolveError, Resolver};

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
        source: kube::Error,
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
        source: kube::Error,
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
        source: kube::Error,
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
        source: kube::Error,
    },
}

impl ApplyError {
    /// How the operator can fix it.
    pub fn hint(&self) -> String {
        match self {
            Self::Resolve { source, .. } => source.hint(),
            Self::Apply { source, .. }
            | Self::Delete { source, .. }
            | Self::Read { source, .. } => match source {
                kube::Error::Api(s) if s.code == 404 => "the object's namespace does not exist: \
                    the bundle must create it, or create it before installing"
                    .into(),
                kube::Error::Api(s) if s.code == 422 || s.code == 400 => format!(
                    "the server rejected the object as invalid ({}); the bundle's manifests may \
                     need a newer Kubernetes version or a configuration value is malformed",
                    s.message
                ),
                other => crate::kubeconfig::api_hint(other),
            },
            Self::CrdNotEstablished { .. } => "check the CRD's conditions \
                (`kubectl get crd NAME -o yaml`): a NamesAccepted=False condition means its names \
                clash with another CRD"
                .into(),
            Self::CrdStatus { source, .. } => crate::kubeconfig::api_hint(source),
            Self::StillDeleting { .. } => "check the object's finalizers \
                (`kubectl get -o yaml`) and run the command again"
                .into(),
            Self::NoIdentity { .. } => "every manifest needs apiVersion, kind and metadata.name; \
                ask the vendor for a fixed bundle"
                .into(),
        }
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
            source,
        })
}

/// Applies prepared objects in order, waiting for each CRD to be Established (then refreshing
/// discovery). Every object applied is pushed onto `applied`, also when a later one fails, so a
/// caller can undo a partial apply.
pub async fn apply_all(
    resolver: &Resolver,
    objects: &[ManagedObject],
    crd_timeout: Duration,
    progress: &dyn Progress,
    applied: &mut Vec<ObjectRef>,
) -> Result<(), ApplyError> {
    // Progress bars count bytes; objects are reported as messages.
    let total = objects.len();
    for (i, o) in objects.iter().enumerate() {
        let Some(id) = o.id() else { continue };
        match apply_one(resolver, &o.object, false).await {
            Ok(_) => {}
            Err(ApplyError::Apply {
                source: kube::Error::Api(s),
                ..
            }) if s.code == 422 && is_replaceable_job(&id) && s.message.contains("immutable") => {
                // A Job's pod template cannot change: replace the Job, as an upgrade must.
                progress.message(&format!("{id} has an immutable template; replacing it"));
                replace_job(resolver, &id, &o.object, crd_timeout).await?;
            }
            Err(e) => return Err(e),
        }
        if !applied.contains(&id) {
            applied.push(id.clone());
        }
        progress.message(&format!("applied {id} ({}/{total})", i + 1));
        if o.kind() == "CustomResourceDefinition" && id.group == "apiextensions.k8s.io" {
            wait_crd_established(resolver, &id.name, crd_timeout).await?;
            resolver.refresh().await;
        }
    }
    Ok(())
}

fn is_replaceable_job(id: &ObjectRef) -> bool {
    id.group == "batch" && id.kind == "Job"
}

/// Deletes a Job (and its Pods), waits until it is gone, and applies it anew.
async fn replace_job(
    resolver: &Resolver,
    id: &ObjectRef,
    object: &Value,
    timeout: Duration,
) -> Result<(), ApplyError> {
    let (api, _) = resolver
        .api_for(id, "default")
        .await
        .map_err(|source| ApplyError::Resolve {
            object: id.to_string(),
            source,
        })?;
    match api.delete(&id.name, &DeleteParams::foreground()).await {
        Ok(_) => {}
        Err(kube::Error::Api(s)) if s.code == 404 => {}
        Err(source) => {
            return Err(ApplyError::Delete {
                object: id.to_string(),
                source,
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
    apply_one(resolver, object, false).await?;
    Ok(())
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
                source,
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
            source,
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
            source,
        }),
    }
}
