//! Walking an image's blob graph (index → manifests → config and layers) in any [`BlobSource`].
//!
//! The writer uses it to find every blob a bundle must hold; the verifier uses it to prove that
//! every image in a bundle is complete. Manifests and indexes are read into memory (they are
//! small and bounded by [`MAX_MANIFEST_SIZE`]) and checked against their digest; layers never are.

use std::collections::HashSet;
use std::io;

use crate::digest::{Digest, Hasher};
use crate::oci::{OciPlatform, Parsed};
use crate::schema::common::Platform;
use crate::source::BlobSource;

/// The largest manifest or index read into memory (registries use the same 4 MiB limit).
pub const MAX_MANIFEST_SIZE: u64 = 4 * 1024 * 1024;
/// The largest image config read into memory to learn its platform.
pub const MAX_CONFIG_SIZE: u64 = 16 * 1024 * 1024;
/// How deep indexes may nest.
const MAX_DEPTH: usize = 4;

/// Why an image's blob graph cannot be walked.
#[derive(Debug, thiserror::Error)]
pub enum WalkError {
    /// A blob the image references is not in the source.
    #[error("image `{reference}` references blob {digest}, which is missing")]
    Missing {
        /// The image.
        reference: String,
        /// The missing blob.
        digest: Digest,
    },
    /// A descriptor's size differs from the blob's.
    #[error(
        "image `{reference}`: blob {digest} is {actual} bytes but its descriptor says {declared}"
    )]
    SizeMismatch {
        /// The image.
        reference: String,
        /// The blob.
        digest: Digest,
        /// The size in the descriptor.
        declared: u64,
        /// The size in the source.
        actual: u64,
    },
    /// A manifest's bytes do not hash to its digest.
    #[error("image `{reference}`: manifest {digest} does not match its digest (got {actual})")]
    DigestMismatch {
        /// The image.
        reference: String,
        /// The expected digest.
        digest: Digest,
        /// What the bytes hash to.
        actual: Digest,
    },
    /// A manifest or index is larger than [`MAX_MANIFEST_SIZE`].
    #[error("image `{reference}`: manifest {digest} is {size} bytes, over the {MAX_MANIFEST_SIZE}-byte limit")]
    TooLarge {
        /// The image.
        reference: String,
        /// The blob.
        digest: Digest,
        /// Its size.
        size: u64,
    },
    /// A manifest or index is not valid JSON of the expected shape.
    #[error("image `{reference}`: manifest {digest} is not a valid OCI manifest or index")]
    Unparseable {
        /// The image.
        reference: String,
        /// The blob.
        digest: Digest,
        /// The cause.
        #[source]
        source: serde_json::Error,
    },
    /// Indexes nest deeper than allowed.
    #[error("image `{reference}`: indexes nest deeper than {MAX_DEPTH} levels")]
    TooDeep {
        /// The image.
        reference: String,
    },
    /// The manifest records a platform the image does not provide.
    #[error(
        "image `{reference}` is recorded as carrying `{recorded}` but provides only: {actual}"
    )]
    PlatformMismatch {
        /// The image.
        reference: String,
        /// The recorded platform it lacks.
        recorded: Platform,
        /// What it provides.
        actual: String,
    },
    /// Reading from the source failed.
    #[error("image `{reference}`: cannot read blob {digest}")]
    Io {
        /// The image.
        reference: String,
        /// The blob.
        digest: Digest,
        /// The cause.
        #[source]
        source: io::Error,
    },
}

/// Every blob of one image, and the platforms it carries.
#[derive(Debug, Clone, Default)]
pub struct ImageGraph {
    /// Every blob, the top manifest first, each once, with its size.
    pub blobs: Vec<(Digest, u64)>,
    /// The platforms of the single-platform manifests an index lists (empty for a lone manifest).
    pub platforms: Vec<OciPlatform>,
}

/// Reads a whole small blob, refusing above `limit` bytes, and checks its digest.
pub fn read_small(
    source: &dyn BlobSource,
    digest: &Digest,
    limit: u64,
) -> Result<Vec<u8>, SmallReadError> {
    let size = source
        .blob_size(digest)
        .ok_or_else(|| SmallReadError::Missing(digest.clone()))?;
    if size > limit {
        return Err(SmallReadError::TooLarge { size, limit });
    }
    let len = usize::try_from(size).map_err(|_| SmallReadError::TooLarge { size, limit })?;
    let mut buf = vec![0u8; len];
    let mut done = 0;
    while done < len {
        let n = source
            .read_blob_at(digest, done as u64, &mut buf[done..])
            .map_err(SmallReadError::Io)?;
        if n == 0 {
            return Err(SmallReadError::Io(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("blob {digest} ended after {done} of {len} bytes"),
            )));
        }
        done += n;
    }
    let mut h = Hasher::new();
    h.update(&buf);
    let actual = h.finish();
    if &actual != digest {
        return Err(SmallReadError::DigestMismatch { actual });
    }
    Ok(buf)
}

/// Why [`read_small`] failed.
#[derive(Debug, thiserror::Error)]
pub enum SmallReadError {
    /// The source does not hold the blob.
    #[error("blob {0} is missing")]
    Missing(Digest),
    /// The blob is above the limit.
    #[error("blob is {size} bytes, over the {limit}-byte limit for reading into memory")]
    TooLarge {
        /// Its size.
        size: u64,
        /// The limit.
        limit: u64,
    },
    /// The bytes do not hash to the digest.
    #[error("blob content hashes to {actual}, not to its digest")]
    DigestMismatch {
        /// What the bytes hash to.
        actual: Digest,
    },
    /// Reading failed.
    #[error("cannot read blob")]
    Io(#[source] io::Error),
}

/// Walks the image `reference` whose top manifest or index is `top` (of `media_type`), and
/// returns all its blobs. Fails on the first missing, mis-sized or corrupt manifest.
pub fn walk_image(
    source: &dyn BlobSource,
    reference: &str,
    top: &Digest,
    media_type: &str,
) -> Result<ImageGraph, WalkError> {
    let mut graph = ImageGraph::default();
    let mut seen = HashSet::new();
    let size = source.blob_size(top).ok_or_else(|| WalkError::Missing {
        reference: reference.to_string(),
        digest: top.clone(),
    })?;
    visit(
        source, reference, top, size, media_type, 0, &mut seen, &mut graph,
    )?;
    Ok(graph)
}

fn small_err(reference: &str, digest: &Digest) -> impl FnOnce(SmallReadError) -> WalkError {
    let r = reference.to_string();
    let digest = digest.clone();
    move |e| match e {
        SmallReadError::Missing(d) => WalkError::Missing {
            reference: r,
            digest: d,
        },
        SmallReadError::TooLarge { size, .. } => WalkError::TooLarge {
            reference: r,
            digest,
            size,
        },
        SmallReadError::DigestMismatch { actual } => WalkError::DigestMismatch {
            reference: r,
            digest,
            actual,
        },
        SmallReadError::Io(source) => WalkError::Io {
            reference: r,
            digest,
            source,
        },
    }
}

/// The platforms an image provides: an index's entries (those with a parseable platform), or a
/// single manifest's config `os`/`architecture`/`variant`. Empty when the image does not say.
pub fn image_platforms(
    source: &dyn BlobSource,
    reference: &str,
    top: &Digest,
    media_type: &str,
) -> Result<Vec<Platform>, WalkError> {
    let bytes = read_small(source, top, MAX_MANIFEST_SIZE).map_err(small_err(reference, top))?;
    let parsed =
        Parsed::from_slice(media_type, &bytes).map_err(|source| WalkError::Unparseable {
            reference: reference.to_string(),
            digest: top.clone(),
            source,
        })?;
    match parsed {
        Parsed::Index(i) => Ok(i
            .manifests
            .iter()
            .filter_map(|d| d.platform.as_ref().and_then(OciPlatform::to_platform))
            .collect()),
        Parsed::Manifest(m) => {
            let config = read_small(source, &m.config.digest, MAX_CONFIG_SIZE)
                .map_err(small_err(reference, &m.config.digest))?;
            #[derive(serde::Deserialize)]
            struct Cfg {
                os: Option<String>,
                architecture: Option<String>,
                variant: Option<String>,
            }
            let cfg: Option<Cfg> = serde_json::from_slice(&config).ok();
            let platform = cfg.and_then(|c| {
                let mut s = format!("{}/{}", c.os?, c.architecture?);
                if let Some(v) = c.variant {
                    s = format!("{s}/{v}");
                }
                s.parse::<Platform>().ok()
            });
            Ok(platform.into_iter().collect())
        }
    }
}

/// Checks that every `recorded` platform is provided (same os and architecture, and the same
/// variant when one is recorded). An image that states no platform passes.
pub fn check_platforms(
    reference: &str,
    recorded: &[Platform],
    actual: &[Platform],
) -> Result<(), WalkError> {
    if actual.is_empty() {
        return Ok(());
    }
    let provided = |r: &Platform| {
        actual.iter().any(|a| {
            a.os == r.os
                && a.architecture == r.architecture
                && r.variant
                    .as_ref()
                    .is_none_or(|v| a.variant.as_ref() == Some(v))
        })
    };
    match recorded.iter().find(|r| !provided(r)) {
        None => Ok(()),
        Some(missing) => Err(WalkError::PlatformMismatch {
            reference: reference.to_string(),
            recorded: missing.clone(),
            actual: actual
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", "),
        }),
    }
}

#[allow(clippy::too_many_arguments)]
fn visit(
    source: &dyn BlobSource,
    reference: &str,
    digest: &Digest,
    declared: u64,
    media_type: &str,
    depth: usize,
    seen: &mut HashSet<Digest>,
    graph: &mut ImageGraph,
) -> Result<(), WalkError> {
    let r = || reference.to_string();
    if depth > MAX_DEPTH {
        return Err(WalkError::TooDeep { reference: r() });
    }
    let bytes = read_small(source, digest, MAX_MANIFEST_SIZE).map_err(|e| match e {
        SmallReadError::Missing(d) => WalkError::Missing {
            reference: r(),
            digest: d,
        },
        SmallReadError::TooLarge { size, .. } => WalkError::TooLarge {
            reference: r(),
            digest: digest.clone(),
            size,
        },
        SmallReadError::DigestMismatch { actual } => WalkError::DigestMismatch {
            reference: r(),
            digest: digest.clone(),
            actual,
        },
        SmallReadError::Io(source) => WalkError::Io {
            reference: r(),
            digest: digest.clone(),
            source,
        },
    })?;
    if bytes.len() as u64 != declared {
        return Err(WalkError::SizeMismatch {
            reference: r(),
            digest: digest.clone(),
            declared,
            actual: bytes.len() as u64,
        });
    }
    if seen.insert(digest.clone()) {
        graph.blobs.push((digest.clone(), declared));
    }
    let parsed =
        Parsed::from_slice(media_type, &bytes).map_err(|source| WalkError::Unparseable {
            reference: r(),
            digest: digest.clone(),
            source,
        })?;
    let is_index = matches!(parsed, Parsed::Index(_));
    for child in parsed.children() {
        let actual = source
            .blob_size(&child.digest)
            .ok_or_else(|| WalkError::Missing {
                reference: r(),
                digest: child.digest.clone(),
            })?;
        if actual != child.size {
            return Err(WalkError::SizeMismatch {
                reference: r(),
                digest: child.digest.clone(),
                declared: child.size,
                actual,
            });
        }
        if is_index {
            if let Some(p) = &child.platform {
                if !graph.platforms.contains(p) {
                    graph.platforms.push(p.clone());
                }
            }
            if !seen.contains(&child.digest) {
                visit(
                    source,
                    reference,
                    &child.digest,
                    child.size,
                    &child.media_type,
                    depth + 1,
                    seen,
                    graph,
                )?;
            }
        } else if seen.insert(child.digest.clone()) {
            graph.blobs.push((child.digest.clone(), child.size));
        }
    }
    Ok(())
}
