//! Server-side printing: `meta.k8s.io/v1 Table` responses, which `kubectl get` asks for.

use serde_json::{json, Value};

use super::meta;
use super::resources::ResourceType;

fn age(obj: &Value) -> String {
    let Some(created) = obj["metadata"]["creationTimestamp"]
        .as_str()
        .and_then(meta::parse_rfc3339)
    else {
        return "<unknown>".into();
    };
    let secs = meta::unix_now().saturating_sub(created);
    match secs {
        0..=119 => format!("{secs}s"),
        120..=7199 => format!("{}m", secs / 60),
        7200..=172_799 => format!("{}h", secs / 3600),
        _ => format!("{}d", secs / 86_400),
    }
}

fn int(v: &Value) -> i64 {
    v.as_i64().unwrap_or(0)
}

/// Extra columns per kind: (header, cell function).
type Column = (&'static str, fn(&Value) -> Value);

fn columns(kind: &str) -> Vec<Column> {
    match kind {
        "Namespace" | "PersistentVolumeClaim" => vec![("Status", |o| o["status"]["phase"].clone())],
        "Pod" => vec![
            ("Ready", |o| {
                let cs = o["status"]["containerStatuses"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default();
                let ready = cs.iter().filter(|c| c["ready"] == true).count();
                let total = o["spec"]["containers"].as_array().map_or(0, |c| c.len());
                format!("{ready}/{total}").into()
            }),
            ("Status", |o| {
                let waiting = o["status"]["containerStatuses"].as_array().and_then(|cs| {
                    cs.iter()
                        .find_map(|c| c["state"]["waiting"]["reason"].as_str().map(String::from))
                });
                waiting
                    .map(Value::from)
                    .unwrap_or_else(|| o["status"]["phase"].clone())
            }),
            ("Restarts", |o| {
                let cs = o["status"]["containerStatuses"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default();
                cs.iter()
                    .map(|c| int(&c["restartCount"]))
                    .sum::<i64>()
                    .into()
            }),
        ],
        "Deployment" => vec![
            ("Ready", |o| {
                format!(
                    "{}/{}",
                    int(&o["status"]["readyReplicas"]),
                    int(&o["spec"]["replicas"])
                )
                .into()
            }),
            ("Up-to-date", |o| {
                int(&o["status"]["updatedReplicas"]).into()
            }),
            ("Available", |o| {
                int(&o["status"]["availableReplicas"]).into()
            }),
        ],
        "StatefulSet" => vec![("Ready", |o| {
            format!(
                "{}/{}",
                int(&o["status"]["readyReplicas"]),
                int(&o["spec"]["replicas"])
            )
            .into()
        })],
        "Event" => vec![
            ("Type", |o| o["type"].clone()),
            ("Reason", |o| o["reason"].clone()),
            ("Object", |o| {
                let kind = o["involvedObject"]["kind"]
                    .as_str()
                    .unwrap_or_default()
                    .to_lowercase();
                format!(
                    "{kind}/{}",
                    o["involvedObject"]["name"].as_str().unwrap_or_default()
                )
                .into()
            }),
            ("Message", |o| o["message"].clone()),
        ],
        "ReplicaSet" => vec![
            ("Desired", |o| int(&o["spec"]["replicas"]).into()),
            ("Current", |o| int(&o["status"]["replicas"]).into()),
            ("Ready", |o| int(&o["status"]["readyReplicas"]).into()),
        ],
        "Node" => vec![
            ("Status", |_| "Ready".into()),
            ("Version", |o| {
                o["status"]["nodeInfo"]["kubeletVersion"].clone()
            }),
        ],
        "Service" => vec![
            ("Type", |o| o["spec"]["type"].clone()),
            ("Cluster-IP", |o| o["spec"]["clusterIP"].clone()),
        ],
        "Job" => vec![("Completions", |o| {
            format!(
                "{}/{}",
                int(&o["status"]["succeeded"]),
                int(&o["spec"]["completions"])
            )
            .into()
        })],
        _ => vec![],
    }
}

/// Converts objects to a Table; `include` is `includeObject` (`None`, `Metadata` or `Object`).
pub(crate) fn to_table(rt: &ResourceType, items: &[Value], include: &str, rv: u64) -> Value {
    let extra = columns(&rt.kind);
    let mut defs = vec![json!({"name": "Name", "type": "string", "format": "name",
        "description": "Name must be unique within a namespace.", "priority": 0})];
    for (h, _) in &extra {
        defs.push(
            json!({"name": h, "type": "string", "format": "", "description": h, "priority": 0}),
        );
    }
    defs.push(json!({"name": "Age", "type": "string", "format": "",
        "description": "CreationTimestamp is a timestamp representing the server time when this object was created.", "priority": 0}));
    let rows: Vec<Value> = items
        .iter()
        .map(|o| {
            let mut cells = vec![o["metadata"]["name"].clone()];
            cells.extend(extra.iter().map(|(_, f)| f(o)));
            cells.push(age(o).into());
            let object = match include {
                "Object" => o.clone(),
                "None" => Value::Null,
                _ => json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": o["metadata"]}),
            };
            json!({"cells": cells, "object": object})
        })
        .collect();
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {"resourceVersion": rv.to_string()},
        "columnDefinitions": defs,
        "rows": rows,
    })
}
