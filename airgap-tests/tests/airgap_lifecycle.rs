//! The customer's whole experience, air-gapped: install v1, check images and objects, plan v2,
//! upgrade, roll back, uninstall.

mod common;

use airlift_airgap_tests::netns::run_scenario;
use airlift_airgap_tests::vendor::Want;
use serde_json::{json, Value};

#[test]
fn install_plan_upgrade_rollback_uninstall() {
    let (bins, vendor) = common::setup(&[Want::SaasV1, Want::SaasV2]);
    let report = run_scenario(&bins, &vendor, "lifecycle");

    let v1 = &vendor.bundles["saas-v1"];
    let v2 = &vendor.bundles["saas-v2"];
    let relocated = report.step("install saas-v1")["relocated"]
        .as_object()
        .unwrap()
        .clone();
    assert_eq!(relocated.len(), 3);
    for digest in v1.images.values() {
        assert!(
            relocated.values().any(|d| d == digest),
            "{digest} missing from {relocated:?}"
        );
    }

    // The plan names exactly what v2 changes: the new api image (in the api and in the
    // worker's init container), the changed SaaS default, the removed object.
    let doc = report.step("plan saas-v2")["plan"].clone();
    let plan = &doc["objects"];
    let key = |o: &Value| {
        format!(
            "{}/{}",
            o["kind"].as_str().unwrap(),
            o["name"].as_str().unwrap()
        )
    };
    let keys = |v: &Value| v.as_array().unwrap().iter().map(key).collect::<Vec<_>>();
    assert_eq!(
        keys(&plan["delete"]),
        ["ConfigMap/legacy-settings"],
        "{plan}"
    );
    assert_eq!(keys(&plan["create"]), Vec::<String>::new(), "{plan}");
    let changed: Vec<String> = plan["change"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| key(&c["object"]))
        .collect();
    assert_eq!(
        changed,
        [
            "ConfigMap/acme-config",
            "Deployment/api",
            "Deployment/worker"
        ],
        "{plan}"
    );
    assert!(
        plan["change"][0]["fields"]
            .as_array()
            .unwrap()
            .contains(&json!("data.LOG_LEVEL")),
        "{plan}"
    );
    assert!(
        keys(&plan["unchanged"]).contains(&"Deployment/analytics".to_string()),
        "{plan}"
    );
    assert_eq!(
        plan["config"]["changed"],
        json!(["core.log_level"]),
        "{plan}"
    );
    let api1 = &v1.images["registry.acme.example/acme/api:1.0"];
    let api2 = &v2.images["registry.acme.example/acme/api:2.0"];
    let images = plan["images"].as_array().unwrap();
    assert_eq!(images.len(), 2, "{plan}");
    for i in images {
        assert!(
            i["from"]
                .as_str()
                .unwrap()
                .ends_with(&format!("/vendor/acme/api@{api1}")),
            "{i}"
        );
        assert!(
            i["to"]
                .as_str()
                .unwrap()
                .ends_with(&format!("/vendor/acme/api@{api2}")),
            "{i}"
        );
    }
    assert_eq!(doc["from"]["version"], "1.0.0");
    assert_eq!(doc["to"]["version"], "2.0.0");

    let after_upgrade = report.step("upgrade saas-v2")["images"].to_string();
    assert!(after_upgrade.contains(api2.as_str()), "{after_upgrade}");
    let after_rollback = report.step("rollback")["images"].to_string();
    assert!(after_rollback.contains(api1.as_str()) && !after_rollback.contains(api2.as_str()));
    // The history: v1 installed, upgraded to v2, rolled back to the same v1 bundle.
    let history = report.step("rollback")["status"]["history"]
        .as_array()
        .unwrap()
        .clone();
    let summary: Vec<(String, String)> = history
        .iter()
        .map(|r| {
            (
                r["bundle"]["version"].as_str().unwrap().to_string(),
                r["status"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let expected = [
        ("1.0.0", "superseded"),
        ("2.0.0", "rolled-back"),
        ("1.0.0", "deployed"),
    ];
    assert_eq!(
        summary,
        expected.map(|(v, s)| (v.to_string(), s.to_string())),
        "{history:?}"
    );
    assert_eq!(
        history[0]["bundle"]["digest"],
        history[2]["bundle"]["digest"]
    );

    assert_eq!(report.step("uninstall")["left"], json!([]));
}
