//! Pulling from local sources: an OCI image layout folder, or an OCI archive (an uncompressed
//! tar of a layout, as `skopeo copy … oci-archive:FILE:TAG` writes). The archive is never
//! extracted: its members are indexed once and read with positioned reads.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use airlift_bundle::oci::{from_json_bounded, Descriptor, ImageIndex, MAX_MANIFEST_SIZE};
use airlift_bundle::schema::common::Platform;
use airlift_bundle::source::BlobSourceReader;
use airlift_bundle::{BlobSource, Digest, DirBlobStore, Progress};
use futures::future::BoxFuture;

use super::{plan, BlobRef, DocKind, FetchDoc, PullError, PulledImage};

/// The blobs of an OCI archive file, read in place: `blobs/sha256/<hex>` members by offset.
#[derive(Debug)]
pub struct ArchiveSource {
    path: PathBuf,
    file: File,
    members: HashMap<Digest, (u64, u64)>,
    index: Vec<u8>,
}

impl ArchiveSource {
    /// Indexes the archive at `path` (one pass over the tar headers; data is skipped by
    /// seeking) and reads its `index.json`.
    pub fn open(path: &Path) -> Result<Self, PullError> {
        let io_err = |source| PullError::Io {
            path: path.to_path_buf(),
            source,
        };
        let layout_err = |detail: String| PullError::Layout {
            path: path.to_path_buf(),
            detail,
        };
        let file = File::open(path).map_err(io_err)?;
        let mut magic = [0u8; 2];
        if file.read_at(&mut magic, 0).map_err(io_err)? == 2 && magic == [0x1f, 0x8b] {
            return Err(layout_err(
                "the archive is gzip-compressed; pass an uncompressed OCI archive".into(),
            ));
        }
        let mut archive = tar::Archive::new(file.try_clone().map_err(io_err)?);
        let mut members = HashMap::new();
        let mut index = None;
        for entry in archive.entries_with_seek().map_err(io_err)? {
            let mut entry = entry.map_err(io_err)?;
            let name = entry.path().map_err(io_err)?.to_string_lossy().to_string();
            let name = name.trim_start_matches("./");
            if name == "index.json" {
                let size = entry.size();
                if size > MAX_MANIFEST_SIZE {
                    return Err(layout_err(format!(
                        "index.json is larger than {MAX_MANIFEST_SIZE} bytes"
                    )));
                }
                let mut buf = Vec::new();
                entry.read_to_end(&mut buf).map_err(io_err)?;
                index = Some(buf);
            } else if let Some(hex) = name.strip_prefix("blobs/sha256/") {
                if hex.is_empty() {
                    continue;
                }
                let digest: Digest = format!("sha256:{hex}")
                    .parse()
                    .map_err(|_| layout_err(format!("member `{name}` is not named by a digest")))?;
                members.insert(digest, (entry.raw_file_position(), entry.size()));
            }
        }
        let index = index.ok_or_else(|| layout_err("no index.json in the archive".into()))?;
        Ok(Self {
            path: path.to_path_buf(),
            file,
            members,
            index,
        })
    }

    /// The archive's `index.json`.
    pub fn index_json(&self) -> &[u8] {
        &self.index
    }

    /// The archive's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl BlobSource for ArchiveSource {
    fn blob_size(&self, digest: &Digest) -> Option<u64> {
        self.members.get(digest).map(|(_, size)| *size)
    }

    fn read_blob_at(&self, digest: &Digest, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
        let (base, size) =
            self.members.get(digest).copied().ok_or_else(|| {
                io::Error::new(io::ErrorKind::NotFound, format!("no blob {digest}"))
            })?;
        let left = size.saturating_sub(offset);
        let n = usize::try_from(left).unwrap_or(usize::MAX).min(buf.len());
        if n == 0 {
            return Ok(0);
        }
        self.file.read_at(&mut buf[..n], base + offset)
    }
}

/// An image resolved from an OCI layout folder or archive: its manifests (and a
/// single-platform image's config) are in the store; its other blobs are listed in
/// [`PulledImage::blobs`] and read from [`LocalImage::source`] when needed, so a build can
/// copy them straight into a bundle instead of into the store first.
pub struct LocalImage {
    /// The image. Unlike a pull, only its manifests (and a single-platform config) are in the
    /// store; `bytes_transferred` is 0.
    pub image: PulledImage,
    /// The layout's blobs or the archive's members, read in place (not hashed: a reader must
    /// check each blob against its digest, unless the source proves it,
    /// [`BlobSource::proven_range`]).
    pub source: Arc<dyn BlobSource>,
    /// The layout folder or archive file, for messages.
    pub path: PathBuf,
}

impl std::fmt::Debug for LocalImage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalImage")
            .field("image", &self.image)
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

/// Resolves the image tagged `tag` (or the only image when `None`) in the OCI layout folder
/// `dir`, keeping exactly `platforms`: its manifests go into `store`, its blobs stay where
/// they are (each is checked to exist with the size its manifest gives). When `store` records
/// proofs, the layout's blob files are proven in the same proof store (never in the layout), so
/// a blob hashed once is copied without hashing while its file is unchanged.
pub async fn resolve_layout(
    dir: &Path,
    tag: Option<&str>,
    store: &DirBlobStore,
    platforms: &[Platform],
) -> Result<LocalImage, PullError> {
    let index_path = dir.join("index.json");
    let index = read_index(&index_path)?;
    let mut blobs = DirBlobStore::open(dir.join("blobs")).map_err(|e| PullError::Layout {
        path: dir.to_path_buf(),
        detail: e.to_string(),
    })?;
    if let Some(proofs) = store.proof_store() {
        blobs = blobs.with_proof_store(proofs.clone());
    }
    let reference = format!("oci:{}:{}", dir.display(), tag.unwrap_or(""));
    resolve_local(
        Arc::new(blobs),
        dir,
        &index,
        tag,
        &reference,
        &format!("oci:{}", dir.display()),
        store,
        platforms,
    )
    .await
}

/// Resolves the image tagged `tag` (or the only image when `None`) in the OCI archive `path`,
/// keeping exactly `platforms`: its manifests go into `store`, its blobs are read in place.
pub async fn resolve_archive(
    path: &Path,
    tag: Option<&str>,
    store: &DirBlobStore,
    platforms: &[Platform],
) -> Result<LocalImage, PullError> {
    let owned = path.to_path_buf();
    let src = tokio::task::spawn_blocking(move || ArchiveSource::open(&owned))
        .await
        .map_err(|e| PullError::Io {
            path: path.to_path_buf(),
            source: io::Error::other(e),
        })??;
    let index = src.index_json().to_vec();
    let reference = format!("oci-archive:{}:{}", path.display(), tag.unwrap_or(""));
    resolve_local(
        Arc::new(src),
        path,
        &index,
        tag,
        &reference,
        &format!("oci-archive:{}", path.display()),
        store,
        platforms,
    )
    .await
}

/// Pulls the image tagged `tag` (or the only image when `None`) from the OCI layout folder
/// `dir` into `store`, keeping exactly `platforms`.
pub async fn pull_layout(
    dir: &Path,
    tag: Option<&str>,
    store: &DirBlobStore,
    platforms: &[Platform],
    progress: &dyn Progress,
) -> Result<PulledImage, PullError> {
    let local = resolve_layout(dir, tag, store, platforms).await?;
    copy_into(local, store, progress).await
}

/// Pulls the image tagged `tag` (or the only image when `None`) from the OCI archive `path`
/// into `store`, keeping exactly `platforms`. The archive is read in place.
pub async fn pull_archive(
    path: &Path,
    tag: Option<&str>,
    store: &DirBlobStore,
    platforms: &[Platform],
    progress: &dyn Progress,
) -> Result<PulledImage, PullError> {
    let local = resolve_archive(path, tag, store, platforms).await?;
    copy_into(local, store, progress).await
}

/// Reads a layout's `index.json`, refusing one larger than a manifest may be.
fn read_index(path: &Path) -> Result<Vec<u8>, PullError> {
    let io_err = |source| PullError::Io {
        path: path.to_path_buf(),
        source,
    };
    let file = File::open(path).map_err(io_err)?;
    let mut index = Vec::new();
    file.take(MAX_MANIFEST_SIZE + 1)
        .read_to_end(&mut index)
        .map_err(io_err)?;
    if index.len() as u64 > MAX_MANIFEST_SIZE {
        return Err(PullError::Layout {
            path: path.to_path_buf(),
            detail: format!("index.json is larger than {MAX_MANIFEST_SIZE} bytes"),
        });
    }
    Ok(index)
}

struct LocalFetch {
    src: Arc<dyn BlobSource>,
    path: PathBuf,
}

impl LocalFetch {
    fn missing(&self, digest: &str) -> PullError {
        PullError::Layout {
            path: self.path.clone(),
            detail: format!("blob {digest} is referenced but missing"),
        }
    }
}

impl FetchDoc for LocalFetch {
    fn fetch_doc<'a>(
        &'a self,
        desc: &'a Descriptor,
        kind: DocKind,
    ) -> BoxFuture<'a, Result<Vec<u8>, PullError>> {
        Box::pin(async move {
            let digest = &desc.digest;
            let size = self
                .src
                .blob_size(digest)
                .ok_or_else(|| self.missing(&digest.to_string()))?;
            if size > kind.limit() {
                return Err(PullError::Layout {
                    path: self.path.clone(),
                    detail: format!("document {digest} is larger than {} bytes", kind.limit()),
                });
            }
            let mut out = Vec::new();
            BlobSourceReader::range(self.src.as_ref(), digest.clone(), 0, size)
                .read_to_end(&mut out)
                .map_err(|source| PullError::Io {
                    path: self.path.clone(),
                    source,
                })?;
            Ok(out)
        })
    }
}

#[allow(clippy::too_many_arguments)]
async fn resolve_local(
    src: Arc<dyn BlobSource>,
    path: &Path,
    index: &[u8],
    tag: Option<&str>,
    reference: &str,
    pinned_prefix: &str,
    store: &DirBlobStore,
    platforms: &[Platform],
) -> Result<LocalImage, PullError> {
    let layout_err = |detail: String| PullError::Layout {
        path: path.to_path_buf(),
        detail,
    };
    let idx: ImageIndex = from_json_bounded(index, MAX_MANIFEST_SIZE)
        .map_err(|e| layout_err(format!("index.json is invalid: {e}")))?;
    let names: Vec<&str> = idx
        .manifests
        .iter()
        .filter_map(Descriptor::ref_name)
        .collect();
    let entry = match tag {
        Some(t) => idx
            .manifests
            .iter()
            .find(|e| e.ref_name() == Some(t))
            .ok_or_else(|| {
                layout_err(format!(
                    "no image tagged `{t}` (tags: {})",
                    names.join(", ")
                ))
            })?,
        None if idx.manifests.len() == 1 => &idx.manifests[0],
        None => {
            return Err(layout_err(format!(
                "holds {} images; name one with :TAG (tags: {})",
                idx.manifests.len(),
                names.join(", ")
            )))
        }
    };
    let fetch = LocalFetch {
        src: src.clone(),
        path: path.to_path_buf(),
    };
    let top = fetch.fetch_doc(entry, DocKind::Manifest).await?;
    let source_digest = Digest::of_bytes(&top);
    if source_digest != entry.digest {
        return Err(layout_err(format!(
            "blob {} does not match its digest",
            entry.digest
        )));
    }
    let media = Some(entry.media_type.as_str()).filter(|m| !m.is_empty());
    let plan = plan(&fetch, store, reference, top, media, platforms).await?;

    // Every blob the store lacks must be in the source, with the size its manifest gives.
    if let Some(b) = plan
        .blobs
        .iter()
        .find(|b| !store.contains(&b.digest) && src.blob_size(&b.digest) != Some(b.size))
    {
        return Err(fetch.missing(&b.digest.to_string()));
    }
    let pinned = format!("{pinned_prefix}@{source_digest}");
    Ok(LocalImage {
        image: plan.into_image(reference.to_string(), pinned, source_digest, store),
        source: src,
        path: path.to_path_buf(),
    })
}

/// Copies the blobs of a resolved local image that `store` lacks into it, hashing each.
async fn copy_into(
    local: LocalImage,
    store: &DirBlobStore,
    progress: &dyn Progress,
) -> Result<PulledImage, PullError> {
    let LocalImage {
        mut image,
        source: src,
        path,
    } = local;
    let reference = image.reference.clone();
    let missing: Vec<BlobRef> = image
        .blobs
        .iter()
        .filter(|b| !store.contains(&b.digest))
        .cloned()
        .collect();
    progress.start(&reference, Some(missing.iter().map(|b| b.size).sum()));
    let mut transferred = 0;
    for b in &missing {
        let src = src.clone();
        let store2 = store.clone();
        let blob = b.clone();
        let image = reference.clone();
        let n = tokio::task::spawn_blocking(move || {
            let mut reader =
                BlobSourceReader::range(src.as_ref(), blob.digest.clone(), 0, blob.size);
            store2
                .put(&blob.digest, &mut reader)
                .map_err(|source| PullError::Store {
                    image,
                    digest: blob.digest.clone(),
                    source,
                })
        })
        .await
        .map_err(|e| PullError::Io {
            path: path.clone(),
            source: io::Error::other(e),
        })??;
        transferred += n;
        progress.advance(&reference, n);
    }
    progress.finish(&reference);
    image.bytes_transferred = transferred;
    Ok(image)
}
