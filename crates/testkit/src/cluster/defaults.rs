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
            let old_ip = old
                .map(|o| o["spec"]["clusterIP"].clone())
                .unwrap_or(Value::Null);
            if spec["clusterIP"].is_null() || spec["clusterIP"] == "" {
                spec["clusterIP"] = if old_ip.is_null() {
                    let n: u16 = rand::random();
                    format!("10.96.{}.{}", n >> 8, (n & 0xff).max(2)).into()
                } else {
                    old_ip
                };
            }
            if spec["clusterIP"] != "None" {
                spec["clusterIPs"] = json!([spec["clusterIP"].clone()]);
            }
            set_default(spec, "sessionAffinity", "None".into());
            set_default(spec, "ipFamilies", json!(["IPv4"]));
            for p in spec["ports"].as_array_mut().into_iter().flatten() {
                set_default(p, "protocol", "TCP".into());
                let port = p["port"].clone();
                set_default(p, "targetPort", port);
            }
            set_default(obj, "status", json!({"loadBalancer": {}}));
        }
        ("", "persistentvolumeclaims") => {
            set_default(obj, "status", json!({"phase": "Pending"}));
        }
        ("", "pods") => {
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
            check_selector(rt, &name, obj)?;
        }
        ("apps", "statefulsets") | ("apps", "replicasets") => {
            set_default(&mut obj["spec"], "replicas", 1.into());
            check_selector(rt, &name, obj)?;
        }
        ("apps", "daemonsets") => check_selector(rt, &name, obj)?,
        ("batch", "jobs") => {
            let spec = &mut obj["spec"];
            set_default(spec, "completions", 1.into());
            set_default(spec, "parallelism", 1.into());
            set_default(spec, "backoffLimit", 6.into());
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
