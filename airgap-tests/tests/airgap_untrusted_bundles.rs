//! A bit flipped in transit, a bundle signed by another key, and an unsigned bundle are each
//! refused (exit 3) before any side effect: the registry and the cluster stay untouched.

mod common;

use airlift_airgap_tests::netns::run_scenario;
use airlift_airgap_tests::vendor::Want;

#[test]
fn tampered_foreign_and_unsigned_bundles_are_refused_without_side_effects() {
    let (bins, vendor) = common::setup(&[Want::SaasV1, Want::DemoVariants]);
    let report = run_scenario(&bins, &vendor, "untrusted-bundles");
    for step in [
        "refused: bit flipped",
        "refused: signed by another key",
        "refused: unsigned",
    ] {
        assert!(
            report.step(step)["stderr"]
                .as_str()
                .unwrap()
                .contains("error"),
            "{step}"
        );
    }
}
