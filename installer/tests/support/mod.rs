//! Signed test bundles built through the bundle library, shared by the installer's CLI tests.
#![allow(dead_code, clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use airlift_bundle::schema::common::{ComponentMode, Layer, Metadata, Requirements};
use airlift_bundle::schema::config::ConfigSchema;
use airlift_bundle::schema::manifest::{BuildInfo, BundleManifest, Component, ImageRecord};
use airlift_bundle::{write_bundle, BundleContents, ComponentFile, Digest, DirBlobStore};
use airlift_bundle::{NoProgress, PrivateKey};
use airlift_testkit::images::{ImageInfo, SampleSet, OCI_INDEX, OCI_MANIFEST};

/// Runs the real `airlift-install` with `args`, no colours, no stdin, and its verification
/// proofs kept under `state`.
pub fn airlift_install(state: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_airlift-install"))
        .args(args)
        .env("NO_COLOR", "1")
        .env("AIRLIFT_STATE_DIR", state)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

/// A path as `&str`, for command arguments.
pub fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// An image record as the packager writes it.
pub fn record(
    reference: &str,
    digest: &Digest,
    media_type: &str,
    platforms: &[&str],
) -> ImageRecord {
    ImageRecord {
        reference: reference.into(),
        source: format!("oci-layout:test@{digest}"),
        digest: digest.clone(),
        media_type: media_type.into(),
        platforms: platforms.iter().map(|p| p.parse().unwrap()).collect(),
    }
}

fn single(reference: &str, i: &ImageInfo) -> ImageRecord {
    record(
        reference,
        &i.manifest.digest,
        OCI_MANIFEST,
        &[i.platform.as_str()],
    )
}

/// The testkit sample set's four images (one multi-arch) under `registry.example.com/acme/`.
pub fn sample_images(set: &SampleSet) -> Vec<ImageRecord> {
    vec![
        single("registry.example.com/acme/api:1.0", &set.api),
        single("registry.example.com/acme/worker:1.0", &set.worker),
        record(
            "registry.example.com/acme/multi:1.0",
            &set.multi.index.digest,
            OCI_INDEX,
            &["linux/amd64", "linux/arm64"],
        ),
        single("registry.example.com/acme/arm-only:1.0", &set.arm_only),
    ]
}

/// A required workload component.
pub fn component(name: &str, images: Vec<ImageRecord>, manifests: Vec<String>) -> Component {
    Component {
        name: name.into(),
        description: format!("the {name}"),
        mode: ComponentMode::Required,
        layer: Layer::Workload,
        order: 0,
        images,
        manifests,
        entitlement: None,
    }
}

/// A bundle manifest `NAME 1.0.0` for linux/amd64 and Kubernetes >= 1.28.
pub fn manifest(name: &str, components: Vec<Component>, config: ConfigSchema) -> BundleManifest {
    BundleManifest {
        api_version: "airlift.dev/v1alpha1".into(),
        kind: "Bundle".into(),
        metadata: Metadata {
            name: name.into(),
            version: "1.0.0".into(),
            channel: "stable".into(),
            vendor: "Acme".into(),
            description: None,
        },
        build: BuildInfo {
            created: "2026-01-02T03:04:05Z".into(),
            tool: "test".into(),
            definition_digest: Digest::of_bytes(b"def"),
            signer: None,
        },
        requirements: Requirements {
            kubernetes: ">=1.28.0".into(),
            platforms: vec!["linux/amd64".parse().unwrap()],
            storage_classes: vec![],
            crds: vec![],
        },
        components,
        config,
        platform: Default::default(),
        members: vec![],
        license: None,
        blobs: vec![],
    }
}

/// A bundle file and the vendor's public key.
pub struct Written {
    /// `DIR/NAME-1.0.0.airlift`.
    pub bundle: PathBuf,
    /// `DIR/vendor.pub`.
    pub key: PathBuf,
}

/// Writes `manifest` with `files` and the blobs of `store` into `dir`, signed unless `signed`
/// is false, and the public key beside it.
pub fn write(
    dir: &Path,
    manifest: BundleManifest,
    files: Vec<ComponentFile>,
    store: &DirBlobStore,
    signed: bool,
) -> Written {
    let key = PrivateKey::generate();
    let bundle = dir.join(format!("{}-1.0.0.airlift", manifest.metadata.name));
    write_bundle(
        BundleContents { manifest, files },
        store,
        signed.then_some(&key),
        &bundle,
        &NoProgress,
    )
    .unwrap();
    let key_path = dir.join("vendor.pub");
    std::fs::write(&key_path, key.public_key().to_pem().unwrap()).unwrap();
    Written {
        bundle,
        key: key_path,
    }
}
