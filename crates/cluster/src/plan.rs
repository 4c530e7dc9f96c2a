//! What an install or upgrade would do, without changing anything: objects to create, change
//! (by server-side dry-run apply compared with the live object), replace (the dry run says they
//! cannot change in place), refuse (PVCs and CRDs that cannot change in place) and delete, and
//! the images that are new or changed.

use std::collections::BTreeMap;
use std::fmt;

use serde::Serialize;
use serde_json::Value;

use crate::apply::{fit, ApplyError, Fit, Refusal, Replaced};
use crate::object::{ManagedObject, ObjectRef};
use crate::resolve::Resolver;

/// An object that would change, and which fields (paths only, never values).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Change {
    /// The object.
    pub object: ObjectRef,
    /// The changed fields, e.g. `spec.template.spec.containers[0].image`.
    pub fields: Vec<String>,
}

/// A container image that is new or changes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ImageChange {
    /// The workload.
    pub workload: ObjectRef,
    /// The container.
    pub container: String,
    /// The image running now; `None` for a new container.
    pub from: Option<String>,
    /// The image after the change.
    pub to: String,
}

/// The plan.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Plan {
    /// Objects that do not exist yet.
    pub create: Vec<ObjectRef>,
    /// Objects that exist and would change.
    pub change: Vec<Change>,
    /// Objects that cannot change in place: deleted and created again, with the server's reasons.
    pub replace: Vec<Replaced>,
    /// Objects that cannot change in place and are never replaced (PVCs, CRDs): applying
    /// refuses before changing anything.
    pub refuse: Vec<Refusal>,
    /// Objects in the current release that the new set no longer has.
    pub delete: Vec<ObjectRef>,
    /// Objects that exist and would not change.
    pub unchanged: Vec<ObjectRef>,
    /// New and changed container images.
    pub images: Vec<ImageChange>,
    /// Configuration keys added, removed and changed since the deployed release (keys only).
    pub config: ConfigDiff,
}

/// How the configuration differs from the deployed release's: keys only, never values.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ConfigDiff {
    /// Keys the new configuration has and the deployed one lacks.
    pub added: Vec<String>,
    /// Keys the deployed configuration has and the new one lacks.
    pub removed: Vec<String>,
    /// Keys whose value (or, for secrets, fingerprint) changes.
    pub changed: Vec<String>,
    /// Keys whose SaaS default the vendor changed between the two bundles.
    pub defaults_changed: Vec<String>,
}

impl ConfigDiff {
    /// Compares two recorded configurations (secrets already fingerprinted).
    pub fn between(old: &BTreeMap<String, Value>, new: &BTreeMap<String, Value>) -> Self {
        Self {
            added: new
                .keys()
                .filter(|k| !old.contains_key(*k))
                .cloned()
                .collect(),
            removed: old
                .keys()
                .filter(|k| !new.contains_key(*k))
                .cloned()
                .collect(),
            changed: new
                .iter()
                .filter(|(k, v)| old.get(*k).is_some_and(|o| o != *v))
                .map(|(k, _)| k.clone())
                .collect(),
            defaults_changed: Vec::new(),
        }
    }

    /// Adds the keys whose SaaS default differs between `old` and `new` defaults (keys present
    /// in both; added and removed keys are listed already).
    pub fn with_defaults(
        mut self,
        old: &BTreeMap<String, Value>,
        new: &BTreeMap<String, Value>,
    ) -> Self {
        self.defaults_changed = new
            .iter()
            .filter(|(k, v)| old.get(*k).is_some_and(|o| o != *v))
            .map(|(k, _)| k.clone())
            .collect();
        self
    }
}

impl Plan {
    /// Whether applying would change nothing.
    pub fn is_empty(&self) -> bool {
        self.create.is_empty()
            && self.change.is_empty()
            && self.replace.is_empty()
            && self.refuse.is_empty()
            && self.delete.is_empty()
    }
}

impl fmt::Display for Plan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for o in &self.create {
            writeln!(f, "+ create {o}")?;
        }
        for c in &self.change {
            writeln!(f, "~ change {} ({})", c.object, c.fields.join(", "))?;
        }
        for r in &self.replace {
            writeln!(f, "± replace {} ({})", r.object, r.causes.join("; "))?;
        }
        for r in &self.refuse {
            writeln!(
                f,
                "! refuse {} ({}): it cannot change in place and is never deleted to replace it",
                r.object,
                r.causes.join("; ")
            )?;
        }
        for o in &self.delete {
            writeln!(f, "- delete {o}")?;
        }
        for i in &self.images {
            match &i.from {
                Some(from) => writeln!(
                    f,
                    "  image {} container {}: {from} -> {}",
                    i.workload, i.container, i.to
                )?,
                None => writeln!(
                    f,
                    "  image {} container {}: new {}",
                    i.workload, i.container, i.to
                )?,
            }
        }
        for (label, keys) in [
            ("added", &self.config.added),
            ("removed", &self.config.removed),
            ("changed", &self.config.changed),
            ("whose SaaS default changed", &self.config.defaults_changed),
        ] {
            if !keys.is_empty() {
                writeln!(f, "  config keys {label}: {}", keys.join(", "))?;
            }
        }
        write!(
            f,
            "{} to create, {} to change, {} to replace, {} to delete, {} unchanged",
            self.create.len(),
            self.change.len(),
            self.replace.len(),
            self.delete.len(),
            self.unchanged.len()
        )?;
        if !self.refuse.is_empty() {
            write!(f, "; {} refused", self.refuse.len())?;
        }
        Ok(())
    }
}

/// Fields the server owns or that change on every write: never a difference.
fn normalize(v: &Value) -> Value {
    let mut v = v.clone();
    if let Some(obj) = v.as_object_mut() {
        obj.remove("status");
        if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
            for k in [
                "managedFields",
                "resourceVersion",
                "generation",
                "uid",
                "creationTimestamp",
                "selfLink",
                "deletionTimestamp",
                "deletionGracePeriodSeconds",
            ] {
                meta.remove(k);
            }
            if let Some(ann) = meta.get_mut("annotations").and_then(Value::as_object_mut) {
                ann.remove("deployment.kubernetes.io/revision");
                ann.remove("kubectl.kubernetes.io/last-applied-configuration");
                if ann.is_empty() {
                    meta.remove("annotations");
                }
            }
        }
    }
    v
}

/// The paths where `a` and `b` differ, at most `limit` of them.
fn diff_paths(a: &Value, b: &Value, path: &str, out: &mut Vec<String>, limit: usize) {
    if out.len() >= limit || a == b {
        return;
    }
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let mut keys: Vec<&String> = x.keys().chain(y.keys()).collect();
            keys.sort();
            keys.dedup();
            for k in keys {
                let p = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                diff_paths(
                    x.get(k).unwrap_or(&Value::Null),
                    y.get(k).unwrap_or(&Value::Null),
                    &p,
                    out,
                    limit,
                );
            }
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => {
            for (i, (p, q)) in x.iter().zip(y).enumerate() {
                diff_paths(p, q, &format!("{path}[{i}]"), out, limit);
            }
        }
        _ => out.push(if path.is_empty() {
            "(object)".into()
        } else {
            path.to_string()
        }),
    }
}

/// The pod spec of a workload, if it has one.
fn pod_spec(v: &Value) -> Option<&Value> {
    match v.get("kind").and_then(Value::as_str)? {
        "Pod" => v.get("spec"),
        "CronJob" => v.pointer("/spec/jobTemplate/spec/template/spec"),
        _ => v.pointer("/spec/template/spec"),
    }
}

/// Container name to image, for init and regular containers.
pub fn container_images(v: &Value) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    if let Some(spec) = pod_spec(v) {
        for list in ["initContainers", "containers"] {
            for c in spec
                .get(list)
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                if let (Some(name), Some(image)) = (
                    c.get("name").and_then(Value::as_str),
                    c.get("image").and_then(Value::as_str),
                ) {
                    out.insert(name.to_string(), image.to_string());
                }
            }
        }
    }
    out
}

/// Plans applying `prepared` (see [`crate::apply::prepare`]) over a release whose objects are
/// `current`. Nothing is changed: changes are computed by server-side dry-run.
pub async fn plan(
    resolver: &Resolver,
    prepared: &[ManagedObject],
    current: &[ObjectRef],
) -> Result<Plan, ApplyError> {
    let mut plan = Plan::default();
    for o in prepared {
        let Some(id) = o.id() else { continue };
        let new_images = container_images(&o.object);
        let live = match fit(resolver, &o.object).await? {
            Fit::Create => {
                plan.create.push(id.clone());
                for (container, to) in new_images {
                    plan.images.push(ImageChange {
                        workload: id.clone(),
                        container,
                        from: None,
                        to,
                    });
                }
                continue;
            }
            Fit::Refuse { causes } => {
                plan.refuse.push(Refusal {
                    object: id.clone(),
                    causes,
                });
                continue;
            }
            Fit::Replace { live, causes } => {
                plan.replace.push(Replaced {
                    object: id.clone(),
                    causes,
                });
                live
            }
            Fit::InPlace { live, dry } => {
                let mut fields = Vec::new();
                diff_paths(&normalize(&live), &normalize(&dry), "", &mut fields, 20);
                if fields.is_empty() {
                    plan.unchanged.push(id.clone());
                } else {
                    plan.change.push(Change {
                        object: id.clone(),
                        fields,
                    });
                }
                live
            }
        };
        let old_images = container_images(&live);
        for (container, to) in new_images {
            let from = old_images.get(&container).cloned();
            if from.as_ref() != Some(&to) {
                plan.images.push(ImageChange {
                    workload: id.clone(),
                    container,
                    from,
                    to,
                });
            }
        }
    }
    for old in current {
        let kept = prepared
            .iter()
            .filter_map(ManagedObject::id)
            .any(|n| n.same_object(old));
        if !kept {
            plan.delete.push(old.clone());
        }
    }
    Ok(plan)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn server_fields_are_not_differences() {
        let live = json!({"metadata": {"name": "a", "resourceVersion": "5", "uid": "x",
            "managedFields": [], "labels": {"a": "b"}}, "spec": {"x": 1}, "status": {"r": 1}});
        let dry = json!({"metadata": {"name": "a", "resourceVersion": "6",
            "labels": {"a": "b"}}, "spec": {"x": 1}});
        let mut out = Vec::new();
        diff_paths(&normalize(&live), &normalize(&dry), "", &mut out, 10);
        assert!(out.is_empty(), "{out:?}");
        let dry = json!({"metadata": {"name": "a"}, "spec": {"x": 2}});
        diff_paths(&normalize(&live), &normalize(&dry), "", &mut out, 10);
        assert_eq!(out, ["metadata.labels", "spec.x"]);
    }

    #[test]
    fn config_diff_names_keys_only() {
        let old = [
            ("a".to_string(), json!(1)),
            ("b".to_string(), json!("sha256:1")),
        ]
        .into();
        let new = [
            ("b".to_string(), json!("sha256:2")),
            ("c".to_string(), json!(true)),
        ]
        .into();
        let d = ConfigDiff::between(&old, &new);
        assert_eq!(
            (d.added, d.removed, d.changed),
            (
                vec!["c".to_string()],
                vec!["a".to_string()],
                vec!["b".to_string()]
            )
        );
    }

    #[test]
    fn changed_saas_defaults_are_named() {
        let old = [
            ("web.replicas".to_string(), json!(2)),
            ("web.title".to_string(), json!("A")),
            ("gone".to_string(), json!(1)),
        ]
        .into();
        let new = [
            ("web.replicas".to_string(), json!(3)),
            ("web.title".to_string(), json!("A")),
            ("new".to_string(), json!(1)),
        ]
        .into();
        let d = ConfigDiff::default().with_defaults(&old, &new);
        assert_eq!(d.defaults_changed, vec!["web.replicas".to_string()]);
    }

    #[test]
    fn images_of_every_workload_kind() {
        let d = json!({"kind": "Deployment", "spec": {"template": {"spec": {
            "initContainers": [{"name": "init", "image": "r/i@sha256:1"}],
            "containers": [{"name": "web", "image": "r/w@sha256:2"}]}}}});
        assert_eq!(container_images(&d).len(), 2);
        let c = json!({"kind": "CronJob", "spec": {"jobTemplate": {"spec": {"template": {
            "spec": {"containers": [{"name": "c", "image": "r/c@sha256:3"}]}}}}}});
        assert_eq!(container_images(&c)["c"], "r/c@sha256:3");
    }
}
