//! `install|upgrade|plan oci://…` relocate registry to registry without a local copy (issue 17):
//! the vendor's registry (TLS + htpasswd) and the customer's (plain HTTP) are two real
//! `docker-registry` instances, the cluster is the test cluster, and the real
//! `airlift-install` runs with `TMPDIR` pointing at an empty folder while a probe samples every
//! file it holds open. Image blobs go from one registry to the other, each hashed on the way;
//! a blob changed on the vendor registry's disk is refused (exit 3) with nothing committed.
#![allow(clippy::unwrap_used)]

mod publish_support;

use std::path::{Path, PathBuf};

use airlift_bundle::Digest;
use airlift_testkit::bundles::ShopVersion;
use airlift_testkit::cluster::{ClusterOptions, TestCluster};
use airlift_testkit::registry::TestRegistry;
use publish_support::*;

/// Content bytes of the shop image's base layer in the size test.
const BIG_LAYER: u64 = 8 << 20;
/// The most any file the installer holds open may reach in an `oci://` install: the members
/// (manifest, signature, component files) are kilobytes, the base layer is 8 MiB.
const SMALL_FILE: u64 = 512 << 10;

/// The customer's registry, plain HTTP, logging every request.
fn site() -> TestRegistry {
    TestRegistry::plain_logged()
}

/// `install|upgrade|plan oci://…:VERSION … --registry SITE/corp --insecure-registry SITE`.
fn deploy_args<'a>(
    command: &'a str,
    oci: &'a str,
    key: &'a str,
    target: &'a str,
    site_host: &'a str,
) -> Vec<&'a str> {
    vec![
        command,
        oci,
        "--key",
        key,
        "--registry",
        target,
        "--insecure-registry",
        site_host,
        "--timeout",
        "1m",
        "-y",
    ]
}

/// Every file a registry committed: blob data and manifest or tag links (upload sessions in
/// `_uploads` are not committed content).
fn committed(registry: &TestRegistry) -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                if p.file_name().is_some_and(|n| n == "_uploads") {
                    continue;
                }
                walk(&p, out);
            } else {
                out.push(p);
            }
        }
    }
    let mut out = Vec::new();
    walk(&registry.storage_dir().join("docker/registry/v2"), &mut out);
    out
}

/// The data file the registry serves blob `digest` from.
fn blob_data(registry: &TestRegistry, digest: &Digest) -> PathBuf {
    let hex = digest.hex();
    registry
        .storage_dir()
        .join("docker/registry/v2/blobs/sha256")
        .join(&hex[..2])
        .join(hex)
        .join("data")
}

/// Log lines added to `log` since it was `before` long.
fn new_lines(before: &str, now: &str) -> Vec<String> {
    now.get(before.len()..)
        .unwrap_or(now)
        .lines()
        .map(str::to_string)
        .collect()
}

fn is_write(line: &str) -> bool {
    ["\"PUT ", "\"POST ", "\"PATCH ", "\"DELETE "]
        .iter()
        .any(|m| line.contains(m))
}

#[test]
fn install_oci_streams_images_registry_to_registry_without_a_local_copy() {
    let v = Vendor::start_with(BIG_LAYER, true);
    v.publish(&ShopVersion::new("1.0.0"));
    let api = v.bundles.images().api.clone();
    let base = &api.layers[0].blob;
    assert!(
        base.size >= BIG_LAYER,
        "the base layer is image-sized: {base:?}"
    );
    let site = site();
    let target = format!("{}/corp", site.host());
    let cluster = TestCluster::start(ClusterOptions::default()).unwrap();
    let key = v.key.to_str().unwrap();
    let tmp = v.dir.path().join("tmp");
    std::fs::create_dir(&tmp).unwrap();
    let oci = v.oci(":1.0.0");
    let host = site.host();
    let mut args = deploy_args("install", &oci, key, &target, &host);
    args.extend(["--output", "json"]);
    let started = std::time::Instant::now();
    let (r, probe) = v.run_probed(Some(cluster.kubeconfig_path()), &args, &tmp);
    let took = started.elapsed();
    assert_eq!(r.code, 0, "{r}");

    // The images are in the customer's registry, complete: skopeo copies them out and checks
    // every digest.
    let pushed = site.manifest_digest("corp/acme/api:1.0");
    assert_eq!(pushed, api.manifest.digest);
    let layout = v.dir.path().join("check-layout");
    site.skopeo_pull_to_layout("corp/acme/api:1.0", &layout, "api");
    assert!(layout
        .join("blobs/sha256")
        .join(base.digest.hex())
        .is_file());
    let out: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert!(
        out["push"]["bytesPushed"].as_u64().unwrap() >= base.size,
        "streamed, not mounted (another registry): {}",
        out["push"]
    );
    assert_eq!(out["push"]["bytesMounted"], 0, "{}", out["push"]);
    let d = cluster
        .object("apps", "deployments", "shop", "web")
        .unwrap();
    let image = d["spec"]["template"]["spec"]["containers"][0]["image"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(image, format!("{target}/acme/api@{}", api.manifest.digest));

    // Bytes went registry to registry: the vendor's registry served the base layer, the
    // customer's received it in an upload session.
    let source_log = v.registry.log();
    assert!(
        source_log.contains(&format!("GET /v2/acme/shop/blobs/{}", base.digest)),
        "the layer was read from the artifact's repository:\n{source_log}"
    );
    assert!(site
        .log()
        .contains("\"PATCH /v2/corp/acme/api/blobs/uploads/"));

    // Nothing image-sized was written locally: every file the installer held open for writing stayed
    // small, the one it kept in TMPDIR is the members file (the probe sees unnamed files), and
    // TMPDIR is empty after.
    let (largest, largest_path) = probe.largest_open();
    let in_tmp = probe.open_under(&tmp);
    eprintln!(
        "probe: {} samples; largest open file {largest} bytes ({largest_path}); in TMPDIR: \
         {in_tmp:?}; TMPDIR peak {} bytes; peak RSS {} KiB; base layer {} bytes; install \
         took {took:?}",
        probe.samples, probe.largest_tmpdir, probe.peak_rss_kib, base.size
    );
    assert!(
        largest < SMALL_FILE,
        "a file grew to {largest} bytes: {largest_path}"
    );
    assert!(
        in_tmp.iter().any(|(_, size)| *size > 0),
        "the members file in TMPDIR was seen: {:?}",
        probe.open
    );
    assert!(probe.largest_tmpdir < SMALL_FILE);
    assert_eq!(tree_size(&tmp), 0);
    assert_eq!(
        std::fs::read_dir(&tmp).unwrap().count(),
        0,
        "TMPDIR is left empty"
    );

    // The probe does see an image-sized file when there is one: `pull` writes the bundle.
    let tmp2 = v.dir.path().join("tmp2");
    std::fs::create_dir(&tmp2).unwrap();
    let file = v.dir.path().join("pulled.airlift");
    let (r, pulled) = v.run_probed(
        None,
        &["pull", &oci, "--out", file.to_str().unwrap(), "--key", key],
        &tmp2,
    );
    assert_eq!(r.code, 0, "{r}");
    let (largest, path) = pulled.largest_open();
    eprintln!(
        "control (pull): largest open file {largest} bytes ({path}); the file is {} bytes",
        std::fs::metadata(&file).unwrap().len()
    );
    assert!(
        largest >= base.size / 2,
        "the probe saw the pulled file grow: {:?}",
        pulled.open
    );
}

#[test]
fn a_blob_changed_in_the_vendor_registry_is_refused_and_nothing_is_committed() {
    let v = Vendor::start_with(1 << 20, false);
    v.publish(&ShopVersion::new("1.0.0"));
    let base = v.bundles.images().api.layers[0].blob.clone();
    let data = blob_data(&v.registry, &base.digest);
    let original = std::fs::read(&data).unwrap();
    let site = site();
    let target = format!("{}/corp", site.host());
    let cluster = TestCluster::start(ClusterOptions::default()).unwrap();
    let key = v.key.to_str().unwrap();
    let oci = v.oci(":1.0.0");
    let host = site.host();
    let args = deploy_args("install", &oci, key, &target, &host);

    let mut flipped = original.clone();
    let middle = flipped.len() / 2;
    flipped[middle] ^= 0x55;
    let half = original[..original.len() / 2].to_vec();
    for (case, bytes) in [
        ("same size, one byte changed", flipped),
        ("cut short", half),
    ] {
        std::fs::write(&data, &bytes).unwrap();
        let r = v.run(Some(cluster.kubeconfig_path()), &args);
        assert_eq!(r.code, 3, "{case}: the trust exit code: {r}");
        assert!(
            r.stderr.contains(&format!(
                "layer `blobs/sha256/{}` of `{}/acme/shop:1.0.0` does not match its digest",
                base.digest.hex(),
                v.registry.host()
            )),
            "{case}: named as a pull names it: {r}"
        );
        assert!(
            r.stderr.contains("changed after it was signed"),
            "{case}: {r}"
        );
        let kept = committed(&site);
        assert!(
            kept.is_empty(),
            "{case}: the customer's registry committed nothing (no blob, no manifest, no \
             tag): {kept:?}"
        );
        assert!(
            cluster.object("", "namespaces", "", "shop").is_none(),
            "{case}: nothing created in the cluster"
        );
    }

    // Restored, the same command installs: the refusal was the blob's.
    std::fs::write(&data, &original).unwrap();
    let r = v.run(Some(cluster.kubeconfig_path()), &args);
    assert_eq!(r.code, 0, "{r}");
    assert_eq!(
        site.manifest_digest("corp/acme/api:1.0"),
        v.bundles.images().api.manifest.digest
    );
}

#[test]
fn plan_oci_pushes_nothing_and_upgrade_oci_moves_to_the_newer_version() {
    let v = Vendor::start_with(1 << 20, true);
    v.publish(&ShopVersion::new("1.0.0"));
    v.publish(&ShopVersion::new("1.1.0"));
    let base = v.bundles.images().api.layers[0].blob.clone();
    let site = site();
    let target = format!("{}/corp", site.host());
    let cluster = TestCluster::start(ClusterOptions::default()).unwrap();
    let kubeconfig = cluster.kubeconfig_path();
    let key = v.key.to_str().unwrap();
    let host = site.host();
    let (v1, v2) = (v.oci(":1.0.0"), v.oci(":1.1.0"));
    let r = v.run(
        Some(kubeconfig),
        &deploy_args("install", &v1, key, &target, &host),
    );
    assert_eq!(r.code, 0, "{r}");

    let (site_before, source_before) = (site.log(), v.registry.log());
    let stored_before = committed(&site);
    let r = v.run(
        Some(kubeconfig),
        &deploy_args("plan", &v2, key, &target, &host),
    );
    assert_eq!(r.code, 0, "{r}");
    assert!(
        r.stdout
            .contains("Plan for release shop in namespace shop: shop 1.0.0 -> shop 1.1.0"),
        "{r}"
    );
    let site_lines = new_lines(&site_before, &site.log());
    assert!(
        site_lines.iter().all(|l| !is_write(l)),
        "plan wrote nothing to the customer's registry: {site_lines:?}"
    );
    assert_eq!(committed(&site), stored_before);
    let source_lines = new_lines(&source_before, &v.registry.log());
    assert!(
        source_lines
            .iter()
            .all(|l| !is_write(l) && !l.contains(&base.digest.to_string())),
        "plan read no image blob from the vendor's registry: {source_lines:?}"
    );
    assert!(
        source_lines
            .iter()
            .any(|l| l.contains("GET /v2/acme/shop/manifests/1.1.0")),
        "plan read the published 1.1.0: {source_lines:?}"
    );

    let r = v.run(
        Some(kubeconfig),
        &deploy_args("upgrade", &v2, key, &target, &host),
    );
    assert_eq!(r.code, 0, "{r}");
    assert!(
        r.stdout
            .contains("Upgraded release shop in namespace shop to shop 1.1.0"),
        "{r}"
    );
    let d = cluster
        .object("apps", "deployments", "shop", "web")
        .unwrap();
    assert_eq!(
        d["spec"]["template"]["metadata"]["annotations"]["shop.example.com/version"],
        "1.1.0"
    );
    assert_eq!(
        site.manifest_digest("corp/acme/api:1.0"),
        v.bundles.images().api.manifest.digest
    );
}

#[test]
fn relocating_within_the_vendor_registry_mounts_instead_of_streaming() {
    let v = Vendor::start();
    v.publish(&ShopVersion::new("1.0.0"));
    let cluster = TestCluster::start(ClusterOptions::default()).unwrap();
    let key = v.key.to_str().unwrap();
    let target = format!("{}/site", v.registry.host());
    let r = v.run(
        Some(cluster.kubeconfig_path()),
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
            "--output",
            "json",
        ],
    );
    assert_eq!(r.code, 0, "{r}");
    let out: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    let push = &out["push"];
    assert_eq!(push["bytesPushed"], 0, "no byte streamed: {push}");
    assert!(push["blobsMounted"].as_u64().unwrap() >= 3, "{push}");
    let api = &v.bundles.images().api;
    let image = v
        .skopeo_inspect(false, &format!("{target}/acme/api@{}", api.manifest.digest))
        .unwrap();
    assert_eq!(image["Digest"], api.manifest.digest.to_string(), "{image}");

    // Relocated onto the very repositories `publish` wrote: already there, nothing moves.
    let published = format!("{}/acme/shop", v.registry.host());
    let r = v.run(
        Some(cluster.kubeconfig_path()),
        &[
            "install",
            &v.oci(":1.0.0"),
            "--key",
            key,
            "--registry",
            &published,
            "--timeout",
            "1m",
            "-y",
            "--output",
            "json",
        ],
    );
    assert_eq!(r.code, 0, "{r}");
    let out: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    let push = &out["push"];
    assert_eq!(push["bytesPushed"], 0, "{push}");
    assert_eq!(push["bytesMounted"], 0, "{push}");
    assert_eq!(push["images"][0]["alreadyPresent"], true, "{push}");
}
