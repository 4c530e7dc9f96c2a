//! The build: definition -> images resolved -> one signed bundle file.
//!
//! Images are resolved in parallel (bounded): their manifests and configs (small) go into the
//! content-addressed cache, and with them every blob's digest and size is known, so the bundle
//! is planned and signed before any layer is fetched. Then every blob is written into its place
//! in the bundle (`assemble`): copied from the cache when it holds it (a rebuild with
//! unchanged layers downloads nothing), downloaded straight into place otherwise and kept in the
//! cache with a kernel-side copy. The layers of an image read from an OCI layout or archive are
//! read in place, hashed and written into the bundle once (not kept in the cache: they are on
//! this machine already). Images built locally go through the cache. Nothing here draws
//! progress: it reports through [`Progress`].

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use airlift_bundle::schema::common::Platform;
use airlift_bundle::schema::definition::{ImageDefinition, ImageSource, LocalOci};
use airlift_bundle::schema::manifest::{
    BuildInfo, BundleManifest, Component, ImageRecord, BUNDLE_KIND,
};
use airlift_bundle::schema::API_VERSION;
use airlift_bundle::sign::PrivateKey;
use airlift_bundle::writer::{
    plan_bundle, BundleContents, ComponentFile, Reuse, WriteError, WrittenBundle,
};
use airlift_bundle::{BlobSource, Digest, DirBlobStore, Progress};
use airlift_registry::pull::{
    resolve_archive, resolve_layout, LocalImage, PullError, PulledImage, RegistryPuller,
    ResolvedImage,
};
use airlift_registry::RegistryOptions;
use airlift_render::LoadedDefinition;
use futures::stream::{self, StreamExt, TryStreamExt};
use serde::Serialize;

use crate::assemble::{Assembly, Fetch, KeepLayers, Sources};
use crate::error::{BuildError, ImageError};
use crate::local_image::build_local_image;

/// Everything a build needs.
pub struct BuildRequest {
    /// The loaded, validated definition.
    pub definition: LoadedDefinition,
    /// The signing key; `None` builds an unsigned bundle (only with an explicit flag).
    pub key: Option<PrivateKey>,
    /// The folder the bundle is written to.
    pub out_dir: PathBuf,
    /// The content-addressed blob cache.
    pub cache: DirBlobStore,
    /// Whether downloaded layers are kept in the cache for the next build.
    pub keep_layers: KeepLayers,
    /// How to reach source registries.
    pub registry: RegistryOptions,
    /// How many images are acquired at the same time (blobs within one image are parallel too).
    pub image_concurrency: usize,
    /// Seconds since the epoch for `build.created` (from `SOURCE_DATE_EPOCH`).
    pub source_date_epoch: Option<u64>,
    /// Set (by the operator's interrupt) to stop the build: no bundle file is created after it
    /// is set, and the one being written stops at its next blob or chunk and is removed.
    pub stop: Arc<AtomicBool>,
}

/// One image of the built bundle.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageSummary {
    /// The reference the manifests use.
    pub reference: String,
    /// The pinned source.
    pub source: String,
    /// The digest kept in the bundle.
    pub digest: String,
    /// Its platforms.
    pub platforms: Vec<String>,
    /// The bytes of its blobs (configs and layers), counting shared ones.
    pub bytes: u64,
    /// Bytes downloaded for it in this build (0 when cached, built locally, or read from an OCI
    /// layout or archive).
    pub downloaded: u64,
    /// For an image built from local files: `true` when its layer was not compressed again (an
    /// earlier build of the same unchanged files made it, and the cache holds it), `false` when
    /// this build compressed it. Absent for other images.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub layer_reused: Option<bool>,
}

/// What a build produced, for the summary and `--output json`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BuildSummary {
    /// The bundle file.
    pub bundle: PathBuf,
    /// Its size.
    pub size: u64,
    /// The digest of its signed manifest.
    pub manifest_digest: String,
    /// Whether it is signed.
    pub signed: bool,
    /// The images.
    pub images: Vec<ImageSummary>,
    /// Distinct blobs stored.
    pub unique_blobs: usize,
    /// Bytes of distinct blobs stored.
    pub unique_bytes: u64,
    /// Bytes the images reference in total, counting shared blobs once per image.
    pub referenced_bytes: u64,
    /// Bytes saved by storing shared blobs once.
    pub dedup_saved_bytes: u64,
    /// Bytes downloaded from registries in this build.
    pub downloaded_bytes: u64,
    /// Seconds the build took.
    pub seconds: f64,
    /// Set when nothing was written: the cache held a bundle with exactly these bytes (a
    /// rebuild of unchanged inputs), which is the output as it was or is now linked to it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reused: Option<Reuse>,
}

/// An image once it is resolved: its manifests in the cache, its blobs known.
struct Acquired {
    component: usize,
    record: ImageRecord,
    /// Every config and layer blob with its size (manifests are small and not counted).
    blobs: Vec<(Digest, u64)>,
    downloaded: u64,
    /// For an image built from local files: whether its layer came from an earlier build.
    layer_reused: Option<bool>,
    /// For a registry image, where its blobs the cache lacks are fetched from.
    remote: Option<Arc<ResolvedImage>>,
    /// For an image from an OCI layout or archive, where its blobs the cache lacks are read.
    local: Option<Arc<LocalImage>>,
}

/// Runs the build.
pub async fn build(
    req: BuildRequest,
    progress: Arc<dyn Progress>,
) -> Result<BuildSummary, BuildError> {
    let started = Instant::now();
    let def = &req.definition.definition;
    let platforms = def.requirements.platforms.clone();
    let puller = Arc::new(
        RegistryPuller::new(req.cache.clone(), req.registry.clone())
            .map_err(|e| BuildError::Client(Box::new(e)))?,
    );

    let jobs: Vec<(usize, ImageDefinition)> = def
        .components
        .iter()
        .enumerate()
        .flat_map(|(i, c)| c.images.iter().cloned().map(move |img| (i, img)))
        .collect();
    let dir = req.definition.dir.clone();
    let acquired: Vec<Acquired> = stream::iter(jobs)
        .map(|(component, image)| {
            let puller = puller.clone();
            let cache = req.cache.clone();
            let platforms = platforms.clone();
            let progress = progress.clone();
            let dir = dir.clone();
            async move {
                acquire(
                    &dir,
                    component,
                    &image,
                    &platforms,
                    &puller,
                    &cache,
                    progress.as_ref(),
                )
                .await
                .map_err(|source| BuildError::Image {
                    image: image.reference.clone(),
                    source,
                })
            }
        })
        .buffered(req.image_concurrency.max(1))
        .try_collect()
        .await?;

    let mut acquired = acquired;
    let manifest = bundle_manifest(&req, &acquired)?;
    let files = component_files(&req.definition)?;
    let out = req.out_dir.join(format!(
        "{}-{}.airlift",
        def.metadata.name, def.metadata.version
    ));
    std::fs::create_dir_all(&req.out_dir).map_err(|source| BuildError::OutDir {
        path: req.out_dir.clone(),
        source,
    })?;

    // Blobs the cache lacks are read from a local source that has them, or else downloaded
    // into the bundle, each once, through the first image that lists it.
    let mut sources = Sources::new(req.cache.clone());
    for local in acquired.iter().filter_map(|a| a.local.as_ref()) {
        sources.add_local(local);
    }
    let mut fetches: BTreeMap<Digest, Fetch> = BTreeMap::new();
    for (owner, a) in acquired.iter().enumerate() {
        let Some(remote) = &a.remote else { continue };
        for blob in &remote.image.blobs {
            if sources.blob_size(&blob.digest).is_none() && !fetches.contains_key(&blob.digest) {
                let fetch = Fetch {
                    owner,
                    image: remote.clone(),
                    blob: blob.clone(),
                };
                fetches.insert(blob.digest.clone(), fetch);
            }
        }
    }
    let planning = Planning {
        sources: &sources,
        pending: fetches
            .iter()
            .map(|(d, f)| (d.clone(), f.blob.size))
            .collect(),
    };
    let write_err = |source| BuildError::Write {
        path: out.clone(),
        source: Box::new(source),
    };
    let plan = plan_bundle(
        BundleContents { manifest, files },
        &planning,
        req.key.as_ref(),
    )
    .map_err(write_err)?;
    // A rebuild of unchanged inputs: the bundle the cache holds is exactly this one.
    if fetches.is_empty() && req.keep_layers == KeepLayers::InCache {
        let reused = {
            let (plan, out, cache) = (plan.clone(), out.clone(), req.cache.clone());
            tokio::task::spawn_blocking(move || plan.reuse_held(&out, &cache))
                .await
                .map_err(|_| BuildError::Worker("bundle writer"))?
                .map_err(write_err)?
        };
        if let Some((written, how)) = reused {
            let mut summary = summarize(&written, &acquired, req.key.is_some(), started.elapsed());
            summary.reused = Some(how);
            return Ok(summary);
        }
    }
    // Largest first, both the copies and the downloads: a large blob started last would finish
    // alone, long after the others.
    let mut cached: Vec<(&Digest, &u64)> = plan
        .blobs()
        .iter()
        .filter(|(d, _)| !fetches.contains_key(*d))
        .collect();
    cached.sort_by_key(|(_, size)| std::cmp::Reverse(**size));
    let cached: Vec<Digest> = cached.into_iter().map(|(d, _)| d.clone()).collect();
    let mut fetches: Vec<Fetch> = fetches.into_values().collect();
    fetches.sort_by_key(|f| std::cmp::Reverse(f.blob.size));
    if req.stop.load(Ordering::Relaxed) {
        return Err(write_err(WriteError::Stopped { path: out.clone() }));
    }
    // Bundles the cache holds for nothing (their output deleted, no blob pointing at them) go
    // before the new bundle takes its space: the disk needs room for one bundle, not two, and
    // the memory the kernel cached them in is reused for the new one.
    if req.keep_layers == KeepLayers::InCache && req.cache.holds_bundles() {
        let _ = req.cache.prune_held();
    }
    let file = plan
        .stop_when(req.stop.clone())
        .create(&out)
        .map_err(write_err)?;
    // On the bundle's filesystem the cache holds the bundle itself (a hard link), so the
    // layers downloaded into it are kept without writing them twice, and those it copies from
    // an earlier held bundle move to this one (which lets that one go). A bundle with neither
    // (every layer from a layout, archive or local build) is not held.
    let holding = req.keep_layers == KeepLayers::InCache
        && req.cache.holds_bundles()
        && (!fetches.is_empty() || cached.iter().any(|d| req.cache.is_held(d)));
    let held = holding.then(|| file.hold_in(&req.cache).ok()).flatten();
    let sources = Arc::new(sources);
    let assembly = Assembly {
        path: &out,
        file: &file,
        puller: &puller,
        sources: sources.clone(),
        keep: req.keep_layers,
        held: held.as_ref(),
        concurrency: req.registry.concurrency,
        progress: progress.clone(),
    };
    let downloaded = assembly.run(cached, fetches).await?;
    for (owner, bytes) in downloaded {
        if let Some(a) = acquired.get_mut(owner) {
            a.downloaded += bytes;
        }
    }
    let signed = req.key.is_some();
    // What the cache keeps of the bundle: every blob but those read from a layout or archive
    // (blobs it keeps as files of their own stay so).
    let keep: Vec<_> = file
        .blob_ranges()
        .into_iter()
        .filter(|(d, ..)| sources.local_path(d).is_none())
        .collect();
    let written: WrittenBundle = tokio::task::spawn_blocking(move || file.finish())
        .await
        .map_err(|_| BuildError::Worker("bundle writer"))?
        .map_err(write_err)?;
    if let Some(held) = held {
        // The bundle is what was asked for; the cache not keeping it only costs a download.
        let settled = tokio::task::spawn_blocking(move || held.settle(&keep))
            .await
            .map_err(|_| BuildError::Worker("cache writer"))?;
        if let Err(e) = settled {
            progress.message(&format!(
                "cannot keep the bundle's layers in the cache: {}",
                airlift_bundle::error_chain(&e)
            ));
        }
    }

    Ok(summarize(&written, &acquired, signed, started.elapsed()))
}

/// The cache and local sources, plus the sizes of the blobs that will be downloaded into the
/// bundle: enough to plan it (the planner reads manifests and configs, which are in the cache,
/// and only the size of other blobs).
struct Planning<'a> {
    sources: &'a Sources,
    pending: BTreeMap<Digest, u64>,
}

impl BlobSource for Planning<'_> {
    fn blob_size(&self, digest: &Digest) -> Option<u64> {
        self.pending
            .get(digest)
            .copied()
            .or_else(|| self.sources.blob_size(digest))
    }

    fn read_blob_at(&self, digest: &Digest, offset: u64, buf: &mut [u8]) -> std::io::Result<usize> {
        self.sources.read_blob_at(digest, offset, buf)
    }
}

/// Gets one image into the cache, from wherever its definition says.
async fn acquire(
    dir: &Path,
    component: usize,
    image: &ImageDefinition,
    platforms: &[Platform],
    puller: &RegistryPuller,
    cache: &DirBlobStore,
    progress: &dyn Progress,
) -> Result<Acquired, ImageError> {
    let layer_reused;
    let (record, blobs, downloaded) = match &image.source {
        Some(ImageSource::Build(spec)) => {
            let dir = dir.to_path_buf();
            let spec = spec.clone();
            let platforms_owned = platforms.to_vec();
            let cache = cache.clone();
            let built = tokio::task::spawn_blocking(move || {
                build_local_image(&dir, &spec, &platforms_owned, &cache)
            })
            .await
            .map_err(|_| ImageError::Panicked)??;
            layer_reused = Some(built.layer_reused);
            let blobs = built
                .blobs
                .iter()
                .filter(|b| !is_manifest_type(b.media_type))
                .map(|b| (b.digest.clone(), b.size))
                .collect();
            let source = match &image.source {
                Some(ImageSource::Build(s)) => format!("build:{}", s.context.display()),
                _ => String::new(),
            };
            let record = ImageRecord {
                reference: image.reference.clone(),
                source,
                digest: built.digest,
                media_type: built.media_type.to_string(),
                platforms: built.platforms,
            };
            (record, blobs, 0)
        }
        Some(ImageSource::OciLayout(local) | ImageSource::OciArchive(local)) => {
            let archive = matches!(image.source, Some(ImageSource::OciArchive(_)));
            let resolved = resolve_oci(dir, local, archive, cache, platforms).await?;
            return Ok(from_local(component, image, resolved));
        }
        Some(ImageSource::Registry(source)) => {
            let r = puller.resolve(source, platforms, progress).await?;
            return Ok(resolved(component, image, r));
        }
        None => {
            let r = puller
                .resolve(&image.reference, platforms, progress)
                .await?;
            return Ok(resolved(component, image, r));
        }
    };
    Ok(Acquired {
        component,
        record,
        blobs,
        downloaded,
        layer_reused,
        remote: None,
        local: None,
    })
}

/// An image from an OCI layout or archive once resolved: its blobs are read into the bundle
/// later, from where they are.
fn from_local(component: usize, image: &ImageDefinition, local: LocalImage) -> Acquired {
    let (record, blobs, downloaded) = from_pulled(image, local.image.clone());
    Acquired {
        component,
        record,
        blobs,
        downloaded,
        layer_reused: None,
        remote: None,
        local: Some(Arc::new(local)),
    }
}

/// Reads the image an `ociLayout` source (with `archive`, an `ociArchive` source) names, its path
/// relative to the definition folder `dir`: its manifests and configs go into `store`, its layers
/// are read in place later.
pub(crate) async fn resolve_oci(
    dir: &Path,
    local: &LocalOci,
    archive: bool,
    store: &DirBlobStore,
    platforms: &[Platform],
) -> Result<LocalImage, PullError> {
    let (path, tag) = (dir.join(&local.path), local.tag.as_deref());
    if archive {
        resolve_archive(&path, tag, store, platforms).await
    } else {
        resolve_layout(&path, tag, store, platforms).await
    }
}

/// A registry image once resolved: its blobs are fetched into the bundle later.
fn resolved(component: usize, image: &ImageDefinition, r: ResolvedImage) -> Acquired {
    let (record, blobs, downloaded) = from_pulled(image, r.image.clone());
    Acquired {
        component,
        record,
        blobs,
        downloaded,
        layer_reused: None,
        remote: Some(Arc::new(r)),
        local: None,
    }
}

fn is_manifest_type(media_type: &str) -> bool {
    media_type.contains("manifest") || media_type.contains("image.index")
}

fn from_pulled(
    image: &ImageDefinition,
    pulled: PulledImage,
) -> (ImageRecord, Vec<(Digest, u64)>, u64) {
    let record = ImageRecord {
        reference: image.reference.clone(),
        source: pulled.pinned.clone(),
        digest: pulled.top.digest.clone(),
        media_type: pulled.top.media_type.clone(),
        platforms: pulled.platforms.clone(),
    };
    let blobs = pulled
        .blobs
        .iter()
        .map(|b| (b.digest.clone(), b.size))
        .collect();
    (record, blobs, pulled.bytes_transferred)
}

/// The manifest before the writer fills in members and blobs.
fn bundle_manifest(
    req: &BuildRequest,
    acquired: &[Acquired],
) -> Result<BundleManifest, BuildError> {
    let def = &req.definition.definition;
    let definition_file = req
        .definition
        .dir
        .join(airlift_render::definition::DEFINITION_FILE);
    let definition_bytes =
        airlift_bundle::read_bounded(&definition_file, airlift_bundle::limits::MAX_DOCUMENT)?;
    let mut components: Vec<Component> = def
        .components
        .iter()
        .enumerate()
        .map(|(i, c)| Component {
            name: c.name.clone(),
            description: c.description.clone(),
            mode: c.mode,
            layer: c.layer,
            order: c.order,
            images: acquired
                .iter()
                .filter(|a| a.component == i)
                .map(|a| a.record.clone())
                .collect(),
            manifests: req.definition.components[i]
                .manifests
                .iter()
                .map(|m| member_path(&c.name, &m.rel_path))
                .collect(),
            entitlement: c.entitlement.clone(),
        })
        .collect();
    components.sort_by(|a, b| a.order.cmp(&b.order).then_with(|| a.name.cmp(&b.name)));
    Ok(BundleManifest {
        api_version: API_VERSION.to_string(),
        kind: BUNDLE_KIND.to_string(),
        metadata: def.metadata.clone(),
        build: BuildInfo {
            created: airlift_bundle::time::epoch_to_rfc3339(req.source_date_epoch.unwrap_or(0)),
            tool: format!("airlift-pack {}", env!("CARGO_PKG_VERSION")),
            definition_digest: Digest::of_bytes(&definition_bytes),
            signer: None,
        },
        requirements: def.requirements.clone(),
        components,
        config: def.config.clone(),
        platform: def.platform.clone(),
        members: Vec::new(),
        blobs: Vec::new(),
        notes: def.notes.clone(),
        license: def.license.clone(),
    })
}

/// `components/<component>/<path relative to the definition>`.
fn member_path(component: &str, rel_path: &str) -> String {
    format!("components/{component}/{rel_path}")
}

/// Every manifest template, read as it is (templates are rendered at install time).
fn component_files(def: &LoadedDefinition) -> Result<Vec<ComponentFile>, BuildError> {
    let mut files = Vec::new();
    for c in &def.components {
        for m in &c.manifests {
            files.push(ComponentFile {
                path: member_path(&c.name, &m.rel_path),
                data: airlift_bundle::read_bounded(&m.path, airlift_bundle::limits::MAX_DOCUMENT)?,
            });
        }
    }
    Ok(files)
}

fn summarize(
    written: &WrittenBundle,
    acquired: &[Acquired],
    signed: bool,
    elapsed: Duration,
) -> BuildSummary {
    let mut unique: BTreeMap<&Digest, u64> = BTreeMap::new();
    let mut referenced = 0;
    let images = acquired
        .iter()
        .map(|a| {
            let bytes: u64 = a.blobs.iter().map(|(_, s)| s).sum();
            referenced += bytes;
            for (d, s) in &a.blobs {
                unique.insert(d, *s);
            }
            ImageSummary {
                reference: a.record.reference.clone(),
                source: a.record.source.clone(),
                digest: a.record.digest.to_string(),
                platforms: a.record.platforms.iter().map(ToString::to_string).collect(),
                bytes,
                downloaded: a.downloaded,
                layer_reused: a.layer_reused,
            }
        })
        .collect();
    let unique_bytes: u64 = unique.values().sum();
    BuildSummary {
        bundle: written.path.clone(),
        size: written.size,
        manifest_digest: written.manifest_digest.to_string(),
        signed,
        images,
        unique_blobs: written.manifest.blobs.len(),
        unique_bytes,
        referenced_bytes: referenced,
        dedup_saved_bytes: referenced.saturating_sub(unique_bytes),
        downloaded_bytes: acquired.iter().map(|a| a.downloaded).sum(),
        seconds: elapsed.as_secs_f64(),
        reused: None,
    }
}
