//! `airlift-install inspect`: what a bundle holds (images, platforms, sizes, components,
//! configuration keys, signature status), read from its manifest without hashing the blobs.

use airlift_cli::outln;
use std::path::PathBuf;

use airlift_bundle::walk::walk_image;
use airlift_bundle::{escape, Bundle, SignatureStatus};
use airlift_cli::output::human_bytes;
use airlift_cli::{progress_for, CommandError, ExitKind, OutputFormat};

use crate::args::TrustArgs;
use crate::bundle::{bundle_error, describe_signature};

/// Arguments of `inspect`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The bundle file.
    pub bundle: PathBuf,
    /// Key flags. With `--key`, the signature is checked (the blobs are not hashed: use
    /// `verify`); without, the signature status is shown as not checked.
    #[command(flatten)]
    pub trust: TrustArgs,
    /// Output format.
    #[arg(long, short = 'o', value_enum, default_value_t = OutputFormat::Text)]
    pub output: OutputFormat,
}

#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct ImageRow {
    reference: String,
    component: String,
    digest: String,
    media_type: String,
    platforms: Vec<String>,
    /// Bytes of the image's blobs (shared blobs counted in each image); `None` if incomplete.
    size: Option<u64>,
}

#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct ComponentRow {
    name: String,
    mode: String,
    layer: String,
    order: i32,
    images: usize,
    manifests: Vec<String>,
}

#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct ConfigRow {
    key: String,
    #[serde(rename = "type")]
    kind: String,
    required: bool,
    /// The default (never set for secrets).
    default: Option<serde_json::Value>,
}

#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct Output {
    bundle: String,
    name: String,
    version: String,
    channel: String,
    vendor: String,
    created: String,
    tool: String,
    signature: SignatureStatus,
    /// sha256 of the whole bundle file (what `sha256sum` prints): its stable identity.
    sha256: String,
    kubernetes: String,
    platforms: Vec<String>,
    file_size: u64,
    blobs: usize,
    blobs_size: u64,
    components: Vec<ComponentRow>,
    images: Vec<ImageRow>,
    config: Vec<ConfigRow>,
}

fn word<T: serde::Serialize>(v: &T) -> String {
    match serde_json::to_value(v) {
        Ok(serde_json::Value::String(s)) => s,
        Ok(other) => other.to_string(),
        Err(_) => "?".into(),
    }
}

fn collect(bundle: &Bundle, path: &std::path::Path, sha256: String) -> Output {
    let m = bundle.manifest();
    let mut images = Vec::new();
    for c in &m.components {
        for img in &c.images {
            let size = walk_image(bundle, &img.reference, &img.digest, &img.media_type)
                .ok()
                .map(|g| g.blobs.iter().map(|(_, s)| s).sum());
            images.push(ImageRow {
                reference: img.reference.clone(),
                component: c.name.clone(),
                digest: img.digest.to_string(),
                media_type: img.media_type.clone(),
                platforms: img.platforms.iter().map(ToString::to_string).collect(),
                size,
            });
        }
    }
    let components = m
        .components
        .iter()
        .map(|c| ComponentRow {
            name: c.name.clone(),
            mode: word(&c.mode),
            layer: word(&c.layer),
            order: c.order,
            images: c.images.len(),
            manifests: c.manifests.clone(),
        })
        .collect();
    let config = m
        .config
        .groups
        .iter()
        .flat_map(|g| {
            g.items.iter().map(move |i| ConfigRow {
                key: format!("{}.{}", g.name, i.name),
                kind: word(&i.kind),
                required: i.required,
                default: i.default.clone(),
            })
        })
        .collect();
    Output {
        bundle: path.display().to_string(),
        name: m.metadata.name.clone(),
        version: m.metadata.version.clone(),
        channel: m.metadata.channel.clone(),
        vendor: m.metadata.vendor.clone(),
        created: m.build.created.clone(),
        tool: m.build.tool.clone(),
        signature: bundle.signature_status().clone(),
        sha256,
        kubernetes: m.requirements.kubernetes.clone(),
        platforms: m
            .requirements
            .platforms
            .iter()
            .map(ToString::to_string)
            .collect(),
        file_size: std::fs::metadata(path).map(|md| md.len()).unwrap_or(0),
        blobs: m.blobs.len(),
        blobs_size: bundle.blobs_size(),
        components,
        images,
        config,
    }
}

/// Prints rows as aligned columns under a header.
fn table(header: &[&str], rows: &[Vec<String>]) -> std::io::Result<()> {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for r in rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let rows: Vec<Vec<String>> = rows
        .iter()
        .map(|r| r.iter().map(|c| escape(c).into_owned()).collect())
        .collect();
    let rows = &rows[..];
    let line = |cells: Vec<String>| {
        let mut s = String::new();
        for (i, (c, w)) in cells.iter().zip(&widths).enumerate() {
            if i + 1 == cells.len() {
                s.push_str(c);
            } else {
                s.push_str(&format!("{c:<w$}  "));
            }
        }
        outln!("{}", s.trim_end())
    };
    line(header.iter().map(|h| h.to_string()).collect())?;
    for r in rows {
        line(r.clone())?;
    }
    Ok(())
}

fn short(digest: &str) -> String {
    digest
        .get(..19)
        .map_or_else(|| digest.to_string(), |s| format!("{s}…"))
}

/// Text from the bundle, safe to print before any trust decision.
fn e(s: &str) -> std::borrow::Cow<'_, str> {
    escape(s)
}

fn print_text(o: &Output) -> std::io::Result<()> {
    outln!(
        "Bundle     {} {} ({}) by {}",
        e(&o.name),
        e(&o.version),
        e(&o.channel),
        e(&o.vendor)
    )?;
    outln!("Built      {} with {}", e(&o.created), e(&o.tool))?;
    outln!("Signature  {}", describe_signature(&o.signature))?;
    outln!("SHA-256    {}", o.sha256)?;
    outln!(
        "Size       {} file, {} in {} blobs",
        human_bytes(o.file_size),
        human_bytes(o.blobs_size),
        o.blobs
    )?;
    outln!(
        "Requires   Kubernetes {}, platforms {}",
        e(&o.kubernetes),
        e(&o.platforms.join(", "))
    )?;
    outln!()?;
    table(
        &["COMPONENT", "MODE", "LAYER", "ORDER", "IMAGES", "MANIFESTS"],
        &o.components
            .iter()
            .map(|c| {
                vec![
                    c.name.clone(),
                    c.mode.clone(),
                    c.layer.clone(),
                    c.order.to_string(),
                    c.images.to_string(),
                    c.manifests.len().to_string(),
                ]
            })
            .collect::<Vec<_>>(),
    )?;
    outln!()?;
    table(
        &["IMAGE", "COMPONENT", "PLATFORMS", "SIZE", "DIGEST"],
        &o.images
            .iter()
            .map(|i| {
                vec![
                    i.reference.clone(),
                    i.component.clone(),
                    i.platforms.join(","),
                    i.size.map_or_else(|| "incomplete".into(), human_bytes),
                    short(&i.digest),
                ]
            })
            .collect::<Vec<_>>(),
    )?;
    outln!()?;
    if o.config.is_empty() {
        outln!("No configuration keys.")?;
    } else {
        table(
            &["CONFIG KEY", "TYPE", "REQUIRED", "DEFAULT"],
            &o.config
                .iter()
                .map(|c| {
                    vec![
                        c.key.clone(),
                        c.kind.clone(),
                        if c.required { "yes" } else { "no" }.into(),
                        c.default
                            .as_ref()
                            .map_or_else(|| "-".into(), ToString::to_string),
                    ]
                })
                .collect::<Vec<_>>(),
        )?;
    }
    Ok(())
}

/// Runs `inspect`.
pub fn run(args: Args, no_progress: bool) -> Result<(), CommandError> {
    let bundle = if args.trust.key.is_some() || args.trust.insecure_skip_verify {
        let trust = args.trust.trust()?;
        Bundle::open_trusted(&args.bundle, &trust)
    } else {
        Bundle::open(&args.bundle)
    }
    .map_err(|e| bundle_error(&args.bundle, e))?;
    let progress = progress_for(no_progress);
    let sha256 = bundle
        .file_sha256(progress.as_ref(), "sha256")
        .map_err(|e| bundle_error(&args.bundle, e))?;
    let out = collect(&bundle, &args.bundle, sha256.hex().to_string());
    match args.output {
        f @ (OutputFormat::Json | OutputFormat::Yaml) => {
            airlift_cli::print_as(f, &out).map_err(|e| CommandError::new(ExitKind::Failure, e))
        }
        OutputFormat::Text => Ok(print_text(&out)?),
    }
}
