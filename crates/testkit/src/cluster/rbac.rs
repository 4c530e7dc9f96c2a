//! Authorization: the admin user is in `system:masters`; every other user's rights come from the
//! Role, ClusterRole, RoleBinding and ClusterRoleBinding objects stored in the cluster, evaluated
//! like the RBAC authorizer (`plugin/pkg/auth/authorizer/rbac`: a request is allowed when any
//! rule of any role bound to the user or one of its groups covers its verb, API group, resource
//! or subresource, and resource name). The deny knobs apply to every user on top.

use serde_json::{json, Value};

use super::state::State;

/// Who sent a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum User {
    /// The kubeconfig's default user, in `system:masters`.
    Admin,
    /// A user added with `ClusterOptions::with_user`; RBAC objects decide.
    Named(String),
}

impl User {
    /// The user name the apiserver prints.
    pub fn name(&self) -> &str {
        match self {
            User::Admin => super::CONTEXT_NAME,
            User::Named(n) => n,
        }
    }

    /// The groups the authenticator gives this user.
    pub fn groups(&self) -> Vec<&'static str> {
        match self {
            User::Admin => vec!["system:masters", "system:authenticated"],
            User::Named(_) => vec!["system:authenticated"],
        }
    }
}

/// What a request asks to do.
#[derive(Debug, Clone)]
pub(crate) struct Attributes<'a> {
    /// `get`, `list`, `create`, ...
    pub verb: &'a str,
    /// API group (`""` for core).
    pub group: &'a str,
    /// Resource, plural.
    pub resource: &'a str,
    /// Subresource, e.g. `status` or `log`.
    pub subresource: &'a str,
    /// Namespace (`""` for cluster scope).
    pub namespace: &'a str,
    /// Object name, if the request names one.
    pub name: &'a str,
}

fn strings(v: &Value) -> impl Iterator<Item = &str> {
    v.as_array().into_iter().flatten().filter_map(Value::as_str)
}

/// Whether one PolicyRule covers the request (`RuleAllows` in the RBAC authorizer).
fn rule_allows(rule: &Value, a: &Attributes<'_>) -> bool {
    let verb = strings(&rule["verbs"]).any(|v| v == "*" || v == a.verb);
    let group = strings(&rule["apiGroups"]).any(|g| g == "*" || g == a.group);
    let combined = if a.subresource.is_empty() {
        a.resource.to_string()
    } else {
        format!("{}/{}", a.resource, a.subresource)
    };
    let resource = strings(&rule["resources"]).any(|r| {
        r == "*"
            || r == combined
            || (!a.subresource.is_empty() && r == format!("*/{}", a.subresource))
    });
    let names: Vec<&str> = strings(&rule["resourceNames"]).collect();
    let name = names.is_empty() || (!a.name.is_empty() && names.contains(&a.name));
    verb && group && resource && name
}

fn binds(binding: &Value, user: &User) -> bool {
    binding["subjects"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|s| match s["kind"].as_str() {
            Some("User") => s["name"] == user.name(),
            Some("Group") => user.groups().iter().any(|g| s["name"] == *g),
            _ => false,
        })
}

impl State {
    /// The rules that apply to `user` in `namespace` (cluster-wide ones included).
    pub fn rules_for(&self, user: &User, namespace: &str) -> Vec<Value> {
        let rbac = "rbac.authorization.k8s.io";
        let role_rules = |kind: &str, ns: &str, name: &str| -> Vec<Value> {
            let (plural, ns) = if kind == "ClusterRole" {
                ("clusterroles", "")
            } else {
                ("roles", ns)
            };
            self.store
                .get(rbac, plural, ns, name)
                .and_then(|r| r["rules"].as_array().cloned())
                .unwrap_or_default()
        };
        let mut out = Vec::new();
        for b in self.store.list(rbac, "clusterrolebindings", None) {
            if binds(b, user) && b["roleRef"]["kind"] == "ClusterRole" {
                out.extend(role_rules(
                    "ClusterRole",
                    "",
                    b["roleRef"]["name"].as_str().unwrap_or_default(),
                ));
            }
        }
        if !namespace.is_empty() {
            for b in self.store.list(rbac, "rolebindings", Some(namespace)) {
                if binds(b, user) {
                    out.extend(role_rules(
                        b["roleRef"]["kind"].as_str().unwrap_or_default(),
                        namespace,
                        b["roleRef"]["name"].as_str().unwrap_or_default(),
                    ));
                }
            }
        }
        out
    }

    /// Whether `user` may do `a`: deny knobs first, then `system:masters`, then RBAC.
    pub fn authorize(&self, user: &User, a: &Attributes<'_>) -> bool {
        let resource = if a.subresource.is_empty() {
            a.resource.to_string()
        } else {
            format!("{}/{}", a.resource, a.subresource)
        };
        if self.denied(a.verb, a.group, &resource, a.namespace)
            || self.denied(a.verb, a.group, a.resource, a.namespace)
        {
            return false;
        }
        match user {
            User::Admin => true,
            User::Named(_) => self
                .rules_for(user, a.namespace)
                .iter()
                .any(|r| rule_allows(r, a)),
        }
    }

    /// Answers a SelfSubjectAccessReview for `user`.
    pub fn access_review(&self, user: &User, mut body: Value) -> Value {
        let ra = &body["spec"]["resourceAttributes"];
        let get = |k: &str| ra[k].as_str().unwrap_or_default().to_string();
        let allowed = if ra.is_object() {
            let (verb, group, resource) = (get("verb"), get("group"), get("resource"));
            let (subresource, namespace, name) =
                (get("subresource"), get("namespace"), get("name"));
            self.authorize(
                user,
                &Attributes {
                    verb: &verb,
                    group: &group,
                    resource: &resource,
                    subresource: &subresource,
                    namespace: &namespace,
                    name: &name,
                },
            )
        } else {
            // Non-resource URLs (`/healthz`, `/version`, ...) are open to authenticated users.
            true
        };
        // Like RBAC: a denial carries no reason (kubectl prints a bare "no").
        body["status"] = json!({"allowed": allowed});
        body["apiVersion"] = "authorization.k8s.io/v1".into();
        body["kind"] = "SelfSubjectAccessReview".into();
        if !body["metadata"].is_object() {
            body["metadata"] = json!({});
        }
        body["metadata"]["creationTimestamp"] = Value::Null;
        body
    }

    /// Answers a SelfSubjectRulesReview for `user` in `spec.namespace`.
    pub fn rules_review(&self, user: &User, mut body: Value) -> Value {
        let ns = body["spec"]["namespace"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let mut resource_rules: Vec<Value> = match user {
            User::Admin => vec![json!({"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]})],
            User::Named(_) => self
                .rules_for(user, &ns)
                .into_iter()
                .filter(|r| r["resources"].is_array())
                .map(|r| {
                    let mut out = json!({"verbs": r["verbs"], "apiGroups": r["apiGroups"],
                        "resources": r["resources"]});
                    if r["resourceNames"].is_array() {
                        out["resourceNames"] = r["resourceNames"].clone();
                    }
                    out
                })
                .collect(),
        };
        // What system:basic-user grants everyone.
        resource_rules.push(
            json!({"verbs": ["create"], "apiGroups": ["authorization.k8s.io"],
            "resources": ["selfsubjectaccessreviews", "selfsubjectrulesreviews"]}),
        );
        body["apiVersion"] = "authorization.k8s.io/v1".into();
        body["kind"] = "SelfSubjectRulesReview".into();
        body["metadata"] = json!({"creationTimestamp": null});
        body["status"] = json!({"resourceRules": resource_rules,
            "nonResourceRules": [{"verbs": ["get"], "nonResourceURLs": ["/api", "/api/*", "/apis",
                "/apis/*", "/healthz", "/livez", "/openapi", "/openapi/*", "/readyz", "/version", "/version/"]}],
            "incomplete": false});
        body
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attrs<'a>(verb: &'a str, resource: &'a str, sub: &'a str, name: &'a str) -> Attributes<'a> {
        Attributes {
            verb,
            group: "",
            resource,
            subresource: sub,
            namespace: "ns",
            name,
        }
    }

    #[test]
    fn rules_match_verbs_resources_subresources_and_names() {
        let rule = json!({"verbs": ["get", "list"], "apiGroups": [""], "resources": ["secrets", "pods/log"]});
        assert!(rule_allows(&rule, &attrs("get", "secrets", "", "x")));
        assert!(!rule_allows(&rule, &attrs("delete", "secrets", "", "x")));
        assert!(rule_allows(&rule, &attrs("get", "pods", "log", "p")));
        assert!(!rule_allows(&rule, &attrs("get", "pods", "", "p")));
        let named = json!({"verbs": ["*"], "apiGroups": ["*"], "resources": ["configmaps"], "resourceNames": ["a"]});
        assert!(rule_allows(&named, &attrs("patch", "configmaps", "", "a")));
        assert!(!rule_allows(&named, &attrs("patch", "configmaps", "", "b")));
        assert!(!rule_allows(&named, &attrs("list", "configmaps", "", "")));
    }
}
