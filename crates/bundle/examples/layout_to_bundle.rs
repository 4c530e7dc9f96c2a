//! Writes a bundle holding every tagged image of an OCI image layout folder, through the library
//! API. Used by `bench/verify.sh` to make large bundles; not a product command (that is
//! `airlift-pack build`).
//!
//! Usage: `layout_to_bundle LAYOUT_DIR OUT.airlift [PRIVATE_KEY.pem]`

use std::path::PathBuf;

use airlift_bundle::oci::ImageIndex;
use airlift_bundle::schema::common::{ComponentMode, Layer, Metadata, Requirements};
use airlift_bundle::schema::config::ConfigSchema;
use airlift_bundle::schema::manifest::{BuildInfo, BundleManifest, Component, ImageRecord};
use airlift_bundle::walk::walk_image;
use airlift_bundle::{write_bundle, BundleContents, Digest, DirBlobStore, NoProgress, PrivateKey};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (layout, out) = match args.as_slice() {
        [l, o] | [l, o, _] => (PathBuf::from(l), PathBuf::from(o)),
        _ => return Err("usage: layout_to_bundle LAYOUT_DIR OUT.airlift [PRIVATE_KEY.pem]".into()),
    };
    let key = args
        .get(2)
        .map(|k| PrivateKey::load(std::path::Path::new(k)))
        .transpose()?;
    let store = DirBlobStore::open(layout.join("blobs"))?;
    let index: ImageIndex = serde_json::from_slice(&std::fs::read(layout.join("index.json"))?)?;
    let mut images = Vec::new();
    for d in &index.manifests {
        let Some(tag) = d.ref_name() else { continue };
        let graph = walk_image(&store, tag, &d.digest, &d.media_type)?;
        let platforms = graph
            .platforms
            .iter()
            .filter_map(|p| p.to_platform())
            .collect::<Vec<_>>();
        images.push(ImageRecord {
            reference: format!("bench.example.com/acme/{tag}:1.0"),
            source: format!("oci-layout:{}:{tag}", layout.display()),
            digest: d.digest.clone(),
            media_type: d.media_type.clone(),
            platforms: if platforms.is_empty() {
                vec!["linux/amd64".parse()?]
            } else {
                platforms
            },
        });
    }
    let manifest = BundleManifest {
        api_version: "airlift.dev/v1alpha1".into(),
        kind: "Bundle".into(),
        metadata: Metadata {
            name: "bench".into(),
            version: "1.0.0".into(),
            channel: "stable".into(),
            vendor: "Acme".into(),
            description: None,
        },
        build: BuildInfo {
            created: "2026-01-01T00:00:00Z".into(),
            tool: "layout_to_bundle example".into(),
            definition_digest: Digest::of_bytes(b"bench"),
            signer: None,
        },
        requirements: Requirements {
            kubernetes: ">=1.28.0".into(),
            platforms: vec!["linux/amd64".parse()?],
            storage_classes: vec![],
            crds: vec![],
        },
        components: vec![Component {
            name: "app".into(),
            description: "benchmark images".into(),
            mode: ComponentMode::Required,
            layer: Layer::Workload,
            order: 0,
            images,
            manifests: vec![],
            entitlement: None,
        }],
        config: ConfigSchema::default(),
        platform: Default::default(),
        members: vec![],
        blobs: vec![],
        license: None,
    };
    let written = write_bundle(
        BundleContents {
            manifest,
            files: vec![],
        },
        &store,
        key.as_ref(),
        &out,
        &NoProgress,
    )?;
    println!("{} {}", written.path.display(), written.size);
    Ok(())
}
