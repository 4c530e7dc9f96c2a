//! The customer registry down, serving an unknown CA, or refusing the password: `install`
//! exits 4 with an error naming the registry and a hint, and nothing is half-done.

mod common;

use airlift_airgap_tests::netns::run_scenario;
use airlift_airgap_tests::vendor::Want;

#[test]
fn registry_down_unknown_ca_and_wrong_password_fail_clearly_and_cleanly() {
    let (bins, vendor) = common::setup(&[Want::SaasV1]);
    let report = run_scenario(&bins, &vendor, "registry-faults");
    for step in [
        "refused: registry down",
        "refused: unknown CA",
        "refused: wrong password",
    ] {
        let stderr = report.step(step)["stderr"].as_str().unwrap();
        assert!(
            !stderr.contains(airlift_airgap_tests::customer::REGISTRY_PASSWORD),
            "{step}: the password leaked into the error output"
        );
    }
}
