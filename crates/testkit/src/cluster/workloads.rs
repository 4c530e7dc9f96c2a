//! Workload controllers: Deployments (through ReplicaSets), ReplicaSets, StatefulSets (with
//! volumeClaimTemplates), DaemonSets and Jobs create Pods with owner references and report
//! status the way kube-controller-manager does.

use std::sync::Arc;
use std::time::Instant;

use serde_json::{json, Value};

use super::controller::{self, set_status};
use super::kubelet::{self, is_ready};
use super::meta;
use super::state::State;

fn s(v: &Value) -> String {
    v.as_str().unwrap_or_default().to_string()
}

fn int(v: &Value, default: i64) -> i64 {
    v.as_i64().unwrap_or(default)
}

fn list(state: &State, group: &str, plural: &str) -> Vec<Arc<Value>> {
    state.store.list_shared(group, plural, None)
}

fn owned_by(state: &State, group: &str, plural: &str, owner: &Value) -> Vec<Arc<Value>> {
    let ns = owner["metadata"]["namespace"].as_str();
    let uid = &owner["metadata"]["uid"];
    let mut all = state.store.list_shared(group, plural, ns);
    all.retain(|o| {
        o["metadata"]["ownerReferences"]
            .as_array()
            .is_some_and(|r| r.iter().any(|r| &r["uid"] == uid))
    });
    all
}

fn owner_ref(owner: &Value) -> Value {
    json!([{"apiVersion": owner["apiVersion"], "kind": owner["kind"], "name": owner["metadata"]["name"],
        "uid": owner["metadata"]["uid"], "controller": true, "blockOwnerDeletion": true}])
}

fn generation_info(obj: &Value) -> i64 {
    int(&obj["metadata"]["generation"], 1)
}

/// Creates a Pod from `template` owned by `owner`.
fn create_pod(
    state: &mut State,
    owner: &Value,
    name: &str,
    template: &Value,
    extra_labels: Value,
    node: Option<String>,
) {
    let ns = s(&owner["metadata"]["namespace"]);
    let mut labels = template["metadata"]["labels"].clone();
    if !labels.is_object() {
        labels = json!({});
    }
    for (k, v) in extra_labels.as_object().into_iter().flatten() {
        labels[k.as_str()] = v.clone();
    }
    let mut spec = template["spec"].clone();
    let node = node.or_else(|| kubelet::pick_node(state, &spec));
    if let Some(n) = node {
        spec["nodeName"] = n.into();
    }
    if spec["serviceAccountName"].is_null() {
        spec["serviceAccountName"] = "default".into();
    }
    if spec["restartPolicy"].is_null() {
        spec["restartPolicy"] = "Always".into();
    }
    let mut meta_v = json!({"name": name, "namespace": ns, "labels": labels, "ownerReferences": owner_ref(owner)});
    if template["metadata"]["annotations"].is_object() {
        meta_v["annotations"] = template["metadata"]["annotations"].clone();
    }
    controller::create(
        state,
        "",
        "pods",
        &ns,
        json!({"metadata": meta_v, "spec": spec}),
    );
}

fn delete(state: &mut State, group: &str, plural: &str, obj: &Value) {
    if let Some(t) = controller::rt(state, group, plural) {
        let ns = s(&obj["metadata"]["namespace"]);
        state.remove_now(&t, &ns, &s(&obj["metadata"]["name"]), "Background");
    }
}

/// The name of the top-level workload that owns `obj` (through ReplicaSets), for failure knobs.
pub(crate) fn workload_name(state: &State, obj: &Value) -> String {
    let ns = s(&obj["metadata"]["namespace"]);
    if let Some(r) = obj["metadata"]["ownerReferences"]
        .as_array()
        .and_then(|r| r.first())
    {
        if r["kind"] == "ReplicaSet" {
            if let Some(rs) = state.store.get(
                "apps",
                "replicasets",
                &ns,
                r["name"].as_str().unwrap_or_default(),
            ) {
                return workload_name(state, rs);
            }
        }
        return s(&r["name"]);
    }
    s(&obj["metadata"]["name"])
}

/// One pass over every workload.
pub(crate) fn reconcile(state: &mut State) {
    for d in list(state, "apps", "deployments") {
        deployment(state, &d);
    }
    for rs in list(state, "apps", "replicasets") {
        replicaset(state, &rs);
    }
    for sts in list(state, "apps", "statefulsets") {
        statefulset(state, &sts);
    }
    for ds in list(state, "apps", "daemonsets") {
        daemonset(state, &ds);
    }
    for job in list(state, "batch", "jobs") {
        self::job(state, &job);
    }
    for pod in list(state, "", "pods") {
        let workload = workload_name(state, &pod);
        let is_job = pod["metadata"]["ownerReferences"][0]["kind"] == "Job";
        kubelet::sync_pod(state, &pod, &workload, is_job);
    }
    for d in list(state, "apps", "deployments") {
        deployment_status(state, &d);
    }
    for rs in list(state, "apps", "replicasets") {
        let pods = owned_by(state, "", "pods", &rs);
        let ready = pods.iter().filter(|p| is_ready(p)).count();
        let status = json!({"replicas": pods.len(), "readyReplicas": ready, "availableReplicas": ready,
            "fullyLabeledReplicas": pods.len(), "observedGeneration": generation_info(&rs)});
        set_status(state, "apps", "replicasets", &rs, status);
    }
}

fn deployment(state: &mut State, d: &Value) {
    let template = d["spec"]["template"].clone();
    let hash = meta::short_hash(&template);
    let name = s(&d["metadata"]["name"]);
    let ns = s(&d["metadata"]["namespace"]);
    let replicas = int(&d["spec"]["replicas"], 1);
    let rs_name = format!("{name}-{hash}");
    let owned = owned_by(state, "apps", "replicasets", d);
    let current = owned
        .iter()
        .find(|r| r["metadata"]["name"] == rs_name.as_str())
        .cloned();
    match current {
        None => {
            let mut tpl = template.clone();
            tpl["metadata"]["labels"]["pod-template-hash"] = hash.clone().into();
            let mut selector = d["spec"]["selector"].clone();
            selector["matchLabels"]["pod-template-hash"] = hash.clone().into();
            controller::create(
                state,
                "apps",
                "replicasets",
                &ns,
                json!({
                    "metadata": {"name": rs_name, "namespace": ns, "labels": tpl["metadata"]["labels"].clone(),
                        "annotations": {"deployment.kubernetes.io/revision": (owned.len() + 1).to_string()},
                        "ownerReferences": owner_ref(d)},
                    "spec": {"replicas": replicas, "selector": selector, "template": tpl},
                }),
            );
            kubelet::event(
                state,
                d,
                "Deployment",
                "ScalingReplicaSet",
                &format!("Scaled up replica set {rs_name} to {replicas}"),
                "Normal",
                "deployment-controller",
            );
        }
        Some(rs) => {
            if int(&rs["spec"]["replicas"], 0) != replicas {
                scale(state, &rs, replicas);
            }
            // Old ReplicaSets go to zero once the new one is fully available (a rolling update
            // that surges the whole new set, then retires the old ones).
            let pods = owned_by(state, "", "pods", &rs);
            let available = pods.iter().filter(|p| is_ready(p)).count() as i64;
            if available >= replicas {
                for old in owned
                    .iter()
                    .filter(|r| r["metadata"]["name"] != rs_name.as_str())
                {
                    if int(&old["spec"]["replicas"], 0) != 0 {
                        scale(state, old, 0);
                    }
                }
            }
        }
    }
}

fn scale(state: &mut State, rs: &Value, replicas: i64) {
    if let Some(t) = controller::rt(state, "apps", "replicasets") {
        let ns = s(&rs["metadata"]["namespace"]);
        let name = s(&rs["metadata"]["name"]);
        let _ = state.patch(
            &t,
            &ns,
            &name,
            (
                "application/merge-patch+json",
                json!({"spec": {"replicas": replicas}}),
            ),
            &controller::opts(),
            super::apply::Part::Main { has_status: true },
        );
    }
}

fn replicaset(state: &mut State, rs: &Value) {
    let want = int(&rs["spec"]["replicas"], 1) as usize;
    let mut pods = owned_by(state, "", "pods", rs);
    while pods.len() < want {
        let name = format!("{}-{}", s(&rs["metadata"]["name"]), meta::random_suffix(5));
        create_pod(state, rs, &name, &rs["spec"]["template"], json!({}), None);
        pods.push(Arc::new(Value::Null));
    }
    for extra in pods.iter().skip(want) {
        delete(state, "", "pods", extra);
    }
}

fn deployment_status(state: &mut State, d: &Value) {
    let hash = meta::short_hash(&d["spec"]["template"]);
    let rs_name = format!("{}-{hash}", s(&d["metadata"]["name"]));
    let replicas = int(&d["spec"]["replicas"], 1);
    let mut total = 0;
    let mut ready = 0;
    let mut updated = 0;
    for rs in owned_by(state, "apps", "replicasets", d) {
        let pods = owned_by(state, "", "pods", &rs);
        total += pods.len() as i64;
        ready += pods.iter().filter(|p| is_ready(p)).count() as i64;
        if rs["metadata"]["name"] == rs_name.as_str() {
            updated += pods.len() as i64;
        }
    }
    let max_unavailable = replicas / 4;
    let available_ok = ready >= replicas - max_unavailable;
    let complete = updated == replicas && total == replicas && ready == replicas;
    let uid = s(&d["metadata"]["uid"]);
    let deadline = int(&d["spec"]["progressDeadlineSeconds"], 600) as u64;
    let stalled = !complete
        && state
            .changed_at
            .get(&uid)
            .is_some_and(|t| Instant::now().duration_since(*t).as_secs() >= deadline);
    let now = meta::now();
    let keep_time = |t: &str, status: &str| -> String {
        d["status"]["conditions"]
            .as_array()
            .and_then(|c| c.iter().find(|c| c["type"] == t && c["status"] == status))
            .and_then(|c| c["lastTransitionTime"].as_str().map(String::from))
            .unwrap_or_else(|| now.clone())
    };
    let (p_status, p_reason, p_msg) = if complete {
        (
            "True",
            "NewReplicaSetAvailable",
            format!("ReplicaSet \"{rs_name}\" has successfully progressed."),
        )
    } else if stalled {
        (
            "False",
            "ProgressDeadlineExceeded",
            format!("ReplicaSet \"{rs_name}\" has timed out progressing."),
        )
    } else {
        (
            "True",
            "ReplicaSetUpdated",
            format!("ReplicaSet \"{rs_name}\" is progressing."),
        )
    };
    let a_status = if available_ok { "True" } else { "False" };
    let mut status = json!({
        "observedGeneration": generation_info(d),
        "replicas": total, "updatedReplicas": updated, "readyReplicas": ready, "availableReplicas": ready,
        "conditions": [
            {"type": "Available", "status": a_status,
             "reason": if available_ok { "MinimumReplicasAvailable" } else { "MinimumReplicasUnavailable" },
             "message": if available_ok { "Deployment has minimum availability." } else { "Deployment does not have minimum availability." },
             "lastUpdateTime": keep_time("Available", a_status), "lastTransitionTime": keep_time("Available", a_status)},
            {"type": "Progressing", "status": p_status, "reason": p_reason, "message": p_msg,
             "lastUpdateTime": keep_time("Progressing", p_status), "lastTransitionTime": keep_time("Progressing", p_status)},
        ],
    });
    if total > ready {
        status["unavailableReplicas"] = (total - ready).into();
    }
    for k in [
        "readyReplicas",
        "availableReplicas",
        "updatedReplicas",
        "replicas",
    ] {
        if status[k] == 0 {
            if let Some(m) = status.as_object_mut() {
                m.remove(k);
            }
        }
    }
    set_status(state, "apps", "deployments", d, status);
}

fn revision_label(pod: &Value) -> String {
    s(&pod["metadata"]["labels"]["controller-revision-hash"])
}

fn statefulset(state: &mut State, sts: &Value) {
    let name = s(&sts["metadata"]["name"]);
    let ns = s(&sts["metadata"]["namespace"]);
    let replicas = int(&sts["spec"]["replicas"], 1);
    let revision = format!("{name}-{}", meta::short_hash(&sts["spec"]["template"]));
    let pods = owned_by(state, "", "pods", sts);
    let ordinal = |p: &Value| -> i64 {
        s(&p["metadata"]["name"])
            .rsplit('-')
            .next()
            .and_then(|o| o.parse().ok())
            .unwrap_or(-1)
    };
    for p in pods
        .iter()
        .filter(|p| ordinal(p) >= replicas || ordinal(p) < 0)
    {
        delete(state, "", "pods", p);
    }
    for i in 0..replicas {
        let pod_name = format!("{name}-{i}");
        if pods
            .iter()
            .any(|p| p["metadata"]["name"] == pod_name.as_str())
        {
            continue;
        }
        for vct in sts["spec"]["volumeClaimTemplates"]
            .as_array()
            .cloned()
            .unwrap_or_default()
        {
            let claim = format!("{}-{pod_name}", s(&vct["metadata"]["name"]));
            if state
                .store
                .get("", "persistentvolumeclaims", &ns, &claim)
                .is_none()
            {
                let mut labels = sts["spec"]["selector"]["matchLabels"].clone();
                if !labels.is_object() {
                    labels = json!({});
                }
                controller::create(
                    state,
                    "",
                    "persistentvolumeclaims",
                    &ns,
                    json!({
                    "metadata": {"name": claim, "namespace": ns, "labels": labels},
                    "spec": vct["spec"].clone()}),
                );
            }
        }
        let extra = json!({"controller-revision-hash": revision, "statefulset.kubernetes.io/pod-name": pod_name,
            "apps.kubernetes.io/pod-index": i.to_string()});
        // Each Pod mounts its claims, as the StatefulSet controller does.
        let mut template = sts["spec"]["template"].clone();
        for vct in sts["spec"]["volumeClaimTemplates"]
            .as_array()
            .into_iter()
            .flatten()
        {
            let vname = s(&vct["metadata"]["name"]);
            let volume = json!({"name": vname, "persistentVolumeClaim": {"claimName": format!("{vname}-{pod_name}")}});
            match template["spec"]["volumes"].as_array_mut() {
                Some(v) => v.push(volume),
                None => template["spec"]["volumes"] = json!([volume]),
            }
        }
        create_pod(state, sts, &pod_name, &template, extra, None);
        return; // OrderedReady: one Pod at a time.
    }
    // Rolling update from the highest ordinal, one Pod at a time, once the rest are ready.
    let pods = owned_by(state, "", "pods", sts);
    if pods.iter().all(|p| is_ready(p)) {
        let mut stale: Vec<&Value> = pods
            .iter()
            .map(|p| &**p)
            .filter(|p| revision_label(p) != revision)
            .collect();
        stale.sort_by_key(|p| ordinal(p));
        if let Some(p) = stale.last() {
            delete(state, "", "pods", p);
        }
    }
    let ready = pods.iter().filter(|p| is_ready(p)).count();
    let updated = pods
        .iter()
        .filter(|p| revision_label(p) == revision)
        .count();
    let current_revision = if updated as i64 == replicas && ready as i64 == replicas {
        revision.clone()
    } else {
        sts["status"]["currentRevision"]
            .as_str()
            .map(String::from)
            .unwrap_or_else(|| revision.clone())
    };
    let current = pods
        .iter()
        .filter(|p| revision_label(p) == current_revision)
        .count();
    let status = json!({"observedGeneration": generation_info(sts), "replicas": pods.len(), "readyReplicas": ready,
        "availableReplicas": ready, "currentReplicas": current, "updatedReplicas": updated,
        "currentRevision": current_revision, "updateRevision": revision, "collisionCount": 0});
    set_status(state, "apps", "statefulsets", sts, status);
}

fn daemonset(state: &mut State, ds: &Value) {
    let name = s(&ds["metadata"]["name"]);
    let revision = meta::short_hash(&ds["spec"]["template"]);
    let selector = ds["spec"]["template"]["spec"].clone();
    let nodes: Vec<String> = state
        .store
        .list("", "nodes", None)
        .into_iter()
        .filter_map(|n| {
            let one = json!({"nodeSelector": selector["nodeSelector"].clone(), "nodeName": n["metadata"]["name"].clone()});
            kubelet::pick_node(state, &one)
        })
        .collect();
    let pods = owned_by(state, "", "pods", ds);
    for p in &pods {
        if !nodes.iter().any(|n| p["spec"]["nodeName"] == n.as_str()) {
            delete(state, "", "pods", p);
        }
    }
    for n in &nodes {
        if !pods.iter().any(|p| p["spec"]["nodeName"] == n.as_str()) {
            let pod_name = format!("{name}-{}", meta::random_suffix(5));
            create_pod(
                state,
                ds,
                &pod_name,
                &ds["spec"]["template"],
                json!({"controller-revision-hash": revision}),
                Some(n.clone()),
            );
        }
    }
    let pods = owned_by(state, "", "pods", ds);
    if pods.iter().all(|p| is_ready(p)) {
        if let Some(p) = pods.iter().find(|p| revision_label(p) != revision) {
            delete(state, "", "pods", p);
        }
    }
    let ready = pods.iter().filter(|p| is_ready(p)).count();
    let updated = pods
        .iter()
        .filter(|p| revision_label(p) == revision)
        .count();
    let mut status = json!({"observedGeneration": generation_info(ds), "desiredNumberScheduled": nodes.len(),
        "currentNumberScheduled": pods.len(), "numberReady": ready, "numberAvailable": ready,
        "updatedNumberScheduled": updated, "numberMisscheduled": 0});
    if nodes.len() > ready {
        status["numberUnavailable"] = (nodes.len() - ready).into();
    }
    set_status(state, "apps", "daemonsets", ds, status);
}

fn job(state: &mut State, job: &Value) {
    let name = s(&job["metadata"]["name"]);
    let completions = int(&job["spec"]["completions"], 1);
    let parallelism = int(&job["spec"]["parallelism"], 1);
    let pods = owned_by(state, "", "pods", job);
    let succeeded = pods
        .iter()
        .filter(|p| p["status"]["phase"] == "Succeeded")
        .count() as i64;
    let active = pods.len() as i64 - succeeded;
    let done = succeeded >= completions;
    if !done && job["spec"]["suspend"] != true {
        let want = parallelism.min(completions - succeeded);
        for _ in active..want {
            let mut tpl = job["spec"]["template"].clone();
            if tpl["spec"]["restartPolicy"].is_null() {
                tpl["spec"]["restartPolicy"] = "Never".into();
            }
            create_pod(
                state,
                job,
                &format!("{name}-{}", meta::random_suffix(5)),
                &tpl,
                json!({}),
                None,
            );
        }
    }
    let pods = owned_by(state, "", "pods", job);
    let active = pods
        .iter()
        .filter(|p| p["status"]["phase"] != "Succeeded")
        .count();
    let ready = pods.iter().filter(|p| is_ready(p)).count();
    let start = job["status"]["startTime"]
        .as_str()
        .map(String::from)
        .unwrap_or_else(meta::now);
    let mut status = json!({"startTime": start, "active": active, "ready": ready, "succeeded": succeeded,
        "uncountedTerminatedPods": {}});
    if done {
        let finished = job["status"]["completionTime"]
            .as_str()
            .map(String::from)
            .unwrap_or_else(meta::now);
        status["completionTime"] = finished.clone().into();
        status["conditions"] = json!([
            {"type": "SuccessCriteriaMet", "status": "True", "reason": "CompletionsReached", "message": "Reached expected number of succeeded pods", "lastProbeTime": finished, "lastTransitionTime": finished},
            {"type": "Complete", "status": "True", "reason": "CompletionsReached", "message": "Reached expected number of succeeded pods", "lastProbeTime": finished, "lastTransitionTime": finished}]);
        if let Some(m) = status.as_object_mut() {
            m.remove("active");
        }
    }
    if succeeded == 0 {
        if let Some(m) = status.as_object_mut() {
            m.remove("succeeded");
        }
    }
    set_status(state, "batch", "jobs", job, status);
}
