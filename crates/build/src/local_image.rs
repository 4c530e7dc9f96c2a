//! Images built from local files, with no registry and no container engine.
//!
//! The build context folder becomes ONE layer: a tar with entries sorted by path, mtime 0, uid and
//! gid 0, no user or group names, modes kept; gzip with mtime 0 and no file name. A config
//! (entrypoint, cmd, env, ports, workdir, user) and a manifest are written per required platform,
//! all sharing the layer, under one OCI image index. The same inputs always give the same bytes,
//! so the index digest is reproducible.
//!
//! The layer streams straight into the blob store ([`DirBlobStore::new_blob_writer`]), hashed
//! while written (the uncompressed digest for `rootfs.diff_ids`, the compressed one for the blob);
//! it is never whole in memory and written once. A store that records proofs also records which
//! files gave which layer, so an unchanged context is not compressed again
//! ([`crate::local_image_reuse`]). Symlinks are kept as symlinks, and one whose target leaves the
//! context (absolute or climbing with `..`) is rejected, as are sockets, FIFOs and devices.

use std::collections::BTreeMap;
use std::io::{self, Read};
use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path, PathBuf};
use std::time::{Duration, SystemTime};

use airlift_bundle::oci::{
    Descriptor, ImageIndex, ImageManifest, OciPlatform, MEDIA_TYPE_OCI_CONFIG,
    MEDIA_TYPE_OCI_INDEX, MEDIA_TYPE_OCI_LAYER_GZIP, MEDIA_TYPE_OCI_MANIFEST,
};
use airlift_bundle::proof::file_identity;
use airlift_bundle::schema::common::Platform;
use airlift_bundle::schema::definition::BuildSpec;
use airlift_bundle::{Digest, DirBlobStore, HashingWriter, StoreError};
use serde::Serialize;

use crate::local_image_reuse::Inputs;

/// OCI image index media type.
pub const INDEX_MEDIA_TYPE: &str = MEDIA_TYPE_OCI_INDEX;
/// OCI image manifest media type.
pub const MANIFEST_MEDIA_TYPE: &str = MEDIA_TYPE_OCI_MANIFEST;
/// OCI image config media type.
pub const CONFIG_MEDIA_TYPE: &str = MEDIA_TYPE_OCI_CONFIG;
/// OCI gzip layer media type.
pub const LAYER_MEDIA_TYPE: &str = MEDIA_TYPE_OCI_LAYER_GZIP;
/// The fixed time stamped on everything: the Unix epoch.
const EPOCH: &str = "1970-01-01T00:00:00Z";

/// Errors from building a local image.
#[derive(Debug, thiserror::Error)]
pub enum LocalImageError {
    /// The context is not a folder inside the definition's folder.
    #[error("build context `{path}` is not a folder inside the definition's folder")]
    Context {
        /// The context as written.
        path: PathBuf,
    },
    /// A file of the context could not be read, or the layer could not be written.
    #[error("cannot read or write `{path}` while building the image")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// A symlink points outside the context.
    #[error("symlink `{path}` points to `{target}`, outside the build context; make it relative and inside the folder, or copy the file in")]
    SymlinkEscapes {
        /// The symlink, relative to the context.
        path: String,
        /// Its target.
        target: PathBuf,
    },
    /// A socket, FIFO or device file.
    #[error("`{path}` is not a regular file, folder or symlink; remove it from the build context")]
    SpecialFile {
        /// The file, relative to the context.
        path: String,
    },
    /// A file name that is not UTF-8 (it could not be written faithfully into the layer).
    #[error("`{path}` has a name that is not UTF-8; rename it")]
    NonUtf8Name {
        /// The file.
        path: PathBuf,
    },
    /// The context holds more entries than [`MAX_CONTEXT_ENTRIES`].
    #[error("build context `{}` holds more than {limit} files, folders and symlinks", context.display())]
    TooManyEntries {
        /// The context folder.
        context: PathBuf,
        /// The bound.
        limit: usize,
    },
    /// The context's folders nest deeper than [`MAX_CONTEXT_DEPTH`].
    #[error("folder `{path}` of the build context nests deeper than {limit} levels")]
    TooDeep {
        /// The first folder past the bound, relative to the context.
        path: String,
        /// The bound.
        limit: usize,
    },
    /// No platform was given.
    #[error("no platform to build for: the definition must list at least one")]
    NoPlatform,
    /// The blob store refused a blob.
    #[error("cannot store a blob of the image")]
    Store(#[from] StoreError),
}

impl airlift_bundle::Diagnose for LocalImageError {
    /// The build context is the definition's (exit 6); reading or storing is a failure (exit 1).
    fn exit_kind(&self) -> airlift_bundle::ExitKind {
        match self {
            Self::Io { .. } | Self::Store(_) => airlift_bundle::ExitKind::Failure,
            _ => airlift_bundle::ExitKind::Config,
        }
    }
    fn fix(&self) -> Option<String> {
        match self {
            Self::Context { .. } => Some(
                "give `build.context` as a relative folder inside the definition's folder".into(),
            ),
            Self::NoPlatform => Some("list platforms under requirements.platforms".into()),
            Self::TooManyEntries { .. } | Self::TooDeep { .. } => Some(
                "keep only what the image needs in the build context, or build the image with a \
                 container tool and read it with `source: {ociLayout: …}`"
                    .into(),
            ),
            Self::Io { .. } | Self::Store(_) => {
                Some("check free disk space and the permissions of the files named".into())
            }
            // The message says what to do.
            Self::SymlinkEscapes { .. } | Self::SpecialFile { .. } | Self::NonUtf8Name { .. } => {
                None
            }
        }
    }
}

fn io_at(path: &Path) -> impl FnOnce(io::Error) -> LocalImageError + '_ {
    move |source| LocalImageError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// A blob written to the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobRef {
    /// Its digest.
    pub digest: Digest,
    /// Its size in bytes.
    pub size: u64,
    /// Its media type.
    pub media_type: &'static str,
}

/// The result of a build: the index and every blob it references.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuiltImage {
    /// The digest of the OCI image index.
    pub digest: Digest,
    /// Always [`INDEX_MEDIA_TYPE`].
    pub media_type: &'static str,
    /// The index's size in bytes.
    pub size: u64,
    /// The platforms, one manifest each.
    pub platforms: Vec<Platform>,
    /// Every blob: the layer, then per platform the config and manifest, then the index.
    pub blobs: Vec<BlobRef>,
    /// True when the layer was not compressed again: an earlier build of the same unchanged
    /// files made it, and the store still holds it (see [`crate::local_image_reuse`]).
    pub layer_reused: bool,
}

/// One entry of the layer, in tar order.
#[derive(Debug)]
pub(crate) enum Entry {
    /// A folder.
    Dir { rel: String, mode: u32 },
    /// A regular file.
    File {
        rel: String,
        mode: u32,
        path: PathBuf,
        size: u64,
        /// [`airlift_bundle::proof::file_identity`] when scanned.
        identity: String,
        /// Its ctime when scanned: when it last changed.
        changed: Option<SystemTime>,
    },
    /// A symlink, kept as one.
    Symlink { rel: String, target: PathBuf },
}

impl Entry {
    /// When a file last changed (`None` for folders and symlinks, which are read whole when
    /// scanned).
    pub(crate) fn changed_at(&self) -> Option<SystemTime> {
        match self {
            Self::File { changed, .. } => *changed,
            Self::Dir { .. } | Self::Symlink { .. } => None,
        }
    }
}

/// Resolves `spec.context` under `definition_dir` (it must stay inside) and builds the image.
pub fn build_local_image(
    definition_dir: &Path,
    spec: &BuildSpec,
    platforms: &[Platform],
    store: &DirBlobStore,
) -> Result<BuiltImage, LocalImageError> {
    let context = resolve_context(definition_dir, &spec.context)?;
    if platforms.is_empty() {
        return Err(LocalImageError::NoPlatform);
    }
    let started = SystemTime::now();
    let entries = scan_context(&context)?;
    let inputs = Inputs::of(store, &entries, started);
    let recorded = inputs.as_ref().and_then(|i| i.recorded(store));
    let layer_reused = recorded.is_some();
    let (layer, diff_id) = match recorded {
        Some((digest, size, diff_id)) => (
            BlobRef {
                digest,
                size,
                media_type: LAYER_MEDIA_TYPE,
            },
            diff_id,
        ),
        None => {
            let (layer, diff_id) = write_layer(&entries, store)?;
            // The context scanned again: a change while it was read is not recorded (and one
            // that no longer scans is not an error of this build, which read it whole).
            if let (Some(inputs), Ok(after)) = (&inputs, scan_context(&context)) {
                inputs.record(&after, &layer.digest, &diff_id);
            }
            (layer, diff_id)
        }
    };
    let mut blobs = vec![layer.clone()];
    let mut manifests = Vec::new();
    for platform in platforms {
        let config = image_config(spec, platform, &diff_id);
        let config_ref = put_json(store, &config, CONFIG_MEDIA_TYPE)?;
        let manifest = ImageManifest {
            schema_version: 2,
            media_type: Some(MANIFEST_MEDIA_TYPE.to_string()),
            config: descriptor(&config_ref, None),
            layers: vec![descriptor(&layer, None)],
            annotations: BTreeMap::new(),
            extra: BTreeMap::new(),
        };
        let manifest_ref = put_json(store, &manifest, MANIFEST_MEDIA_TYPE)?;
        manifests.push(descriptor(&manifest_ref, Some(platform)));
        blobs.push(config_ref);
        blobs.push(manifest_ref);
    }
    let index = ImageIndex {
        schema_version: 2,
        media_type: Some(INDEX_MEDIA_TYPE.to_string()),
        manifests,
        annotations: BTreeMap::new(),
        extra: BTreeMap::new(),
    };
    let index_ref = put_json(store, &index, INDEX_MEDIA_TYPE)?;
    blobs.push(index_ref.clone());
    Ok(BuiltImage {
        digest: index_ref.digest,
        media_type: INDEX_MEDIA_TYPE,
        size: index_ref.size,
        platforms: platforms.to_vec(),
        blobs,
        layer_reused,
    })
}

fn resolve_context(definition_dir: &Path, context: &Path) -> Result<PathBuf, LocalImageError> {
    let bad = || LocalImageError::Context {
        path: context.to_path_buf(),
    };
    if context.is_absolute() || context.components().any(|c| c == Component::ParentDir) {
        return Err(bad());
    }
    let root = fs_err::canonicalize(definition_dir).map_err(io_at(definition_dir))?;
    let real = std::fs::canonicalize(root.join(context)).map_err(|_| bad())?;
    if !real.starts_with(&root) || !real.is_dir() {
        return Err(bad());
    }
    Ok(real)
}

/// The most files, folders and symlinks a build context may hold. Every entry is listed in
/// memory (about 250 bytes each) and sorted before the layer is written, so this bounds the
/// build's memory: a context this large is better built by a container tool and read from its
/// OCI layout.
pub const MAX_CONTEXT_ENTRIES: usize = 100_000;

/// The deepest a build context's folders may nest (the scan recurses once per level).
pub const MAX_CONTEXT_DEPTH: usize = 128;

/// How much of a context a scan takes before it refuses.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ScanBounds {
    entries: usize,
    depth: usize,
}

impl ScanBounds {
    /// [`MAX_CONTEXT_ENTRIES`] and [`MAX_CONTEXT_DEPTH`].
    pub(crate) const DEFAULT: Self = Self {
        entries: MAX_CONTEXT_ENTRIES,
        depth: MAX_CONTEXT_DEPTH,
    };
}

pub(crate) fn scan_context(root: &Path) -> Result<Vec<Entry>, LocalImageError> {
    scan_context_within(root, ScanBounds::DEFAULT)
}

/// Every entry of the context under `root`, sorted by path, within `bounds`.
pub(crate) fn scan_context_within(
    root: &Path,
    bounds: ScanBounds,
) -> Result<Vec<Entry>, LocalImageError> {
    let mut out = Vec::new();
    scan_dir(root, "", 1, bounds, &mut out).map_err(|e| match e {
        LocalImageError::TooManyEntries { limit, .. } => LocalImageError::TooManyEntries {
            context: root.to_path_buf(),
            limit,
        },
        other => other,
    })?;
    out.sort_by(|a, b| rel_of(a).cmp(rel_of(b)));
    Ok(out)
}

fn rel_of(e: &Entry) -> &str {
    match e {
        Entry::Dir { rel, .. } | Entry::File { rel, .. } | Entry::Symlink { rel, .. } => rel,
    }
}

fn scan_dir(
    dir: &Path,
    prefix: &str,
    depth: usize,
    bounds: ScanBounds,
    out: &mut Vec<Entry>,
) -> Result<(), LocalImageError> {
    use std::os::unix::fs::PermissionsExt;
    for item in fs_err::read_dir(dir).map_err(io_at(dir))? {
        let item = item.map_err(io_at(dir))?;
        if out.len() >= bounds.entries {
            return Err(LocalImageError::TooManyEntries {
                context: PathBuf::new(),
                limit: bounds.entries,
            });
        }
        let path = item.path();
        let Some(name) = item.file_name().to_str().map(str::to_string) else {
            return Err(LocalImageError::NonUtf8Name { path });
        };
        let rel = format!("{prefix}{name}");
        let meta = fs_err::symlink_metadata(&path).map_err(io_at(&path))?;
        let mode = meta.permissions().mode() & 0o7777;
        let ft = meta.file_type();
        if ft.is_dir() {
            if depth > bounds.depth {
                return Err(LocalImageError::TooDeep {
                    path: rel,
                    limit: bounds.depth,
                });
            }
            out.push(Entry::Dir {
                rel: rel.clone(),
                mode,
            });
            scan_dir(&path, &format!("{rel}/"), depth + 1, bounds, out)?;
        } else if ft.is_file() {
            let changed = u64::try_from(meta.ctime()).ok().map(|secs| {
                SystemTime::UNIX_EPOCH
                    + Duration::from_secs(secs)
                    + Duration::from_nanos(u64::try_from(meta.ctime_nsec()).unwrap_or(0))
            });
            out.push(Entry::File {
                rel,
                mode,
                path,
                size: meta.len(),
                identity: file_identity(&meta),
                changed,
            });
        } else if ft.is_symlink() {
            let target = fs_err::read_link(&path).map_err(io_at(&path))?;
            if !symlink_stays_inside(&rel, &target) {
                return Err(LocalImageError::SymlinkEscapes { path: rel, target });
            }
            out.push(Entry::Symlink { rel, target });
        } else {
            return Err(LocalImageError::SpecialFile { path: rel });
        }
    }
    Ok(())
}

/// True when a relative target, resolved from the link's folder, never climbs above the root.
fn symlink_stays_inside(rel: &str, target: &Path) -> bool {
    if target.is_absolute() {
        return false;
    }
    let mut depth: i64 = rel.matches('/').count() as i64;
    for c in target.components() {
        match c {
            Component::ParentDir => {
                depth -= 1;
                if depth < 0 {
                    return false;
                }
            }
            Component::Normal(_) => depth += 1,
            Component::CurDir => {}
            Component::RootDir | Component::Prefix(_) => return false,
        }
    }
    true
}

/// A reader that fails unless it yields exactly `remaining` bytes: a file that shrinks during the
/// build must not produce a corrupt tar.
struct Exact<R> {
    inner: R,
    remaining: u64,
    path: PathBuf,
}

impl<R: Read> Read for Exact<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.remaining == 0 {
            return Ok(0);
        }
        let want = usize::try_from(self.remaining)
            .unwrap_or(usize::MAX)
            .min(buf.len());
        let n = self.inner.read(&mut buf[..want])?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("`{}` changed size during the build", self.path.display()),
            ));
        }
        self.remaining -= n as u64;
        Ok(n)
    }
}

fn header(kind: tar::EntryType, mode: u32, size: u64) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_mode(mode);
    h.set_size(size);
    h.set_mtime(0);
    h.set_uid(0);
    h.set_gid(0);
    h
}

/// Writes the layer straight into `store` (compressed bytes written once, hashed on the way);
/// returns the stored blob and the uncompressed digest.
fn write_layer(
    entries: &[Entry],
    store: &DirBlobStore,
) -> Result<(BlobRef, Digest), LocalImageError> {
    let root = store.root().to_path_buf();
    let blob = store.new_blob_writer()?;
    let gz = flate2::GzBuilder::new()
        .mtime(0)
        .operating_system(255)
        .write(blob, flate2::Compression::default());
    let mut tar = tar::Builder::new(HashingWriter::new(gz));
    for e in entries {
        match e {
            Entry::Dir { rel, mode } => {
                let mut h = header(tar::EntryType::Directory, *mode, 0);
                tar.append_data(&mut h, format!("{rel}/"), io::empty())
                    .map_err(io_at(&root))?;
            }
            Entry::File {
                rel,
                mode,
                path,
                size,
                ..
            } => {
                let f = fs_err::File::open(path).map_err(io_at(path))?;
                let reader = Exact {
                    inner: f,
                    remaining: *size,
                    path: path.clone(),
                };
                let mut h = header(tar::EntryType::Regular, *mode, *size);
                tar.append_data(&mut h, rel, reader).map_err(io_at(path))?;
            }
            Entry::Symlink { rel, target } => {
                let mut h = header(tar::EntryType::Symlink, 0o777, 0);
                tar.append_link(&mut h, rel, target).map_err(io_at(&root))?;
            }
        }
    }
    let uncompressed = tar.into_inner().map_err(io_at(&root))?;
    let (gz, diff_id, _) = uncompressed.finish();
    let (digest, size) = gz.finish().map_err(io_at(&root))?.commit_new()?;
    Ok((
        BlobRef {
            digest,
            size,
            media_type: LAYER_MEDIA_TYPE,
        },
        diff_id,
    ))
}

fn put_json<T: Serialize>(
    store: &DirBlobStore,
    doc: &T,
    media_type: &'static str,
) -> Result<BlobRef, LocalImageError> {
    let bytes = serde_json::to_vec(doc).map_err(|e| LocalImageError::Io {
        path: store.root().to_path_buf(),
        source: io::Error::other(e),
    })?;
    let digest = Digest::of_bytes(&bytes);
    let size = store.put(&digest, &mut &bytes[..])?;
    Ok(BlobRef {
        digest,
        size,
        media_type,
    })
}

fn descriptor(blob: &BlobRef, platform: Option<&Platform>) -> Descriptor {
    Descriptor::new(blob.media_type, blob.digest.clone(), blob.size)
        .with_platform(platform.map(OciPlatform::from_platform))
}

#[derive(Serialize)]
struct ImageConfig {
    created: &'static str,
    architecture: String,
    os: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    variant: Option<String>,
    config: RunConfig,
    rootfs: RootFs,
    history: Vec<History>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct RunConfig {
    #[serde(skip_serializing_if = "Option::is_none")]
    user: Option<String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    exposed_ports: BTreeMap<String, serde_json::Map<String, serde_json::Value>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    env: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    entrypoint: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    cmd: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    working_dir: Option<String>,
}

#[derive(Serialize)]
struct RootFs {
    #[serde(rename = "type")]
    kind: &'static str,
    diff_ids: Vec<String>,
}

#[derive(Serialize)]
struct History {
    created: &'static str,
    created_by: String,
}

fn image_config(spec: &BuildSpec, platform: &Platform, diff_id: &Digest) -> ImageConfig {
    ImageConfig {
        created: EPOCH,
        architecture: platform.architecture.clone(),
        os: platform.os.clone(),
        variant: platform.variant.clone(),
        config: RunConfig {
            user: spec.user.clone(),
            exposed_ports: spec
                .ports
                .iter()
                .map(|p| {
                    let p = if p.contains('/') {
                        p.clone()
                    } else {
                        format!("{p}/tcp")
                    };
                    (p, serde_json::Map::new())
                })
                .collect(),
            env: spec.env.iter().map(|(k, v)| format!("{k}={v}")).collect(),
            entrypoint: spec.entrypoint.clone(),
            cmd: spec.cmd.clone(),
            working_dir: spec.workdir.clone(),
        },
        rootfs: RootFs {
            kind: "layers",
            diff_ids: vec![diff_id.to_string()],
        },
        history: vec![History {
            created: EPOCH,
            created_by: format!("airlift-pack: files of {}", spec.context.display()),
        }],
    }
}

#[cfg(test)]
#[path = "local_image_tests.rs"]
mod tests;
