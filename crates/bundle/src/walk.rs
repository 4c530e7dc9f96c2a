//! Walking an image's blob graph (index → manifests → config and layers).
//!
//! This is the one graph walker of Airlift. [`Walker`] is the walk itself, with no I/O: it asks
//! for one manifest or index at a time ([`Walker::next_manifest`]), and the caller hands its bytes
//! back ([`Walker::visit`]), read from wherever it likes (a bundle, a blob store, a registry).
//! The walker checks each document's size and digest against its descriptor, parses it with
//! [`Parsed::from_slice`] (size and nesting bounded), bounds index nesting at
//! [`MAX_INDEX_DEPTH`], and records every manifest and blob once. [`walk_image`] drives it over
//! any [`BlobSource`]: the writer uses it to find every blob a bundle must hold, the verifier to
//! prove that every image is complete, push and serve to know what to send. Manifests and
//! indexes are read into memory (small, bounded by [`MAX_MANIFEST_SIZE`]); layers never are.

use std::collections::{HashMap, HashSet};
use std::io;

use crate::digest::{Digest, Hasher};
use crate::oci::{is_index_media_type, Descriptor, OciPlatform, Parsed};
pub use crate::oci::{MAX_CONFIG_SIZE, MAX_INDEX_DEPTH, MAX_MANIFEST_SIZE};
use crate::schema::common::Platform;
use crate::source::BlobSource;

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
    /// A manifest or index is larger than [`MAX_MANIFEST_SIZE`], or a config than
    /// [`MAX_CONFIG_SIZE`].
    #[error("image `{reference}`: {what} {digest} is {size} bytes, over the {limit}-byte limit for {what}s")]
    TooLarge {
        /// The image.
        reference: String,
        /// What the blob is: `manifest` or `config`.
        what: &'static str,
        /// The blob.
        digest: Digest,
        /// Its size.
        size: u64,
        /// The limit for that kind of blob.
        limit: u64,
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
    #[error("image `{reference}`: indexes nest deeper than {MAX_INDEX_DEPTH} levels")]
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
    /// Every blob, the top manifest first, each once, with its size (manifests and indexes in
    /// walk order, each followed by the config and layers it adds).
    pub blobs: Vec<(Digest, u64)>,
    /// The platforms of the single-platform manifests an index lists (empty for a lone manifest).
    pub platforms: Vec<OciPlatform>,
    /// Every manifest and index, the top one first, each once.
    pub manifests: Vec<ManifestNode>,
}

impl ImageGraph {
    /// The configs and layers (no manifests), each once, in walk order.
    pub fn content_blobs(&self) -> Vec<&Descriptor> {
        let mut seen = HashSet::new();
        self.manifests
            .iter()
            .flat_map(|m| m.blobs.iter())
            .filter(|d| seen.insert(&d.digest))
            .collect()
    }
}

/// One manifest or index of an image graph.
#[derive(Debug, Clone)]
pub struct ManifestNode {
    /// How its parent (or the caller, for the top) describes it, with the media type decided by
    /// [`Parsed::from_slice`].
    pub descriptor: Descriptor,
    /// For an index: the positions in [`ImageGraph::manifests`] of the manifests it lists.
    pub children: Vec<usize>,
    /// For a manifest: its config, then its layers.
    pub blobs: Vec<Descriptor>,
    /// The `subject` it refers to (OCI referrers), when it names one.
    pub subject: Option<Descriptor>,
}

impl ManifestNode {
    /// True for an index (or manifest list).
    pub fn is_index(&self) -> bool {
        is_index_media_type(&self.descriptor.media_type)
    }
}

/// A walk over one image's graph, with no I/O (see the module docs).
///
/// ```
/// # use airlift_bundle::walk::Walker;
/// # use airlift_bundle::oci::Descriptor;
/// # use airlift_bundle::Digest;
/// let cfg = Digest::of_bytes(b"{}");
/// let manifest = format!(
///     r#"{{"schemaVersion":2,"config":{{"mediaType":"c","digest":"{cfg}","size":2}},"layers":[]}}"#
/// );
/// let top = Descriptor::new("", Digest::of_bytes(manifest.as_bytes()), manifest.len() as u64);
/// let mut walker = Walker::new("example", top);
/// while let Some(desc) = walker.next_manifest() {
///     assert_eq!(desc.digest, Digest::of_bytes(manifest.as_bytes()));
///     walker.visit(manifest.as_bytes()).unwrap();
/// }
/// assert_eq!(walker.finish().blobs.len(), 2);
/// ```
#[derive(Debug)]
pub struct Walker {
    reference: String,
    /// Manifests still to read, as a stack (depth first, in document order).
    pending: Vec<Pending>,
    /// The manifest handed out by [`Walker::next_manifest`] and not visited yet.
    current: Option<Pending>,
    /// Blobs recorded.
    seen: HashSet<Digest>,
    /// Position of every manifest node by digest.
    nodes: HashMap<Digest, usize>,
    graph: ImageGraph,
}

#[derive(Debug)]
struct Pending {
    desc: Descriptor,
    depth: usize,
    parent: Option<usize>,
}

impl Walker {
    /// A walk of the image `reference` (named in errors) whose top manifest or index is `top`.
    pub fn new(reference: &str, top: Descriptor) -> Self {
        Self {
            reference: reference.to_string(),
            pending: vec![Pending {
                desc: top,
                depth: 0,
                parent: None,
            }],
            current: None,
            seen: HashSet::new(),
            nodes: HashMap::new(),
            graph: ImageGraph::default(),
        }
    }

    /// The next manifest or index whose bytes [`Walker::visit`] needs, or `None` when the walk is
    /// complete. A manifest listed twice is asked for once.
    pub fn next_manifest(&mut self) -> Option<&Descriptor> {
        while let Some(p) = self.pending.pop() {
            if let Some(&i) = self.nodes.get(&p.desc.digest) {
                if let Some(parent) = p.parent {
                    self.graph.manifests[parent].children.push(i);
                }
                continue;
            }
            self.current = Some(p);
            return self.current.as_ref().map(|p| &p.desc);
        }
        None
    }

    /// Takes the bytes of the manifest last returned by [`Walker::next_manifest`]: checks their
    /// size and digest, parses them, records the manifest, its config and layers, and queues
    /// the manifests an index lists. Returns the recorded node.
    pub fn visit(&mut self, bytes: &[u8]) -> Result<&ManifestNode, WalkError> {
        let r = || self.reference.clone();
        let Some(Pending {
            mut desc,
            depth,
            parent,
        }) = self.current.take()
        else {
            return Err(WalkError::Io {
                reference: r(),
                digest: Digest::of_bytes(b""),
                source: io::Error::other("Walker::visit called without next_manifest"),
            });
        };
        if depth > MAX_INDEX_DEPTH {
            return Err(WalkError::TooDeep { reference: r() });
        }
        if bytes.len() as u64 > MAX_MANIFEST_SIZE {
            return Err(WalkError::TooLarge {
                reference: r(),
                what: "manifest",
                digest: desc.digest,
                size: bytes.len() as u64,
                limit: MAX_MANIFEST_SIZE,
            });
        }
        if bytes.len() as u64 != desc.size {
            return Err(WalkError::SizeMismatch {
                reference: r(),
                digest: desc.digest,
                declared: desc.size,
                actual: bytes.len() as u64,
            });
        }
        let actual = Digest::of_bytes(bytes);
        if actual != desc.digest {
            return Err(WalkError::DigestMismatch {
                reference: r(),
                digest: desc.digest,
                actual,
            });
        }
        let parsed = Parsed::from_slice(&desc.media_type, bytes).map_err(|source| {
            WalkError::Unparseable {
                reference: r(),
                digest: desc.digest.clone(),
                source,
            }
        })?;
        desc.media_type = parsed.media_type().to_string();
        let index = self.graph.manifests.len();
        if self.seen.insert(desc.digest.clone()) {
            self.graph.blobs.push((desc.digest.clone(), desc.size));
        }
        self.nodes.insert(desc.digest.clone(), index);
        if let Some(parent) = parent {
            self.graph.manifests[parent].children.push(index);
        }
        let subject = parsed.subject();
        let mut node = ManifestNode {
            descriptor: desc,
            children: Vec::new(),
            blobs: Vec::new(),
            subject: None,
        };
        match parsed {
            Parsed::Index(i) => {
                for child in i.manifests.iter().rev() {
                    self.pending.push(Pending {
                        desc: child.clone(),
                        depth: depth + 1,
                        parent: Some(index),
                    });
                }
                for child in &i.manifests {
                    if let Some(p) = &child.platform {
                        if !self.graph.platforms.contains(p) {
                            self.graph.platforms.push(p.clone());
                        }
                    }
                }
            }
            Parsed::Manifest(m) => {
                for d in std::iter::once(m.config).chain(m.layers) {
                    if self.seen.insert(d.digest.clone()) {
                        self.graph.blobs.push((d.digest.clone(), d.size));
                    }
                    node.blobs.push(d);
                }
            }
        }
        // A `subject` (what a referrer points at) is recorded as a blob the image carries.
        if let Some(d) = subject {
            if self.seen.insert(d.digest.clone()) {
                self.graph.blobs.push((d.digest.clone(), d.size));
            }
            node.subject = Some(d);
        }
        self.graph.manifests.push(node);
        Ok(&self.graph.manifests[index])
    }

    /// The graph walked so far (all of it once [`Walker::next_manifest`] returned `None`).
    pub fn finish(self) -> ImageGraph {
        self.graph
    }
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

/// Walks the image `reference` whose top manifest or index is `top` (of `media_type`) in
/// `source`, and returns all its blobs. Fails on the first missing, mis-sized or corrupt
/// manifest, and on a config or layer the source lacks or holds with another size.
pub fn walk_image(
    source: &dyn BlobSource,
    reference: &str,
    top: &Digest,
    media_type: &str,
) -> Result<ImageGraph, WalkError> {
    let size = source.blob_size(top).ok_or_else(|| WalkError::Missing {
        reference: reference.to_string(),
        digest: top.clone(),
    })?;
    let mut walker = Walker::new(reference, Descriptor::new(media_type, top.clone(), size));
    while let Some(desc) = walker.next_manifest() {
        let digest = desc.digest.clone();
        let bytes = read_small(source, &digest, MAX_MANIFEST_SIZE)
            .map_err(small_err(reference, &digest, "manifest"))?;
        let node = walker.visit(&bytes)?;
        for blob in node.blobs.iter().chain(&node.subject) {
            let actual = source
                .blob_size(&blob.digest)
                .ok_or_else(|| WalkError::Missing {
                    reference: reference.to_string(),
                    digest: blob.digest.clone(),
                })?;
            if actual != blob.size {
                return Err(WalkError::SizeMismatch {
                    reference: reference.to_string(),
                    digest: blob.digest.clone(),
                    declared: blob.size,
                    actual,
                });
            }
        }
    }
    Ok(walker.finish())
}

/// Maps a failed [`read_small`] of `digest` (a `what`: manifest or config) to the walk's error.
fn small_err(
    reference: &str,
    digest: &Digest,
    what: &'static str,
) -> impl FnOnce(SmallReadError) -> WalkError {
    let r = reference.to_string();
    let digest = digest.clone();
    move |e| match e {
        SmallReadError::Missing(d) => WalkError::Missing {
            reference: r,
            digest: d,
        },
        SmallReadError::TooLarge { size, limit } => WalkError::TooLarge {
            reference: r,
            what,
            digest,
            size,
            limit,
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
    let bytes = read_small(source, top, MAX_MANIFEST_SIZE)
        .map_err(small_err(reference, top, "manifest"))?;
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
                .map_err(small_err(reference, &m.config.digest, "config"))?;
            let platform = OciPlatform::from_config(&config)
                .ok()
                .and_then(|p| p.to_platform());
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oci::{MEDIA_TYPE_OCI_INDEX, MEDIA_TYPE_OCI_MANIFEST};
    use crate::DirBlobStore;

    fn put(store: &DirBlobStore, bytes: &[u8]) -> Descriptor {
        let d = Digest::of_bytes(bytes);
        store.put(&d, &mut &bytes[..]).unwrap();
        Descriptor::new("", d, bytes.len() as u64)
    }

    fn manifest(store: &DirBlobStore, layer: &Descriptor) -> Descriptor {
        let cfg = put(store, br#"{"os":"linux","architecture":"amd64"}"#);
        let doc = serde_json::json!({"schemaVersion": 2, "mediaType": MEDIA_TYPE_OCI_MANIFEST,
            "config": {"mediaType": "c", "digest": cfg.digest.to_string(), "size": cfg.size},
            "layers": [{"mediaType": "l", "digest": layer.digest.to_string(), "size": layer.size}]});
        let mut d = put(store, &serde_json::to_vec(&doc).unwrap());
        d.media_type = MEDIA_TYPE_OCI_MANIFEST.into();
        d
    }

    fn index(store: &DirBlobStore, children: &[&Descriptor]) -> Descriptor {
        let list: Vec<_> = children
            .iter()
            .map(|c| serde_json::json!({"mediaType": c.media_type, "digest": c.digest.to_string(), "size": c.size}))
            .collect();
        let doc = serde_json::json!({"schemaVersion": 2, "mediaType": MEDIA_TYPE_OCI_INDEX, "manifests": list});
        let mut d = put(store, &serde_json::to_vec(&doc).unwrap());
        d.media_type = MEDIA_TYPE_OCI_INDEX.into();
        d
    }

    /// A store that claims one blob is 1 GiB.
    struct Inflated<'a> {
        store: &'a DirBlobStore,
        big: Digest,
    }

    impl BlobSource for Inflated<'_> {
        fn blob_size(&self, digest: &Digest) -> Option<u64> {
            if digest == &self.big {
                return Some(1 << 30);
            }
            self.store.blob_size(digest)
        }
        fn read_blob_at(&self, digest: &Digest, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
            self.store.read_blob_at(digest, offset, buf)
        }
    }

    #[test]
    fn an_oversized_config_is_named_as_a_config_with_its_own_limit() {
        let dir = tempfile::tempdir().unwrap();
        let store = DirBlobStore::open(dir.path()).unwrap();
        let layer = put(&store, b"layer");
        let top = manifest(&store, &layer);
        let cfg = Digest::of_bytes(br#"{"os":"linux","architecture":"amd64"}"#);
        let source = Inflated {
            store: &store,
            big: cfg.clone(),
        };
        let e = image_platforms(&source, "acme/app:1", &top.digest, &top.media_type).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!(
                "image `acme/app:1`: config {cfg} is 1073741824 bytes, over the 16777216-byte limit for configs"
            )
        );
        let source = Inflated {
            store: &store,
            big: top.digest.clone(),
        };
        let e = image_platforms(&source, "acme/app:1", &top.digest, &top.media_type).unwrap_err();
        assert!(e.to_string().contains("manifest "), "{e}");
        assert!(
            e.to_string()
                .contains(&format!("{MAX_MANIFEST_SIZE}-byte limit for manifests")),
            "{e}"
        );
    }

    #[test]
    fn shared_manifests_are_walked_once_and_linked_twice() {
        let dir = tempfile::tempdir().unwrap();
        let store = DirBlobStore::open(dir.path()).unwrap();
        let layer = put(&store, b"layer bytes");
        let m = manifest(&store, &layer);
        let top = index(&store, &[&m, &m]);
        let g = walk_image(&store, "img", &top.digest, &top.media_type).unwrap();
        assert_eq!(g.manifests.len(), 2);
        assert_eq!(g.manifests[0].children, vec![1, 1]);
        assert!(g.manifests[0].is_index() && !g.manifests[1].is_index());
        // index, manifest, config, layer: each once, top first.
        assert_eq!(g.blobs.len(), 4);
        assert_eq!(g.blobs[0].0, top.digest);
        assert_eq!(g.content_blobs().len(), 2);
    }

    #[test]
    fn indexes_nested_too_deep_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let store = DirBlobStore::open(dir.path()).unwrap();
        let layer = put(&store, b"x");
        let mut top = manifest(&store, &layer);
        for _ in 0..MAX_INDEX_DEPTH {
            top = index(&store, &[&top]);
        }
        walk_image(&store, "img", &top.digest, &top.media_type).unwrap();
        let deeper = index(&store, &[&top]);
        let e = walk_image(&store, "img", &deeper.digest, &deeper.media_type).unwrap_err();
        assert!(matches!(e, WalkError::TooDeep { .. }), "{e:?}");
    }

    #[test]
    fn visit_checks_size_and_digest_against_the_descriptor() {
        let bytes = br#"{"schemaVersion":2,"manifests":[]}"#;
        let good = Descriptor::new("", Digest::of_bytes(bytes), bytes.len() as u64);
        let mut w = Walker::new(
            "img",
            Descriptor {
                size: 3,
                ..good.clone()
            },
        );
        w.next_manifest();
        assert!(matches!(
            w.visit(bytes),
            Err(WalkError::SizeMismatch { .. })
        ));
        let other = Digest::of_bytes(b"other");
        let mut w = Walker::new(
            "img",
            Descriptor {
                digest: other,
                ..good.clone()
            },
        );
        w.next_manifest();
        assert!(matches!(
            w.visit(bytes),
            Err(WalkError::DigestMismatch { .. })
        ));
        let mut w = Walker::new("img", good);
        assert!(w.next_manifest().is_some());
        assert!(w.visit(bytes).unwrap().is_index());
        assert!(w.next_manifest().is_none());
    }
}
