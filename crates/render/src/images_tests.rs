use super::*;
use crate::objects::parse_objects;

const ALL_KINDS: &str = r#"
apiVersion: v1
kind: Pod
metadata: {name: p}
spec:
  containers: [{name: a, image: "nginx:1.25"}]
  initContainers: [{name: i, image: "busybox"}]
  ephemeralContainers: [{name: e, image: "registry.acme.io/debug:1"}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: d, namespace: apps}
spec: {template: {spec: {containers: [{name: a, image: "acme/api:2"}]}}}
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: s}
spec: {template: {spec: {containers: [{name: a, image: "acme/db:15"}]}}}
---
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: ds}
spec: {template: {spec: {containers: [{name: a, image: "acme/agent:1"}]}}}
---
apiVersion: apps/v1
kind: ReplicaSet
metadata: {name: rs}
spec: {template: {spec: {containers: [{name: a, image: "acme/rs:1"}]}}}
---
apiVersion: batch/v1
kind: Job
metadata: {name: j}
spec: {template: {spec: {containers: [{name: a, image: "acme/job:1"}]}}}
---
apiVersion: batch/v1
kind: CronJob
metadata: {name: cj}
spec: {schedule: "* * * * *", jobTemplate: {spec: {template: {spec: {initContainers: [{name: a, image: "acme/cron:1"}], containers: [{name: b, image: "acme/cron:1"}]}}}}}
---
apiVersion: v1
kind: ReplicationController
metadata: {name: rc}
spec: {template: {spec: {containers: [{name: a, image: "acme/rc:1"}]}}}
---
apiVersion: example.com/v1
kind: Widget
metadata: {name: w}
spec: {template: {spec: {containers: [{name: a, image: "acme/widget:1"}]}}}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: cm}
data: {image: "not/an:image-field"}
"#;

fn objects() -> Vec<K8sObject> {
    parse_objects("all.yaml", ALL_KINDS).unwrap()
}

fn refs(objs: &[K8sObject]) -> Vec<String> {
    discover_images(objs)
        .unwrap()
        .into_iter()
        .map(|u| u.reference)
        .collect()
}

#[test]
fn finds_images_in_every_workload_kind() {
    let uses = discover_images(&objects()).unwrap();
    let found: Vec<(&str, &str)> = uses
        .iter()
        .map(|u| (u.reference.as_str(), u.path.as_str()))
        .collect();
    assert_eq!(
        found,
        [
            ("nginx:1.25", "spec.containers[0].image"),
            ("busybox", "spec.initContainers[0].image"),
            (
                "registry.acme.io/debug:1",
                "spec.ephemeralContainers[0].image"
            ),
            ("acme/api:2", "spec.template.spec.containers[0].image"),
            ("acme/db:15", "spec.template.spec.containers[0].image"),
            ("acme/agent:1", "spec.template.spec.containers[0].image"),
            ("acme/rs:1", "spec.template.spec.containers[0].image"),
            ("acme/job:1", "spec.template.spec.containers[0].image"),
            (
                "acme/cron:1",
                "spec.jobTemplate.spec.template.spec.containers[0].image"
            ),
            (
                "acme/cron:1",
                "spec.jobTemplate.spec.template.spec.initContainers[0].image"
            ),
            ("acme/rc:1", "spec.template.spec.containers[0].image"),
            ("acme/widget:1", "spec.template.spec.containers[0].image"),
        ]
    );
    assert_eq!(uses[3].object, "Deployment/apps/d");
    assert_eq!(
        uses[1].parsed.to_string(),
        "docker.io/library/busybox:latest"
    );
}

#[test]
fn uncarried_images_are_all_named_with_file_and_component() {
    let uses: Vec<(String, ImageUse)> = discover_images(&objects())
        .unwrap()
        .into_iter()
        .map(|u| ("web".to_string(), u))
        .collect();
    let carried = carried_set([
        "docker.io/library/nginx:1.25",
        "busybox:latest",
        "registry.acme.io/debug:1",
        "acme/api:2",
        "acme/db:15",
        "acme/agent:1",
        "acme/rs:1",
        "acme/job:1",
        "acme/rc:1",
        "acme/widget:1",
    ])
    .unwrap();
    let err = check_carried(&uses, &carried).unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("  - `acme/cron:1` in `all.yaml` (CronJob/cj) of component `web`"),
        "{text}"
    );
    match err {
        ImageError::NotCarried { missing } => assert_eq!(missing.len(), 2),
        other => panic!("{other:?}"),
    }
    let mut all = carried;
    all.insert(ImageRef::parse("acme/cron:1").unwrap());
    check_carried(&uses, &all).unwrap();
}

#[test]
fn bad_and_missing_images_are_named() {
    let objs = parse_objects(
        "bad.yaml",
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d}\nspec: {template: {spec: {containers: [{name: a, image: \"Acme/API\"}]}}}\n",
    )
    .unwrap();
    let e = discover_images(&objs).unwrap_err();
    let text = format!("{e}: {}", std::error::Error::source(&e).unwrap());
    assert!(text.contains("`bad.yaml` Deployment/d: `spec.template.spec.containers[0].image` holds an invalid image reference"), "{text}");
    let objs = parse_objects(
        "none.yaml",
        "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec: {containers: [{name: a}]}\n",
    )
    .unwrap();
    let e = discover_images(&objs).unwrap_err().to_string();
    assert!(e.contains("`spec.containers[0].image` is missing"), "{e}");
}

#[test]
fn rewrites_every_image_by_digest() {
    let mut objs = objects();
    let mut map = BTreeMap::new();
    let uses = discover_images(&objs).unwrap();
    for (i, u) in uses.iter().enumerate() {
        let digest = airlift_bundle::Digest::of_bytes(format!("{i}").as_bytes());
        map.insert(
            u.parsed.to_string(),
            u.parsed.relocated("mirror.corp:5000/acme", &digest),
        );
    }
    let relocation = Relocation::new(&map).unwrap();
    let n = rewrite_images(&mut objs, &relocation).unwrap();
    assert_eq!(n, 12);
    for r in refs(&objs) {
        assert!(r.starts_with("mirror.corp:5000/acme/"), "{r}");
        assert!(r.contains("@sha256:"), "{r}");
    }
    assert_eq!(
        objs[0].value["spec"]["initContainers"][0]["image"]
            .as_str()
            .unwrap()
            .split('@')
            .next(),
        Some("mirror.corp:5000/acme/library/busybox")
    );
    assert_eq!(objs[9].value["data"]["image"], "not/an:image-field");
}

#[test]
fn rewrite_fails_before_changing_anything_when_an_image_is_unmapped() {
    let mut objs = objects();
    let before = objs.clone();
    let mut map = BTreeMap::new();
    map.insert(
        "nginx:1.25".to_string(),
        format!("mirror.corp/nginx@sha256:{}", "b".repeat(64)),
    );
    let e = rewrite_images(&mut objs, &Relocation::new(&map).unwrap())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("image `busybox` has no relocated reference"),
        "{e}"
    );
    assert!(objs == before);
}

#[test]
fn pull_secrets_are_added_once_to_every_pod_spec() {
    let mut objs = objects();
    assert_eq!(add_pull_secret(&mut objs, "airlift-pull"), 9);
    assert_eq!(add_pull_secret(&mut objs, "airlift-pull"), 0);
    assert_eq!(
        objs[6].value["spec"]["jobTemplate"]["spec"]["template"]["spec"]["imagePullSecrets"],
        serde_json::json!([{"name": "airlift-pull"}])
    );
    assert!(objs[9].value.get("spec").is_none());
    let ns = pod_namespaces(&objs, "demo");
    assert_eq!(ns.into_iter().collect::<Vec<_>>(), ["apps", "demo"]);
}

#[test]
fn pull_secret_is_a_dockerconfigjson() {
    let s = pull_secret_object(
        "airlift-pull",
        "demo",
        "mirror.corp:5000",
        "robot",
        &Secret::new("pa55"),
    );
    assert_eq!(s["type"], "kubernetes.io/dockerconfigjson");
    let b64 = base64::engine::general_purpose::STANDARD;
    let raw = b64
        .decode(s["data"][".dockerconfigjson"].as_str().unwrap())
        .unwrap();
    let cfg: Value = serde_json::from_slice(&raw).unwrap();
    let entry = &cfg["auths"]["mirror.corp:5000"];
    assert_eq!(entry["username"], "robot");
    assert_eq!(entry["password"], "pa55");
    assert_eq!(
        b64.decode(entry["auth"].as_str().unwrap()).unwrap(),
        b"robot:pa55"
    );
}
