//! Recorded verification proofs: after a full verification, a small file under the user's state
//! directory records the bundle file's identity (device, inode, size, mtime and ctime in
//! nanoseconds), the manifest digest and the trust policy (key fingerprint). A later run that
//! finds the same identity can skip hashing. Any write to the file changes its ctime, which user
//! space cannot set back, so a changed file never matches an old proof. The signature is always
//! checked again.
//!
//! The same store records proofs for the blob files of a [`crate::DirBlobStore`] cache (and of
//! an OCI layout a build reads in place, [`crate::DirBlobStore::with_proof_store`]; see
//! [`ProofStore::key_for_blob_file`]): there the identity also names the running kernel's boot,
//! because the cache is not flushed to disk. Within one boot the kernel's view of a file is the
//! bytes that were hashed; after a crash (a new boot) a blob may be torn on disk, so its proof no
//! longer matches and it is hashed again.
//!
//! It also records builds from local files ([`ProofStore::key_for_build`]): the identities of
//! every file a layer was built from, and the layer it gave (with its uncompressed digest,
//! [`ProofStore::key_for_uncompressed`]), so an unchanged build context is not compressed again.
//!
//! Each proof is authenticated with an HMAC-SHA256 under a per-user key (`proof.key` in the
//! folder, 32 random bytes, mode 0600, created exclusively): whoever can write the folder but
//! not read that key cannot forge a proof, and a proof that does not authenticate is ignored.

use std::io::{self, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};

use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::path::{Path, PathBuf};

use crate::digest::Digest;
use crate::reader::Bundle;
use crate::trust::Trust;

/// The identity of one verified bundle file under one trust policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProofKey {
    text: String,
    id: Digest,
}

impl ProofKey {
    fn new(text: String) -> Self {
        let id = Digest::of_bytes(text.as_bytes());
        Self { text, id }
    }

    /// The key's digest, which names its proof file.
    pub fn id(&self) -> &Digest {
        &self.id
    }
}

/// A folder of recorded proofs.
#[derive(Debug, Clone)]
pub struct ProofStore {
    dir: PathBuf,
}

impl ProofStore {
    /// Proofs kept in `dir` (created when the first proof is recorded).
    pub fn at(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    /// The default location: `$AIRLIFT_STATE_DIR/verified` when set, else
    /// `$XDG_STATE_HOME/airlift/verified` (`~/.local/state/airlift/verified`), else the cache dir.
    pub fn default_location() -> Option<Self> {
        if let Some(d) = std::env::var_os("AIRLIFT_STATE_DIR").filter(|v| !v.is_empty()) {
            return Some(Self::at(PathBuf::from(d).join("verified")));
        }
        dirs::state_dir()
            .or_else(dirs::cache_dir)
            .map(|d| Self::at(d.join("airlift").join("verified")))
    }

    /// The folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The key of `bundle` as it is on disk now, under `trust`.
    pub fn key_for(&self, bundle: &Bundle, trust: &Trust) -> io::Result<ProofKey> {
        let m = bundle.file().metadata()?;
        Ok(ProofKey::new(format!(
            "airlift-verify-proof v1\n{}manifest {}\ntrust {}\n",
            file_identity(&m),
            Digest::of_bytes(bundle.manifest_bytes()),
            trust.label(),
        )))
    }

    /// The key of a blob store's file `file` as it is now, holding the blob `digest`, in this
    /// boot of the kernel (see the module docs). Fails when the boot id cannot be read: then no
    /// blob proof is used.
    pub fn key_for_blob_file(&self, file: &std::fs::File, digest: &Digest) -> io::Result<ProofKey> {
        Self::blob_key(&file.metadata()?, &Self::boot_id()?, digest)
    }

    /// [`ProofStore::key_for_blob_file`] with the boot id given.
    pub(crate) fn blob_key(
        m: &std::fs::Metadata,
        boot: &str,
        digest: &Digest,
    ) -> io::Result<ProofKey> {
        let boot = checked_boot_id(boot)?;
        Ok(ProofKey::new(format!(
            "airlift-blob-proof v1\n{}boot {boot}\nblob {digest}\n",
            file_identity(m)
        )))
    }

    /// The key of the bytes `offset..offset + size` of `file` (a bundle the blob store holds, see
    /// [`crate::held`]) as the file is now, holding the blob `digest`, in this boot of the
    /// kernel. Unlike a blob file's key it names the file's mtime, not its ctime: a held bundle
    /// is also the user's deliverable, and moving, linking or deleting it (which change its
    /// ctime, not its bytes) must not cost a hash of every blob it holds. Any write moves the
    /// mtime; only a deliberate `utimensat` back to the nanosecond could hide one, and a blob
    /// copied wrong that way is refused by every verification of the bundle it lands in.
    pub fn key_for_range(
        &self,
        file: &std::fs::File,
        offset: u64,
        size: u64,
        digest: &Digest,
    ) -> io::Result<ProofKey> {
        let boot = Self::boot_id()?;
        let m = file.metadata()?;
        Ok(ProofKey::new(format!(
            "airlift-range-proof v1\ndev {}\nino {}\nsize {}\nmtime_ns {}\nboot {boot}\n\
             range {offset} {size}\nblob {digest}\n",
            m.dev(),
            m.ino(),
            m.size(),
            i128::from(m.mtime()) * 1_000_000_000 + i128::from(m.mtime_nsec()),
        )))
    }

    /// The key of a build from local files in this boot of the kernel: `inputs` is a digest over
    /// everything the build reads and how (each file's path, mode and [`file_identity`], the
    /// builder's version), so an unchanged set of files finds the build's result recorded
    /// (the digest of the blob it made) and need not build again. Fails when the boot id cannot
    /// be read: then nothing is recorded or reused.
    pub fn key_for_build(&self, inputs: &Digest) -> io::Result<ProofKey> {
        let boot = Self::boot_id()?;
        Ok(ProofKey::new(format!(
            "airlift-build-proof v1\nboot {boot}\ninputs {inputs}\n"
        )))
    }

    /// The key under which the digest of the uncompressed bytes of `blob` (a layer made here)
    /// is recorded.
    pub fn key_for_uncompressed(&self, blob: &Digest) -> ProofKey {
        ProofKey::new(format!("airlift-uncompressed-proof v1\nblob {blob}\n"))
    }

    fn boot_id() -> io::Result<String> {
        let boot =
            crate::limits::read_bounded_string(Path::new(BOOT_ID), 64).map_err(io::Error::other)?;
        checked_boot_id(boot.trim()).map(str::to_string)
    }

    fn file_of(&self, key: &ProofKey) -> PathBuf {
        self.dir.join(key.id.hex())
    }

    /// The per-user MAC key: read it, or create it (0600, exclusively) when `create`. A key file
    /// that others can read or write is not used.
    fn mac_key(&self, create: bool) -> io::Result<Vec<u8>> {
        let path = self.dir.join(MAC_KEY_FILE);
        if create && path.symlink_metadata().is_err() {
            std::fs::create_dir_all(&self.dir)?;
            let mut key = vec![0u8; 32];
            rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut key);
            let written = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&path)
                .and_then(|mut f| f.write_all(&key).and_then(|()| f.sync_all()));
            match written {
                Ok(()) => return Ok(key),
                // Another process created it first: use theirs.
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(e),
            }
        }
        let meta = path.symlink_metadata()?;
        if !meta.is_file() || meta.permissions().mode() & 0o077 != 0 {
            return Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                format!(
                    "`{}` is not a private (0600) regular file: proofs are not used",
                    path.display()
                ),
            ));
        }
        let key = crate::limits::read_bounded(&path, 1024).map_err(io::Error::other)?;
        if key.len() < 32 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("`{}` is shorter than 32 bytes", path.display()),
            ));
        }
        Ok(key)
    }

    fn mac(key: &[u8], body: &str) -> Hmac<Sha256> {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key)
            .unwrap_or_else(|_| unreachable!("HMAC accepts keys of any length"));
        mac.update(body.as_bytes());
        mac
    }

    /// Looks up the proof for exactly `key`: the sha256 recorded with it (for a bundle, the
    /// file's; for a blob, the blob's digest), when one
    /// exists and authenticates. `Err` says why a proof file that exists was not accepted (it is
    /// then ignored; the caller hashes again).
    pub fn lookup(&self, key: &ProofKey) -> Result<Option<Digest>, ProofError> {
        let path = self.file_of(key);
        let Ok(text) = crate::limits::read_bounded_string(&path, 64 * 1024) else {
            return Ok(None);
        };
        let refuse = |why: &'static str| ProofError {
            path: path.clone(),
            why,
        };
        let (body, tag) = text
            .rfind("mac ")
            .map(|i| text.split_at(i))
            .ok_or_else(|| refuse("it has no MAC"))?;
        let tag = tag
            .strip_prefix("mac ")
            .and_then(|t| hex::decode(t.trim_end()).ok())
            .ok_or_else(|| refuse("its MAC is not hex"))?;
        let mac_key = self
            .mac_key(false)
            .map_err(|_| refuse("the proof key is missing or not private"))?;
        Self::mac(&mac_key, body)
            .verify_slice(&tag)
            .map_err(|_| refuse("its MAC does not check (it was not written by this user)"))?;
        let sha = body
            .strip_prefix(&key.text)
            .and_then(|rest| rest.strip_prefix("sha256 "))
            .and_then(|h| h.trim_end().parse::<Digest>().ok())
            .ok_or_else(|| refuse("it records another file or policy"))?;
        Ok(Some(sha))
    }

    /// Removes the proof recorded for `key`, if any (one for a file that is no longer used).
    pub fn forget(&self, key: &ProofKey) {
        let _ = std::fs::remove_file(self.file_of(key));
    }

    /// True when an authenticated proof for exactly `key` was recorded.
    pub fn contains(&self, key: &ProofKey) -> bool {
        matches!(self.lookup(key), Ok(Some(_)))
    }

    /// Records an authenticated proof for `key`, with the file's sha256 (for a blob, its digest).
    pub fn record(&self, key: &ProofKey, sha256: &Digest) -> io::Result<()> {
        let mac_key = self.mac_key(true)?;
        let body = format!("{}sha256 {sha256}\n", key.text);
        let tag = hex::encode(Self::mac(&mac_key, &body).finalize().into_bytes());
        std::fs::create_dir_all(&self.dir)?;
        let tmp = tempfile::NamedTempFile::new_in(&self.dir)?;
        std::fs::write(tmp.path(), format!("{body}mac {tag}\n"))?;
        tmp.persist(self.file_of(key)).map_err(|e| e.error)?;
        Ok(())
    }
}

/// The running kernel's boot id: a new random value at every boot.
const BOOT_ID: &str = "/proc/sys/kernel/random/boot_id";

/// `boot` when it looks like a boot id (one word).
fn checked_boot_id(boot: &str) -> io::Result<&str> {
    if boot.is_empty() || boot.contains(char::is_whitespace) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("`{BOOT_ID}` is not a boot id"),
        ));
    }
    Ok(boot)
}

/// The lines naming a file's identity (device, inode, size, mtime and ctime in nanoseconds): any
/// write to it changes its ctime, which user space cannot set back.
pub fn file_identity(m: &std::fs::Metadata) -> String {
    format!(
        "dev {}\nino {}\nsize {}\nmtime_ns {}\nctime_ns {}\n",
        m.dev(),
        m.ino(),
        m.size(),
        i128::from(m.mtime()) * 1_000_000_000 + i128::from(m.mtime_nsec()),
        i128::from(m.ctime()) * 1_000_000_000 + i128::from(m.ctime_nsec()),
    )
}

/// The file holding the per-user proof MAC key, in the proof folder.
pub const MAC_KEY_FILE: &str = "proof.key";

/// A proof file that exists but is not accepted.
#[derive(Debug, thiserror::Error)]
#[error("ignoring the verification proof `{}`: {why}", path.display())]
pub struct ProofError {
    /// The proof file.
    pub path: PathBuf,
    /// Why it is not accepted.
    pub why: &'static str,
}
