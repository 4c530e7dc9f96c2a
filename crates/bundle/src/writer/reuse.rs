//! A rebuild that would write exactly the bundle the cache holds takes that file instead.
//!
//! The packager's cache holds the last bundle it built by hard link ([`crate::held`]), with a
//! proof per layer that the file is unchanged since the layer was verified in it. When a new
//! plan lays out the very same bytes (same signed manifest, same members, same blobs at the same
//! offsets: a rebuild of unchanged inputs), [`BundlePlan::reuse_held`] checks that the held file
//! is exactly that, byte for byte outside the proven layers, and delivers it without writing a
//! byte: when the output path already is that file it is left as it is, and when the cache holds
//! the only link (the earlier output was deleted) it is linked to the output path. When the file
//! also exists under another name, the build writes a copy as before, so two outputs never
//! share one file.

use std::fs::File;
use std::io;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;

use super::layout::{Layout, Slot};
use super::{io_at, BundlePlan, WriteError, WrittenBundle};
use crate::digest::{Digest, Hasher};
use crate::held::same_file;
use crate::source::{BlobSource, DirBlobStore};

/// The most bytes of blobs without a proof in the held file (image manifests and configs, kept
/// in the cache as files of their own) that are hashed to check it, before giving up on it.
const HASH_BUDGET: u64 = 64 * 1024 * 1024;

/// Bytes read at a time while checking.
const CHUNK: usize = 256 * 1024;

/// How [`BundlePlan::reuse_held`] delivered the bundle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Reuse {
    /// The output path already was the held bundle: nothing was written.
    Unchanged,
    /// The held bundle was linked to the output path (replacing what was there).
    Linked,
}

impl BundlePlan {
    /// Delivers this bundle at `out` from a bundle `store` holds that has exactly the bytes it
    /// would write, without writing any (see the module docs). `Ok(None)` when there is no such
    /// bundle, when it also exists under another name, or when the plan was stopped: the caller
    /// writes the bundle.
    pub fn reuse_held(
        &self,
        out: &Path,
        store: &DirBlobStore,
    ) -> Result<Option<(WrittenBundle, Reuse)>, WriteError> {
        if !store.holds_bundles() || self.stop.load(Ordering::Relaxed) {
            return Ok(None);
        }
        let layout = self.layout(out)?;
        let Some(held) = candidate(&layout, store) else {
            return Ok(None);
        };
        let Ok(file) = File::open(&held) else {
            return Ok(None);
        };
        let Ok(meta) = file.metadata() else {
            return Ok(None);
        };
        // What it would take, decided first: checking the bytes costs reads.
        let how = match std::fs::metadata(out) {
            Ok(there) if same_file(&there, &meta) => Reuse::Unchanged,
            _ if meta.nlink() == 1 => Reuse::Linked,
            _ => return Ok(None),
        };
        if meta.len() != layout.size || !is_exactly(&file, &meta, &layout, store) {
            return Ok(None);
        }
        if how == Reuse::Linked {
            link_into_place(&held, out)?;
        }
        let written = WrittenBundle {
            path: out.to_path_buf(),
            size: meta.len(),
            manifest: self.manifest.clone(),
            manifest_digest: Digest::of_bytes(&self.manifest_bytes),
        };
        Ok(Some((written, how)))
    }
}

/// The held bundle the plan's largest blob is read from, if any.
fn candidate(layout: &Layout, store: &DirBlobStore) -> Option<PathBuf> {
    let (largest, _) = layout.slots.iter().max_by_key(|(_, s)| s.size)?;
    Some(store.held_range(largest)?.bundle)
}

/// True when `file` holds exactly what `layout` describes: every blob proven at its slot of
/// this very file, or (manifests and configs, within [`HASH_BUDGET`]) hashing to its digest
/// there; every other byte equal to the layout's, zeros where it names none.
fn is_exactly(
    file: &File,
    meta: &std::fs::Metadata,
    layout: &Layout,
    store: &DirBlobStore,
) -> bool {
    let mut hashed = 0u64;
    for (digest, slot) in &layout.slots {
        let proven = store.proven_range(digest).is_some_and(|r| {
            r.offset == slot.offset
                && r.size == slot.size
                && r.file.metadata().is_ok_and(|m| same_file(&m, meta))
        });
        if proven {
            continue;
        }
        hashed += slot.size;
        if hashed > HASH_BUDGET || !hashes_to(file, *slot, digest) {
            return false;
        }
    }
    let mut parts: Vec<(u64, Option<&[u8]>, u64)> =
        Vec::with_capacity(layout.headers.len() * 2 + 1);
    parts.push((0, Some(&layout.head), layout.head.len() as u64));
    for (offset, bytes) in &layout.headers {
        parts.push((*offset, Some(bytes), bytes.len() as u64));
    }
    for slot in layout.slots.values() {
        parts.push((slot.offset, None, slot.size));
    }
    parts.sort_by_key(|(offset, ..)| *offset);
    let mut pos = 0u64;
    for (offset, bytes, len) in parts {
        // Padding between members, as laid out: zeros.
        if offset < pos || !equals(file, pos, offset - pos, None) {
            return false;
        }
        if let Some(bytes) = bytes {
            if !equals(file, offset, len, Some(bytes)) {
                return false;
            }
        }
        pos = offset + len;
    }
    // The padding after the last blob and the trailer.
    pos <= layout.size && equals(file, pos, layout.size - pos, None)
}

/// True when the `len` bytes of `file` at `offset` are `expected`, or zeros when it is `None`.
fn equals(file: &File, offset: u64, len: u64, expected: Option<&[u8]>) -> bool {
    let mut buf = vec![0u8; CHUNK.min(len as usize)];
    let mut done = 0u64;
    while done < len {
        let n = CHUNK.min((len - done) as usize);
        if file.read_exact_at(&mut buf[..n], offset + done).is_err() {
            return false;
        }
        let same = match expected {
            Some(e) => buf[..n] == e[done as usize..done as usize + n],
            None => buf[..n].iter().all(|&b| b == 0),
        };
        if !same {
            return false;
        }
        done += n as u64;
    }
    true
}

/// True when the bytes of `file` in `slot` hash to `digest`.
fn hashes_to(file: &File, slot: Slot, digest: &Digest) -> bool {
    let mut hasher = Hasher::new();
    let mut buf = vec![0u8; CHUNK.min(slot.size as usize)];
    let mut done = 0u64;
    while done < slot.size {
        let n = CHUNK.min((slot.size - done) as usize);
        if file
            .read_exact_at(&mut buf[..n], slot.offset + done)
            .is_err()
        {
            return false;
        }
        hasher.update(&buf[..n]);
        done += n as u64;
    }
    &hasher.finish() == digest
}

/// Links `held` to `out` under a temporary name next to it, then renames it over `out`, so the
/// output appears whole or not at all.
fn link_into_place(held: &Path, out: &Path) -> Result<(), WriteError> {
    let dir = match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let err = io_at(out);
    let tmp = tempfile::Builder::new()
        .prefix(".airlift-partial-")
        .make_in(&dir, |path| std::fs::hard_link(held, path))
        .map_err(&err)?;
    tmp.persist(out).map_err(|e| err(io::Error::from(e)))?;
    Ok(())
}
