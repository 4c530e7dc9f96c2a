//! kill -9 during the push phase of `install`, and again during its apply phase: re-running
//! `install` converges, and no tag ever points at a half-pushed image.

mod common;

use airlift_airgap_tests::netns::run_scenario;
use airlift_airgap_tests::vendor::Want;

#[test]
fn install_killed_during_push_and_apply_converges_on_rerun() {
    let (bins, vendor) = common::setup(&[Want::SaasV1]);
    let report = run_scenario(&bins, &vendor, "crash-recovery");
    let push = report.step("kill -9 during push, then install");
    assert!(push["blobs_at_kill"].as_u64().unwrap() >= 2, "{push}");
    let apply = report.step("kill -9 during apply, then install");
    assert!(apply["writes_at_kill"].as_u64().unwrap() >= 1, "{apply}");
}
