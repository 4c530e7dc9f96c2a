//! `airlift-bench-images`: writes the benchmark image set as an OCI image layout folder and prints
//! a JSON summary (tags, manifest digests, unique blob bytes) on standard output.
//!
//! The set stands for a small SaaS product: five linux/amd64 images over one shared OS base layer
//! (20% of the total), a runtime layer shared by three of them (12.5%), one image carrying a large
//! layer (40%) and four services with their own app layers (the rest). Content is deterministic
//! pseudo-random bytes, so gzip cannot shrink it and every run produces the same digests.
//! `--set low-sharing` writes the set with little sharing instead: eight layers of one eighth of
//! the total each, one of them a base shared by seven images (`img-0` … `img-6`) that each add
//! one layer of their own. `bench/run.sh` uses it; it is not part of the test suite.

use std::path::PathBuf;

use airlift_testkit::images::{ImageInfo, LayerSpec, LayoutBuilder};
use anyhow::Context;
use clap::Parser;
use serde_json::json;

/// Writes the benchmark image set (tags `big`, `svc-0` … `svc-3`) as an OCI layout folder.
#[derive(Debug, Parser)]
#[command(name = "airlift-bench-images", disable_version_flag = true)]
struct Args {
    /// The OCI layout folder to write (created if missing; existing blobs are kept).
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// Total content size of all unique layers, in MiB.
    #[arg(long, default_value_t = 1024, value_parser = clap::value_parser!(u64).range(4..=65536))]
    size_mib: u64,
    /// Seed for the content; the same seed and size give the same digests.
    #[arg(long, default_value_t = 4242)]
    seed: u64,
    /// gzip level of the layers (0 stores; the content is incompressible either way).
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u32).range(0..=9))]
    gzip_level: u32,
    /// Which set: `shared` (half the referenced bytes are shared layers) or `low-sharing`.
    #[arg(long, default_value = "shared", value_parser = ["shared", "low-sharing"])]
    set: String,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let total = args.size_mib << 20;
    let level = args.gzip_level;
    let spec = |n: u64, size: u64| LayerSpec::new(args.seed + n, size).with_level(level);
    let base = spec(0, total / 5);
    let runtime = spec(1, total / 8);
    let big = spec(2, total * 2 / 5);
    let app = (total - total / 5 - total / 8 - total * 2 / 5) / 4;

    let mut b = LayoutBuilder::create(&args.out)
        .with_context(|| format!("cannot create the layout `{}`", args.out.display()))?;
    let mut images: Vec<(String, ImageInfo)> = Vec::new();
    if args.set == "low-sharing" {
        let eighth = total / 8;
        let shared = spec(100, eighth);
        for i in 0..7u64 {
            let tag = format!("img-{i}");
            let img = b
                .image("linux/amd64", &[shared, spec(101 + i, eighth)])
                .with_context(|| format!("cannot generate image `{tag}`"))?;
            images.push((tag, img));
        }
        return finish(b, images, &args);
    }
    let img = b
        .image("linux/amd64", &[base, runtime, big])
        .context("cannot generate image `big`")?;
    images.push(("big".to_string(), img));
    for i in 0..4u64 {
        let own = spec(10 + i, app);
        let layers: Vec<LayerSpec> = if i < 2 {
            vec![base, runtime, own]
        } else {
            vec![base, own]
        };
        let tag = format!("svc-{i}");
        let img = b
            .image("linux/amd64", &layers)
            .with_context(|| format!("cannot generate image `{tag}`"))?;
        images.push((tag, img));
    }
    finish(b, images, &args)
}

/// Tags the images, writes `index.json` and prints the summary.
fn finish(
    mut b: LayoutBuilder,
    images: Vec<(String, ImageInfo)>,
    args: &Args,
) -> anyhow::Result<()> {
    for (tag, img) in &images {
        b.tag(tag, &img.descriptor());
    }

    let mut unique = std::collections::BTreeMap::new();
    for (_, img) in &images {
        unique.insert(img.manifest.digest.to_string(), img.manifest.size);
        unique.insert(img.config.digest.to_string(), img.config.size);
        for l in &img.layers {
            unique.insert(l.blob.digest.to_string(), l.blob.size);
        }
    }
    let dir = b
        .finish()
        .with_context(|| format!("cannot write `{}/index.json`", args.out.display()))?;
    let summary = json!({
        "dir": dir,
        "images": images.iter().map(|(tag, img)| json!({
            "tag": tag,
            "digest": img.manifest.digest.to_string(),
            "blobBytes": img.manifest.size + img.config.size
                + img.layers.iter().map(|l| l.blob.size).sum::<u64>(),
        })).collect::<Vec<_>>(),
        "uniqueBlobs": unique.len(),
        "uniqueBytes": unique.values().sum::<u64>(),
    });
    println!("{}", serde_json::to_string_pretty(&summary)?);
    Ok(())
}
