//! Where every byte of a planned bundle goes: the members before the blobs, each blob's tar
//! header and content range, and (implied) the zero padding and trailer. [`BundlePlan::create`]
//! writes a new file from it; [`BundlePlan::reuse_held`] compares a bundle the cache holds with
//! it.

use std::collections::BTreeMap;
use std::path::Path;

use super::{io_at, BundlePlan, WriteError};
use crate::canonical;
use crate::digest::Digest;
use crate::reader::{blob_member_path, INDEX_PATH, OCI_LAYOUT_PATH};
use crate::schema::manifest::{MANIFEST_PATH, SIGNATURE_PATH};

/// Where a blob's bytes go in the bundle file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Slot {
    /// The offset of the blob's first byte.
    pub offset: u64,
    /// The blob's size.
    pub size: u64,
}

/// Every byte of a bundle but the blobs' contents. Bytes not named here (the padding after each
/// blob, the unwritten trailer) are zeros.
pub(super) struct Layout {
    /// The members before the blobs (manifest, signature, layout files, component files, each
    /// with its header and padding), from offset 0.
    pub head: Vec<u8>,
    /// Each blob's alignment record (when it has one) and tar header, at its offset.
    pub headers: Vec<(u64, Vec<u8>)>,
    /// Where each blob goes.
    pub slots: BTreeMap<Digest, Slot>,
    /// The file's size, trailer included.
    pub size: u64,
}

impl BundlePlan {
    /// Lays the bundle out (`out` names it in errors). Fails when a blob's declared size cannot
    /// fit in a file.
    pub(super) fn layout(&self, out: &Path) -> Result<Layout, WriteError> {
        let err = io_at(out);
        let mut head = Vec::new();
        let mut member = |path: &str, data: &[u8]| -> std::io::Result<()> {
            let size = data.len() as u64;
            head.extend_from_slice(&canonical::member_header(path, size, self.mtime)?);
            head.extend_from_slice(data);
            head.extend_from_slice(&[0u8; 512][..canonical::padding(size) as usize]);
            Ok(())
        };
        member(MANIFEST_PATH, &self.manifest_bytes).map_err(&err)?;
        if let Some(sig) = &self.signature {
            member(SIGNATURE_PATH, sig).map_err(&err)?;
        }
        member(OCI_LAYOUT_PATH, crate::oci::OCI_LAYOUT_CONTENT.as_bytes()).map_err(&err)?;
        member(INDEX_PATH, &self.index_bytes).map_err(&err)?;
        for f in &self.files {
            member(&f.path, &f.data).map_err(&err)?;
        }
        let mut pos = head.len() as u64;
        let mut headers = Vec::with_capacity(self.blobs.len());
        let mut slots = BTreeMap::new();
        for (digest, &size) in &self.blobs {
            let start = pos;
            let mut bytes = Vec::with_capacity(canonical::BLOCK as usize);
            // A blob's content starts at a multiple of 4096, so a filesystem that shares
            // extents can take it from the cache, or into it, without copying.
            let path = blob_member_path(digest);
            if canonical::is_aligned(&path, size) {
                if let Some(record) = canonical::alignment_record(pos, self.mtime).map_err(&err)? {
                    pos += record.len() as u64;
                    bytes.extend_from_slice(&record);
                }
            }
            // Sizes come from image manifests: a hostile one may declare any number.
            let end = member_end(pos, size).ok_or_else(|| WriteError::TooLarge {
                digest: digest.clone(),
                size,
            })?;
            bytes.extend_from_slice(
                &canonical::member_header(&path, size, self.mtime).map_err(&err)?,
            );
            headers.push((start, bytes));
            slots.insert(
                digest.clone(),
                Slot {
                    offset: pos + canonical::BLOCK,
                    size,
                },
            );
            pos = end;
        }
        Ok(Layout {
            head,
            headers,
            slots,
            size: pos + canonical::TRAILER.len() as u64,
        })
    }
}

/// Where a member of `size` bytes starting at `pos` ends (header, content, padding), if that is
/// within what a file can hold with the trailer after it.
pub(super) fn member_end(pos: u64, size: u64) -> Option<u64> {
    let end = pos
        .checked_add(canonical::BLOCK)?
        .checked_add(size)?
        .checked_add(canonical::padding(size))?;
    (end <= i64::MAX as u64 - canonical::TRAILER.len() as u64).then_some(end)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn member_ends_are_checked_against_overflow() {
        assert_eq!(member_end(0, 1), Some(1024));
        assert_eq!(member_end(512, 512), Some(1536));
        assert_eq!(member_end(0, u64::MAX), None);
        assert_eq!(member_end(u64::MAX - 100, 1), None);
        assert_eq!(member_end(0, i64::MAX as u64), None);
    }
}
