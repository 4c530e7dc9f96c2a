//! The bundle reader: indexes a bundle's members in one pass over the tar headers, then serves any
//! member or blob with positioned reads. It never extracts anything.
//!
//! Opening is cheap (headers only). [`Bundle::open_trusted`] checks the signature before the
//! manifest is even parsed; [`Bundle::verify`](crate::reader::Bundle::verify) then hashes every
//! byte once.

use std::collections::HashMap;
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::digest::{Digest, Hasher};
use crate::error::{BundleError, IntegrityError};
use crate::limits;
use crate::oci::ImageIndex;
use crate::schema::manifest::{BundleManifest, BUNDLE_KIND, MANIFEST_PATH, SIGNATURE_PATH};
use crate::schema::API_VERSION;
use crate::source::BlobSource;
use crate::tar_safety::{self, MemberEntry};
use crate::trust::{self, SignatureStatus, Trust};

/// The largest `airlift.yaml` read into memory.
pub const MAX_MANIFEST_BYTES: u64 = 16 * 1024 * 1024;
/// The largest signature read into memory.
pub const MAX_SIGNATURE_BYTES: u64 = 4096;
/// The path of the OCI layout marker.
pub const OCI_LAYOUT_PATH: &str = "oci-layout";
/// The path of the OCI index.
pub const INDEX_PATH: &str = "index.json";
/// The prefix of blob members.
pub const BLOBS_PREFIX: &str = "blobs/sha256/";

/// The member path of a blob.
pub fn blob_member_path(digest: &Digest) -> String {
    format!("{BLOBS_PREFIX}{}", digest.hex())
}

/// An open bundle file: the member index, the manifest and the signature. Thread-safe; blobs are
/// served with positioned reads on one shared file handle.
///
/// A bundle opened with [`Bundle::open_members_trusted`] holds only its members (manifest,
/// signature, `oci-layout`, `index.json`, component files) in the file; its blobs are served by
/// another [`BlobSource`] (a published bundle's registry), limited to the blobs and sizes its
/// signed manifest lists.
#[derive(Debug)]
pub struct Bundle {
    path: PathBuf,
    file: File,
    entries: Vec<MemberEntry>,
    by_path: HashMap<String, usize>,
    blobs: HashMap<Digest, usize>,
    manifest: BundleManifest,
    manifest_bytes: Vec<u8>,
    signature: Option<Vec<u8>>,
    status: SignatureStatus,
    elsewhere: Option<Elsewhere>,
}

/// Where the blobs of a members-only bundle are, and the sizes its signed manifest lists.
struct Elsewhere {
    origin: String,
    source: Arc<dyn BlobSource>,
    sizes: HashMap<Digest, u64>,
}

impl std::fmt::Debug for Elsewhere {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Elsewhere")
            .field("origin", &self.origin)
            .field("blobs", &self.sizes.len())
            .finish_non_exhaustive()
    }
}

/// A bundle whose headers are indexed and whose manifest bytes are read, but not yet parsed.
struct Raw {
    path: PathBuf,
    file: File,
    entries: Vec<MemberEntry>,
    manifest_bytes: Vec<u8>,
    signature: Option<Vec<u8>>,
}

fn read_exact_at(file: &File, offset: u64, len: u64, path: &Path) -> Result<Vec<u8>, BundleError> {
    let n = usize::try_from(len).map_err(|_| BundleError::TooLarge {
        what: path.display().to_string(),
        size: len,
        limit: usize::MAX as u64,
    })?;
    let mut buf = vec![0u8; n];
    file.read_exact_at(&mut buf, offset)
        .map_err(|source| BundleError::Io {
            path: path.to_path_buf(),
            source,
        })?;
    Ok(buf)
}

impl Raw {
    fn scan(path: &Path) -> Result<Self, BundleError> {
        let file = File::open(path).map_err(|source| BundleError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Self::scan_file(file, path)
    }

    fn scan_file(file: File, path: &Path) -> Result<Self, BundleError> {
        let entries = tar_safety::scan(&file).map_err(|source| BundleError::Tar {
            path: path.to_path_buf(),
            source,
        })?;
        let first = entries.first().ok_or(IntegrityError::ManifestNotFirst {
            found: String::new(),
        })?;
        if first.path != MANIFEST_PATH {
            return Err(IntegrityError::ManifestNotFirst {
                found: first.path.clone(),
            }
            .into());
        }
        if first.size > MAX_MANIFEST_BYTES {
            return Err(BundleError::TooLarge {
                what: MANIFEST_PATH.into(),
                size: first.size,
                limit: MAX_MANIFEST_BYTES,
            });
        }
        let manifest_bytes = read_exact_at(&file, first.data_offset, first.size, path)?;
        let signature = match entries.iter().position(|e| e.path == SIGNATURE_PATH) {
            None => None,
            Some(1) => {
                let e = &entries[1];
                if e.size > MAX_SIGNATURE_BYTES {
                    return Err(BundleError::TooLarge {
                        what: SIGNATURE_PATH.into(),
                        size: e.size,
                        limit: MAX_SIGNATURE_BYTES,
                    });
                }
                Some(read_exact_at(&file, e.data_offset, e.size, path)?)
            }
            Some(i) => return Err(IntegrityError::SignatureMisplaced { position: i + 1 }.into()),
        };
        Ok(Self {
            path: path.to_path_buf(),
            file,
            entries,
            manifest_bytes,
            signature,
        })
    }

    /// Parses the manifest and checks the members against it. With `elsewhere` (an origin and a
    /// source), the file must hold no blob and the blobs are served by that source.
    fn into_bundle(
        self,
        status: SignatureStatus,
        elsewhere: Option<(String, Arc<dyn BlobSource>)>,
    ) -> Result<Bundle, BundleError> {
        let manifest = parse_manifest(&self.manifest_bytes)?;
        let by_path: HashMap<String, usize> = self
            .entries
            .iter()
            .enumerate()
            .map(|(i, e)| (e.path.clone(), i))
            .collect();
        let local_blobs = elsewhere.is_none();
        check_listing(&manifest, &self.entries, &by_path, local_blobs)?;
        check_order(
            &manifest,
            &self.entries,
            self.signature.is_some(),
            local_blobs,
        )?;
        let created = crate::time::rfc3339_to_epoch(&manifest.build.created);
        if let Some(first) = self.entries.first().filter(|e| e.mtime != created) {
            return Err(IntegrityError::HeaderTime {
                mtime: first.mtime,
                created,
                created_text: manifest.build.created.clone(),
            }
            .into());
        }
        let blobs = manifest
            .blobs
            .iter()
            .filter_map(|b| {
                by_path
                    .get(&blob_member_path(&b.digest))
                    .map(|&i| (b.digest.clone(), i))
            })
            .collect();
        let elsewhere = elsewhere.map(|(origin, source)| Elsewhere {
            origin,
            source,
            sizes: manifest
                .blobs
                .iter()
                .map(|b| (b.digest.clone(), b.size))
                .collect(),
        });
        Ok(Bundle {
            path: elsewhere
                .as_ref()
                .map_or(self.path, |e| PathBuf::from(&e.origin)),
            file: self.file,
            entries: self.entries,
            by_path,
            blobs,
            manifest,
            manifest_bytes: self.manifest_bytes,
            signature: self.signature,
            status,
            elsewhere,
        })
    }
}

/// Parses `airlift.yaml` (its nesting bounded first) and checks its `apiVersion` and `kind`.
/// Call it only on bytes whose signature was checked ([`trust::check_signature`]).
pub fn parse_manifest(bytes: &[u8]) -> Result<BundleManifest, BundleError> {
    limits::check_nesting(bytes, MANIFEST_PATH, limits::MAX_NESTING)?;
    let manifest: BundleManifest =
        serde_yaml::from_slice(bytes).map_err(BundleError::ManifestInvalid)?;
    if manifest.api_version != API_VERSION || manifest.kind != BUNDLE_KIND {
        return Err(BundleError::ManifestVersion {
            api_version: manifest.api_version,
            kind: manifest.kind,
        });
    }
    Ok(manifest)
}

/// Every tar member must be listed, every listed member present, with the listed size. Without
/// `local_blobs`, the file must hold no blob (they are served from elsewhere).
fn check_listing(
    manifest: &BundleManifest,
    entries: &[MemberEntry],
    by_path: &HashMap<String, usize>,
    local_blobs: bool,
) -> Result<(), IntegrityError> {
    let members: HashMap<&str, u64> = manifest
        .members
        .iter()
        .map(|m| (m.path.as_str(), m.size))
        .collect();
    let blobs: HashMap<&Digest, u64> = manifest.blobs.iter().map(|b| (&b.digest, b.size)).collect();
    for e in entries {
        if e.path == MANIFEST_PATH || e.path == SIGNATURE_PATH {
            continue;
        }
        if let Some(hex) = e.path.strip_prefix(BLOBS_PREFIX) {
            let listed = format!("sha256:{hex}")
                .parse::<Digest>()
                .ok()
                .and_then(|d| blobs.get(&d).map(|s| (d, *s)))
                .filter(|_| local_blobs);
            match listed {
                Some((digest, size)) if size != e.size => {
                    return Err(IntegrityError::BlobSize {
                        digest,
                        member: e.path.clone(),
                        listed: size,
                        actual: e.size,
                    })
                }
                Some(_) => continue,
                None => match format!("sha256:{hex}").parse::<Digest>() {
                    Ok(digest) => {
                        return Err(IntegrityError::ExtraBlob {
                            digest,
                            member: e.path.clone(),
                        })
                    }
                    Err(_) => {
                        return Err(IntegrityError::ExtraMember {
                            path: e.path.clone(),
                        })
                    }
                },
            }
        }
        match members.get(e.path.as_str()) {
            Some(&size) if size != e.size => {
                return Err(IntegrityError::MemberSize {
                    path: e.path.clone(),
                    listed: size,
                    actual: e.size,
                })
            }
            Some(_) => {}
            None => {
                return Err(IntegrityError::ExtraMember {
                    path: e.path.clone(),
                })
            }
        }
    }
    for m in &manifest.members {
        if !by_path.contains_key(&m.path) {
            return Err(IntegrityError::MissingMember {
                path: m.path.clone(),
            });
        }
    }
    for b in manifest.blobs.iter().filter(|_| local_blobs) {
        let member = blob_member_path(&b.digest);
        if !by_path.contains_key(&member) {
            return Err(IntegrityError::MissingBlob {
                digest: b.digest.clone(),
                member,
            });
        }
    }
    Ok(())
}

/// The members must be in the order the writer puts them: the manifest, the signature,
/// `oci-layout`, `index.json`, the component files by path, then (with `local_blobs`) the blobs
/// by digest.
fn check_order(
    manifest: &BundleManifest,
    entries: &[MemberEntry],
    signed: bool,
    local_blobs: bool,
) -> Result<(), IntegrityError> {
    let mut files: Vec<&str> = manifest
        .members
        .iter()
        .map(|m| m.path.as_str())
        .filter(|p| *p != OCI_LAYOUT_PATH && *p != INDEX_PATH)
        .collect();
    files.sort_unstable();
    let mut blobs: Vec<String> = manifest
        .blobs
        .iter()
        .filter(|_| local_blobs)
        .map(|b| blob_member_path(&b.digest))
        .collect();
    blobs.sort_unstable();
    let expected = [MANIFEST_PATH]
        .into_iter()
        .chain(signed.then_some(SIGNATURE_PATH))
        .chain([OCI_LAYOUT_PATH, INDEX_PATH])
        .chain(files)
        .chain(blobs.iter().map(String::as_str));
    for (i, (entry, want)) in entries.iter().zip(expected).enumerate() {
        if entry.path != want {
            return Err(IntegrityError::MemberOrder {
                position: i + 1,
                found: entry.path.clone(),
                expected: want.to_string(),
            });
        }
    }
    Ok(())
}

impl Bundle {
    /// Opens a bundle without checking its signature: indexes the tar headers (rejecting hostile
    /// archives), refuses a removed or non-canonical signature, reads and parses the manifest,
    /// and checks that the members match its listing.
    /// Reads no blob. Use [`Bundle::open_trusted`] before acting on the content.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, BundleError> {
        let raw = Raw::scan(path.as_ref())?;
        let status = trust::unchecked_status(&raw.manifest_bytes, raw.signature.as_deref())?;
        raw.into_bundle(status, None)
    }

    /// Opens a bundle and applies `trust` to its signature before the manifest is parsed. The
    /// blobs are not hashed yet: call [`Bundle::verify`] for that.
    pub fn open_trusted(path: impl AsRef<Path>, trust: &Trust) -> Result<Self, BundleError> {
        let raw = Raw::scan(path.as_ref())?;
        let status = trust::check_signature(&raw.manifest_bytes, raw.signature.as_deref(), trust)?;
        raw.into_bundle(status, None)
    }

    /// Opens a bundle whose `file` holds only its members, in the canonical encoding and order
    /// (the manifest, the signature, `oci-layout`, `index.json`, the component files, then the
    /// end of the archive), and whose blobs `blobs` serves. `trust` is applied to the signature
    /// before the manifest is parsed; the members are checked against its listing like any
    /// bundle's; a blob in the file is refused. Only the blobs the signed manifest lists are
    /// read from `blobs`, and no further than their listed sizes; nothing checks their bytes
    /// here: read them through a consumer that hashes them (the verifying push does).
    /// `origin` names the bundle in messages and is what [`Bundle::path`] returns, e.g.
    /// `oci://registry.vendor.io/acme/shop:1.2.0`.
    pub fn open_members_trusted(
        file: File,
        origin: &str,
        trust: &Trust,
        blobs: Arc<dyn BlobSource>,
    ) -> Result<Self, BundleError> {
        let raw = Raw::scan_file(file, Path::new(origin))?;
        let status = trust::check_signature(&raw.manifest_bytes, raw.signature.as_deref(), trust)?;
        raw.into_bundle(status, Some((origin.to_string(), blobs)))
    }

    /// The bundle file's path; for a bundle opened with [`Bundle::open_members_trusted`], its
    /// origin (e.g. `oci://HOST/REPO:TAG`).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Where the blobs are when they are not in the file ([`Bundle::open_members_trusted`]).
    pub fn blobs_origin(&self) -> Option<&str> {
        self.elsewhere.as_ref().map(|e| e.origin.as_str())
    }

    /// Refuses an operation that needs the whole bundle file, when the blobs are elsewhere.
    pub(crate) fn require_local_blobs(&self) -> Result<(), BundleError> {
        match &self.elsewhere {
            Some(e) => Err(BundleError::BlobsElsewhere {
                origin: e.origin.clone(),
            }),
            None => Ok(()),
        }
    }

    /// The open file (for metadata such as the recorded proof).
    pub(crate) fn file(&self) -> &File {
        &self.file
    }

    /// The parsed manifest. Trust it only after [`Bundle::open_trusted`] or [`Bundle::verify`].
    pub fn manifest(&self) -> &BundleManifest {
        &self.manifest
    }

    /// The manifest exactly as stored (what the signature covers).
    pub fn manifest_bytes(&self) -> &[u8] {
        &self.manifest_bytes
    }

    /// The DER signature, when the bundle is signed.
    pub fn signature(&self) -> Option<&[u8]> {
        self.signature.as_deref()
    }

    /// What is known about the signature: from [`Bundle::open`], unchecked; from
    /// [`Bundle::open_trusted`], the outcome of the check.
    pub fn signature_status(&self) -> &SignatureStatus {
        &self.status
    }

    /// Every member in archive order, with its offsets.
    pub fn members(&self) -> &[MemberEntry] {
        &self.entries
    }

    /// The member at `path`, if present.
    pub fn member(&self, path: &str) -> Option<&MemberEntry> {
        self.by_path.get(path).map(|&i| &self.entries[i])
    }

    /// The sum of every blob's size.
    pub fn blobs_size(&self) -> u64 {
        self.manifest.blobs.iter().map(|b| b.size).sum()
    }

    /// Reads a listed member (not a blob) into memory, refusing above `limit` bytes, and checks
    /// it against the digest the manifest lists.
    pub fn read_member(&self, path: &str, limit: u64) -> Result<Vec<u8>, BundleError> {
        let record = self
            .manifest
            .members
            .iter()
            .find(|m| m.path == path)
            .ok_or_else(|| BundleError::NotFound { what: path.into() })?;
        let entry = self
            .member(path)
            .ok_or_else(|| BundleError::NotFound { what: path.into() })?;
        if entry.size > limit {
            return Err(BundleError::TooLarge {
                what: path.into(),
                size: entry.size,
                limit,
            });
        }
        let bytes = read_exact_at(&self.file, entry.data_offset, entry.size, &self.path)?;
        let actual = Digest::of_bytes(&bytes);
        if actual != record.digest {
            return Err(IntegrityError::TamperedMember {
                path: path.into(),
                listed: record.digest.clone(),
                actual,
            }
            .into());
        }
        Ok(bytes)
    }

    /// Reads a blob into memory (manifests, configs), refusing above `limit` bytes, and checks
    /// its digest.
    pub fn read_blob(&self, digest: &Digest, limit: u64) -> Result<Vec<u8>, BundleError> {
        if self.elsewhere.is_some() {
            return crate::walk::read_small(self, digest, limit).map_err(|e| match e {
                crate::walk::SmallReadError::Missing(d) => BundleError::NotFound {
                    what: d.to_string(),
                },
                crate::walk::SmallReadError::TooLarge { size, limit } => BundleError::TooLarge {
                    what: digest.to_string(),
                    size,
                    limit,
                },
                crate::walk::SmallReadError::DigestMismatch { actual } => {
                    IntegrityError::TamperedBlob {
                        digest: digest.clone(),
                        member: blob_member_path(digest),
                        actual,
                    }
                    .into()
                }
                crate::walk::SmallReadError::Io(source) => BundleError::Io {
                    path: self.path.clone(),
                    source,
                },
            });
        }
        let entry = self
            .blob_member(digest)
            .ok_or_else(|| BundleError::NotFound {
                what: digest.to_string(),
            })?;
        if entry.size > limit {
            return Err(BundleError::TooLarge {
                what: digest.to_string(),
                size: entry.size,
                limit,
            });
        }
        let bytes = read_exact_at(&self.file, entry.data_offset, entry.size, &self.path)?;
        let mut h = Hasher::new();
        h.update(&bytes);
        let actual = h.finish();
        if &actual != digest {
            return Err(IntegrityError::TamperedBlob {
                digest: digest.clone(),
                member: entry.path.clone(),
                actual,
            }
            .into());
        }
        Ok(bytes)
    }

    /// The OCI layout's `index.json`, checked against its listed digest and parsed.
    pub fn index(&self) -> Result<ImageIndex, BundleError> {
        let bytes = self.read_member(INDEX_PATH, MAX_MANIFEST_BYTES)?;
        limits::check_nesting(&bytes, INDEX_PATH, limits::MAX_NESTING)?;
        serde_json::from_slice(&bytes).map_err(BundleError::IndexInvalid)
    }

    /// The tar member of blob `digest`, with its offsets.
    pub fn blob_member(&self, digest: &Digest) -> Option<&MemberEntry> {
        self.blobs.get(digest).map(|&i| &self.entries[i])
    }

    pub(crate) fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        self.file.read_at(buf, offset)
    }
}

impl BlobSource for Bundle {
    fn blob_size(&self, digest: &Digest) -> Option<u64> {
        match &self.elsewhere {
            Some(e) => e.sizes.get(digest).copied(),
            None => self.blob_member(digest).map(|e| e.size),
        }
    }

    fn read_blob_at(&self, digest: &Digest, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
        if let Some(e) = &self.elsewhere {
            let size = *e.sizes.get(digest).ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::NotFound,
                    format!("blob {digest} is not listed by bundle `{}`", e.origin),
                )
            })?;
            if offset >= size {
                return Ok(0);
            }
            let want = usize::try_from(size - offset)
                .unwrap_or(usize::MAX)
                .min(buf.len());
            return e.source.read_blob_at(digest, offset, &mut buf[..want]);
        }
        let entry = self.blob_member(digest).ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::NotFound,
                format!("blob {digest} is not in bundle `{}`", self.path.display()),
            )
        })?;
        if offset >= entry.size {
            return Ok(0);
        }
        let left = entry.size - offset;
        let want = usize::try_from(left).unwrap_or(usize::MAX).min(buf.len());
        self.file
            .read_at(&mut buf[..want], entry.data_offset + offset)
    }
}
