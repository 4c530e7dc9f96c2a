//! `airlift-install platform` through the real binary against the test cluster presenting
//! itself as each platform: the provider, region, classes and the evidence, in text and JSON.

#![allow(clippy::unwrap_used)]

use std::process::Command;

use airlift_testkit::cluster::{ClusterOptions, PlatformPreset, TestCluster};

fn platform(cluster: &TestCluster, json: bool) -> (i32, String, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_airlift-install"));
    cmd.arg("platform")
        .arg("--kubeconfig")
        .arg(cluster.kubeconfig_path())
        .env("NO_COLOR", "1");
    if json {
        cmd.args(["--output", "json"]);
    }
    let out = cmd.output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn every_preset_is_detected_with_its_evidence() {
    for preset in PlatformPreset::ALL {
        let cluster = TestCluster::start(ClusterOptions::default().as_platform(preset)).unwrap();
        let (code, stdout, stderr) = platform(&cluster, true);
        assert_eq!(code, 0, "{preset:?}: {stderr}");
        let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
        assert_eq!(v["provider"], preset.provider(), "{preset:?}: {stdout}");
        assert!(
            !v["providerEvidence"].as_array().unwrap().is_empty(),
            "{stdout}"
        );
        assert!(v["profile"].as_str().is_some_and(|p| !p.is_empty()));
    }
}

#[test]
fn text_output_names_provider_region_classes_and_why() {
    let cluster =
        TestCluster::start(ClusterOptions::default().as_platform(PlatformPreset::Aks)).unwrap();
    let (code, stdout, stderr) = platform(&cluster, false);
    assert_eq!(code, 0, "{stderr}");
    for expected in [
        "provider:   azure (mapping table: Azure Kubernetes Service (AKS))",
        "node providerID `azure://…`",
        "region:     eastus (zones: eastus-1, eastus-2)",
        "default storage class: default",
        "webapprouting.kubernetes.azure.com/nginx",
    ] {
        assert!(
            stdout.contains(expected),
            "missing {expected:?} in\n{stdout}"
        );
    }
    let dc = TestCluster::start(ClusterOptions::default().as_platform(PlatformPreset::Datacenter))
        .unwrap();
    let (code, stdout, _) = platform(&dc, false);
    assert_eq!(code, 0);
    assert!(
        stdout.contains(
            "default storage class: none (bundles that need ReadWriteOnce storage fail preflight"
        ),
        "{stdout}"
    );
}
