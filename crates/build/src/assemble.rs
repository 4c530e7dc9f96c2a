//! Writing a planned bundle: blobs the cache holds are copied into their place (kernel-side,
//! without hashing, when the cache proves them), blobs it lacks are downloaded straight into
//! their place, hashed on the way, and then kept in the cache (unless the build keeps no
//! cache): where the cache can hold the bundle by hard link (same filesystem), by recording
//! their range of it, with no copy; otherwise with a kernel-side copy. So a downloaded byte is
//! received once, hashed once and written once. Blobs of OCI layouts and archives the cache
//! lacks are read where they are, hashed and written into their place, and not kept: read
//! once, written once.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use airlift_bundle::held::HeldBundle;
use airlift_bundle::proof::ProofKey;
use airlift_bundle::{BlobSource, BundleFile, Digest, DirBlobStore, Progress, WriteError};
use airlift_registry::pull::{BlobRef, LocalImage, PullError, RegistryPuller, ResolvedImage};
use futures::stream::{self, StreamExt, TryStreamExt};

use crate::error::{BuildError, ImageError};

/// A blob to download: which resolved image it comes from (the first that lists it).
pub(crate) struct Fetch {
    /// Index of the image in the build's list, for the bytes it downloaded.
    pub owner: usize,
    /// The image it is fetched through (its registry and repository).
    pub image: Arc<ResolvedImage>,
    /// The blob.
    pub blob: BlobRef,
}

/// What the cache does with downloaded blobs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeepLayers {
    /// Kept in the cache once verified, for the next build: held in the bundle itself when the
    /// cache holds bundles and is on the bundle's filesystem, else copied (kernel-side).
    InCache,
    /// Written into the bundle only (`--no-cache`).
    No,
}

/// Where the blobs that are not downloaded are read: the cache, or (for blobs the cache lacks)
/// the OCI layout or archive an image was resolved from.
pub(crate) struct Sources {
    cache: DirBlobStore,
    local: HashMap<Digest, (Arc<dyn BlobSource>, PathBuf)>,
}

impl Sources {
    /// The cache alone.
    pub(crate) fn new(cache: DirBlobStore) -> Self {
        Self {
            cache,
            local: HashMap::new(),
        }
    }

    /// Reads the blobs of `image` that the cache lacks from its layout or archive.
    pub(crate) fn add_local(&mut self, image: &LocalImage) {
        for blob in &image.image.blobs {
            if !self.local.contains_key(&blob.digest) && !self.cache.contains(&blob.digest) {
                let entry = (image.source.clone(), image.path.clone());
                self.local.insert(blob.digest.clone(), entry);
            }
        }
    }

    /// The layout or archive `digest` is read from, when it is not read from the cache.
    pub(crate) fn local_path(&self, digest: &Digest) -> Option<&Path> {
        self.local.get(digest).map(|(_, path)| path.as_path())
    }

    /// The source `digest` is read from.
    fn source_of(&self, digest: &Digest) -> &dyn BlobSource {
        match self.local.get(digest) {
            Some((source, _)) => source.as_ref(),
            None => &self.cache,
        }
    }
}

/// Each blob is read, and proven, by the source it comes from: the cache, or a layout whose
/// blob files are proven in the cache's proof store. An archive's members are hashed every time.
impl BlobSource for Sources {
    fn blob_size(&self, digest: &Digest) -> Option<u64> {
        self.source_of(digest).blob_size(digest)
    }

    fn read_blob_at(&self, digest: &Digest, offset: u64, buf: &mut [u8]) -> std::io::Result<usize> {
        self.source_of(digest).read_blob_at(digest, offset, buf)
    }

    fn proven_range(&self, digest: &Digest) -> Option<airlift_bundle::ProvenRange> {
        self.source_of(digest).proven_range(digest)
    }

    fn proof_token(&self, digest: &Digest) -> Option<ProofKey> {
        self.source_of(digest).proof_token(digest)
    }

    fn record_proof(&self, digest: &Digest, token: &ProofKey) {
        self.source_of(digest).record_proof(digest, token);
    }
}

/// Where a planned bundle's blobs come from and go to.
pub(crate) struct Assembly<'a> {
    /// The bundle file's final path, for errors.
    pub path: &'a Path,
    /// The bundle being written.
    pub file: &'a BundleFile,
    /// Downloads blobs.
    pub puller: &'a RegistryPuller,
    /// Where blobs that are not downloaded are read: the cache, and local layouts and archives.
    /// Downloaded blobs are kept in its cache.
    pub sources: Arc<Sources>,
    /// Whether downloaded blobs are kept in the cache.
    pub keep: KeepLayers,
    /// The cache's hold on the bundle, when it keeps downloaded blobs there without a copy.
    pub held: Option<&'a HeldBundle>,
    /// How many blobs are downloaded at once.
    pub concurrency: usize,
    /// Where bytes are reported.
    pub progress: Arc<dyn Progress>,
}

impl Assembly<'_> {
    /// Fills every blob of the bundle: `cached` from the cache or a local layout or archive,
    /// `fetches` from their registries, at the same time. Returns the bytes downloaded per
    /// owner.
    pub(crate) async fn run(
        &self,
        cached: Vec<Digest>,
        fetches: Vec<Fetch>,
    ) -> Result<BTreeMap<usize, u64>, BuildError> {
        let Self {
            path,
            file,
            puller,
            keep,
            held,
            concurrency,
            ..
        } = *self;
        let cache = &self.sources.cache;
        let progress = self.progress.clone();
        let copy = {
            let path = path.to_path_buf();
            let file = file.clone();
            let sources = self.sources.clone();
            let progress = progress.clone();
            async move {
                if cached.is_empty() {
                    return Ok(());
                }
                let total = cached.iter().filter_map(|d| sources.blob_size(d)).sum();
                progress.start("write", Some(total));
                tokio::task::spawn_blocking(move || {
                    let r =
                        file.fill_from(&cached, sources.as_ref(), progress.as_ref(), "write", 2);
                    progress.finish("write");
                    r.map_err(|e| explain_fill_error(e, &sources, &path))
                })
                .await
                .map_err(|_| BuildError::Worker("bundle writer"))?
            }
        };

        let mut totals: BTreeMap<&str, u64> = BTreeMap::new();
        for f in &fetches {
            *totals.entry(f.image.image.reference.as_str()).or_default() += f.blob.size;
        }
        for (label, total) in &totals {
            progress.start(label, Some(*total));
        }
        let keep = match (keep, held) {
            (KeepLayers::No, _) => Keep::No,
            (KeepLayers::InCache, Some(held)) => Keep::Held(held),
            (KeepLayers::InCache, None) => Keep::Copy(cache),
        };
        let download = stream::iter(fetches.iter())
            .map(|f| fetch_one(path, file, puller, keep, f, progress.as_ref()))
            .buffer_unordered(concurrency.max(1))
            .try_fold(
                BTreeMap::new(),
                |mut per_owner, (owner, bytes)| async move {
                    *per_owner.entry(owner).or_insert(0u64) += bytes;
                    Ok(per_owner)
                },
            );
        let (per_owner, ()) = futures::try_join!(download, copy)?;
        for label in totals.keys() {
            progress.finish(label);
        }
        Ok(per_owner)
    }
}

/// Says which source a failed fill came from. A blob of a layout or archive that does not match
/// its digest is a damaged source (or one changed while the build read it), named by its path.
/// A cache entry whose bytes no longer match (a disk fault, or a power loss before the data
/// reached the disk) is removed, so the next build fetches it again.
fn explain_fill_error(e: WriteError, sources: &Sources, bundle: &Path) -> BuildError {
    if let WriteError::SourceCorrupt { digest, actual } = &e {
        if let Some(path) = sources.local_path(digest) {
            return BuildError::Source {
                path: bundle.to_path_buf(),
                source: Box::new(PullError::Layout {
                    path: path.to_path_buf(),
                    detail: format!(
                        "blob {digest} does not match its digest: its content hashes to {actual}"
                    ),
                }),
            };
        }
        sources.cache.forget(digest);
    }
    BuildError::Write {
        path: bundle.to_path_buf(),
        source: Box::new(e),
    }
}

/// How a downloaded blob is kept for the next build.
#[derive(Clone, Copy)]
enum Keep<'a> {
    /// Not at all.
    No,
    /// As its range of the bundle, which the cache holds.
    Held(&'a HeldBundle),
    /// Copied into the cache.
    Copy(&'a DirBlobStore),
}

/// Downloads one blob into its place, checks it, and keeps it in the cache.
async fn fetch_one(
    bundle: &Path,
    file: &BundleFile,
    puller: &RegistryPuller,
    keep: Keep<'_>,
    f: &Fetch,
    progress: &dyn Progress,
) -> Result<(usize, u64), BuildError> {
    let image = &f.image.image.reference;
    let image_err = |e: PullError| BuildError::Image {
        image: image.clone(),
        source: ImageError::from(e),
    };
    let write_err = |source| BuildError::Write {
        path: bundle.to_path_buf(),
        source: Box::new(source),
    };
    let mut slot = file.slot_writer(&f.blob.digest).map_err(write_err)?;
    let bytes = puller
        .fetch_blob(&f.image, &f.blob, &mut slot, progress, image)
        .await
        .map_err(image_err)?;
    slot.finish().map_err(|e| match e {
        WriteError::Mismatch { digest, actual, .. } => image_err(PullError::Corrupt {
            image: image.clone(),
            digest,
            actual,
        }),
        other => write_err(other),
    })?;
    let digest = f.blob.digest.clone();
    let kept = match keep {
        Keep::No => Some(Ok(())),
        // A few bytes written: no copy.
        Keep::Held(held) => file
            .blob_range(&digest)
            .map(|(_, offset, size)| held.keep(&digest, offset, size)),
        Keep::Copy(cache) => {
            let file = file.clone();
            let cache = cache.clone();
            let digest = digest.clone();
            tokio::task::spawn_blocking(move || {
                let (src, offset, size) = file.blob_range(&digest)?;
                Some(cache.adopt(&digest, src, offset, size))
            })
            .await
            .map_err(|_| BuildError::Worker("cache writer"))?
        }
    };
    // The bundle is what was asked for; a blob the cache could not keep is fetched again next
    // time.
    let why = match kept {
        None => Some("it is not written in the bundle".to_string()),
        Some(Err(e)) => Some(airlift_bundle::error_chain(&e)),
        Some(Ok(())) => None,
    };
    if let Some(why) = why {
        progress.message(&format!("cannot keep blob {digest} in the cache: {why}"));
    }
    Ok((f.owner, bytes))
}
