//! Cleaning a live object into what a person would have written: server-set fields go, and so
//! does every field whose value equals what the apiserver defaults it to.
//!
//! Defaults come from a table (below), not from a server-side dry-run: a dry-run create needs
//! write permission on the SaaS cluster and a scratch namespace, and the snapshot is read-only
//! (list and get). The table follows `pkg/apis/{core,apps,batch}/v1/defaults.go` of Kubernetes
//! 1.33 for the kinds a SaaS ships; a default missing from the table stays in the output, which
//! is harmless (the value is explicit, and the same).

use serde_json::{Map, Value};

/// Metadata fields the server sets.
const SERVER_METADATA: &[&str] = &[
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "managedFields",
    "selfLink",
    "generateName",
    "ownerReferences",
    "finalizers",
];

/// Annotations the server or a client tool sets, never the author.
const SERVER_ANNOTATIONS: &[&str] = &[
    "kubectl.kubernetes.io/last-applied-configuration",
    "deployment.kubernetes.io/revision",
    "pv.kubernetes.io/bind-completed",
    "pv.kubernetes.io/bound-by-controller",
    "volume.beta.kubernetes.io/storage-provisioner",
    "volume.kubernetes.io/storage-provisioner",
    "volume.kubernetes.io/selected-node",
];

/// Labels the server sets.
const SERVER_LABELS: &[&str] = &["kubernetes.io/metadata.name"];

/// Removes server-set fields, then defaulted fields, in place.
pub fn clean(obj: &mut Value) {
    let kind = obj["kind"].as_str().unwrap_or_default().to_string();
    if let Some(o) = obj.as_object_mut() {
        o.remove("status");
    }
    if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
        for k in SERVER_METADATA {
            meta.remove(*k);
        }
        prune_map(meta, "annotations", |k| {
            SERVER_ANNOTATIONS.contains(&k) || k.starts_with("airlift.dev/")
        });
        prune_map(meta, "labels", |k| SERVER_LABELS.contains(&k));
    }
    match kind.as_str() {
        "Service" => clean_service(obj),
        "PersistentVolumeClaim" => {
            remove(obj, &["spec", "volumeName"]);
            remove_if(obj, &["spec", "volumeMode"], "Filesystem");
        }
        "Secret" => remove_if(obj, &["type"], "Opaque"),
        "Deployment" => {
            remove_if(obj, &["spec", "replicas"], 1);
            remove_if(obj, &["spec", "revisionHistoryLimit"], 10);
            remove_if(obj, &["spec", "progressDeadlineSeconds"], 600);
            remove_if(
                obj,
                &["spec", "strategy"],
                serde_json::json!({"type": "RollingUpdate",
                    "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}}),
            );
            clean_template(obj, &["spec", "template"]);
        }
        "StatefulSet" => {
            remove_if(obj, &["spec", "replicas"], 1);
            remove_if(obj, &["spec", "revisionHistoryLimit"], 10);
            remove_if(obj, &["spec", "podManagementPolicy"], "OrderedReady");
            remove_if(
                obj,
                &["spec", "updateStrategy"],
                serde_json::json!({"type": "RollingUpdate", "rollingUpdate": {"partition": 0}}),
            );
            remove_if(
                obj,
                &["spec", "persistentVolumeClaimRetentionPolicy"],
                serde_json::json!({"whenDeleted": "Retain", "whenScaled": "Retain"}),
            );
            if let Some(list) = obj
                .pointer_mut("/spec/volumeClaimTemplates")
                .and_then(Value::as_array_mut)
            {
                for t in list {
                    if let Some(o) = t.as_object_mut() {
                        o.remove("status");
                        o.remove("apiVersion");
                        o.remove("kind");
                    }
                    if let Some(m) = t.get_mut("metadata").and_then(Value::as_object_mut) {
                        m.remove("creationTimestamp");
                    }
                    remove_if(t, &["spec", "volumeMode"], "Filesystem");
                    drop_empty(t, &["metadata"]);
                }
            }
            clean_template(obj, &["spec", "template"]);
        }
        "DaemonSet" => {
            remove_if(obj, &["spec", "revisionHistoryLimit"], 10);
            remove_if(
                obj,
                &["spec", "updateStrategy"],
                serde_json::json!({"type": "RollingUpdate",
                    "rollingUpdate": {"maxSurge": 0, "maxUnavailable": 1}}),
            );
            clean_template(obj, &["spec", "template"]);
        }
        "Job" => {
            clean_job_spec(obj, &["spec"]);
        }
        "CronJob" => {
            remove_if(obj, &["spec", "concurrencyPolicy"], "Allow");
            remove_if(obj, &["spec", "suspend"], false);
            remove_if(obj, &["spec", "successfulJobsHistoryLimit"], 3);
            remove_if(obj, &["spec", "failedJobsHistoryLimit"], 1);
            clean_job_spec(obj, &["spec", "jobTemplate", "spec"]);
            drop_empty(obj, &["spec", "jobTemplate", "metadata"]);
        }
        _ => {}
    }
    drop_empty(obj, &["metadata", "annotations"]);
    drop_empty(obj, &["metadata", "labels"]);
}

fn clean_job_spec(obj: &mut Value, at: &[&str]) {
    let p = |s: &'static str| {
        let mut v: Vec<&str> = at.to_vec();
        v.push(s);
        v
    };
    remove_if(obj, &p("completions"), 1);
    remove_if(obj, &p("parallelism"), 1);
    remove_if(obj, &p("backoffLimit"), 6);
    remove_if(obj, &p("completionMode"), "NonIndexed");
    remove_if(obj, &p("suspend"), false);
    if get(obj, &p("podFailurePolicy")).is_none() {
        remove_if(obj, &p("podReplacementPolicy"), "TerminatingOrFailed");
    }
    // The generated selector and labels: the server adds them to every Job.
    if get(obj, &p("manualSelector")).and_then(Value::as_bool) != Some(true) {
        remove(obj, &p("selector"));
        let mut labels = p("template");
        labels.extend(["metadata", "labels"]);
        if let Some(m) = get_mut(obj, &labels).and_then(Value::as_object_mut) {
            for k in [
                "controller-uid",
                "batch.kubernetes.io/controller-uid",
                "job-name",
                "batch.kubernetes.io/job-name",
            ] {
                m.remove(k);
            }
        }
        drop_empty(obj, &labels);
    }
    clean_template(obj, &p("template"));
}

fn clean_template(obj: &mut Value, at: &[&str]) {
    let mut spec_path = at.to_vec();
    spec_path.push("spec");
    if let Some(m) = get_mut(obj, at)
        .and_then(|t| t.get_mut("metadata"))
        .and_then(Value::as_object_mut)
    {
        m.remove("creationTimestamp");
    }
    let mut meta_path = at.to_vec();
    meta_path.push("metadata");
    drop_empty(obj, &meta_path);
    if let Some(spec) = get_mut(obj, &spec_path) {
        clean_pod_spec(spec);
    }
}

/// Removes the pod spec and container defaults.
fn clean_pod_spec(spec: &mut Value) {
    remove_if(spec, &["restartPolicy"], "Always");
    remove_if(spec, &["terminationGracePeriodSeconds"], 30);
    remove_if(spec, &["dnsPolicy"], "ClusterFirst");
    remove_if(spec, &["schedulerName"], "default-scheduler");
    remove_if(spec, &["securityContext"], Value::Object(Map::new()));
    remove_if(spec, &["enableServiceLinks"], true);
    remove_if(spec, &["preemptionPolicy"], "PreemptLowerPriority");
    remove(spec, &["priority"]);
    for list in ["containers", "initContainers"] {
        let Some(cs) = spec.get_mut(list).and_then(Value::as_array_mut) else {
            continue;
        };
        for c in cs {
            remove_if(c, &["terminationMessagePath"], "/dev/termination-log");
            remove_if(c, &["terminationMessagePolicy"], "File");
            let default_pull = default_pull_policy(c["image"].as_str().unwrap_or_default());
            remove_if(c, &["imagePullPolicy"], default_pull);
            if let Some(ports) = c.get_mut("ports").and_then(Value::as_array_mut) {
                for p in ports {
                    remove_if(p, &["protocol"], "TCP");
                }
            }
            remove_if(c, &["resources"], Value::Object(Map::new()));
            for probe in ["livenessProbe", "readinessProbe", "startupProbe"] {
                if let Some(p) = c.get_mut(probe) {
                    remove_if(p, &["timeoutSeconds"], 1);
                    remove_if(p, &["periodSeconds"], 10);
                    remove_if(p, &["successThreshold"], 1);
                    remove_if(p, &["failureThreshold"], 3);
                    remove_if(p, &["httpGet", "scheme"], "HTTP");
                }
            }
        }
    }
}

/// The pull policy the apiserver defaults for `image`: Always for `:latest` or no tag (and no
/// digest), else IfNotPresent.
pub fn default_pull_policy(image: &str) -> &'static str {
    if image.contains('@') {
        return "IfNotPresent";
    }
    let last = image.rsplit('/').next().unwrap_or(image);
    match last.split_once(':') {
        Some((_, "latest")) | None => "Always",
        Some(_) => "IfNotPresent",
    }
}

fn clean_service(obj: &mut Value) {
    for f in [
        "clusterIP",
        "clusterIPs",
        "healthCheckNodePort",
        "ipFamilies",
        "ipFamilyPolicy",
    ] {
        remove(obj, &["spec", f]);
    }
    remove_if(obj, &["spec", "type"], "ClusterIP");
    remove_if(obj, &["spec", "sessionAffinity"], "None");
    remove_if(obj, &["spec", "internalTrafficPolicy"], "Cluster");
    let lb = matches!(
        obj.pointer("/spec/type").and_then(Value::as_str),
        Some("LoadBalancer" | "NodePort")
    );
    if lb {
        remove_if(obj, &["spec", "externalTrafficPolicy"], "Cluster");
        remove_if(obj, &["spec", "allocateLoadBalancerNodePorts"], true);
    }
    if let Some(ports) = obj.pointer_mut("/spec/ports").and_then(Value::as_array_mut) {
        for p in ports {
            remove(p, &["nodePort"]);
            remove_if(p, &["protocol"], "TCP");
            let port = p.get("port").cloned();
            if port.is_some() && p.get("targetPort") == port.as_ref() {
                remove(p, &["targetPort"]);
            }
        }
    }
}

fn prune_map(meta: &mut Map<String, Value>, key: &str, drop: impl Fn(&str) -> bool) {
    if let Some(m) = meta.get_mut(key).and_then(Value::as_object_mut) {
        m.retain(|k, _| !drop(k));
    }
}

fn get<'a>(v: &'a Value, path: &[&str]) -> Option<&'a Value> {
    path.iter().try_fold(v, |cur, k| cur.get(*k))
}

fn get_mut<'a>(v: &'a mut Value, path: &[&str]) -> Option<&'a mut Value> {
    path.iter().try_fold(v, |cur, k| cur.get_mut(*k))
}

fn remove(v: &mut Value, path: &[&str]) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    if let Some(m) = get_mut(v, parents).and_then(Value::as_object_mut) {
        m.remove(*last);
    }
}

fn remove_if(v: &mut Value, path: &[&str], default: impl Into<Value>) {
    let default = default.into();
    if get(v, path) == Some(&default) {
        remove(v, path);
    }
}

fn drop_empty(v: &mut Value, path: &[&str]) {
    let empty = get(v, path).is_some_and(|x| x.as_object().is_some_and(Map::is_empty));
    if empty {
        remove(v, path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn deployment_loses_server_fields_and_defaults_but_keeps_choices() {
        let mut d = json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "saas", "uid": "u", "resourceVersion": "9",
                "generation": 2, "creationTimestamp": "t", "managedFields": [{}],
                "annotations": {"deployment.kubernetes.io/revision": "3",
                    "kubectl.kubernetes.io/last-applied-configuration": "{}", "team": "core"}},
            "spec": {"replicas": 3, "revisionHistoryLimit": 10, "progressDeadlineSeconds": 600,
                "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}},
                "template": {"metadata": {"creationTimestamp": null, "labels": {"app": "web"}},
                    "spec": {"restartPolicy": "Always", "dnsPolicy": "ClusterFirst", "schedulerName": "default-scheduler",
                        "terminationGracePeriodSeconds": 60, "securityContext": {},
                        "containers": [{"name": "web", "image": "r/web:latest", "imagePullPolicy": "Always",
                            "terminationMessagePath": "/dev/termination-log", "terminationMessagePolicy": "File",
                            "ports": [{"containerPort": 80, "protocol": "TCP"}]}]}}},
            "status": {"replicas": 3}});
        clean(&mut d);
        assert_eq!(
            d,
            json!({"apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": {"name": "web", "namespace": "saas", "annotations": {"team": "core"}},
                "spec": {"replicas": 3,
                    "template": {"metadata": {"labels": {"app": "web"}},
                        "spec": {"terminationGracePeriodSeconds": 60,
                            "containers": [{"name": "web", "image": "r/web:latest",
                                "ports": [{"containerPort": 80}]}]}}}})
        );
    }

    #[test]
    fn service_loses_allocated_addresses_and_node_ports() {
        let mut s = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "lb"},
            "spec": {"type": "LoadBalancer", "clusterIP": "10.0.0.1", "clusterIPs": ["10.0.0.1"],
                "healthCheckNodePort": 31000, "externalTrafficPolicy": "Local",
                "ipFamilies": ["IPv4"], "ipFamilyPolicy": "SingleStack", "sessionAffinity": "None",
                "ports": [{"port": 443, "targetPort": 443, "nodePort": 30443, "protocol": "TCP"}]}});
        clean(&mut s);
        assert_eq!(
            s["spec"],
            json!({"type": "LoadBalancer", "externalTrafficPolicy": "Local", "ports": [{"port": 443}]})
        );
    }

    #[test]
    fn pull_policy_default_follows_the_tag() {
        assert_eq!(default_pull_policy("r/a"), "Always");
        assert_eq!(default_pull_policy("r:5000/a:latest"), "Always");
        assert_eq!(default_pull_policy("r:5000/a"), "Always");
        assert_eq!(default_pull_policy("r/a:1.0"), "IfNotPresent");
        assert_eq!(default_pull_policy("r/a@sha256:00"), "IfNotPresent");
    }
}
