//! The vendor side, in the test's own (normal) network namespace: a "SaaS registry" seeded with
//! skopeo from images generated here, and the bundles `airlift-pack` builds and signs from it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use airlift_testkit::images::{LayerSpec, LayoutBuilder};
use airlift_testkit::registry::TestRegistry;

use crate::process::{label_of, run, Outcome};
use crate::protocol::BundleFile;
use crate::tools::{fixtures_dir, workspace_root, Binaries};

/// The host the fixtures name their source registry with; replaced by the SaaS registry.
pub const FIXTURE_REGISTRY_HOST: &str = "saas-registry.invalid";
/// Content bytes of the large analytics layer: 100 MiB.
pub const BIG_LAYER: u64 = 100 << 20;

const BUILD_LIMIT: Duration = Duration::from_secs(180);

/// The bundles a test needs from the vendor side.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Want {
    /// Only the seeded SaaS registry (no bundle).
    SaasImages,
    /// `bundles/demo`, signed.
    Demo,
    /// `bundles/demo` signed by another key (`demo-other-key`), and unsigned (`demo-unsigned`).
    DemoVariants,
    /// The registry-sourced bundle at version 1 (`saas-v1`).
    SaasV1,
    /// The registry-sourced bundle at version 2 (`saas-v2`).
    SaasV2,
}

/// The vendor side: the SaaS registry (running while this lives), keys and built bundles.
#[derive(Debug)]
pub struct VendorSide {
    /// The SaaS registry (plain HTTP on loopback, like a vendor's internal mirror).
    pub registry: TestRegistry,
    /// The vendor's public key.
    pub vendor_pub: PathBuf,
    /// Built bundles by role (see [`crate::protocol::CustomerInput::bundles`]).
    pub bundles: BTreeMap<String, BundleFile>,
    /// What the SaaS registry holds: `repo:tag` → digest read back with skopeo.
    pub seeded: BTreeMap<String, String>,
    /// Size of the largest blob seeded, in bytes.
    pub largest_blob: u64,
    dir: Option<tempfile::TempDir>,
    root: PathBuf,
}

impl Drop for VendorSide {
    /// Keeps the temp folder (bundles, logs, the customer's workdir) when the test failed or
    /// `AIRGAP_KEEP` is set, and says where it is.
    fn drop(&mut self) {
        if std::thread::panicking() || std::env::var_os("AIRGAP_KEEP").is_some() {
            if let Some(dir) = self.dir.take() {
                eprintln!(
                    "airgap: kept the test's files in `{}`",
                    dir.keep().display()
                );
            }
        }
    }
}

impl VendorSide {
    /// Seeds the SaaS registry and builds the bundles in `want`.
    pub fn prepare(bins: &Binaries, want: &[Want]) -> VendorSide {
        let dir = tempfile::Builder::new()
            .prefix("airgap-vendor-")
            .tempdir()
            .expect("create the vendor temp dir");
        let registry = TestRegistry::plain();
        let mut v = VendorSide {
            registry,
            vendor_pub: dir.path().join("vendor.pub"),
            bundles: BTreeMap::new(),
            seeded: BTreeMap::new(),
            largest_blob: 0,
            root: dir.path().to_path_buf(),
            dir: Some(dir),
        };
        v.keygen(bins, "vendor");
        if [Want::SaasImages, Want::SaasV1, Want::SaasV2]
            .iter()
            .any(|w| want.contains(w))
        {
            let t = std::time::Instant::now();
            v.seed_saas_registry(bins);
            eprintln!("airgap: SaaS registry seeded in {:?}", t.elapsed());
        }
        if want.contains(&Want::SaasV1) {
            let def = v.fixture("saas-v1");
            v.build(bins, "saas-v1", &def, BuildKey::Vendor);
        }
        if want.contains(&Want::SaasV2) {
            let def = v.fixture("saas-v2");
            v.build(bins, "saas-v2", &def, BuildKey::Vendor);
        }
        let demo = workspace_root().join("bundles").join("demo");
        if want.contains(&Want::Demo) {
            v.build(bins, "demo", &demo, BuildKey::Vendor);
        }
        if want.contains(&Want::DemoVariants) {
            v.keygen(bins, "other");
            v.build(bins, "demo-other-key", &demo, BuildKey::Other);
            v.build(bins, "demo-unsigned", &demo, BuildKey::Unsigned);
        }
        v
    }

    /// The vendor's temp folder.
    pub fn dir(&self) -> &Path {
        &self.root
    }

    fn logs(&self) -> PathBuf {
        self.root.join("logs")
    }

    fn keygen(&self, bins: &Binaries, name: &str) {
        let prefix = self.root.join(name);
        let args = vec![
            "keygen".to_string(),
            "--out".to_string(),
            prefix.display().to_string(),
        ];
        let mut cmd = Command::new(&bins.pack);
        cmd.args(&args);
        ok(run(
            cmd,
            &label_of(&bins.pack, &args),
            &self.logs(),
            BUILD_LIMIT,
        ));
    }

    /// Copies the SaaS images into the SaaS registry with skopeo and reads their digests back.
    fn seed_saas_registry(&mut self, bins: &Binaries) {
        let cache = bins
            .customer
            .parent()
            .and_then(Path::parent)
            .expect("the customer binary sits in TARGET/PROFILE/")
            .join("airgap-cache");
        let (layout, generated) = saas_layout(&cache);
        self.largest_blob = generated.largest_blob;
        for (tag, digest) in &generated.tags {
            let (name, version) = tag.split_once('-').expect("tags are NAME-VERSION");
            let repo_tag = format!("acme/{name}:{version}");
            let seeded = self.registry.seed(&layout, tag, &repo_tag).to_string();
            assert_eq!(
                &seeded, digest,
                "the SaaS registry serves `{repo_tag}` under another digest than generated"
            );
            self.seeded.insert(repo_tag, seeded);
        }
    }

    /// Copies the fixture `name` and points its image sources at the SaaS registry.
    fn fixture(&self, name: &str) -> PathBuf {
        let to = self.root.join("definitions").join(name);
        copy_dir(&fixtures_dir().join(name), &to);
        let def = to.join("airlift.yaml");
        let text = fs_err::read_to_string(&def).expect("read the fixture definition");
        fs_err::write(
            &def,
            text.replace(FIXTURE_REGISTRY_HOST, &self.registry.host()),
        )
        .expect("write the fixture definition");
        to
    }

    fn build(&mut self, bins: &Binaries, role: &str, def: &Path, key: BuildKey) {
        let out = self.root.join("dist").join(role);
        let mut args = vec![
            "build".to_string(),
            def.display().to_string(),
            "--out".to_string(),
            out.display().to_string(),
            "--cache-dir".to_string(),
            self.root.join("cache").display().to_string(),
            "--insecure-registry".to_string(),
            self.registry.host(),
            "--no-progress".to_string(),
        ];
        match key {
            BuildKey::Vendor => args.extend(["--key".to_string(), self.key_path("vendor")]),
            BuildKey::Other => args.extend(["--key".to_string(), self.key_path("other")]),
            BuildKey::Unsigned => args.push("--unsigned".to_string()),
        }
        let mut cmd = Command::new(&bins.pack);
        cmd.args(&args)
            .env("DOCKER_CONFIG", self.root.join("docker"))
            .env("XDG_CACHE_HOME", self.root.join("xdg-cache"))
            .env("NO_COLOR", "1")
            .env_remove("REGISTRY_AUTH_FILE");
        let t = std::time::Instant::now();
        ok(run(
            cmd,
            &label_of(&bins.pack, &args),
            &self.logs(),
            BUILD_LIMIT,
        ));
        eprintln!("airgap: built `{role}` in {:?}", t.elapsed());
        let path = single_bundle(&out);
        let bundle = self.inspect(bins, &path, key);
        if def.starts_with(&self.root) {
            // Registry-sourced: every image keeps the digest the SaaS registry serves.
            for (reference, digest) in &bundle.images {
                let repo_tag = reference
                    .split_once('/')
                    .map(|(_, path)| path)
                    .expect("fixture references have a host");
                assert_eq!(
                    self.seeded.get(repo_tag),
                    Some(digest),
                    "`{reference}` in {role} does not carry the SaaS registry's digest"
                );
            }
        }
        self.bundles.insert(role.to_string(), bundle);
    }

    fn key_path(&self, name: &str) -> String {
        self.root.join(format!("{name}.key")).display().to_string()
    }

    /// Reads a bundle's name, version and image digests with `airlift-install inspect`.
    fn inspect(&self, bins: &Binaries, path: &Path, key: BuildKey) -> BundleFile {
        let mut args = vec![
            "inspect".to_string(),
            path.display().to_string(),
            "--output".to_string(),
            "json".to_string(),
        ];
        match key {
            BuildKey::Vendor => {
                args.extend(["--key".to_string(), self.vendor_pub.display().to_string()]);
            }
            BuildKey::Other => {
                let other = self.root.join("other.pub");
                args.extend(["--key".to_string(), other.display().to_string()]);
            }
            BuildKey::Unsigned => args.push("--insecure-skip-verify".to_string()),
        }
        let mut cmd = Command::new(&bins.install);
        cmd.args(&args)
            .env("XDG_CACHE_HOME", self.root.join("xdg-cache"));
        let out = ok(run(
            cmd,
            &label_of(&bins.install, &args),
            &self.logs(),
            BUILD_LIMIT,
        ));
        let doc = out.json().expect("inspect prints JSON");
        let images = doc["images"]
            .as_array()
            .expect("inspect lists images")
            .iter()
            .map(|i| {
                (
                    i["reference"]
                        .as_str()
                        .expect("image reference")
                        .to_string(),
                    i["digest"].as_str().expect("image digest").to_string(),
                )
            })
            .collect();
        BundleFile {
            path: path.to_path_buf(),
            name: doc["name"].as_str().expect("bundle name").to_string(),
            version: doc["version"].as_str().expect("bundle version").to_string(),
            images,
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum BuildKey {
    Vendor,
    Other,
    Unsigned,
}

fn ok(outcome: anyhow::Result<Outcome>) -> Outcome {
    let o = outcome.unwrap_or_else(|e| panic!("{e:#}"));
    if let Err(e) = o.ensure_success() {
        panic!("{e:#}");
    }
    o
}

/// The one `*.airlift` file the packager wrote into `out`.
fn single_bundle(out: &Path) -> PathBuf {
    let found: Vec<PathBuf> = fs_err::read_dir(out)
        .expect("read the packager's output folder")
        .map(|e| e.expect("list the output folder").path())
        .filter(|p| p.extension().is_some_and(|e| e == "airlift"))
        .collect();
    assert_eq!(
        found.len(),
        1,
        "expected exactly one *.airlift bundle in `{}`, found {found:?}",
        out.display()
    );
    found.into_iter().next().expect("one bundle")
}

fn copy_dir(from: &Path, to: &Path) {
    fs_err::create_dir_all(to).expect("create the fixture copy");
    for entry in fs_err::read_dir(from).expect("read the fixture") {
        let entry = entry.expect("list the fixture");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("file type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            fs_err::copy(entry.path(), &target).expect("copy a fixture file");
        }
    }
}

/// What [`saas_layout`] generated.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct GeneratedImages {
    /// Layout tag (`NAME-VERSION`) → index digest.
    tags: BTreeMap<String, String>,
    /// The largest layer, in bytes.
    largest_blob: u64,
}

/// The SaaS images as an OCI layout, generated once into `cache` (generation is deterministic,
/// and a debug build takes a while over 100 MiB) and reused by later test processes.
///
/// Every image is a linux/amd64 + linux/arm64 index (the bundle requires both, so the packager
/// keeps each index byte for byte). Per architecture, all images share one base layer;
/// `analytics` carries a 100 MiB layer shared by both architectures.
fn saas_layout(cache: &Path) -> (PathBuf, GeneratedImages) {
    const NAME: &str = "saas-images-1";
    let dir = cache.join(NAME);
    let record = dir.join("generated.json");
    if let Ok(bytes) = fs_err::read(&record) {
        if let Ok(g) = serde_json::from_slice(&bytes) {
            return (dir, g);
        }
    }
    fs_err::create_dir_all(cache).expect("create the image cache");
    let tmp = tempfile::Builder::new()
        .prefix(&format!("{NAME}.tmp-"))
        .tempdir_in(cache)
        .expect("create a temp dir in the image cache");
    let mut b = LayoutBuilder::create(tmp.path()).expect("create the image layout");
    let base = [
        ("linux/amd64", LayerSpec::new(1000, 3 << 20)),
        ("linux/arm64", LayerSpec::new(2000, 3 << 20)),
    ];
    let big = LayerSpec::new(3000, BIG_LAYER).with_level(0);
    let mut generated = GeneratedImages {
        tags: BTreeMap::new(),
        largest_blob: 0,
    };
    for (tag, seed) in [
        ("api-1.0", 1),
        ("api-2.0", 2),
        ("worker-1.0", 3),
        ("analytics-1.0", 4),
    ] {
        let mut per_arch = Vec::new();
        for (i, (platform, base_layer)) in base.iter().enumerate() {
            let own = if tag.starts_with("analytics") {
                big
            } else {
                LayerSpec::new(100 * (i as u64 + 1) + seed, 256 << 10)
            };
            per_arch.push(
                b.image(platform, &[*base_layer, own])
                    .expect("generate an image"),
            );
        }
        let index = b.index(&per_arch).expect("generate an index");
        b.tag(tag, &index.descriptor());
        for img in &index.images {
            for l in &img.layers {
                generated.largest_blob = generated.largest_blob.max(l.blob.size);
            }
        }
        generated
            .tags
            .insert(tag.to_string(), index.index.digest.to_string());
    }
    b.finish().expect("write index.json");
    fs_err::write(
        tmp.path().join("generated.json"),
        serde_json::to_vec_pretty(&generated).expect("serialize the record"),
    )
    .expect("write the record");
    let tmp = tmp.keep();
    if std::fs::rename(&tmp, &dir).is_err() {
        // Another test process won the race: use its copy.
        let _ = std::fs::remove_dir_all(&tmp);
    }
    (dir, generated)
}
