//! What the scheduler and kubelets do to Pods: pick a node, then report the Pod ready after the
//! ready delay — or failing (ImagePullBackOff, CrashLoopBackOff, Unschedulable) with Events.

use std::time::Instant;

use serde_json::{json, Value};

use super::controller::{self, set_status};
use super::meta;
use super::puller::{self, Outcome};
use super::state::{FailTarget, State};
use super::store::LabelSelector;
use super::FailureMode;

/// The failure knob that applies to a Pod of workload `ns/workload`, if any.
pub(crate) fn failure_for(
    state: &State,
    ns: &str,
    workload: &str,
    pod: &Value,
) -> Option<(FailureMode, String)> {
    let images: Vec<String> = containers(pod)
        .iter()
        .filter_map(|c| c["image"].as_str().map(String::from))
        .collect();
    for (target, mode) in &state.failures {
        match target {
            FailTarget::Workload(want_ns, name) => {
                if name == workload && want_ns.as_deref().is_none_or(|n| n == ns) {
                    return Some((*mode, images.first().cloned().unwrap_or_default()));
                }
            }
            FailTarget::Image(sub) => {
                if let Some(img) = images.iter().find(|i| i.contains(sub.as_str())) {
                    return Some((*mode, img.clone()));
                }
            }
        }
    }
    None
}

fn containers(pod: &Value) -> Vec<Value> {
    pod["spec"]["containers"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// The first node whose labels satisfy the Pod's `nodeSelector` (and the Pod's `nodeName`, if set).
pub(crate) fn pick_node(state: &State, pod_spec: &Value) -> Option<String> {
    let mut sel = json!({"matchLabels": pod_spec["nodeSelector"].clone()});
    if !sel["matchLabels"].is_object() {
        sel = json!({});
    }
    let selector = LabelSelector::from_object(&sel);
    state
        .store
        .list("", "nodes", None)
        .into_iter()
        .filter(|n| selector.matches(n))
        .filter(|n| {
            pod_spec["nodeName"]
                .as_str()
                .is_none_or(|want| n["metadata"]["name"] == want)
        })
        .find_map(|n| n["metadata"]["name"].as_str().map(String::from))
}

/// Records an Event about `obj` once per reason and message (deduplicated, like a real recorder).
pub(crate) fn event(
    state: &mut State,
    obj: &Value,
    kind: &str,
    reason: &str,
    message: &str,
    etype: &str,
    component: &str,
) {
    let ns = obj["metadata"]["namespace"]
        .as_str()
        .unwrap_or("default")
        .to_string();
    let name = obj["metadata"]["name"].as_str().unwrap_or_default();
    let uid = obj["metadata"]["uid"].as_str().unwrap_or_default();
    let ev_name = format!(
        "{name}.{}",
        meta::short_hash(&json!([uid, reason, message]))
    );
    if state.store.get("", "events", &ns, &ev_name).is_some() {
        return;
    }
    let now = meta::now();
    let host = obj["spec"]["nodeName"].clone();
    controller::create(
        state,
        "",
        "events",
        &ns,
        json!({
            "metadata": {"name": ev_name, "namespace": ns},
            "involvedObject": {"kind": kind, "namespace": ns, "name": name, "uid": uid,
                "apiVersion": obj["apiVersion"].clone(), "resourceVersion": obj["metadata"]["resourceVersion"].clone()},
            "reason": reason, "message": message, "type": etype,
            "source": {"component": component, "host": host},
            "firstTimestamp": now, "lastTimestamp": now, "count": 1,
            "reportingComponent": component, "reportingInstance": host,
        }),
    );
}

fn condition(t: &str, status: bool, since: &str) -> Value {
    json!({"type": t, "status": if status { "True" } else { "False" }, "lastProbeTime": null, "lastTransitionTime": since})
}

/// Brings one Pod's status to what a kubelet would report now. `job` Pods run to completion.
pub(crate) fn sync_pod(state: &mut State, pod: &Value, workload: &str, job: bool) {
    if pod["status"]["phase"] == "Succeeded" {
        return;
    }
    let ns = pod["metadata"]["namespace"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let uid = pod["metadata"]["uid"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let pod_name = pod["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let since = pod["metadata"]["creationTimestamp"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let elapsed = state
        .changed_at
        .get(&uid)
        .map_or(state.ready_delay, |t| Instant::now().duration_since(*t));
    let due = elapsed >= state.ready_delay;
    let failure = failure_for(state, &ns, workload, pod);
    let node = pod["spec"]["nodeName"].as_str().map(String::from);
    let node_count = state.store.list("", "nodes", None).len();

    if node.is_none()
        || failure
            .as_ref()
            .is_some_and(|f| f.0 == FailureMode::Unschedulable)
    {
        let msg = format!("0/{node_count} nodes are available: {node_count} node(s) didn't match Pod's node affinity/selector. preemption: 0/{node_count} nodes are available: {node_count} Preemption is not helpful for scheduling.");
        let status = json!({"phase": "Pending", "qosClass": "BestEffort", "conditions": [{
            "type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": msg,
            "lastProbeTime": null, "lastTransitionTime": since}]});
        set_status(state, "", "pods", pod, status);
        event(
            state,
            pod,
            "Pod",
            "FailedScheduling",
            &msg,
            "Warning",
            "default-scheduler",
        );
        return;
    }
    let base = |phase: &str, ready: bool, statuses: Vec<Value>| {
        json!({"phase": phase, "qosClass": "BestEffort", "hostIP": "10.0.0.1", "podIP": format!("10.244.0.{}", 2 + (meta::short_hash(&json!(uid)).len() % 200)),
            "startTime": since, "containerStatuses": statuses, "conditions": [
            condition("Initialized", true, &since), condition("Ready", ready, &since),
            condition("ContainersReady", ready, &since), condition("PodScheduled", true, &since)]})
    };
    let cs = containers(pod);
    let status_of = |c: &Value, state_v: Value, ready: bool, restarts: u32| {
        json!({"name": c["name"], "image": c["image"], "imageID": "", "ready": ready, "started": ready,
            "restartCount": restarts, "state": state_v, "containerID": format!("containerd://{}", meta::short_hash(&json!([uid, c["name"]])))})
    };
    let pulled = (failure.is_none() && state.pull_images).then(|| puller::outcome(state, pod));
    if !due || pulled == Some(Outcome::Waiting) {
        let statuses = cs
            .iter()
            .map(|c| {
                status_of(
                    c,
                    json!({"waiting": {"reason": "ContainerCreating"}}),
                    false,
                    0,
                )
            })
            .collect();
        set_status(state, "", "pods", pod, base("Pending", false, statuses));
        return;
    }
    let pull_failure = match (&failure, &pulled) {
        (Some((FailureMode::ImagePullBackOff, image)), _) => Some((image.clone(), format!("Failed to pull image \"{image}\": rpc error: code = NotFound desc = failed to pull and unpack image \"{image}\": not found"))),
        (None, Some(Outcome::Failed(image, message))) => Some((image.clone(), message.clone())),
        _ => None,
    };
    let digests = match pulled {
        Some(Outcome::Pulled(d)) => d,
        _ => Default::default(),
    };
    if let Some((image, message)) = pull_failure {
        let statuses = cs.iter().map(|c| {
            let img = c["image"].as_str().unwrap_or_default();
            status_of(c, json!({"waiting": {"reason": "ImagePullBackOff", "message": format!("Back-off pulling image \"{img}\"")}}), false, 0)
        }).collect();
        set_status(state, "", "pods", pod, base("Pending", false, statuses));
        event(state, pod, "Pod", "Failed", &message, "Warning", "kubelet");
        event(
            state,
            pod,
            "Pod",
            "BackOff",
            &format!("Back-off pulling image \"{image}\""),
            "Warning",
            "kubelet",
        );
        return;
    }
    match failure {
        Some((_, _)) => {
            let statuses = cs.iter().map(|c| {
                let mut s = status_of(c, json!({"waiting": {"reason": "CrashLoopBackOff",
                    "message": format!("back-off 40s restarting failed container={} pod={pod_name}_{ns}({uid})", c["name"].as_str().unwrap_or_default())}}), false, 3);
                s["lastState"] = json!({"terminated": {"exitCode": 1, "reason": "Error", "startedAt": since, "finishedAt": since}});
                s
            }).collect();
            set_status(state, "", "pods", pod, base("Running", false, statuses));
            let first = cs
                .first()
                .and_then(|c| c["name"].as_str())
                .unwrap_or_default()
                .to_string();
            event(
                state,
                pod,
                "Pod",
                "BackOff",
                &format!(
                    "Back-off restarting failed container {first} in pod {pod_name}_{ns}({uid})"
                ),
                "Warning",
                "kubelet",
            );
        }
        None if job => {
            let statuses = cs.iter().map(|c| status_of(c, json!({"terminated": {"exitCode": 0, "reason": "Completed", "startedAt": since, "finishedAt": since}}), false, 0)).collect();
            let mut st = base("Succeeded", false, statuses);
            st["conditions"][1]["reason"] = "PodCompleted".into();
            set_status(state, "", "pods", pod, st);
        }
        None => {
            let statuses = cs
                .iter()
                .map(|c| {
                    let mut s = status_of(c, json!({"running": {"startedAt": since}}), true, 0);
                    let image = c["image"].as_str().unwrap_or_default();
                    s["imageID"] = image_id(state, image, digests.get(image)).into();
                    s
                })
                .collect();
            set_status(state, "", "pods", pod, base("Running", true, statuses));
        }
    }
}

/// Whether a Pod counts as ready (for Jobs: succeeded).
pub(crate) fn is_ready(pod: &Value) -> bool {
    pod["status"]["conditions"].as_array().is_some_and(|c| {
        c.iter()
            .any(|c| c["type"] == "Ready" && c["status"] == "True")
    })
}

/// The `imageID` a kubelet reports for a running container: `repository@digest` of what it
/// pulled (containerd's repo digest). The digest is the one given with
/// `TestCluster::pull_digest`, the image's own when pinned, the one the puller resolved
/// (`resolved`), else one made from the string.
fn image_id(state: &State, image: &str, resolved: Option<&String>) -> String {
    let (name, pinned) = match image.split_once('@') {
        Some((n, d)) => (n, Some(d.to_string())),
        None => (image, None),
    };
    let last_slash = name.rfind('/').map_or(0, |i| i + 1);
    let repo = match name[last_slash..].find(':') {
        Some(colon) => &name[..last_slash + colon],
        None => name,
    };
    let digest = pinned
        .or_else(|| state.image_digests.get(image).cloned())
        .or_else(|| resolved.cloned())
        .unwrap_or_else(|| {
            use sha2::Digest as _;
            format!(
                "sha256:{}",
                hex::encode(sha2::Sha256::digest(image.as_bytes()))
            )
        });
    format!("{repo}@{digest}")
}
