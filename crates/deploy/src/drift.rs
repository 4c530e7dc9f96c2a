//! Drift: is a site still in step with what its release applied, and with the SaaS defaults?
//!
//! Built on [`crate::releases::status`]: the same live comparison, field by field, of what the
//! release applied (so server-owned fields and defaults never count), with the field manager
//! that wrote each changed field read from `managedFields`. Fields that another manager added
//! (a `kubectl edit` adding an env var) count too. Then the site's values beside the SaaS
//! defaults of the running bundle.

use airlift_bundle::Progress;
use airlift_cluster::object::{ObjectRef, FIELD_MANAGER};
use airlift_cluster::Cluster;
use serde::Serialize;
use serde_json::Value;

use crate::error::DeployError;
use crate::releases::{self, FieldChange, ValueRow};

/// Managers that are the cluster itself: what they write is never drift.
const SYSTEM_MANAGERS: &[&str] = &[
    "kube-controller-manager",
    "kube-scheduler",
    "kubelet",
    "kube-apiserver",
    "before-first-apply",
];

/// One object that drifted.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectDrift {
    /// The object.
    pub object: ObjectRef,
    /// True when the object is gone.
    pub missing: bool,
    /// The fields that differ, each with the manager that wrote it.
    pub fields: Vec<FieldChange>,
}

/// A site value that differs from the SaaS default of the running bundle.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Override {
    /// The config key.
    pub key: String,
    /// The SaaS default.
    pub saas_default: Value,
    /// The site's value.
    pub site: Value,
}

/// What `drift` found.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DriftReport {
    /// The release.
    pub release: String,
    /// Its namespace.
    pub namespace: String,
    /// The deployed revision compared against.
    pub revision: Option<u32>,
    /// True when every applied field is live as applied and nothing is missing.
    pub in_step: bool,
    /// Objects that changed or are gone.
    pub objects: Vec<ObjectDrift>,
    /// The site's values that override a SaaS default (informational: they never make the
    /// release drifted, the site chose them).
    pub overrides: Vec<Override>,
    /// SaaS defaults the site follows.
    pub follows: Vec<String>,
}

/// Compares the live objects with what the release applied, and the site's values with the
/// running bundle's SaaS defaults.
pub async fn drift(
    cluster: &Cluster,
    progress: &dyn Progress,
    namespace: &str,
    release: &str,
) -> Result<DriftReport, DeployError> {
    let status = releases::status(cluster, progress, namespace, release).await?;
    let rows = releases::values(cluster, progress, namespace, release).await?;
    let mut objects: Vec<ObjectDrift> = status
        .missing
        .iter()
        .map(|m| ObjectDrift {
            object: m.clone(),
            missing: true,
            fields: Vec::new(),
        })
        .collect();
    for c in &status.changed {
        objects.push(ObjectDrift {
            object: c.object.clone(),
            missing: false,
            fields: c.details.clone(),
        });
    }
    let (overrides, follows) = split_values(&rows);
    Ok(DriftReport {
        release: status.release,
        namespace: status.namespace,
        revision: status.deployed.as_ref().map(|d| d.revision),
        in_step: objects.is_empty(),
        objects,
        overrides,
        follows,
    })
}

fn split_values(rows: &[ValueRow]) -> (Vec<Override>, Vec<String>) {
    let mut overrides = Vec::new();
    let mut follows = Vec::new();
    for r in rows {
        let Some(default) = &r.saas_default else {
            continue;
        };
        match &r.site {
            Some(site) if site != default => overrides.push(Override {
                key: r.key.clone(),
                saas_default: default.clone(),
                site: site.clone(),
            }),
            _ => follows.push(r.key.clone()),
        }
    }
    (overrides, follows)
}

/// One `managedFields` entry: who, how, and the JSON pointers of the fields it owns, resolved
/// against the live object (`k:{…}` and `v:…` list keys become indexes).
#[derive(Debug, Clone)]
pub struct Ownership {
    /// The manager.
    pub manager: String,
    /// `Update` or `Apply`.
    pub operation: String,
    /// `status`, `scale`, or none.
    pub subresource: Option<String>,
    /// The owned fields, as JSON pointers.
    pub fields: Vec<String>,
}

/// The ownerships recorded in `live`'s managedFields.
pub fn ownerships(live: &Value) -> Vec<Ownership> {
    live.pointer("/metadata/managedFields")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|e| {
            let mut fields = Vec::new();
            walk_fields(&e["fieldsV1"], live, String::new(), &mut fields, 0);
            Ownership {
                manager: e["manager"].as_str().unwrap_or_default().to_string(),
                operation: e["operation"].as_str().unwrap_or_default().to_string(),
                subresource: e["subresource"].as_str().map(String::from),
                fields,
            }
        })
        .collect()
}

fn escape(k: &str) -> String {
    k.replace('~', "~0").replace('/', "~1")
}

/// Walks a FieldsV1 tree, resolving list keys against `live`. Leaves (and `.`, the node itself)
/// become pointers.
fn walk_fields(node: &Value, live: &Value, path: String, out: &mut Vec<String>, depth: usize) {
    let Some(m) = node.as_object() else {
        return;
    };
    if depth > 64 {
        return;
    }
    if m.is_empty() || m.contains_key(".") {
        out.push(path.clone());
    }
    let here = live.pointer(&path);
    for (k, child) in m {
        let next = if let Some(name) = k.strip_prefix("f:") {
            Some(format!("{path}/{}", escape(name)))
        } else if let Some(key) = k.strip_prefix("k:") {
            let wanted: Value = serde_json::from_str(key).unwrap_or(Value::Null);
            here.and_then(Value::as_array).and_then(|a| {
                a.iter()
                    .position(|item| {
                        wanted
                            .as_object()
                            .is_some_and(|w| w.iter().all(|(wk, wv)| item.get(wk) == Some(wv)))
                    })
                    .map(|i| format!("{path}/{i}"))
            })
        } else if let Some(v) = k.strip_prefix("v:") {
            let wanted: Value = serde_json::from_str(v).unwrap_or(Value::Null);
            here.and_then(Value::as_array)
                .and_then(|a| a.iter().position(|item| item == &wanted))
                .map(|i| format!("{path}/{i}"))
        } else {
            k.strip_prefix("i:").map(|i| format!("{path}/{i}"))
        };
        if let Some(next) = next {
            walk_fields(child, live, next, out, depth + 1);
        }
    }
}

/// The manager that last wrote `path` (other than Airlift and the cluster itself, when another
/// one owns it): the owner of the path, of a field above it (an atomic list), or below it.
pub fn manager_of(owners: &[Ownership], path: &str) -> Option<String> {
    let covers = |f: &String| {
        f == path || path.starts_with(&format!("{f}/")) || f.starts_with(&format!("{path}/"))
    };
    let candidates: Vec<&Ownership> = owners
        .iter()
        .filter(|o| o.subresource.as_deref() != Some("status"))
        .filter(|o| o.fields.iter().any(covers))
        .collect();
    candidates
        .iter()
        .rev()
        .find(|o| o.manager != FIELD_MANAGER && !SYSTEM_MANAGERS.contains(&o.manager.as_str()))
        .or_else(|| candidates.last())
        .map(|o| describe_manager(o))
}

fn describe_manager(o: &Ownership) -> String {
    match &o.subresource {
        Some(s) => format!("{} ({}, {s})", o.manager, o.operation),
        None => format!("{} ({})", o.manager, o.operation),
    }
}

/// Fields another manager (not Airlift, not the cluster) owns that the release never applied:
/// (pointer, manager).
pub fn added_by_others(
    applied: &Value,
    live: &Value,
    owners: &[Ownership],
) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for o in owners {
        if o.manager == FIELD_MANAGER
            || SYSTEM_MANAGERS.contains(&o.manager.as_str())
            || o.subresource.as_deref() == Some("status")
        {
            continue;
        }
        for f in &o.fields {
            if f.is_empty() || f.starts_with("/status") || f.starts_with("/metadata/managedFields")
            {
                continue;
            }
            if !present(applied, live, f) {
                out.push((f.clone(), describe_manager(o)));
            }
        }
    }
    out.sort();
    out.dedup();
    out
}

/// True when `applied` has the field at `path` (a pointer into `live`). List elements are
/// matched by their `name` (containers, env, ports, volumes), else by position.
fn present(applied: &Value, live: &Value, path: &str) -> bool {
    let mut cur = applied;
    let mut at = live;
    for seg in path.split('/').skip(1) {
        let seg = seg.replace("~1", "/").replace("~0", "~");
        let (next_cur, next_at) = match (cur, at) {
            (Value::Object(m), _) => match (m.get(&seg), at.get(&seg)) {
                (Some(v), Some(l)) => (v, l),
                (Some(v), None) => (v, &Value::Null),
                (None, _) => return false,
            },
            (Value::Array(a), Value::Array(l)) => {
                let Ok(i) = seg.parse::<usize>() else {
                    return false;
                };
                let Some(item) = l.get(i) else {
                    return false;
                };
                let found = match item.get("name") {
                    Some(name) => a.iter().find(|x| x.get("name") == Some(name)),
                    None => a.get(i),
                };
                match found {
                    Some(v) => (v, item),
                    None => return false,
                }
            }
            _ => return true,
        };
        cur = next_cur;
        at = next_at;
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn live() -> Value {
        json!({"metadata": {"managedFields": [
            {"manager": "airlift", "operation": "Apply", "fieldsV1": {"f:spec": {"f:replicas": {},
                "f:template": {"f:spec": {"f:containers": {"k:{\"name\":\"web\"}": {".": {}, "f:image": {}}}}}}}},
            {"manager": "kubectl", "operation": "Update", "subresource": "scale",
                "fieldsV1": {"f:spec": {"f:replicas": {}}}},
            {"manager": "kubectl-edit", "operation": "Update",
                "fieldsV1": {"f:spec": {"f:template": {"f:spec": {"f:containers": {"k:{\"name\":\"web\"}": {"f:env": {}}}}}}}},
            {"manager": "kube-controller-manager", "operation": "Update", "subresource": "status",
                "fieldsV1": {"f:status": {"f:replicas": {}}}}]},
            "spec": {"replicas": 5, "template": {"spec": {"containers": [
                {"name": "sidecar"}, {"name": "web", "image": "x", "env": [{"name": "A", "value": "1"}]}]}}}})
    }

    #[test]
    fn the_manager_of_a_changed_field_is_named_with_its_subresource() {
        let owners = ownerships(&live());
        assert_eq!(
            manager_of(&owners, "/spec/replicas").as_deref(),
            Some("kubectl (Update, scale)")
        );
        assert_eq!(
            manager_of(&owners, "/spec/template/spec/containers/1/env/0/value").as_deref(),
            Some("kubectl-edit (Update)")
        );
    }

    #[test]
    fn fields_added_by_another_manager_are_found() {
        let applied = json!({"spec": {"replicas": 2, "template": {"spec": {"containers": [{"name": "web", "image": "x"}]}}}});
        let owners = ownerships(&live());
        let added = added_by_others(&applied, &live(), &owners);
        assert_eq!(
            added,
            vec![(
                "/spec/template/spec/containers/1/env".to_string(),
                "kubectl-edit (Update)".to_string()
            )]
        );
    }
}
