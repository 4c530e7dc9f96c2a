//! The object store (JSON objects keyed by group/resource and namespace/name) and the label and
//! field selectors used to filter lists.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::Value;

/// `(group, plural)`: objects of every version of a resource share one bucket.
pub(crate) type Bucket = (String, String);

/// All stored objects and the resourceVersion counter. Objects are shared (`Arc`), so the
/// controller can take a snapshot of a resource's objects every tick without copying them.
#[derive(Debug, Default)]
pub(crate) struct Store {
    data: BTreeMap<Bucket, BTreeMap<(String, String), Arc<Value>>>,
    rv: u64,
}

impl Store {
    /// The last resourceVersion handed out.
    pub fn current_rv(&self) -> u64 {
        self.rv
    }

    /// The next resourceVersion.
    pub fn next_rv(&mut self) -> u64 {
        self.rv += 1;
        self.rv
    }

    /// One object.
    pub fn get(&self, group: &str, plural: &str, ns: &str, name: &str) -> Option<&Value> {
        self.data
            .get(&(group.to_string(), plural.to_string()))?
            .get(&(ns.to_string(), name.to_string()))
            .map(|v| &**v)
    }

    /// Objects of a resource, in one namespace or (with `None`) all, sorted by namespace and name.
    pub fn list(&self, group: &str, plural: &str, ns: Option<&str>) -> Vec<&Value> {
        self.entries(group, plural, ns).map(|v| &**v).collect()
    }

    /// Like [`Store::list`], as shared handles that outlive a borrow of the store (the
    /// controller reads a snapshot while it writes).
    pub fn list_shared(&self, group: &str, plural: &str, ns: Option<&str>) -> Vec<Arc<Value>> {
        self.entries(group, plural, ns).map(Arc::clone).collect()
    }

    /// The stored objects of a resource in key order; in one namespace, only that namespace's
    /// range of the map is visited.
    fn entries(
        &self,
        group: &str,
        plural: &str,
        ns: Option<&str>,
    ) -> impl Iterator<Item = &Arc<Value>> + '_ {
        let bucket = self.data.get(&(group.to_string(), plural.to_string()));
        let ns = ns.map(str::to_string);
        let start = (ns.clone().unwrap_or_default(), String::new());
        bucket
            .into_iter()
            .flat_map(move |m| m.range(start.clone()..))
            .take_while(move |((n, _), _)| ns.as_ref().is_none_or(|want| want == n))
            .map(|(_, v)| v)
    }

    /// Stores an object, stamping a new resourceVersion; returns the stored copy.
    pub fn put(&mut self, group: &str, plural: &str, mut obj: Value) -> Value {
        let rv = self.next_rv();
        obj["metadata"]["resourceVersion"] = Value::String(rv.to_string());
        let key = (
            obj["metadata"]["namespace"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
            obj["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
        );
        self.data
            .entry((group.to_string(), plural.to_string()))
            .or_default()
            .insert(key, Arc::new(obj.clone()));
        obj
    }

    /// Removes an object and returns it.
    pub fn remove(&mut self, group: &str, plural: &str, ns: &str, name: &str) -> Option<Value> {
        let bucket = self
            .data
            .get_mut(&(group.to_string(), plural.to_string()))?;
        let obj = bucket.remove(&(ns.to_string(), name.to_string()));
        if obj.is_some() {
            self.next_rv();
        }
        obj.map(|o| Arc::try_unwrap(o).unwrap_or_else(|shared| (*shared).clone()))
    }

    /// Removes a whole resource bucket (when its CRD goes away).
    pub fn drop_bucket(&mut self, group: &str, plural: &str) {
        self.data.remove(&(group.to_string(), plural.to_string()));
    }

    /// Every `(bucket, namespace, name, uid, ownerReference uids)` in the store.
    pub fn index(&self) -> Vec<(Bucket, String, String, String, Vec<String>)> {
        let mut out = Vec::new();
        for (bucket, objs) in &self.data {
            for ((ns, name), obj) in objs {
                let owners = obj["metadata"]["ownerReferences"]
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .filter_map(|o| o["uid"].as_str().map(String::from))
                            .collect()
                    })
                    .unwrap_or_default();
                let uid = obj["metadata"]["uid"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string();
                out.push((bucket.clone(), ns.clone(), name.clone(), uid, owners));
            }
        }
        out
    }
}

/// One requirement of a label selector.
#[derive(Debug, Clone, PartialEq)]
enum Requirement {
    Eq(String, String),
    NotEq(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    NotExists(String),
}

/// A parsed label selector (`a=b,c!=d,e in (f,g),!h`).
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct LabelSelector(Vec<Requirement>);

impl LabelSelector {
    /// Parses the string form used in the `labelSelector` query parameter.
    pub fn parse(s: &str) -> Result<Self, String> {
        let mut parts = Vec::new();
        let mut depth = 0;
        let mut cur = String::new();
        for c in s.chars() {
            match c {
                '(' => depth += 1,
                ')' => depth -= 1,
                ',' if depth == 0 => {
                    parts.push(std::mem::take(&mut cur));
                    continue;
                }
                _ => {}
            }
            cur.push(c);
        }
        parts.push(cur);
        let mut reqs = Vec::new();
        for p in parts.iter().map(|p| p.trim()).filter(|p| !p.is_empty()) {
            reqs.push(Self::requirement(p)?);
        }
        Ok(LabelSelector(reqs))
    }

    fn requirement(p: &str) -> Result<Requirement, String> {
        let set = |rest: &str| -> Result<Vec<String>, String> {
            let inner = rest
                .trim()
                .strip_prefix('(')
                .and_then(|r| r.strip_suffix(')'))
                .ok_or_else(|| format!("unable to parse requirement: {p:?}: expected (values)"))?;
            Ok(inner.split(',').map(|v| v.trim().to_string()).collect())
        };
        if let Some((k, v)) = p.split_once("!=") {
            return Ok(Requirement::NotEq(k.trim().into(), v.trim().into()));
        }
        if let Some((k, v)) = p.split_once("==").or_else(|| p.split_once('=')) {
            return Ok(Requirement::Eq(k.trim().into(), v.trim().into()));
        }
        if let Some((k, rest)) = p.split_once(" notin ") {
            return Ok(Requirement::NotIn(k.trim().into(), set(rest)?));
        }
        if let Some((k, rest)) = p.split_once(" in ") {
            return Ok(Requirement::In(k.trim().into(), set(rest)?));
        }
        if let Some(k) = p.strip_prefix('!') {
            return Ok(Requirement::NotExists(k.trim().into()));
        }
        if p.contains(char::is_whitespace) {
            return Err(format!("unable to parse requirement: {p:?}"));
        }
        Ok(Requirement::Exists(p.into()))
    }

    /// Whether the object's `metadata.labels` satisfy every requirement.
    pub fn matches(&self, obj: &Value) -> bool {
        let labels = &obj["metadata"]["labels"];
        let get = |k: &str| labels[k].as_str();
        self.0.iter().all(|r| match r {
            Requirement::Eq(k, v) => get(k) == Some(v.as_str()),
            Requirement::NotEq(k, v) => get(k) != Some(v.as_str()),
            Requirement::In(k, vs) => get(k).is_some_and(|x| vs.iter().any(|v| v == x)),
            Requirement::NotIn(k, vs) => !get(k).is_some_and(|x| vs.iter().any(|v| v == x)),
            Requirement::Exists(k) => get(k).is_some(),
            Requirement::NotExists(k) => get(k).is_none(),
        })
    }

    /// Builds a selector from a `metav1.LabelSelector` object (`matchLabels` and `matchExpressions`).
    pub fn from_object(sel: &Value) -> Self {
        let mut reqs = Vec::new();
        if let Some(m) = sel["matchLabels"].as_object() {
            for (k, v) in m {
                reqs.push(Requirement::Eq(
                    k.clone(),
                    v.as_str().unwrap_or_default().into(),
                ));
            }
        }
        for e in sel["matchExpressions"].as_array().into_iter().flatten() {
            let key = e["key"].as_str().unwrap_or_default().to_string();
            let values: Vec<String> = e["values"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|v| v.as_str().map(String::from))
                        .collect()
                })
                .unwrap_or_default();
            reqs.push(match e["operator"].as_str() {
                Some("In") => Requirement::In(key, values),
                Some("NotIn") => Requirement::NotIn(key, values),
                Some("DoesNotExist") => Requirement::NotExists(key),
                _ => Requirement::Exists(key),
            });
        }
        LabelSelector(reqs)
    }
}

/// A parsed field selector (`metadata.name=x,involvedObject.kind=Pod,status.phase!=Running`).
#[derive(Debug, Clone, Default)]
pub(crate) struct FieldSelector(Vec<(Vec<String>, bool, String)>);

impl FieldSelector {
    /// Parses the `fieldSelector` query parameter.
    pub fn parse(s: &str) -> Result<Self, String> {
        let mut out = Vec::new();
        for p in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (k, eq, v) = if let Some((k, v)) = p.split_once("!=") {
                (k, false, v)
            } else if let Some((k, v)) = p.split_once("==").or_else(|| p.split_once('=')) {
                (k, true, v)
            } else {
                return Err(format!("invalid selector: '{p}'; can't understand '{p}'"));
            };
            out.push((
                k.trim().split('.').map(String::from).collect(),
                eq,
                v.trim().to_string(),
            ));
        }
        Ok(FieldSelector(out))
    }

    /// Whether every term holds; a missing field compares as the empty string.
    pub fn matches(&self, obj: &Value) -> bool {
        self.0.iter().all(|(path, eq, want)| {
            let mut cur = obj;
            for seg in path {
                cur = &cur[seg.as_str()];
            }
            let got = match cur {
                Value::String(s) => s.clone(),
                Value::Null => String::new(),
                other => other.to_string(),
            };
            (got == *want) == *eq
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn label_selector_forms() {
        let obj = json!({"metadata": {"labels": {"app": "web", "tier": "front"}}});
        for (sel, want) in [
            ("app=web", true),
            ("app==web,tier=front", true),
            ("app!=web", false),
            ("tier in (front, back)", true),
            ("tier notin (front)", false),
            ("app", true),
            ("!app", false),
            ("!missing", true),
            ("", true),
        ] {
            assert_eq!(
                LabelSelector::parse(sel).unwrap().matches(&obj),
                want,
                "{sel}"
            );
        }
        assert!(LabelSelector::parse("a b").is_err());
    }

    #[test]
    fn label_selector_from_match_expressions() {
        let sel = json!({"matchLabels": {"app": "web"},
            "matchExpressions": [{"key": "tier", "operator": "In", "values": ["front"]}]});
        let s = LabelSelector::from_object(&sel);
        assert!(s.matches(&json!({"metadata": {"labels": {"app": "web", "tier": "front"}}})));
        assert!(!s.matches(&json!({"metadata": {"labels": {"app": "web"}}})));
    }

    #[test]
    fn field_selector_on_nested_fields() {
        let ev = json!({"involvedObject": {"kind": "Pod", "name": "p1"}, "type": "Warning"});
        assert!(
            FieldSelector::parse("involvedObject.kind=Pod,involvedObject.name=p1")
                .unwrap()
                .matches(&ev)
        );
        assert!(!FieldSelector::parse("type!=Warning").unwrap().matches(&ev));
        assert!(FieldSelector::parse("bogus").is_err());
    }

    #[test]
    fn store_stamps_increasing_resource_versions() {
        let mut s = Store::default();
        let a = s.put(
            "",
            "configmaps",
            json!({"metadata": {"name": "a", "namespace": "x"}}),
        );
        let b = s.put(
            "",
            "configmaps",
            json!({"metadata": {"name": "b", "namespace": "x"}}),
        );
        let ra: u64 = a["metadata"]["resourceVersion"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        let rb: u64 = b["metadata"]["resourceVersion"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!(rb > ra);
        assert_eq!(s.list("", "configmaps", Some("x")).len(), 2);
        assert_eq!(s.list("", "configmaps", Some("y")).len(), 0);
        assert!(s.remove("", "configmaps", "x", "a").is_some());
        assert!(s.get("", "configmaps", "x", "a").is_none());
    }
}
