//! Which release owns an object: every object Airlift applies carries the annotation
//! `airlift.dev/owned-by: <namespace>/<release>` and the labels `airlift.dev/release` and
//! `airlift.dev/release-namespace`.
//!
//! Before any change, install and upgrade look up every object they would apply
//! ([`check_ownership`]): one that exists and belongs to another release, or exists without
//! Airlift's ownership, is a conflict, and nothing is changed unless the operator adopts it.
//! Prune, rollback and uninstall delete only objects whose *live* ownership names the release
//! ([`owned_by`]), so one release can never delete another's objects.

use std::fmt;

use serde_json::Value;

use crate::apply::{get_live, ApplyError, Fit};
use crate::object::{ManagedObject, ObjectRef, LABEL_MANAGED_BY, LABEL_RELEASE, MANAGED_BY};
use crate::resolve::Resolver;

/// The annotation naming the owning release as `<namespace>/<release>`.
pub const ANNOTATION_OWNER: &str = "airlift.dev/owned-by";
/// The label holding the owning release's namespace.
pub const LABEL_RELEASE_NAMESPACE: &str = "airlift.dev/release-namespace";

/// A release's identity: its namespace and name.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Owner {
    /// The release namespace.
    pub namespace: String,
    /// The release name.
    pub release: String,
}

impl Owner {
    /// The owner `release` in `namespace`.
    pub fn new(namespace: &str, release: &str) -> Self {
        Self {
            namespace: namespace.to_string(),
            release: release.to_string(),
        }
    }

    fn annotation(&self) -> String {
        format!("{}/{}", self.namespace, self.release)
    }
}

impl fmt::Display for Owner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "release `{}` in namespace `{}`",
            self.release, self.namespace
        )
    }
}

/// Who a live object belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LiveOwner {
    /// An Airlift release, by its annotation.
    Release(Owner),
    /// Applied by an Airlift version that did not annotate ownership: only the release label.
    Legacy(String),
    /// Not managed by Airlift.
    Foreign,
}

/// Reads the ownership of a live object.
pub fn live_owner(live: &Value) -> LiveOwner {
    let meta = live.get("metadata");
    let annotation = meta
        .and_then(|m| m.pointer(&format!("/annotations/{}", escape(ANNOTATION_OWNER))))
        .and_then(Value::as_str);
    if let Some((namespace, release)) = annotation.and_then(|a| a.split_once('/')) {
        return LiveOwner::Release(Owner::new(namespace, release));
    }
    let labels = meta.and_then(|m| m.get("labels"));
    let label = |k: &str| labels.and_then(|l| l.get(k)).and_then(Value::as_str);
    match (label(LABEL_MANAGED_BY), label(LABEL_RELEASE)) {
        (Some(MANAGED_BY), Some(release)) => LiveOwner::Legacy(release.to_string()),
        _ => LiveOwner::Foreign,
    }
}

fn escape(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

/// Whether `live` belongs to `owner`. An object without the annotation counts as the release's
/// only when its release label names it and the release's own records list it (`known`).
pub fn owned_by(live: &Value, owner: &Owner, id: &ObjectRef, known: &[ObjectRef]) -> bool {
    match live_owner(live) {
        LiveOwner::Release(o) => &o == owner,
        LiveOwner::Legacy(release) => {
            release == owner.release && known.iter().any(|k| k.same_object(id))
        }
        LiveOwner::Foreign => false,
    }
}

/// Adds the ownership annotation and labels to each object.
pub fn stamp(objects: &mut [ManagedObject], owner: &Owner) {
    for o in objects {
        stamp_value(&mut o.object, owner);
    }
}

/// Adds the ownership annotation and labels to one JSON object.
pub fn stamp_value(object: &mut Value, owner: &Owner) {
    let Some(obj) = object.as_object_mut() else {
        return;
    };
    let meta = obj
        .entry("metadata")
        .or_insert_with(|| Value::Object(Default::default()));
    let Some(meta) = meta.as_object_mut() else {
        return;
    };
    for (field, key, value) in [
        ("annotations", ANNOTATION_OWNER, owner.annotation()),
        ("labels", LABEL_RELEASE_NAMESPACE, owner.namespace.clone()),
        ("labels", LABEL_RELEASE, owner.release.clone()),
        ("labels", LABEL_MANAGED_BY, MANAGED_BY.to_string()),
    ] {
        let map = meta
            .entry(field)
            .or_insert_with(|| Value::Object(Default::default()));
        if !map.is_object() {
            *map = Value::Object(Default::default());
        }
        if let Some(map) = map.as_object_mut() {
            map.insert(key.to_string(), Value::String(value));
        }
    }
}

/// An object that exists and is not the release's.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Conflict {
    /// The object.
    pub object: String,
    /// Its owner: another release, or `None` when Airlift does not manage it.
    pub owner: Option<Owner>,
}

impl fmt::Display for Conflict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.owner {
            Some(o) => write!(f, "{} belongs to {o}", self.object),
            None => write!(f, "{} exists and is not managed by Airlift", self.object),
        }
    }
}

/// What the ownership check found.
#[derive(Debug, Clone, Default, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OwnershipReport {
    /// Objects that exist and are someone else's (empty when adopting).
    pub conflicts: Vec<Conflict>,
    /// Objects taken over because the operator asked to adopt them.
    pub adopted: Vec<Conflict>,
    /// Objects that do not exist yet.
    pub absent: Vec<ObjectRef>,
}

/// Sorts each object into ours, absent, or someone else's, from its live state (`None`:
/// absent), in the same order as `objects`. With `adopt`, someone else's become adopted.
pub fn sort_by_owner<'v>(
    objects: &[ManagedObject],
    lives: impl IntoIterator<Item = Option<&'v Value>>,
    owner: &Owner,
    known: &[ObjectRef],
    adopt: bool,
) -> OwnershipReport {
    let mut report = OwnershipReport::default();
    for (o, live) in objects.iter().zip(lives) {
        let Some(id) = o.id() else { continue };
        let Some(live) = live else {
            report.absent.push(id);
            continue;
        };
        if owned_by(live, owner, &id, known) {
            continue;
        }
        let conflict = Conflict {
            object: id.to_string(),
            owner: match live_owner(live) {
                LiveOwner::Release(o) => Some(o),
                LiveOwner::Legacy(release) => Some(Owner {
                    namespace: id.namespace.clone().unwrap_or_default(),
                    release,
                }),
                LiveOwner::Foreign => None,
            },
        };
        if adopt {
            report.adopted.push(conflict);
        } else {
            report.conflicts.push(conflict);
        }
    }
    report
}

/// The live object a [`Fit`] read, if the object exists.
pub fn fit_live(fit: &Fit) -> Option<&Value> {
    match fit {
        Fit::InPlace { live, .. } | Fit::Replace { live, .. } => Some(live),
        Fit::Create | Fit::Refuse { .. } => None,
    }
}

/// Looks up every object of `objects` (prepared: namespaces filled in) and sorts it by owner
/// ([`sort_by_owner`]). Reads only.
pub async fn check_ownership(
    resolver: &Resolver,
    objects: &[ManagedObject],
    owner: &Owner,
    known: &[ObjectRef],
    adopt: bool,
) -> Result<OwnershipReport, ApplyError> {
    let mut lives = Vec::with_capacity(objects.len());
    for o in objects {
        lives.push(match o.id() {
            Some(id) => get_live(resolver, &id).await?,
            None => None,
        });
    }
    Ok(sort_by_owner(
        objects,
        lives.iter().map(Option::as_ref),
        owner,
        known,
        adopt,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn id(name: &str) -> ObjectRef {
        ObjectRef {
            group: String::new(),
            version: "v1".into(),
            kind: "ConfigMap".into(),
            namespace: Some("ns".into()),
            name: name.into(),
        }
    }

    #[test]
    fn stamped_objects_are_owned_by_their_release_only() {
        let mut v = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a"}});
        let me = Owner::new("ns", "one");
        stamp_value(&mut v, &me);
        assert!(owned_by(&v, &me, &id("a"), &[]));
        assert!(!owned_by(&v, &Owner::new("ns", "two"), &id("a"), &[]));
        assert!(!owned_by(&v, &Owner::new("other", "one"), &id("a"), &[]));
        assert_eq!(v["metadata"]["labels"][LABEL_RELEASE_NAMESPACE], "ns");
    }

    #[test]
    fn legacy_objects_count_only_when_the_records_list_them() {
        let v = json!({"metadata": {"name": "a", "labels": {
            LABEL_MANAGED_BY: MANAGED_BY, LABEL_RELEASE: "one"}}});
        let me = Owner::new("ns", "one");
        assert!(owned_by(&v, &me, &id("a"), &[id("a")]));
        assert!(!owned_by(&v, &me, &id("a"), &[]));
        assert!(!owned_by(
            &v,
            &Owner::new("ns", "two"),
            &id("a"),
            &[id("a")]
        ));
    }

    #[test]
    fn foreign_objects_are_nobodys() {
        let v = json!({"metadata": {"name": "a", "labels": {"app": "x"}}});
        assert_eq!(live_owner(&v), LiveOwner::Foreign);
        assert!(!owned_by(
            &v,
            &Owner::new("ns", "one"),
            &id("a"),
            &[id("a")]
        ));
    }
}
