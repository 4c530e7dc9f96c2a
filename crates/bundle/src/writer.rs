//! The bundle writer: one deterministic, uncompressed tar that is also an OCI image layout.
//!
//! Member order: `airlift.yaml`, `airlift.yaml.sig` (when signed), `oci-layout`, `index.json`,
//! the component files sorted by path, then `blobs/sha256/<hex>` sorted by digest. Every header
//! has mode 0644, uid/gid 0, empty owner names and the manifest's build time as mtime, so the same
//! inputs give the same bytes. Blobs stream from any [`BlobSource`] and are hashed on the way,
//! except a blob the source proves unchanged since it was hashed ([`BlobSource::proven_file`]:
//! the packager's cache, in the same boot), which is copied kernel-side without being read;
//! the tar is written to a temporary file next to the output and renamed into place at the end.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::canonical;
use crate::digest::{Digest, HashingReader};
use crate::oci::{
    Descriptor, ImageIndex, ANNOTATION_REF_NAME, MEDIA_TYPE_OCI_INDEX, OCI_LAYOUT_CONTENT,
};
use crate::progress::Progress;
use crate::reader::{blob_member_path, INDEX_PATH, OCI_LAYOUT_PATH};
use crate::schema::manifest::{
    BlobRecord, BundleManifest, MemberRecord, MANIFEST_PATH, SIGNATURE_PATH,
};
use crate::sign::PrivateKey;
use crate::source::{BlobSource, BlobSourceReader};
use crate::tar_safety::{self, TarError};
use crate::walk::{self, WalkError};

/// Prefix of component file members.
pub const COMPONENTS_PREFIX: &str = "components/";
const BUF: usize = 1024 * 1024;

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
            WriteError::Serialize(_) | WriteError::SerializeIndex(_) => "report this as a bug".into(),
        }
    }
}

struct TarOut {
    out: BufWriter<tempfile::NamedTempFile>,
    mtime: u64,
    path: PathBuf,
}

impl TarOut {
    fn io(&self) -> impl FnOnce(io::Error) -> WriteError + '_ {
        move |source| WriteError::Io {
            path: self.path.clone(),
            source,
        }
    }

    fn header(&self, path: &str, size: u64) -> Result<[u8; 512], WriteError> {
        canonical::member_header(path, size, self.mtime).map_err(self.io())
    }

    fn pad(&mut self, size: u64) -> Result<(), WriteError> {
        let zeros = [0u8; 512];
        let w = self
            .out
            .write_all(&zeros[..canonical::padding(size) as usize]);
        w.map_err(self.io())
    }

    fn append_bytes(&mut self, path: &str, data: &[u8]) -> Result<(), WriteError> {
        let h = self.header(path, data.len() as u64)?;
        let w = self
            .out
            .write_all(&h)
            .and_then(|()| self.out.write_all(data));
        w.map_err(self.io())?;
        self.pad(data.len() as u64)
    }

    fn append_blob(
        &mut self,
        source: &dyn BlobSource,
        digest: &Digest,
        size: u64,
        progress: &dyn Progress,
        label: &str,
    ) -> Result<(), WriteError> {
        let h = self.header(&blob_member_path(digest), size)?;
        let w = self.out.write_all(&h);
        w.map_err(self.io())?;
        if let Some(file) = source
            .proven_file(digest)
            .filter(|f| f.metadata().is_ok_and(|m| m.len() == size))
        {
            self.copy_proven(&file, digest, size, progress, label)?;
            return self.pad(size);
        }
        let token = source.proof_token(digest);
        let reader = BlobSourceReader::range(source, digest.clone(), 0, size);
        let mut hashing = HashingReader::new(BufReader::with_capacity(BUF, reader));
        let mut buf = vec![0u8; BUF];
        loop {
            let n = hashing.read(&mut buf).map_err(self.io())?;
            if n == 0 {
                break;
            }
            let w = self.out.write_all(&buf[..n]);
            w.map_err(self.io())?;
            progress.advance(label, n as u64);
        }
        let (actual, len) = hashing.finish();
        if &actual != digest || len != size {
            return Err(WriteError::SourceCorrupt {
                digest: digest.clone(),
                actual,
            });
        }
        if let Some(token) = token {
            source.record_proof(digest, &token);
        }
        self.pad(size)
    }

    /// Copies exactly `size` bytes of a proven blob file (see [`BlobSource::proven_file`]) into
    /// the bundle kernel-side (`copy_file_range` through `std::io::copy`, on Linux), without
    /// hashing them.
    fn copy_proven(
        &mut self,
        file: &std::fs::File,
        digest: &Digest,
        size: u64,
        progress: &dyn Progress,
        label: &str,
    ) -> Result<(), WriteError> {
        let flushed = self.out.flush();
        flushed.map_err(self.io())?;
        let mut src = Read::take(file, size);
        let mut copied = 0;
        loop {
            let dst = self.out.get_mut().as_file_mut();
            let n = io::copy(&mut Read::take(&mut src, PROVEN_CHUNK), dst);
            let n = n.map_err(self.io())?;
            if n == 0 {
                break;
            }
            copied += n;
            progress.advance(label, n);
        }
        if copied != size {
            let short = io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("cached blob {digest} ended after {copied} of {size} bytes"),
            );
            return Err(self.io()(short));
        }
        Ok(())
    }
}

/// How much of a proven blob is copied between two progress reports.
const PROVEN_CHUNK: u64 = 64 * 1024 * 1024;

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

    let dir = match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let io_out = |source| WriteError::Io {
        path: out.to_path_buf(),
        source,
    };
    let tmp = tempfile::Builder::new()
        .prefix(".airlift-partial-")
        .tempfile_in(&dir)
        .map_err(|source| WriteError::Io {
            path: dir.clone(),
            source,
        })?;
    let mut tar = TarOut {
        out: BufWriter::with_capacity(BUF, tmp),
        mtime: crate::time::rfc3339_to_epoch(&manifest.build.created),
        path: out.to_path_buf(),
    };
    tar.append_bytes(MANIFEST_PATH, &manifest_bytes)?;
    if let Some(sig) = &signature {
        tar.append_bytes(SIGNATURE_PATH, sig)?;
    }
    tar.append_bytes(OCI_LAYOUT_PATH, OCI_LAYOUT_CONTENT.as_bytes())?;
    tar.append_bytes(INDEX_PATH, &index_bytes)?;
    for f in &files {
        tar.append_bytes(&f.path, &f.data)?;
    }
    let total: u64 = blobs.values().sum();
    progress.start("write", Some(total));
    for (digest, size) in &blobs {
        tar.append_blob(source, digest, *size, progress, "write")?;
    }
    progress.finish("write");
    // End of archive: two zero blocks.
    let w = tar.out.write_all(&canonical::TRAILER);
    w.map_err(io_out)?;
    // The deliverable is on disk when the command returns (the cache it was read from need not
    // be: see `DirBlobStore`), and appears under its final name only when complete.
    let tmp = tar.out.into_inner().map_err(|e| io_out(e.into_error()))?;
    tmp.as_file().sync_all().map_err(io_out)?;
    let size = tmp.as_file().metadata().map_err(io_out)?.len();
    // Temporary files are created 0600; a bundle is not secret.
    std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o644)).map_err(io_out)?;
    tmp.persist(out).map_err(|e| io_out(e.error))?;
    Ok(WrittenBundle {
        path: out.to_path_buf(),
        size,
        manifest_digest: Digest::of_bytes(&manifest_bytes),
        manifest,
    })
}
