//! Writing a planned bundle: blobs the cache holds are copied into their place (kernel-side,
//! without hashing, when the cache proves them), blobs it lacks are downloaded straight into
//! their place, hashed on the way, and then kept in the cache with a kernel-side copy (unless the
//! build keeps no cache). So a downloaded byte is received once, hashed once and written into
//! the bundle once.

use std::collections::BTreeMap;
use std::sync::Arc;

use airlift_bundle::{BundleFile, Digest, DirBlobStore, Progress, WriteError};
use airlift_registry::pull::{BlobRef, PullError, RegistryPuller, ResolvedImage};
use anyhow::{Context, Result};
use futures::stream::{self, StreamExt, TryStreamExt};

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
pub(crate) enum KeepLayers {
    /// Copied into the cache (kernel-side) once verified, for the next build.
    InCache,
    /// Written into the bundle only (`--no-cache`).
    No,
}

/// Where a planned bundle's blobs come from and go to.
pub(crate) struct Assembly<'a> {
    /// The bundle being written.
    pub file: &'a BundleFile,
    /// Downloads blobs.
    pub puller: &'a RegistryPuller,
    /// The blob cache.
    pub cache: &'a DirBlobStore,
    /// Whether downloaded blobs are kept in the cache.
    pub keep: KeepLayers,
    /// How many blobs are downloaded at once.
    pub concurrency: usize,
    /// Where bytes are reported.
    pub progress: Arc<dyn Progress>,
}

impl Assembly<'_> {
    /// Fills every blob of the bundle: `cached` from the cache, `fetches` from their registries,
    /// at the same time. Returns the bytes downloaded per owner.
    pub(crate) async fn run(
        &self,
        cached: Vec<Digest>,
        fetches: Vec<Fetch>,
    ) -> Result<BTreeMap<usize, u64>> {
        let Self {
            file,
            puller,
            cache,
            keep,
            concurrency,
            ..
        } = *self;
        let progress = self.progress.clone();
        let copy = {
            let file = file.clone();
            let cache = cache.clone();
            let progress = progress.clone();
            async move {
                if cached.is_empty() {
                    return Ok(());
                }
                let total = cached
                    .iter()
                    .filter_map(|d| airlift_bundle::BlobSource::blob_size(&cache, d))
                    .sum();
                progress.start("write", Some(total));
                tokio::task::spawn_blocking(move || {
                    let r = file.fill_from(&cached, &cache, progress.as_ref(), "write", 2);
                    progress.finish("write");
                    r.map_err(|e| {
                        // A cache entry whose bytes no longer match its digest (a disk fault, or a
                        // power loss before the data reached the disk) is removed, so the next
                        // build fetches it again.
                        if let WriteError::SourceCorrupt { digest, .. } = &e {
                            let _ = std::fs::remove_file(cache.path_of(digest));
                        }
                        anyhow::Error::new(e)
                    })
                })
                .await
                .context("the bundle writer stopped unexpectedly")?
            }
        };

        let mut totals: BTreeMap<&str, u64> = BTreeMap::new();
        for f in &fetches {
            *totals.entry(f.image.image.reference.as_str()).or_default() += f.blob.size;
        }
        for (label, total) in &totals {
            progress.start(label, Some(*total));
        }
        let download = stream::iter(fetches.iter())
            .map(|f| fetch_one(file, puller, cache, keep, f, progress.as_ref()))
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

/// Downloads one blob into its place, checks it, and keeps a copy in the cache.
async fn fetch_one(
    file: &BundleFile,
    puller: &RegistryPuller,
    cache: &DirBlobStore,
    keep: KeepLayers,
    f: &Fetch,
    progress: &dyn Progress,
) -> Result<(usize, u64)> {
    let image = &f.image.image.reference;
    let mut slot = file.slot_writer(&f.blob.digest)?;
    let bytes = puller
        .fetch_blob(&f.image, &f.blob, &mut slot, progress, image)
        .await
        .with_context(|| format!("cannot get image `{image}`"))?;
    slot.finish().map_err(|e| match e {
        WriteError::Mismatch { digest, actual, .. } => anyhow::Error::new(PullError::Corrupt {
            image: image.clone(),
            digest,
            actual,
        })
        .context(format!("cannot get image `{image}`")),
        other => anyhow::Error::new(other),
    })?;
    if keep == KeepLayers::InCache {
        let file = file.clone();
        let cache = cache.clone();
        let digest = f.blob.digest.clone();
        let kept = tokio::task::spawn_blocking(move || {
            let (src, offset, size) = file
                .blob_range(&digest)
                .ok_or_else(|| anyhow::anyhow!("blob {digest} is not written"))?;
            cache
                .adopt(&digest, src, offset, size)
                .map_err(anyhow::Error::new)
        })
        .await
        .context("the cache writer stopped unexpectedly")?;
        // The bundle is what was asked for; a blob the cache could not keep is fetched again
        // next time.
        if let Err(e) = kept {
            progress.message(&format!(
                "cannot keep blob {} in the cache: {}",
                f.blob.digest,
                airlift_bundle::error_chain(e.as_ref())
            ));
        }
    }
    Ok((f.owner, bytes))
}
