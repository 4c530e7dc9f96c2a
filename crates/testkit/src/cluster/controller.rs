//! The test controller: seeds the cluster and does what kube-controller-manager and kubelets
//! would — establishes CRDs, finalizes namespaces, binds PVCs, creates default ServiceAccounts,
//! and runs workloads (see `workloads.rs`).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};

use super::lock;
use super::meta;
use super::resources::ResourceType;
use super::state::{State, WriteOpts};

const TICK: Duration = Duration::from_millis(50);

/// The field manager the controller writes with.
pub(crate) const MANAGER: &str = "kube-controller-manager";

pub(crate) fn opts() -> WriteOpts {
    WriteOpts {
        dry_run: false,
        manager: MANAGER.into(),
        force: true,
    }
}

pub(crate) fn rt(state: &State, group: &str, plural: &str) -> Option<ResourceType> {
    state
        .resources
        .all()
        .iter()
        .find(|t| t.group == group && t.plural == plural)
        .cloned()
}

/// Creates an object as the controller (errors such as AlreadyExists are expected and ignored).
pub(crate) fn create(
    state: &mut State,
    group: &str,
    plural: &str,
    ns: &str,
    obj: Value,
) -> Option<Value> {
    let t = rt(state, group, plural)?;
    state.create(&t, ns, obj, &opts()).ok()
}

/// Replaces an object's status as the controller, if it changed.
pub(crate) fn set_status(state: &mut State, group: &str, plural: &str, obj: &Value, status: Value) {
    if obj["status"] == status {
        return;
    }
    let Some(t) = rt(state, group, plural) else {
        return;
    };
    let mut new = obj.clone();
    new["status"] = status;
    if let Some(m) = new["metadata"].as_object_mut() {
        m.remove("resourceVersion");
    }
    let ns = obj["metadata"]["namespace"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let name = obj["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let part = if t.status {
        super::apply::Part::Status
    } else {
        super::apply::Part::Main { has_status: false }
    };
    let _ = state.replace(&t, &ns, &name, new, &opts(), part);
}

/// Seeds the default namespaces, the nodes and a default storage class.
pub(crate) fn seed(
    state: &mut State,
    storage_classes: Option<Vec<Value>>,
    ingress_classes: &[Value],
) {
    for ns in ["default", "kube-system", "kube-public", "kube-node-lease"] {
        create(
            state,
            "",
            "namespaces",
            "",
            json!({"metadata": {"name": ns}}),
        );
    }
    let version = state.version.clone();
    for node in state.nodes.clone() {
        let n = create(
            state,
            "",
            "nodes",
            "",
            json!({
                "metadata": {"name": node.name, "labels": node_labels(&node)},
                "spec": match &node.provider_id {
                    Some(id) => json!({"providerID": id}),
                    None => json!({}),
                },
            }),
        );
        if let Some(n) = n {
            let status = json!({
                "nodeInfo": {"architecture": node.arch, "operatingSystem": "linux",
                    "kubeletVersion": format!("v{version}"), "kubeProxyVersion": format!("v{version}"),
                    "containerRuntimeVersion": "containerd://1.7.0", "osImage": "Airlift test node",
                    "kernelVersion": "6.1.0", "machineID": "", "systemUUID": "", "bootID": ""},
                "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady",
                    "message": "kubelet is posting ready status", "lastHeartbeatTime": meta::now(),
                    "lastTransitionTime": meta::now()}],
                "capacity": {"cpu": "8", "memory": "32Gi", "pods": "110"},
                "allocatable": {"cpu": "8", "memory": "32Gi", "pods": "110"},
                "addresses": [{"type": "InternalIP", "address": "10.0.0.1"}, {"type": "Hostname", "address": node.name}],
            });
            set_status(state, "", "nodes", &n, status);
        }
    }
    let storage_classes = storage_classes.unwrap_or_else(|| {
        vec![json!({
            "metadata": {"name": "standard", "annotations": {"storageclass.kubernetes.io/is-default-class": "true"}},
            "provisioner": "rancher.io/local-path", "reclaimPolicy": "Delete", "volumeBindingMode": "Immediate",
        })]
    });
    for sc in storage_classes {
        create(state, "storage.k8s.io", "storageclasses", "", sc);
    }
    for ic in ingress_classes {
        create(state, "networking.k8s.io", "ingressclasses", "", ic.clone());
    }
    reconcile(state);
}

/// The labels every kubelet sets, then the node's own (provider, topology).
fn node_labels(node: &super::NodeSpec) -> Value {
    let mut labels = json!({
        "kubernetes.io/arch": node.arch, "kubernetes.io/os": "linux",
        "kubernetes.io/hostname": node.name, "beta.kubernetes.io/arch": node.arch,
        "beta.kubernetes.io/os": "linux"});
    for (k, v) in &node.labels {
        labels[k] = json!(v);
    }
    labels
}

/// Runs the controller loop until the task is aborted.
pub(crate) async fn run(state: Arc<Mutex<State>>) {
    let mut tick = tokio::time::interval(TICK);
    loop {
        tick.tick().await;
        reconcile(&mut lock(&state));
    }
}

/// One pass over everything the controller manages.
pub(crate) fn reconcile(state: &mut State) {
    namespaces(state);
    crds(state);
    pvcs(state);
    super::workloads::reconcile(state);
}

fn namespaces(state: &mut State) {
    let all: Vec<Value> = state
        .store
        .list("", "namespaces", None)
        .into_iter()
        .cloned()
        .collect();
    for ns in all {
        let name = ns["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        if !ns["metadata"]["deletionTimestamp"].is_null() {
            // The namespace controller gets to it a moment later, as on a real cluster.
            let uid = ns["metadata"]["uid"].as_str().unwrap_or_default();
            let marked = state.changed_at.get(uid).copied();
            if marked.is_some_and(|t| t.elapsed() < state.ready_delay) {
                continue;
            }
            state.purge_namespace(&name);
            let blocked = ns["metadata"]["finalizers"]
                .as_array()
                .is_some_and(|f| !f.is_empty());
            if !blocked {
                if let Some(t) = rt(state, "", "namespaces") {
                    state.remove_now(&t, "", &name, "Background");
                }
            }
            continue;
        }
        if state
            .store
            .get("", "serviceaccounts", &name, "default")
            .is_none()
        {
            create(
                state,
                "",
                "serviceaccounts",
                &name,
                json!({"metadata": {"name": "default"}}),
            );
        }
        if !state.root_ca.is_empty()
            && state
                .store
                .get("", "configmaps", &name, "kube-root-ca.crt")
                .is_none()
        {
            let ca = state.root_ca.clone();
            let description = "Contains a CA bundle that can be used to verify the kube-apiserver when using internal endpoints such as the internal service IP or kubernetes.default.svc. No other usage is guaranteed across distributions of Kubernetes clusters.";
            create(
                state,
                "",
                "configmaps",
                &name,
                json!({"metadata": {"name": "kube-root-ca.crt",
                    "annotations": {"kubernetes.io/description": description}},
                    "data": {"ca.crt": ca}}),
            );
        }
    }
}

fn crds(state: &mut State) {
    let all: Vec<Value> = state
        .store
        .list("apiextensions.k8s.io", "customresourcedefinitions", None)
        .into_iter()
        .cloned()
        .collect();
    for crd in all {
        let conditions = crd["status"]["conditions"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        if conditions.iter().any(|c| c["type"] == "Established") {
            continue;
        }
        let mut status = crd["status"].clone();
        let mut conds = conditions;
        conds.push(
            json!({"type": "Established", "status": "True", "reason": "InitialNamesAccepted",
            "message": "the initial names have been accepted", "lastTransitionTime": meta::now()}),
        );
        status["conditions"] = Value::Array(conds);
        set_status(
            state,
            "apiextensions.k8s.io",
            "customresourcedefinitions",
            &crd,
            status,
        );
    }
}

fn pvcs(state: &mut State) {
    let all: Vec<Value> = state
        .store
        .list("", "persistentvolumeclaims", None)
        .into_iter()
        .cloned()
        .collect();
    for pvc in all {
        if !pvc["metadata"]["deletionTimestamp"].is_null() {
            release_claim(state, &pvc);
            continue;
        }
        if pvc["status"]["phase"] == "Bound" {
            continue;
        }
        let storage = pvc["spec"]["resources"]["requests"]["storage"].clone();
        let status = json!({"phase": "Bound", "accessModes": pvc["spec"]["accessModes"].clone(),
            "capacity": {"storage": storage}});
        set_status(state, "", "persistentvolumeclaims", &pvc, status);
    }
}

/// The pvc-protection controller: a deleting claim loses its finalizer once no Pod mounts it.
fn release_claim(state: &mut State, pvc: &Value) {
    let protected = |f: &Value| f == super::defaults::PVC_PROTECTION;
    let finalizers = pvc["metadata"]["finalizers"].as_array();
    if !finalizers.is_some_and(|f| f.iter().any(protected)) {
        return;
    }
    let ns = pvc["metadata"]["namespace"].as_str().unwrap_or_default();
    let name = &pvc["metadata"]["name"];
    let in_use = state.store.list("", "pods", Some(ns)).into_iter().any(|p| {
        p["spec"]["volumes"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|v| &v["persistentVolumeClaim"]["claimName"] == name)
    });
    if in_use {
        return;
    }
    let Some(t) = rt(state, "", "persistentvolumeclaims") else {
        return;
    };
    let mut new = pvc.clone();
    if let Some(f) = new["metadata"]["finalizers"].as_array_mut() {
        f.retain(|x| !protected(x));
    }
    if let Some(m) = new["metadata"].as_object_mut() {
        m.remove("resourceVersion");
    }
    let ns = ns.to_string();
    let name = name.as_str().unwrap_or_default().to_string();
    let part = super::apply::Part::Main {
        has_status: t.status,
    };
    let _ = state.replace(&t, &ns, &name, new, &opts(), part);
}
