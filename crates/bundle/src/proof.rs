//! Recorded verification proofs: after a full verification, a small file under the user's state
//! directory records the bundle file's identity (device, inode, size, mtime and ctime in
//! nanoseconds), the manifest digest and the trust policy (key fingerprint). A later run that
//! finds the same identity can skip hashing. Any write to the file changes its ctime, which user
//! space cannot set back, so a changed file never matches an old proof. The signature is always
//! checked again.

use std::io;
use std::os::unix::fs::MetadataExt;
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
        let text = format!(
            "airlift-verify-proof v1\ndev {}\nino {}\nsize {}\nmtime_ns {}\nctime_ns {}\nmanifest {}\ntrust {}\n",
            m.dev(),
            m.ino(),
            m.size(),
            i128::from(m.mtime()) * 1_000_000_000 + i128::from(m.mtime_nsec()),
            i128::from(m.ctime()) * 1_000_000_000 + i128::from(m.ctime_nsec()),
            Digest::of_bytes(bundle.manifest_bytes()),
            trust.label(),
        );
        let id = Digest::of_bytes(text.as_bytes());
        Ok(ProofKey { text, id })
    }

    fn file_of(&self, key: &ProofKey) -> PathBuf {
        self.dir.join(key.id.hex())
    }

    /// True when a proof for exactly `key` was recorded.
    pub fn contains(&self, key: &ProofKey) -> bool {
        std::fs::read_to_string(self.file_of(key)).is_ok_and(|t| t == key.text)
    }

    /// Records a proof for `key`.
    pub fn record(&self, key: &ProofKey) -> io::Result<()> {
        std::fs::create_dir_all(&self.dir)?;
        let tmp = tempfile::NamedTempFile::new_in(&self.dir)?;
        std::fs::write(tmp.path(), &key.text)?;
        tmp.persist(self.file_of(key)).map_err(|e| e.error)?;
        Ok(())
    }
}
