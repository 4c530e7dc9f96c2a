//! Full verification: the signature, then every member and blob hashed once, in file order,
//! with 1 MiB positioned reads (memory does not depend on the bundle's size), while a second
//! thread hashes the whole file from the same buffers (its sha256), then every image's blob
//! graph and `index.json` checked against the manifest.

use std::collections::HashMap;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::thread::{Scope, ScopedJoinHandle};

use crate::digest::{Digest, Hasher};
use crate::error::{BundleError, IntegrityError};
use crate::progress::Progress;
use crate::proof::ProofStore;
use crate::reader::{Bundle, BLOBS_PREFIX};
use crate::schema::manifest::{MANIFEST_PATH, SIGNATURE_PATH};
use crate::trust::{self, SignatureStatus, Trust};
use crate::walk;

const CHUNK: usize = 1024 * 1024;
/// The progress label used by [`Bundle::verify`].
pub const VERIFY_LABEL: &str = "verify";

/// The outcome of a successful verification.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct VerifyReport {
    /// The signature check's outcome.
    pub signature: SignatureStatus,
    /// Non-blob members checked (besides the manifest and signature).
    pub members: usize,
    /// Blobs checked.
    pub blobs: usize,
    /// Images whose blob graph was checked.
    pub images: usize,
    /// Bytes hashed (0 when a recorded proof was used).
    pub bytes_hashed: u64,
    /// The sha256 of the whole bundle file: its stable identity (the encoding is canonical, so
    /// the same signed content always gives the same file), for comparing with the vendor's.
    pub sha256: Digest,
    /// True when a recorded proof for this exact file made hashing unnecessary.
    pub from_proof: bool,
}

impl Bundle {
    /// Checks the signature per `trust`, then hashes every member and blob once and checks every
    /// image. Progress is reported under the label [`VERIFY_LABEL`] with the total byte count.
    pub fn verify(
        &self,
        trust: &Trust,
        progress: &dyn Progress,
    ) -> Result<VerifyReport, BundleError> {
        self.require_local_blobs()?;
        let signature = trust::check_signature(self.manifest_bytes(), self.signature(), trust)?;
        let (bytes_hashed, sha256) = self.hash_all(progress)?;
        let images = self.check_images()?;
        Ok(VerifyReport {
            signature,
            members: self.manifest().members.len(),
            blobs: self.manifest().blobs.len(),
            images,
            bytes_hashed,
            sha256,
            from_proof: false,
        })
    }

    /// Like [`Bundle::verify`], but skips hashing when `proofs` holds a proof recorded for this
    /// exact file (device, inode, size, mtime, ctime), manifest and trust policy; records one after
    /// a successful full verification. The signature is always checked.
    pub fn verify_with_proof(
        &self,
        trust: &Trust,
        progress: &dyn Progress,
        proofs: &ProofStore,
    ) -> Result<VerifyReport, BundleError> {
        self.require_local_blobs()?;
        let signature = trust::check_signature(self.manifest_bytes(), self.signature(), trust)?;
        let key = proofs
            .key_for(self, trust)
            .map_err(|source| BundleError::Io {
                path: self.path().to_path_buf(),
                source,
            })?;
        let recorded = proofs.lookup(&key).unwrap_or_else(|refused| {
            progress.message(&format!("note: {refused}; hashing everything"));
            None
        });
        if let Some(sha256) = recorded {
            progress.message(&format!(
                "{}: verified before and unchanged since (recorded proof), skipping the hash pass",
                self.path().display()
            ));
            return Ok(VerifyReport {
                signature,
                members: self.manifest().members.len(),
                blobs: self.manifest().blobs.len(),
                images: self.image_count(),
                bytes_hashed: 0,
                sha256,
                from_proof: true,
            });
        }
        let report = self.verify(trust, progress)?;
        // A proof that cannot be recorded only costs a re-hash next time.
        if let Err(e) = proofs.record(&key, &report.sha256) {
            progress.message(&format!(
                "note: could not record the verification proof: {e}"
            ));
        }
        Ok(report)
    }

    fn image_count(&self) -> usize {
        let mut refs: Vec<&str> = self
            .manifest()
            .components
            .iter()
            .flat_map(|c| c.images.iter().map(|i| i.reference.as_str()))
            .collect();
        refs.sort_unstable();
        refs.dedup();
        refs.len()
    }

    /// Reads the whole file once, in order, with 1 MiB positioned reads: hashes it as a whole
    /// (its sha256, on a second thread, see [`FileHash`]) and every member except the manifest
    /// and signature on its own, comparing each with its listed digest. Returns the bytes read and
    /// the file's sha256.
    fn hash_all(&self, progress: &dyn Progress) -> Result<(u64, Digest), BundleError> {
        let listed: HashMap<&str, &Digest> = self
            .manifest()
            .members
            .iter()
            .map(|m| (m.path.as_str(), &m.digest))
            .collect();
        let len = self.file_len()?;
        progress.start(VERIFY_LABEL, Some(len));
        let to = (progress, VERIFY_LABEL);
        let r = self.hashing_file(|file_hash| {
            let mut pos = 0u64;
            for entry in self.members() {
                // The header (and the padding before it), then the content.
                self.hash_range(pos, entry.data_offset, file_hash, None, to)?;
                let mut member_hash = Hasher::new();
                let end = entry.data_offset + entry.size;
                self.hash_range(
                    entry.data_offset,
                    end,
                    file_hash,
                    Some(&mut member_hash),
                    to,
                )?;
                pos = end;
                if entry.path == MANIFEST_PATH || entry.path == SIGNATURE_PATH {
                    continue;
                }
                let actual = member_hash.finish();
                if let Some(hex) = entry.path.strip_prefix(BLOBS_PREFIX) {
                    if actual.hex() != hex {
                        let digest = format!("sha256:{hex}")
                            .parse()
                            .unwrap_or_else(|_| actual.clone());
                        return Err(IntegrityError::TamperedBlob {
                            digest,
                            member: entry.path.clone(),
                            actual,
                        }
                        .into());
                    }
                } else if let Some(&expected) = listed.get(entry.path.as_str()) {
                    if &actual != expected {
                        return Err(IntegrityError::TamperedMember {
                            path: entry.path.clone(),
                            listed: expected.clone(),
                            actual,
                        }
                        .into());
                    }
                }
            }
            // The last padding and the end-of-archive blocks.
            self.hash_range(pos, len, file_hash, None, to)
        });
        progress.finish(VERIFY_LABEL);
        r.map(|digest| (len, digest))
    }

    /// The sha256 of the whole bundle file, read once with 1 MiB positioned reads (what
    /// `sha256sum` prints). Progress is reported under `label`.
    pub fn file_sha256(&self, progress: &dyn Progress, label: &str) -> Result<Digest, BundleError> {
        self.require_local_blobs()?;
        let len = self.file_len()?;
        progress.start(label, Some(len));
        let r = self
            .hashing_file(|file_hash| self.hash_range(0, len, file_hash, None, (progress, label)));
        progress.finish(label);
        r
    }

    /// Runs `read` with a [`FileHash`] on its own thread and returns the sha256 of everything
    /// `read` handed it.
    fn hashing_file(
        &self,
        read: impl FnOnce(&mut FileHash<'_>) -> Result<(), BundleError>,
    ) -> Result<Digest, BundleError> {
        std::thread::scope(|scope| {
            let mut file_hash = FileHash::start(scope);
            read(&mut file_hash)?;
            file_hash.finish().ok_or_else(|| self.hash_thread_stopped())
        })
    }

    fn file_len(&self) -> Result<u64, BundleError> {
        self.file()
            .metadata()
            .map(|m| m.len())
            .map_err(|source| BundleError::Io {
                path: self.path().to_path_buf(),
                source,
            })
    }

    fn hash_thread_stopped(&self) -> BundleError {
        BundleError::Io {
            path: self.path().to_path_buf(),
            source: std::io::Error::other("the thread hashing the whole file stopped"),
        }
    }

    /// Reads bytes `[from, to)` of the file in order into `file_hash`'s buffers, feeding them to
    /// `member` too when given.
    fn hash_range(
        &self,
        from: u64,
        to: u64,
        file_hash: &mut FileHash<'_>,
        mut member: Option<&mut Hasher>,
        (progress, label): (&dyn Progress, &str),
    ) -> Result<(), BundleError> {
        let mut pos = from;
        while pos < to {
            let space = file_hash
                .space()
                .ok_or_else(|| self.hash_thread_stopped())?;
            let want = usize::try_from(to - pos)
                .unwrap_or(space.len())
                .min(space.len());
            let n = self
                .read_at(&mut space[..want], pos)
                .map_err(|source| BundleError::Io {
                    path: self.path().to_path_buf(),
                    source,
                })?;
            if n == 0 {
                return Err(BundleError::Io {
                    path: self.path().to_path_buf(),
                    source: std::io::Error::new(
                        std::io::ErrorKind::UnexpectedEof,
                        format!("the file ended at byte {pos} (it shrank while being read)"),
                    ),
                });
            }
            if let Some(h) = member.as_deref_mut() {
                h.update(&space[..n]);
            }
            if !file_hash.filled(n) {
                return Err(self.hash_thread_stopped());
            }
            pos += n as u64;
            progress.advance(label, n as u64);
        }
        Ok(())
    }

    /// Every image's blob graph is complete, and `index.json` names every image at its digest.
    fn check_images(&self) -> Result<usize, BundleError> {
        let index = self.index()?;
        let named: HashMap<&str, &Digest> = index
            .manifests
            .iter()
            .filter_map(|d| d.ref_name().map(|r| (r, &d.digest)))
            .collect();
        let mut done = std::collections::HashSet::new();
        for img in self.manifest().components.iter().flat_map(|c| &c.images) {
            if !done.insert(img.reference.as_str()) {
                continue;
            }
            if named.get(img.reference.as_str()) != Some(&&img.digest) {
                return Err(IntegrityError::IndexMismatch {
                    reference: img.reference.clone(),
                    digest: img.digest.clone(),
                }
                .into());
            }
            walk::walk_image(self, &img.reference, &img.digest, &img.media_type)
                .map_err(IntegrityError::Image)?;
            let actual = walk::image_platforms(self, &img.reference, &img.digest, &img.media_type)
                .map_err(IntegrityError::Image)?;
            walk::check_platforms(&img.reference, &img.platforms, &actual)
                .map_err(IntegrityError::Image)?;
        }
        Ok(done.len())
    }
}

/// Buffers in flight between the reader and the whole-file hasher: the reader is at most this
/// many chunks ahead (memory: this many times [`CHUNK`]).
const BUFFERS: usize = 4;

/// The sha256 of the whole file, computed on its own thread from the bytes the reader reads
/// in file order, while the reader hashes each member: a full verification hashes every byte
/// twice (the file's sha256, and its member's digest), and on two cores this costs the wall time
/// of one pass. The reader reads into a buffer from here until it is full (many small members
/// and headers share one), then hands it over; buffers go back and forth, none is allocated per
/// chunk.
struct FileHash<'scope> {
    free: Receiver<Vec<u8>>,
    full: Option<SyncSender<(Vec<u8>, usize)>>,
    worker: ScopedJoinHandle<'scope, Digest>,
    /// The buffer being filled, and how many bytes of it are.
    current: Option<(Vec<u8>, usize)>,
}

impl<'scope> FileHash<'scope> {
    fn start<'env>(scope: &'scope Scope<'scope, 'env>) -> Self {
        let (give_back, free) = sync_channel(BUFFERS);
        for _ in 0..BUFFERS {
            // Cannot fail: the channel has room for every buffer and its receiver is here.
            let _ = give_back.send(vec![0u8; CHUNK]);
        }
        let (full, chunks) = sync_channel::<(Vec<u8>, usize)>(BUFFERS);
        let worker = scope.spawn(move || {
            let mut hasher = Hasher::new();
            for (chunk, len) in chunks {
                hasher.update(&chunk[..len]);
                // The reader may have stopped (an error); the buffer is then dropped.
                let _ = give_back.send(chunk);
            }
            hasher.finish()
        });
        Self {
            free,
            full: Some(full),
            worker,
            current: None,
        }
    }

    /// Where the next bytes of the file are to be read: the rest of the current buffer (never
    /// empty); `None` if the hashing thread stopped.
    fn space(&mut self) -> Option<&mut [u8]> {
        if self.current.is_none() {
            self.current = Some((self.free.recv().ok()?, 0));
        }
        let (buf, used) = self.current.as_mut()?;
        Some(&mut buf[*used..])
    }

    /// Takes the `n` bytes just read into [`FileHash::space`]; hands the buffer over once it is
    /// full. False if the hashing thread stopped.
    fn filled(&mut self, n: usize) -> bool {
        let Some((buf, used)) = self.current.as_mut() else {
            return false;
        };
        *used += n;
        if *used < buf.len() {
            return true;
        }
        self.hand_over()
    }

    fn hand_over(&mut self) -> bool {
        match (self.current.take(), &self.full) {
            (Some(chunk), Some(full)) => full.send(chunk).is_ok(),
            (None, _) => true,
            (Some(_), None) => false,
        }
    }

    /// The sha256 of every byte read; `None` if the hashing thread failed.
    fn finish(mut self) -> Option<Digest> {
        if !self.hand_over() {
            return None;
        }
        drop(self.full.take());
        self.worker.join().ok()
    }
}
