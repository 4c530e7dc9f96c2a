//! Preflight, before any change: the server version is inside the bundle's range, every node's
//! platform is covered, the user may create/patch/get/list/delete everything the install touches
//! (SelfSubjectAccessReview), including what the engine itself needs in the release namespace
//! (release records in Secrets, the release lock in a Lease, creating the namespace when it does
//! not exist), and the required storage classes and CRDs exist. Every check runs; every failure
//! is reported at once, each with a fix.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use airlift_bundle::schema::common::{Platform, Requirements};
use airlift_bundle::{Diagnose, ExitKind};
use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SelfSubjectAccessReview, SelfSubjectAccessReviewSpec,
};
use k8s_openapi::api::core::v1::Node;
use k8s_openapi::api::storage::v1::StorageClass;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, ListParams, PostParams};
use serde::Serialize;
use serde_json::Value;

use crate::object::ManagedObject;
use crate::resolve::Resolver;
use crate::status::ServerError;

/// The verbs an install needs on every kind it applies: apply is `patch` (and `create`),
/// readiness and plan `get`/`list`, prune and uninstall `delete`.
pub const VERBS: [&str; 5] = ["create", "patch", "get", "list", "delete"];

/// The verbs the engine needs on its own records (Secrets) and lock (Lease) in the release
/// namespace.
pub const RECORD_VERBS: [&str; 6] = ["get", "list", "create", "update", "patch", "delete"];

/// One preflight check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    /// What was checked, e.g. `server version`.
    pub name: String,
    /// Whether it passed.
    pub ok: bool,
    /// What was found.
    pub detail: String,
    /// How to fix a failure.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

impl Check {
    /// A passed check.
    pub fn pass(name: impl Into<String>, detail: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            ok: true,
            detail: detail.into(),
            fix: None,
        }
    }

    /// A failed check with its fix.
    pub fn fail(
        name: impl Into<String>,
        detail: impl Into<String>,
        fix: impl Into<String>,
    ) -> Self {
        Self {
            name: name.into(),
            ok: false,
            detail: detail.into(),
            fix: Some(fix.into()),
        }
    }
}

/// Every check and its result.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PreflightReport {
    /// The checks, in the order run.
    pub checks: Vec<Check>,
}

impl PreflightReport {
    /// The failed checks.
    pub fn failures(&self) -> impl Iterator<Item = &Check> {
        self.checks.iter().filter(|c| !c.ok)
    }

    /// Whether every check passed.
    pub fn passed(&self) -> bool {
        self.failures().next().is_none()
    }
}

impl fmt::Display for PreflightReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for c in &self.checks {
            let mark = if c.ok { "ok  " } else { "FAIL" };
            writeln!(f, "{mark} {}: {}", c.name, c.detail)?;
            if let Some(fix) = &c.fix {
                writeln!(f, "     fix: {fix}")?;
            }
        }
        Ok(())
    }
}

/// Errors from preflight.
#[derive(Debug, thiserror::Error)]
pub enum PreflightError {
    /// One or more checks failed; nothing was changed.
    #[error("{} preflight check(s) failed; nothing was changed:\n{}", .0.failures().count(), failures_text(.0))]
    Failed(PreflightReport),
}

fn failures_text(r: &PreflightReport) -> String {
    r.failures()
        .map(|c| {
            format!(
                "  - {}: {}\n    fix: {}",
                c.name,
                c.detail,
                c.fix.clone().unwrap_or_default()
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

impl PreflightError {
    /// How the operator can fix it.
    pub fn hint(&self) -> String {
        "fix each failure above, then run the command again".into()
    }
}

impl Diagnose for PreflightError {
    fn exit_kind(&self) -> ExitKind {
        ExitKind::Preflight
    }

    fn fix(&self) -> Option<String> {
        Some(self.hint())
    }
}

/// What preflight checks against.
pub struct PreflightInput<'a> {
    /// The bundle's requirements.
    pub requirements: &'a Requirements,
    /// The rendered objects the install will apply.
    pub objects: &'a [ManagedObject],
    /// The release namespace (records live there; objects without a namespace go there).
    pub namespace: &'a str,
}

/// Parses `v1.33.2`, `v1.29.4-eks-a5ec690` or `v1.30.1+k3s1` as `1.33.2`, `1.29.4`, `1.30.1`.
pub fn parse_server_version(git_version: &str) -> Option<semver::Version> {
    let v = git_version.trim_start_matches('v');
    let core = v.split(['-', '+']).next()?;
    let mut parts = core.split('.').map(|p| p.parse::<u64>().ok());
    Some(semver::Version::new(
        parts.next()??,
        parts.next()??,
        parts.next().flatten().unwrap_or(0),
    ))
}

/// Runs every check. `Ok` holds the report when all passed; `Err(Failed)` holds it otherwise.
pub async fn preflight(
    resolver: &Resolver,
    input: &PreflightInput<'_>,
) -> Result<PreflightReport, PreflightError> {
    let client = resolver.client().clone();
    let mut report = PreflightReport::default();

    // Server version.
    let name = "Kubernetes version";
    match client.apiserver_version().await {
        Err(e) => report.checks.push(Check::fail(
            name,
            format!("cannot read /version: {}", crate::status::describe(&e)),
            crate::kubeconfig::api_hint(&e),
        )),
        Ok(info) => match (
            parse_server_version(&info.git_version),
            semver::VersionReq::parse(&input.requirements.kubernetes),
        ) {
            (_, Err(e)) => report.checks.push(Check::fail(
                name,
                format!(
                    "the bundle's range `{}` is not a semver range: {e}",
                    input.requirements.kubernetes
                ),
                "ask the vendor for a fixed bundle",
            )),
            (None, _) => report.checks.push(Check::fail(
                name,
                format!("cannot parse the server version `{}`", info.git_version),
                "check that the API server is a Kubernetes API server",
            )),
            (Some(v), Ok(req)) if req.matches(&v) => report.checks.push(Check::pass(
                name,
                format!(
                    "{} is within {}",
                    info.git_version, input.requirements.kubernetes
                ),
            )),
            (Some(_), Ok(_)) => report.checks.push(Check::fail(
                name,
                format!(
                    "server {} is outside the supported range {}",
                    info.git_version, input.requirements.kubernetes
                ),
                format!(
                    "upgrade (or pick) a cluster whose Kubernetes version matches {}",
                    input.requirements.kubernetes
                ),
            )),
        },
    }

    // Node platforms.
    report
        .checks
        .push(check_nodes(&client, &input.requirements.platforms).await);

    // RBAC.
    report.checks.extend(check_rbac(resolver, input).await);

    // Storage classes.
    if let Some(c) = check_storage_classes(&client, input).await {
        report.checks.push(c);
    }

    // CRDs the bundle expects but does not ship.
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    for crd in &input.requirements.crds {
        let name = format!("CRD {crd}");
        match crds.get_opt(crd).await {
            Ok(Some(_)) => report.checks.push(Check::pass(name, "present")),
            Ok(None) => report.checks.push(Check::fail(
                name,
                "not installed",
                format!("install the CRD `{crd}` (its operator's chart) before this bundle"),
            )),
            Err(e) => report.checks.push(Check::fail(
                name,
                format!("cannot read it: {}", crate::status::describe(&e)),
                crate::kubeconfig::api_hint(&e),
            )),
        }
    }

    if report.passed() {
        Ok(report)
    } else {
        Err(PreflightError::Failed(report))
    }
}

async fn check_nodes(client: &kube::Client, platforms: &[Platform]) -> Check {
    let name = "node platforms";
    let nodes: Api<Node> = Api::all(client.clone());
    let list = match nodes.list(&ListParams::default()).await {
        Ok(l) => l,
        Err(e) => {
            return Check::fail(
                name,
                format!("cannot list nodes: {}", crate::status::describe(&e)),
                "grant `list` on nodes to this user so platforms can be checked",
            )
        }
    };
    let mut uncovered: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut seen = BTreeSet::new();
    for node in &list.items {
        let node_name = node.metadata.name.clone().unwrap_or_default();
        let labels = node.metadata.labels.clone().unwrap_or_default();
        let info = node.status.as_ref().and_then(|s| s.node_info.as_ref());
        let arch = info
            .map(|i| i.architecture.clone())
            .filter(|a| !a.is_empty())
            .or_else(|| labels.get("kubernetes.io/arch").cloned())
            .unwrap_or_default();
        let os = info
            .map(|i| i.operating_system.clone())
            .filter(|a| !a.is_empty())
            .or_else(|| labels.get("kubernetes.io/os").cloned())
            .unwrap_or_else(|| "linux".into());
        let platform = format!("{os}/{arch}");
        seen.insert(platform.clone());
        let covered = platforms
            .iter()
            .any(|p| p.os == os && p.architecture == arch);
        if !covered {
            uncovered.entry(platform).or_default().push(node_name);
        }
    }
    if uncovered.is_empty() {
        let seen: Vec<String> = seen.into_iter().collect();
        return Check::pass(
            name,
            format!(
                "{} node(s), all on covered platforms ({})",
                list.items.len(),
                seen.join(", ")
            ),
        );
    }
    let bundle: Vec<String> = platforms.iter().map(ToString::to_string).collect();
    let detail = uncovered
        .iter()
        .map(|(p, nodes)| format!("{p} on {}", nodes.join(", ")))
        .collect::<Vec<_>>()
        .join("; ");
    Check::fail(
        name,
        format!(
            "nodes run platforms the bundle does not cover: {detail} (bundle covers {})",
            bundle.join(", ")
        ),
        "ask the vendor for a bundle that includes these platforms, or keep the workloads off \
         those nodes with a nodeSelector on kubernetes.io/arch",
    )
}

/// A permission the install needs: (group, resource, namespace, name) and its verbs.
type Needed = BTreeMap<(String, String, String, String), Vec<&'static str>>;

fn need(out: &mut Needed, group: &str, resource: &str, ns: &str, verbs: &[&'static str]) {
    let have = out
        .entry((group.into(), resource.into(), ns.into(), String::new()))
        .or_default();
    for v in verbs {
        if !have.contains(v) {
            have.push(v);
        }
    }
}

/// What the engine itself needs in the release namespace `ns`: its records (Secrets), its lock
/// (a Lease), reading the namespace, and creating it when it does not exist.
async fn engine_access(resolver: &Resolver, ns: &str, out: &mut Needed) {
    need(out, "", "secrets", ns, &RECORD_VERBS);
    need(out, "coordination.k8s.io", "leases", ns, &RECORD_VERBS);
    out.entry((String::new(), "namespaces".into(), String::new(), ns.into()))
        .or_default()
        .push("get");
    let api: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(resolver.client().clone());
    if let Ok(None) = api.get_opt(ns).await {
        need(out, "", "namespaces", "", &["create"]);
    }
}

/// Everything the install touches, with the verbs it needs.
async fn needed_access(
    resolver: &Resolver,
    input: &PreflightInput<'_>,
    checks: &mut Vec<Check>,
) -> Needed {
    let mut out = Needed::new();
    let ns = input.namespace.to_string();
    engine_access(resolver, &ns, &mut out).await;
    // apiVersion/kind -> the objects of it the cluster does not serve.
    let mut unserved: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut other_errors: Vec<String> = Vec::new();
    for o in input.objects {
        let Some(id) = o.id() else { continue };
        let resolved = resolver.resolve(&id.api_version(), &id.kind).await;
        let (plural, namespaced) = match resolved {
            Ok(r) => (r.resource.plural, r.namespaced),
            Err(e) => match crd_in_set(input.objects, &id.group, &id.kind) {
                Some(found) => found,
                None => {
                    let what = format!("{} {}", id.api_version(), id.kind);
                    match e {
                        crate::resolve::ResolveError::GroupNotServed { .. }
                        | crate::resolve::ResolveError::KindNotServed { .. } => {
                            unserved.entry(what).or_default().push(id.name.clone())
                        }
                        other => other_errors.push(format!("{what} ({}): {other}", id.name)),
                    }
                    continue;
                }
            },
        };
        let obj_ns = if namespaced {
            id.namespace.clone().unwrap_or_else(|| ns.clone())
        } else {
            String::new()
        };
        if crate::object::is_workload(&id.group, &id.kind) {
            need(&mut out, "", "pods", &obj_ns, &["get", "list"]);
            need(&mut out, "", "events", &obj_ns, &["get", "list"]);
        }
        if crate::replace::orphans_pods(&id) {
            // Readiness looks for what a replaced workload left running.
            need(&mut out, "apps", "replicasets", &obj_ns, &["list"]);
            need(&mut out, "apps", "controllerrevisions", &obj_ns, &["list"]);
        }
        need(&mut out, &id.group, &plural, &obj_ns, &VERBS);
    }
    if !unserved.is_empty() {
        let list = unserved
            .iter()
            .map(|(what, names)| format!("{what} ({})", names.join(", ")))
            .collect::<Vec<_>>()
            .join("; ");
        checks.push(Check::fail(
            "served kinds",
            format!(
                "the cluster does not serve {} kind(s) the bundle applies: {list}",
                unserved.len()
            ),
            "install the CRDs or enable the APIs that serve them, or use a bundle built for this \
             cluster's Kubernetes version (`airlift-pack lint --kubernetes VERSION` names the \
             replacements)",
        ));
    }
    if !other_errors.is_empty() {
        checks.push(Check::fail(
            "served kinds",
            format!(
                "cannot read the cluster's API discovery: {}",
                other_errors.join("; ")
            ),
            "check that the API server is reachable and that you may read its discovery",
        ));
    }
    out
}

fn crd_in_set(objects: &[ManagedObject], group: &str, kind: &str) -> Option<(String, bool)> {
    objects.iter().find_map(|o| {
        let spec = o.object.get("spec")?;
        if o.kind() != "CustomResourceDefinition"
            || spec.get("group")?.as_str()? != group
            || spec.pointer("/names/kind")?.as_str()? != kind
        {
            return None;
        }
        let plural = spec.pointer("/names/plural")?.as_str()?.to_string();
        Some((
            plural,
            spec.get("scope").and_then(Value::as_str) != Some("Cluster"),
        ))
    })
}

async fn check_rbac(resolver: &Resolver, input: &PreflightInput<'_>) -> Vec<Check> {
    let mut checks = Vec::new();
    let needed = needed_access(resolver, input, &mut checks).await;
    checks.extend(review_access(resolver, &needed).await);
    checks
}

/// Asks the server (SelfSubjectAccessReview) about every needed verb; one failed check per
/// resource and scope with every verb missing there, or one passing check.
async fn review_access(resolver: &Resolver, needed: &Needed) -> Vec<Check> {
    let mut checks = Vec::new();
    let api: Api<SelfSubjectAccessReview> = Api::all(resolver.client().clone());
    let mut denied: BTreeMap<(String, String, String, String), Vec<&str>> = BTreeMap::new();
    let mut errors = Vec::new();
    'outer: for ((group, resource, ns, name), verbs) in needed {
        for verb in verbs {
            let review = SelfSubjectAccessReview {
                spec: SelfSubjectAccessReviewSpec {
                    resource_attributes: Some(ResourceAttributes {
                        group: Some(group.clone()),
                        resource: Some(resource.clone()),
                        namespace: (!ns.is_empty()).then(|| ns.clone()),
                        name: (!name.is_empty()).then(|| name.clone()),
                        verb: Some(verb.to_string()),
                        ..Default::default()
                    }),
                    ..Default::default()
                },
                ..Default::default()
            };
            match api.create(&PostParams::default(), &review).await {
                Ok(r) if r.status.as_ref().is_some_and(|s| s.allowed) => {}
                Ok(_) => denied
                    .entry((group.clone(), resource.clone(), ns.clone(), name.clone()))
                    .or_default()
                    .push(verb),
                Err(e) => {
                    errors.push(ServerError::from(e));
                    break 'outer;
                }
            }
        }
    }
    if let Some(e) = errors.first() {
        checks.push(Check::fail(
            "permissions",
            format!("cannot ask the API server for access reviews: {e}"),
            crate::kubeconfig::api_hint(e.inner()),
        ));
    }
    for ((group, resource, ns, name), verbs) in &denied {
        let what = if group.is_empty() {
            resource.clone()
        } else {
            format!("{resource}.{group}")
        };
        let scope = match (ns.is_empty(), name.is_empty()) {
            (true, true) => "cluster-wide".to_string(),
            (true, false) => format!("named `{name}`"),
            (false, _) => format!("in namespace `{ns}`"),
        };
        let (kind, ns_flag) = if ns.is_empty() {
            ("clusterrole", String::new())
        } else {
            ("role", format!(" -n {ns}"))
        };
        let names = if name.is_empty() {
            String::new()
        } else {
            format!(" --resource-name={name}")
        };
        checks.push(Check::fail(
            format!("permission on {what}"),
            format!("forbidden to {} {what} {scope}", verbs.join("/")),
            format!(
                "ask a cluster admin to grant it, e.g. `kubectl create {kind} airlift-installer \
                 --verb={} --resource={what}{names}{ns_flag}` and bind it to your user",
                verbs.join(",")
            ),
        ));
    }
    if denied.is_empty() && errors.is_empty() {
        checks.push(Check::pass(
            "permissions",
            format!(
                "allowed on all {} resource scopes the install uses",
                needed.len()
            ),
        ));
    }
    checks
}

/// When `error` (from reading the release history, or any first request in the release
/// namespace) is a 403, the preflight failure that explains it: every permission the engine
/// needs in `namespace` that the user lacks, each with a fix. `None` for any other error.
///
/// The installer calls it before reporting a lifecycle error, so a user without rights gets
/// exit 7 with the missing permissions, not exit 5 with the server's refusal.
pub async fn forbidden_as_preflight(
    resolver: &Resolver,
    namespace: &str,
    error: &(dyn std::error::Error + 'static),
) -> Option<PreflightError> {
    let mut cur = Some(error);
    let mut forbidden = None;
    while let Some(e) = cur {
        let code = match (
            e.downcast_ref::<kube::Error>(),
            e.downcast_ref::<ServerError>(),
        ) {
            (Some(kube::Error::Api(s)), _) => Some(s.code),
            (_, Some(s)) => s.code(),
            _ => None,
        };
        if code == Some(403) {
            forbidden = Some(e.to_string());
            break;
        }
        cur = e.source();
    }
    let message = forbidden?;
    let mut needed = Needed::new();
    engine_access(resolver, namespace, &mut needed).await;
    let mut checks = review_access(resolver, &needed).await;
    if checks.iter().all(|c| c.ok) {
        checks.push(Check::fail(
            "permissions",
            crate::status::shorten(&message, 4 * crate::status::MAX_VALUE),
            "ask a cluster admin for the RBAC rules the install needs",
        ));
    }
    Some(PreflightError::Failed(PreflightReport { checks }))
}

/// Storage classes from the requirements and from PVCs / volumeClaimTemplates.
async fn check_storage_classes(client: &kube::Client, input: &PreflightInput<'_>) -> Option<Check> {
    let mut wanted: BTreeSet<String> = input.requirements.storage_classes.iter().cloned().collect();
    for o in input.objects {
        if let Some(sc) = o
            .object
            .pointer("/spec/storageClassName")
            .and_then(Value::as_str)
        {
            if o.kind() == "PersistentVolumeClaim" {
                wanted.insert(sc.to_string());
            }
        }
        for t in o
            .object
            .pointer("/spec/volumeClaimTemplates")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if let Some(sc) = t.pointer("/spec/storageClassName").and_then(Value::as_str) {
                wanted.insert(sc.to_string());
            }
        }
    }
    // Classes the bundle itself creates are fine.
    for o in input.objects {
        if o.kind() == "StorageClass" {
            if let Some(id) = o.id() {
                wanted.remove(&id.name);
            }
        }
    }
    wanted.remove("");
    if wanted.is_empty() {
        return None;
    }
    let name = "storage classes";
    let api: Api<StorageClass> = Api::all(client.clone());
    let have: BTreeSet<String> = match api.list(&ListParams::default()).await {
        Ok(l) => l
            .items
            .into_iter()
            .filter_map(|s| s.metadata.name)
            .collect(),
        Err(e) => {
            return Some(Check::fail(
                name,
                format!(
                    "cannot list storage classes: {}",
                    crate::status::describe(&e)
                ),
                crate::kubeconfig::api_hint(&e),
            ))
        }
    };
    let missing: Vec<&String> = wanted.iter().filter(|w| !have.contains(*w)).collect();
    if missing.is_empty() {
        let wanted: Vec<&str> = wanted.iter().map(String::as_str).collect();
        return Some(Check::pass(name, format!("present: {}", wanted.join(", "))));
    }
    let missing: Vec<&str> = missing.iter().map(|s| s.as_str()).collect();
    let have: Vec<&str> = have.iter().map(String::as_str).collect();
    Some(Check::fail(
        name,
        format!(
            "missing: {} (the cluster has: {})",
            missing.join(", "),
            if have.is_empty() {
                "none".to_string()
            } else {
                have.join(", ")
            }
        ),
        "create the storage class, or set the bundle's storage class configuration to one the \
         cluster has",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_versions_from_distributions_parse() {
        assert_eq!(
            parse_server_version("v1.29.4-eks-a5ec690"),
            Some(semver::Version::new(1, 29, 4))
        );
        assert_eq!(
            parse_server_version("v1.30.1+k3s1"),
            Some(semver::Version::new(1, 30, 1))
        );
        assert_eq!(parse_server_version("garbage"), None);
        let req = semver::VersionReq::parse(">=1.28.0, <1.36.0").unwrap();
        assert!(req.matches(&parse_server_version("v1.29.4-eks-a5ec690").unwrap()));
        assert!(!req.matches(&parse_server_version("v1.27.9").unwrap()));
    }
}
