//! Pulling images into the content-addressed [`DirBlobStore`]: from a registry
//! ([`RegistryPuller`]), an OCI layout folder ([`pull_layout`]) or an OCI archive file
//! ([`pull_archive`]). A build resolves images first and writes their blobs straight into the
//! bundle: [`RegistryPuller::resolve`] for registries, [`resolve_layout`] and
//! [`resolve_archive`] for local sources (their blobs are read in place).
//!
//! Every source follows the same rules:
//! - tags resolve to digests, and the result records the pinned digest;
//! - manifests and configs (small, capped at [`MAX_MANIFEST_SIZE`] and [`MAX_CONFIG_SIZE`],
//!   their JSON nesting bounded) are verified and stored by digest, and walked with the one
//!   graph walker, [`airlift_bundle::walk::Walker`]; blobs stream into the store, hashed while
//!   written, never whole in memory;
//! - a blob already in the store is not transferred again;
//! - exactly the required platforms are kept: an index with more is rewritten (same media type,
//!   the source digest recorded apart); a missing platform is [`PullError::PlatformMissing`],
//!   naming the image and the platform. A single-platform image is checked through its config.

mod local;
mod remote;
pub mod select;

use std::path::PathBuf;

use airlift_bundle::oci::{
    is_index_media_type, Descriptor, Parsed, MAX_CONFIG_SIZE, MAX_MANIFEST_SIZE,
};
use airlift_bundle::schema::common::Platform;
use airlift_bundle::walk::{WalkError, Walker};
use airlift_bundle::{Digest, DirBlobStore, StoreError};
use futures::future::BoxFuture;

pub use local::{
    pull_archive, pull_layout, resolve_archive, resolve_layout, ArchiveSource, LocalImage,
};
pub use remote::{BlobSink, RegistryPuller, ResolvedImage};

use crate::auth::AuthError;
use crate::error::RegistryError;
use crate::retry::{Retry, Retryable};
use crate::tls::TlsError;

/// A blob (or manifest) of a pulled image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobRef {
    /// Its digest.
    pub digest: Digest,
    /// Its size in bytes.
    pub size: u64,
    /// Its media type.
    pub media_type: String,
}

/// What a pull produced. Everything listed is in the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PulledImage {
    /// The reference as given (`registry/repo:tag`, `oci:DIR:TAG`, `oci-archive:FILE:TAG`).
    pub reference: String,
    /// The pinned source: `host/repo@sha256:…` (for local sources `oci:DIR@sha256:…`), with
    /// the source's own top-level digest.
    pub pinned: String,
    /// The top-level manifest or index kept: its digest, size and media type. When the source
    /// index had more platforms than required this is the rewritten index.
    pub top: BlobRef,
    /// The source's top-level digest (equal to `top.digest` unless the index was filtered).
    pub source_digest: Digest,
    /// The platforms the image carries, in manifest order.
    pub platforms: Vec<Platform>,
    /// Every manifest kept: the top-level one first, then per-platform manifests.
    pub manifests: Vec<BlobRef>,
    /// Every config and layer blob, once each, in manifest order.
    pub blobs: Vec<BlobRef>,
    /// Bytes actually transferred for this image (0 when everything was cached).
    pub bytes_transferred: u64,
    /// Blobs that were already in the store.
    pub blobs_cached: usize,
}

/// Errors from pulling an image.
#[derive(Debug, thiserror::Error)]
pub enum PullError {
    /// Talking to the registry failed.
    #[error(transparent)]
    Registry(#[from] RegistryError),
    /// The image does not provide a required platform.
    #[error("image `{image}` has no `{platform}` variant (it has: {available})")]
    PlatformMissing {
        /// The image reference.
        image: String,
        /// The missing platform.
        platform: Platform,
        /// The platforms it has.
        available: String,
    },
    /// The image reference does not parse.
    #[error("invalid image reference `{reference}`")]
    Reference {
        /// What was given.
        reference: String,
        /// The parse failure.
        #[source]
        source: airlift_bundle::reference::ReferenceError,
    },
    /// TLS could not be set up.
    #[error("cannot set up TLS for pulling")]
    Tls(#[from] TlsError),
    /// Credentials could not be read.
    #[error("cannot find credentials for registry `{registry}`")]
    Auth {
        /// The registry.
        registry: String,
        /// The cause.
        #[source]
        source: AuthError,
    },
    /// A manifest or index is missing, damaged, too large, too deeply nested or unsupported.
    #[error(transparent)]
    Walk(#[from] WalkError),
    /// A manifest, index or config is invalid or unsupported.
    #[error("image `{image}` has an invalid or unsupported manifest: {detail}")]
    BadManifest {
        /// The image reference.
        image: String,
        /// What is wrong.
        detail: String,
    },
    /// Writing into the blob store failed (including a digest mismatch of the received bytes).
    #[error("storing blob {digest} of image `{image}` failed")]
    Store {
        /// The image reference.
        image: String,
        /// The blob.
        digest: Digest,
        /// The cause.
        #[source]
        source: StoreError,
    },
    /// The registry sent a blob whose bytes do not hash to its digest.
    #[error("the registry sent blob {digest} of image `{image}` with content that hashes to {actual}: the bytes are not that blob")]
    Corrupt {
        /// The image reference.
        image: String,
        /// The blob the manifest names.
        digest: Digest,
        /// What the received bytes hash to.
        actual: Digest,
    },
    /// A downloaded blob could not be written where it goes (the cache, or the bundle being
    /// built): the disk, not the registry.
    #[error("cannot write the downloaded blob into `{path}`")]
    Write {
        /// The cache folder or the bundle.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A local file could not be read.
    #[error("cannot read `{path}`")]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// An OCI layout or archive is malformed or lacks the requested tag or a blob.
    #[error("OCI layout `{path}`: {detail}")]
    Layout {
        /// The folder or archive.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },
}

impl PullError {
    /// How the operator can fix this.
    pub fn hint(&self) -> String {
        match self {
            Self::Registry(e) => e.hint(),
            Self::PlatformMissing { platform, .. } => format!(
                "publish a `{platform}` build of the image (e.g. `docker buildx build \
                 --platform {platform}`), or drop `{platform}` from requirements.platforms"
            ),
            Self::Reference { .. } => {
                "write references as `registry[:port]/repository:tag` or `…@sha256:<64 hex>`"
                    .to_string()
            }
            Self::Tls(e) => e.hint().to_string(),
            Self::Auth { source, .. } => source.hint().to_string(),
            Self::BadManifest { .. } | Self::Walk(_) => {
                "rebuild or re-push the image with a current tool (OCI or docker schema 2)"
                    .to_string()
            }
            Self::Store { .. } => "check free disk space and permissions of the cache \
                                   folder; a digest mismatch means the source sent corrupt \
                                   data: re-run to retry"
                .to_string(),
            Self::Corrupt { .. } => "the registry's copy of the blob is damaged or was replaced: \
                                     push the image to the registry again, then build again"
                .to_string(),
            Self::Io { .. } => "check that the path exists and is readable".to_string(),
            Self::Write { .. } => "check free disk space and permissions there".to_string(),
            Self::Layout { .. } => "check the layout with `skopeo inspect oci:DIR:TAG`; \
                                    archives must be uncompressed OCI archives \
                                    (`skopeo copy … oci-archive:FILE:TAG`)"
                .to_string(),
        }
    }

    /// True when retrying the whole operation may help.
    pub fn is_transient(&self) -> bool {
        self.retry() != Retry::Never
    }
}

impl Retryable for PullError {
    /// Registry failures retry as [`RegistryError`] says; nothing else is transient.
    fn retry(&self) -> Retry {
        match self {
            Self::Registry(e) => e.retry(),
            _ => Retry::Never,
        }
    }
}

/// Which kind of small document is fetched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DocKind {
    /// A manifest or index (fetched from `/manifests/` on a registry).
    Manifest,
    /// An image config (a blob).
    Config,
}

impl DocKind {
    /// The most bytes read into memory for this kind.
    pub(crate) fn limit(self) -> u64 {
        match self {
            DocKind::Manifest => MAX_MANIFEST_SIZE,
            DocKind::Config => MAX_CONFIG_SIZE,
        }
    }
}

/// Fetches small documents (manifests, configs) from a source, by digest.
pub(crate) trait FetchDoc: Sync {
    /// Fetches the document, at most `kind.limit()` bytes; the caller verifies its digest and
    /// size.
    fn fetch_doc<'a>(
        &'a self,
        desc: &'a Descriptor,
        kind: DocKind,
    ) -> BoxFuture<'a, Result<Vec<u8>, PullError>>;
}

/// What to store and transfer for one image, once its manifests are known.
#[derive(Debug)]
pub(crate) struct Plan {
    pub top: BlobRef,
    pub platforms: Vec<Platform>,
    pub manifests: Vec<BlobRef>,
    /// Configs and layers in manifest order, unique.
    pub blobs: Vec<BlobRef>,
}

impl Plan {
    /// The image this plan resolves to, nothing transferred yet; `pinned` is the source pinned by
    /// its digest `source_digest`, and `store` tells which blobs it already holds.
    pub(crate) fn into_image(
        self,
        reference: String,
        pinned: String,
        source_digest: Digest,
        store: &DirBlobStore,
    ) -> PulledImage {
        let blobs_cached = self
            .blobs
            .iter()
            .filter(|b| store.contains(&b.digest))
            .count();
        PulledImage {
            reference,
            pinned,
            top: self.top,
            source_digest,
            platforms: self.platforms,
            manifests: self.manifests,
            blobs: self.blobs,
            bytes_transferred: 0,
            blobs_cached,
        }
    }
}

fn bad(image: &str, detail: impl Into<String>) -> PullError {
    PullError::BadManifest {
        image: image.to_string(),
        detail: detail.into(),
    }
}

fn store_doc(store: &DirBlobStore, image: &str, d: &Digest, bytes: &[u8]) -> Result<(), PullError> {
    if store.contains(d) {
        return Ok(());
    }
    store
        .put(d, &mut &bytes[..])
        .map(|_| ())
        .map_err(|source| PullError::Store {
            image: image.to_string(),
            digest: d.clone(),
            source,
        })
}

/// Reads a document from the store when cached, otherwise fetches, verifies and stores it.
async fn get_doc(
    fetch: &dyn FetchDoc,
    store: &DirBlobStore,
    image: &str,
    desc: &Descriptor,
    kind: DocKind,
) -> Result<Vec<u8>, PullError> {
    let digest = &desc.digest;
    if desc.size > kind.limit() {
        return Err(bad(
            image,
            format!(
                "{digest} is {} bytes, more than the {} allowed for a manifest or config",
                desc.size,
                kind.limit()
            ),
        ));
    }
    if store.contains(digest) {
        if let Ok(bytes) = std::fs::read(store.path_of(digest)) {
            return Ok(bytes);
        }
    }
    let bytes = fetch.fetch_doc(desc, kind).await?;
    let actual = Digest::of_bytes(&bytes);
    if &actual != digest {
        return Err(bad(
            image,
            format!("document {digest} hashes to {actual}: the source sent the wrong content"),
        ));
    }
    store_doc(store, image, digest, &bytes)?;
    Ok(bytes)
}

fn blob_ref(d: &Descriptor) -> BlobRef {
    BlobRef {
        digest: d.digest.clone(),
        size: d.size,
        media_type: d.media_type.clone(),
    }
}

/// Works out what an image consists of, from its top-level document, keeping exactly
/// `required` platforms. Stores every manifest (and, for single-platform images, the config).
pub(crate) async fn plan(
    fetch: &dyn FetchDoc,
    store: &DirBlobStore,
    image: &str,
    top_bytes: Vec<u8>,
    top_hint: Option<&str>,
    required: &[Platform],
) -> Result<Plan, PullError> {
    let parsed = Parsed::from_slice(top_hint.unwrap_or(""), &top_bytes)
        .map_err(|e| bad(image, e.to_string()))?;
    let media_type = parsed.media_type().to_string();
    let (top_kept, platforms) = match parsed {
        Parsed::Manifest(m) => {
            let cfg = get_doc(fetch, store, image, &m.config, DocKind::Config).await?;
            let have = select::config_platform(&cfg).map_err(|e| bad(image, e))?;
            if let Err(platform) = select::check_single(&have, required) {
                return Err(PullError::PlatformMissing {
                    image: image.to_string(),
                    platform,
                    available: format!("only {have}"),
                });
            }
            (top_bytes, vec![have])
        }
        Parsed::Index(index) => {
            let sel = select::select_platforms(&index.manifests, required).map_err(
                |(platform, available)| PullError::PlatformMissing {
                    image: image.to_string(),
                    platform,
                    available,
                },
            )?;
            let platforms = sel
                .kept
                .iter()
                .filter_map(|e| e.platform.as_ref().map(|p| p.platform_or_unknown()))
                .collect();
            if sel.filtered {
                let kept =
                    select::filtered_index(&top_bytes, &sel.kept).map_err(|e| bad(image, e))?;
                (kept, platforms)
            } else {
                (top_bytes, platforms)
            }
        }
    };
    let top_digest = Digest::of_bytes(&top_kept);
    let top = Descriptor::new(media_type, top_digest.clone(), top_kept.len() as u64);
    let mut walker = Walker::new(image, top);
    // The top document is in hand (and already checked against the platforms).
    if walker.next_manifest().is_some() {
        walker.visit(&top_kept)?;
        store_doc(store, image, &top_digest, &top_kept)?;
    }
    while let Some(desc) = walker.next_manifest() {
        let desc = desc.clone();
        if is_index_media_type(&desc.media_type) {
            return Err(bad(image, "nested indexes are not supported"));
        }
        let bytes = get_doc(fetch, store, image, &desc, DocKind::Manifest).await?;
        if walker.visit(&bytes)?.is_index() {
            return Err(bad(image, "nested indexes are not supported"));
        }
    }
    let graph = walker.finish();
    Ok(Plan {
        top: blob_ref(&graph.manifests[0].descriptor),
        platforms,
        manifests: graph
            .manifests
            .iter()
            .map(|m| blob_ref(&m.descriptor))
            .collect(),
        blobs: graph.content_blobs().into_iter().map(blob_ref).collect(),
    })
}
