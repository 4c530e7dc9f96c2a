//! Waiting for workloads: Deployments, StatefulSets, DaemonSets and Jobs, with a timeout. When
//! one is not ready in time the error names it and the reason, read from its Pods (waiting
//! reasons such as ImagePullBackOff on image X, CrashLoopBackOff, the PodScheduled condition)
//! and from Warning Events.
//!
//! The wait ends early, without waiting for the timeout, when a Pod of a workload cannot start:
//! an image that cannot be pulled (ImagePullBackOff, ErrImagePull, InvalidImageName,
//! ErrImageNeverPull) or a container in CrashLoopBackOff that has restarted
//! [`WaitOptions::crash_restarts`] times. When everything is ready it deletes what replaced
//! workloads left running ([`crate::replace::cleanup_orphans`]).

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use airlift_bundle::{Diagnose, ExitKind, Progress};
use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::{Event, Pod};
use kube::api::{Api, ListParams};
use serde_json::Value;

use crate::apply::{get_live, ApplyError};
use crate::object::{is_workload, ObjectRef};
use crate::resolve::Resolver;

/// The first readiness look after applying comes this soon.
const FIRST_POLL: Duration = Duration::from_millis(250);

/// How long to wait and how often to look.
#[derive(Debug, Clone, Copy)]
pub struct WaitOptions {
    /// Give up after this long.
    pub timeout: Duration,
    /// Look at most this far apart. The first looks come sooner (after 250 ms, then twice as
    /// long each time up to `poll`), so workloads that are ready at once are not waited for.
    pub poll: Duration,
    /// Give up at once when a container in CrashLoopBackOff has restarted this many times.
    pub crash_restarts: i32,
}

impl Default for WaitOptions {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(300),
            poll: Duration::from_secs(2),
            crash_restarts: 3,
        }
    }
}

/// One workload that did not become ready, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotReady {
    /// The workload.
    pub object: ObjectRef,
    /// Its rollout state, e.g. `1/3 replicas available`.
    pub state: String,
    /// Reasons read from its Pods and Events, e.g. `ImagePullBackOff on image X`.
    pub reasons: Vec<String>,
}

impl fmt::Display for NotReady {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.object, self.state)?;
        if !self.reasons.is_empty() {
            write!(f, ": {}", self.reasons.join("; "))?;
        }
        Ok(())
    }
}

/// Errors from waiting for readiness.
#[derive(Debug, thiserror::Error)]
pub enum ReadinessError {
    /// Workloads were not ready in time, or failed for good (a failed Job, a Pod whose image
    /// cannot be pulled or that keeps crashing: then `early` is true).
    #[error("{} {} after {waited:.0?}: {}", plural(.not_ready.len()),
        if *.early { "failing" } else { "not ready" }, join(.not_ready))]
    NotReady {
        /// How long we waited.
        waited: Duration,
        /// The workloads and why.
        not_ready: Vec<NotReady>,
        /// Whether the wait ended before the timeout because something failed for good.
        early: bool,
    },
    /// Reading a workload failed.
    #[error("failed to read workload status")]
    Read(#[source] ApplyError),
    /// Everything is ready, but deleting what replaced workloads left running failed.
    #[error(
        "the workloads are ready, but deleting the pods of the workloads they replaced failed"
    )]
    Cleanup(#[source] ApplyError),
}

impl Diagnose for ReadinessError {
    fn exit_kind(&self) -> ExitKind {
        ExitKind::Cluster
    }

    fn fix(&self) -> Option<String> {
        Some(self.hint())
    }
}

fn plural(n: usize) -> String {
    if n == 1 {
        "1 workload".into()
    } else {
        format!("{n} workloads")
    }
}

fn join(items: &[NotReady]) -> String {
    items
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(" | ")
}

impl ReadinessError {
    /// How the operator can fix it.
    pub fn hint(&self) -> String {
        match self {
            Self::NotReady { not_ready, .. } => {
                let all: String = not_ready
                    .iter()
                    .flat_map(|n| n.reasons.iter())
                    .cloned()
                    .collect();
                if all.contains("ImagePull") || all.contains("ErrImage") {
                    "an image could not be pulled: check that `airlift-install push` ran against \
                     the registry the cluster pulls from and that the pull secret is valid"
                        .into()
                } else if all.contains("Unschedulable") || all.contains("FailedScheduling") {
                    "pods cannot be scheduled: check node capacity, taints and the requested \
                     storage class (`kubectl describe pod`)"
                        .into()
                } else if all.contains("CrashLoopBackOff") {
                    "a container keeps crashing: read its logs (`kubectl logs --previous POD`) and \
                     check the configuration values"
                        .into()
                } else {
                    "inspect the workload (`kubectl describe`), or wait longer with --timeout"
                        .into()
                }
            }
            Self::Read(e) | Self::Cleanup(e) => e.hint(),
        }
    }
}

/// The state of one workload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum State {
    /// Ready (or, for a Job, complete).
    Ready,
    /// Still progressing, with a short description.
    Progressing(String),
    /// Failed for good, e.g. a Job with a `Failed` condition.
    Failed(String),
}

fn int(v: &Value, ptr: &str) -> Option<i64> {
    v.pointer(ptr).and_then(Value::as_i64)
}

fn condition<'a>(v: &'a Value, kind: &str) -> Option<&'a Value> {
    v.pointer("/status/conditions")
        .and_then(Value::as_array)?
        .iter()
        .find(|c| c.get("type").and_then(Value::as_str) == Some(kind))
}

fn condition_true(v: &Value, kind: &str) -> bool {
    condition(v, kind)
        .and_then(|c| c.get("status"))
        .and_then(Value::as_str)
        == Some("True")
}

/// Evaluates a workload's live object, the way `kubectl rollout status` does.
pub fn evaluate(kind: &str, live: &Value) -> State {
    let generation = int(live, "/metadata/generation").unwrap_or(0);
    let observed = int(live, "/status/observedGeneration").unwrap_or(0);
    if kind != "Job" && observed < generation {
        return State::Progressing("waiting for the controller to observe the change".into());
    }
    match kind {
        "Deployment" => {
            if let Some(c) = condition(live, "Progressing") {
                if c.get("reason").and_then(Value::as_str) == Some("ProgressDeadlineExceeded") {
                    return State::Failed("progress deadline exceeded".into());
                }
            }
            let want = int(live, "/spec/replicas").unwrap_or(1);
            let updated = int(live, "/status/updatedReplicas").unwrap_or(0);
            let available = int(live, "/status/availableReplicas").unwrap_or(0);
            let total = int(live, "/status/replicas").unwrap_or(updated);
            if updated >= want && available >= want && total <= updated {
                State::Ready
            } else {
                let mut text = format!("{updated}/{want} replicas updated, {available} available");
                if total > updated {
                    text.push_str(&format!(
                        ", {} old replica(s) still running",
                        total - updated
                    ));
                }
                State::Progressing(text)
            }
        }
        "StatefulSet" => {
            let want = int(live, "/spec/replicas").unwrap_or(1);
            let ready = int(live, "/status/readyReplicas").unwrap_or(0);
            let updated = int(live, "/status/updatedReplicas").unwrap_or(ready);
            if ready >= want && updated >= want {
                State::Ready
            } else {
                State::Progressing(format!("{ready}/{want} replicas ready, {updated} updated"))
            }
        }
        "DaemonSet" => {
            let want = int(live, "/status/desiredNumberScheduled").unwrap_or(0);
            let updated = int(live, "/status/updatedNumberScheduled").unwrap_or(0);
            let available = int(live, "/status/numberAvailable").unwrap_or(0);
            if updated >= want && available >= want {
                State::Ready
            } else {
                State::Progressing(format!(
                    "{available}/{want} pods available, {updated} updated"
                ))
            }
        }
        "Job" => {
            if condition_true(live, "Complete") {
                State::Ready
            } else if condition_true(live, "Failed") {
                let msg = condition(live, "Failed")
                    .and_then(|c| c.get("message").or_else(|| c.get("reason")))
                    .and_then(Value::as_str)
                    .unwrap_or("failed");
                State::Failed(format!("job failed: {msg}"))
            } else {
                let ok = int(live, "/status/succeeded").unwrap_or(0);
                State::Progressing(format!("{ok} pods succeeded"))
            }
        }
        _ => State::Ready,
    }
}

/// Waits until every workload among `ids` is ready (other kinds are ignored), then deletes what
/// replaced workloads left running. Ends early when a Pod cannot start (see the module docs).
pub async fn wait_ready(
    resolver: &Resolver,
    ids: &[ObjectRef],
    options: WaitOptions,
    progress: &dyn Progress,
) -> Result<(), ReadinessError> {
    let mut pending: Vec<ObjectRef> = ids
        .iter()
        .filter(|id| is_workload(&id.group, &id.kind))
        .cloned()
        .collect();
    progress.message(&format!("waiting for {} workload(s)", pending.len()));
    let start = tokio::time::Instant::now();
    let mut delay = options.poll.min(FIRST_POLL);
    let mut states: BTreeMap<ObjectRef, (State, Value)> = BTreeMap::new();
    loop {
        let mut still = Vec::new();
        let mut failed = false;
        let mut pods_by_ns: BTreeMap<String, Vec<Pod>> = BTreeMap::new();
        for id in pending {
            let live = get_live(resolver, &id)
                .await
                .map_err(ReadinessError::Read)?;
            let (mut state, live) = match live {
                Some(live) => (evaluate(&id.kind, &live), live),
                None => (
                    State::Failed("the object does not exist".into()),
                    Value::Null,
                ),
            };
            if let (State::Progressing(_), Some(ns)) = (&state, id.namespace.as_deref()) {
                if !pods_by_ns.contains_key(ns) {
                    let pods = list_pods(resolver, ns).await;
                    pods_by_ns.insert(ns.to_string(), pods);
                }
                let pods = pods_by_ns.get(ns).map(Vec::as_slice).unwrap_or_default();
                let failing: Vec<&Pod> = pods_of(pods, &id, &live)
                    .into_iter()
                    .filter(|p| cannot_start(p, options.crash_restarts).is_some())
                    .collect();
                // Only Pods of the current template count: a rollback's wait must not end on
                // the failed version's Pods that are about to go away.
                if let Some(why) = current(resolver, &id, &live, failing)
                    .await
                    .into_iter()
                    .find_map(|p| cannot_start(p, options.crash_restarts))
                {
                    state = State::Failed(why);
                }
            }
            match &state {
                State::Ready => {
                    progress.message(&format!("{id} is ready"));
                }
                State::Progressing(_) => still.push(id.clone()),
                State::Failed(_) => {
                    failed = true;
                    still.push(id.clone());
                }
            }
            states.insert(id, (state, live));
        }
        pending = still;
        if pending.is_empty() {
            let gone = crate::replace::cleanup_orphans(resolver, ids)
                .await
                .map_err(ReadinessError::Cleanup)?;
            for g in gone {
                progress.message(&format!(
                    "deleted {g}, left running by the object it replaced"
                ));
            }
            return Ok(());
        }
        if failed || start.elapsed() >= options.timeout {
            let mut not_ready = Vec::new();
            for id in &pending {
                let Some((state, live)) = states.get(id) else {
                    continue;
                };
                let state_text = match state {
                    State::Progressing(s) | State::Failed(s) => s.clone(),
                    State::Ready => "ready".into(),
                };
                let reasons = diagnose(resolver, id, live).await;
                not_ready.push(NotReady {
                    object: id.clone(),
                    state: state_text,
                    reasons,
                });
            }
            return Err(ReadinessError::NotReady {
                waited: start.elapsed(),
                not_ready,
                early: failed,
            });
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(options.poll);
    }
}

/// Why a Pod cannot start without someone fixing something: an image that cannot be pulled, or
/// a container in CrashLoopBackOff that restarted at least `crash_restarts` times.
pub fn cannot_start(pod: &Pod, crash_restarts: i32) -> Option<String> {
    let status = pod.status.as_ref()?;
    let name = pod.metadata.name.clone().unwrap_or_default();
    status
        .init_container_statuses
        .iter()
        .flatten()
        .chain(status.container_statuses.iter().flatten())
        .find_map(|cs| {
            let reason = cs.state.as_ref()?.waiting.as_ref()?.reason.clone()?;
            match reason.as_str() {
                "ImagePullBackOff" | "ErrImagePull" | "InvalidImageName" | "ErrImageNeverPull" => {
                    Some(format!(
                        "pod {name} cannot pull image {} ({reason})",
                        cs.image
                    ))
                }
                "CrashLoopBackOff" if cs.restart_count >= crash_restarts => Some(format!(
                    "container {} of pod {name} keeps crashing ({} restarts)",
                    cs.name, cs.restart_count
                )),
                _ => None,
            }
        })
}

/// The Pods among `pods` that run the workload's current template: for a Deployment those of
/// its newest ReplicaSet, for a StatefulSet those of its update revision, for a Job all, else
/// (or when those cannot be read) those whose containers run the template's images.
async fn current<'a>(
    resolver: &Resolver,
    id: &ObjectRef,
    live: &Value,
    pods: Vec<&'a Pod>,
) -> Vec<&'a Pod> {
    if pods.is_empty() || id.kind == "Job" {
        return pods;
    }
    let label_is = |pods: Vec<&'a Pod>, key: &str, value: &str| -> Vec<&'a Pod> {
        pods.into_iter()
            .filter(|p| {
                p.metadata
                    .labels
                    .as_ref()
                    .and_then(|l| l.get(key))
                    .is_some_and(|v| v == value)
            })
            .collect()
    };
    match id.kind.as_str() {
        "Deployment" => {
            if let Some(hash) = newest_template_hash(resolver, id, live).await {
                return label_is(pods, "pod-template-hash", &hash);
            }
        }
        "StatefulSet" => {
            if let Some(rev) = live
                .pointer("/status/updateRevision")
                .and_then(Value::as_str)
            {
                return label_is(pods, "controller-revision-hash", rev);
            }
        }
        _ => {}
    }
    let images = |containers: Option<&Value>| -> BTreeMap<String, String> {
        containers
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|c| {
                Some((
                    c.get("name")?.as_str()?.to_string(),
                    c.get("image")?.as_str()?.to_string(),
                ))
            })
            .collect()
    };
    let want = images(live.pointer("/spec/template/spec/containers"));
    pods.into_iter()
        .filter(|p| {
            let have: BTreeMap<String, String> = p
                .spec
                .iter()
                .flat_map(|s| s.containers.iter())
                .filter_map(|c| Some((c.name.clone(), c.image.clone()?)))
                .collect();
            have == want
        })
        .collect()
}

/// The `pod-template-hash` of a Deployment's ReplicaSet for its current revision.
async fn newest_template_hash(resolver: &Resolver, id: &ObjectRef, live: &Value) -> Option<String> {
    let ns = id.namespace.as_deref()?;
    let uid = live.pointer("/metadata/uid")?.as_str()?;
    let revision = live
        .pointer("/metadata/annotations/deployment.kubernetes.io~1revision")?
        .as_str()?;
    let api: Api<ReplicaSet> = Api::namespaced(resolver.client().clone(), ns);
    let list = api.list(&ListParams::default()).await.ok()?;
    list.items.into_iter().find_map(|rs| {
        let owned = rs
            .metadata
            .owner_references
            .iter()
            .flatten()
            .any(|o| o.uid == uid);
        let same = rs
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get("deployment.kubernetes.io/revision"))
            .is_some_and(|r| r == revision);
        if owned && same {
            rs.metadata.labels?.get("pod-template-hash").cloned()
        } else {
            None
        }
    })
}

/// Every Pod in `ns`; a read error yields none (the caller only looks for failures).
async fn list_pods(resolver: &Resolver, ns: &str) -> Vec<Pod> {
    let api: Api<Pod> = Api::namespaced(resolver.client().clone(), ns);
    api.list(&ListParams::default())
        .await
        .map(|l| l.items)
        .unwrap_or_default()
}

/// The label selector of a workload (a Job without one selects `job-name`).
fn selector_of(id: &ObjectRef, live: &Value) -> BTreeMap<String, String> {
    live.pointer("/spec/selector/matchLabels")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                .collect()
        })
        .unwrap_or_else(|| {
            if id.kind == "Job" {
                BTreeMap::from([("job-name".to_string(), id.name.clone())])
            } else {
                BTreeMap::new()
            }
        })
}

/// The Pods among `pods` that the workload selects.
fn pods_of<'a>(pods: &'a [Pod], id: &ObjectRef, live: &Value) -> Vec<&'a Pod> {
    let selector = selector_of(id, live);
    if selector.is_empty() {
        return Vec::new();
    }
    pods.iter()
        .filter(|p| {
            let labels = p.metadata.labels.as_ref();
            selector
                .iter()
                .all(|(k, v)| labels.and_then(|l| l.get(k)) == Some(v))
        })
        .collect()
}

/// Reasons a workload is not ready, from its Pods and from Warning Events about it or its Pods.
/// Best effort: read errors yield fewer reasons, never a failure.
pub async fn diagnose(resolver: &Resolver, id: &ObjectRef, live: &Value) -> Vec<String> {
    let Some(ns) = id.namespace.as_deref() else {
        return Vec::new();
    };
    let client = resolver.client().clone();
    let all = list_pods(resolver, ns).await;
    let pods: Vec<&Pod> = pods_of(&all, id, live);
    let mut reasons = Vec::new();
    for pod in &pods {
        for r in pod_reasons(pod) {
            if !reasons.contains(&r) {
                reasons.push(r);
            }
        }
    }
    let mut names: Vec<String> = pods
        .iter()
        .filter_map(|p| p.metadata.name.clone())
        .collect();
    names.push(id.name.clone());
    let events: Api<Event> = Api::namespaced(client, ns);
    if let Ok(list) = events.list(&ListParams::default()).await {
        let mut items = list.items;
        items.sort_by_key(|e| e.metadata.resource_version.clone());
        for e in items.iter().rev() {
            let about = e.involved_object.name.clone().unwrap_or_default();
            if e.type_.as_deref() != Some("Warning") || !names.contains(&about) {
                continue;
            }
            let r = format!(
                "event {}: {}",
                e.reason.clone().unwrap_or_default(),
                e.message.clone().unwrap_or_default()
            );
            if !reasons.contains(&r) && reasons.len() < 8 {
                reasons.push(r);
            }
        }
    }
    if pods.is_empty() && reasons.is_empty() {
        reasons.push("no pods were created".into());
    }
    reasons
}

/// Reasons one Pod is not running: container waiting reasons and an unschedulable condition.
pub fn pod_reasons(pod: &Pod) -> Vec<String> {
    let mut out = Vec::new();
    let Some(status) = &pod.status else {
        return out;
    };
    let pod_name = pod.metadata.name.clone().unwrap_or_default();
    for c in status.conditions.iter().flatten() {
        if c.type_ == "PodScheduled" && c.status == "False" {
            out.push(format!(
                "pod {pod_name} {}: {}",
                c.reason.clone().unwrap_or_else(|| "Unschedulable".into()),
                c.message.clone().unwrap_or_default()
            ));
        }
    }
    let containers = status
        .init_container_statuses
        .iter()
        .flatten()
        .chain(status.container_statuses.iter().flatten());
    for cs in containers {
        let Some(waiting) = cs.state.as_ref().and_then(|s| s.waiting.as_ref()) else {
            continue;
        };
        let reason = waiting.reason.clone().unwrap_or_default();
        let message = waiting.message.clone().unwrap_or_default();
        let text = match reason.as_str() {
            "ImagePullBackOff" | "ErrImagePull" | "InvalidImageName" | "ErrImageNeverPull" => {
                format!("{reason} on image {} (container {})", cs.image, cs.name)
            }
            "CrashLoopBackOff" => {
                let code = cs
                    .last_state
                    .as_ref()
                    .and_then(|s| s.terminated.as_ref())
                    .map(|t| format!(", last exit code {}", t.exit_code))
                    .unwrap_or_default();
                format!(
                    "CrashLoopBackOff in container {} of pod {pod_name}{code}",
                    cs.name
                )
            }
            "ContainerCreating" | "PodInitializing" | "" => continue,
            other => format!(
                "{other} in container {} of pod {pod_name}: {message}",
                cs.name
            ),
        };
        if !out.contains(&text) {
            out.push(text);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn deployment_states() {
        let d = json!({"metadata": {"generation": 2}, "spec": {"replicas": 2},
            "status": {"observedGeneration": 1}});
        assert!(matches!(evaluate("Deployment", &d), State::Progressing(_)));
        let d = json!({"metadata": {"generation": 2}, "spec": {"replicas": 2},
            "status": {"observedGeneration": 2, "replicas": 2, "updatedReplicas": 2,
                       "availableReplicas": 2}});
        assert_eq!(evaluate("Deployment", &d), State::Ready);
        let d = json!({"metadata": {"generation": 2}, "spec": {"replicas": 2},
            "status": {"observedGeneration": 2, "replicas": 3, "updatedReplicas": 2,
                       "availableReplicas": 2}});
        assert!(matches!(evaluate("Deployment", &d), State::Progressing(_)));
    }

    #[test]
    fn failed_job_fails_fast() {
        let j = json!({"status": {"conditions": [
            {"type": "Failed", "status": "True", "message": "BackoffLimitExceeded"}]}});
        assert_eq!(
            evaluate("Job", &j),
            State::Failed("job failed: BackoffLimitExceeded".into())
        );
    }

    #[test]
    fn pod_reasons_name_the_image_and_scheduling() {
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": "web-1"},
            "status": {
                "conditions": [{"type": "PodScheduled", "status": "False",
                                "reason": "Unschedulable", "message": "0/3 nodes available"}],
                "containerStatuses": [{
                    "name": "web", "image": "reg.local/web@sha256:abc", "imageID": "",
                    "ready": false, "restartCount": 0,
                    "state": {"waiting": {"reason": "ImagePullBackOff", "message": "not found"}}
                }]
            }
        }))
        .unwrap();
        let r = pod_reasons(&pod);
        assert_eq!(r.len(), 2, "{r:?}");
        assert!(r[0].contains("Unschedulable: 0/3 nodes available"), "{r:?}");
        assert!(
            r[1].contains("ImagePullBackOff on image reg.local/web@sha256:abc"),
            "{r:?}"
        );
    }
}
