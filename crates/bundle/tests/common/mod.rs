//! Builds real OCI images (gzip'd tar layers, configs, manifests, a multi-arch index) into a
//! blob store, and real bundles from them through the library API.

#![allow(dead_code, clippy::unwrap_used)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use airlift_bundle::oci::{MEDIA_TYPE_OCI_INDEX, MEDIA_TYPE_OCI_MANIFEST};
use airlift_bundle::schema::common::{ComponentMode, Layer, Metadata, Platform, Requirements};
use airlift_bundle::schema::config::ConfigSchema;
use airlift_bundle::schema::manifest::{BuildInfo, BundleManifest, Component, ImageRecord};
use airlift_bundle::{
    write_bundle, BundleContents, ComponentFile, Digest, DirBlobStore, NoProgress, PrivateKey,
    WrittenBundle,
};
use serde_json::json;

#[allow(unused_imports)] // not every test file that includes this module writes archives
pub use airlift_testkit::canonical_tar::CanonicalTar;

/// A gzip'd tar layer holding `files`, built deterministically. Returns (compressed, diff_id).
pub fn layer(files: &[(&str, &[u8])]) -> (Vec<u8>, Digest) {
    let mut tar = tar::Builder::new(Vec::new());
    for (path, data) in files {
        let mut h = tar::Header::new_ustar();
        h.set_path(path).unwrap();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_mtime(0);
        h.set_cksum();
        tar.append(&h, *data).unwrap();
    }
    let raw = tar.into_inner().unwrap();
    let diff_id = Digest::of_bytes(&raw);
    let mut gz = flate2::GzBuilder::new()
        .mtime(0)
        .write(Vec::new(), flate2::Compression::default());
    gz.write_all(&raw).unwrap();
    (gz.finish().unwrap(), diff_id)
}

/// Puts `data` in the store; returns its digest and size.
pub fn put(store: &DirBlobStore, data: &[u8]) -> (Digest, u64) {
    let d = Digest::of_bytes(data);
    store.put(&d, &mut &data[..]).unwrap();
    (d, data.len() as u64)
}

/// One single-platform image: returns the manifest's digest and size.
pub fn image(store: &DirBlobStore, arch: &str, layers: &[(Vec<u8>, Digest)]) -> (Digest, u64) {
    let config = json!({
        "architecture": arch,
        "os": "linux",
        "config": {"Cmd": ["/bin/app"]},
        "rootfs": {"type": "layers", "diff_ids": layers.iter().map(|l| l.1.to_string()).collect::<Vec<_>>()},
    });
    let config = serde_json::to_vec(&config).unwrap();
    let (cd, cs) = put(store, &config);
    let layer_descs: Vec<_> = layers
        .iter()
        .map(|(data, _)| {
            let (d, s) = put(store, data);
            json!({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": d.to_string(), "size": s})
        })
        .collect();
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": MEDIA_TYPE_OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd.to_string(), "size": cs},
        "layers": layer_descs,
    });
    put(store, &serde_json::to_vec_pretty(&manifest).unwrap())
}

/// A multi-arch index over `(arch, manifest)` pairs.
pub fn index(store: &DirBlobStore, manifests: &[(&str, (Digest, u64))]) -> (Digest, u64) {
    let entries: Vec<_> = manifests
        .iter()
        .map(|(arch, (d, s))| {
            json!({"mediaType": MEDIA_TYPE_OCI_MANIFEST, "digest": d.to_string(), "size": s,
                   "platform": {"architecture": arch, "os": "linux"}})
        })
        .collect();
    let idx = json!({"schemaVersion": 2, "mediaType": MEDIA_TYPE_OCI_INDEX, "manifests": entries});
    put(store, &serde_json::to_vec(&idx).unwrap())
}

/// The images of the demo fixture.
pub struct Fixture {
    /// The blob store holding every image.
    pub store: DirBlobStore,
    /// The manifest (members/blobs filled in by the writer).
    pub manifest: BundleManifest,
    /// Component files.
    pub files: Vec<ComponentFile>,
    /// `(reference, top digest)` of every image.
    pub images: Vec<(String, Digest)>,
    /// A layer shared by all images.
    pub shared_layer: Digest,
    /// A config blob.
    pub a_config: Digest,
    /// Holds the store's folder.
    pub _dir: tempfile::TempDir,
}

pub const API_REF: &str = "registry.example.com/acme/api:1.0";
pub const WORKER_REF: &str = "registry.example.com/acme/worker:1.0";
pub const CACHE_REF: &str = "docker.io/library/redis:7.2";

fn record(reference: &str, digest: &Digest, media_type: &str, platforms: &[&str]) -> ImageRecord {
    ImageRecord {
        reference: reference.into(),
        source: format!(
            "{}@{digest}",
            reference.split(':').next().unwrap_or(reference)
        ),
        digest: digest.clone(),
        media_type: media_type.into(),
        platforms: platforms.iter().map(|p| p.parse().unwrap()).collect(),
    }
}

/// Three images: a two-arch index (`api`), and two single-arch images, all sharing a base layer;
/// `layer_bytes` pads the worker's layer to make bundles of a chosen size.
pub fn fixture_with(layer_bytes: usize) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let store = DirBlobStore::open(dir.path().join("blobs")).unwrap();
    let base = layer(&[("etc/os-release", b"NAME=base\n")]);
    let shared_layer = Digest::of_bytes(&base.0);
    let api_amd = image(
        &store,
        "amd64",
        &[base.clone(), layer(&[("bin/app", b"api amd64")])],
    );
    let api_arm = image(
        &store,
        "arm64",
        &[base.clone(), layer(&[("bin/app", b"api arm64")])],
    );
    let api = index(&store, &[("amd64", api_amd.clone()), ("arm64", api_arm)]);
    // Incompressible-ish filler so sizes are real.
    let mut filler = vec![0u8; layer_bytes];
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    for b in filler.iter_mut() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *b = x as u8;
    }
    let worker = image(
        &store,
        "amd64",
        &[base.clone(), layer(&[("bin/worker", &filler)])],
    );
    let cache = image(&store, "amd64", &[base, layer(&[("bin/redis", b"redis")])]);
    let a_config = {
        // The first manifest's config digest.
        let bytes = std::fs::read(store.path_of(&api_amd.0)).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        v["config"]["digest"].as_str().unwrap().parse().unwrap()
    };
    let manifest = BundleManifest {
        api_version: "airlift.dev/v1alpha1".into(),
        kind: "Bundle".into(),
        metadata: Metadata {
            name: "demo".into(),
            version: "1.0.0".into(),
            channel: "stable".into(),
            vendor: "Acme".into(),
            description: Some("demo product".into()),
        },
        build: BuildInfo {
            created: "2026-01-02T03:04:05Z".into(),
            tool: "airlift-pack test".into(),
            definition_digest: Digest::of_bytes(b"definition"),
            signer: None,
        },
        requirements: Requirements {
            kubernetes: ">=1.28.0".into(),
            platforms: vec!["linux/amd64".parse::<Platform>().unwrap()],
            storage_classes: vec![],
            crds: vec![],
        },
        components: vec![
            Component {
                name: "api".into(),
                description: "the API".into(),
                mode: ComponentMode::Required,
                layer: Layer::Workload,
                order: 1,
                images: vec![
                    record(
                        API_REF,
                        &api.0,
                        MEDIA_TYPE_OCI_INDEX,
                        &["linux/amd64", "linux/arm64"],
                    ),
                    record(
                        WORKER_REF,
                        &worker.0,
                        MEDIA_TYPE_OCI_MANIFEST,
                        &["linux/amd64"],
                    ),
                ],
                manifests: vec!["components/api/deployment.yaml".into()],
                entitlement: None,
            },
            Component {
                name: "cache".into(),
                description: "a cache".into(),
                mode: ComponentMode::OptionalOn,
                layer: Layer::Distro,
                order: 0,
                images: vec![record(
                    CACHE_REF,
                    &cache.0,
                    MEDIA_TYPE_OCI_MANIFEST,
                    &["linux/amd64"],
                )],
                manifests: vec![],
                entitlement: None,
            },
        ],
        config: ConfigSchema::default(),
        platform: Default::default(),
        members: vec![],
        blobs: vec![],
        notes: None,
        license: None,
    };
    let files = vec![ComponentFile {
        path: "components/api/deployment.yaml".into(),
        data: b"apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: api\n".to_vec(),
    }];
    Fixture {
        store,
        manifest,
        files,
        images: vec![
            (API_REF.into(), api.0),
            (WORKER_REF.into(), worker.0),
            (CACHE_REF.into(), cache.0),
        ],
        shared_layer,
        a_config,
        _dir: dir,
    }
}

/// The demo fixture with a small filler layer.
pub fn fixture() -> Fixture {
    fixture_with(64 * 1024)
}

/// Writes the fixture's bundle to `out`, signed with `key` when given.
pub fn build(f: &Fixture, key: Option<&PrivateKey>, out: &Path) -> WrittenBundle {
    write_bundle(
        BundleContents {
            manifest: f.manifest.clone(),
            files: f.files.clone(),
        },
        &f.store,
        key,
        out,
        &NoProgress,
    )
    .unwrap()
}

/// A temp dir, a key pair, and a signed demo bundle in it.
pub struct Built {
    pub dir: tempfile::TempDir,
    pub fixture: Fixture,
    pub key: PrivateKey,
    pub bundle: PathBuf,
}

/// Builds a signed demo bundle.
pub fn built() -> Built {
    let dir = tempfile::tempdir().unwrap();
    let fixture = fixture();
    let key = PrivateKey::generate();
    let bundle = dir.path().join("demo-1.0.0.airlift");
    build(&fixture, Some(&key), &bundle);
    Built {
        dir,
        fixture,
        key,
        bundle,
    }
}

/// Runs a required external tool; panics with a clear message when it is missing.
pub fn tool(name: &str) -> Command {
    let found = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(name).is_file()))
        .unwrap_or(false);
    assert!(
        found,
        "required tool `{name}` is not installed: install it (apt-get install -y {name}); this test refuses to skip"
    );
    Command::new(name)
}

/// When `AIRLIFT_FUZZ_SEEDS` names a folder (as `scripts/fuzz.sh` sets it), copies the fixture
/// file at `path` there as `NAME`, so the fuzz corpora start from the hostile fixtures. Files
/// over 1 MiB (the 16 MiB nesting fixtures) are left out: libFuzzer mutates small inputs.
pub fn export_fuzz_seed(path: &Path, name: &str) {
    let small = std::fs::metadata(path).is_ok_and(|m| m.len() <= 1 << 20);
    if let Some(dir) = std::env::var_os("AIRLIFT_FUZZ_SEEDS").filter(|_| small) {
        let dir = PathBuf::from(dir);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::copy(path, dir.join(name)).unwrap();
    }
}

/// Opens with the key and verifies every digest: the path an operator's `verify` takes.
pub fn verify_with_key(path: &Path, key: &PrivateKey) -> Result<(), airlift_bundle::BundleError> {
    let trust = airlift_bundle::Trust::Key(key.public_key());
    let b = airlift_bundle::Bundle::open_trusted(path, &trust)?;
    b.verify(&trust, &NoProgress).map(|_| ())
}

/// The tar error inside `e`; panics on any other.
pub fn tar_err(e: airlift_bundle::BundleError) -> airlift_bundle::TarError {
    match e {
        airlift_bundle::BundleError::Tar { source, .. } => source,
        other => panic!("expected a tar error, got {other:?}"),
    }
}

/// The bundle's members as (path, content), and its mtime.
pub fn members_of(path: &Path) -> (Vec<(String, Vec<u8>)>, u64) {
    let bytes = std::fs::read(path).unwrap();
    let b = airlift_bundle::Bundle::open(path).unwrap();
    let members = b
        .members()
        .iter()
        .map(|m| {
            let d = m.data_offset as usize;
            (m.path.clone(), bytes[d..d + m.size as usize].to_vec())
        })
        .collect();
    (members, b.members()[0].mtime)
}
