//! The table of served resource types (built-in and CRD-defined) and the discovery documents.

use serde_json::{json, Value};

/// One served resource type, e.g. `apps/v1 deployments`.
#[derive(Debug, Clone)]
pub(crate) struct ResourceType {
    /// API group, empty for the core group.
    pub group: String,
    /// API version within the group.
    pub version: String,
    /// Plural resource name (the URL segment).
    pub plural: String,
    /// Kind.
    pub kind: String,
    /// Whether objects live in a namespace.
    pub namespaced: bool,
    /// kubectl short names.
    pub short_names: Vec<String>,
    /// Categories (`all`).
    pub categories: Vec<String>,
    /// Whether a `/status` subresource is served (status is then ignored on the main resource).
    pub status: bool,
    /// Whether `metadata.generation` is maintained.
    pub generation: bool,
    /// Only `create` is served (review resources).
    pub create_only: bool,
    /// Name of the CRD that defines this type, for custom resources.
    pub crd: Option<String>,
}

impl ResourceType {
    /// True for the kinds with a `scale` subresource (`autoscaling/v1` Scale).
    pub fn has_scale(&self) -> bool {
        self.group == "apps"
            && matches!(
                self.plural.as_str(),
                "deployments" | "statefulsets" | "replicasets"
            )
    }

    /// `group/version`, or `version` for the core group.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    fn verbs(&self) -> Vec<&'static str> {
        if self.create_only {
            vec!["create"]
        } else {
            vec![
                "create",
                "delete",
                "deletecollection",
                "get",
                "list",
                "patch",
                "update",
                "watch",
            ]
        }
    }
}

// (group, version, plural, kind, namespaced, short names, status, generation, in category "all")
type Builtin = (
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    bool,
    &'static [&'static str],
    bool,
    bool,
    bool,
);

#[rustfmt::skip]
const BUILTINS: &[Builtin] = &[
    ("", "v1", "namespaces", "Namespace", false, &["ns"], true, false, false),
    ("", "v1", "configmaps", "ConfigMap", true, &["cm"], false, false, false),
    ("", "v1", "secrets", "Secret", true, &[], false, false, false),
    ("", "v1", "services", "Service", true, &["svc"], true, false, true),
    ("", "v1", "serviceaccounts", "ServiceAccount", true, &["sa"], false, false, false),
    ("", "v1", "persistentvolumeclaims", "PersistentVolumeClaim", true, &["pvc"], true, false, false),
    ("", "v1", "persistentvolumes", "PersistentVolume", false, &["pv"], true, false, false),
    ("", "v1", "pods", "Pod", true, &["po"], true, false, true),
    ("", "v1", "events", "Event", true, &["ev"], false, false, false),
    ("", "v1", "nodes", "Node", false, &["no"], true, false, false),
    ("", "v1", "endpoints", "Endpoints", true, &["ep"], false, false, false),
    ("", "v1", "resourcequotas", "ResourceQuota", true, &["quota"], true, false, false),
    ("", "v1", "limitranges", "LimitRange", true, &["limits"], false, false, false),
    ("apps", "v1", "deployments", "Deployment", true, &["deploy"], true, true, true),
    ("apps", "v1", "statefulsets", "StatefulSet", true, &["sts"], true, true, true),
    ("apps", "v1", "daemonsets", "DaemonSet", true, &["ds"], true, true, true),
    ("apps", "v1", "replicasets", "ReplicaSet", true, &["rs"], true, true, true),
    ("apps", "v1", "controllerrevisions", "ControllerRevision", true, &[], false, false, false),
    ("batch", "v1", "jobs", "Job", true, &[], true, true, true),
    ("batch", "v1", "cronjobs", "CronJob", true, &["cj"], true, true, true),
    ("networking.k8s.io", "v1", "networkpolicies", "NetworkPolicy", true, &["netpol"], false, true, false),
    ("networking.k8s.io", "v1", "ingresses", "Ingress", true, &["ing"], true, true, false),
    ("networking.k8s.io", "v1", "ingressclasses", "IngressClass", false, &[], false, false, false),
    ("rbac.authorization.k8s.io", "v1", "roles", "Role", true, &[], false, false, false),
    ("rbac.authorization.k8s.io", "v1", "rolebindings", "RoleBinding", true, &[], false, false, false),
    ("rbac.authorization.k8s.io", "v1", "clusterroles", "ClusterRole", false, &[], false, false, false),
    ("rbac.authorization.k8s.io", "v1", "clusterrolebindings", "ClusterRoleBinding", false, &[], false, false, false),
    ("storage.k8s.io", "v1", "storageclasses", "StorageClass", false, &["sc"], false, false, false),
    ("apiextensions.k8s.io", "v1", "customresourcedefinitions", "CustomResourceDefinition", false, &["crd", "crds"], true, true, false),
    ("policy", "v1", "poddisruptionbudgets", "PodDisruptionBudget", true, &["pdb"], true, true, false),
    ("autoscaling", "v2", "horizontalpodautoscalers", "HorizontalPodAutoscaler", true, &["hpa"], true, false, true),
    ("scheduling.k8s.io", "v1", "priorityclasses", "PriorityClass", false, &["pc"], false, false, false),
    ("coordination.k8s.io", "v1", "leases", "Lease", true, &[], false, false, false),
    ("admissionregistration.k8s.io", "v1", "validatingwebhookconfigurations", "ValidatingWebhookConfiguration", false, &[], false, true, false),
    ("admissionregistration.k8s.io", "v1", "mutatingwebhookconfigurations", "MutatingWebhookConfiguration", false, &[], false, true, false),
];

const REVIEWS: &[(&str, &str, &str)] = &[
    (
        "authorization.k8s.io",
        "selfsubjectaccessreviews",
        "SelfSubjectAccessReview",
    ),
    (
        "authorization.k8s.io",
        "selfsubjectrulesreviews",
        "SelfSubjectRulesReview",
    ),
    (
        "authentication.k8s.io",
        "selfsubjectreviews",
        "SelfSubjectReview",
    ),
];

/// All served resource types.
#[derive(Debug, Clone)]
pub(crate) struct Resources {
    types: Vec<ResourceType>,
}

impl Resources {
    /// The built-in types.
    pub fn builtin() -> Self {
        let mut types: Vec<ResourceType> = BUILTINS
            .iter()
            .map(
                |&(g, v, p, k, ns, sn, status, generation, all)| ResourceType {
                    group: g.into(),
                    version: v.into(),
                    plural: p.into(),
                    kind: k.into(),
                    namespaced: ns,
                    short_names: sn.iter().map(|s| s.to_string()).collect(),
                    categories: if all { vec!["all".into()] } else { vec![] },
                    status,
                    generation,
                    create_only: false,
                    crd: None,
                },
            )
            .collect();
        for &(g, p, k) in REVIEWS {
            types.push(ResourceType {
                group: g.into(),
                version: "v1".into(),
                plural: p.into(),
                kind: k.into(),
                namespaced: false,
                short_names: vec![],
                categories: vec![],
                status: false,
                generation: false,
                create_only: true,
                crd: None,
            });
        }
        Resources { types }
    }

    /// Looks up a type by its URL coordinates.
    pub fn find(&self, group: &str, version: &str, plural: &str) -> Option<&ResourceType> {
        self.types
            .iter()
            .find(|t| t.group == group && t.version == version && t.plural == plural)
    }

    /// All types of one group (any version), to share one store per group/plural.
    pub fn all(&self) -> &[ResourceType] {
        &self.types
    }

    /// The served groups in discovery order, each with its versions (preferred first).
    fn groups(&self) -> Vec<(String, Vec<String>)> {
        let mut out: Vec<(String, Vec<String>)> = Vec::new();
        for t in &self.types {
            match out.iter_mut().find(|(g, _)| *g == t.group) {
                Some((_, versions)) if !versions.contains(&t.version) => {
                    versions.push(t.version.clone())
                }
                Some(_) => {}
                None => out.push((t.group.clone(), vec![t.version.clone()])),
            }
        }
        out
    }

    /// Whether `group/version` is served.
    pub fn serves(&self, group: &str, version: &str) -> bool {
        self.types
            .iter()
            .any(|t| t.group == group && t.version == version)
    }

    /// `GET /api`.
    pub fn api_versions(&self, server_address: &str) -> Value {
        json!({
            "kind": "APIVersions",
            "versions": ["v1"],
            "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}],
        })
    }

    fn group_json(name: &str, versions: &[String]) -> Value {
        let vs: Vec<Value> = versions
            .iter()
            .map(|v| json!({"groupVersion": format!("{name}/{v}"), "version": v}))
            .collect();
        json!({"name": name, "versions": vs, "preferredVersion": vs[0].clone()})
    }

    /// `GET /apis`.
    pub fn api_group_list(&self) -> Value {
        let groups: Vec<Value> = self
            .groups()
            .iter()
            .filter(|(g, _)| !g.is_empty())
            .map(|(g, vs)| Self::group_json(g, vs))
            .collect();
        json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
    }

    /// `GET /apis/<group>`.
    pub fn api_group(&self, group: &str) -> Option<Value> {
        let groups = self.groups();
        let (_, vs) = groups.iter().find(|(g, _)| g == group && !g.is_empty())?;
        let mut v = Self::group_json(group, vs);
        v["kind"] = "APIGroup".into();
        v["apiVersion"] = "v1".into();
        Some(v)
    }

    /// `GET /api/v1` or `GET /apis/<group>/<version>`.
    pub fn api_resource_list(&self, group: &str, version: &str) -> Option<Value> {
        if !self.serves(group, version) {
            return None;
        }
        let mut resources = Vec::new();
        for t in self
            .types
            .iter()
            .filter(|t| t.group == group && t.version == version)
        {
            let mut r = json!({
                "name": t.plural,
                "singularName": t.kind.to_lowercase(),
                "namespaced": t.namespaced,
                "kind": t.kind,
                "verbs": t.verbs(),
            });
            if !t.short_names.is_empty() {
                r["shortNames"] = json!(t.short_names);
            }
            if !t.categories.is_empty() {
                r["categories"] = json!(t.categories);
            }
            resources.push(r);
            if t.status {
                resources.push(json!({
                    "name": format!("{}/status", t.plural),
                    "singularName": "",
                    "namespaced": t.namespaced,
                    "kind": t.kind,
                    "verbs": ["get", "patch", "update"],
                }));
            }
            if t.has_scale() {
                resources.push(json!({
                    "name": format!("{}/scale", t.plural),
                    "singularName": "",
                    "namespaced": t.namespaced,
                    "group": "autoscaling",
                    "version": "v1",
                    "kind": "Scale",
                    "verbs": ["get", "patch", "update"],
                }));
            }
            if t.group.is_empty() && t.plural == "pods" {
                resources.push(
                    json!({"name": "pods/log", "singularName": "", "namespaced": true,
                    "kind": "Pod", "verbs": ["get"]}),
                );
            }
        }
        let gv = if group.is_empty() {
            version.to_string()
        } else {
            format!("{group}/{version}")
        };
        Some(
            json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": resources}),
        )
    }

    /// Serves the versions of a CRD. Returns an error message if the CRD spec is unusable.
    pub fn register_crd(&mut self, crd: &Value) -> Result<(), String> {
        let name = crd["metadata"]["name"].as_str().unwrap_or_default();
        let spec = &crd["spec"];
        let group = spec["group"].as_str().ok_or("spec.group: Required value")?;
        let names = &spec["names"];
        let plural = names["plural"]
            .as_str()
            .ok_or("spec.names.plural: Required value")?;
        let kind = names["kind"]
            .as_str()
            .ok_or("spec.names.kind: Required value")?;
        if name != format!("{plural}.{group}") {
            return Err(format!(
                "metadata.name: Invalid value: \"{name}\": must be spec.names.plural+\".\"+spec.group"
            ));
        }
        let namespaced = match spec["scope"].as_str() {
            Some("Namespaced") => true,
            Some("Cluster") => false,
            _ => return Err("spec.scope: Unsupported value: must be Namespaced or Cluster".into()),
        };
        let versions = spec["versions"]
            .as_array()
            .filter(|v| !v.is_empty())
            .ok_or(
            "spec.versions: Invalid value: must have exactly one version marked as storage version",
        )?;
        let strings = |v: &Value| -> Vec<String> {
            v.as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|s| s.as_str().map(String::from))
                        .collect()
                })
                .unwrap_or_default()
        };
        self.unregister_crd(name);
        for v in versions {
            if v["served"].as_bool() == Some(false) {
                continue;
            }
            let Some(version) = v["name"].as_str() else {
                return Err("spec.versions[].name: Required value".into());
            };
            self.types.push(ResourceType {
                group: group.into(),
                version: version.into(),
                plural: plural.into(),
                kind: kind.into(),
                namespaced,
                short_names: strings(&names["shortNames"]),
                categories: strings(&names["categories"]),
                status: v["subresources"]["status"].is_object(),
                generation: true,
                create_only: false,
                crd: Some(name.to_string()),
            });
        }
        Ok(())
    }

    /// Stops serving the types a CRD defined.
    pub fn unregister_crd(&mut self, name: &str) {
        self.types.retain(|t| t.crd.as_deref() != Some(name));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn core_list_has_namespaces_with_short_name_and_status() {
        let r = Resources::builtin();
        let list = r.api_resource_list("", "v1").unwrap();
        let res = list["resources"].as_array().unwrap();
        let ns = res.iter().find(|x| x["name"] == "namespaces").unwrap();
        assert_eq!(ns["namespaced"], false);
        assert_eq!(ns["shortNames"][0], "ns");
        assert!(res.iter().any(|x| x["name"] == "namespaces/status"));
    }

    #[test]
    fn crd_registration_serves_and_unserves_its_kind() {
        let mut r = Resources::builtin();
        let crd = json!({"metadata": {"name": "widgets.example.com"}, "spec": {"group": "example.com",
            "scope": "Namespaced", "names": {"plural": "widgets", "kind": "Widget", "shortNames": ["wd"]},
            "versions": [{"name": "v1", "served": true, "storage": true, "subresources": {"status": {}}}]}});
        r.register_crd(&crd).unwrap();
        assert!(r.find("example.com", "v1", "widgets").unwrap().status);
        assert!(r.api_group_list()["groups"]
            .as_array()
            .unwrap()
            .iter()
            .any(|g| g["name"] == "example.com"));
        r.unregister_crd("widgets.example.com");
        assert!(r.find("example.com", "v1", "widgets").is_none());
    }

    #[test]
    fn crd_with_mismatched_name_is_rejected() {
        let mut r = Resources::builtin();
        let crd = json!({"metadata": {"name": "wrong"}, "spec": {"group": "example.com",
            "scope": "Namespaced", "names": {"plural": "widgets", "kind": "Widget"},
            "versions": [{"name": "v1", "served": true, "storage": true}]}});
        assert!(r.register_crd(&crd).unwrap_err().contains("metadata.name"));
    }
}
