//! Server-side apply (simplified), managedFields bookkeeping, JSON merge patch and JSON patch.
//!
//! Simplification (documented in docs/test-cluster.md): every list is treated as atomic (real
//! server-side apply merges associative lists such as `containers` by key); a field set is the set
//! of leaf paths (a leaf is a scalar, a list, or an empty map).

use std::collections::BTreeSet;

use serde_json::{json, Map, Value};

use super::meta;

/// A set of leaf field paths.
pub(crate) type FieldSet = BTreeSet<Vec<String>>;

const SYSTEM_METADATA: &[&str] = &[
    "name",
    "namespace",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "managedFields",
    "selfLink",
    "generateName",
];

/// Which part of an object a request may write: the main resource or the status subresource.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Part {
    /// Everything but `status` (when the type has a status subresource).
    Main { has_status: bool },
    /// Only `status`.
    Status,
    /// Only `spec.replicas`, through the `scale` subresource.
    Scale,
}

impl Part {
    fn subresource(self) -> Option<&'static str> {
        match self {
            Part::Main { .. } => None,
            Part::Status => Some("status"),
            Part::Scale => Some("scale"),
        }
    }
}

/// The leaf paths of `v` a request in `part` may own.
pub(crate) fn leaf_paths(v: &Value, part: Part) -> FieldSet {
    let mut out = FieldSet::new();
    let Some(map) = v.as_object() else {
        return out;
    };
    for (k, child) in map {
        if part == Part::Scale {
            if let Some(r) = v.pointer("/spec/replicas") {
                collect(r, vec!["spec".into(), "replicas".into()], &mut out);
            }
            return out;
        }
        let keep = match part {
            Part::Scale => false,
            Part::Status => k == "status",
            Part::Main { has_status } => {
                k != "apiVersion" && k != "kind" && !(has_status && k == "status")
            }
        };
        if !keep {
            continue;
        }
        if k == "metadata" {
            for (mk, mv) in child.as_object().into_iter().flatten() {
                if !SYSTEM_METADATA.contains(&mk.as_str()) {
                    collect(mv, vec![k.clone(), mk.clone()], &mut out);
                }
            }
        } else {
            collect(child, vec![k.clone()], &mut out);
        }
    }
    out
}

fn collect(v: &Value, path: Vec<String>, out: &mut FieldSet) {
    match v.as_object() {
        Some(m) if !m.is_empty() => {
            for (k, child) in m {
                let mut p = path.clone();
                p.push(k.clone());
                collect(child, p, out);
            }
        }
        _ => {
            out.insert(path);
        }
    }
}

/// Renders a field set in the `FieldsV1` format (`{"f:spec":{"f:replicas":{}}}`).
pub(crate) fn fields_v1(set: &FieldSet) -> Value {
    let mut root = Map::new();
    for path in set {
        let mut cur = &mut root;
        for seg in path {
            let entry = cur
                .entry(format!("f:{seg}"))
                .or_insert_with(|| Value::Object(Map::new()));
            let Value::Object(next) = entry else {
                break;
            };
            cur = next;
        }
    }
    Value::Object(root)
}

/// Parses `FieldsV1` back into leaf paths.
pub(crate) fn parse_fields_v1(v: &Value) -> FieldSet {
    fn walk(v: &Value, path: Vec<String>, out: &mut FieldSet) {
        let children: Vec<(&String, &Value)> = v
            .as_object()
            .map(|m| m.iter().filter(|(k, _)| k.starts_with("f:")).collect())
            .unwrap_or_default();
        if children.is_empty() {
            if !path.is_empty() {
                out.insert(path);
            }
            return;
        }
        for (k, child) in children {
            let mut p = path.clone();
            p.push(k[2..].to_string());
            walk(child, p, out);
        }
    }
    let mut out = FieldSet::new();
    walk(v, Vec::new(), &mut out);
    out
}

/// One `managedFields` entry.
#[derive(Debug, Clone)]
struct Entry {
    manager: String,
    operation: String,
    api_version: String,
    subresource: Option<String>,
    time: String,
    fields: FieldSet,
}

fn entries(obj: &Value) -> Vec<Entry> {
    obj["metadata"]["managedFields"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|e| Entry {
                    manager: e["manager"].as_str().unwrap_or_default().into(),
                    operation: e["operation"].as_str().unwrap_or_default().into(),
                    api_version: e["apiVersion"].as_str().unwrap_or_default().into(),
                    subresource: e["subresource"].as_str().map(String::from),
                    time: e["time"].as_str().unwrap_or_default().into(),
                    fields: parse_fields_v1(&e["fieldsV1"]),
                })
                .collect()
        })
        .unwrap_or_default()
}

fn set_entries(obj: &mut Value, list: Vec<Entry>) {
    let rendered: Vec<Value> = list
        .into_iter()
        .filter(|e| !e.fields.is_empty())
        .map(|e| {
            let mut v = json!({
                "manager": e.manager,
                "operation": e.operation,
                "apiVersion": e.api_version,
                "time": e.time,
                "fieldsType": "FieldsV1",
                "fieldsV1": fields_v1(&e.fields),
            });
            if let Some(s) = e.subresource {
                v["subresource"] = s.into();
            }
            v
        })
        .collect();
    if rendered.is_empty() {
        if let Some(m) = obj["metadata"].as_object_mut() {
            m.remove("managedFields");
        }
    } else {
        obj["metadata"]["managedFields"] = Value::Array(rendered);
    }
}

/// The value at `path`, if any.
pub(crate) fn get_path<'a>(v: &'a Value, path: &[String]) -> Option<&'a Value> {
    let mut cur = v;
    for seg in path {
        cur = cur.as_object()?.get(seg)?;
    }
    Some(cur)
}

/// Removes the value at `path`, then any maps left empty below the top level.
fn remove_path(v: &mut Value, path: &[String]) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    let mut cur = &mut *v;
    for seg in parents {
        match cur.as_object_mut().and_then(|m| m.get_mut(seg)) {
            Some(next) => cur = next,
            None => return,
        }
    }
    if let Some(m) = cur.as_object_mut() {
        m.remove(last);
    }
    for depth in (2..path.len()).rev() {
        let parent = &path[..depth];
        if get_path(v, parent)
            .and_then(Value::as_object)
            .is_some_and(Map::is_empty)
        {
            remove_path_exact(v, parent);
        } else {
            break;
        }
    }
}

fn remove_path_exact(v: &mut Value, path: &[String]) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    let mut cur = v;
    for seg in parents {
        match cur.as_object_mut().and_then(|m| m.get_mut(seg)) {
            Some(next) => cur = next,
            None => return,
        }
    }
    if let Some(m) = cur.as_object_mut() {
        m.remove(last);
    }
}

/// RFC 7386 JSON merge patch: maps merge recursively, `null` deletes, everything else replaces.
pub(crate) fn merge_patch(target: &mut Value, patch: &Value) {
    let Some(pm) = patch.as_object() else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    let Some(tm) = target.as_object_mut() else {
        return;
    };
    for (k, pv) in pm {
        if pv.is_null() {
            tm.remove(k);
        } else {
            merge_patch(tm.entry(k.clone()).or_insert(Value::Null), pv);
        }
    }
}

/// RFC 6902 JSON patch (`add`, `remove`, `replace`, `test`, `copy`, `move`).
pub(crate) fn json_patch(target: &mut Value, ops: &Value) -> Result<(), String> {
    let ops = ops.as_array().ok_or("a JSON patch must be an array")?;
    for op in ops {
        let path = op["path"]
            .as_str()
            .ok_or("JSON patch operation without path")?;
        match op["op"].as_str() {
            Some("add") => pointer_set(target, path, op["value"].clone(), true)?,
            Some("replace") => pointer_set(target, path, op["value"].clone(), false)?,
            Some("remove") => {
                pointer_take(target, path)?;
            }
            Some("test") => {
                if target.pointer(path) != Some(&op["value"]) {
                    return Err(format!("testing value {path} failed"));
                }
            }
            Some("copy") | Some("move") => {
                let from = op["from"].as_str().ok_or("copy/move without from")?;
                let v = if op["op"] == "move" {
                    pointer_take(target, from)?
                } else {
                    target
                        .pointer(from)
                        .cloned()
                        .ok_or_else(|| format!("path {from} not found"))?
                };
                pointer_set(target, path, v, true)?;
            }
            other => return Err(format!("unsupported JSON patch operation {other:?}")),
        }
    }
    Ok(())
}

fn split_pointer(path: &str) -> Result<(String, String), String> {
    let idx = path
        .rfind('/')
        .ok_or_else(|| format!("invalid path {path}"))?;
    let last = path[idx + 1..].replace("~1", "/").replace("~0", "~");
    Ok((path[..idx].to_string(), last))
}

fn pointer_set(target: &mut Value, path: &str, v: Value, add: bool) -> Result<(), String> {
    let (parent, last) = split_pointer(path)?;
    let p = target
        .pointer_mut(&parent)
        .ok_or_else(|| format!("path {parent} not found"))?;
    match p {
        Value::Object(m) => {
            if !add && !m.contains_key(&last) {
                return Err(format!("path {path} not found"));
            }
            m.insert(last, v);
        }
        Value::Array(a) => {
            if last == "-" {
                a.push(v);
            } else {
                let i: usize = last.parse().map_err(|_| format!("bad index in {path}"))?;
                if add && i <= a.len() {
                    a.insert(i, v);
                } else if !add && i < a.len() {
                    a[i] = v;
                } else {
                    return Err(format!("index out of range in {path}"));
                }
            }
        }
        _ => return Err(format!("path {parent} is not a container")),
    }
    Ok(())
}

fn pointer_take(target: &mut Value, path: &str) -> Result<Value, String> {
    let (parent, last) = split_pointer(path)?;
    let p = target
        .pointer_mut(&parent)
        .ok_or_else(|| format!("path {parent} not found"))?;
    let taken = match p {
        Value::Object(m) => m.remove(&last),
        Value::Array(a) => match last.parse::<usize>() {
            Ok(i) if i < a.len() => Some(a.remove(i)),
            _ => None,
        },
        _ => None,
    };
    taken.ok_or_else(|| format!("path {path} not found"))
}

/// Server-side apply of `applied` by `manager` over `existing` (an empty object when creating).
///
/// Returns the new object, or the `(manager, field)` conflicts when `force` is false and another
/// manager owns a field this apply would change.
pub(crate) fn server_side_apply(
    existing: &Value,
    applied: &Value,
    manager: &str,
    force: bool,
    api_version: &str,
    part: Part,
) -> Result<Value, Vec<(String, String)>> {
    let mut list = entries(existing);
    let new_set = leaf_paths(applied, part);
    let sub = part.subresource();
    let is_mine = |e: &Entry| {
        e.manager == manager && e.operation == "Apply" && e.subresource.as_deref() == sub
    };

    let mut conflicts = Vec::new();
    for e in list.iter_mut().filter(|e| !is_mine(e)) {
        let owned: Vec<Vec<String>> = e.fields.intersection(&new_set).cloned().collect();
        for p in owned {
            if get_path(existing, &p) != get_path(applied, &p) {
                if force {
                    e.fields.remove(&p);
                } else {
                    conflicts.push((
                        format!("\"{}\" using {}", e.manager, e.api_version),
                        format!(".{}", p.join(".")),
                    ));
                }
            }
        }
    }
    if !conflicts.is_empty() {
        return Err(conflicts);
    }

    let mut result = existing.clone();
    let previous = list
        .iter()
        .find(|e| is_mine(e))
        .map(|e| e.fields.clone())
        .unwrap_or_default();
    for p in previous.difference(&new_set) {
        let owned_elsewhere = list.iter().any(|e| !is_mine(e) && e.fields.contains(p));
        if !owned_elsewhere {
            remove_path(&mut result, p);
        }
    }
    for p in &new_set {
        if let Some(v) = get_path(applied, p) {
            set_path(&mut result, p, v.clone());
        }
    }
    list.retain(|e| !is_mine(e));
    list.push(Entry {
        manager: manager.into(),
        operation: "Apply".into(),
        api_version: api_version.into(),
        subresource: sub.map(String::from),
        time: meta::now(),
        fields: new_set,
    });
    set_entries(&mut result, list);
    Ok(result)
}

fn set_path(v: &mut Value, path: &[String], value: Value) {
    let mut cur = v;
    for seg in path {
        if !cur.is_object() {
            *cur = Value::Object(Map::new());
        }
        let Some(m) = cur.as_object_mut() else {
            return;
        };
        cur = m.entry(seg.clone()).or_insert(Value::Null);
    }
    if value.is_null() {
        // `null` in an apply configuration means "no opinion"; keep what is there.
        if cur.is_null() {
            *cur = Value::Object(Map::new());
        }
        return;
    }
    *cur = value;
}

/// Records an `Update` operation by `manager`: it takes ownership of every leaf that changed
/// between `old` and `new`; fields that disappeared leave every manager.
pub(crate) fn record_update(
    old: &Value,
    new: &mut Value,
    manager: &str,
    api_version: &str,
    part: Part,
) {
    let mut list = entries(old);
    let old_set = leaf_paths(old, part);
    let new_set = leaf_paths(new, part);
    let changed: FieldSet = new_set
        .iter()
        .filter(|p| get_path(old, p) != get_path(new, p))
        .cloned()
        .collect();
    let gone: FieldSet = old_set.difference(&new_set).cloned().collect();
    let sub = part.subresource();
    for e in &mut list {
        e.fields.retain(|p| !gone.contains(p));
        if !(e.manager == manager && e.operation == "Update" && e.subresource.as_deref() == sub) {
            e.fields.retain(|p| !changed.contains(p));
        }
    }
    if !changed.is_empty() {
        match list.iter_mut().find(|e| {
            e.manager == manager && e.operation == "Update" && e.subresource.as_deref() == sub
        }) {
            Some(e) => {
                e.fields.extend(changed);
                e.time = meta::now();
            }
            None => list.push(Entry {
                manager: manager.into(),
                operation: "Update".into(),
                api_version: api_version.into(),
                subresource: sub.map(String::from),
                time: meta::now(),
                fields: changed,
            }),
        }
    }
    set_entries(new, list);
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAIN: Part = Part::Main { has_status: false };

    #[test]
    fn fields_v1_round_trip() {
        let obj = json!({"metadata": {"name": "x", "labels": {"a": "1"}}, "data": {"k": "v", "e": {}}, "list": [1]});
        let set = leaf_paths(&obj, MAIN);
        assert_eq!(set.len(), 4, "{set:?}");
        let f = fields_v1(&set);
        assert_eq!(f["f:metadata"]["f:labels"]["f:a"], json!({}));
        assert_eq!(parse_fields_v1(&f), set);
    }

    #[test]
    fn apply_removes_fields_the_manager_dropped() {
        let first = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"a": "1", "b": "2"}});
        let v1 = server_side_apply(
            &json!({"metadata": {"name": "c"}}),
            &first,
            "m",
            false,
            "v1",
            MAIN,
        )
        .unwrap();
        assert_eq!(v1["data"], json!({"a": "1", "b": "2"}));
        assert_eq!(v1["metadata"]["managedFields"][0]["operation"], "Apply");
        let second = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"a": "3"}});
        let v2 = server_side_apply(&v1, &second, "m", false, "v1", MAIN).unwrap();
        assert_eq!(v2["data"], json!({"a": "3"}));
    }

    #[test]
    fn apply_keeps_fields_of_other_managers_and_reports_conflicts() {
        let base = json!({"metadata": {"name": "c"}, "data": {"a": "1"}});
        let mut owned = base.clone();
        record_update(
            &json!({"metadata": {"name": "c"}}),
            &mut owned,
            "other",
            "v1",
            MAIN,
        );
        let applied = json!({"metadata": {"name": "c"}, "data": {"a": "2", "b": "x"}});
        let err = server_side_apply(&owned, &applied, "m", false, "v1", MAIN).unwrap_err();
        assert_eq!(
            err,
            vec![("\"other\" using v1".to_string(), ".data.a".to_string())]
        );
        let forced = server_side_apply(&owned, &applied, "m", true, "v1", MAIN).unwrap();
        assert_eq!(forced["data"], json!({"a": "2", "b": "x"}));
        // Same value: no conflict, shared ownership.
        let same = json!({"metadata": {"name": "c"}, "data": {"a": "1"}});
        assert!(server_side_apply(&owned, &same, "m", false, "v1", MAIN).is_ok());
    }

    #[test]
    fn apply_to_main_resource_ignores_status() {
        let part = Part::Main { has_status: true };
        let applied = json!({"metadata": {"name": "d"}, "spec": {"replicas": 2}, "status": {"readyReplicas": 9}});
        let existing = json!({"metadata": {"name": "d"}, "status": {"readyReplicas": 1}});
        let out = server_side_apply(&existing, &applied, "m", false, "apps/v1", part).unwrap();
        assert_eq!(out["status"]["readyReplicas"], 1);
        assert_eq!(out["spec"]["replicas"], 2);
    }

    #[test]
    fn merge_and_json_patch() {
        let mut v = json!({"a": {"b": 1, "c": 2}, "l": [1, 2]});
        merge_patch(&mut v, &json!({"a": {"b": null, "d": 3}, "l": [3]}));
        assert_eq!(v, json!({"a": {"c": 2, "d": 3}, "l": [3]}));
        json_patch(
            &mut v,
            &json!([{"op": "add", "path": "/l/-", "value": 4},
            {"op": "replace", "path": "/a/c", "value": 5}, {"op": "remove", "path": "/a/d"}]),
        )
        .unwrap();
        assert_eq!(v, json!({"a": {"c": 5}, "l": [3, 4]}));
        assert!(json_patch(&mut v, &json!([{"op": "test", "path": "/a/c", "value": 6}])).is_err());
    }
}
