//! The customer-side scenarios. Each one acts with the real `airlift-install` and checks the
//! registry and the cluster independently afterwards; a failed check is an error naming what
//! was expected and what was found.

use airlift_testkit::cluster::FailureMode;
use anyhow::Context;
use serde_json::{json, Value};
use std::collections::BTreeMap;

use super::checks::{
    app_objects, check_images_by_digest, check_relocated, check_tags_complete, cluster_writes,
    contains, live_images, registry_state, rendered_objects,
};
use super::{Site, NAMESPACE};
use crate::protocol::BundleFile;

/// The scenario names `airgap-customer` accepts.
pub const SCENARIOS: &[&str] = &[
    "harness",
    "relocate",
    "lifecycle",
    "crash-recovery",
    "untrusted-bundles",
    "registry-faults",
    "failed-upgrade",
];

/// Runs the scenario called `name`.
pub fn run(site: &mut Site, name: &str) -> anyhow::Result<()> {
    match name {
        "harness" => harness(site),
        "relocate" => relocate(site),
        "lifecycle" => lifecycle(site),
        "crash-recovery" => crash_recovery(site),
        "untrusted-bundles" => untrusted_bundles(site),
        "registry-faults" => registry_faults(site),
        "failed-upgrade" => failed_upgrade(site),
        other => anyhow::bail!(
            "unknown scenario `{other}`; known: {}",
            SCENARIOS.join(", ")
        ),
    }
}

/// The harness itself: inside the namespace the test cluster answers kubectl, the customer
/// registry takes a skopeo push over TLS with its password, and skopeo cannot reach the
/// vendor registry.
fn harness(site: &mut Site) -> anyhow::Result<()> {
    let nodes = super::checks::kubectl_get(site, "nodes")?;
    let arches: Vec<&str> = nodes
        .iter()
        .filter_map(|n| n["status"]["nodeInfo"]["architecture"].as_str())
        .collect();
    anyhow::ensure!(
        arches == ["amd64", "arm64"],
        "kubectl sees nodes {arches:?}"
    );

    let layout = site.scratch("harness-image")?;
    let set = airlift_testkit::images::sample_set(&layout, 9, 64 << 10)?;
    let digest = site.registry.seed(&layout, "multi", "probe/multi:1");
    anyhow::ensure!(
        digest == set.multi.index.digest,
        "skopeo pushed {} but the registry serves {digest}",
        set.multi.index.digest
    );
    let state = registry_state(site)?;
    anyhow::ensure!(
        state
            .tags
            .get("probe/multi")
            .is_some_and(|t| t.contains("1")),
        "the registry's storage does not show probe/multi:1: {state:?}"
    );

    let vendor_ref = format!("docker://{}/acme/api:1.0", site.input.vendor_registry);
    let out = std::process::Command::new("skopeo")
        .args([
            "inspect",
            "--raw",
            "--tls-verify=false",
            "--retry-times=0",
            &vendor_ref,
        ])
        .output()?;
    anyhow::ensure!(
        !out.status.success(),
        "skopeo reached the vendor registry from the air gap"
    );
    site.step(
        "harness",
        json!({
            "nodes": arches,
            "pushed": digest.to_string(),
            "registry": state,
            "vendor_skopeo_error": String::from_utf8_lossy(&out.stderr).trim(),
        }),
    );
    Ok(())
}

/// Verify inside the air gap, push both bundles, check every relocated image with skopeo, and
/// push again (nothing is re-sent).
fn relocate(site: &mut Site) -> anyhow::Result<()> {
    for role in ["saas-v1", "demo"] {
        let bundle = site.bundle(role)?;
        let mut args = vec!["verify".to_string(), bundle.path.display().to_string()];
        args.extend(site.key_args());
        site.run_installer(&args)?.ensure_success()?;
        site.step(&format!("verify {role}"), json!({}));
    }
    for role in ["saas-v1", "demo"] {
        let bundle = site.bundle(role)?;
        let out = site.run_installer(&site.push_args(&bundle.path))?;
        out.ensure_success()?;
        let relocated = check_relocated(site, &bundle)?;
        site.step(
            &format!("push {role}"),
            json!({ "relocated": relocated, "report": out.json()? }),
        );
    }
    let bundle = site.bundle("saas-v1")?;
    let before = registry_state(site)?;
    let out = site.run_installer(&site.push_args(&bundle.path))?;
    out.ensure_success()?;
    let after = registry_state(site)?;
    anyhow::ensure!(
        before == after,
        "a second push changed the registry: {before:?} -> {after:?}"
    );
    site.step("push saas-v1 again", json!({ "report": out.json()? }));
    anyhow::ensure!(cluster_writes(site).is_empty(), "push wrote to the cluster");
    Ok(())
}

/// install v1, check images and objects, plan v2, upgrade, rollback, uninstall.
fn lifecycle(site: &mut Site) -> anyhow::Result<()> {
    let v1 = site.bundle("saas-v1")?;
    let v2 = site.bundle("saas-v2")?;

    let out = site.run_installer(&site.bundle_command_args("install", &v1.path))?;
    out.ensure_success()?;
    let relocated = check_relocated(site, &v1)?;
    let objects = check_deployed(site, &v1, "install-v1-render")?;
    expect_version(&objects, "1.0.0", "info", true)?;
    site.step(
        "install saas-v1",
        json!({ "relocated": relocated, "images": live_images(&objects) }),
    );

    let writes = cluster_writes(site).len();
    let mut args = site.bundle_command_args("plan", &v2.path);
    args.extend(["--output".to_string(), "json".to_string()]);
    let out = site.run_installer(&args)?;
    out.ensure_success()?;
    let plan = out.json()?;
    anyhow::ensure!(
        cluster_writes(site).len() == writes,
        "plan changed the cluster: {:?}",
        &cluster_writes(site)[writes..]
    );
    site.step("plan saas-v2", json!({ "plan": plan }));

    let out = site.run_installer(&site.bundle_command_args("upgrade", &v2.path))?;
    out.ensure_success()?;
    check_relocated(site, &v2)?;
    let objects = check_deployed(site, &v2, "upgrade-v2-render")?;
    expect_version(&objects, "2.0.0", "warn", false)?;
    site.step(
        "upgrade saas-v2",
        json!({ "images": live_images(&objects) }),
    );

    let mut args = vec!["rollback".to_string(), v1.name.clone()];
    args.extend(site.cluster_args());
    args.extend(["--timeout".to_string(), super::READY_TIMEOUT.to_string()]);
    site.run_installer(&args)?.ensure_success()?;
    let objects = app_objects(site)?;
    check_images_by_digest(site, &v1, &live_images(&objects))?;
    expect_version(&objects, "1.0.0", "info", true)?;
    let status = release_status(site, &v1.name)?;
    anyhow::ensure!(
        status["deployed"]["bundle"]["version"] == "1.0.0",
        "after the rollback the current release is not v1: {status}"
    );
    site.step(
        "rollback",
        json!({ "images": live_images(&objects), "status": status }),
    );

    let mut args = vec!["uninstall".to_string(), v1.name.clone()];
    args.extend(site.cluster_args());
    args.push("--yes".to_string());
    site.run_installer(&args)?.ensure_success()?;
    let left = app_objects(site)?;
    anyhow::ensure!(
        left.is_empty(),
        "uninstall left objects behind: {:?}",
        left.keys()
    );
    site.step(
        "uninstall",
        json!({ "left": left.keys().collect::<Vec<_>>() }),
    );
    Ok(())
}

/// The live objects match `airlift-install render` for the same bundle and registry, and run
/// the bundle's images by digest from the customer registry. Returns the live objects.
fn check_deployed(
    site: &Site,
    bundle: &BundleFile,
    scratch: &str,
) -> anyhow::Result<BTreeMap<String, Value>> {
    let out_dir = site.scratch(scratch)?.join("manifests");
    let mut args = vec!["render".to_string(), bundle.path.display().to_string()];
    args.extend(site.key_args());
    args.extend(["--registry".to_string(), site.target()]);
    args.extend(["--namespace".to_string(), NAMESPACE.to_string()]);
    args.extend([
        "--yes".to_string(),
        "--out".to_string(),
        out_dir.display().to_string(),
    ]);
    site.run_installer(&args)?.ensure_success()?;
    let rendered = rendered_objects(&out_dir)?;
    let live = app_objects(site)?;
    let mut compared = 0;
    for (key, want) in &rendered {
        let kind = key.split('/').next().unwrap_or_default();
        if !matches!(kind, "Deployment" | "Service" | "ConfigMap") {
            continue;
        }
        let have = live.get(key).with_context(|| {
            format!(
                "rendered {key} is not in the cluster (live: {:?})",
                live.keys()
            )
        })?;
        for field in ["spec", "data"] {
            if let Some(w) = want.get(field) {
                anyhow::ensure!(
                    contains(&have[field], w),
                    "live {key}.{field} differs from the rendered manifest:\nrendered: {w}\nlive: {}",
                    have[field]
                );
            }
        }
        compared += 1;
    }
    anyhow::ensure!(
        compared >= 5,
        "only {compared} rendered objects were compared"
    );
    check_images_by_digest(site, bundle, &live_images(&live))?;
    Ok(live)
}

/// The markers of a version: the config's VERSION and LOG_LEVEL, and whether
/// `legacy-settings` exists (v1 only).
fn expect_version(
    objects: &BTreeMap<String, Value>,
    version: &str,
    log_level: &str,
    legacy: bool,
) -> anyhow::Result<()> {
    let cm = objects
        .get("ConfigMap/acme-config")
        .context("ConfigMap acme-config is missing")?;
    anyhow::ensure!(
        cm["data"]["VERSION"] == version && cm["data"]["LOG_LEVEL"] == log_level,
        "acme-config should hold VERSION={version}, LOG_LEVEL={log_level}: {}",
        cm["data"]
    );
    anyhow::ensure!(
        objects.contains_key("ConfigMap/legacy-settings") == legacy,
        "ConfigMap legacy-settings should {}exist (objects: {:?})",
        if legacy { "" } else { "not " },
        objects.keys()
    );
    for (key, obj) in objects.iter().filter(|(k, _)| k.starts_with("Deployment/")) {
        let want = obj["spec"]["replicas"].as_i64().unwrap_or(1);
        anyhow::ensure!(
            obj["status"]["readyReplicas"].as_i64() == Some(want),
            "{key} is not ready: {}",
            obj["status"]
        );
    }
    Ok(())
}

/// kill -9 during the push phase of `install`, and again during its apply phase; each time a
/// re-run of `install` converges.
fn crash_recovery(site: &mut Site) -> anyhow::Result<()> {
    let v1 = site.bundle("saas-v1")?;
    let args = site.bundle_command_args("install", &v1.path);

    // During push: once the registry has stored its first blobs.
    let mut running = site.spawn_installer(&args)?;
    let registry_dir = site.registry.storage_dir();
    let hit = running.wait_for(super::COMMAND_LIMIT, || blob_count(&registry_dir) >= 2)?;
    let killed = running.kill9()?;
    anyhow::ensure!(
        hit && killed.killed,
        "install finished before the kill during push:\n{}",
        killed.describe()
    );
    let partial = registry_state(site)?;
    let complete_tags = check_tags_complete(site)?;
    let writes = cluster_writes(site);
    anyhow::ensure!(
        writes.is_empty(),
        "a push killed midway already wrote to the cluster: {writes:?}"
    );
    site.run_installer(&args)?.ensure_success()?;
    check_relocated(site, &v1)?;
    let objects = check_deployed(site, &v1, "crash-push-render")?;
    expect_version(&objects, "1.0.0", "info", true)?;
    site.step(
        "kill -9 during push, then install",
        json!({ "blobs_at_kill": partial.blobs, "tags_at_kill": complete_tags }),
    );

    // During apply: uninstall, then kill once the re-install's first object write lands.
    let mut un = vec!["uninstall".to_string(), v1.name.clone()];
    un.extend(site.cluster_args());
    un.push("--yes".to_string());
    site.run_installer(&un)?.ensure_success()?;
    let base = cluster_writes(site).len();
    let mut running = site.spawn_installer(&args)?;
    let hit = running.wait_for(super::COMMAND_LIMIT, || {
        cluster_writes(site)
            .iter()
            .skip(base)
            .any(|w| w.starts_with("PATCH") || w.starts_with("POST"))
    })?;
    let killed = running.kill9()?;
    anyhow::ensure!(
        hit && killed.killed,
        "install finished before the kill during apply:\n{}",
        killed.describe()
    );
    let writes_at_kill = cluster_writes(site).len() - base;
    site.run_installer(&args)?.ensure_success()?;
    let objects = check_deployed(site, &v1, "crash-apply-render")?;
    expect_version(&objects, "1.0.0", "info", true)?;
    site.step(
        "kill -9 during apply, then install",
        json!({ "writes_at_kill": writes_at_kill }),
    );
    Ok(())
}

fn blob_count(storage: &std::path::Path) -> usize {
    let dir = storage.join("docker/registry/v2/blobs/sha256");
    let Ok(prefixes) = std::fs::read_dir(dir) else {
        return 0;
    };
    prefixes
        .flatten()
        .filter_map(|p| std::fs::read_dir(p.path()).ok())
        .flat_map(|d| d.flatten())
        .filter(|b| b.path().join("data").is_file())
        .count()
}

/// A bit flipped in transit, a bundle signed by another key, an unsigned bundle: `install`
/// refuses each before any side effect.
fn untrusted_bundles(site: &mut Site) -> anyhow::Result<()> {
    let v1 = site.bundle("saas-v1")?;
    let copy = site.scratch("tampered")?.join("acme-saas-1.0.0.airlift");
    fs_err::copy(&v1.path, &copy)?;
    // Verify the intact copy first, so a recorded proof exists and must not hide the change.
    let mut verify = vec!["verify".to_string(), copy.display().to_string()];
    verify.extend(site.key_args());
    site.run_installer(&verify)?.ensure_success()?;
    let offset = flip_bit(&copy)?;

    let cases = [
        (
            "bit flipped",
            copy.clone(),
            vec!["tampered", "acme-saas-1.0.0.airlift"],
        ),
        (
            "signed by another key",
            site.bundle("demo-other-key")?.path,
            vec![
                "failed verification",
                "signed by key",
                "not by the given key",
            ],
        ),
        (
            "unsigned",
            site.bundle("demo-unsigned")?.path,
            vec!["failed verification", "bundle is unsigned"],
        ),
    ];
    for (what, path, mentions) in cases {
        let out = site.run_installer(&site.bundle_command_args("install", &path))?;
        out.ensure_code(3)?;
        out.ensure_stderr_mentions(&mentions)?;
        let state = registry_state(site)?;
        anyhow::ensure!(
            state.is_empty(),
            "the registry changed after a refused bundle ({what}): {state:?}"
        );
        let writes = cluster_writes(site);
        anyhow::ensure!(
            writes.is_empty(),
            "the cluster changed after a refused bundle ({what}): {writes:?}"
        );
        site.step(
            &format!("refused: {what}"),
            json!({ "stderr": out.stderr, "flipped_offset": offset }),
        );
    }
    Ok(())
}

/// `airlift-install status RELEASE --output json`.
fn release_status(site: &Site, release: &str) -> anyhow::Result<Value> {
    let mut args = vec!["status".to_string(), release.to_string()];
    args.extend(site.cluster_args());
    args.extend(["--output".to_string(), "json".to_string()]);
    let out = site.run_installer(&args)?;
    out.ensure_success()?;
    out.json()
}

/// Flips the lowest bit of the byte in the middle of `path`; returns its offset.
fn flip_bit(path: &std::path::Path) -> anyhow::Result<u64> {
    use std::io::{Read, Seek, SeekFrom, Write};
    let mut f = fs_err::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)?;
    let offset = f.metadata()?.len() / 2;
    let mut b = [0u8; 1];
    f.seek(SeekFrom::Start(offset))?;
    f.read_exact(&mut b)?;
    b[0] ^= 1;
    f.seek(SeekFrom::Start(offset))?;
    f.write_all(&b)?;
    f.sync_all()?;
    Ok(offset)
}

/// The customer registry down, serving a CA the installer was not given, refusing the
/// password: each a clear error naming the registry, with a hint, and nothing half-done.
/// `install` checks the registry in its preflight, so it exits 7 ("a preflight check failed;
/// nothing was changed").
fn registry_faults(site: &mut Site) -> anyhow::Result<()> {
    let v1 = site.bundle("saas-v1")?;
    let host = site.registry.host();

    // Down.
    site.registry.stop();
    let out = site.run_installer(&site.bundle_command_args("install", &v1.path))?;
    site.registry.wipe();
    assert_registry_refusal(site, "registry down", &out, &[&host])?;

    // Unknown CA: the same command without --registry-ca.
    let mut args = site.bundle_command_args("install", &v1.path);
    let ca = args
        .iter()
        .position(|a| a == "--registry-ca")
        .context("--registry-ca")?;
    args.drain(ca..ca + 2);
    let out = site.run_installer(&args)?;
    assert_registry_refusal(site, "unknown CA", &out, &[&host, "--registry-ca"])?;

    // Wrong password.
    let (mut cmd, label) = site.installer(&site.bundle_command_args("install", &v1.path));
    cmd.env("AIRLIFT_REGISTRY_PASSWORD", "not-the-password");
    let out = crate::process::run(cmd, &label, &site.logs(), super::COMMAND_LIMIT)?;
    assert_registry_refusal(site, "wrong password", &out, &[&host, "401"])?;
    Ok(())
}

fn assert_registry_refusal(
    site: &mut Site,
    what: &str,
    out: &crate::process::Outcome,
    mentions: &[&str],
) -> anyhow::Result<()> {
    // Registry problems found by preflight exit with the registry's code (docs/architecture.md).
    out.ensure_code(4)?;
    out.ensure_stderr_mentions(mentions)?;
    anyhow::ensure!(
        out.stderr.to_lowercase().contains("hint"),
        "{what}: the error gives no hint:\n{}",
        out.describe()
    );
    let state = registry_state(site)?;
    anyhow::ensure!(
        state.tags.is_empty(),
        "{what}: the registry holds tags afterwards: {state:?}"
    );
    let writes = cluster_writes(site);
    anyhow::ensure!(writes.is_empty(), "{what}: the cluster changed: {writes:?}");
    site.step(&format!("refused: {what}"), json!({ "stderr": out.stderr }));
    Ok(())
}

/// An upgrade whose new api never becomes ready is rolled back automatically (exit 8) and v1
/// keeps running, unchanged.
fn failed_upgrade(site: &mut Site) -> anyhow::Result<()> {
    let v1 = site.bundle("saas-v1")?;
    let v2 = site.bundle("saas-v2")?;
    site.run_installer(&site.bundle_command_args("install", &v1.path))?
        .ensure_success()?;
    let before = app_objects(site)?;
    let images_before = live_images(&before);

    let new_api = v2
        .images
        .iter()
        .find(|(r, _)| r.ends_with("/acme/api:2.0"))
        .map(|(_, d)| d.clone())
        .context("saas-v2 carries no acme/api:2.0")?;
    let hex = new_api.trim_start_matches("sha256:").to_string();
    site.cluster.fail_image(&hex, FailureMode::ImagePullBackOff);
    let mut args = site.bundle_command_args("upgrade", &v2.path);
    let t = args
        .iter()
        .position(|a| a == "--timeout")
        .context("--timeout")?;
    args[t + 1] = "10".to_string();
    let out = site.run_installer(&args)?;
    out.ensure_code(8)?;
    out.ensure_stderr_mentions(&["api", "ImagePullBackOff"])?;

    let after = app_objects(site)?;
    anyhow::ensure!(
        live_images(&after) == images_before,
        "after the automatic rollback the images differ from v1's:\nbefore: {images_before:?}\nafter: {:?}",
        live_images(&after)
    );
    check_images_by_digest(site, &v1, &live_images(&after))?;
    expect_version(&after, "1.0.0", "info", true)?;
    let status = release_status(site, &v1.name)?;
    anyhow::ensure!(
        status["deployed"]["bundle"]["version"] == "1.0.0",
        "after the automatic rollback the current release is not v1: {status}"
    );
    let failed_v2 = status["history"].as_array().into_iter().flatten().any(|r| {
        r["bundle"]["version"] == "2.0.0"
            && r["status"]
                .as_str()
                .is_some_and(|s| s.to_lowercase().contains("fail"))
    });
    anyhow::ensure!(
        failed_v2,
        "the history does not record the failed v2: {status}"
    );
    site.step(
        "failed upgrade rolled back",
        json!({ "stderr": out.stderr, "images": live_images(&after) }),
    );
    Ok(())
}
