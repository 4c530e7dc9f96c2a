//! Bundles a [`DirBlobStore`] holds by hard link, so a downloaded layer is written once.
//!
//! The packager downloads each layer straight into its place in the bundle (ADR 0006). Where the
//! filesystem cannot share blocks between files (ext4), keeping a copy of each layer in the cache
//! wrote every downloaded byte a second time. Instead the store links the bundle being written
//! into `<root>/bundles/<random>.airlift` (the same file: no byte is copied) and records, per
//! blob, where in that file its bytes are: `<root>/held/<hex>`, three lines
//! (`bundle NAME`, `offset N`, `size N`). The store then reads such a blob as a range of the
//! held bundle ([`crate::BlobSource::read_blob_at`]) and proves it like a blob file: a proof
//! names the range and the bundle file's identity ([`crate::ProofStore::key_for_range`]), so a
//! rebuild copies it kernel-side without hashing while nothing has touched the file.
//!
//! An entry is written once a downloaded blob is verified in the bundle, before the bundle is
//! complete, so a build that fails or is killed keeps what it downloaded (the link keeps the
//! file when the build removes its partial file); such a blob has no proof and is hashed when a
//! later build reads it. When a build completes, [`HeldBundle::settle`] points every blob it
//! holds at the finished bundle with a proof, and [`DirBlobStore::prune_held`] removes held
//! bundles no entry points at any more and that are linked nowhere else: their space is freed
//! with them. While a bundle also exists under its own name, holding it costs no space.

use std::collections::HashSet;
use std::fs::File;
use std::io::{self, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::digest::Digest;
use crate::source::{DirBlobStore, StoreError};

/// The folder under a store's root holding bundles by hard link.
pub const BUNDLES_DIR: &str = "bundles";

/// The folder under a store's root naming, per blob, the held bundle and range it is read from.
pub const HELD_DIR: &str = "held";

/// The longest entry file read (three short lines).
const ENTRY_LIMIT: u64 = 512;

/// Where a held blob's bytes are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct HeldRange {
    /// The held bundle file.
    pub bundle: PathBuf,
    /// Where the blob's first byte is in it.
    pub offset: u64,
    /// The blob's size.
    pub size: u64,
}

fn entry_path(root: &Path, digest: &Digest) -> PathBuf {
    root.join(HELD_DIR).join(digest.hex())
}

/// The held range of `digest` in the store at `root`, when an entry names one in a held bundle
/// that is there and long enough. A malformed entry is ignored (the blob is then absent).
pub(crate) fn read_entry(root: &Path, digest: &Digest) -> Option<HeldRange> {
    let text = crate::limits::read_bounded_string(&entry_path(root, digest), ENTRY_LIMIT).ok()?;
    let (name, offset, size) = parse_entry(&text)?;
    let bundle = root.join(BUNDLES_DIR).join(name);
    let len = std::fs::metadata(&bundle).ok()?.len();
    (offset + size <= len).then_some(HeldRange {
        bundle,
        offset,
        size,
    })
}

/// `(name, offset, size)` of an entry's text; `None` unless it is exactly the three lines, the
/// name is one the store gives held bundles and the range does not overflow.
fn parse_entry(text: &str) -> Option<(&str, u64, u64)> {
    let mut lines = text.lines();
    let name = lines.next()?.strip_prefix("bundle ")?;
    let offset: u64 = lines.next()?.strip_prefix("offset ")?.parse().ok()?;
    let size: u64 = lines.next()?.strip_prefix("size ")?.parse().ok()?;
    if lines.next().is_some() || !is_bundle_name(name) {
        return None;
    }
    offset.checked_add(size)?;
    Some((name, offset, size))
}

/// True for the names [`DirBlobStore::hold_bundle`] gives: 32 hex digits and `.airlift`, so an
/// entry cannot name a path outside the folder.
fn is_bundle_name(name: &str) -> bool {
    name.strip_suffix(".airlift")
        .is_some_and(|stem| stem.len() == 32 && stem.bytes().all(|b| b.is_ascii_hexdigit()))
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> StoreError + '_ {
    move |source| StoreError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Writes the entry saying `digest` is `size` bytes at `offset` of the held bundle `name`,
/// replacing any earlier one at once (a reader sees the old entry or the new one).
fn write_entry(
    root: &Path,
    digest: &Digest,
    name: &str,
    offset: u64,
    size: u64,
) -> Result<(), StoreError> {
    let dir = root.join(HELD_DIR);
    std::fs::create_dir_all(&dir).map_err(io_err(&dir))?;
    let mut tmp = tempfile::NamedTempFile::new_in(&dir).map_err(io_err(&dir))?;
    write!(tmp, "bundle {name}\noffset {offset}\nsize {size}\n").map_err(io_err(&dir))?;
    let path = entry_path(root, digest);
    tmp.persist(&path).map_err(|e| io_err(&path)(e.error))?;
    Ok(())
}

/// Removes the entry of `digest`, if any.
pub(crate) fn remove_entry(root: &Path, digest: &Digest) {
    let _ = std::fs::remove_file(entry_path(root, digest));
}

/// True when `a` and `b` are the same file (device and inode).
pub(crate) fn same_file(a: &std::fs::Metadata, b: &std::fs::Metadata) -> bool {
    a.dev() == b.dev() && a.ino() == b.ino()
}

impl DirBlobStore {
    /// Holds the bundle being written at `path` (open as `file`) by a hard link in the store's
    /// `bundles` folder, so blobs written into it can be kept without copying them
    /// ([`HeldBundle::keep`]). Fails, leaving nothing, when the store is on another filesystem
    /// than `path` (or one without hard links), or when `path` is no longer `file`: the caller
    /// then copies blobs into the store instead.
    pub fn hold_bundle(&self, path: &Path, file: &File) -> Result<HeldBundle, StoreError> {
        let dir = self.root().join(BUNDLES_DIR);
        std::fs::create_dir_all(&dir).map_err(io_err(&dir))?;
        let mut id = [0u8; 16];
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut id);
        let name = format!("{}.airlift", hex::encode(id));
        let link = dir.join(&name);
        std::fs::hard_link(path, &link).map_err(io_err(&link))?;
        let linked = std::fs::symlink_metadata(&link).map_err(io_err(&link));
        let open = file.metadata().map_err(io_err(path));
        match (linked, open) {
            (Ok(l), Ok(o)) if same_file(&l, &o) => Ok(HeldBundle {
                store: self.clone(),
                name,
                path: link,
            }),
            (linked, open) => {
                let _ = std::fs::remove_file(&link);
                linked?;
                open?;
                Err(StoreError::Io {
                    path: path.to_path_buf(),
                    source: io::Error::other("the file at this path is not the bundle written"),
                })
            }
        }
    }

    /// Removes what the store holds for nothing: entries whose bundle is gone, and held
    /// bundles that no entry points at and that have no other name (a bundle still present
    /// under its own name costs no space and is kept until it is not). Returns how many held
    /// bundles were removed.
    pub fn prune_held(&self) -> io::Result<usize> {
        let root = self.root();
        let mut used = HashSet::new();
        if let Ok(entries) = std::fs::read_dir(root.join(HELD_DIR)) {
            for entry in entries {
                let path = entry?.path();
                let name = crate::limits::read_bounded_string(&path, ENTRY_LIMIT)
                    .ok()
                    .and_then(|text| parse_entry(&text).map(|(name, ..)| name.to_string()));
                match name {
                    Some(name) if root.join(BUNDLES_DIR).join(&name).is_file() => {
                        used.insert(name);
                    }
                    // An entry being written (`.tmp…`) is left alone.
                    _ if path
                        .file_name()
                        .is_some_and(|n| n.to_string_lossy().starts_with('.')) => {}
                    _ => {
                        let _ = std::fs::remove_file(&path);
                    }
                }
            }
        }
        let mut removed = 0;
        let Ok(bundles) = std::fs::read_dir(root.join(BUNDLES_DIR)) else {
            return Ok(0);
        };
        for entry in bundles {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if !is_bundle_name(&name) || used.contains(&name) {
                continue;
            }
            let m = entry.metadata()?;
            if m.is_file() && m.nlink() == 1 {
                std::fs::remove_file(entry.path())?;
                removed += 1;
            }
        }
        Ok(removed)
    }

    /// True when the store holds `digest` as a range of a held bundle (not as a file of its own).
    pub fn is_held(&self, digest: &Digest) -> bool {
        !self.path_of(digest).is_file() && self.held_range(digest).is_some()
    }
}

/// A bundle the store holds by hard link (see the module docs).
#[derive(Debug)]
pub struct HeldBundle {
    store: DirBlobStore,
    name: String,
    path: PathBuf,
}

impl HeldBundle {
    /// The store's link to the bundle.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Records that the verified blob `digest` is the `size` bytes at `offset` of the bundle,
    /// so the store holds it from now on, without a proof (a later reader hashes it) until
    /// [`HeldBundle::settle`].
    pub fn keep(&self, digest: &Digest, offset: u64, size: u64) -> Result<(), StoreError> {
        write_entry(self.store.root(), digest, &self.name, offset, size)
    }

    /// Once the bundle is complete and on disk: points every blob of `blobs` (digest, offset,
    /// size; all verified in it) at this bundle, each with a proof of its range as the file is
    /// now (and without the proof of the range it pointed at before, so proofs do not pile up
    /// build after build), then prunes held bundles nothing points at any more. Blobs the store
    /// keeps as files of their own are left as they are.
    pub fn settle(&self, blobs: &[(Digest, u64, u64)]) -> Result<(), StoreError> {
        let file = File::open(&self.path).map_err(io_err(&self.path))?;
        for (digest, offset, size) in blobs {
            if self.store.path_of(digest).is_file() {
                continue;
            }
            // A proof that cannot be recorded only costs a hash later.
            if let Some(proofs) = self.store.proof_store() {
                let before =
                    read_entry(self.store.root(), digest).filter(|o| o.bundle != self.path);
                if let Some(old) = before {
                    let old_key = File::open(&old.bundle)
                        .and_then(|f| proofs.key_for_range(&f, old.offset, old.size, digest));
                    if let Ok(old_key) = old_key {
                        proofs.forget(&old_key);
                    }
                }
                if let Ok(key) = proofs.key_for_range(&file, *offset, *size, digest) {
                    let _ = proofs.record(&key, digest);
                }
            }
            self.keep(digest, *offset, *size)?;
            self.store.close(digest);
        }
        self.store.prune_held().map_err(io_err(self.store.root()))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_well_formed_entries_naming_a_held_bundle_are_read() {
        let name = format!("{}.airlift", "a".repeat(32));
        assert_eq!(
            parse_entry(&format!("bundle {name}\noffset 4096\nsize 10\n")),
            Some((name.as_str(), 4096, 10))
        );
        for bad in [
            "bundle ../../etc/passwd\noffset 0\nsize 1\n".to_string(),
            format!("bundle {name}\noffset 1\nsize {}\n", u64::MAX),
            format!("bundle {name}\noffset 0\nsize 1\nmore\n"),
            format!("bundle {name}\nsize 1\noffset 0\n"),
            format!("bundle {}.airlift\noffset 0\nsize 1\n", "g".repeat(32)),
        ] {
            assert_eq!(parse_entry(&bad), None, "{bad:?}");
        }
    }
}
