//! The server's state (store, served types, knobs) and the API verbs on it.

use std::collections::{HashMap, VecDeque};
use std::time::Instant;

use serde_json::{json, Value};
use tokio::sync::broadcast;

use super::apply::{self, Part};
use super::meta::{self, ApiError};
use super::resources::{ResourceType, Resources};
use super::store::{Bucket, FieldSelector, LabelSelector, Store};
use super::{DenyRule, FailureMode, NodeSpec, RequestRecord};

/// A change notification for watchers.
#[derive(Debug, Clone)]
pub(crate) struct WatchEvent {
    /// Which resource bucket changed.
    pub bucket: Bucket,
    /// `ADDED`, `MODIFIED` or `DELETED`.
    pub kind: &'static str,
    /// The object after the change (before it, for deletions).
    pub object: Value,
    /// The resourceVersion of the change.
    pub rv: u64,
}

/// How many past changes a watch can resume from.
const HISTORY: usize = 4096;

/// What the failure knobs match.
#[derive(Debug, Clone)]
pub(crate) enum FailTarget {
    /// A workload by name (and namespace, if given).
    Workload(Option<String>, String),
    /// Any container image containing this substring.
    Image(String),
}

/// Options common to writes.
#[derive(Debug, Clone)]
pub(crate) struct WriteOpts {
    /// `dryRun=All`: validate and compute, store nothing.
    pub dry_run: bool,
    /// The field manager.
    pub manager: String,
    /// `force=true` for apply.
    pub force: bool,
}

/// The whole server state, behind one mutex.
#[derive(Debug)]
pub(crate) struct State {
    pub store: Store,
    pub resources: Resources,
    pub version: String,
    pub nodes: Vec<NodeSpec>,
    pub failures: Vec<(FailTarget, FailureMode)>,
    /// Image as written in a Pod → the digest the test kubelet "pulled" (`TestCluster::pull_digest`).
    pub image_digests: std::collections::BTreeMap<String, String>,
    pub denials: Vec<DenyRule>,
    pub requests: Vec<RequestRecord>,
    pub ready_delay: std::time::Duration,
    pub watch_tx: broadcast::Sender<WatchEvent>,
    /// When each object (by uid) was created or last had its spec changed.
    pub changed_at: HashMap<String, Instant>,
    /// Recent changes, oldest first, for watches that resume from a resourceVersion.
    pub history: VecDeque<WatchEvent>,
    /// The cluster CA (PEM), published in every namespace as ConfigMap `kube-root-ca.crt`.
    pub root_ca: String,
    /// Whether the kubelet resolves images against their registries (`ClusterOptions::pull_images`).
    pub pull_images: bool,
    /// What the image puller found, per image, node architecture and credential.
    pub pulls: HashMap<super::puller::PullKey, super::puller::PullRecord>,
}

fn name_of(v: &Value) -> &str {
    v["metadata"]["name"].as_str().unwrap_or_default()
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.')
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name.ends_with(|c: char| c.is_ascii_alphanumeric())
}

/// The object without metadata and (when it has a subresource) status: what `generation` tracks.
fn spec_part(v: &Value, has_status: bool) -> Value {
    let mut c = v.clone();
    if let Some(m) = c.as_object_mut() {
        m.remove("metadata");
        m.remove("apiVersion");
        m.remove("kind");
        if has_status {
            m.remove("status");
        }
    }
    c
}

/// The object without its resourceVersion and managedFields timestamps.
fn without_volatile(v: &Value) -> Value {
    let mut c = v.clone();
    if let Some(m) = c["metadata"].as_object_mut() {
        m.remove("resourceVersion");
    }
    for e in c["metadata"]["managedFields"]
        .as_array_mut()
        .into_iter()
        .flatten()
    {
        if let Some(m) = e.as_object_mut() {
            m.remove("time");
        }
    }
    c
}

impl State {
    /// A fresh state with the built-in types and no objects.
    pub fn new(version: String, nodes: Vec<NodeSpec>, ready_delay: std::time::Duration) -> Self {
        let (watch_tx, _) = broadcast::channel(4096);
        State {
            store: Store::default(),
            resources: Resources::builtin(),
            version,
            nodes,
            failures: Vec::new(),
            image_digests: std::collections::BTreeMap::new(),
            denials: Vec::new(),
            requests: Vec::new(),
            ready_delay,
            watch_tx,
            changed_at: HashMap::new(),
            history: VecDeque::new(),
            root_ca: String::new(),
            pull_images: false,
            pulls: HashMap::new(),
        }
    }

    fn for_version(rt: &ResourceType, mut obj: Value) -> Value {
        obj["apiVersion"] = rt.api_version().into();
        obj["kind"] = rt.kind.clone().into();
        obj
    }

    /// `GET` one object.
    pub fn get(&self, rt: &ResourceType, ns: &str, name: &str) -> Result<Value, ApiError> {
        self.store
            .get(&rt.group, &rt.plural, ns, name)
            .map(|o| Self::for_version(rt, o.clone()))
            .ok_or_else(|| ApiError::not_found(&rt.group, &rt.plural, name))
    }

    /// `GET` a collection, filtered by selectors.
    pub fn list(
        &self,
        rt: &ResourceType,
        ns: Option<&str>,
        labels: &LabelSelector,
        fields: &FieldSelector,
    ) -> Value {
        let items: Vec<Value> = self
            .store
            .list(&rt.group, &rt.plural, ns)
            .into_iter()
            .filter(|o| labels.matches(o) && fields.matches(o))
            .map(|o| Self::for_version(rt, o.clone()))
            .collect();
        json!({
            "kind": format!("{}List", rt.kind),
            "apiVersion": rt.api_version(),
            "metadata": {"resourceVersion": self.store.current_rv().to_string()},
            "items": items,
        })
    }

    fn check_namespace(&self, rt: &ResourceType, ns: &str) -> Result<(), ApiError> {
        if !rt.namespaced {
            return Ok(());
        }
        match self.store.get("", "namespaces", "", ns) {
            None => Err(ApiError::not_found("", "namespaces", ns)),
            Some(n) if !n["metadata"]["deletionTimestamp"].is_null() => Err(ApiError::forbidden(
                format!("{} is forbidden: unable to create new content in namespace {ns} because it is being terminated",
                    meta::qualified(&rt.group, &rt.plural))).with_cause("NamespaceTerminating")),
            Some(_) => Ok(()),
        }
    }

    /// Checks the body's identity against the URL and fills apiVersion/kind/namespace.
    fn normalise(
        rt: &ResourceType,
        ns: &str,
        url_name: Option<&str>,
        mut body: Value,
    ) -> Result<Value, ApiError> {
        if !body.is_object() {
            return Err(ApiError::bad_request(
                "the request body must be a JSON or YAML object",
            ));
        }
        if let Some(k) = body["kind"].as_str() {
            if k != rt.kind {
                return Err(ApiError::bad_request(format!(
                    "the kind {k:?} in the body does not match the resource {} (kind {:?})",
                    rt.plural, rt.kind
                )));
            }
        }
        if let Some(av) = body["apiVersion"].as_str() {
            let group = av.rsplit_once('/').map(|(g, _)| g).unwrap_or("");
            if group != rt.group {
                return Err(ApiError::bad_request(format!(
                    "the apiVersion {av:?} in the body does not match the API group {:?}",
                    rt.group
                )));
            }
        }
        body = Self::for_version(rt, body);
        if !body["metadata"].is_object() {
            body["metadata"] = json!({});
        }
        if let Some(n) = url_name {
            match body["metadata"]["name"].as_str() {
                None | Some("") => body["metadata"]["name"] = n.into(),
                Some(b) if b != n => {
                    return Err(ApiError::bad_request(format!(
                        "the name of the object ({b}) does not match the name on the URL ({n})"
                    )))
                }
                Some(_) => {}
            }
        }
        if rt.namespaced {
            match body["metadata"]["namespace"].as_str() {
                None | Some("") => body["metadata"]["namespace"] = ns.into(),
                Some(b) if b != ns => {
                    return Err(ApiError::bad_request(format!(
                        "the namespace of the provided object does not match the namespace sent on the request ({b} != {ns})"
                    )))
                }
                Some(_) => {}
            }
        } else if let Some(m) = body["metadata"].as_object_mut() {
            m.remove("namespace");
        }
        Ok(body)
    }

    /// An update of `old` to `new` through a subresource other than status (`scale`).
    pub(crate) fn commit_write(
        &mut self,
        rt: &ResourceType,
        old: &Value,
        new: Value,
        dry_run: bool,
    ) -> Result<Value, ApiError> {
        self.commit(rt, Some(old), new, dry_run)
    }

    /// Fills system metadata, applies defaults, and (unless dry-run) stores the object.
    fn commit(
        &mut self,
        rt: &ResourceType,
        old: Option<&Value>,
        mut obj: Value,
        dry_run: bool,
    ) -> Result<Value, ApiError> {
        let name = name_of(&obj).to_string();
        if !valid_name(&name) {
            return Err(ApiError::invalid(&rt.group, &rt.kind, &name, "metadata.name",
                &format!("Invalid value: \"{name}\": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character")));
        }
        let md = obj["metadata"]
            .as_object_mut()
            .ok_or_else(|| ApiError::bad_request("metadata must be an object"))?;
        md.remove("selfLink");
        let spec_changed = match old {
            None => {
                md.insert("uid".into(), meta::new_uid().into());
                md.insert("creationTimestamp".into(), meta::now().into());
                if rt.generation {
                    md.insert("generation".into(), 1.into());
                }
                md.remove("deletionTimestamp");
                true
            }
            Some(o) => {
                for k in [
                    "uid",
                    "creationTimestamp",
                    "deletionTimestamp",
                    "generation",
                ] {
                    match o["metadata"].get(k) {
                        Some(v) => md.insert(k.into(), v.clone()),
                        None => md.remove(k),
                    };
                }
                false
            }
        };
        // Defaults first, as the apiserver decodes with defaults before it compares or validates.
        super::defaults::admit(self, rt, old, &mut obj)?;
        let spec_changed = match old {
            None => spec_changed,
            Some(o) => {
                super::immutable::check_update(rt, o, &obj)?;
                let changed = spec_part(o, rt.status) != spec_part(&obj, rt.status);
                if changed && rt.generation {
                    let g = o["metadata"]["generation"].as_i64().unwrap_or(0) + 1;
                    obj["metadata"]["generation"] = g.into();
                }
                changed
            }
        };
        // A write that changes nothing (but managedFields timestamps) is not a write: no new
        // resourceVersion, no watch event — as on a real apiserver.
        if let Some(o) = old {
            if without_volatile(o) == without_volatile(&obj) {
                return Ok(Self::for_version(rt, o.clone()));
            }
        }
        if dry_run {
            return Ok(obj);
        }
        let uid = obj["metadata"]["uid"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        if spec_changed {
            self.changed_at.insert(uid, Instant::now());
        }
        // A deleting object whose last finalizer went away is removed for real.
        if !obj["metadata"]["deletionTimestamp"].is_null()
            && obj["metadata"]["finalizers"]
                .as_array()
                .is_none_or(|f| f.is_empty())
            && rt.plural != "namespaces"
        {
            let ns = obj["metadata"]["namespace"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            self.remove_now(rt, &ns, &name, "Background");
            return Ok(obj);
        }
        let stored = self.store.put(&rt.group, &rt.plural, obj);
        if rt.group == "apiextensions.k8s.io" && rt.plural == "customresourcedefinitions" {
            // Validated in admission, so this cannot fail here; keep serving what was valid.
            let _ = self.resources.register_crd(&stored);
        }
        let kind = if old.is_some() { "MODIFIED" } else { "ADDED" };
        self.notify(rt, kind, &stored);
        Ok(Self::for_version(rt, stored))
    }

    fn notify(&mut self, rt: &ResourceType, kind: &'static str, obj: &Value) {
        let rv = self.store.current_rv();
        let mut object = obj.clone();
        object["metadata"]["resourceVersion"] = rv.to_string().into();
        let ev = WatchEvent {
            bucket: (rt.group.clone(), rt.plural.clone()),
            kind,
            object,
            rv,
        };
        if self.history.len() >= HISTORY {
            self.history.pop_front();
        }
        self.history.push_back(ev.clone());
        let _ = self.watch_tx.send(ev);
    }

    /// `POST` to a collection.
    pub fn create(
        &mut self,
        rt: &ResourceType,
        ns: &str,
        body: Value,
        opts: &WriteOpts,
    ) -> Result<Value, ApiError> {
        let mut obj = Self::normalise(rt, ns, None, body)?;
        if obj["metadata"]["name"].as_str().is_none_or(str::is_empty) {
            let Some(prefix) = obj["metadata"]["generateName"].as_str() else {
                return Err(ApiError::invalid(
                    &rt.group,
                    &rt.kind,
                    "",
                    "metadata.name",
                    "Required value: name or generateName is required",
                ));
            };
            obj["metadata"]["name"] = format!("{prefix}{}", meta::random_suffix(5)).into();
        }
        self.check_namespace(rt, ns)?;
        let name = name_of(&obj).to_string();
        if self.store.get(&rt.group, &rt.plural, ns, &name).is_some() {
            return Err(ApiError::already_exists(&rt.group, &rt.plural, &name));
        }
        for k in ["resourceVersion", "uid", "managedFields"] {
            if let Some(m) = obj["metadata"].as_object_mut() {
                m.remove(k);
            }
        }
        let part = Part::Main { has_status: false };
        apply::record_update(
            &json!({"metadata": {}}),
            &mut obj,
            &opts.manager,
            &rt.api_version(),
            part,
        );
        self.commit(rt, None, obj, opts.dry_run)
    }

    fn existing(&self, rt: &ResourceType, ns: &str, name: &str) -> Result<Value, ApiError> {
        self.store
            .get(&rt.group, &rt.plural, ns, name)
            .cloned()
            .ok_or_else(|| ApiError::not_found(&rt.group, &rt.plural, name))
    }

    /// Merges the writable part of `new` into `old` according to `part`.
    fn scoped(rt: &ResourceType, old: &Value, new: Value, part: Part) -> Value {
        match part {
            Part::Status => {
                let mut out = old.clone();
                out["status"] = new.get("status").cloned().unwrap_or(Value::Null);
                if out["status"].is_null() {
                    if let Some(m) = out.as_object_mut() {
                        m.remove("status");
                    }
                }
                out
            }
            Part::Scale => {
                let mut out = old.clone();
                out["spec"]["replicas"] = new
                    .pointer("/spec/replicas")
                    .cloned()
                    .unwrap_or(Value::Null);
                out
            }
            Part::Main { .. } => {
                let mut out = new;
                if rt.status {
                    match old.get("status") {
                        Some(s) => out["status"] = s.clone(),
                        None => {
                            if let Some(m) = out.as_object_mut() {
                                m.remove("status");
                            }
                        }
                    }
                }
                out
            }
        }
    }

    fn check_rv(rt: &ResourceType, old: &Value, new: &Value) -> Result<(), ApiError> {
        match new["metadata"]["resourceVersion"].as_str() {
            Some(rv) if !rv.is_empty() && Some(rv) != old["metadata"]["resourceVersion"].as_str() => {
                Err(ApiError::conflict(&rt.group, &rt.plural, name_of(old),
                    "the object has been modified; please apply your changes to the latest version and try again"))
            }
            _ => Ok(()),
        }
    }

    /// `PUT` an object (main resource or status).
    pub fn replace(
        &mut self,
        rt: &ResourceType,
        ns: &str,
        name: &str,
        body: Value,
        opts: &WriteOpts,
        part: Part,
    ) -> Result<Value, ApiError> {
        let new = Self::normalise(rt, ns, Some(name), body)?;
        let old = self.existing(rt, ns, name)?;
        Self::check_rv(rt, &old, &new)?;
        let mut merged = Self::scoped(rt, &old, new, part);
        merged["metadata"]["managedFields"] = old["metadata"]["managedFields"].clone();
        apply::record_update(&old, &mut merged, &opts.manager, &rt.api_version(), part);
        self.commit(rt, Some(&old), merged, opts.dry_run)
    }

    /// `PATCH` an object; returns the object and whether it was created (apply only).
    pub fn patch(
        &mut self,
        rt: &ResourceType,
        ns: &str,
        name: &str,
        (content_type, body): (&str, Value),
        opts: &WriteOpts,
        part: Part,
    ) -> Result<(Value, bool), ApiError> {
        let existing = self.store.get(&rt.group, &rt.plural, ns, name).cloned();
        if content_type == "application/apply-patch+yaml" {
            let applied = Self::normalise(rt, ns, Some(name), body)?;
            if applied["apiVersion"].is_null() || applied["kind"].is_null() {
                return Err(ApiError::bad_request(
                    "apiVersion and kind must be set in an apply configuration",
                ));
            }
            if opts.manager.is_empty() {
                return Err(ApiError::invalid(
                    "meta.k8s.io",
                    "PatchOptions",
                    "",
                    "fieldManager",
                    "Required value: is required for apply patch",
                ));
            }
            let created = existing.is_none();
            if created {
                if part == Part::Status {
                    return Err(ApiError::not_found(&rt.group, &rt.plural, name));
                }
                self.check_namespace(rt, ns)?;
            }
            let base = existing.clone().unwrap_or_else(|| {
                let mut b = json!({"apiVersion": rt.api_version(), "kind": rt.kind, "metadata": {"name": name}});
                if rt.namespaced {
                    b["metadata"]["namespace"] = ns.into();
                }
                b
            });
            if let Some(old) = &existing {
                Self::check_rv(rt, old, &applied)?;
            }
            let part = match part {
                Part::Main { .. } => Part::Main {
                    has_status: rt.status,
                },
                p => p,
            };
            let out = apply::server_side_apply(
                &base,
                &applied,
                &opts.manager,
                opts.force,
                &rt.api_version(),
                part,
            )
            .map_err(|c| ApiError::apply_conflict(&rt.group, &rt.plural, name, &c))?;
            let obj = self.commit(rt, existing.as_ref(), out, opts.dry_run)?;
            return Ok((obj, created));
        }
        let old = existing.ok_or_else(|| ApiError::not_found(&rt.group, &rt.plural, name))?;
        let mut patched = Self::for_version(rt, old.clone());
        match content_type {
            "application/merge-patch+json" | "application/strategic-merge-patch+json" => {
                apply::merge_patch(&mut patched, &body)
            }
            "application/json-patch+json" => apply::json_patch(&mut patched, &body)
                .map_err(|e| ApiError::invalid(&rt.group, &rt.kind, name, "patch", &e))?,
            other => return Err(ApiError::unsupported_media_type(other)),
        }
        let new = Self::normalise(rt, ns, Some(name), patched)?;
        Self::check_rv(rt, &old, &new)?;
        let mut merged = Self::scoped(rt, &old, new, part);
        apply::record_update(&old, &mut merged, &opts.manager, &rt.api_version(), part);
        Ok((self.commit(rt, Some(&old), merged, opts.dry_run)?, false))
    }

    /// `DELETE` an object. Objects with finalizers (and namespaces) only get a deletionTimestamp.
    pub fn delete(
        &mut self,
        rt: &ResourceType,
        ns: &str,
        name: &str,
        propagation: &str,
        dry_run: bool,
    ) -> Result<Value, ApiError> {
        let obj = self.existing(rt, ns, name)?;
        if dry_run {
            return Ok(Self::for_version(rt, obj));
        }
        let has_finalizers = obj["metadata"]["finalizers"]
            .as_array()
            .is_some_and(|f| !f.is_empty());
        if has_finalizers || rt.plural == "namespaces" {
            if !obj["metadata"]["deletionTimestamp"].is_null() {
                return Ok(Self::for_version(rt, obj));
            }
            let mut marked = obj.clone();
            marked["metadata"]["deletionTimestamp"] = meta::now().into();
            if rt.plural == "namespaces" {
                marked["status"]["phase"] = "Terminating".into();
            }
            if let Some(uid) = obj["metadata"]["uid"].as_str() {
                self.changed_at.insert(uid.to_string(), Instant::now());
            }
            let stored = self.store.put(&rt.group, &rt.plural, marked);
            self.notify(rt, "MODIFIED", &stored);
            return Ok(Self::for_version(rt, stored));
        }
        self.remove_now(rt, ns, name, propagation);
        Ok(Self::for_version(rt, obj))
    }

    /// Removes an object at once, with garbage collection of its dependents.
    pub fn remove_now(&mut self, rt: &ResourceType, ns: &str, name: &str, propagation: &str) {
        let Some(obj) = self.store.remove(&rt.group, &rt.plural, ns, name) else {
            return;
        };
        let uid = obj["metadata"]["uid"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        self.changed_at.remove(&uid);
        self.notify(rt, "DELETED", &obj);
        if rt.group == "apiextensions.k8s.io" && rt.plural == "customresourcedefinitions" {
            if let (Some(g), Some(p)) = (
                obj["spec"]["group"].as_str(),
                obj["spec"]["names"]["plural"].as_str(),
            ) {
                self.store.drop_bucket(g, p);
            }
            self.resources.unregister_crd(name);
        }
        self.collect_garbage(&uid, propagation == "Orphan");
    }

    fn type_of(&self, bucket: &Bucket) -> Option<ResourceType> {
        self.resources
            .all()
            .iter()
            .find(|t| t.group == bucket.0 && t.plural == bucket.1)
            .cloned()
    }

    /// Deletes (or, orphaning, detaches) every object owned by `uid`, recursively.
    fn collect_garbage(&mut self, uid: &str, orphan: bool) {
        if uid.is_empty() {
            return;
        }
        let dependents: Vec<_> = self
            .store
            .index()
            .into_iter()
            .filter(|e| e.4.iter().any(|o| o == uid))
            .collect();
        for (bucket, ns, name, _, _) in dependents {
            let Some(rt) = self.type_of(&bucket) else {
                continue;
            };
            if orphan {
                if let Some(mut o) = self.store.get(&bucket.0, &bucket.1, &ns, &name).cloned() {
                    if let Some(refs) = o["metadata"]["ownerReferences"].as_array_mut() {
                        refs.retain(|r| r["uid"] != uid);
                    }
                    let stored = self.store.put(&bucket.0, &bucket.1, o);
                    self.notify(&rt, "MODIFIED", &stored);
                }
            } else {
                self.remove_now(&rt, &ns, &name, "Background");
            }
        }
    }

    /// Removes every namespaced object in `ns` (the namespace controller's job).
    pub fn purge_namespace(&mut self, ns: &str) {
        let victims: Vec<_> = self
            .store
            .index()
            .into_iter()
            .filter(|e| e.1 == ns)
            .collect();
        for (bucket, ns, name, _, _) in victims {
            if let Some(rt) = self.type_of(&bucket) {
                self.remove_now(&rt, &ns, &name, "Background");
            }
        }
    }

    /// Whether a deny knob forbids `verb` on `group/plural` in `ns`.
    pub fn denied(&self, verb: &str, group: &str, plural: &str, ns: &str) -> bool {
        self.denials
            .iter()
            .any(|d| d.matches(verb, group, plural, ns))
    }
}

impl ApiError {
    /// Adds a `details.causes` entry with only a reason.
    pub(crate) fn with_cause(mut self, reason: &str) -> Self {
        self.details = Some(json!({"causes": [{"reason": reason}]}));
        self
    }
}

#[cfg(test)]
#[path = "state_tests.rs"]
mod tests;
