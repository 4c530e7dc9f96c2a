//! Support bundles: everything a vendor needs to diagnose a release, in one archive the operator
//! can send, redacted before anything is written.
//!
//! [`collect`] reads, through the API server only: the release's records (history, site
//! inputs), the live state of every object the release owns, Pods and Events in its namespaces,
//! the last lines of every container's log (current and previous run, through `pods/log`),
//! node summaries, the cluster's version, a preflight of the deployed revision (permissions,
//! platforms, storage) and, when the operator passes the bundle, its manifest (no blobs). Every
//! Secret value found in those namespaces is learned first, then every file goes through the
//! [`redact::Redactor`]. [`SupportBundle::write`] writes the tar.gz; [`analyze`] says in one
//! line per problem what is wrong.
//!
//! Bounded: [`SupportOptions`] caps log lines and bytes per container, Events per namespace and
//! the archive's total size; what was cut is listed in `README.txt`.

mod archive;
pub mod redact;

use std::collections::BTreeSet;

use airlift_bundle::schema::common::Requirements;
use airlift_bundle::schema::manifest::BundleManifest;
use airlift_bundle::{Diagnose, ExitKind, Progress};
use airlift_cluster::apply::get_live;
use airlift_cluster::lifecycle::Engine;
use airlift_cluster::object::is_workload;
use airlift_cluster::preflight::{preflight, PreflightInput, PreflightReport};
use airlift_cluster::release::{Release, ReleaseStatus, RELEASE_SECRET_TYPE};
use airlift_cluster::{Cluster, ManagedObject, ObjectRef};
use k8s_openapi::api::core::v1::{Event, Node, Pod, Secret};
use kube::api::{ListParams, LogParams};
use kube::Api;
use serde::Serialize;
use serde_json::{json, Value};

use crate::error::DeployError;
use crate::releases::{self, StatusReport};
use redact::Redactor;

/// Limits of one support bundle.
#[derive(Debug, Clone)]
pub struct SupportOptions {
    /// The last lines of each container log.
    pub log_lines: i64,
    /// The most bytes of each container log.
    pub log_bytes: i64,
    /// The most Events per namespace (the newest are kept).
    pub events: usize,
    /// The most bytes of all files together, before compression; logs are dropped past it.
    pub max_total: usize,
}

impl Default for SupportOptions {
    fn default() -> Self {
        Self {
            log_lines: 500,
            log_bytes: 512 * 1024,
            events: 1000,
            max_total: 64 * 1024 * 1024,
        }
    }
}

/// Errors of writing a support bundle (collecting fails with [`DeployError`]).
#[derive(Debug, thiserror::Error)]
pub enum SupportError {
    /// The archive could not be written.
    #[error("cannot write the support bundle `{path}`")]
    Write {
        /// The file.
        path: std::path::PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

impl Diagnose for SupportError {
    fn exit_kind(&self) -> ExitKind {
        ExitKind::Failure
    }

    fn fix(&self) -> Option<String> {
        Some(
            "check that the folder of --out exists and is writable, and that the disk has room"
                .into(),
        )
    }
}

/// One problem [`analyze`] found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Finding {
    /// What it is about, e.g. `Deployment shop/web`.
    pub subject: String,
    /// What is wrong, e.g. `0/2 ready: ImagePullBackOff on image X`.
    pub problem: String,
}

/// A collected, redacted support bundle, in memory until written.
#[derive(Debug)]
pub struct SupportBundle {
    /// The release.
    pub release: String,
    /// The release namespace.
    pub namespace: String,
    /// The files, redacted: path inside the archive and content.
    pub files: Vec<(String, Vec<u8>)>,
    /// What [`analyze`] found.
    pub findings: Vec<Finding>,
    /// How many values were redacted.
    pub redactions: usize,
    /// What was left out or cut, and why.
    pub notes: Vec<String>,
}

/// What the operator is told after writing.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SupportSummary {
    /// The archive.
    pub path: String,
    /// Files in it.
    pub files: usize,
    /// Bytes of the archive.
    pub bytes: u64,
    /// Values redacted.
    pub redactions: usize,
    /// Problems found.
    pub findings: Vec<Finding>,
    /// What was left out or cut.
    pub notes: Vec<String>,
}

/// What the caller adds that the cluster does not know.
#[derive(Debug, Default)]
pub struct SupportContext<'a> {
    /// The Airlift binary's version facts, as JSON.
    pub airlift: Value,
    /// The bundle's manifest, when the operator passed the (verified) bundle.
    pub manifest: Option<&'a BundleManifest>,
}

/// Files being collected, with their running size.
struct Files {
    files: Vec<(String, Vec<u8>)>,
    total: usize,
    max: usize,
    notes: Vec<String>,
}

impl Files {
    /// Adds a file unless the total would pass the cap; says whether it was added.
    fn add(&mut self, path: String, data: Vec<u8>) -> bool {
        if self.total + data.len() > self.max {
            self.notes.push(format!(
                "{path} left out: the bundle reached its {} MiB limit",
                self.max >> 20
            ));
            return false;
        }
        self.total += data.len();
        self.files.push((path, data));
        true
    }

    /// Adds `value` as pretty JSON, redacted.
    fn json(&mut self, path: &str, mut value: Value, redactor: &mut Redactor) {
        redactor.value(&mut value);
        let text = serde_json::to_vec_pretty(&value).unwrap_or_default();
        self.add(path.to_string(), text);
    }
}

/// A JSON value of anything serializable (`null` if it cannot be).
fn to_json<T: Serialize>(value: &T) -> Value {
    serde_json::to_value(value).unwrap_or(Value::Null)
}

/// Makes a name safe as one path segment.
fn segment(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Collects the support bundle of `release` in `namespace`. Fails only when the release cannot
/// be read at all; anything else that cannot be read is noted in the bundle.
pub async fn collect(
    cluster: &Cluster,
    progress: &dyn Progress,
    namespace: &str,
    release: &str,
    context: &SupportContext<'_>,
    options: &SupportOptions,
) -> Result<SupportBundle, DeployError> {
    let status = releases::status(cluster, progress, namespace, release).await?;
    let engine = Engine::new(cluster, progress);
    let history = engine.existing(namespace, release).await?;
    let current = history
        .iter()
        .rev()
        .find(|r| r.status == ReleaseStatus::Deployed)
        .or(history.last())
        .cloned();
    let client = cluster.client().clone();
    let mut notes = Vec::new();

    // The namespaces the release lives in.
    let mut namespaces: BTreeSet<String> = BTreeSet::from([namespace.to_string()]);
    for r in current.iter() {
        namespaces.extend(r.inventory.iter().filter_map(|o| o.namespace.clone()));
    }

    // Learn every secret value first: nothing is written before the redactor knows them.
    let mut redactor = Redactor::new();
    for ns in &namespaces {
        let api: Api<Secret> = Api::namespaced(client.clone(), ns);
        match api.list(&ListParams::default()).await {
            Ok(list) => {
                for s in list.items {
                    if s.type_.as_deref() == Some(RELEASE_SECRET_TYPE) {
                        continue;
                    }
                    redactor.learn_secret(&to_json(&s));
                }
            }
            Err(e) => notes.push(format!(
                "cannot list Secrets in namespace {ns} ({}): only patterns were redacted there",
                airlift_cluster::status::describe(&e)
            )),
        }
    }

    let mut files = Files {
        files: Vec::new(),
        total: 0,
        max: options.max_total,
        notes: Vec::new(),
    };

    // Versions.
    let server = client
        .apiserver_version()
        .await
        .map(|v| to_json(&v))
        .unwrap_or_else(|e| json!({"error": airlift_cluster::status::describe(&e)}));
    files.json(
        "versions.json",
        json!({
            "airlift": context.airlift,
            "kubernetes": server,
            "collected": airlift_cluster::release::now(),
            "limits": {
                "logLines": options.log_lines,
                "logBytes": options.log_bytes,
                "events": options.events,
                "maxTotalBytes": options.max_total,
            },
        }),
        &mut redactor,
    );

    // Records and live status.
    files.json("release/status.json", to_json(&status), &mut redactor);
    files.json("release/history.json", to_json(&history), &mut redactor);
    if let Some(m) = context.manifest {
        // The manifest only: blob digests and sizes, never their contents.
        files.json("bundle/manifest.json", to_json(m), &mut redactor);
    } else {
        notes.push("bundle manifest not included: pass --bundle FILE to add it".into());
    }

    let resolver = engine.resolver();
    let mut findings = Vec::new();
    if let Some(r) = &current {
        for stored in &r.objects {
            let Some(id) = stored.object.id() else {
                continue;
            };
            let path = object_path(&id);
            match get_live(resolver, &id).await {
                Ok(Some(mut live)) => {
                    if is_workload(&id.group, &id.kind) {
                        findings.extend(workload_findings(resolver, &id, &live, &status).await);
                    }
                    redactor.object(&mut live);
                    files.json(&path, live, &mut redactor);
                }
                Ok(None) => {
                    findings.push(Finding {
                        subject: id.to_string(),
                        problem: "missing: the release applied it, the cluster no longer has it"
                            .into(),
                    });
                }
                Err(e) => notes.push(format!("cannot read {id}: {e}")),
            }
        }
    }

    // Preflight of the current revision: versions, platforms, permissions, storage.
    if let Some(r) = &current {
        let report = run_preflight(cluster, r, context.manifest, namespace).await;
        for c in report.failures() {
            findings.push(Finding {
                subject: format!("preflight {}", c.name),
                problem: c.detail.clone(),
            });
        }
        files.json("cluster/preflight.json", to_json(&report), &mut redactor);
    }

    // Nodes.
    let nodes: Api<Node> = Api::all(client.clone());
    match nodes.list(&ListParams::default()).await {
        Ok(list) => {
            let summaries: Vec<Value> = list.items.iter().map(node_summary).collect();
            files.json("cluster/nodes.json", Value::Array(summaries), &mut redactor);
        }
        Err(e) => notes.push(format!(
            "cannot list nodes ({}): node summaries not included",
            airlift_cluster::status::describe(&e)
        )),
    }

    // Events, Pods and logs, per namespace.
    for ns in &namespaces {
        let events: Api<Event> = Api::namespaced(client.clone(), ns);
        match events.list(&ListParams::default()).await {
            Ok(list) => {
                let mut items = list.items;
                items.sort_by_key(|e| e.metadata.resource_version.clone());
                if items.len() > options.events {
                    notes.push(format!(
                        "events/{ns}.json: the newest {} of {} Events",
                        options.events,
                        items.len()
                    ));
                    items.drain(..items.len() - options.events);
                }
                let warnings = items
                    .iter()
                    .filter(|e| e.type_.as_deref() == Some("Warning"))
                    .count();
                if warnings > 0 {
                    findings.push(Finding {
                        subject: format!("namespace {ns}"),
                        problem: format!(
                            "{warnings} Warning event{} (see events/{}.json)",
                            if warnings == 1 { "" } else { "s" },
                            segment(ns)
                        ),
                    });
                }
                let items: Vec<Value> = items.iter().map(to_json).collect();
                files.json(
                    &format!("events/{}.json", segment(ns)),
                    Value::Array(items),
                    &mut redactor,
                );
            }
            Err(e) => notes.push(format!(
                "cannot list Events in {ns}: {}",
                airlift_cluster::status::describe(&e)
            )),
        }
        let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
        let list = match pods.list(&ListParams::default()).await {
            Ok(list) => list.items,
            Err(e) => {
                notes.push(format!(
                    "cannot list Pods in {ns}: {}",
                    airlift_cluster::status::describe(&e)
                ));
                continue;
            }
        };
        let mut pod_values: Vec<Value> = list.iter().map(to_json).collect();
        for p in &mut pod_values {
            redactor.object(p);
        }
        files.json(
            &format!("pods/{}.json", segment(ns)),
            Value::Array(pod_values),
            &mut redactor,
        );
        for pod in &list {
            collect_logs(&pods, ns, pod, options, &mut redactor, &mut files).await;
        }
    }

    let readme = readme(release, namespace, &findings, &notes, &files.notes);
    let mut text = redactor.text(&readme).into_bytes();
    text.extend(b"\n");
    files.files.insert(0, ("README.txt".into(), text));
    notes.extend(files.notes);
    Ok(SupportBundle {
        release: release.to_string(),
        namespace: namespace.to_string(),
        files: files.files,
        findings,
        redactions: redactor.count(),
        notes,
    })
}

/// `objects/KIND[.GROUP]/NAMESPACE/NAME.json` (`_cluster` for cluster-scoped objects).
fn object_path(id: &ObjectRef) -> String {
    let kind = if id.group.is_empty() {
        id.kind.clone()
    } else {
        format!("{}.{}", id.kind, id.group)
    };
    format!(
        "objects/{}/{}/{}.json",
        segment(&kind),
        segment(id.namespace.as_deref().unwrap_or("_cluster")),
        segment(&id.name)
    )
}

/// A not-ready workload as one finding: `0/2 ready: ImagePullBackOff on image X (container web)`.
async fn workload_findings(
    resolver: &airlift_cluster::resolve::Resolver,
    id: &ObjectRef,
    live: &Value,
    status: &StatusReport,
) -> Vec<Finding> {
    let Some(w) = status.workloads.iter().find(|w| w.object.same_object(id)) else {
        return Vec::new();
    };
    if w.ready >= w.desired {
        return Vec::new();
    }
    let reasons = airlift_cluster::readiness::diagnose(resolver, id, live).await;
    let why = if reasons.is_empty() {
        w.condition.clone()
    } else {
        reasons.join("; ")
    };
    vec![Finding {
        subject: id.to_string(),
        problem: format!("{}/{} ready: {why}", w.ready, w.desired),
    }]
}

/// Preflight against the current revision's objects, with the bundle's requirements when
/// known (else any version and no platform demand: permissions and storage still count).
async fn run_preflight(
    cluster: &Cluster,
    revision: &Release,
    manifest: Option<&BundleManifest>,
    namespace: &str,
) -> PreflightReport {
    let open = Requirements {
        kubernetes: "*".into(),
        platforms: Vec::new(),
        storage_classes: Vec::new(),
        crds: Vec::new(),
    };
    let requirements = manifest.map(|m| &m.requirements).unwrap_or(&open);
    let objects: Vec<ManagedObject> = revision.objects.iter().map(|s| s.object.clone()).collect();
    let resolver = airlift_cluster::resolve::Resolver::new(cluster.client().clone());
    let input = PreflightInput {
        requirements,
        objects: &objects,
        namespace,
    };
    let mut report = match preflight(&resolver, &input).await {
        Ok(report) => report,
        Err(airlift_cluster::preflight::PreflightError::Failed(report)) => report,
    };
    if manifest.is_none() {
        // Without the bundle nothing says which platforms its images cover: the nodes'
        // platforms are in cluster/nodes.json.
        report.checks.retain(|c| c.name != "node platforms");
    }
    report
}

/// What matters of a Node: name, platform, versions, capacity, conditions, taints.
fn node_summary(node: &Node) -> Value {
    let status = node.status.as_ref();
    let info = status.and_then(|s| s.node_info.as_ref());
    json!({
        "name": node.metadata.name,
        "platform": info.map(|i| format!("{}/{}", i.operating_system, i.architecture)),
        "kubelet": info.map(|i| i.kubelet_version.clone()),
        "containerRuntime": info.map(|i| i.container_runtime_version.clone()),
        "osImage": info.map(|i| i.os_image.clone()),
        "capacity": status.and_then(|s| s.capacity.as_ref()).map(to_json),
        "allocatable": status.and_then(|s| s.allocatable.as_ref()).map(to_json),
        "conditions": status.and_then(|s| s.conditions.as_ref()).map(|c| c.iter().map(|c| json!({
            "type": c.type_, "status": c.status, "reason": c.reason, "message": c.message,
        })).collect::<Vec<_>>()),
        "taints": node.spec.as_ref().and_then(|s| s.taints.as_ref()).map(to_json),
        "unschedulable": node.spec.as_ref().and_then(|s| s.unschedulable),
    })
}

/// The current and (after a restart) previous log of every container of `pod`.
async fn collect_logs(
    pods: &Api<Pod>,
    ns: &str,
    pod: &Pod,
    options: &SupportOptions,
    redactor: &mut Redactor,
    files: &mut Files,
) {
    let name = pod.metadata.name.clone().unwrap_or_default();
    let spec = pod.spec.as_ref();
    let containers = spec
        .into_iter()
        .flat_map(|s| {
            s.init_containers
                .iter()
                .flatten()
                .chain(s.containers.iter())
        })
        .map(|c| c.name.clone());
    let status = pod.status.as_ref();
    for container in containers {
        let restarts = status
            .into_iter()
            .flat_map(|s| {
                s.container_statuses
                    .iter()
                    .flatten()
                    .chain(s.init_container_statuses.iter().flatten())
            })
            .find(|s| s.name == container)
            .map(|s| s.restart_count)
            .unwrap_or(0);
        for previous in [false, true] {
            if previous && restarts == 0 {
                continue;
            }
            let params = LogParams {
                container: Some(container.clone()),
                tail_lines: Some(options.log_lines),
                limit_bytes: Some(options.log_bytes),
                previous,
                timestamps: true,
                ..LogParams::default()
            };
            let text = match pods.logs(&name, &params).await {
                Ok(text) => text,
                Err(e) => format!("(no log: {})\n", airlift_cluster::status::describe(&e)),
            };
            let path = format!(
                "logs/{}/{}/{}{}.log",
                segment(ns),
                segment(&name),
                segment(&container),
                if previous { ".previous" } else { "" }
            );
            let clean = redactor.text(&text);
            if !files.add(path, clean.into_bytes()) {
                return;
            }
        }
    }
}

/// The archive's README: what it holds, what was found, what was cut.
fn readme(
    release: &str,
    namespace: &str,
    findings: &[Finding],
    notes: &[String],
    cut: &[String],
) -> String {
    let mut out = format!(
        "Airlift support bundle for release {release} in namespace {namespace}\n\
         Every Secret value, configuration secret, generated secret and registry credential,\n\
         and anything that looks like a key, token or password, was replaced by [REDACTED].\n\n\
         versions.json            Airlift and Kubernetes versions, limits used\n\
         release/status.json      the release as the cluster runs it now\n\
         release/history.json     every revision's record (secrets as fingerprints)\n\
         bundle/manifest.json     the bundle's manifest, when --bundle was given\n\
         objects/                 the live state of every object the release owns\n\
         cluster/                 node summaries and a preflight of the deployed revision\n\
         events/ pods/            Events and Pods of the release's namespaces\n\
         logs/                    the last lines of every container (current, .previous)\n\n"
    );
    out.push_str("Analysis:\n");
    if findings.is_empty() {
        out.push_str("  no problem found\n");
    }
    for line in lines(findings) {
        out.push_str(&format!("  {line}\n"));
    }
    if !notes.is_empty() || !cut.is_empty() {
        out.push_str("\nNot included or cut:\n");
        for n in notes.iter().chain(cut) {
            out.push_str(&format!("  {n}\n"));
        }
    }
    out
}

/// The findings, for printing: one line each, `SUBJECT: PROBLEM`.
pub fn analyze(bundle: &SupportBundle) -> Vec<String> {
    lines(&bundle.findings)
}

fn lines(findings: &[Finding]) -> Vec<String> {
    findings
        .iter()
        .map(|f| format!("{}: {}", f.subject, f.problem))
        .collect()
}

impl SupportBundle {
    /// Writes the archive to `path` (through a temporary file beside it, renamed at the end)
    /// and says what it holds.
    pub fn write(&self, path: &std::path::Path) -> Result<SupportSummary, SupportError> {
        let bytes = archive::write(self, path)?;
        Ok(SupportSummary {
            path: path.display().to_string(),
            files: self.files.len(),
            bytes,
            redactions: self.redactions,
            findings: self.findings.clone(),
            notes: self.notes.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_past_the_cap_are_left_out_and_noted() {
        let mut files = Files {
            files: Vec::new(),
            total: 0,
            max: 10,
            notes: Vec::new(),
        };
        assert!(files.add("a.log".into(), vec![b'x'; 6]));
        assert!(!files.add("b.log".into(), vec![b'x'; 6]));
        assert!(files.add("c.log".into(), vec![b'x'; 4]));
        assert_eq!(files.total, 10);
        assert_eq!(files.files.len(), 2);
        assert_eq!(files.notes.len(), 1);
        assert!(
            files.notes[0].starts_with("b.log left out"),
            "{:?}",
            files.notes
        );
    }

    #[test]
    fn object_paths_are_one_safe_segment_each() {
        let id = ObjectRef {
            group: "apps".into(),
            version: "v1".into(),
            kind: "Deployment".into(),
            namespace: Some("shop".into()),
            name: "../../etc/passwd".into(),
        };
        assert_eq!(
            object_path(&id),
            "objects/Deployment.apps/shop/.._.._etc_passwd.json"
        );
    }
}
