//! A snapshot built from captured objects renders, through the installer's real template
//! engine, back to the cleaned objects: SaaS defaults in place, template-looking strings kept
//! literally, secrets only from config. And building twice gives the same bytes.

use airlift_render::template::{BundleInfo, ReleaseInfo, Renderer};
use airlift_snapshot::{from_captured, Captured, Options, Selection};
use serde_json::{json, Value};

fn captured() -> Captured {
    let mut c = Captured {
        server_version: "1.30".into(),
        ..Captured::default()
    };
    c.objects = vec![
        json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "cfg", "namespace": "saas", "uid": "u1", "resourceVersion": "7",
                "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{}"}},
            "data": {"GREETING": "hello {{ name }}", "MODE": "fast"}}),
        json!({"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
            "metadata": {"name": "db", "namespace": "saas"},
            "data": {"password": "cGxhbnRlZC1wYXNzd29yZA=="}}),
        json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "saas", "annotations": {"note": "{% raw %}"}},
            "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}},
                "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [
                    {"name": "web", "image": "r.example/web:1", "args": ["--x={{y}}"]}]}}},
            "status": {"replicas": 3}}),
    ];
    c.running.insert(
        "r.example/web:1".into(),
        [format!("sha256:{}", "a".repeat(64))].into_iter().collect(),
    );
    c
}

fn options() -> Options {
    Options {
        name: "saas".into(),
        version: "0.1.0".into(),
        vendor: "Acme".into(),
        selection: Selection {
            namespaces: vec!["saas".into()],
            selector: None,
        },
        source: "test".into(),
    }
}

#[test]
fn snapshot_renders_back_to_the_cleaned_objects() {
    let snap = from_captured(captured(), &options()).unwrap();
    let again = from_captured(captured(), &options()).unwrap();
    assert_eq!(
        snap.files, again.files,
        "the same input must give the same bytes"
    );
    let config = json!({
        "configmap_cfg": {"greeting": "hello {{ name }}", "mode": "fast"},
        "deployment_web": {"replicas": 3},
        "secrets": {"db_password": "site-value"},
    });
    let r = Renderer::with_context(
        config,
        &BundleInfo {
            name: "saas".into(),
            version: "0.1.0".into(),
        },
        &ReleaseInfo {
            name: "saas".into(),
            namespace: "customer-ns".into(),
            revision: 1,
        },
    )
    // A test harness cannot serve as the render worker: templates render in this process.
    .with_isolation(airlift_render::isolate::Isolation::InProcess);
    let render = |file: &str| -> Value {
        let text = r
            .render(file, &snap.files[file])
            .unwrap_or_else(|e| panic!("{file}: {e}"));
        serde_yaml::from_str(&text).unwrap()
    };
    let cm = render("manifests/app/configmap-cfg.yaml");
    assert_eq!(
        cm,
        json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "cfg", "namespace": "customer-ns"},
            "data": {"GREETING": "hello {{ name }}", "MODE": "fast"}})
    );
    let d = render("manifests/app/deployment-web.yaml");
    assert_eq!(d["spec"]["replicas"], 3);
    assert_eq!(d["metadata"]["annotations"]["note"], "{% raw %}");
    let c = &d["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(c["args"][0], "--x={{y}}");
    assert_eq!(
        c["image"],
        format!("r.example/web:1@sha256:{}", "a".repeat(64))
    );
    assert!(d.get("status").is_none());
    let s = render("manifests/app/secret-db.yaml");
    assert_eq!(s["stringData"]["password"], "site-value");
    for (f, text) in &snap.files {
        assert!(!text.contains("cGxhbnRlZC1wYXNzd29yZA=="), "{f}");
        assert!(!text.contains("planted-password"), "{f}");
    }
}
