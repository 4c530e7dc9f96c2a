//! Independent checks of the customer site: skopeo against the registry, the registry's own
//! storage, kubectl and the cluster's request log.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;

use anyhow::Context;
use serde::Serialize;
use serde_json::Value;

use super::{Site, NAMESPACE, PREFIX};
use crate::process::{label_of, run};
use crate::protocol::BundleFile;

/// What the customer registry stores, read from its storage folder (not through its API).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RegistryState {
    /// Repository → its tags.
    pub tags: BTreeMap<String, BTreeSet<String>>,
    /// Number of blobs stored (layers, configs and manifests).
    pub blobs: usize,
}

impl RegistryState {
    /// True when nothing at all is stored.
    pub fn is_empty(&self) -> bool {
        self.tags.is_empty() && self.blobs == 0
    }
}

/// Reads the registry's storage: repositories with their tags, and the blob count.
pub fn registry_state(site: &Site) -> anyhow::Result<RegistryState> {
    let root = site.registry.storage_dir().join("docker/registry/v2");
    let mut state = RegistryState::default();
    let repos = root.join("repositories");
    if repos.is_dir() {
        walk_repositories(&repos, &repos, &mut state.tags)?;
    }
    let blobs = root.join("blobs/sha256");
    if blobs.is_dir() {
        for prefix in fs_err::read_dir(&blobs)? {
            for blob in fs_err::read_dir(prefix?.path())? {
                if blob?.path().join("data").is_file() {
                    state.blobs += 1;
                }
            }
        }
    }
    Ok(state)
}

fn walk_repositories(
    root: &Path,
    dir: &Path,
    out: &mut BTreeMap<String, BTreeSet<String>>,
) -> anyhow::Result<()> {
    for entry in fs_err::read_dir(dir)? {
        let path = entry?.path();
        if !path.is_dir() {
            continue;
        }
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if name == "_manifests" {
            let repo = dir
                .strip_prefix(root)
                .context("repository path")?
                .to_string_lossy()
                .into_owned();
            let mut tags = BTreeSet::new();
            let tag_dir = path.join("tags");
            if tag_dir.is_dir() {
                for t in fs_err::read_dir(&tag_dir)? {
                    let t = t?;
                    if t.path().join("current/link").is_file() {
                        tags.insert(t.file_name().to_string_lossy().into_owned());
                    }
                }
            }
            out.insert(repo, tags);
        } else if !name.starts_with('_') {
            walk_repositories(root, &path, out)?;
        }
    }
    Ok(())
}

/// Where the nested mapping rule puts `original` (`HOST/PATH:TAG`): `REGISTRY/PREFIX/PATH:TAG`.
pub fn relocated_reference(site: &Site, original: &str) -> anyhow::Result<String> {
    let (_, path) = original
        .split_once('/')
        .with_context(|| format!("`{original}` has no registry host"))?;
    Ok(format!("{}/{PREFIX}/{path}", site.registry.host()))
}

/// skopeo, run independently inside the namespace, copies every image of `bundle` from its
/// relocated reference (by tag, then by digest); each digest must equal the vendor side's.
/// Returns relocated reference → digest.
pub fn check_relocated(
    site: &Site,
    bundle: &BundleFile,
) -> anyhow::Result<BTreeMap<String, String>> {
    let layout = site.scratch("skopeo-check")?;
    let mut seen = BTreeMap::new();
    for (i, (original, digest)) in bundle.images.iter().enumerate() {
        let relocated = relocated_reference(site, original)?;
        let in_registry = relocated
            .strip_prefix(&format!("{}/", site.registry.host()))
            .context("relocated reference")?
            .to_string();
        site.registry
            .skopeo_pull_to_layout(&in_registry, &layout, &format!("img{i}"));
        let got = site.registry.manifest_digest(&in_registry).to_string();
        anyhow::ensure!(
            &got == digest,
            "`{relocated}` has digest {got} in the customer registry, but the vendor side had {digest}"
        );
        let repo = in_registry
            .rsplit_once(':')
            .map_or(in_registry.as_str(), |(r, _)| r);
        site.registry.skopeo_pull_to_layout(
            &format!("{repo}@{digest}"),
            &layout,
            &format!("img{i}-by-digest"),
        );
        seen.insert(relocated, got);
    }
    Ok(seen)
}

/// Every tag the registry holds can be copied completely by skopeo: no tag points at
/// something half pushed.
pub fn check_tags_complete(site: &Site) -> anyhow::Result<usize> {
    let state = registry_state(site)?;
    let layout = site.scratch("skopeo-tags")?;
    let mut n = 0;
    for (repo, tags) in &state.tags {
        for tag in tags {
            site.registry.skopeo_pull_to_layout(
                &format!("{repo}:{tag}"),
                &layout,
                &format!("t{n}"),
            );
            n += 1;
        }
    }
    Ok(n)
}

/// Requests that changed the cluster: every write except access reviews and dry runs.
pub fn cluster_writes(site: &Site) -> Vec<String> {
    site.cluster
        .requests()
        .into_iter()
        .filter(|r| matches!(r.method.as_str(), "POST" | "PUT" | "PATCH" | "DELETE"))
        // Reviews (access, rules, who-am-I) are questions, not writes: nothing is stored.
        .filter(|r| {
            !r.path.contains("accessreviews")
                && !r.path.contains("rulesreviews")
                && !r.path.ends_with("/selfsubjectreviews")
        })
        .filter(|r| !r.query.contains("dryRun"))
        .map(|r| format!("{} {} -> {}", r.method, r.path, r.status))
        .collect()
}

/// `kubectl get KINDS -n NAMESPACE -o json` (a real client reading the cluster back).
pub fn kubectl_get(site: &Site, kinds: &str) -> anyhow::Result<Vec<Value>> {
    let args: Vec<String> = [
        "get",
        kinds,
        "--namespace",
        NAMESPACE,
        "--output",
        "json",
        "--kubeconfig",
    ]
    .iter()
    .map(|s| s.to_string())
    .chain([site.cluster.kubeconfig_path().display().to_string()])
    .collect();
    let mut cmd = Command::new("kubectl");
    cmd.args(&args)
        .env("HOME", site.input.workdir.join("home"))
        .env("KUBECACHEDIR", site.input.workdir.join("kube-cache"));
    let out = run(
        cmd,
        &label_of(Path::new("kubectl"), &args),
        &site.logs(),
        super::COMMAND_LIMIT,
    )?;
    out.ensure_success()?;
    let list = out.json()?;
    Ok(list["items"].as_array().cloned().unwrap_or_default())
}

/// The app's objects in the namespace as `Kind/name`: Deployments, Services and ConfigMaps,
/// without the cluster's own `kube-root-ca.crt` (release records are Secrets, not listed).
pub fn app_objects(site: &Site) -> anyhow::Result<BTreeMap<String, Value>> {
    let mut out = BTreeMap::new();
    for item in kubectl_get(site, "deployments,services,configmaps")? {
        let kind = item["kind"].as_str().unwrap_or_default().to_string();
        let name = item["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        if name == "kube-root-ca.crt"
            || item["metadata"]["labels"]["airlift.dev/release-record"].is_string()
        {
            continue;
        }
        out.insert(format!("{kind}/{name}"), item);
    }
    Ok(out)
}

/// Every container and init container image of every Deployment, as `deploy/container` → image.
pub fn live_images(objects: &BTreeMap<String, Value>) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for (key, obj) in objects {
        if !key.starts_with("Deployment/") {
            continue;
        }
        let spec = &obj["spec"]["template"]["spec"];
        for list in ["initContainers", "containers"] {
            for c in spec[list].as_array().into_iter().flatten() {
                out.insert(
                    format!("{key}/{}", c["name"].as_str().unwrap_or_default()),
                    c["image"].as_str().unwrap_or_default().to_string(),
                );
            }
        }
    }
    out
}

/// Every live image is `REGISTRY/PREFIX/PATH[:TAG]@DIGEST`, in the customer registry, with the
/// vendor side's digest for its original reference.
pub fn check_images_by_digest(
    site: &Site,
    bundle: &BundleFile,
    images: &BTreeMap<String, String>,
) -> anyhow::Result<()> {
    anyhow::ensure!(
        !images.is_empty(),
        "no Deployment containers found in the cluster"
    );
    for (container, image) in images {
        let matched = bundle.images.iter().find_map(|(original, digest)| {
            let relocated = relocated_reference(site, original).ok()?;
            let repo = relocated
                .rsplit_once(':')
                .map_or(relocated.as_str(), |(r, _)| r);
            let tagged = image.starts_with(&format!("{repo}@"))
                || image.starts_with(&format!("{relocated}@"));
            (tagged && image.ends_with(&format!("@{digest}"))).then_some(original)
        });
        anyhow::ensure!(
            matched.is_some(),
            "{container} runs `{image}`, which is not a bundle image by digest in the customer \
             registry {} (bundle images: {:?})",
            site.target(),
            bundle.images
        );
    }
    Ok(())
}

/// `true` when every field of `want` is present with the same value in `have` (maps are
/// compared key by key, lists element by element): the server may add defaults, nothing else.
pub fn contains(have: &Value, want: &Value) -> bool {
    match (have, want) {
        (Value::Object(h), Value::Object(w)) => w
            .iter()
            .all(|(k, wv)| h.get(k).is_some_and(|hv| contains(hv, wv))),
        (Value::Array(h), Value::Array(w)) => {
            h.len() == w.len() && h.iter().zip(w).all(|(hv, wv)| contains(hv, wv))
        }
        // `80` against `"80"` (e.g. a port written as a string) compares as text.
        (Value::Number(h), Value::String(w)) => h.to_string() == *w,
        (h, w) => h == w,
    }
}

/// The objects `airlift-install render` wrote into `dir`, as `Kind/name` → object.
pub fn rendered_objects(dir: &Path) -> anyhow::Result<BTreeMap<String, Value>> {
    let mut out = BTreeMap::new();
    let mut files = Vec::new();
    collect_yaml(dir, &mut files)?;
    for f in files {
        let text = fs_err::read_to_string(&f)?;
        for doc in serde_yaml::Deserializer::from_str(&text) {
            let v: Value = serde::Deserialize::deserialize(doc)
                .with_context(|| format!("`{}` is not YAML", f.display()))?;
            if v.is_null() {
                continue;
            }
            let kind = v["kind"].as_str().unwrap_or_default();
            let name = v["metadata"]["name"].as_str().unwrap_or_default();
            out.insert(format!("{kind}/{name}"), v);
        }
    }
    Ok(out)
}

fn collect_yaml(dir: &Path, out: &mut Vec<std::path::PathBuf>) -> anyhow::Result<()> {
    for entry in fs_err::read_dir(dir)? {
        let p = entry?.path();
        if p.is_dir() {
            collect_yaml(&p, out)?;
        } else if p.extension().is_some_and(|e| e == "yaml" || e == "yml") {
            out.push(p);
        }
    }
    out.sort();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::contains;
    use serde_json::json;

    #[test]
    fn contains_accepts_server_defaults_but_not_changed_or_missing_fields() {
        let live = json!({"replicas": 1, "template": {"spec": {"containers": [{"name": "api", "image": "a@sha256:1", "imagePullPolicy": "IfNotPresent"}]}}, "ports": [{"port": 80, "targetPort": 8080}]});
        let rendered = json!({"replicas": 1, "template": {"spec": {"containers": [{"name": "api", "image": "a@sha256:1"}]}}});
        assert!(contains(&live, &rendered));
        assert!(contains(&live, &json!({"ports": [{"targetPort": "8080"}]})));
        assert!(!contains(&live, &json!({"replicas": 2})));
        assert!(!contains(&live, &json!({"paused": true})));
        let two =
            json!({"template": {"spec": {"containers": [{"name": "api"}, {"name": "sidecar"}]}}});
        assert!(
            !contains(&live, &two),
            "a missing list element is a difference"
        );
    }
}
