//! Update validation a real apiserver does and the installer depends on: immutable fields.
//!
//! Checked against the Kubernetes sources (`pkg/apis/batch/validation` ValidateJobSpecUpdate,
//! `pkg/apis/apps/validation` ValidateDeploymentUpdate / ValidateStatefulSetUpdate /
//! ValidateDaemonSetUpdate / ValidateReplicaSetUpdate, `pkg/apis/core/validation`
//! ValidateServiceUpdate / ValidatePersistentVolumeClaimUpdate / ValidateSecretUpdate /
//! ValidateConfigMapUpdate, and `apiextensions` ValidateCustomResourceDefinitionUpdate). The
//! wording of each message is the apiserver's; values are printed as JSON where Go prints `%#v`.

use serde_json::{json, Value};

use super::meta::{ApiError, FieldError};
use super::resources::ResourceType;

/// Go's `field is immutable` (`apimachinery/pkg/api/validation.FieldImmutableErrorMsg`).
const IMMUTABLE: &str = "field is immutable";
/// What ValidateSecretUpdate and ValidateConfigMapUpdate say.
const IMMUTABLE_SET: &str = "field is immutable when `immutable` is set";
/// ValidateStatefulSetUpdate's message for any other spec change (1.30+ wording).
const STS_FORBIDDEN: &str = "updates to statefulset spec for fields other than 'replicas', \
    'ordinals', 'template', 'updateStrategy', 'revisionHistoryLimit', \
    'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are forbidden";
/// ValidatePersistentVolumeClaimUpdate's message for any spec change but a resize.
const PVC_FORBIDDEN: &str = "spec is immutable after creation except resources.requests and \
    volumeAttributesClassName for bound claims";

/// Rejects an update of `old` to `new` (both after defaulting) that a real apiserver rejects,
/// with the same 422 Status: every violated field is a cause.
pub(crate) fn check_update(rt: &ResourceType, old: &Value, new: &Value) -> Result<(), ApiError> {
    let mut errs = Vec::new();
    let immutable = |errs: &mut Vec<FieldError>, path: &str, ptr: &str| {
        let (o, n) = (at(old, ptr), at(new, ptr));
        if o != n {
            errs.push(FieldError::invalid(path, &n, IMMUTABLE));
        }
    };
    match (rt.group.as_str(), rt.plural.as_str()) {
        ("batch", "jobs") => {
            immutable(&mut errs, "spec.selector", "/spec/selector");
            immutable(&mut errs, "spec.template", "/spec/template");
            immutable(&mut errs, "spec.completionMode", "/spec/completionMode");
        }
        ("apps", "deployments") | ("apps", "replicasets") | ("apps", "daemonsets") => {
            immutable(&mut errs, "spec.selector", "/spec/selector");
        }
        ("apps", "statefulsets") => {
            let rest = |v: &Value| {
                let mut spec = v["spec"].clone();
                if let Some(m) = spec.as_object_mut() {
                    for k in [
                        "replicas",
                        "ordinals",
                        "template",
                        "updateStrategy",
                        "revisionHistoryLimit",
                        "persistentVolumeClaimRetentionPolicy",
                        "minReadySeconds",
                    ] {
                        m.remove(k);
                    }
                }
                spec
            };
            if rest(old) != rest(new) {
                errs.push(FieldError::forbidden("spec", STS_FORBIDDEN));
            }
        }
        ("", "services") => service(old, new, &mut errs),
        ("", "persistentvolumeclaims") => pvc(old, new, &mut errs),
        ("", "secrets") | ("", "configmaps") => {
            if rt.plural == "secrets" && at(old, "/type") != at(new, "/type") {
                errs.push(FieldError::invalid("type", &at(new, "/type"), IMMUTABLE));
            }
            if old["immutable"] == true {
                if new["immutable"] != true {
                    errs.push(FieldError::forbidden("immutable", IMMUTABLE_SET));
                }
                for key in ["data", "stringData", "binaryData"] {
                    if at(old, &format!("/{key}")) != at(new, &format!("/{key}")) {
                        errs.push(FieldError::forbidden(key, IMMUTABLE_SET));
                    }
                }
            }
        }
        ("apiextensions.k8s.io", "customresourcedefinitions") => {
            immutable(&mut errs, "spec.scope", "/spec/scope");
        }
        _ => {}
    }
    if errs.is_empty() {
        return Ok(());
    }
    let name = new["metadata"]["name"].as_str().unwrap_or_default();
    Err(ApiError::invalid_fields(&rt.group, &rt.kind, name, &errs))
}

/// The value at a JSON pointer; absent and `null` are the same (Go's nil).
fn at(v: &Value, ptr: &str) -> Value {
    v.pointer(ptr).cloned().unwrap_or(Value::Null)
}

/// ValidateServiceUpdate: allocated cluster IPs may not change, except to or from ExternalName.
fn service(old: &Value, new: &Value, errs: &mut Vec<FieldError>) {
    let external = |v: &Value| v["spec"]["type"] == "ExternalName";
    if external(old) || external(new) {
        return;
    }
    let (o, n) = (at(old, "/spec/clusterIPs"), at(new, "/spec/clusterIPs"));
    if !o.is_null() && o != n {
        errs.push(FieldError::invalid(
            "spec.clusterIPs[0]",
            &n,
            "may not change once set",
        ));
    }
}

/// ValidatePersistentVolumeClaimUpdate: only `resources.requests` (growing) and
/// `volumeAttributesClassName` may change.
fn pvc(old: &Value, new: &Value, errs: &mut Vec<FieldError>) {
    let rest = |v: &Value| {
        let mut spec = v["spec"].clone();
        if let Some(m) = spec.as_object_mut() {
            m.remove("volumeAttributesClassName");
        }
        if let Some(r) = spec["resources"].as_object_mut() {
            r.remove("requests");
        }
        if spec["resources"] == json!({}) {
            if let Some(m) = spec.as_object_mut() {
                m.remove("resources");
            }
        }
        spec
    };
    if rest(old) != rest(new) {
        errs.push(FieldError::forbidden("spec", PVC_FORBIDDEN));
    }
    let size = |v: &Value| {
        v.pointer("/spec/resources/requests/storage")
            .and_then(quantity)
    };
    if let (Some(o), Some(n)) = (size(old), size(new)) {
        if n < o {
            errs.push(FieldError::forbidden(
                "spec.resources.requests.storage",
                "field can not be less than previous value",
            ));
        }
    }
}

/// A resource quantity (`1Gi`, `500M`, `1.5G`, `1000`, `1e3`) in base units.
pub(crate) fn quantity(v: &Value) -> Option<f64> {
    if let Some(n) = v.as_f64() {
        return Some(n);
    }
    let s = v.as_str()?.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '+' || c == '-'))
        .unwrap_or(s.len());
    let (num, suffix) = s.split_at(split);
    let n: f64 = num.parse().ok()?;
    let mult = match suffix {
        "" => 1.0,
        "m" => 1e-3,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "P" => 1e15,
        "E" => 1e18,
        "Ki" => 1024.0,
        "Mi" => 1024f64.powi(2),
        "Gi" => 1024f64.powi(3),
        "Ti" => 1024f64.powi(4),
        "Pi" => 1024f64.powi(5),
        "Ei" => 1024f64.powi(6),
        e if e.starts_with(['e', 'E']) => 10f64.powi(e[1..].parse().ok()?),
        _ => return None,
    };
    Some(n * mult)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::resources::Resources;

    fn rt(group: &str, plural: &str) -> ResourceType {
        Resources::builtin()
            .all()
            .iter()
            .find(|t| t.group == group && t.plural == plural)
            .cloned()
            .unwrap()
    }

    #[test]
    fn quantities_compare_across_suffixes() {
        assert_eq!(quantity(&json!("1Gi")), Some(1024f64.powi(3)));
        assert!(quantity(&json!("500Mi")) < quantity(&json!("1Gi")));
        assert!(quantity(&json!("2G")) > quantity(&json!("1Gi")));
        assert_eq!(quantity(&json!("1e3")), Some(1000.0));
        assert_eq!(quantity(&json!("lots")), None);
    }

    #[test]
    fn job_template_change_is_invalid_with_the_apiservers_wording() {
        let old = json!({"metadata": {"name": "m"}, "spec": {"template": {"spec": {"a": 1}}}});
        let new = json!({"metadata": {"name": "m"}, "spec": {"template": {"spec": {"a": 2}}}});
        let e = check_update(&rt("batch", "jobs"), &old, &new).unwrap_err();
        let s = e.to_status();
        assert_eq!(s["code"], 422);
        assert_eq!(s["reason"], "Invalid");
        assert_eq!(
            s["message"],
            "Job.batch \"m\" is invalid: spec.template: Invalid value: {\"spec\":{\"a\":2}}: field is immutable"
        );
        assert_eq!(s["details"]["causes"][0]["field"], "spec.template");
        assert_eq!(s["details"]["causes"][0]["reason"], "FieldValueInvalid");
    }

    #[test]
    fn immutable_configmap_rejects_data_and_unsetting_with_two_causes() {
        let old = json!({"metadata": {"name": "c"}, "immutable": true, "data": {"a": "1"}});
        let new = json!({"metadata": {"name": "c"}, "data": {"a": "2"}});
        let s = check_update(&rt("", "configmaps"), &old, &new)
            .unwrap_err()
            .to_status();
        assert_eq!(s["message"], "ConfigMap \"c\" is invalid: [immutable: Forbidden: field is immutable when `immutable` is set, data: Forbidden: field is immutable when `immutable` is set]");
        assert_eq!(s["details"]["causes"][1]["reason"], "FieldValueForbidden");
        let same = json!({"metadata": {"name": "c"}, "immutable": true, "data": {"a": "1"}});
        assert!(check_update(&rt("", "configmaps"), &old, &same).is_ok());
    }

    #[test]
    fn pvc_may_grow_but_not_shrink_or_change_class() {
        let pvc = |size: &str, class: &str| {
            json!({"metadata": {"name": "d"}, "spec": {"storageClassName": class,
                "resources": {"requests": {"storage": size}}}})
        };
        let t = rt("", "persistentvolumeclaims");
        assert!(check_update(&t, &pvc("1Gi", "a"), &pvc("2Gi", "a")).is_ok());
        let s = check_update(&t, &pvc("2Gi", "a"), &pvc("1Gi", "a"))
            .unwrap_err()
            .to_status();
        assert_eq!(
            s["details"]["causes"][0]["field"],
            "spec.resources.requests.storage"
        );
        let s = check_update(&t, &pvc("1Gi", "a"), &pvc("1Gi", "b"))
            .unwrap_err()
            .to_status();
        assert_eq!(s["details"]["causes"][0]["field"], "spec");
        assert!(s["message"]
            .as_str()
            .unwrap()
            .contains("spec is immutable after creation"));
    }

    #[test]
    fn statefulset_allows_template_but_not_claim_templates() {
        let sts = |image: &str, size: &str| {
            json!({"metadata": {"name": "db"}, "spec": {"replicas": 1, "serviceName": "db",
                "template": {"spec": {"containers": [{"image": image}]}},
                "volumeClaimTemplates": [{"spec": {"resources": {"requests": {"storage": size}}}}]}})
        };
        let t = rt("apps", "statefulsets");
        assert!(check_update(&t, &sts("a", "1Gi"), &sts("b", "1Gi")).is_ok());
        let s = check_update(&t, &sts("a", "1Gi"), &sts("a", "2Gi"))
            .unwrap_err()
            .to_status();
        assert_eq!(s["details"]["causes"][0]["reason"], "FieldValueForbidden");
        assert!(s["message"]
            .as_str()
            .unwrap()
            .contains("updates to statefulset spec for fields other than"));
    }

    #[test]
    fn service_cluster_ip_may_not_change_once_set() {
        let svc = |ip: &str| json!({"metadata": {"name": "s"}, "spec": {"clusterIP": ip, "clusterIPs": [ip]}});
        let t = rt("", "services");
        let s = check_update(&t, &svc("10.96.0.5"), &svc("None"))
            .unwrap_err()
            .to_status();
        assert_eq!(
            s["message"],
            "Service \"s\" is invalid: spec.clusterIPs[0]: Invalid value: [\"None\"]: may not change once set"
        );
    }
}
