//! The customer's whole experience, air-gapped: install v1, check images and objects, plan v2,
//! upgrade, roll back, uninstall.

mod common;

use airlift_airgap_tests::netns::run_scenario;
use airlift_airgap_tests::vendor::Want;

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

    // The plan names what v2 changes: the new api image, the changed default, the removed
    // object. (Asserted on the JSON text so the test does not pin the plan's field names.)
    let plan = report.step("plan saas-v2")["plan"].to_string();
    let api2 = &v2.images["registry.acme.example/acme/api:2.0"];
    for needle in ["legacy-settings", "log_level", "api"] {
        assert!(
            plan.contains(needle),
            "the plan does not mention `{needle}`: {plan}"
        );
    }
    assert!(
        plan.contains(api2.as_str()) || plan.contains("acme/api:2.0"),
        "the plan does not name the new api image: {plan}"
    );

    let after_upgrade = report.step("upgrade saas-v2")["images"].to_string();
    assert!(after_upgrade.contains(api2.as_str()), "{after_upgrade}");
    let after_rollback = report.step("rollback")["images"].to_string();
    let api1 = &v1.images["registry.acme.example/acme/api:1.0"];
    assert!(after_rollback.contains(api1.as_str()) && !after_rollback.contains(api2.as_str()));
    assert_eq!(report.step("uninstall")["left"], serde_json::json!([]));
}
