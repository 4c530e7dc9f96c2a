//! Lint: checks a bundle definition with no network (`airlift-pack lint DIR`, and `build` before
//! it fetches anything).
//!
//! Checks, collecting every problem rather than stopping at the first:
//! - `schema`: `airlift.yaml` parses and passes validation; manifest paths exist and stay inside;
//! - `config`: the SaaS defaults meet their rules (required items without a default get a
//!   placeholder of their type, so templates can still be rendered);
//! - `templates`: every manifest renders with the defaults (errors name the file and line);
//! - `objects`: every rendered document is a Kubernetes object with apiVersion, kind and name,
//!   and no object (kind, namespace, name) is defined twice;
//! - `images`: every image reference parses, every image built from local files builds (into the
//!   build's blob cache, where a build of the same unchanged files reuses the layer, or into a
//!   scratch store removed afterwards: [`LocalBuilds`]; its reproducible digest is reported),
//!   every image read from an OCI layout or archive is there with its tag, the required
//!   platforms and every blob at its manifest's size (only manifests and configs are read), and
//!   every image a manifest uses is carried by the bundle;
//! - `apis`: no object uses an API removed in a Kubernetes version the bundle supports
//!   (`requirements.kubernetes`, or the one `--kubernetes` names), from the embedded removals
//!   table; APIs only deprecated there are warnings. Templates render with `platform.*` resolved
//!   for a datacenter cluster that has what the mapping table documents.

use std::collections::BTreeMap;
use std::path::Path;

use airlift_bundle::error_chain as chain;
use airlift_bundle::schema::config::{ConfigItem, ConfigType};
use airlift_bundle::schema::definition::ImageSource;
use airlift_bundle::DirBlobStore;
use airlift_render::images::{carried_set, check_carried, discover_images, ImageUse};
use airlift_render::values::ConfigError;
use airlift_render::{api_compat, platform};
use airlift_render::{load_definition, BundleInfo, ConfigBuilder, ReleaseInfo, Renderer};
use serde::Serialize;

use crate::build::resolve_oci;
use crate::local_image::build_local_image;

/// What lint does with the images a definition builds from local files.
#[derive(Debug, Clone, Copy)]
pub enum LocalBuilds<'a> {
    /// Not built: `build` builds them itself right after its lint, and reports their problems
    /// the same way.
    Skip,
    /// Built into a scratch store that is removed afterwards.
    Scratch,
    /// Built into the build's blob cache (opened with proofs), so that a build of the same
    /// unchanged files takes the layers instead of compressing them again
    /// ([`crate::local_image_reuse`]).
    Cache(&'a DirBlobStore),
}

/// One problem found.
#[derive(Debug, Serialize)]
pub struct Problem {
    /// The check that found it: `schema`, `config`, `templates`, `objects`, `images` or `apis`.
    pub check: &'static str,
    /// What is wrong, naming the file, item or image.
    pub message: String,
}

/// What lint found (what `airlift-pack lint --output json` prints).
#[derive(Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    /// The definition folder, as given.
    pub definition: String,
    /// Whether no problem was found (warnings do not count).
    pub ok: bool,
    /// Components in the definition.
    pub components: usize,
    /// Manifest files read.
    pub manifests: usize,
    /// Kubernetes objects rendered.
    pub objects: usize,
    /// Every image reference the bundle carries.
    pub images: Vec<String>,
    /// Required config items without a SaaS default, rendered with a placeholder of their type.
    pub placeholders: Vec<String>,
    /// Images built from local files: reference -> index digest (reproducible).
    pub built: BTreeMap<String, String>,
    /// Every problem found, in the order the checks ran.
    pub problems: Vec<Problem>,
    /// Findings that do not fail lint.
    pub warnings: Vec<String>,
}

impl Report {
    fn push(&mut self, check: &'static str, message: String) {
        self.problems.push(Problem { check, message });
    }
}

/// The runtime that reads local OCI layouts and archives, made when the first one is checked.
fn local_runtime(
    runtime: &mut Option<tokio::runtime::Runtime>,
) -> Result<&tokio::runtime::Runtime, String> {
    if runtime.is_none() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .map_err(|e| format!("cannot start the image reader: {e}"))?;
        *runtime = Some(rt);
    }
    runtime
        .as_ref()
        .ok_or_else(|| "cannot start the image reader".to_string())
}

/// A value of the item's type that meets its simplest rules, for required items without a default.
fn placeholder(item: &ConfigItem) -> String {
    let v = &item.validation;
    match item.kind {
        ConfigType::Bool => "false".into(),
        ConfigType::Int => v
            .min
            .unwrap_or(0)
            .min(v.max.unwrap_or(i64::MAX))
            .to_string(),
        ConfigType::Enum => v.allowed.first().cloned().unwrap_or_default(),
        ConfigType::Hostname => "placeholder.example.com".into(),
        ConfigType::List => String::new(),
        ConfigType::String | ConfigType::Secret => "x".repeat(v.min_length.unwrap_or(1).max(1)),
    }
}

/// Runs every check on the definition folder `dir`, collecting every problem; `kubernetes`
/// names one Kubernetes release (`1.33`) to check APIs against instead of the bundle's range;
/// `local` says whether and where images built from local files are built.
pub fn lint(dir: &Path, kubernetes: Option<&str>, local: LocalBuilds<'_>) -> Report {
    let mut report = Report {
        definition: dir.display().to_string(),
        ..Report::default()
    };
    let loaded = match load_definition(dir) {
        Ok(l) => l,
        Err(e) => {
            report.push("schema", chain(&e));
            return report;
        }
    };
    let def = &loaded.definition;
    report.components = def.components.len();

    let mut builder = match ConfigBuilder::new(&def.config) {
        Ok(b) => b,
        Err(e) => {
            report.push("config", chain(&e));
            return report;
        }
    };
    let missing: Vec<(String, String)> = builder
        .missing()
        .into_iter()
        .map(|(k, item)| (k.to_string(), placeholder(item)))
        .collect();
    for (key, value) in &missing {
        if let Err(p) = builder.answer(key, value) {
            report.push("config", format!("cannot find a placeholder for {p}"));
        }
        report.placeholders.push(key.clone());
    }
    let config = match builder.finish(&BTreeMap::new()) {
        Ok(c) => c,
        Err(ConfigError::Invalid { problems }) => {
            for p in problems {
                report.push("config", format!("the SaaS default of {p}"));
            }
            return report;
        }
        Err(e) => {
            report.push("config", chain(&e));
            return report;
        }
    };

    // Manifests read from OCI layouts and archives, and images built from local files, go into
    // the cache when lint has one, else into a scratch store removed afterwards.
    let opened = match local {
        LocalBuilds::Cache(cache) => Ok((cache.clone(), None)),
        LocalBuilds::Skip | LocalBuilds::Scratch => tempfile::tempdir()
            .map_err(|e| format!("cannot create a scratch folder: {e}"))
            .and_then(|d| {
                let store = DirBlobStore::open(d.path()).map_err(|e| chain(&e))?;
                Ok((store, Some(d)))
            }),
    };
    // `_scratch` lives until lint returns, and removes the scratch folder then.
    let (store, _scratch) = match opened {
        Ok(opened) => opened,
        Err(e) => {
            report.push("images", e);
            return report;
        }
    };
    let build_local = !matches!(local, LocalBuilds::Skip);
    let mut carried_refs = Vec::new();
    let mut runtime = None;
    for c in &def.components {
        for img in &c.images {
            // `load_definition` has already checked that every reference parses.
            carried_refs.push(img.reference.as_str());
            if let Some(ImageSource::OciLayout(l) | ImageSource::OciArchive(l)) = &img.source {
                let archive = matches!(img.source, Some(ImageSource::OciArchive(_)));
                let platforms = &def.requirements.platforms;
                let resolved = local_runtime(&mut runtime).and_then(|rt| {
                    rt.block_on(resolve_oci(&loaded.dir, l, archive, &store, platforms))
                        .map_err(|e| chain(&e))
                });
                if let Err(e) = resolved {
                    report.push(
                        "images",
                        format!("component `{}`, image `{}`: {e}", c.name, img.reference),
                    );
                }
            }
            if let Some(ImageSource::Build(b)) = img.source.as_ref().filter(|_| build_local) {
                match build_local_image(&loaded.dir, b, &def.requirements.platforms, &store) {
                    Ok(built) => {
                        report
                            .built
                            .insert(img.reference.clone(), built.digest.to_string());
                    }
                    Err(e) => report.push(
                        "images",
                        format!(
                            "component `{}`, image `{}`: {}",
                            c.name,
                            img.reference,
                            chain(&e)
                        ),
                    ),
                }
            }
        }
    }
    let carried = match carried_set(carried_refs) {
        Ok(c) => c,
        Err(e) => {
            report.push("images", chain(&e));
            return report;
        }
    };

    let mut renderer = Renderer::new(
        &config,
        &BundleInfo {
            name: def.metadata.name.clone(),
            version: def.metadata.version.clone(),
        },
        &ReleaseInfo {
            name: def.metadata.name.clone(),
            namespace: def.metadata.name.clone(),
            revision: 1,
        },
    )
    .with_platform(
        platform::resolve(
            &def.platform,
            &platform::ClusterFacts::documented(platform::FALLBACK_PROFILE),
            &Default::default(),
        )
        .template_value(),
    );
    let target = match kubernetes {
        Some(v) => match api_compat::Target::parse_version(v) {
            Some(t) => Some(t),
            None => {
                report.push(
                    "apis",
                    format!("--kubernetes `{v}` is not a Kubernetes release such as `1.33`"),
                );
                None
            }
        },
        None => api_compat::Target::parse_range(&def.requirements.kubernetes),
    };
    if let Some(policy) = &def.license {
        // Templates see the entitlement defaults, as at an install without a license.
        let defaults = policy.resolve(&BTreeMap::new()).unwrap_or_default();
        renderer =
            renderer.with_license(airlift_bundle::license::template_context(None, &defaults));
    }
    let mut uses: Vec<(String, ImageUse)> = Vec::new();
    // Kind/namespace/name -> where it was first defined.
    let mut seen: BTreeMap<String, String> = BTreeMap::new();
    for component in &loaded.components {
        for file in &component.manifests {
            report.manifests += 1;
            let source = match airlift_bundle::read_bounded_string(
                &file.path,
                airlift_bundle::limits::MAX_DOCUMENT,
            ) {
                Ok(s) => s,
                Err(e) => {
                    report.push("templates", chain(&e));
                    continue;
                }
            };
            let text = match renderer.render(&file.rel_path, &source) {
                Ok(t) => t,
                Err(e) => {
                    report.push("templates", chain(&e));
                    continue;
                }
            };
            let objects = match airlift_render::parse_objects(&file.rel_path, &text) {
                Ok(o) => o,
                Err(e) => {
                    report.push("objects", chain(&e));
                    continue;
                }
            };
            report.objects += objects.len();
            for obj in &objects {
                let ns = obj.namespace().unwrap_or(&def.metadata.name);
                let id = format!("{}/{ns}/{}", obj.kind(), obj.name());
                let at = format!("`{}` document {}", obj.file, obj.index);
                if let Some(first) = seen.insert(id.clone(), at.clone()) {
                    report.push(
                        "objects",
                        format!("{id} is defined twice: in {first} and in {at}"),
                    );
                }
            }
            for obj in objects.iter() {
                let what = format!(
                    "{}/{} (`{}` document {})",
                    obj.kind(),
                    obj.name(),
                    obj.file,
                    obj.index
                );
                match target
                    .as_ref()
                    .and_then(|t| api_compat::check(obj.api_version(), obj.kind(), &what, t))
                {
                    Some(f) if f.removed => report.push("apis", f.to_string()),
                    Some(f) => report.warnings.push(f.to_string()),
                    None => {}
                }
            }
            // Object by object, so one bad reference does not hide the others.
            for obj in &objects {
                match discover_images(std::slice::from_ref(obj)) {
                    Ok(found) => {
                        uses.extend(found.into_iter().map(|u| (component.name.clone(), u)))
                    }
                    Err(e) => report.push("images", chain(&e)),
                }
            }
        }
    }
    // The NOTES template renders after every install: a typo must fail here, not there.
    if let Some(notes) = &def.notes {
        if let Err(e) = renderer.render("notes", notes) {
            report.push("templates", chain(&e));
        }
    }
    if let Err(e) = check_carried(&uses, &carried) {
        report.push("images", chain(&e));
    }
    for c in &def.components {
        for img in &c.images {
            let used = airlift_render::ImageRef::parse(&img.reference)
                .is_ok_and(|r| uses.iter().any(|(_, u)| u.parsed == r));
            if !used {
                report.warnings.push(format!(
                    "component `{}` carries image `{}` but no manifest uses it (rendered with the defaults): it makes the bundle bigger",
                    c.name, img.reference
                ));
            }
        }
    }
    let mut images: Vec<String> = uses.iter().map(|(_, u)| u.parsed.to_string()).collect();
    images.sort();
    images.dedup();
    report.images = images;
    report.ok = report.problems.is_empty();
    report
}
