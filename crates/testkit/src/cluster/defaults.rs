//! What admission and defaulting would do on a real apiserver, for the kinds the installer uses:
//! Secret `stringData`, Service cluster IPs, Job selectors, replica defaults, Namespace phase,
//! and CRD validation and status.

use base64::Engine;
use serde_json::{json, Value};

use super::meta::{self, ApiError};
use super::resources::ResourceType;
use super::state::State;

fn set_default(v: &mut Value, key: &str, default: Value) {
    if v[key].is_null() {
        v[key] = default;
    }
}

/// Applies defaults to `obj` (being created when `old` is `None`) and rejects invalid objects.
pub(crate) fn admit(
    state: &State,
    rt: &ResourceType,
    old: Option<&Value>,
    obj: &mut Value,
) -> Result<(), ApiError> {
    let name = obj["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    match (rt.group.as_str(), rt.plural.as_str()) {
        ("", "namespaces") => {
            obj["metadata"]["labels"]["kubernetes.io/metadata.name"] = name.into();
            set_default(obj, "spec", json!({"finalizers": ["kubernetes"]}));
            if obj["metadata"]["deletionTimestamp"].is_null() {
                obj["status"] = json!({"phase": "Active"});
            }
        }
        ("", "secrets") => {
            if let Some(sd) = obj
                .as_object_mut()
                .and_then(|m| m.remove("stringData"))
                .and_then(|v| v.as_object().cloned())
            {
                for (k, v) in sd {
                    let s = v.as_str().unwrap_or_default();
                    obj["data"][k.as_str()] =
                        base64::engine::general_purpose::STANDARD.encode(s).into();
                }
            }
            set_default(obj, "type", "Opaque".into());
        }
        ("", "services") => {
            let spec = &mut obj["spec"];
            set_default(spec, "type", "ClusterIP".into());
            let external = spec["type"] == "ExternalName";
            // An IP allocated before is kept, unless either side is ExternalName (which has none).
            let old_ip = old
                .filter(|o| o["spec"]["type"] != "ExternalName")
                .map(|o| o["spec"]["clusterIP"].clone())
                .unwrap_or(Value::Null);
            if external {
                set_default(spec, "sessionAffinity", "None".into());
            } else if spec["clusterIP"].is_null() || spec["clusterIP"] == "" {
                spec["clusterIP"] = if old_ip.is_null() {
                    let n: u16 = rand::random();
                    format!("10.96.{}.{}", n >> 8, (n & 0xff).max(2)).into()
                } else {
                    old_ip
                };
            }
            if !external {
                spec["clusterIPs"] = json!([spec["clusterIP"].clone()]);
                set_default(spec, "sessionAffinity", "None".into());
                set_default(spec, "ipFamilies", json!(["IPv4"]));
                set_default(spec, "ipFamilyPolicy", "SingleStack".into());
                set_default(spec, "internalTrafficPolicy", "Cluster".into());
            }
            for p in spec
                .get_mut("ports")
                .and_then(Value::as_array_mut)
                .into_iter()
                .flatten()
            {
                set_default(p, "protocol", "TCP".into());
                let port = p["port"].clone();
                set_default(p, "targetPort", port);
            }
            set_default(obj, "status", json!({"loadBalancer": {}}));
        }
        ("", "persistentvolumeclaims") => {
            set_default(&mut obj["spec"], "volumeMode", "Filesystem".into());
            if old.is_none() {
                // The DefaultStorageClass and StorageObjectInUseProtection admission plugins.
                if obj["spec"]["storageClassName"].is_null() {
                    if let Some(class) = default_storage_class(state) {
                        obj["spec"]["storageClassName"] = class.into();
                    }
                }
                add_finalizer(obj, PVC_PROTECTION);
            }
            set_default(obj, "status", json!({"phase": "Pending"}));
        }
        ("", "pods") => {
            pod_spec(&mut obj["spec"]);
            set_default(obj, "status", json!({"phase": "Pending"}));
        }
        ("apps", "deployments") => {
            let spec = &mut obj["spec"];
            set_default(spec, "replicas", 1.into());
            set_default(spec, "revisionHistoryLimit", 10.into());
            set_default(spec, "progressDeadlineSeconds", 600.into());
            set_default(
                spec,
                "strategy",
                json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}}),
            );
            if spec["strategy"]["type"] == "RollingUpdate" {
                set_default(
                    &mut spec["strategy"],
                    "rollingUpdate",
                    json!({"maxSurge": "25%", "maxUnavailable": "25%"}),
                );
            }
            template(&mut spec["template"]);
            check_selector(rt, &name, obj)?;
        }
        ("apps", "statefulsets") => {
            let spec = &mut obj["spec"];
            set_default(spec, "replicas", 1.into());
            set_default(spec, "podManagementPolicy", "OrderedReady".into());
            set_default(spec, "revisionHistoryLimit", 10.into());
            set_default(
                spec,
                "updateStrategy",
                json!({"type": "RollingUpdate", "rollingUpdate": {"partition": 0}}),
            );
            set_default(
                spec,
                "persistentVolumeClaimRetentionPolicy",
                json!({"whenDeleted": "Retain", "whenScaled": "Retain"}),
            );
            for t in spec["volumeClaimTemplates"]
                .as_array_mut()
                .into_iter()
                .flatten()
            {
                set_default(&mut t["spec"], "volumeMode", "Filesystem".into());
            }
            template(&mut spec["template"]);
            check_selector(rt, &name, obj)?;
        }
        ("apps", "replicasets") => {
            set_default(&mut obj["spec"], "replicas", 1.into());
            template(&mut obj["spec"]["template"]);
            check_selector(rt, &name, obj)?;
        }
        ("apps", "daemonsets") => {
            let spec = &mut obj["spec"];
            set_default(spec, "revisionHistoryLimit", 10.into());
            set_default(
                spec,
                "updateStrategy",
                json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0}}),
            );
            template(&mut spec["template"]);
            check_selector(rt, &name, obj)?;
        }
        ("batch", "cronjobs") => {
            let spec = &mut obj["spec"];
            set_default(spec, "concurrencyPolicy", "Allow".into());
            set_default(spec, "suspend", false.into());
            set_default(spec, "successfulJobsHistoryLimit", 3.into());
            set_default(spec, "failedJobsHistoryLimit", 1.into());
            job_spec(&mut spec["jobTemplate"]["spec"]);
            check_job_restart_policy(rt, &name, &spec["jobTemplate"]["spec"], "spec.jobTemplate.")?;
        }
        ("batch", "jobs") => {
            job_spec(&mut obj["spec"]);
            check_job_restart_policy(rt, &name, &obj["spec"], "")?;
            let spec = &mut obj["spec"];
            if old.is_none() && spec["manualSelector"] != true {
                let uid = obj["metadata"]["uid"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string();
                let labels = json!({"batch.kubernetes.io/controller-uid": uid, "controller-uid": uid,
                    "batch.kubernetes.io/job-name": name, "job-name": name});
                obj["spec"]["selector"] =
                    json!({"matchLabels": {"batch.kubernetes.io/controller-uid": uid}});
                if let Some(m) = labels.as_object() {
                    for (k, v) in m {
                        obj["spec"]["template"]["metadata"]["labels"][k.as_str()] = v.clone();
                    }
                }
            }
        }
        ("apiextensions.k8s.io", "customresourcedefinitions") => {
            let mut probe = state.resources.clone();
            probe
                .register_crd(obj)
                .map_err(|e| invalid(rt, &name, &e))?;
            let names = obj["spec"]["names"].clone();
            let stored: Vec<Value> = obj["spec"]["versions"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|v| v["storage"] == true)
                .map(|v| v["name"].clone())
                .collect();
            if stored.len() != 1 {
                return Err(invalid(rt, &name, "spec.versions: Invalid value: must have exactly one version marked as storage version"));
            }
            // Established is set by the controller a moment later, as on a real apiserver.
            let established_in = |v: &Value| {
                v["status"]["conditions"]
                    .as_array()
                    .filter(|c| c.iter().any(|c| c["type"] == "Established"))
                    .cloned()
            };
            let established = established_in(obj)
                .or_else(|| old.and_then(established_in))
                .unwrap_or_default();
            let mut conditions = vec![
                json!({"type": "NamesAccepted", "status": "True", "reason": "NoConflicts",
                "message": "no conflicts found", "lastTransitionTime": meta::now()}),
            ];
            conditions.extend(
                established
                    .into_iter()
                    .filter(|c| c["type"] == "Established"),
            );
            obj["status"] =
                json!({"acceptedNames": names, "storedVersions": stored, "conditions": conditions});
        }
        _ => {}
    }
    Ok(())
}

/// The finalizer the StorageObjectInUseProtection admission plugin puts on every PVC.
pub(crate) const PVC_PROTECTION: &str = "kubernetes.io/pvc-protection";

fn add_finalizer(obj: &mut Value, finalizer: &str) {
    let list = &mut obj["metadata"]["finalizers"];
    if !list.is_array() {
        *list = json!([]);
    }
    if let Some(a) = list.as_array_mut() {
        if !a.iter().any(|f| f == finalizer) {
            a.push(finalizer.into());
        }
    }
}

/// The StorageClass annotated `storageclass.kubernetes.io/is-default-class: "true"`.
fn default_storage_class(state: &State) -> Option<String> {
    state
        .store
        .list("storage.k8s.io", "storageclasses", None)
        .into_iter()
        .find(|c| {
            c["metadata"]["annotations"]["storageclass.kubernetes.io/is-default-class"] == "true"
        })
        .and_then(|c| c["metadata"]["name"].as_str().map(String::from))
}

/// `SetDefaults_JobSpec` (1.33): counts, completion mode, suspend, pod replacement policy.
fn job_spec(spec: &mut Value) {
    if spec["completions"].is_null() && spec["parallelism"].is_null() {
        spec["completions"] = 1.into();
        spec["parallelism"] = 1.into();
    }
    set_default(spec, "parallelism", 1.into());
    set_default(spec, "backoffLimit", 6.into());
    set_default(spec, "completionMode", "NonIndexed".into());
    set_default(spec, "suspend", false.into());
    if spec["podFailurePolicy"].is_null() {
        set_default(spec, "podReplacementPolicy", "TerminatingOrFailed".into());
    }
    template(&mut spec["template"]);
}

/// A Job's pods must not restart in place: `Always` (the pod default) is not supported.
fn check_job_restart_policy(
    rt: &ResourceType,
    name: &str,
    spec: &Value,
    prefix: &str,
) -> Result<(), ApiError> {
    let policy = spec["template"]["spec"]["restartPolicy"]
        .as_str()
        .unwrap_or_default();
    if policy == "OnFailure" || policy == "Never" {
        return Ok(());
    }
    Err(ApiError::invalid(
        &rt.group,
        &rt.kind,
        name,
        &format!("{prefix}spec.template.spec.restartPolicy"),
        &format!("Unsupported value: \"{policy}\": supported values: \"OnFailure\", \"Never\""),
    ))
}

/// Defaults of a pod template (`SetDefaults_PodSpec` and `SetDefaults_Container`).
fn template(t: &mut Value) {
    if t.is_object() {
        pod_spec(&mut t["spec"]);
    }
}

fn pod_spec(spec: &mut Value) {
    if !spec.is_object() {
        return;
    }
    set_default(spec, "restartPolicy", "Always".into());
    set_default(spec, "terminationGracePeriodSeconds", 30.into());
    set_default(spec, "dnsPolicy", "ClusterFirst".into());
    set_default(spec, "schedulerName", "default-scheduler".into());
    set_default(spec, "securityContext", json!({}));
    for list in ["initContainers", "containers"] {
        // `get_mut`, not indexing: indexing would store `null` for an absent list, which a
        // real apiserver never returns.
        for c in spec
            .get_mut(list)
            .and_then(Value::as_array_mut)
            .into_iter()
            .flatten()
        {
            set_default(c, "terminationMessagePath", "/dev/termination-log".into());
            set_default(c, "terminationMessagePolicy", "File".into());
            let policy = pull_policy(c["image"].as_str().unwrap_or_default());
            set_default(c, "imagePullPolicy", policy.into());
            for p in c
                .get_mut("ports")
                .and_then(Value::as_array_mut)
                .into_iter()
                .flatten()
            {
                set_default(p, "protocol", "TCP".into());
            }
        }
    }
}

/// `Always` for `:latest` or an untagged image, else `IfNotPresent`.
fn pull_policy(image: &str) -> &'static str {
    if image.contains('@') {
        return "IfNotPresent";
    }
    let last = image.rsplit('/').next().unwrap_or(image);
    match last.split_once(':') {
        Some((_, "latest")) | None => "Always",
        Some(_) => "IfNotPresent",
    }
}

fn invalid(rt: &ResourceType, name: &str, message: &str) -> ApiError {
    let (field, why) = message.split_once(": ").unwrap_or(("spec", message));
    ApiError::invalid(&rt.group, &rt.kind, name, field, why)
}

/// A workload's selector must be set and must match its template labels.
fn check_selector(rt: &ResourceType, name: &str, obj: &Value) -> Result<(), ApiError> {
    let sel = &obj["spec"]["selector"];
    if !sel.is_object() {
        return Err(ApiError::invalid(
            &rt.group,
            &rt.kind,
            name,
            "spec.selector",
            "Required value",
        ));
    }
    let selector = super::store::LabelSelector::from_object(sel);
    let template =
        json!({"metadata": {"labels": obj["spec"]["template"]["metadata"]["labels"].clone()}});
    if !selector.matches(&template) {
        return Err(ApiError::invalid(
            &rt.group,
            &rt.kind,
            name,
            "spec.template.metadata.labels",
            "Invalid value: `selector` does not match template `labels`",
        ));
    }
    Ok(())
}
