//! The air gap itself: the customer namespace has only loopback, the SaaS registry (reachable
//! from the vendor side) is unreachable from inside, and the customer registry (TLS +
//! htpasswd, own CA) and the test cluster work there with skopeo and kubectl.

mod common;

use airlift_airgap_tests::netns::run_scenario;
use airlift_airgap_tests::vendor::Want;

#[test]
fn customer_namespace_has_only_loopback_and_its_own_registry_and_cluster() {
    let (bins, vendor) = common::setup(&[Want::SaasImages]);
    // run_scenario checks the SaaS registry answers here, and asserts the namespace proof.
    let report = run_scenario(&bins, &vendor, "harness");
    assert_eq!(report.isolation.interfaces, ["lo"]);
    assert!(report.isolation.ipv4_routes.is_empty());
    let refused = report
        .isolation
        .vendor_registry_connect_error
        .as_deref()
        .unwrap();
    assert!(refused.to_lowercase().contains("refused"), "{refused}");
    let h = report.step("harness");
    assert_eq!(h["nodes"], serde_json::json!(["amd64", "arm64"]));
    assert!(h["vendor_skopeo_error"]
        .as_str()
        .unwrap()
        .contains(&vendor.registry.host()));
}
