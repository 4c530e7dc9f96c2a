//! `bundles/demo` renders with its SaaS defaults alone, and every step after rendering works on it.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::path::Path;

use airlift_render::images::{
    add_pull_secret, carried_set, check_carried, discover_images, rewrite_images, Relocation,
};
use airlift_render::isolate::Isolation;
use airlift_render::{
    load_definition, render_manifests, BundleInfo, ConfigBuilder, K8sObject, ReleaseInfo, Renderer,
    Secret,
};

fn demo_dir() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../bundles/demo")
}

fn render(
    values: Option<&str>,
    previous: &BTreeMap<String, Secret>,
) -> (Vec<K8sObject>, airlift_render::Config) {
    let loaded = load_definition(&demo_dir()).expect("demo definition loads");
    let def = &loaded.definition;
    let mut b = ConfigBuilder::new(&def.config).unwrap();
    if let Some(v) = values {
        b.apply_values_yaml("customer.yaml", v).unwrap();
    }
    assert!(
        b.missing().is_empty(),
        "the demo needs no value beyond its defaults"
    );
    let config = b.finish(previous).expect("defaults are valid");
    let renderer = Renderer::new(
        &config,
        &BundleInfo {
            name: def.metadata.name.clone(),
            version: def.metadata.version.clone(),
        },
        &ReleaseInfo {
            name: "demo".into(),
            namespace: "demo-prod".into(),
            revision: 1,
        },
    )
    // A test harness cannot serve as the render worker (see `bounded_worker.rs`).
    .with_isolation(Isolation::InProcess);
    let sources: Vec<(String, String)> = loaded
        .components
        .iter()
        .flat_map(|c| c.manifests.iter())
        .map(|m| {
            (
                m.rel_path.clone(),
                std::fs::read_to_string(&m.path).unwrap(),
            )
        })
        .collect();
    let objects = render_manifests(
        &renderer,
        sources.iter().map(|(n, s)| (n.as_str(), s.as_str())),
    )
    .unwrap();
    (objects, config)
}

#[test]
fn demo_renders_with_defaults_alone() {
    let (objects, config) = render(None, &BTreeMap::new());
    let kinds: Vec<String> = objects.iter().map(|o| o.describe()).collect();
    for expected in [
        "Namespace/demo-prod",
        "NetworkPolicy/demo-prod/isolate-namespace",
        "ResourceQuota/demo-prod/demo-quota",
        "LimitRange/demo-prod/demo-limits",
        "ConfigMap/demo-prod/demo-monitoring",
        "ConfigMap/demo-prod/demo-config",
        "Secret/demo-prod/demo-secrets",
        "Deployment/demo-prod/web",
        "Service/demo-prod/web",
        "Deployment/demo-prod/worker",
    ] {
        assert!(
            kinds.contains(&expected.to_string()),
            "{expected} missing from {kinds:?}"
        );
    }
    let secret = objects.iter().find(|o| o.kind() == "Secret").unwrap();
    let data = &secret.value["stringData"];
    assert_eq!(data["DEMO_SESSION_KEY"].as_str().unwrap().len(), 48);
    assert_eq!(data["DEMO_ADMIN_PASSWORD"].as_str().unwrap().len(), 24);
    assert!(
        data.get("DEMO_SMTP_PASSWORD").is_none(),
        "optional secret left out"
    );
    assert_eq!(
        data["DEMO_SESSION_KEY"].as_str(),
        config.get("secrets.session_key").and_then(|v| v.as_str())
    );
    let cm = objects.iter().find(|o| o.name() == "demo-config").unwrap();
    assert_eq!(cm.value["data"]["DEMO_CONCURRENCY"], "4");
    assert_eq!(cm.value["data"]["DEMO_MAIL_ENABLED"], "false");
    assert_eq!(
        cm.value["data"]["DEMO_ALLOWED_ORIGINS"],
        "https://demo.example.com"
    );
    let web = objects
        .iter()
        .find(|o| o.describe() == "Deployment/demo-prod/web")
        .unwrap();
    assert_eq!(web.value["spec"]["replicas"], 2);
    // Every image used is carried by the bundle.
    let loaded = load_definition(&demo_dir()).unwrap();
    let carried = carried_set(
        loaded
            .definition
            .components
            .iter()
            .flat_map(|c| c.images.iter().map(|i| i.reference.as_str())),
    )
    .unwrap();
    let uses: Vec<_> = discover_images(&objects)
        .unwrap()
        .into_iter()
        .map(|u| ("app".to_string(), u))
        .collect();
    assert_eq!(uses.len(), 2);
    check_carried(&uses, &carried).unwrap();
}

#[test]
fn customer_values_change_the_render_and_the_diff() {
    let values = "web: {replicas: 5, hostname: shop.corp.example}\ndistro: {network_isolation: false}\nsecrets: {smtp_password: relay-pass-123}\n";
    let (objects, config) = render(Some(values), &BTreeMap::new());
    assert!(
        objects.iter().all(|o| o.kind() != "NetworkPolicy"),
        "isolation turned off"
    );
    let web = objects
        .iter()
        .find(|o| o.describe() == "Deployment/demo-prod/web")
        .unwrap();
    assert_eq!(web.value["spec"]["replicas"], 5);
    let secret = objects.iter().find(|o| o.kind() == "Secret").unwrap();
    assert_eq!(
        secret.value["stringData"]["DEMO_SMTP_PASSWORD"],
        "relay-pass-123"
    );
    let differs: Vec<String> = config
        .diff_from_saas()
        .into_iter()
        .filter(|r| r.differs)
        .map(|r| r.key)
        .collect();
    assert_eq!(
        differs,
        [
            "distro.network_isolation",
            "web.hostname",
            "web.replicas",
            "secrets.smtp_password"
        ]
    );
    assert!(!format!("{config:?} {config}").contains("relay-pass-123"));
}

#[test]
fn generated_secrets_survive_an_upgrade_render() {
    let (first, config) = render(None, &BTreeMap::new());
    let (second, _) = render(None, &config.generated_secrets());
    let key = |objs: &[K8sObject]| {
        objs.iter().find(|o| o.kind() == "Secret").unwrap().value["stringData"].clone()
    };
    assert_eq!(key(&first), key(&second));
}

#[test]
fn demo_images_are_rewritten_by_digest_with_a_pull_secret() {
    let (mut objects, _) = render(None, &BTreeMap::new());
    let mut map = BTreeMap::new();
    for (i, r) in [
        "registry.example.com/airlift-demo/web:0.1.0",
        "registry.example.com/airlift-demo/worker:0.1.0",
    ]
    .iter()
    .enumerate()
    {
        let parsed = airlift_render::ImageRef::parse(r).unwrap();
        let d = airlift_bundle::Digest::of_bytes(&[i as u8]);
        map.insert(
            r.to_string(),
            parsed.relocated("registry.corp.internal:5000/vendor", &d),
        );
    }
    assert_eq!(
        rewrite_images(&mut objects, &Relocation::new(&map).unwrap()).unwrap(),
        2
    );
    assert_eq!(add_pull_secret(&mut objects, "airlift-pull"), 2);
    for u in discover_images(&objects).unwrap() {
        assert!(
            u.reference
                .starts_with("registry.corp.internal:5000/vendor/airlift-demo/"),
            "{}",
            u.reference
        );
        assert!(u.parsed.digest.is_some() && u.parsed.tag.is_none());
    }
}
