//! Delivery through registries (issue 17): a real `docker-registry` with TLS and htpasswd,
//! credentials from a docker `config.json`, the CA through `--registry-ca`. Bundles are
//! published with the library `airlift-pack publish` calls (packager/tests/publish_cli.rs runs
//! that binary); pull, install, updates run the real `airlift-install`. Relocation from one
//! registry to another without a local copy is in `relocate_cli.rs`.
#![allow(clippy::unwrap_used)]

mod publish_support;

use std::sync::Arc;

use airlift_bundle::{Digest, NoProgress, Trust};
use airlift_registry::artifact::{
    OciReference, ANNOTATION_IMAGE_PUBLISHED, ANNOTATION_TITLE, ARTIFACT_TYPE,
};
use airlift_registry::client::RegistryClient;
use airlift_registry::RegistryOptions;
use airlift_testkit::bundles::{ShopBundles, ShopVersion};
use airlift_testkit::registry::TestRegistry;
use publish_support::*;

#[test]
fn publish_then_pull_gives_the_same_sha256_then_installs() {
    let v = Vendor::start();
    let original = v.publish(&ShopVersion::new("1.0.0"));
    let pulled = v.dir.path().join("pulled");
    std::fs::create_dir(&pulled).unwrap();
    let key = v.key.to_str().unwrap();
    let r = v.run(
        None,
        &[
            "pull",
            &v.oci(":1.0.0"),
            "--out",
            pulled.to_str().unwrap(),
            "--key",
            key,
        ],
    );
    assert_eq!(r.code, 0, "{r}");
    let file = pulled.join("shop-1.0.0.airlift");
    let sum = sha256_file(&original);
    assert_eq!(sha256_file(&file), sum, "{r}");
    assert!(r.stdout.contains(sum.hex()), "pull prints the sha256: {r}");
    assert!(r.stdout.contains("verified with key"), "{r}");
    assert_eq!(
        std::fs::read_dir(&pulled).unwrap().count(),
        1,
        "no temporary file is left beside the bundle"
    );

    for (tier, kubeconfig, _cluster, target) in tiers() {
        eprintln!("[{tier}] install of the pulled bundle");
        let target = target.unwrap_or_else(|| format!("{}/site", v.registry.host()));
        let r = v.run(
            Some(&kubeconfig),
            &[
                "install",
                file.to_str().unwrap(),
                "--key",
                key,
                "--registry",
                &target,
                "--timeout",
                "1m",
                "-y",
            ],
        );
        assert_eq!(r.code, 0, "[{tier}] {r}");
        assert!(r.stdout.contains("Installed shop 1.0.0"), "[{tier}] {r}");
    }
}

#[test]
fn install_straight_from_oci_and_list_updates_for_the_release() {
    let v = Vendor::start();
    v.publish(&ShopVersion::new("1.0.0"));
    let key = v.key.to_str().unwrap();
    for (tier, kubeconfig, cluster, target) in tiers() {
        eprintln!("[{tier}] install oci://");
        let target = target.unwrap_or_else(|| format!("{}/site", v.registry.host()));
        let r = v.run(
            Some(&kubeconfig),
            &[
                "install",
                &v.oci(":1.0.0"),
                "--key",
                key,
                "--registry",
                &target,
                "--timeout",
                "1m",
                "-y",
            ],
        );
        assert_eq!(r.code, 0, "[{tier}] {r}");
        assert!(r.stdout.contains("Installed shop 1.0.0"), "[{tier}] {r}");
        if let Some(cluster) = &cluster {
            let d = cluster
                .object("apps", "deployments", "shop", "web")
                .unwrap();
            let image = d["spec"]["template"]["spec"]["containers"][0]["image"]
                .as_str()
                .unwrap()
                .to_string();
            assert!(
                image.starts_with(&format!("{target}/")) && image.contains("@sha256:"),
                "relocated by digest into the site registry: {image}"
            );
        }
        let r = v.run(
            Some(&kubeconfig),
            &["updates", &v.oci(""), "--release", "shop", "--key", key],
        );
        assert_eq!(r.code, 0, "[{tier}] {r}");
        assert!(
            r.stdout
                .contains("No version newer than 1.0.0 on channel stable"),
            "[{tier}] {r}"
        );
    }
    v.publish(&ShopVersion::new("1.1.0"));
    for (tier, kubeconfig, _cluster, _) in tiers().into_iter().take(1) {
        // A fresh test cluster has no release: ask with --current instead.
        let r = v.run(
            Some(&kubeconfig),
            &["updates", &v.oci(""), "--current", "1.0.0", "--key", key],
        );
        assert_eq!(r.code, 0, "[{tier}] {r}");
        assert!(r.stdout.contains("  1.1.0  "), "[{tier}] {r}");
    }
}

#[test]
fn skopeo_inspect_sees_the_artifact_and_its_images() {
    let v = Vendor::start();
    v.publish(&ShopVersion::new("1.0.0"));
    let artifact = v.artifact("1.0.0");
    assert_eq!(artifact.artifact_type.as_deref(), Some(ARTIFACT_TYPE));
    let titles: Vec<&str> = artifact
        .layers
        .iter()
        .filter_map(|l| l.annotations.get(ANNOTATION_TITLE).map(String::as_str))
        .collect();
    assert_eq!(
        titles[..4],
        [
            "airlift.yaml",
            "airlift.yaml.sig",
            "oci-layout",
            "index.json"
        ]
    );
    assert!(titles.contains(&"components/shop/shop.yaml"), "{titles:?}");
    let published: Vec<&str> = artifact
        .layers
        .iter()
        .filter_map(|l| {
            l.annotations
                .get(ANNOTATION_IMAGE_PUBLISHED)
                .map(String::as_str)
        })
        .collect();
    assert_eq!(published.len(), 1, "the shop's one image is referenced");
    let image = v.skopeo_inspect(false, published[0]).unwrap();
    let digest = published[0].split_once('@').unwrap().1;
    assert_eq!(image["Digest"], digest, "{image}");
    assert_eq!(image["Os"], "linux");
}

#[test]
fn updates_lists_newer_versions_on_the_channel_and_hides_other_channels() {
    let v = Vendor::start();
    v.publish(&ShopVersion::new("1.0.0"));
    v.publish(&ShopVersion::new("1.2.0"));
    v.publish(&ShopVersion::new("1.1.0"));
    let mut beta = ShopVersion::new("2.0.0");
    beta.channel = "beta".into();
    v.publish(&beta);
    let key = v.key.to_str().unwrap();
    let r = v.run(
        None,
        &[
            "updates",
            &v.oci(""),
            "--current",
            "1.0.0",
            "--key",
            key,
            "--output",
            "json",
        ],
    );
    assert_eq!(r.code, 0, "{r}");
    let out: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(
        out["channel"], "stable",
        "the channel of 1.0.0 as published"
    );
    let versions: Vec<&str> = out["newer"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["version"].as_str().unwrap())
        .collect();
    assert_eq!(versions, ["1.1.0", "1.2.0"], "semver order, beta hidden");
    let r = v.run(
        None,
        &[
            "updates",
            &v.oci(""),
            "--current",
            "1.0.0",
            "--channel",
            "beta",
            "--key",
            key,
        ],
    );
    assert_eq!(r.code, 0, "{r}");
    assert!(r.stdout.contains("  2.0.0  "), "{r}");
    assert!(!r.stdout.contains("1.1.0"), "{r}");

    // A customer's license names the channel: it is listed once the license verified.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let request = airlift_bundle::license::LicenseRequest {
        customer: "Example Corp".into(),
        customer_id: "cust-42".into(),
        channel: "beta".into(),
        ..Default::default()
    };
    let (_, bytes) =
        airlift_bundle::license::issue(&request, v.bundles.private_key(), now).unwrap();
    let license = v.dir.path().join("beta.lic");
    std::fs::write(&license, &bytes).unwrap();
    let lic = license.to_str().unwrap();
    let current = ["updates", &v.oci(""), "--current", "1.0.0", "--key", key];
    let r = v.run(None, &[&current[..], &["--license", lic]].concat());
    assert_eq!(r.code, 0, "{r}");
    assert!(
        r.stdout.contains("on channel beta") && r.stdout.contains("  2.0.0  "),
        "{r}"
    );
    let r = v.run(
        None,
        &[&current[..], &["--license", lic, "--channel", "stable"]].concat(),
    );
    assert_eq!(
        r.code, 2,
        "a --channel other than the license's is refused: {r}"
    );
    assert!(r.stderr.contains("differs from the channel `beta`"), "{r}");
    let text = String::from_utf8(bytes).unwrap();
    std::fs::write(
        &license,
        text.replacen("channel: beta", "channel: stable", 1),
    )
    .unwrap();
    let r = v.run(None, &[&current[..], &["--license", lic]].concat());
    assert_eq!(r.code, 7, "an altered license is refused: {r}");
    assert!(r.stderr.contains("altered after signing"), "{r}");
}

#[test]
fn a_tampered_artifact_is_refused_before_any_change() {
    let v = Vendor::start();
    v.publish(&ShopVersion::new("1.0.0"));
    let good = v.artifact("1.0.0");

    // 1. A changed component file: the layer list no longer matches the signed manifest.
    let evil_template = b"apiVersion: v1\nkind: Namespace\nmetadata: {name: pwned}\n".as_slice();
    let mut changed = good.clone();
    let i = changed
        .layers
        .iter()
        .position(|l| {
            l.annotations.get(ANNOTATION_TITLE).map(String::as_str)
                == Some("components/shop/shop.yaml")
        })
        .unwrap();
    changed.layers[i].digest = Digest::of_bytes(evil_template);
    changed.layers[i].size = evil_template.len() as u64;
    v.push_raw(&changed, &[evil_template], "evil-component");

    // 2. A changed airlift.yaml: the signature no longer verifies.
    let mut manifest_bytes = Vec::new();
    {
        let client = RegistryClient::new(&v.registry.host(), &v.options()).unwrap();
        manifest_bytes.extend(
            runtime()
                .block_on(client.get_blob_bytes(
                    "acme/shop",
                    &good.layers[0].digest,
                    good.layers[0].size,
                    1 << 20,
                ))
                .unwrap(),
        );
    }
    let text = String::from_utf8(manifest_bytes).unwrap();
    let evil_manifest = text.replace("replicas", "replicaz").into_bytes();
    assert_ne!(evil_manifest, text.as_bytes());
    let mut resigned = good.clone();
    resigned.layers[0].digest = Digest::of_bytes(&evil_manifest);
    resigned.layers[0].size = evil_manifest.len() as u64;
    v.push_raw(&resigned, &[&evil_manifest], "evil-manifest");

    let tiers = tiers();
    let (_, kubeconfig, cluster, _) = &tiers[0];
    let cluster = cluster.as_ref().unwrap();
    let target = format!("{}/site", v.registry.host());
    let key = v.key.to_str().unwrap();
    for (tag, expect) in [
        (
            "evil-component",
            "does not match its signed manifest at layer",
        ),
        ("evil-manifest", "failed verification"),
    ] {
        let r = v.run(
            Some(kubeconfig),
            &[
                "install",
                &v.oci(&format!(":{tag}")),
                "--key",
                key,
                "--registry",
                &target,
                "-y",
            ],
        );
        assert_eq!(r.code, 3, "{tag}: a trust failure: {r}");
        assert!(r.stderr.contains(expect), "{tag}: {r}");
        assert!(
            cluster.object("", "namespaces", "", "shop").is_none(),
            "{tag}: nothing created in the cluster"
        );
        let requests = cluster.requests();
        assert!(
            requests.is_empty(),
            "{tag}: the cluster is not even contacted before the bundle verifies: {:?}",
            requests
                .iter()
                .map(|r| format!("{} {}", r.method, r.path))
                .collect::<Vec<_>>()
        );
        assert!(
            !v.registry
                .storage_dir()
                .join("docker/registry/v2/repositories/site")
                .exists(),
            "{tag}: nothing pushed to the site registry"
        );
        let r = v.run(
            None,
            &[
                "pull",
                &v.oci(&format!(":{tag}")),
                "--out",
                v.dir.path().join("x.airlift").to_str().unwrap(),
                "--key",
                key,
            ],
        );
        assert_eq!(r.code, 3, "{tag}: {r}");
        assert!(
            !v.dir.path().join("x.airlift").exists(),
            "{tag}: nothing written"
        );
    }
}

/// An interrupted publish never leaves a tag, and the next run sends nothing twice; a pull
/// whose downloads are cut mid-body still gives the same sha256.
#[test]
fn interrupted_publish_leaves_no_tag_and_resumes_and_cut_pulls_are_byte_identical() {
    use airlift_registry::RetryPolicy;
    use airlift_testkit::fault_proxy::{Fault, FaultProxy, Rule, Schedule};

    let dir = tempfile::tempdir().unwrap();
    let bundles = ShopBundles::new(dir.path()).unwrap();
    let key = bundles.public_key().unwrap();
    let path = bundles.write(&ShopVersion::new("1.0.0")).unwrap();
    let trust = Trust::from_flags(Some(&key), false).unwrap();
    let (bundle, verified) =
        airlift_deploy::open_verified(&path, &trust, &NoProgress, true).unwrap();
    let bundle = Arc::new(bundle);
    let registry = TestRegistry::plain();
    let upstream = format!("127.0.0.1:{}", registry.port()).parse().unwrap();
    let rt = runtime();
    let proxy = rt.block_on(FaultProxy::start(
        upstream,
        vec![
            Rule::new(Fault::Status(500), Schedule::Always)
                .method("PUT")
                .path_contains("/acme/shop/manifests/1.0.0"),
            Rule::new(
                Fault::ResetResponseBody { after: 1000 },
                Schedule::EveryNth(2),
            )
            .method("GET")
            .path_contains("/acme/shop/blobs/")
            .max(4),
        ],
    ));
    let publish = |host: &str, retry: RetryPolicy| {
        let oci = OciReference::parse(&format!("oci://{host}/acme/shop")).unwrap();
        let options = RegistryOptions::default()
            .without_auth_files()
            .with_insecure(host)
            .with_retry(retry);
        rt.block_on(airlift_deploy::publish::publish(
            bundle.clone(),
            &verified.sha256,
            &oci,
            false,
            &options,
            Arc::new(NoProgress),
        ))
        .map_err(|e| e.to_string())
    };
    let failed = publish(&proxy.host(), RetryPolicy::none());
    assert!(failed.is_err(), "the tag PUT failed: {failed:?}");
    let tags = registry
        .storage_dir()
        .join("docker/registry/v2/repositories/acme/shop/_manifests/tags");
    assert!(!tags.exists(), "no tag after an interrupted publish");
    assert!(
        registry
            .storage_dir()
            .join("docker/registry/v2/repositories/acme/shop/acme/api")
            .exists(),
        "the images went first"
    );

    let done = publish(&registry.host(), RetryPolicy::default()).unwrap();
    assert!(done.artifact.tagged);
    assert_eq!(done.images.bytes_pushed, 0, "images are not sent again");
    assert_eq!(done.artifact.blobs_pushed, 0, "layers are not sent again");
    assert!(done.artifact.blobs_present > 0);
    assert!(tags.join("1.0.0").exists());

    let out = dir.path().join("pulled.airlift");
    let oci = OciReference::parse(&format!("oci://{}/acme/shop:1.0.0", proxy.host())).unwrap();
    let options = RegistryOptions::default()
        .without_auth_files()
        .with_insecure(proxy.host());
    rt.block_on(airlift_deploy::publish::pull(
        &oci,
        &trust,
        &options,
        &out,
        &NoProgress,
    ))
    .unwrap_or_else(|e| panic!("pull failed: {e:?}\nfaults: {:?}", proxy.fault_log()));
    assert!(
        proxy
            .fault_log()
            .iter()
            .filter(|f| f.contains("GET"))
            .count()
            >= 1,
        "downloads were cut: {:?}",
        proxy.fault_log()
    );
    assert_eq!(sha256_file(&out), sha256_file(&path));
}
