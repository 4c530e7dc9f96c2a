//! Snapshots a live SaaS cluster into a bundle definition folder, reading only (list and get).
//!
//! ```text
//! capture(client, selection)   // list/get: objects, skips counted, Pods' imageIDs, version, nodes
//!   → from_captured(captured)  // pin images, namespace, parameters, clean, escape, templates
//!   → Snapshot::write(dir)     // manifests/…, airlift.yaml, SNAPSHOT.md; same bytes on rerun
//! ```
//!
//! The rules (what is taken, skipped, cleaned and parameterized) are in `docs/snapshot.md`.

pub mod capture;
pub mod clean;
pub mod error;
pub mod output;
pub mod params;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use airlift_bundle::schema::common::{ComponentMode, Layer, Metadata, Requirements};
use airlift_bundle::schema::config::ConfigSchema;
use airlift_bundle::schema::definition::{
    BundleDefinition, ComponentDefinition, ImageDefinition, DEFINITION_KIND,
};
use serde::Serialize;
use serde_json::Value;

pub use capture::{capture, Captured, Selection};
pub use error::SnapshotError;
pub use params::{Param, ParamKind};

/// What the bundle is called, and what to read.
#[derive(Debug, Clone)]
pub struct Options {
    /// The bundle name (an RFC 1123 label).
    pub name: String,
    /// The bundle version (semver).
    pub version: String,
    /// The vendor.
    pub vendor: String,
    /// Namespaces and selector.
    pub selection: Selection,
    /// Where the snapshot came from, for the report (the kubeconfig context and server).
    pub source: String,
}

/// One object taken.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Taken {
    /// `Kind namespace/name`.
    pub object: String,
    /// The template file, relative to the folder.
    pub file: String,
}

/// What the snapshot did.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    /// Where it came from.
    pub source: String,
    /// Objects taken, sorted by file.
    pub taken: Vec<Taken>,
    /// Skipped: reason → objects.
    pub skipped: BTreeMap<String, Vec<String>>,
    /// Parameterized values (secrets without their values).
    pub params: Vec<Param>,
    /// Image as written on the SaaS → as written in the bundle.
    pub images: BTreeMap<String, String>,
    /// What the vendor should look at.
    pub review: Vec<String>,
}

/// A snapshot ready to write.
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// Relative path → contents.
    pub files: BTreeMap<String, String>,
    /// The report (also written as `SNAPSHOT.md`).
    pub report: Report,
}

impl Snapshot {
    /// Writes the folder: stale manifests of an earlier snapshot go; other files stay.
    pub fn write(&self, dir: &Path) -> Result<(), SnapshotError> {
        output::write_folder(dir, &self.files)
    }
}

/// Reads the cluster and builds the snapshot.
pub async fn take(client: &kube::Client, options: &Options) -> Result<Snapshot, SnapshotError> {
    let captured = capture(client, &options.selection).await?;
    from_captured(captured, options)
}

/// The token that stands for `{{ release.namespace }}`, registered first.
fn namespace_token(params: &mut Params) -> Value {
    params.literal_expr("{{ release.namespace | tojson }}")
}

use params::Params;

/// Builds the snapshot from what was read (no cluster needed).
pub fn from_captured(mut captured: Captured, options: &Options) -> Result<Snapshot, SnapshotError> {
    let primary = options
        .selection
        .namespaces
        .first()
        .cloned()
        .unwrap_or_default();
    let mut params = Params::default();
    let ns_token = namespace_token(&mut params);
    let mut review: Vec<String> = captured.notes.clone();
    let mut images: BTreeMap<String, String> = BTreeMap::new();
    let mut objects: Vec<Value> = std::mem::take(&mut captured.objects);
    objects.sort_by_key(sort_key);
    if objects.is_empty() {
        return Err(SnapshotError::Empty {
            namespaces: options.selection.namespaces.join(", "),
        });
    }
    let mut taken = Vec::new();
    let mut files = BTreeMap::new();
    let mut used_names: BTreeSet<String> = BTreeSet::new();
    let mut extra_namespaces: BTreeSet<String> = BTreeSet::new();
    for mut obj in objects {
        let kind = obj["kind"].as_str().unwrap_or_default().to_string();
        let saas =
            obj["metadata"]["annotations"][params::PARAM_ANNOTATION].as_str() != Some("false");
        let described = describe(&obj);
        pin_images(
            &mut obj,
            &kind,
            &captured.running,
            &mut images,
            &mut review,
            &described,
        );
        params::parameterize(&mut obj, &mut params, saas);
        let ns = obj["metadata"]["namespace"].as_str().map(String::from);
        let folder = match &ns {
            Some(n) if *n == primary => {
                obj["metadata"]["namespace"] = ns_token.clone();
                "app".to_string()
            }
            Some(n) => {
                extra_namespaces.insert(n.clone());
                output::file_part(n)
            }
            None => "cluster".to_string(),
        };
        for s in obj
            .get_mut("subjects")
            .and_then(Value::as_array_mut)
            .into_iter()
            .flatten()
        {
            if s["namespace"].as_str() == Some(primary.as_str()) {
                s["namespace"] = ns_token.clone();
            }
        }
        clean::clean(&mut obj);
        let issued = params.issued();
        output::escape_strings(&mut obj, &mut params, issued);
        let obj = output::sorted(obj);
        let base = format!(
            "manifests/{folder}/{}-{}",
            output::file_part(&kind),
            output::file_part(obj["metadata"]["name"].as_str().unwrap_or_default())
        );
        let mut file = format!("{base}.yaml");
        let mut n = 2;
        while !used_names.insert(file.clone()) {
            file = format!("{base}-{n}.yaml");
            n += 1;
        }
        files.insert(file.clone(), output::template(&obj, &params));
        taken.push(Taken {
            object: described,
            file,
        });
    }
    for ns in &extra_namespaces {
        let file = format!("manifests/cluster/namespace-{}.yaml", output::file_part(ns));
        let obj =
            serde_json::json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}});
        files.insert(file.clone(), output::template(&obj, &params));
        taken.push(Taken {
            object: format!("Namespace {ns}"),
            file,
        });
    }
    taken.sort_by(|a, b| a.file.cmp(&b.file));
    for p in &params.list {
        match p.kind {
            ParamKind::Cloud => review.push(format!(
                "`{}` is cloud-specific ({} `{}`): every site must set it; the SaaS value was {}",
                p.key,
                p.object,
                p.field,
                p.saas_value.as_deref().unwrap_or("")
            )),
            ParamKind::Secret if p.secret_mode.as_deref() == Some("required") => {
                review.push(format!(
                    "secret `{}` ({}) must be given by every site",
                    p.key, p.object
                ))
            }
            _ => {}
        }
    }
    for sc in &captured.storage_classes {
        review.push(format!(
            "the SaaS uses StorageClass `{sc}`: not copied; each use became a config item"
        ));
    }
    let mut seen = BTreeSet::new();
    review.retain(|r| seen.insert(r.clone()));
    let definition = definition(options, &captured, &images, params.groups());
    let mut def_text = String::new();
    def_text
        .push_str("# Written by `airlift-pack snapshot`: see SNAPSHOT.md and docs/snapshot.md.\n");
    for p in params.list.iter().filter(|p| p.kind == ParamKind::Cloud) {
        def_text.push_str(&format!(
            "# {}: the SaaS value is {} (not a default: each site sets its own)\n",
            p.key,
            serde_json::to_string(p.saas_value.as_deref().unwrap_or("")).unwrap_or_default()
        ));
    }
    def_text.push_str(&serde_yaml::to_string(&definition).unwrap_or_default());
    files.insert("airlift.yaml".into(), def_text);
    let report = Report {
        source: options.source.clone(),
        taken,
        skipped: captured.skipped,
        params: params.list.clone(),
        images,
        review,
    };
    files.insert(output::REPORT_FILE.into(), output::report_markdown(&report));
    Ok(Snapshot { files, report })
}

fn definition(
    options: &Options,
    captured: &Captured,
    images: &BTreeMap<String, String>,
    groups: Vec<airlift_bundle::schema::config::ConfigGroup>,
) -> BundleDefinition {
    let refs: BTreeSet<&String> = images.values().collect();
    let platforms = if captured.platforms.is_empty() {
        vec!["linux/amd64".to_string()]
    } else {
        captured.platforms.iter().cloned().collect()
    };
    let platforms = platforms
        .iter()
        .filter_map(|p| serde_json::from_value(Value::String(p.clone())).ok())
        .collect();
    BundleDefinition {
        api_version: "airlift.dev/v1alpha1".into(),
        kind: DEFINITION_KIND.into(),
        metadata: Metadata {
            name: options.name.clone(),
            version: options.version.clone(),
            channel: "stable".into(),
            vendor: options.vendor.clone(),
            description: Some(format!(
                "Snapshot of namespaces {} of the SaaS.",
                options.selection.namespaces.join(", ")
            )),
        },
        requirements: Requirements {
            kubernetes: format!(">={}.0", captured.server_version),
            platforms,
            storage_classes: Vec::new(),
            crds: Vec::new(),
        },
        components: vec![ComponentDefinition {
            name: "saas".into(),
            description: "Everything the snapshot took from the SaaS.".into(),
            mode: ComponentMode::Required,
            layer: Layer::Workload,
            order: 0,
            manifests: vec!["manifests".into()],
            images: refs
                .into_iter()
                .map(|r| ImageDefinition {
                    reference: r.clone(),
                    source: None,
                })
                .collect(),
            entitlement: None,
        }],
        config: ConfigSchema { groups },
        platform: Default::default(),
        license: None,
        notes: None,
    }
}

fn describe(obj: &Value) -> String {
    let kind = obj["kind"].as_str().unwrap_or_default();
    let name = obj["metadata"]["name"].as_str().unwrap_or_default();
    match obj["metadata"]["namespace"].as_str() {
        Some(ns) => format!("{kind} {ns}/{name}"),
        None => format!("{kind} {name}"),
    }
}

fn sort_key(obj: &Value) -> (String, String, String, String) {
    let s = |p: &str| {
        obj.pointer(p)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    (
        s("/metadata/namespace"),
        s("/apiVersion"),
        s("/kind"),
        s("/metadata/name"),
    )
}

/// Pins each container image to the digest its Pods run.
fn pin_images(
    obj: &mut Value,
    kind: &str,
    running: &BTreeMap<String, BTreeSet<String>>,
    images: &mut BTreeMap<String, String>,
    review: &mut Vec<String>,
    described: &str,
) {
    for (ptr, _) in params::pod_spec_pointers(kind) {
        let Some(spec) = obj.pointer_mut(ptr) else {
            continue;
        };
        for list in ["initContainers", "containers"] {
            for c in spec
                .get_mut(list)
                .and_then(Value::as_array_mut)
                .into_iter()
                .flatten()
            {
                let Some(image) = c["image"].as_str().map(String::from) else {
                    continue;
                };
                let pinned = if image.contains('@') {
                    image.clone()
                } else {
                    match running.get(&image) {
                        Some(d) if !d.is_empty() => {
                            if d.len() > 1 {
                                review.push(format!(
                                    "{described}: image `{image}` runs as {} different digests \
                                     across replicas; the bundle takes {}",
                                    d.len(),
                                    d.iter().next().map(String::as_str).unwrap_or("")
                                ));
                            }
                            format!(
                                "{image}@{}",
                                d.iter().next().map(String::as_str).unwrap_or("")
                            )
                        }
                        _ => {
                            review.push(format!(
                                "{described}: image `{image}` has no running Pod: it is pinned \
                                 by the registry when `airlift-pack build` pulls it"
                            ));
                            image.clone()
                        }
                    }
                };
                c["image"] = Value::String(pinned.clone());
                images.insert(image, pinned);
            }
        }
    }
}
