//! Reading the SaaS cluster, with `list` and `get` only: the objects of the selected namespaces,
//! the cluster-scoped objects they need, the images the Pods actually run, the server version
//! and the nodes' platforms. Skipping rules are applied here, each skip counted.

use std::collections::{BTreeMap, BTreeSet};

use kube::api::{Api, DynamicObject, ListParams};
use kube::discovery::{verbs, ApiResource, Discovery, Scope};
use kube::Client;
use serde_json::Value;

use crate::error::SnapshotError;

/// The most objects one snapshot reads; a SaaS with more is refused rather than held in memory.
pub const MAX_OBJECTS: usize = 20_000;

/// What to read.
#[derive(Debug, Clone, Default)]
pub struct Selection {
    /// The namespaces, the first one being the release namespace of the bundle.
    pub namespaces: Vec<String>,
    /// A label selector for the namespaced objects.
    pub selector: Option<String>,
}

/// What was read, before cleaning.
#[derive(Debug, Default)]
pub struct Captured {
    /// The objects to keep, as the server returned them.
    pub objects: Vec<Value>,
    /// Skipped objects: reason → `Kind namespace/name`.
    pub skipped: BTreeMap<String, Vec<String>>,
    /// Image as written in a Pod → the digests its Pods run (from `imageID`).
    pub running: BTreeMap<String, BTreeSet<String>>,
    /// Storage classes the objects use (recorded as requirements, never copied).
    pub storage_classes: BTreeSet<String>,
    /// The server's `major.minor`.
    pub server_version: String,
    /// `os/arch` of the nodes, when the nodes can be listed.
    pub platforms: BTreeSet<String>,
    /// Things the vendor should know (unreadable lists and the like).
    pub notes: Vec<String>,
}

impl Captured {
    fn skip(&mut self, reason: &str, obj: &Value) {
        self.skipped
            .entry(reason.to_string())
            .or_default()
            .push(describe(obj));
    }
}

fn describe(obj: &Value) -> String {
    let kind = obj["kind"].as_str().unwrap_or_default();
    let name = obj["metadata"]["name"].as_str().unwrap_or_default();
    match obj["metadata"]["namespace"].as_str() {
        Some(ns) => format!("{kind} {ns}/{name}"),
        None => format!("{kind} {name}"),
    }
}

/// Kinds never taken, whoever owns them: (group, kind, reason).
const SKIPPED_KINDS: &[(&str, &str, &str)] = &[
    ("", "Event", "events"),
    ("events.k8s.io", "Event", "events"),
    ("coordination.k8s.io", "Lease", "leases"),
    (
        "",
        "Endpoints",
        "endpoints (kept by the Service controller)",
    ),
    (
        "discovery.k8s.io",
        "EndpointSlice",
        "endpoints (kept by the Service controller)",
    ),
    ("", "Pod", "pods (run by a controller or the kubelet)"),
    ("", "Binding", "bindings"),
    ("", "ComponentStatus", "cluster components"),
    ("metrics.k8s.io", "PodMetrics", "metrics"),
];

/// The reason `obj` is skipped, or `None` to take it.
pub fn skip_reason(obj: &Value, group: &str, sts_claims: &BTreeSet<String>) -> Option<String> {
    let kind = obj["kind"].as_str().unwrap_or_default();
    let name = obj["metadata"]["name"].as_str().unwrap_or_default();
    if let Some((_, _, why)) = SKIPPED_KINDS
        .iter()
        .find(|(g, k, _)| *g == group && *k == kind)
    {
        return Some((*why).to_string());
    }
    let controlled = obj["metadata"]["ownerReferences"]
        .as_array()
        .is_some_and(|refs| refs.iter().any(|r| r["controller"] == true));
    if controlled {
        return Some("owned by a controller".into());
    }
    let annotated = obj["metadata"]["annotations"]["airlift.dev/skip"].as_str() == Some("true");
    if annotated {
        return Some("annotated airlift.dev/skip: \"true\"".into());
    }
    match (group, kind) {
        ("", "ServiceAccount") if name == "default" => Some("the default ServiceAccount".into()),
        ("", "ConfigMap") if name == "kube-root-ca.crt" => {
            Some("kube-root-ca.crt (published by the cluster)".into())
        }
        ("", "Secret") => match obj["type"].as_str() {
            Some("kubernetes.io/service-account-token") => {
                Some("service-account token Secrets".into())
            }
            Some("helm.sh/release.v1") => Some("Helm release records".into()),
            _ => None,
        },
        ("", "PersistentVolumeClaim") if sts_claims.contains(name) => {
            Some("claims created from a StatefulSet's volumeClaimTemplates".into())
        }
        _ => None,
    }
}

/// Claim names a StatefulSet creates: `<template>-<statefulset>-<ordinal>`, for the ordinals
/// its replicas give.
fn statefulset_claims(sts: &Value) -> Vec<String> {
    let name = sts["metadata"]["name"].as_str().unwrap_or_default();
    let replicas = sts
        .pointer("/spec/replicas")
        .and_then(Value::as_i64)
        .unwrap_or(1)
        .clamp(0, 10_000);
    let start = sts
        .pointer("/spec/ordinals/start")
        .and_then(Value::as_i64)
        .unwrap_or(0)
        .clamp(0, 1_000_000);
    let mut out = Vec::new();
    for t in sts
        .pointer("/spec/volumeClaimTemplates")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let tname = t["metadata"]["name"].as_str().unwrap_or_default();
        for i in start..start + replicas {
            out.push(format!("{tname}-{name}-{i}"));
        }
    }
    out
}

async fn list(
    client: &Client,
    ar: &ApiResource,
    ns: Option<&str>,
    selector: Option<&str>,
    budget: &mut usize,
) -> Result<Vec<Value>, SnapshotError> {
    let api: Api<DynamicObject> = match ns {
        Some(ns) => Api::namespaced_with(client.clone(), ns, ar),
        None => Api::all_with(client.clone(), ar),
    };
    let mut params = ListParams::default().limit(500);
    if let Some(s) = selector {
        params = params.labels(s);
    }
    let mut out = Vec::new();
    loop {
        let page = api
            .list(&params)
            .await
            .map_err(|source| SnapshotError::List {
                what: match ns {
                    Some(ns) => format!("{} in namespace `{ns}`", ar.plural),
                    None => ar.plural.clone(),
                },
                source,
            })?;
        for item in page.items {
            *budget = budget
                .checked_sub(1)
                .ok_or(SnapshotError::TooMany { limit: MAX_OBJECTS })?;
            let mut v = serde_json::to_value(item).map_err(SnapshotError::Decode)?;
            v["apiVersion"] = Value::String(ar.api_version.clone());
            v["kind"] = Value::String(ar.kind.clone());
            out.push(v);
        }
        match page.metadata.continue_ {
            Some(c) if !c.is_empty() => params = params.continue_token(&c),
            _ => break,
        }
    }
    Ok(out)
}

/// Reads the cluster. Nothing is written to it.
pub async fn capture(client: &Client, sel: &Selection) -> Result<Captured, SnapshotError> {
    let mut out = Captured::default();
    let mut budget = MAX_OBJECTS;
    let version = client
        .apiserver_version()
        .await
        .map_err(|source| SnapshotError::List {
            what: "the server version".into(),
            source,
        })?;
    out.server_version = format!(
        "{}.{}",
        version.major.trim_end_matches('+'),
        version.minor.trim_end_matches('+')
    );
    let discovery = Discovery::new(client.clone())
        .run()
        .await
        .map_err(|source| SnapshotError::List {
            what: "the served APIs (discovery)".into(),
            source,
        })?;
    let mut resources: Vec<(ApiResource, bool)> = Vec::new();
    for group in discovery.groups() {
        for (ar, caps) in group.recommended_resources() {
            if caps.supports_operation(verbs::LIST) {
                resources.push((ar, caps.scope == Scope::Namespaced));
            }
        }
    }
    resources.sort_by(|a, b| (&a.0.group, &a.0.kind).cmp(&(&b.0.group, &b.0.kind)));
    let find = |group: &str, kind: &str| {
        resources
            .iter()
            .find(|(r, _)| r.group == group && r.kind == kind)
            .map(|(r, _)| r.clone())
    };

    // CRDs by (group, plural), to know which resources are custom.
    let mut crds: BTreeMap<(String, String), Value> = BTreeMap::new();
    if let Some(ar) = find("apiextensions.k8s.io", "CustomResourceDefinition") {
        for crd in list(client, &ar, None, None, &mut budget).await? {
            let g = crd.pointer("/spec/group").and_then(Value::as_str);
            let p = crd.pointer("/spec/names/plural").and_then(Value::as_str);
            if let (Some(g), Some(p)) = (g, p) {
                crds.insert((g.to_string(), p.to_string()), crd.clone());
            }
        }
    }

    let mut namespaces: Vec<&String> = Vec::new();
    for ns in &sel.namespaces {
        if ns.starts_with("kube-") {
            out.skipped
                .entry("kube-* namespaces".into())
                .or_default()
                .push(format!("Namespace {ns}"));
        } else {
            namespaces.push(ns);
        }
    }
    let mut taken: Vec<(String, Value)> = Vec::new();
    let mut pods: Vec<Value> = Vec::new();
    let mut used_crds: BTreeSet<(String, String)> = BTreeSet::new();
    for ns in &namespaces {
        let mut found: Vec<(String, Value)> = Vec::new();
        for (ar, namespaced) in &resources {
            if !namespaced {
                continue;
            }
            let items = match list(client, ar, Some(ns), sel.selector.as_deref(), &mut budget).await
            {
                Ok(items) => items,
                // An aggregated API that is down or gone (metrics, say): noted, not fatal.
                Err(SnapshotError::List {
                    source: kube::Error::Api(s),
                    what,
                }) if s.code == 404 || s.code == 503 => {
                    out.notes
                        .push(format!("{what} could not be listed: {}", s.message));
                    continue;
                }
                Err(e) => return Err(e),
            };
            if ar.group.is_empty() && ar.kind == "Pod" {
                pods.extend(items.iter().cloned());
            }
            for it in items {
                found.push((ar.group.clone(), it));
            }
        }
        let sts_claims: BTreeSet<String> = found
            .iter()
            .filter(|(g, o)| g == "apps" && o["kind"] == "StatefulSet")
            .flat_map(|(_, o)| statefulset_claims(o))
            .collect();
        for (group, obj) in found {
            if let Some(why) = skip_reason(&obj, &group, &sts_claims) {
                out.skip(&why, &obj);
                continue;
            }
            let plural = resources
                .iter()
                .find(|(r, _)| r.group == group && r.kind == obj["kind"].as_str().unwrap_or(""))
                .map(|(r, _)| r.plural.clone())
                .unwrap_or_default();
            if crds.contains_key(&(group.clone(), plural.clone())) {
                used_crds.insert((group.clone(), plural));
            }
            taken.push((group, obj));
        }
    }
    for key in &used_crds {
        if let Some(crd) = crds.get(key) {
            taken.push(("apiextensions.k8s.io".into(), crd.clone()));
        }
    }
    cluster_rbac(
        client,
        &find,
        &namespaces,
        &mut taken,
        &mut out,
        &mut budget,
    )
    .await?;
    priority_classes(client, &find, &mut taken, &mut budget).await?;

    for (_, obj) in &taken {
        for sc in storage_classes_of(obj) {
            out.storage_classes.insert(sc);
        }
    }
    for pod in &pods {
        for list in ["containerStatuses", "initContainerStatuses"] {
            for cs in pod["status"][list].as_array().into_iter().flatten() {
                let (Some(image), Some(id)) = (cs["image"].as_str(), cs["imageID"].as_str()) else {
                    continue;
                };
                if let Some((_, digest)) = id.rsplit_once('@') {
                    out.running
                        .entry(image.to_string())
                        .or_default()
                        .insert(digest.to_string());
                }
            }
        }
    }
    if let Some(ar) = find("", "Node") {
        match list(client, &ar, None, None, &mut budget).await {
            Ok(nodes) => {
                for n in nodes {
                    let os = n["metadata"]["labels"]["kubernetes.io/os"]
                        .as_str()
                        .unwrap_or("linux");
                    if let Some(arch) = n["metadata"]["labels"]["kubernetes.io/arch"].as_str() {
                        out.platforms.insert(format!("{os}/{arch}"));
                    }
                }
            }
            Err(e) => out.notes.push(format!(
                "the nodes could not be listed ({e}); the platforms default to linux/amd64"
            )),
        }
    }
    out.objects = taken.into_iter().map(|(_, o)| o).collect();
    Ok(out)
}

async fn cluster_rbac(
    client: &Client,
    find: &impl Fn(&str, &str) -> Option<ApiResource>,
    namespaces: &[&String],
    taken: &mut Vec<(String, Value)>,
    out: &mut Captured,
    budget: &mut usize,
) -> Result<(), SnapshotError> {
    const RBAC: &str = "rbac.authorization.k8s.io";
    let accounts: BTreeSet<(String, String)> = taken
        .iter()
        .filter(|(g, o)| g.is_empty() && o["kind"] == "ServiceAccount")
        .map(|(_, o)| {
            (
                o["metadata"]["namespace"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
                o["metadata"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
            )
        })
        .collect();
    let (Some(crb), Some(cr)) = (find(RBAC, "ClusterRoleBinding"), find(RBAC, "ClusterRole"))
    else {
        return Ok(());
    };
    let roles = list(client, &cr, None, None, budget).await?;
    let mut wanted: BTreeSet<String> = BTreeSet::new();
    for b in list(client, &crb, None, None, budget).await? {
        let names_ours = b["subjects"].as_array().into_iter().flatten().any(|s| {
            s["kind"] == "ServiceAccount"
                && s["namespace"]
                    .as_str()
                    .is_some_and(|ns| namespaces.iter().any(|n| n.as_str() == ns))
                && accounts.contains(&(
                    s["namespace"].as_str().unwrap_or_default().to_string(),
                    s["name"].as_str().unwrap_or_default().to_string(),
                ))
        });
        if !names_ours {
            continue;
        }
        if b["roleRef"]["kind"] == "ClusterRole" {
            if let Some(r) = b["roleRef"]["name"].as_str() {
                wanted.insert(r.to_string());
            }
        }
        taken.push((RBAC.into(), b));
    }
    for r in roles {
        let name = r["metadata"]["name"].as_str().unwrap_or_default();
        if !wanted.contains(name) {
            continue;
        }
        let builtin = r["metadata"]["labels"]["kubernetes.io/bootstrapping"] == "rbac-defaults"
            || name.starts_with("system:");
        if builtin {
            out.skip("built-in ClusterRoles (bound, not copied)", &r);
        } else {
            taken.push((RBAC.into(), r));
        }
    }
    Ok(())
}

async fn priority_classes(
    client: &Client,
    find: &impl Fn(&str, &str) -> Option<ApiResource>,
    taken: &mut Vec<(String, Value)>,
    budget: &mut usize,
) -> Result<(), SnapshotError> {
    let mut names: BTreeSet<String> = BTreeSet::new();
    for (_, o) in taken.iter() {
        let kind = o["kind"].as_str().unwrap_or_default();
        for (ptr, _) in crate::params::pod_spec_pointers(kind) {
            if let Some(n) = o
                .pointer(&format!("{ptr}/priorityClassName"))
                .and_then(Value::as_str)
            {
                if !n.starts_with("system-") {
                    names.insert(n.to_string());
                }
            }
        }
    }
    if names.is_empty() {
        return Ok(());
    }
    let Some(ar) = find("scheduling.k8s.io", "PriorityClass") else {
        return Ok(());
    };
    for pc in list(client, &ar, None, None, budget).await? {
        if names.contains(pc["metadata"]["name"].as_str().unwrap_or_default()) {
            taken.push(("scheduling.k8s.io".into(), pc));
        }
    }
    Ok(())
}

fn storage_classes_of(obj: &Value) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(s) = obj
        .pointer("/spec/storageClassName")
        .and_then(Value::as_str)
    {
        out.push(s.to_string());
    }
    for t in obj
        .pointer("/spec/volumeClaimTemplates")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        if let Some(s) = t.pointer("/spec/storageClassName").and_then(Value::as_str) {
            out.push(s.to_string());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn skipping_rules() {
        let none = BTreeSet::new();
        let owned = json!({"kind": "ReplicaSet", "metadata": {"name": "web-1",
            "ownerReferences": [{"kind": "Deployment", "name": "web", "controller": true}]}});
        assert_eq!(
            skip_reason(&owned, "apps", &none).as_deref(),
            Some("owned by a controller")
        );
        let sa = json!({"kind": "ServiceAccount", "metadata": {"name": "default"}});
        assert!(skip_reason(&sa, "", &none).is_some());
        let tok = json!({"kind": "Secret", "type": "kubernetes.io/service-account-token", "metadata": {"name": "t"}});
        assert!(skip_reason(&tok, "", &none).is_some());
        let mine = json!({"kind": "Secret", "type": "Opaque", "metadata": {"name": "db"}});
        assert_eq!(skip_reason(&mine, "", &none), None);
        let sts = json!({"kind": "StatefulSet", "metadata": {"name": "db"}, "spec": {"replicas": 2,
            "volumeClaimTemplates": [{"metadata": {"name": "data"}}]}});
        let claims: BTreeSet<String> = statefulset_claims(&sts).into_iter().collect();
        assert_eq!(claims.len(), 2);
        let pvc = json!({"kind": "PersistentVolumeClaim", "metadata": {"name": "data-db-1"}});
        assert!(skip_reason(&pvc, "", &claims).is_some());
        let ev = json!({"kind": "Event", "metadata": {"name": "e"}});
        assert_eq!(skip_reason(&ev, "", &none).as_deref(), Some("events"));
    }
}
