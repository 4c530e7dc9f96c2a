//! Unit tests of the API verbs on [`State`], without HTTP.

use std::time::Duration;

use serde_json::{json, Value};

use super::{State, WriteOpts};
use crate::cluster::apply::Part;
use crate::cluster::resources::ResourceType;

fn state() -> State {
    let mut s = State::new("1.30.2".into(), vec![], Duration::from_millis(0));
    crate::cluster::controller::seed(&mut s, None, &[]);
    s
}

fn rt(s: &State, group: &str, plural: &str) -> ResourceType {
    s.resources
        .all()
        .iter()
        .find(|t| t.group == group && t.plural == plural)
        .cloned()
        .unwrap()
}

fn opts(manager: &str) -> WriteOpts {
    WriteOpts {
        dry_run: false,
        manager: manager.into(),
        force: true,
    }
}

fn apply(s: &mut State, t: &ResourceType, body: &Value) -> Value {
    let name = body["metadata"]["name"].as_str().unwrap().to_string();
    s.patch(
        t,
        "default",
        &name,
        ("application/apply-patch+yaml", body.clone()),
        &opts("airlift"),
        Part::Main {
            has_status: t.status,
        },
    )
    .unwrap()
    .0
}

fn deployment(replicas: i64, label: &str) -> Value {
    json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "labels": {"team": label}},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "c", "image": "i:1"}]}}}})
}

#[test]
fn generation_tracks_spec_changes_only() {
    let mut s = state();
    let t = rt(&s, "apps", "deployments");
    let v1 = apply(&mut s, &t, &deployment(1, "a"));
    assert_eq!(v1["metadata"]["generation"], 1);
    assert_eq!(v1["spec"]["strategy"]["type"], "RollingUpdate", "defaulted");
    let v2 = apply(&mut s, &t, &deployment(1, "b"));
    assert_eq!(
        v2["metadata"]["generation"], 1,
        "a label change keeps the generation"
    );
    let v3 = apply(&mut s, &t, &deployment(3, "b"));
    assert_eq!(v3["metadata"]["generation"], 2);
}

#[test]
fn a_no_op_apply_does_not_write() {
    let mut s = state();
    let t = rt(&s, "", "configmaps");
    let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"a": "1"}});
    let first = apply(&mut s, &t, &cm);
    let rv = s.store.current_rv();
    let again = apply(&mut s, &t, &cm);
    assert_eq!(
        again["metadata"]["resourceVersion"],
        first["metadata"]["resourceVersion"]
    );
    assert_eq!(s.store.current_rv(), rv);
}

#[test]
fn status_writes_ignore_spec_and_main_writes_ignore_status() {
    let mut s = state();
    let t = rt(&s, "apps", "deployments");
    let d = apply(&mut s, &t, &deployment(1, "a"));
    let mut with_status = d.clone();
    with_status["status"] = json!({"readyReplicas": 7});
    with_status["spec"]["replicas"] = 9.into();
    let out = s
        .replace(
            &t,
            "default",
            "web",
            with_status.clone(),
            &opts("ctl"),
            Part::Status,
        )
        .unwrap();
    assert_eq!(out["status"]["readyReplicas"], 7);
    assert_eq!(out["spec"]["replicas"], 1);
    let mut main = out.clone();
    main["status"] = json!({"readyReplicas": 0});
    let out = s
        .replace(
            &t,
            "default",
            "web",
            main,
            &opts("ctl"),
            Part::Main { has_status: true },
        )
        .unwrap();
    assert_eq!(out["status"]["readyReplicas"], 7);
}

#[test]
fn deleting_an_owner_collects_its_dependents_recursively() {
    let mut s = state();
    let cms = rt(&s, "", "configmaps");
    let owner = s
        .create(
            &cms,
            "default",
            json!({"metadata": {"name": "a"}}),
            &opts("m"),
        )
        .unwrap();
    let child = s
        .create(&cms, "default", json!({"metadata": {"name": "b", "ownerReferences": [{"uid": owner["metadata"]["uid"], "name": "a", "kind": "ConfigMap", "apiVersion": "v1"}]}}), &opts("m"))
        .unwrap();
    s.create(&cms, "default", json!({"metadata": {"name": "c", "ownerReferences": [{"uid": child["metadata"]["uid"], "name": "b", "kind": "ConfigMap", "apiVersion": "v1"}]}}), &opts("m"))
        .unwrap();
    s.delete(&cms, "default", "a", "Background", false).unwrap();
    assert!(s.store.list("", "configmaps", Some("default")).is_empty());
}

#[test]
fn invalid_crds_are_rejected_with_422() {
    let mut s = state();
    let t = rt(&s, "apiextensions.k8s.io", "customresourcedefinitions");
    let crd = json!({"metadata": {"name": "things.example.com"}, "spec": {"group": "example.com",
        "scope": "Namespaced", "names": {"plural": "things", "kind": "Thing"},
        "versions": [{"name": "v1", "served": true, "storage": false}]}});
    let err = s.create(&t, "", crd, &opts("m")).unwrap_err();
    assert_eq!(err.code, 422);
    assert!(err.message.contains("storage version"), "{}", err.message);
}
