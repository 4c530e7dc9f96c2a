//! Vendor side → air gap → customer registry: the SaaS registry is seeded with skopeo, both
//! bundles are built and signed, and inside a namespace with only loopback `airlift-install
//! verify` and `push` relocate every image, which skopeo then copies with matching digests.

mod common;

use airlift_airgap_tests::netns::run_scenario;
use airlift_airgap_tests::vendor::{Want, BIG_LAYER};

#[test]
fn relocate_both_bundles_into_the_air_gapped_registry() {
    let (bins, vendor) = common::setup(&[Want::SaasV1, Want::Demo]);

    // Vendor side: realistic images in the SaaS registry.
    assert_eq!(vendor.seeded.len(), 4, "seeded: {:?}", vendor.seeded);
    assert!(
        vendor.largest_blob >= BIG_LAYER,
        "the largest layer is only {} bytes",
        vendor.largest_blob
    );
    let index: serde_json::Value =
        serde_json::from_slice(&vendor.registry.raw_manifest("acme/api:1.0")).unwrap();
    let platforms: Vec<String> = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            format!(
                "{}/{}",
                m["platform"]["os"].as_str().unwrap(),
                m["platform"]["architecture"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(platforms, ["linux/amd64", "linux/arm64"]);
    let saas = &vendor.bundles["saas-v1"];
    assert_eq!(saas.images.len(), 3);
    let demo = &vendor.bundles["demo"];
    assert_eq!(demo.images.len(), 2);

    // Customer side, air-gapped.
    let report = run_scenario(&bins, &vendor, "relocate");
    for (role, bundle) in [("saas-v1", saas), ("demo", demo)] {
        let relocated = report.step(&format!("push {role}"))["relocated"]
            .as_object()
            .unwrap()
            .clone();
        assert_eq!(
            relocated.len(),
            bundle.images.len(),
            "{role}: {relocated:?}"
        );
        for (original, digest) in &bundle.images {
            let path = original.split_once('/').unwrap().1;
            let key = relocated
                .keys()
                .find(|k| k.ends_with(&format!("/vendor/{path}")))
                .unwrap_or_else(|| panic!("{original} was not relocated: {relocated:?}"));
            assert_eq!(relocated[key], *digest, "{original}");
        }
    }
    // The push reports what it sent, and its relocation map pins every image by digest.
    let first = report.step("push saas-v1")["report"].clone();
    assert!(
        first["bytesPushed"].as_u64().unwrap() >= BIG_LAYER,
        "{first}"
    );
    for image in first["images"].as_array().unwrap() {
        let original = image["reference"].as_str().unwrap();
        let relocated = image["relocated"].as_str().unwrap();
        assert!(
            relocated.ends_with(&format!("@{}", saas.images[original])),
            "{image}"
        );
    }
    // A second push of the same bundle sends no blob bytes.
    let again = report.step("push saas-v1 again")["report"].clone();
    assert_eq!(again["bytesPushed"], 0, "{again}");

    // The registry-sourced images carry the SaaS registry's digests end to end.
    for (original, digest) in &saas.images {
        let repo_tag = original.split_once('/').unwrap().1;
        assert_eq!(&vendor.seeded[repo_tag], digest, "{original}");
    }
}
