//! Random-access blob sources and the content-addressed blob store.
//!
//! [`BlobSource`] is the one interface every consumer of blobs uses: the bundle writer reads blobs
//! from it, the registry push streams from it, and the read-only endpoint serves ranges from it.
//! Positioned reads make it safe to share between threads without seeking.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use crate::digest::{Digest, HashingWriter};
use crate::proof::{ProofKey, ProofStore};

/// Errors from the blob store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Reading or writing a file of the store failed.
    #[error("blob store I/O failed at `{path}`")]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// The bytes written do not hash to the digest they were announced with.
    #[error(
        "blob content does not match its digest: expected {expected}, got {actual} ({size} bytes)"
    )]
    DigestMismatch {
        /// The announced digest.
        expected: Digest,
        /// What the bytes hash to.
        actual: Digest,
        /// How many bytes were written.
        size: u64,
    },
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> StoreError + '_ {
    move |source| StoreError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// A source of blobs that supports positioned reads.
pub trait BlobSource: Send + Sync {
    /// The blob's size, or `None` when the source does not hold it.
    fn blob_size(&self, digest: &Digest) -> Option<u64>;

    /// Reads bytes of the blob starting at `offset` into `buf`; returns how many (0 at the end).
    fn read_blob_at(&self, digest: &Digest, offset: u64, buf: &mut [u8]) -> io::Result<usize>;

    /// Bytes of a file known to be the blob `digest` without reading them (a recorded proof
    /// for this exact, unchanged file: a blob file, or a range of a bundle the store holds),
    /// so a writer may copy them kernel-side instead of hashing them. `None` (the default)
    /// when the source has no such proof: the caller then reads through
    /// [`BlobSource::read_blob_at`] and hashes.
    fn proven_range(&self, digest: &Digest) -> Option<ProvenRange> {
        let _ = digest;
        None
    }

    /// Starts proving `digest` before it is read and hashed: the identity of the file it is
    /// read from, when the source records proofs (`None`, the default, when it does not).
    fn proof_token(&self, digest: &Digest) -> Option<ProofKey> {
        let _ = digest;
        None
    }

    /// Records that `digest` was read and hashed to its digest, if the file it was read from is
    /// still exactly as `token` says (so nothing changed it while it was read).
    fn record_proof(&self, digest: &Digest, token: &ProofKey) {
        let _ = (digest, token);
    }

    /// A sequential reader over the whole blob, or `None` when the source does not hold it.
    fn blob_reader(&self, digest: &Digest) -> Option<BlobSourceReader<'_, Self>>
    where
        Self: Sized,
    {
        let size = self.blob_size(digest)?;
        Some(BlobSourceReader {
            source: self,
            digest: digest.clone(),
            pos: 0,
            end: size,
        })
    }
}

/// Bytes of a file proven to be one blob ([`BlobSource::proven_range`]).
#[derive(Debug)]
pub struct ProvenRange {
    /// The file.
    pub file: File,
    /// Where the blob's first byte is.
    pub offset: u64,
    /// The blob's size, as proven.
    pub size: u64,
}

/// Reads one blob of a [`BlobSource`] sequentially, from a start offset to its end.
pub struct BlobSourceReader<'a, S: ?Sized> {
    source: &'a S,
    digest: Digest,
    pos: u64,
    end: u64,
}

impl<'a, S: BlobSource + ?Sized> BlobSourceReader<'a, S> {
    /// A reader over `[start, end)` of the blob `digest` of `source`.
    pub fn range(source: &'a S, digest: Digest, start: u64, end: u64) -> Self {
        Self {
            source,
            digest,
            pos: start,
            end,
        }
    }
}

impl<S: BlobSource + ?Sized> Read for BlobSourceReader<'_, S> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = self.end.saturating_sub(self.pos);
        if left == 0 || buf.is_empty() {
            return Ok(0);
        }
        let want = usize::try_from(left).unwrap_or(usize::MAX).min(buf.len());
        let n = self
            .source
            .read_blob_at(&self.digest, self.pos, &mut buf[..want])?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("blob {} ended early at byte {}", self.digest, self.pos),
            ));
        }
        self.pos += n as u64;
        Ok(n)
    }
}

/// A content-addressed blob store on disk: `<root>/sha256/<hex>`. Blobs are written to a temporary
/// file, hashed while written, and renamed into place only when the digest matches, so the store
/// never holds a partial or wrong blob. Used as the packager's download cache.
///
/// With [`DirBlobStore::with_proofs`], each committed blob's file identity is recorded (see
/// [`ProofStore::key_for_blob_file`]), and [`BlobSource::proven_range`] hands out blobs whose file
/// is unchanged since, in the same boot, so a rebuild from the cache neither re-reads nor
/// re-hashes them. With [`DirBlobStore::with_held_bundles`] the store also holds blobs as ranges
/// of bundles it links ([`crate::held`]).
#[derive(Debug, Clone)]
pub struct DirBlobStore {
    root: PathBuf,
    /// Blobs opened for positioned reads, so streaming a blob opens it once, not once per read.
    open: Arc<Mutex<HashMap<Digest, Arc<Opened>>>>,
    /// Where committed blobs' proofs are recorded, when enabled.
    proofs: Option<ProofStore>,
    /// Whether blobs are also looked up in held bundles.
    holds: bool,
}

/// A blob open for reading: its own file (offset 0, read to the file's end), or a range of a
/// held bundle.
#[derive(Debug)]
struct Opened {
    file: File,
    offset: u64,
    /// The blob's size for a range; `None` for a file of its own.
    size: Option<u64>,
}

impl Opened {
    /// The proof key of the blob as it is now.
    fn proof_key(&self, proofs: &ProofStore, digest: &Digest) -> io::Result<ProofKey> {
        match self.size {
            None => proofs.key_for_blob_file(&self.file, digest),
            Some(size) => proofs.key_for_range(&self.file, self.offset, size, digest),
        }
    }
}

/// The folder under a store's root that holds its blob proofs.
pub const PROOFS_DIR: &str = "proofs";

/// How many blob files a store keeps open for reading.
const OPEN_FILES: usize = 64;

impl DirBlobStore {
    /// Opens (and creates) a store at `root`.
    pub fn open(root: impl Into<PathBuf>) -> Result<Self, StoreError> {
        let root = root.into();
        let blobs = root.join("sha256");
        std::fs::create_dir_all(&blobs).map_err(io_err(&blobs))?;
        Ok(Self {
            root,
            open: Arc::default(),
            proofs: None,
            holds: false,
        })
    }

    /// Also holds blobs as ranges of bundles linked into the store (the packager's cache, see
    /// [`crate::held`]): [`DirBlobStore::hold_bundle`], and lookups that find them.
    pub fn with_held_bundles(mut self) -> Self {
        self.holds = true;
        self
    }

    /// True when the store holds blobs in bundles ([`DirBlobStore::with_held_bundles`]).
    pub fn holds_bundles(&self) -> bool {
        self.holds
    }

    /// Where `digest` is held in a bundle, when the store holds bundles and one has it.
    pub(crate) fn held_range(&self, digest: &Digest) -> Option<crate::held::HeldRange> {
        self.holds
            .then(|| crate::held::read_entry(&self.root, digest))
            .flatten()
    }

    /// Records a proof for every blob committed from now on, in `<root>/proofs` (authenticated
    /// with a private key kept there), and trusts blobs whose proof still matches their file.
    pub fn with_proofs(mut self) -> Self {
        self.proofs = Some(ProofStore::at(self.root.join(PROOFS_DIR)));
        self
    }

    /// Records and trusts proofs of this store's blob files in `proofs`, kept outside the store:
    /// for a folder that is not ours (an OCI layout's `blobs`), so nothing is written into it.
    pub fn with_proof_store(mut self, proofs: ProofStore) -> Self {
        self.proofs = Some(proofs);
        self
    }

    /// Where this store records proofs, when it does.
    pub fn proof_store(&self) -> Option<&ProofStore> {
        self.proofs.as_ref()
    }

    /// The store's folder.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where `digest` lives as a file of its own (whether or not it is there); a blob may
    /// instead be held in a bundle ([`DirBlobStore::is_held`]).
    pub fn path_of(&self, digest: &Digest) -> PathBuf {
        self.root.join("sha256").join(digest.hex())
    }

    /// True when the store holds `digest`, as a file or in a held bundle.
    pub fn contains(&self, digest: &Digest) -> bool {
        self.path_of(digest).is_file() || self.held_range(digest).is_some()
    }

    /// Forgets `digest` (its file, or its entry in a held bundle): for a blob found damaged,
    /// so the next build fetches it again.
    pub fn forget(&self, digest: &Digest) {
        let _ = std::fs::remove_file(self.path_of(digest));
        crate::held::remove_entry(&self.root, digest);
        self.close(digest);
    }

    /// Closes the file `digest` was read from, so its next read opens where the store now
    /// keeps it (and a held bundle nothing points at is not kept open).
    pub(crate) fn close(&self, digest: &Digest) {
        if let Ok(mut open) = self.open.lock() {
            open.remove(digest);
        }
    }

    /// Where `digest` is read from: kept open across positioned reads (a bounded number of
    /// blobs), so streaming a blob opens it once and its proof names the file that was read.
    fn handle(&self, digest: &Digest) -> io::Result<Arc<Opened>> {
        let cached = self
            .open
            .lock()
            .ok()
            .and_then(|open| open.get(digest).cloned());
        if let Some(f) = cached {
            return Ok(f);
        }
        let f = Arc::new(self.open_blob(digest)?);
        if let Ok(mut open) = self.open.lock() {
            if open.len() >= OPEN_FILES {
                open.clear();
            }
            open.insert(digest.clone(), f.clone());
        }
        Ok(f)
    }

    /// Opens `digest`: its file, or else its range of a held bundle.
    fn open_blob(&self, digest: &Digest) -> io::Result<Opened> {
        match File::open(self.path_of(digest)) {
            Ok(file) => Ok(Opened {
                file,
                offset: 0,
                size: None,
            }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                let range = self.held_range(digest).ok_or(e)?;
                Ok(Opened {
                    file: File::open(&range.bundle)?,
                    offset: range.offset,
                    size: Some(range.size),
                })
            }
            Err(e) => Err(e),
        }
    }

    /// Starts writing a blob that must hash to `expected`.
    pub fn writer(&self, expected: &Digest) -> Result<BlobWriter, StoreError> {
        self.start_writer(Some(expected.clone()))
    }

    /// Starts writing a blob made here (a layer being compressed), whose digest is known only
    /// once it is written: [`BlobWriter::commit_new`] stores it under what it hashes to. The
    /// bytes are written once, straight into the store's folder.
    pub fn new_blob_writer(&self) -> Result<BlobWriter, StoreError> {
        self.start_writer(None)
    }

    fn start_writer(&self, expected: Option<Digest>) -> Result<BlobWriter, StoreError> {
        let dir = self.root.join("sha256");
        let tmp = tempfile::NamedTempFile::new_in(&dir).map_err(io_err(&dir))?;
        Ok(BlobWriter {
            store: self.clone(),
            expected,
            out: HashingWriter::new(io::BufWriter::with_capacity(256 * 1024, tmp)),
        })
    }

    /// Stores `size` bytes of `file` at `offset` as the blob `digest`, copied kernel-side where
    /// the filesystems allow it, without hashing them: the caller vouches that they hash to
    /// `digest` (the bundle writer, which hashed them on their way into the bundle). Records a
    /// proof as [`BlobWriter::commit`] does. Does nothing when the store holds the blob.
    pub fn adopt(
        &self,
        digest: &Digest,
        file: &File,
        offset: u64,
        size: u64,
    ) -> Result<(), StoreError> {
        if self.contains(digest) {
            return Ok(());
        }
        let dir = self.root.join("sha256");
        let tmp = tempfile::NamedTempFile::new_in(&dir).map_err(io_err(&dir))?;
        crate::writer::copy_range(file, offset, tmp.as_file(), 0, size, &mut |_| {})
            .map_err(io_err(&self.path_of(digest)))?;
        self.place(tmp, digest)
    }

    /// Moves `tmp`, whose bytes hash to `digest`, into place as that blob, and records a proof
    /// of its file. No fsync: the store's integrity rests on content addressing, not
    /// durability. Every reader re-hashes what it takes from the store (the bundle writer
    /// refuses a blob whose bytes do not match) unless a proof of this boot vouches for the
    /// file, so a blob torn by a power loss is caught and fetched again.
    fn place(&self, tmp: tempfile::NamedTempFile, digest: &Digest) -> Result<(), StoreError> {
        let final_path = self.path_of(digest);
        let stored = tmp
            .persist(&final_path)
            .map_err(|e| io_err(&final_path)(e.error))?;
        // A proof that cannot be recorded only costs a hash later.
        if let Some(proofs) = &self.proofs {
            if let Ok(key) = proofs.key_for_blob_file(&stored, digest) {
                let _ = proofs.record(&key, digest);
            }
        }
        Ok(())
    }

    /// Copies `reader` into the store as `expected`, verifying the digest.
    pub fn put(&self, expected: &Digest, reader: &mut dyn Read) -> Result<u64, StoreError> {
        let mut w = self.writer(expected)?;
        let dir = self.root.clone();
        io::copy(reader, &mut w).map_err(io_err(&dir))?;
        w.commit()
    }
}

/// A blob being written into a [`DirBlobStore`]; nothing is visible until it is committed
/// ([`BlobWriter::commit`], or [`BlobWriter::commit_new`] for a blob made here).
pub struct BlobWriter {
    store: DirBlobStore,
    /// What the bytes must hash to; `None` for a blob made here.
    expected: Option<Digest>,
    out: HashingWriter<io::BufWriter<tempfile::NamedTempFile>>,
}

impl BlobWriter {
    /// Checks the digest and moves the blob into place; returns its size.
    pub fn commit(self) -> Result<u64, StoreError> {
        self.finish(false).map(|(_, size)| size)
    }

    /// Moves a blob made here into place under the digest its bytes hash to (the store's copy
    /// is kept when it holds that blob already); returns the digest and the size.
    pub fn commit_new(self) -> Result<(Digest, u64), StoreError> {
        self.finish(true)
    }

    /// Checks the bytes against the expected digest, if any, and moves them into place (unless
    /// `keep_stored` and the store holds that blob already).
    fn finish(self, keep_stored: bool) -> Result<(Digest, u64), StoreError> {
        let (buf, actual, size) = self.out.finish();
        if let Some(expected) = self.expected.filter(|e| *e != actual) {
            return Err(StoreError::DigestMismatch {
                expected,
                actual,
                size,
            });
        }
        if !(keep_stored && self.store.contains(&actual)) {
            Self::persist(&self.store, buf, &actual)?;
        }
        Ok((actual, size))
    }

    fn persist(
        store: &DirBlobStore,
        buf: io::BufWriter<tempfile::NamedTempFile>,
        digest: &Digest,
    ) -> Result<(), StoreError> {
        let tmp = buf
            .into_inner()
            .map_err(|e| io_err(&store.path_of(digest))(e.into_error()))?;
        store.place(tmp, digest)
    }
}

impl Write for BlobWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.out.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

impl BlobSource for DirBlobStore {
    fn blob_size(&self, digest: &Digest) -> Option<u64> {
        match std::fs::metadata(self.path_of(digest)) {
            Ok(m) => Some(m.len()),
            Err(_) => self.held_range(digest).map(|r| r.size),
        }
    }

    fn read_blob_at(&self, digest: &Digest, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
        let blob = self.handle(digest)?;
        let Some(size) = blob.size else {
            return blob.file.read_at(buf, offset);
        };
        let left = usize::try_from(size.saturating_sub(offset)).unwrap_or(usize::MAX);
        let want = buf.len().min(left);
        if want == 0 {
            return Ok(0);
        }
        blob.file.read_at(&mut buf[..want], blob.offset + offset)
    }

    fn proof_token(&self, digest: &Digest) -> Option<ProofKey> {
        let proofs = self.proofs.as_ref()?;
        self.handle(digest).ok()?.proof_key(proofs, digest).ok()
    }

    fn record_proof(&self, digest: &Digest, token: &ProofKey) {
        let Some(proofs) = &self.proofs else { return };
        let now = self
            .handle(digest)
            .and_then(|blob| blob.proof_key(proofs, digest));
        if now.as_ref().is_ok_and(|k| k == token) {
            let _ = proofs.record(token, digest);
        }
    }

    fn proven_range(&self, digest: &Digest) -> Option<ProvenRange> {
        let proofs = self.proofs.as_ref()?;
        let blob = self.open_blob(digest).ok()?;
        // The size the proof names: the range's, or the whole file's.
        let size = match blob.size {
            Some(size) => size,
            None => blob.file.metadata().ok()?.len(),
        };
        let key = blob.proof_key(proofs, digest).ok()?;
        match proofs.lookup(&key) {
            Ok(Some(recorded)) if &recorded == digest => Some(ProvenRange {
                file: blob.file,
                offset: blob.offset,
                size,
            }),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_accepts_matching_and_rejects_wrong_content() {
        let dir = tempfile::tempdir().unwrap();
        let store = DirBlobStore::open(dir.path()).unwrap();
        let data = b"hello blob".to_vec();
        let d = Digest::of_bytes(&data);
        assert_eq!(store.put(&d, &mut &data[..]).unwrap(), data.len() as u64);
        assert!(store.contains(&d));
        let mut back = Vec::new();
        store
            .blob_reader(&d)
            .unwrap()
            .read_to_end(&mut back)
            .unwrap();
        assert_eq!(back, data);

        let wrong = Digest::of_bytes(b"other");
        let err = store.put(&wrong, &mut &data[..]).unwrap_err();
        assert!(matches!(err, StoreError::DigestMismatch { .. }));
        assert!(!store.contains(&wrong));
        // No temporary file is left behind.
        assert_eq!(
            std::fs::read_dir(dir.path().join("sha256"))
                .unwrap()
                .count(),
            1
        );
    }

    fn read_all(mut f: File) -> Vec<u8> {
        let mut v = Vec::new();
        f.read_to_end(&mut v).unwrap();
        v
    }

    #[test]
    fn a_proven_blob_is_handed_out_until_its_file_changes() {
        let dir = tempfile::tempdir().unwrap();
        let data = b"proven blob".to_vec();
        let d = Digest::of_bytes(&data);

        // Without proofs nothing is proven.
        let plain = DirBlobStore::open(dir.path()).unwrap();
        plain.put(&d, &mut &data[..]).unwrap();
        assert!(plain.proven_range(&d).is_none());
        let store = DirBlobStore::open(dir.path()).unwrap().with_proofs();
        assert!(
            store.proven_range(&d).is_none(),
            "committed before proofs were on"
        );

        // Committed with proofs: proven, and the file holds the blob.
        store.put(&d, &mut &data[..]).unwrap();
        assert_eq!(read_all(store.proven_range(&d).unwrap().file), data);
        let key_mode = std::fs::metadata(dir.path().join(PROOFS_DIR).join("proof.key"))
            .unwrap()
            .permissions();
        assert_eq!(
            std::os::unix::fs::PermissionsExt::mode(&key_mode) & 0o777,
            0o600
        );

        // Rewritten with the very same bytes: its ctime moved, so it is no longer proven.
        std::fs::write(store.path_of(&d), &data).unwrap();
        assert!(store.proven_range(&d).is_none());

        // Proven again by a new commit; a proof under another digest's name proves nothing.
        store.put(&d, &mut &data[..]).unwrap();
        assert!(store.proven_range(&d).is_some());
        let other = b"other blob".to_vec();
        let o = Digest::of_bytes(&other);
        std::fs::copy(store.path_of(&d), store.path_of(&o)).unwrap();
        assert!(store.proven_range(&o).is_none());
    }

    #[test]
    fn a_blob_proof_names_the_boot_and_must_authenticate() {
        let dir = tempfile::tempdir().unwrap();
        let store = DirBlobStore::open(dir.path()).unwrap().with_proofs();
        let data = b"blob".to_vec();
        let d = Digest::of_bytes(&data);
        store.put(&d, &mut &data[..]).unwrap();
        let proofs = ProofStore::at(dir.path().join(PROOFS_DIR));
        let file = File::open(store.path_of(&d)).unwrap();
        let key = proofs.key_for_blob_file(&file, &d).unwrap();
        assert_eq!(proofs.lookup(&key).unwrap(), Some(d.clone()));

        // The same file in another boot (after a crash its bytes on disk may be torn).
        let other_boot =
            ProofStore::blob_key(&file.metadata().unwrap(), "00000000-other-boot", &d).unwrap();
        assert_ne!(other_boot.id(), key.id());
        assert_eq!(proofs.lookup(&other_boot).unwrap(), None);

        // A proof file altered by someone without the private key is ignored.
        let proof_file = dir.path().join(PROOFS_DIR).join(key.id().hex());
        let text = std::fs::read_to_string(&proof_file).unwrap();
        std::fs::write(&proof_file, text.replace("size 4", "size 5")).unwrap();
        assert!(proofs.lookup(&key).is_err());
        assert!(store.proven_range(&d).is_none());
    }
}
