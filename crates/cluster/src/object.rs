//! The objects Airlift applies: a rendered Kubernetes object with the component it belongs to,
//! its identity ([`ObjectRef`]), the apply order and the labels every object carries.

use std::cmp::Reverse;
use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The label naming the tool that manages an object.
pub const LABEL_MANAGED_BY: &str = "app.kubernetes.io/managed-by";
/// The value of [`LABEL_MANAGED_BY`] on everything Airlift applies.
pub const MANAGED_BY: &str = "airlift";
/// The label naming the release an object belongs to.
pub const LABEL_RELEASE: &str = "airlift.dev/release";
/// The label naming the component an object belongs to.
pub const LABEL_COMPONENT: &str = "airlift.dev/component";
/// The server-side apply field manager Airlift always uses.
pub const FIELD_MANAGER: &str = "airlift";

/// Errors from reading a rendered object.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ObjectError {
    /// The object is not a JSON object or lacks `apiVersion`, `kind` or `metadata.name`.
    #[error("object #{index} of component `{component}` has no {field}: every manifest needs `apiVersion`, `kind` and `metadata.name`")]
    MissingField {
        /// The component that rendered it.
        component: String,
        /// Its position in the component's rendered output.
        index: usize,
        /// The missing field.
        field: &'static str,
    },
}

/// The identity of a Kubernetes object: group, version, kind, namespace and name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectRef {
    /// The API group, empty for the core group.
    pub group: String,
    /// The API version within the group, e.g. `v1`.
    pub version: String,
    /// The kind, e.g. `Deployment`.
    pub kind: String,
    /// The namespace; `None` for cluster-scoped objects (or namespaced ones relying on the
    /// release's default namespace, which [`ManagedObject::new`] fills in).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// The object's name.
    pub name: String,
}

impl ObjectRef {
    /// `group/version` or just `version` for the core group.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// Whether two refs name the same object regardless of API version (an object served at
    /// `v1beta1` and `v1` is one object).
    pub fn same_object(&self, other: &ObjectRef) -> bool {
        self.group == other.group
            && self.kind == other.kind
            && self.namespace == other.namespace
            && self.name == other.name
    }
}

impl fmt::Display for ObjectRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = if self.group.is_empty() {
            self.kind.clone()
        } else {
            format!("{}.{}", self.kind, self.group)
        };
        match &self.namespace {
            Some(ns) => write!(f, "{kind} {ns}/{}", self.name),
            None => write!(f, "{kind} {}", self.name),
        }
    }
}

/// A rendered object ready to apply, with the component that produced it.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ManagedObject {
    /// The component that rendered the object.
    pub component: String,
    /// The component's install order (lower first).
    pub order: i32,
    /// The object itself, as JSON.
    pub object: Value,
}

impl fmt::Debug for ManagedObject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print the object: a Secret's data would leak into logs.
        let id = self.id();
        f.debug_struct("ManagedObject")
            .field("component", &self.component)
            .field("order", &self.order)
            .field("object", &id.map(|r| r.to_string()).unwrap_or_default())
            .finish()
    }
}

impl ManagedObject {
    /// Wraps a rendered object after checking it has `apiVersion`, `kind` and `metadata.name`.
    /// `index` is its position in the component's output, for error messages.
    pub fn new(
        component: &str,
        order: i32,
        index: usize,
        object: Value,
    ) -> Result<Self, ObjectError> {
        let missing = |field| ObjectError::MissingField {
            component: component.to_string(),
            index,
            field,
        };
        let get = |ptr: &str| {
            object
                .pointer(ptr)
                .and_then(Value::as_str)
                .map(str::is_empty)
        };
        if get("/apiVersion") != Some(false) {
            return Err(missing("`apiVersion`"));
        }
        if get("/kind") != Some(false) {
            return Err(missing("`kind`"));
        }
        if get("/metadata/name") != Some(false) {
            return Err(missing("`metadata.name`"));
        }
        Ok(Self {
            component: component.to_string(),
            order,
            object,
        })
    }

    /// The object's identity; `None` only when the JSON lacks the identity fields.
    pub fn id(&self) -> Option<ObjectRef> {
        object_ref(&self.object)
    }

    /// The object's kind (empty when absent).
    pub fn kind(&self) -> &str {
        self.object
            .get("kind")
            .and_then(Value::as_str)
            .unwrap_or_default()
    }

    /// Sets the Airlift labels on the object: managed-by, release and component.
    pub fn set_labels(&mut self, release: &str) {
        let component = self.component.clone();
        if let Some(obj) = self.object.as_object_mut() {
            let meta = obj
                .entry("metadata")
                .or_insert_with(|| Value::Object(Default::default()));
            if let Some(meta) = meta.as_object_mut() {
                let labels = meta
                    .entry("labels")
                    .or_insert_with(|| Value::Object(Default::default()));
                if !labels.is_object() {
                    *labels = Value::Object(Default::default());
                }
                if let Some(labels) = labels.as_object_mut() {
                    labels.insert(LABEL_MANAGED_BY.into(), MANAGED_BY.into());
                    labels.insert(LABEL_RELEASE.into(), release.into());
                    labels.insert(LABEL_COMPONENT.into(), component.into());
                }
            }
        }
    }
}

/// Reads the identity of a JSON object.
pub fn object_ref(object: &Value) -> Option<ObjectRef> {
    let api_version = object.get("apiVersion")?.as_str()?;
    let kind = object.get("kind")?.as_str()?;
    let meta = object.get("metadata")?;
    let name = meta.get("name")?.as_str()?;
    let namespace = meta
        .get("namespace")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty());
    let (group, version) = match api_version.split_once('/') {
        Some((g, v)) => (g.to_string(), v.to_string()),
        None => (String::new(), api_version.to_string()),
    };
    Some(ObjectRef {
        group,
        version,
        kind: kind.to_string(),
        namespace: namespace.map(str::to_string),
        name: name.to_string(),
    })
}

/// The apply phase of a kind: lower phases are applied first, and deleted last.
///
/// - 0: Namespaces and CRDs;
/// - 1: ServiceAccounts and RBAC;
/// - 2: ConfigMaps, Secrets and the other prerequisites workloads mount or are admitted against
///   (PVCs, storage and priority classes, quotas, limit ranges);
/// - 3: Services;
/// - 4: workloads;
/// - 5: everything else (custom resources, Ingresses, webhooks, ...).
pub fn phase(group: &str, kind: &str) -> u8 {
    match (group, kind) {
        ("", "Namespace") | ("apiextensions.k8s.io", "CustomResourceDefinition") => 0,
        ("", "ServiceAccount")
        | ("rbac.authorization.k8s.io", "Role")
        | ("rbac.authorization.k8s.io", "ClusterRole")
        | ("rbac.authorization.k8s.io", "RoleBinding")
        | ("rbac.authorization.k8s.io", "ClusterRoleBinding") => 1,
        ("", "ConfigMap")
        | ("", "Secret")
        | ("", "PersistentVolumeClaim")
        | ("", "PersistentVolume")
        | ("", "ResourceQuota")
        | ("", "LimitRange")
        | ("storage.k8s.io", "StorageClass")
        | ("scheduling.k8s.io", "PriorityClass") => 2,
        ("", "Service") => 3,
        ("apps", "Deployment")
        | ("apps", "StatefulSet")
        | ("apps", "DaemonSet")
        | ("apps", "ReplicaSet")
        | ("batch", "Job")
        | ("batch", "CronJob")
        | ("", "Pod")
        | ("", "ReplicationController") => 4,
        _ => 5,
    }
}

/// The apply order of an object: its phase, then its component's order.
pub(crate) fn sort_key(o: &ManagedObject) -> (u8, i32) {
    let group = o
        .object
        .get("apiVersion")
        .and_then(Value::as_str)
        .and_then(|a| a.split_once('/').map(|(g, _)| g))
        .unwrap_or_default();
    (phase(group, o.kind()), o.order)
}

/// Sorts objects into apply order: by phase, then component order, keeping the rendered order
/// otherwise (the sort is stable).
pub fn sort_for_apply(objects: &mut [ManagedObject]) {
    objects.sort_by_key(sort_key);
}

/// Sorts refs into delete order: the reverse of the apply order.
pub fn sort_for_delete(refs: &mut [ObjectRef]) {
    refs.sort_by_key(|r| Reverse(phase(&r.group, &r.kind)));
}

/// Whether the kind is one readiness waits for.
pub fn is_workload(group: &str, kind: &str) -> bool {
    matches!(
        (group, kind),
        ("apps", "Deployment") | ("apps", "StatefulSet") | ("apps", "DaemonSet") | ("batch", "Job")
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(component: &str, order: i32, api: &str, kind: &str, name: &str) -> ManagedObject {
        ManagedObject::new(
            component,
            order,
            0,
            json!({"apiVersion": api, "kind": kind, "metadata": {"name": name}}),
        )
        .unwrap()
    }

    #[test]
    fn apply_order_follows_phases_then_component_order() {
        let mut objs = vec![
            obj("web", 2, "v1", "Service", "web"),
            obj("web", 2, "apps/v1", "Deployment", "web"),
            obj("db", 1, "example.com/v1", "Widget", "w"),
            obj("db", 1, "apps/v1", "StatefulSet", "db"),
            obj("web", 2, "v1", "Secret", "s"),
            obj("web", 2, "rbac.authorization.k8s.io/v1", "Role", "r"),
            obj("db", 1, "v1", "ConfigMap", "c"),
            obj(
                "crds",
                0,
                "apiextensions.k8s.io/v1",
                "CustomResourceDefinition",
                "widgets.example.com",
            ),
            obj("web", 2, "v1", "Namespace", "app"),
        ];
        sort_for_apply(&mut objs);
        let order: Vec<String> = objs.iter().map(|o| o.kind().to_string()).collect();
        assert_eq!(
            order,
            [
                "CustomResourceDefinition",
                "Namespace",
                "Role",
                "ConfigMap",
                "Secret",
                "Service",
                "StatefulSet",
                "Deployment",
                "Widget"
            ]
        );
    }

    #[test]
    fn delete_order_is_reverse_phase() {
        let mut refs: Vec<ObjectRef> = [
            ("", "Namespace"),
            ("apps", "Deployment"),
            ("", "ConfigMap"),
            ("example.com", "Widget"),
        ]
        .iter()
        .map(|(g, k)| ObjectRef {
            group: g.to_string(),
            version: "v1".into(),
            kind: k.to_string(),
            namespace: None,
            name: "x".into(),
        })
        .collect();
        sort_for_delete(&mut refs);
        let kinds: Vec<&str> = refs.iter().map(|r| r.kind.as_str()).collect();
        assert_eq!(kinds, ["Widget", "Deployment", "ConfigMap", "Namespace"]);
    }

    #[test]
    fn labels_are_set_and_identity_is_read() {
        let mut o = obj("web", 1, "apps/v1", "Deployment", "web");
        o.object["metadata"]["namespace"] = json!("app");
        o.set_labels("acme");
        assert_eq!(o.object["metadata"]["labels"][LABEL_RELEASE], "acme");
        assert_eq!(o.object["metadata"]["labels"][LABEL_COMPONENT], "web");
        assert_eq!(o.object["metadata"]["labels"][LABEL_MANAGED_BY], "airlift");
        assert_eq!(o.id().unwrap().to_string(), "Deployment.apps app/web");
    }

    #[test]
    fn missing_identity_is_named() {
        let err = ManagedObject::new("web", 0, 3, json!({"apiVersion": "v1", "kind": "Service"}))
            .unwrap_err();
        assert!(err.to_string().contains("metadata.name"), "{err}");
        assert!(err.to_string().contains("#3"), "{err}");
    }

    #[test]
    fn debug_never_prints_secret_data() {
        let o = ManagedObject::new(
            "web",
            0,
            0,
            json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"},
                   "stringData": {"password": "hunter2"}}),
        )
        .unwrap();
        assert!(!format!("{o:?}").contains("hunter2"));
    }
}
