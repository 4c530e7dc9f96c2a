use super::*;
use airlift_bundle::schema::platform::{IdentityNeed, IngressNeed, LoadBalancerNeed, StorageNeed};

fn needs() -> PlatformNeeds {
    PlatformNeeds {
        storage: BTreeMap::from([
            (
                "fast-rwo".to_string(),
                StorageNeed {
                    access_mode: AccessMode::ReadWriteOnce,
                    tier: StorageTier::Fast,
                    description: None,
                },
            ),
            (
                "shared-rwx".to_string(),
                StorageNeed {
                    access_mode: AccessMode::ReadWriteMany,
                    tier: StorageTier::Standard,
                    description: None,
                },
            ),
        ]),
        load_balancer: Some(LoadBalancerNeed {
            scope: LoadBalancerScope::Internal,
        }),
        ingress: Some(IngressNeed::default()),
        identity: BTreeMap::from([(
            "api".to_string(),
            IdentityNeed {
                service_account: "api".into(),
                description: None,
            },
        )]),
    }
}

fn sc(name: &str, provisioner: &str, is_default: bool) -> StorageClassFact {
    StorageClassFact {
        name: name.into(),
        provisioner: provisioner.into(),
        is_default,
    }
}

#[test]
fn every_table_parses_and_every_row_names_its_source() {
    let all = profiles();
    assert_eq!(all.len(), TABLES.len());
    for p in all {
        for r in &p.storage {
            assert!(r.source.starts_with("https://"), "{}: {r:?}", p.provider);
            assert!(!r.provisioners.is_empty(), "{}: {r:?}", p.provider);
        }
        for r in &p.ingress {
            assert!(r.source.starts_with("https://"), "{}: {r:?}", p.provider);
        }
        assert!(p.load_balancer.internal.source.starts_with("https://"));
        assert!(p.load_balancer.public.source.starts_with("https://"));
        if let Some(i) = &p.identity {
            assert!(i.source.starts_with("https://"));
        }
    }
    assert_eq!(profile("rke2").provider, "k3s");
    assert_eq!(profile("vsphere").provider, "datacenter");
}

#[test]
fn aws_maps_to_gp3_efs_an_internal_nlb_alb_and_irsa() {
    let facts = ClusterFacts {
        provider: "aws".into(),
        storage_classes: vec![
            sc("gp2", "kubernetes.io/aws-ebs", true),
            sc("gp3", "ebs.csi.aws.com", false),
            sc("efs", "efs.csi.aws.com", false),
        ],
        ingress_classes: vec![IngressClassFact {
            name: "alb".into(),
            controller: "ingress.k8s.aws/alb".into(),
            is_default: false,
        }],
        ..Default::default()
    };
    let mut o = PlatformOverrides::default();
    o.apply_set("identity.api.value", "arn:aws:iam::111122223333:role/api")
        .unwrap();
    let r = resolve(&needs(), &facts, &o);
    assert_eq!(r.storage["fast-rwo"].class_name, "gp3");
    // EFS is found by its provisioner although the class has another name.
    assert_eq!(r.storage["shared-rwx"].class_name, "efs");
    assert!(r.storage["shared-rwx"].how.contains("efs.csi.aws.com"));
    let lb = r.load_balancer.unwrap();
    assert_eq!(
        lb.annotations["service.beta.kubernetes.io/aws-load-balancer-scheme"],
        "internal"
    );
    assert_eq!(r.ingress.unwrap().class_name, "alb");
    assert_eq!(
        r.identity["api"].annotations["eks.amazonaws.com/role-arn"],
        "arn:aws:iam::111122223333:role/api"
    );
}

#[test]
fn a_datacenter_without_classes_resolves_nothing_and_says_why() {
    let facts = ClusterFacts {
        provider: "datacenter".into(),
        ..Default::default()
    };
    let r = resolve(&needs(), &facts, &PlatformOverrides::default());
    let s = &r.storage["fast-rwo"];
    assert!(!s.found);
    assert!(s.how.contains("no default class"), "{}", s.how);
    assert!(!r.ingress.as_ref().unwrap().found);
    assert!(!r.identity["api"].found);
    assert!(r.identity["api"]
        .how
        .contains("platform.identity.api.annotations"));
}

#[test]
fn overrides_win_and_unknown_roles_are_refused() {
    let facts = ClusterFacts::documented("gcp");
    let mut o = PlatformOverrides::default();
    o.apply_set("storage.fast-rwo.className", "my-ssd").unwrap();
    o.apply_set("loadBalancer.scope", "public").unwrap();
    o.apply_set("ingress.className", "nginx").unwrap();
    let file = PlatformOverrides::from_value(
        serde_json::json!({"identity": {"api": {"annotations": {"x/y": "z"}}}}),
        "values.yaml",
    )
    .unwrap();
    o.merge(file);
    let r = resolve(&needs(), &facts, &o);
    assert_eq!(r.storage["fast-rwo"].class_name, "my-ssd");
    assert!(!r.storage["fast-rwo"].found);
    assert_eq!(r.load_balancer.unwrap().scope, "public");
    assert_eq!(r.ingress.unwrap().class_name, "nginx");
    assert_eq!(r.identity["api"].annotations["x/y"], "z");
    assert!(o.check_against(&needs(), "values").is_ok());
    let mut bad = PlatformOverrides::default();
    bad.apply_set("storage.fast.className", "x").unwrap();
    let err = bad
        .check_against(&needs(), "--set")
        .unwrap_err()
        .to_string();
    assert!(err.contains("platform.storage.fast"), "{err}");
    assert!(err.contains("fast-rwo, shared-rwx"), "{err}");
    assert!(PlatformOverrides::default()
        .apply_set("storage.x", "y")
        .is_err());
    assert!(PlatformOverrides::from_value(serde_json::json!({"storge": {}}), "v").is_err());
}

#[test]
fn gke_ingress_is_built_in_and_selected_by_annotation() {
    let mut facts = ClusterFacts::documented("gcp");
    facts.ingress_classes.clear();
    let r = resolve(&needs(), &facts, &PlatformOverrides::default());
    let i = r.ingress.unwrap();
    assert!(i.found);
    assert_eq!(i.class_name, "");
    assert_eq!(i.annotations["kubernetes.io/ingress.class"], "gce");
    assert_eq!(
        r.load_balancer.unwrap().annotations["networking.gke.io/load-balancer-type"],
        "Internal"
    );
}

#[test]
fn templates_see_the_resolved_platform() {
    let r = resolve(
        &needs(),
        &ClusterFacts::documented("azure"),
        &PlatformOverrides::default(),
    );
    let renderer = crate::Renderer::with_context(
        serde_json::json!({}),
        &crate::BundleInfo {
            name: "a".into(),
            version: "1.0.0".into(),
        },
        &crate::ReleaseInfo {
            name: "a".into(),
            namespace: "a".into(),
            revision: 1,
        },
    )
    .with_platform(r.template_value())
    .with_isolation(crate::isolate::Isolation::InProcess);
    let out = renderer
        .render(
            "t.yaml",
            "sc: {{ platform.storage['shared-rwx'].className }}\nlb: {{ platform.loadBalancer.annotations | tojson }}\n",
        )
        .unwrap();
    assert_eq!(
        out,
        "sc: azurefile-csi\nlb: {\"service.beta.kubernetes.io/azure-load-balancer-internal\":\"true\"}\n"
    );
    let err = renderer
        .render("t.yaml", "{{ platform.storag.x }}")
        .unwrap_err();
    assert_eq!(err.undefined.as_deref(), Some("platform.storag"));
}
