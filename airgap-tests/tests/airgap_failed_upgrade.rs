//! An upgrade whose new version never becomes ready is rolled back automatically (exit 8), and
//! v1 keeps running unchanged.

mod common;

use airlift_airgap_tests::netns::run_scenario;
use airlift_airgap_tests::vendor::Want;

#[test]
fn an_upgrade_that_never_becomes_ready_rolls_back_to_v1() {
    let (bins, vendor) = common::setup(&[Want::SaasV1, Want::SaasV2]);
    let report = run_scenario(&bins, &vendor, "failed-upgrade");
    let images = report.step("failed upgrade rolled back")["images"].to_string();
    let api1 = &vendor.bundles["saas-v1"].images["registry.acme.example/acme/api:1.0"];
    assert!(images.contains(api1.as_str()), "{images}");
}
