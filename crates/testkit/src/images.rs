//! Generates realistic test images as an OCI image layout folder: `oci-layout`, `index.json` and
//! `blobs/sha256/…`, so `DirBlobStore::open(layout.join("blobs"))` reads the blobs and
//! `skopeo copy oci:DIR:TAG …` reads the images.
//!
//! Images run on a real cluster: every layer also holds the tiny static program of
//! [`crate::test_app`] for amd64 and arm64, and each image's entrypoint is the one for its
//! architecture (it waits for SIGTERM; with an argument, as in a Job, it exits 0 at once).
//!
//! Layers are real gzip-compressed tars of pseudo-random files, generated and written streaming
//! (a 1 GiB layer never sits in memory). Content is a pure function of a [`LayerSpec`]: the same
//! seed and size give the same bytes and digest on every machine, so images that list the same
//! base layer share it.
//!
//! ```no_run
//! use airlift_testkit::images::{LayerSpec, LayoutBuilder};
//!
//! let dir = tempfile::tempdir().unwrap();
//! let mut b = LayoutBuilder::create(dir.path()).unwrap();
//! let base = LayerSpec::new(1, 2 << 20);
//! let api = b.image("linux/amd64", &[base, LayerSpec::new(2, 64 << 10)]).unwrap();
//! b.tag("api", &api.descriptor());
//! let arm = b.image("linux/arm64", &[base]).unwrap();
//! let idx = b.index(&[api.clone(), arm]).unwrap();
//! b.tag("multi", &idx.descriptor());
//! b.finish().unwrap();
//! ```

use std::collections::HashMap;
use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use airlift_bundle::{Digest, DirBlobStore, HashingWriter};
use flate2::write::GzEncoder;
use flate2::Compression;
use serde_json::json;

use crate::test_app;

/// OCI image manifest media type.
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// OCI image index media type.
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// OCI image config media type.
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
/// OCI gzip layer media type.
pub const OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";

/// The largest file inside a generated layer.
const MAX_FILE: u64 = 8 << 20;

/// One layer to generate: its seed and the bytes of file content it holds (before tar and gzip).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct LayerSpec {
    /// Decides the content; equal specs give byte-identical layers.
    pub seed: u64,
    /// Bytes of file content in the layer.
    pub size: u64,
    /// gzip level 0–9. 0 stores (fast, incompressible content makes higher levels pointless
    /// except for realism); the default is 1.
    pub level: u32,
}

impl LayerSpec {
    /// A layer of `size` content bytes from `seed`, gzip level 1.
    pub fn new(seed: u64, size: u64) -> Self {
        Self {
            seed,
            size,
            level: 1,
        }
    }

    /// The same layer with another gzip level (0 = stored).
    pub fn with_level(mut self, level: u32) -> Self {
        self.level = level.min(9);
        self
    }
}

/// An OCI descriptor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Descriptor {
    /// The media type.
    pub media_type: String,
    /// The digest.
    pub digest: Digest,
    /// The size in bytes.
    pub size: u64,
}

impl Descriptor {
    fn to_json(&self) -> serde_json::Value {
        json!({"mediaType": self.media_type, "digest": self.digest.to_string(), "size": self.size})
    }
}

/// A generated layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerInfo {
    /// The compressed blob.
    pub blob: Descriptor,
    /// The digest of the uncompressed tar (the config's `diff_id`).
    pub diff_id: Digest,
}

/// A generated single-platform image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageInfo {
    /// The manifest.
    pub manifest: Descriptor,
    /// The config blob.
    pub config: Descriptor,
    /// The layers, bottom first.
    pub layers: Vec<LayerInfo>,
    /// `os/architecture[/variant]`.
    pub platform: String,
}

impl ImageInfo {
    /// The manifest descriptor (for [`LayoutBuilder::tag`]).
    pub fn descriptor(&self) -> Descriptor {
        self.manifest.clone()
    }

    /// Every blob digest of the image: config and layers (not the manifest).
    pub fn blob_digests(&self) -> Vec<Digest> {
        std::iter::once(self.config.digest.clone())
            .chain(self.layers.iter().map(|l| l.blob.digest.clone()))
            .collect()
    }
}

/// A generated multi-platform index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexInfo {
    /// The index blob.
    pub index: Descriptor,
    /// Its images.
    pub images: Vec<ImageInfo>,
}

impl IndexInfo {
    /// The index descriptor (for [`LayoutBuilder::tag`]).
    pub fn descriptor(&self) -> Descriptor {
        self.index.clone()
    }
}

/// Writes an OCI image layout folder.
pub struct LayoutBuilder {
    dir: PathBuf,
    store: DirBlobStore,
    tags: Vec<(String, Descriptor)>,
    layers: HashMap<LayerSpec, LayerInfo>,
}

fn store_err(e: airlift_bundle::StoreError) -> io::Error {
    io::Error::other(e)
}

impl LayoutBuilder {
    /// Creates the layout folder (and `oci-layout`); existing blobs are kept.
    pub fn create(dir: &Path) -> io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        std::fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#)?;
        let store = DirBlobStore::open(dir.join("blobs")).map_err(store_err)?;
        Ok(Self {
            dir: dir.to_path_buf(),
            store,
            tags: Vec::new(),
            layers: HashMap::new(),
        })
    }

    /// The layout folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The blob store over `blobs/`.
    pub fn store(&self) -> &DirBlobStore {
        &self.store
    }

    /// Writes a small JSON document as a blob.
    pub fn put_json(&self, media_type: &str, doc: &serde_json::Value) -> io::Result<Descriptor> {
        let bytes = serde_json::to_vec(doc)?;
        let digest = Digest::of_bytes(&bytes);
        if !self.store.contains(&digest) {
            self.store
                .put(&digest, &mut &bytes[..])
                .map_err(store_err)?;
        }
        Ok(Descriptor {
            media_type: media_type.to_string(),
            digest,
            size: bytes.len() as u64,
        })
    }

    /// Generates (or reuses) a layer blob.
    pub fn layer(&mut self, spec: LayerSpec) -> io::Result<LayerInfo> {
        if let Some(l) = self.layers.get(&spec) {
            return Ok(l.clone());
        }
        let tmp = tempfile::NamedTempFile::new_in(self.store.root().join("sha256"))?;
        let file = tmp.reopen()?;
        let compressed = HashingWriter::new(BufWriter::with_capacity(1 << 20, file));
        let gz = GzEncoder::new(compressed, Compression::new(spec.level));
        let mut tar = tar::Builder::new(HashingWriter::new(gz));
        tar.mode(tar::HeaderMode::Deterministic);
        // Every layer carries the test program for each architecture, so any image built from
        // any layers runs on a real cluster (a layer may be shared across architectures).
        for arch in test_app::ARCHITECTURES {
            let program = test_app::executable(arch);
            let mut h = tar::Header::new_gnu();
            h.set_size(program.len() as u64);
            h.set_mode(0o755);
            h.set_mtime(0);
            h.set_uid(0);
            h.set_gid(0);
            h.set_entry_type(tar::EntryType::Regular);
            let path = test_app::path_in_image(arch);
            tar.append_data(&mut h, path.trim_start_matches('/'), &program[..])?;
        }
        let mut left = spec.size;
        let mut i = 0u64;
        while left > 0 || i == 0 {
            let n = left.min(MAX_FILE);
            let mut h = tar::Header::new_gnu();
            h.set_size(n);
            h.set_mode(0o644);
            h.set_mtime(0);
            h.set_uid(0);
            h.set_gid(0);
            h.set_entry_type(tar::EntryType::Regular);
            let path = format!("opt/layer-{:016x}/file-{i:05}.bin", spec.seed);
            let content = PseudoRandom::new(spec.seed.wrapping_mul(1_000_003).wrapping_add(i), n);
            tar.append_data(&mut h, &path, content)?;
            left -= n;
            i += 1;
        }
        let (gz, diff_id, _) = tar.into_inner()?.finish();
        let (mut compressed, digest, size) = gz.finish()?.finish();
        compressed.flush()?;
        drop(compressed);
        tmp.persist(self.store.path_of(&digest))
            .map_err(|e| e.error)?;
        let info = LayerInfo {
            blob: Descriptor {
                media_type: OCI_LAYER_GZIP.to_string(),
                digest,
                size,
            },
            diff_id,
        };
        self.layers.insert(spec, info.clone());
        Ok(info)
    }

    /// Generates a single-platform image (`os/arch[/variant]`) with `layers`, bottom first.
    pub fn image(&mut self, platform: &str, layers: &[LayerSpec]) -> io::Result<ImageInfo> {
        let mut infos = Vec::new();
        for l in layers {
            infos.push(self.layer(*l)?);
        }
        let mut parts = platform.split('/');
        let os = parts.next().unwrap_or("linux");
        let arch = parts.next().unwrap_or("amd64");
        let variant = parts.next();
        let mut config = json!({
            "created": "1970-01-01T00:00:00Z",
            "architecture": arch,
            "os": os,
            "config": {
                "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
                "Entrypoint": [test_app::path_in_image(arch)],
                "ExposedPorts": {"8080/tcp": {}},
            },
            "rootfs": {
                "type": "layers",
                "diff_ids": infos.iter().map(|l| l.diff_id.to_string()).collect::<Vec<_>>(),
            },
            "history": infos.iter().map(|_| json!({"created": "1970-01-01T00:00:00Z", "created_by": "airlift-testkit"})).collect::<Vec<_>>(),
        });
        if let Some(v) = variant {
            config["variant"] = json!(v);
        }
        let config = self.put_json(OCI_CONFIG, &config)?;
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": config.to_json(),
            "layers": infos.iter().map(|l| l.blob.to_json()).collect::<Vec<_>>(),
        });
        let manifest = self.put_json(OCI_MANIFEST, &manifest)?;
        Ok(ImageInfo {
            manifest,
            config,
            layers: infos,
            platform: platform.to_string(),
        })
    }

    /// Writes an index over `images` (each with its platform).
    pub fn index(&mut self, images: &[ImageInfo]) -> io::Result<IndexInfo> {
        let manifests: Vec<serde_json::Value> = images
            .iter()
            .map(|i| {
                let mut parts = i.platform.split('/');
                let mut platform = json!({
                    "os": parts.next().unwrap_or("linux"),
                    "architecture": parts.next().unwrap_or("amd64"),
                });
                if let Some(v) = parts.next() {
                    platform["variant"] = json!(v);
                }
                let mut d = i.manifest.to_json();
                d["platform"] = platform;
                d
            })
            .collect();
        let index = json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": manifests});
        let index = self.put_json(OCI_INDEX, &index)?;
        Ok(IndexInfo {
            index,
            images: images.to_vec(),
        })
    }

    /// Names `desc` `tag` in `index.json` (`org.opencontainers.image.ref.name`), replacing an
    /// earlier entry with the same tag.
    pub fn tag(&mut self, tag: &str, desc: &Descriptor) {
        self.tags.retain(|(t, _)| t != tag);
        self.tags.push((tag.to_string(), desc.clone()));
    }

    /// Writes `index.json`.
    pub fn finish(self) -> io::Result<PathBuf> {
        let manifests: Vec<serde_json::Value> = self
            .tags
            .iter()
            .map(|(t, d)| {
                let mut v = d.to_json();
                v["annotations"] = json!({"org.opencontainers.image.ref.name": t});
                v
            })
            .collect();
        let index = json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": manifests});
        std::fs::write(
            self.dir.join("index.json"),
            serde_json::to_vec_pretty(&index)?,
        )?;
        Ok(self.dir)
    }
}

/// The standard small image set most tests use, written by [`sample_set`].
#[derive(Debug, Clone)]
pub struct SampleSet {
    /// The layout folder.
    pub dir: PathBuf,
    /// `api` (linux/amd64): base + its own layer.
    pub api: ImageInfo,
    /// `worker` (linux/amd64): the same base + its own layer (shares the base with `api`).
    pub worker: ImageInfo,
    /// `multi`: an index of linux/amd64 and linux/arm64, both on the same base.
    pub multi: IndexInfo,
    /// `arm-only` (linux/arm64), single-platform.
    pub arm_only: ImageInfo,
}

impl SampleSet {
    /// Flips the last bit of the largest layer of `api` in the layout, as a disk fault would:
    /// same size, another digest. Returns the layer, its file, and the file's new bytes.
    ///
    /// # Panics
    /// When the layer's file cannot be read or written.
    pub fn corrupt_largest_api_layer(&self) -> (&LayerInfo, PathBuf, Vec<u8>) {
        let layer = self
            .api
            .layers
            .iter()
            .max_by_key(|l| l.blob.size)
            .unwrap_or_else(|| panic!("`api` has no layer"));
        let hex = layer.blob.digest.to_string().replace("sha256:", "");
        let victim = self.dir.join("blobs/sha256").join(hex);
        let mut bytes =
            std::fs::read(&victim).unwrap_or_else(|e| panic!("read {}: {e}", victim.display()));
        if let Some(last) = bytes.last_mut() {
            *last ^= 0x01;
        }
        std::fs::write(&victim, &bytes)
            .unwrap_or_else(|e| panic!("write {}: {e}", victim.display()));
        (layer, victim, bytes)
    }
}

/// Writes a small deterministic image set into `dir`, tagged `api`, `worker`, `multi` and
/// `arm-only`. `seed` varies the content; `base_size` is the shared base layer's content size.
pub fn sample_set(dir: &Path, seed: u64, base_size: u64) -> io::Result<SampleSet> {
    let mut b = LayoutBuilder::create(dir)?;
    let base = LayerSpec::new(seed, base_size);
    let api = b.image("linux/amd64", &[base, LayerSpec::new(seed + 1, 48 << 10)])?;
    let worker = b.image("linux/amd64", &[base, LayerSpec::new(seed + 2, 32 << 10)])?;
    let m_amd = b.image("linux/amd64", &[base, LayerSpec::new(seed + 3, 16 << 10)])?;
    let m_arm = b.image("linux/arm64", &[base, LayerSpec::new(seed + 4, 16 << 10)])?;
    let multi = b.index(&[m_amd, m_arm])?;
    let arm_only = b.image("linux/arm64", &[LayerSpec::new(seed + 5, 8 << 10)])?;
    b.tag("api", &api.descriptor());
    b.tag("worker", &worker.descriptor());
    b.tag("multi", &multi.descriptor());
    b.tag("arm-only", &arm_only.descriptor());
    let dir = b.finish()?;
    Ok(SampleSet {
        dir,
        api,
        worker,
        multi,
        arm_only,
    })
}

/// The benchmark image set: several images over shared base layers, one large layer.
#[derive(Debug, Clone)]
pub struct BenchmarkSet {
    /// The layout folder.
    pub dir: PathBuf,
    /// `(tag, image)` for every image.
    pub images: Vec<(String, ImageInfo)>,
    /// Sum of the unique blob sizes (configs, layers and manifests).
    pub unique_bytes: u64,
}

/// Writes about `total` bytes of images into `dir`: a shared OS base (10%), a shared runtime
/// layer (15%), one image with a large layer (50%) and four small services (the rest), all
/// linux/amd64, tagged `svc-0` … `svc-4` and `big`. Layers are stored uncompressed-in-gzip
/// (level 0) so generation is fast; the bytes are still a valid `tar+gzip`.
pub fn benchmark_set(dir: &Path, seed: u64, total: u64) -> io::Result<BenchmarkSet> {
    let mut b = LayoutBuilder::create(dir)?;
    let os = LayerSpec::new(seed, total / 10).with_level(0);
    let runtime = LayerSpec::new(seed + 1, total * 15 / 100).with_level(0);
    let big = LayerSpec::new(seed + 2, total / 2).with_level(0);
    let small = (total / 4) / 4;
    let mut images = Vec::new();
    let img = b.image("linux/amd64", &[os, runtime, big])?;
    b.tag("big", &img.descriptor());
    images.push(("big".to_string(), img));
    for i in 0..4u64 {
        let own = LayerSpec::new(seed + 10 + i, small).with_level(0);
        let img = b.image("linux/amd64", &[os, runtime, own])?;
        let tag = format!("svc-{i}");
        b.tag(&tag, &img.descriptor());
        images.push((tag, img));
    }
    let mut unique: HashMap<Digest, u64> = HashMap::new();
    for (_, i) in &images {
        unique.insert(i.manifest.digest.clone(), i.manifest.size);
        unique.insert(i.config.digest.clone(), i.config.size);
        for l in &i.layers {
            unique.insert(l.blob.digest.clone(), l.blob.size);
        }
    }
    let dir = b.finish()?;
    Ok(BenchmarkSet {
        dir,
        images,
        unique_bytes: unique.values().sum(),
    })
}

/// Deterministic pseudo-random bytes (splitmix64), `len` bytes long.
pub struct PseudoRandom {
    state: u64,
    left: u64,
    buf: [u8; 8],
    pos: usize,
}

impl PseudoRandom {
    /// `len` bytes from `seed`.
    pub fn new(seed: u64, len: u64) -> Self {
        Self {
            state: seed,
            left: len,
            buf: [0; 8],
            pos: 8,
        }
    }

    fn next_word(&mut self) -> [u8; 8] {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        (z ^ (z >> 31)).to_le_bytes()
    }
}

impl Read for PseudoRandom {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let want = usize::try_from(self.left)
            .unwrap_or(usize::MAX)
            .min(out.len());
        let mut n = 0;
        while n < want {
            if self.pos == 8 {
                self.buf = self.next_word();
                self.pos = 0;
            }
            let take = (8 - self.pos).min(want - n);
            out[n..n + take].copy_from_slice(&self.buf[self.pos..self.pos + take]);
            self.pos += take;
            n += take;
        }
        self.left -= n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use airlift_bundle::BlobSource;

    #[test]
    fn same_spec_same_digest_and_layout_reads_back() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        let sa = sample_set(a.path(), 7, 100_000).unwrap();
        let sb = sample_set(b.path(), 7, 100_000).unwrap();
        assert_eq!(sa.api.manifest.digest, sb.api.manifest.digest);
        // api and worker share the base layer.
        assert_eq!(sa.api.layers[0], sa.worker.layers[0]);
        assert_ne!(sa.api.layers[1], sa.worker.layers[1]);
        let store = DirBlobStore::open(a.path().join("blobs")).unwrap();
        for d in sa.api.blob_digests() {
            let mut r = store.blob_reader(&d).unwrap();
            let mut h = airlift_bundle::HashingReader::new(&mut r);
            io::copy(&mut h, &mut io::sink()).unwrap();
            assert_eq!(h.finish().0, d);
        }
        // The layer is a real gzip'd tar holding the content.
        let f = std::fs::File::open(store.path_of(&sa.api.layers[0].blob.digest)).unwrap();
        let mut ar = tar::Archive::new(flate2::read::GzDecoder::new(f));
        let total: u64 = ar
            .entries()
            .unwrap()
            .map(|e| e.unwrap())
            .filter(|e| {
                e.path()
                    .unwrap()
                    .to_string_lossy()
                    .starts_with("opt/layer-")
            })
            .map(|e| e.size())
            .sum();
        assert_eq!(total, 100_000);
        let index: serde_json::Value =
            serde_json::from_slice(&std::fs::read(a.path().join("index.json")).unwrap()).unwrap();
        assert_eq!(index["manifests"].as_array().unwrap().len(), 4);
    }

    /// What a kubelet would run: each image's entrypoint, found in its layers as an executable
    /// for the image's architecture; the amd64 one runs here.
    #[test]
    fn every_image_holds_its_entrypoint_for_its_architecture() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let set = sample_set(dir.path(), 5, 10_000).unwrap();
        let store = DirBlobStore::open(dir.path().join("blobs")).unwrap();
        let mut images = vec![set.api, set.worker, set.arm_only];
        images.extend(set.multi.images);
        for image in images {
            let config: serde_json::Value = serde_json::from_slice(
                &std::fs::read(store.path_of(&image.config.digest)).unwrap(),
            )
            .unwrap();
            let arch = config["architecture"].as_str().unwrap();
            assert_eq!(image.platform, format!("linux/{arch}"));
            let entrypoint = config["config"]["Entrypoint"][0]
                .as_str()
                .unwrap()
                .to_string();
            let top = store.path_of(&image.layers.last().unwrap().blob.digest);
            let mut ar = tar::Archive::new(flate2::read::GzDecoder::new(
                std::fs::File::open(top).unwrap(),
            ));
            let mut found = None;
            for e in ar.entries().unwrap() {
                let mut e = e.unwrap();
                if format!("/{}", e.path().unwrap().display()) == entrypoint {
                    assert_eq!(e.header().mode().unwrap() & 0o777, 0o755, "{entrypoint}");
                    let mut bytes = Vec::new();
                    e.read_to_end(&mut bytes).unwrap();
                    found = Some(bytes);
                }
            }
            let program = found.unwrap_or_else(|| panic!("{entrypoint} is in no layer"));
            assert_eq!(program, crate::test_app::executable(arch), "{entrypoint}");
            if arch == "amd64" {
                let exe = dir.path().join("entrypoint");
                std::fs::write(&exe, &program).unwrap();
                std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(0o755)).unwrap();
                let status = std::process::Command::new(&exe)
                    .arg("once")
                    .status()
                    .unwrap();
                assert!(status.success(), "{entrypoint}: {status}");
            }
        }
    }
}
