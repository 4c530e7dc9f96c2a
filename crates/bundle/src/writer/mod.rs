//! The bundle writer: one deterministic, uncompressed tar that is also an OCI image layout.
//!
//! Member order: `airlift.yaml`, `airlift.yaml.sig` (when signed), `oci-layout`, `index.json`,
//! the component files sorted by path, then `blobs/sha256/<hex>` sorted by digest. Every header
//! has mode 0644, uid/gid 0, empty owner names and the manifest's build time as mtime, so the same
//! inputs give the same bytes.
//!
//! Writing has two steps. [`plan_bundle`] needs only the manifests and configs of the images
//! (every blob's digest and size are in them): it settles the signed manifest and therefore
//! every member's offset. [`BundlePlan::create`] then lays the tar out in a temporary file next
//! to the output, and each blob is written straight into its place ([`BundleFile`]), from a
//! [`BlobSource`] or from a download, in any order and in parallel, hashed on the way; a blob the
//! source proves unchanged since it was hashed ([`BlobSource::proven_range`]: the packager's cache,
//! in the same boot) is copied kernel-side without being read. [`BundleFile::finish`] refuses a
//! bundle with a blob missing, flushes it and renames it into place. [`write_bundle`] does all of
//! it from one source.

mod file;
mod layout;
mod reuse;

pub(crate) use file::copy_range;
pub use file::{BundleFile, SlotWriter};
pub use reuse::Reuse;

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use crate::digest::Digest;
use crate::oci::{
    Descriptor, ImageIndex, ANNOTATION_REF_NAME, MEDIA_TYPE_OCI_INDEX, OCI_LAYOUT_CONTENT,
};
use crate::progress::Progress;
use crate::reader::{INDEX_PATH, OCI_LAYOUT_PATH};
use crate::schema::manifest::{BlobRecord, BundleManifest, MemberRecord};
use crate::sign::PrivateKey;
use crate::source::BlobSource;
use crate::tar_safety::{self, TarError};
use crate::walk::{self, WalkError};

/// Prefix of component file members.
pub const COMPONENTS_PREFIX: &str = "components/";

/// A small file of a component (a manifest template, a values file), held in memory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ComponentFile {
    /// Its member path: `components/<component>/<relative path>`.
    pub path: String,
    /// Its content.
    pub data: Vec<u8>,
}

/// What goes into a bundle.
#[derive(Debug, Clone)]
pub struct BundleContents {
    /// The manifest. The writer replaces `members`, `blobs` and `build.signer`; the images'
    /// blobs are found by walking each `components[].images[].digest` in the blob source.
    pub manifest: BundleManifest,
    /// The component files.
    pub files: Vec<ComponentFile>,
}

/// What was written.
#[derive(Debug, Clone)]
pub struct WrittenBundle {
    /// The bundle file.
    pub path: PathBuf,
    /// Its size in bytes.
    pub size: u64,
    /// The final manifest, as signed.
    pub manifest: BundleManifest,
    /// The digest of `airlift.yaml` as stored.
    pub manifest_digest: Digest,
}

/// Why a bundle could not be written.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// Writing the output failed.
    #[error("cannot write bundle `{path}`")]
    Io {
        /// The output (or its temporary file's folder).
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// An image is missing blobs or has corrupt manifests in the blob source.
    #[error("cannot collect the blobs of an image")]
    Image(#[source] WalkError),
    /// A blob read from the source does not hash to its digest.
    #[error("blob {digest} in the blob source is corrupt: its content hashes to {actual}")]
    SourceCorrupt {
        /// The expected digest.
        digest: Digest,
        /// What the bytes hash to.
        actual: Digest,
    },
    /// The bytes written into a blob's place (a download) do not hash to its digest, or are not
    /// its size.
    #[error("blob {digest} received {size} bytes that hash to {actual}: not the blob the manifest names")]
    Mismatch {
        /// The expected digest.
        digest: Digest,
        /// What the bytes hash to.
        actual: Digest,
        /// How many bytes were written.
        size: u64,
    },
    /// A blob was written past its size.
    #[error("blob {digest} is longer than the {size} bytes its manifest says")]
    TooLong {
        /// The blob.
        digest: Digest,
        /// Its declared size.
        size: u64,
    },
    /// The output folder has less free space than the bundle needs.
    #[error("the bundle needs {need} bytes but `{path}` has {free} bytes free")]
    NoSpace {
        /// The folder the bundle is written to.
        path: PathBuf,
        /// The bundle's size.
        need: u64,
        /// The space available there.
        free: u64,
    },
    /// An image manifest declares a blob larger than a bundle file can hold.
    #[error("blob {digest} is declared as {size} bytes: more than a bundle file can hold")]
    TooLarge {
        /// The blob.
        digest: Digest,
        /// Its declared size.
        size: u64,
    },
    /// A blob the bundle does not list was to be written into it.
    #[error("blob {digest} is not part of this bundle")]
    NotInBundle {
        /// The blob.
        digest: Digest,
    },
    /// The bundle was finished with blobs not written.
    #[error("{count} blob(s) of the bundle were not written, the first is {first}")]
    Unfilled {
        /// How many are missing.
        count: usize,
        /// The first of them.
        first: Digest,
    },
    /// The build was stopped (the operator interrupted it) before every blob was written; the
    /// temporary file is removed when the last handle to it is dropped.
    #[error("writing bundle `{path}` was stopped before it was complete")]
    Stopped {
        /// The output it would have been.
        path: PathBuf,
    },
    /// A component file path is unsafe or not under `components/`.
    #[error("component file path `{path}` is not allowed: it must be a canonical relative path under components/<name>/")]
    BadPath {
        /// The path.
        path: String,
        /// The cause, when the path failed the tar safety rules.
        #[source]
        source: Option<TarError>,
    },
    /// A component lists a manifest file that was not given.
    #[error("component `{component}` lists `{path}` but no such component file was given")]
    MissingComponentFile {
        /// The component.
        component: String,
        /// The listed path.
        path: String,
    },
    /// Two component files with the same path.
    #[error("component file `{path}` is given twice")]
    DuplicateFile {
        /// The path.
        path: String,
    },
    /// One reference names two different images.
    #[error("image reference `{reference}` names two different digests: {first} and {second}")]
    ConflictingReference {
        /// The reference.
        reference: String,
        /// One digest.
        first: Digest,
        /// The other.
        second: Digest,
    },
    /// The manifest could not be serialized.
    #[error("cannot serialize the bundle manifest")]
    Serialize(#[source] serde_yaml::Error),
    /// `index.json` could not be serialized.
    #[error("cannot serialize index.json")]
    SerializeIndex(#[source] serde_json::Error),
}

impl WriteError {
    /// What the operator can do about it.
    pub fn hint(&self) -> String {
        match self {
            WriteError::Io { path, .. } => format!("check free space and permissions at `{}`", path.display()),
            WriteError::Image(_) | WriteError::SourceCorrupt { .. } => "the blob cache is incomplete or corrupt: pull the images again (delete the cache entry named above)".into(),
            WriteError::BadPath { .. } | WriteError::DuplicateFile { .. } => "rename the component file so each has one safe relative path".into(),
            WriteError::MissingComponentFile { .. } => "add the file to the component's folder, or remove it from the component's manifests list".into(),
            WriteError::ConflictingReference { .. } => "give each image one digest: pin the reference by digest in the definition".into(),
            WriteError::Mismatch { .. } | WriteError::TooLong { .. } => "the source sent corrupt data: run the build again; if it repeats, check the registry's storage".into(),
            WriteError::Stopped { .. } => "nothing was written under that name: run the same command again to continue (blobs already in the cache are reused)".into(),
            WriteError::NoSpace { .. } => "free space there, or write the bundle to another folder with --out".into(),
            WriteError::TooLarge { .. } => "the image's manifest is damaged or hostile: check the image it belongs to (`skopeo inspect --raw`)".into(),
            WriteError::Serialize(_) | WriteError::SerializeIndex(_) | WriteError::NotInBundle { .. } | WriteError::Unfilled { .. } => "report this as a bug".into(),
        }
    }
}

/// Builds `index.json` from the manifest's images: one entry per reference, sorted.
fn build_index(
    manifest: &BundleManifest,
    source: &dyn BlobSource,
) -> Result<ImageIndex, WriteError> {
    let mut refs: BTreeMap<&str, (&Digest, &str)> = BTreeMap::new();
    for img in manifest.components.iter().flat_map(|c| &c.images) {
        if let Some((first, _)) = refs.insert(&img.reference, (&img.digest, &img.media_type)) {
            if first != &img.digest {
                return Err(WriteError::ConflictingReference {
                    reference: img.reference.clone(),
                    first: first.clone(),
                    second: img.digest.clone(),
                });
            }
        }
    }
    let mut manifests = Vec::new();
    for (reference, (digest, media_type)) in refs {
        let size = source.blob_size(digest).ok_or_else(|| {
            WriteError::Image(WalkError::Missing {
                reference: reference.to_string(),
                digest: digest.clone(),
            })
        })?;
        manifests.push(Descriptor {
            media_type: media_type.to_string(),
            digest: digest.clone(),
            size,
            platform: None,
            annotations: BTreeMap::from([(ANNOTATION_REF_NAME.to_string(), reference.to_string())]),
            extra: BTreeMap::new(),
        });
    }
    Ok(ImageIndex {
        schema_version: 2,
        media_type: Some(MEDIA_TYPE_OCI_INDEX.to_string()),
        manifests,
        annotations: BTreeMap::new(),
        extra: BTreeMap::new(),
    })
}

/// A bundle whose every member is settled (the manifest is signed), before any blob is written.
#[derive(Debug, Clone)]
pub struct BundlePlan {
    manifest: BundleManifest,
    manifest_bytes: Vec<u8>,
    signature: Option<Vec<u8>>,
    index_bytes: Vec<u8>,
    files: Vec<ComponentFile>,
    blobs: BTreeMap<Digest, u64>,
    mtime: u64,
    stop: Arc<AtomicBool>,
}

impl BundlePlan {
    /// Makes the file this plan creates stop when `flag` is set: copies stop before their next
    /// blob (or the next chunk of one read through user space), downloads at their next chunk,
    /// with [`WriteError::Stopped`].
    pub fn stop_when(mut self, flag: Arc<AtomicBool>) -> Self {
        self.stop = flag;
        self
    }

    /// The final manifest, as it will be signed.
    pub fn manifest(&self) -> &BundleManifest {
        &self.manifest
    }

    /// Every blob of the bundle (configs, layers and manifests) with its size, by digest.
    pub fn blobs(&self) -> &BTreeMap<Digest, u64> {
        &self.blobs
    }
}

/// Settles the bundle: walks every image in `source` (which must hold the manifests and
/// configs; of the other blobs it only needs to know the size), checks platforms, paths and
/// component files, fills in the manifest's members and blobs, and signs it with `key` when
/// given.
pub fn plan_bundle(
    contents: BundleContents,
    source: &dyn BlobSource,
    key: Option<&PrivateKey>,
) -> Result<BundlePlan, WriteError> {
    let mut manifest = contents.manifest;
    // Collect every blob of every image, each once.
    let mut blobs: BTreeMap<Digest, u64> = BTreeMap::new();
    for img in manifest.components.iter().flat_map(|c| &c.images) {
        let graph = walk::walk_image(source, &img.reference, &img.digest, &img.media_type)
            .map_err(WriteError::Image)?;
        let actual = walk::image_platforms(source, &img.reference, &img.digest, &img.media_type)
            .map_err(WriteError::Image)?;
        walk::check_platforms(&img.reference, &img.platforms, &actual)
            .map_err(WriteError::Image)?;
        blobs.extend(graph.blobs);
    }
    let index = build_index(&manifest, source)?;
    let index_bytes = serde_json::to_vec(&index).map_err(WriteError::SerializeIndex)?;

    let mut files: Vec<ComponentFile> = contents.files;
    files.sort_by(|a, b| a.path.cmp(&b.path));
    let mut seen = BTreeSet::new();
    for f in &files {
        let under = f
            .path
            .strip_prefix(COMPONENTS_PREFIX)
            .is_some_and(|rest| rest.contains('/'));
        if !under {
            return Err(WriteError::BadPath {
                path: f.path.clone(),
                source: None,
            });
        }
        tar_safety::check_member_path(&f.path).map_err(|e| WriteError::BadPath {
            path: f.path.clone(),
            source: Some(e),
        })?;
        if !seen.insert(f.path.as_str()) {
            return Err(WriteError::DuplicateFile {
                path: f.path.clone(),
            });
        }
    }

    for c in &manifest.components {
        if let Some(path) = c.manifests.iter().find(|p| !seen.contains(p.as_str())) {
            return Err(WriteError::MissingComponentFile {
                component: c.name.clone(),
                path: path.clone(),
            });
        }
    }

    let record = |path: &str, data: &[u8]| MemberRecord {
        path: path.to_string(),
        digest: Digest::of_bytes(data),
        size: data.len() as u64,
    };
    manifest.members = vec![
        record(OCI_LAYOUT_PATH, OCI_LAYOUT_CONTENT.as_bytes()),
        record(INDEX_PATH, &index_bytes),
    ];
    manifest
        .members
        .extend(files.iter().map(|f| record(&f.path, &f.data)));
    manifest.blobs = blobs
        .iter()
        .map(|(digest, size)| BlobRecord {
            digest: digest.clone(),
            size: *size,
        })
        .collect();
    manifest.build.signer = key.map(|k| k.public_key().fingerprint());
    let manifest_bytes = serde_yaml::to_string(&manifest)
        .map_err(WriteError::Serialize)?
        .into_bytes();
    let signature = key.map(|k| k.sign(&manifest_bytes));
    let mtime = crate::time::rfc3339_to_epoch(&manifest.build.created);
    Ok(BundlePlan {
        manifest,
        manifest_bytes,
        signature,
        index_bytes,
        files,
        blobs,
        mtime,
        stop: Arc::default(),
    })
}

/// Writes the bundle to `out`, reading blobs from `source`, and signs the manifest with `key`
/// when given. Reports blob bytes to `progress` under the label `write`. The output appears only
/// when complete (temporary file + rename); an existing file at `out` is replaced.
pub fn write_bundle(
    contents: BundleContents,
    source: &dyn BlobSource,
    key: Option<&PrivateKey>,
    out: &Path,
    progress: &dyn Progress,
) -> Result<WrittenBundle, WriteError> {
    let plan = plan_bundle(contents, source, key)?;
    let blobs: Vec<Digest> = plan.blobs.keys().cloned().collect();
    let file = plan.create(out)?;
    progress.start("write", Some(file.blob_bytes()));
    file.fill_from(&blobs, source, progress, "write", FILL_THREADS)?;
    progress.finish("write");
    file.finish()
}

/// How many blobs [`write_bundle`] copies at once: copying is the kernel's memory copy and the
/// disk's writes, so two keep both busy without contending.
const FILL_THREADS: usize = 2;

/// The `io::Error` of a write into the bundle at `path`, as a [`WriteError`].
fn io_at(path: &Path) -> impl Fn(io::Error) -> WriteError + '_ {
    move |source| WriteError::Io {
        path: path.to_path_buf(),
        source,
    }
}
