//! Full verification: the signature, then every member and blob hashed once, in file order,
//! with 1 MiB positioned reads (memory does not depend on the bundle's size), then every image's
//! blob graph and `index.json` checked against the manifest.

use std::collections::HashMap;

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
    /// (its sha256) and every member except the manifest and signature on its own, comparing
    /// each with its listed digest. Returns the bytes read and the file's sha256.
    fn hash_all(&self, progress: &dyn Progress) -> Result<(u64, Digest), BundleError> {
        let listed: HashMap<&str, &Digest> = self
            .manifest()
            .members
            .iter()
            .map(|m| (m.path.as_str(), &m.digest))
            .collect();
        let len = self.file_len()?;
        progress.start(VERIFY_LABEL, Some(len));
        let mut file_hash = Hasher::new();
        let mut buf = vec![0u8; CHUNK];
        let mut pos = 0u64;
        for entry in self.members() {
            // The header (and the padding before it), then the content.
            self.hash_range(
                pos,
                entry.data_offset,
                &mut buf,
                &mut [&mut file_hash],
                (progress, VERIFY_LABEL),
            )?;
            let mut member_hash = Hasher::new();
            let end = entry.data_offset + entry.size;
            self.hash_range(
                entry.data_offset,
                end,
                &mut buf,
                &mut [&mut file_hash, &mut member_hash],
                (progress, VERIFY_LABEL),
            )?;
            pos = end;
            if entry.path == MANIFEST_PATH || entry.path == SIGNATURE_PATH {
                continue;
            }
            let actual = member_hash.finish();
            if let Some(hex) = entry.path.strip_prefix(BLOBS_PREFIX) {
                if actual.hex() != hex {
                    progress.finish(VERIFY_LABEL);
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
                    progress.finish(VERIFY_LABEL);
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
        self.hash_range(
            pos,
            len,
            &mut buf,
            &mut [&mut file_hash],
            (progress, VERIFY_LABEL),
        )?;
        progress.finish(VERIFY_LABEL);
        Ok((len, file_hash.finish()))
    }

    /// The sha256 of the whole bundle file, read once with 1 MiB positioned reads (what
    /// `sha256sum` prints). Progress is reported under `label`.
    pub fn file_sha256(&self, progress: &dyn Progress, label: &str) -> Result<Digest, BundleError> {
        self.require_local_blobs()?;
        let len = self.file_len()?;
        progress.start(label, Some(len));
        let mut h = Hasher::new();
        let mut buf = vec![0u8; CHUNK];
        let r = self.hash_range(0, len, &mut buf, &mut [&mut h], (progress, label));
        progress.finish(label);
        r.map(|()| h.finish())
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

    /// Feeds bytes `[from, to)` of the file to every hasher in `into`.
    fn hash_range(
        &self,
        from: u64,
        to: u64,
        buf: &mut [u8],
        into: &mut [&mut Hasher],
        (progress, label): (&dyn Progress, &str),
    ) -> Result<(), BundleError> {
        let mut pos = from;
        while pos < to {
            let want = usize::try_from(to - pos)
                .unwrap_or(buf.len())
                .min(buf.len());
            let n = self
                .read_at(&mut buf[..want], pos)
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
            for h in into.iter_mut() {
                h.update(&buf[..n]);
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
