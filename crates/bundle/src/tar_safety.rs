//! One pass over a bundle's tar headers: builds the member index and rejects hostile archives.
//!
//! Only plain files with canonical relative paths are accepted. Links, devices, FIFOs,
//! directories, absolute paths, `..` and `.` components, duplicates, and members whose declared
//! size runs past the end of the file are refused before any content is read.

use std::collections::HashSet;
use std::fs::File;
use std::io::{self, Seek, SeekFrom};

use tar::EntryType;

/// One plain-file member of the tar and where its bytes are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberEntry {
    /// The member's path, e.g. `blobs/sha256/<hex>`.
    pub path: String,
    /// Offset of its (first) header block in the file.
    pub header_offset: u64,
    /// Offset of its first content byte in the file.
    pub data_offset: u64,
    /// Its size in bytes.
    pub size: u64,
}

/// A tar archive that is malformed or hostile.
#[derive(Debug, thiserror::Error)]
pub enum TarError {
    /// Reading the archive failed, or a header is corrupt (bad checksum, bad number field).
    #[error("malformed tar header near byte {offset}")]
    Malformed {
        /// Where reading stopped.
        offset: u64,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// A path that climbs out of the extraction root with `..`.
    #[error("member `{path}` escapes the archive with `..` (path traversal)")]
    Traversal {
        /// The member path as stored.
        path: String,
    },
    /// An absolute path.
    #[error("member `{path}` has an absolute path")]
    Absolute {
        /// The member path as stored.
        path: String,
    },
    /// A path with empty or `.` components, a backslash, or bytes that are not UTF-8.
    #[error("member `{path}` has a non-canonical path")]
    NonCanonical {
        /// The member path as stored (lossy when not UTF-8).
        path: String,
    },
    /// A symbolic link.
    #[error("member `{path}` is a symbolic link to `{target}`")]
    Symlink {
        /// The member path.
        path: String,
        /// Where it points.
        target: String,
    },
    /// A hard link.
    #[error("member `{path}` is a hard link to `{target}`")]
    HardLink {
        /// The member path.
        path: String,
        /// Where it points.
        target: String,
    },
    /// A character or block device, or a FIFO.
    #[error("member `{path}` is a device or FIFO ({kind})")]
    Device {
        /// The member path.
        path: String,
        /// `character device`, `block device` or `fifo`.
        kind: &'static str,
    },
    /// Any other entry type (directory, sparse file, …).
    #[error(
        "member `{path}` has unsupported tar entry type {kind:?}: only plain files are allowed"
    )]
    UnsupportedType {
        /// The member path.
        path: String,
        /// The raw type byte.
        kind: char,
    },
    /// The same path twice.
    #[error("member `{path}` appears more than once")]
    Duplicate {
        /// The member path.
        path: String,
    },
    /// A GNU long-name/long-link or PAX extension record larger than [`MAX_EXTENSION`]: such a
    /// record is read into memory, so a hostile one could exhaust it.
    #[error("tar extension record at byte {offset} declares {size} bytes, over the {MAX_EXTENSION}-byte limit")]
    ExtensionTooLarge {
        /// Where its header is.
        offset: u64,
        /// Its declared size.
        size: u64,
    },
    /// A member's declared size runs past the end of the file.
    #[error("member `{path}` declares {size} bytes at offset {offset}, past the end of the {file_len}-byte file")]
    PastEof {
        /// The member path.
        path: String,
        /// Where its data starts.
        offset: u64,
        /// Its declared size.
        size: u64,
        /// The file's length.
        file_len: u64,
    },
}

impl TarError {
    /// What the operator can do about it.
    pub fn hint(&self) -> &'static str {
        match self {
            TarError::PastEof { .. } | TarError::Malformed { .. } => {
                "the bundle file is truncated or corrupt: copy it again and compare its sha256sum with the vendor's"
            }
            _ => "this file was not written by airlift-pack and may be hostile: do not extract it; ask the vendor for a fresh copy",
        }
    }
}

/// Both passes read through the shared file position: start each at the beginning.
fn rewind(mut file: &File) -> io::Result<()> {
    file.seek(SeekFrom::Start(0)).map(|_| ())
}

/// The largest GNU long-name/long-link or PAX extension record accepted.
pub const MAX_EXTENSION: u64 = 64 * 1024;

/// First pass, raw: extension records are read into memory by the second pass, so their size is
/// bounded here before any of them is read.
fn check_extensions(file: &File) -> Result<(), TarError> {
    let malformed = |offset: u64| move |source: io::Error| TarError::Malformed { offset, source };
    rewind(file).map_err(malformed(0))?;
    let mut archive = tar::Archive::new(file);
    let mut last = 0;
    for entry in archive.entries_with_seek().map_err(malformed(0))?.raw(true) {
        let entry = entry.map_err(|e| malformed(last)(e))?;
        last = entry.raw_header_position();
        let kind = entry.header().entry_type();
        let extension = matches!(
            kind,
            EntryType::GNULongName
                | EntryType::GNULongLink
                | EntryType::XHeader
                | EntryType::XGlobalHeader
        );
        if extension && entry.size() > MAX_EXTENSION {
            return Err(TarError::ExtensionTooLarge {
                offset: last,
                size: entry.size(),
            });
        }
    }
    Ok(())
}

fn check_path(raw: &[u8]) -> Result<String, TarError> {
    let lossy = || String::from_utf8_lossy(raw).into_owned();
    let Ok(path) = std::str::from_utf8(raw) else {
        return Err(TarError::NonCanonical { path: lossy() });
    };
    if path.starts_with('/') {
        return Err(TarError::Absolute { path: lossy() });
    }
    if path.split('/').any(|c| c == "..") {
        return Err(TarError::Traversal { path: lossy() });
    }
    let bad = path.is_empty()
        || path.contains('\\')
        || path.contains('\0')
        || path.split('/').any(|c| c.is_empty() || c == ".");
    if bad {
        return Err(TarError::NonCanonical { path: lossy() });
    }
    Ok(path.to_string())
}

fn link_target(entry: &tar::Entry<'_, &File>) -> String {
    entry
        .link_name_bytes()
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default()
}

/// Reads every header of `file` once (seeking over contents) and returns the plain-file members
/// in archive order. Rejects anything hostile; see [`TarError`].
pub fn scan(file: &File) -> Result<Vec<MemberEntry>, TarError> {
    let malformed = |offset: u64| move |source: io::Error| TarError::Malformed { offset, source };
    let file_len = file.metadata().map_err(malformed(0))?.len();
    check_extensions(file)?;
    rewind(file).map_err(malformed(0))?;
    let mut archive = tar::Archive::new(file);
    let mut seen = HashSet::new();
    let mut out: Vec<MemberEntry> = Vec::new();
    let last_end = |out: &Vec<MemberEntry>| out.last().map_or(0, |m| m.data_offset + m.size);
    let entries = archive.entries_with_seek().map_err(malformed(0))?;
    for entry in entries {
        let entry = entry.map_err(|e| malformed(last_end(&out))(e))?;
        let raw_path = entry.path_bytes();
        let path = check_path(&raw_path)?;
        let kind = entry.header().entry_type();
        match kind {
            EntryType::Regular => {}
            EntryType::Symlink => {
                return Err(TarError::Symlink {
                    target: link_target(&entry),
                    path,
                })
            }
            EntryType::Link => {
                return Err(TarError::HardLink {
                    target: link_target(&entry),
                    path,
                })
            }
            EntryType::Char => {
                return Err(TarError::Device {
                    path,
                    kind: "character device",
                })
            }
            EntryType::Block => {
                return Err(TarError::Device {
                    path,
                    kind: "block device",
                })
            }
            EntryType::Fifo => return Err(TarError::Device { path, kind: "fifo" }),
            other => {
                return Err(TarError::UnsupportedType {
                    path,
                    kind: char::from(other.as_byte()),
                })
            }
        }
        let size = entry.size();
        let data_offset = entry.raw_file_position();
        if data_offset
            .checked_add(size)
            .is_none_or(|end| end > file_len)
        {
            return Err(TarError::PastEof {
                path,
                offset: data_offset,
                size,
                file_len,
            });
        }
        if !seen.insert(path.clone()) {
            return Err(TarError::Duplicate { path });
        }
        out.push(MemberEntry {
            path,
            header_offset: entry.raw_header_position(),
            data_offset,
            size,
        });
    }
    Ok(out)
}

/// Checks a member path the way [`scan`] does; the writer uses it for component file paths.
pub fn check_member_path(path: &str) -> Result<(), TarError> {
    check_path(path.as_bytes()).map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_checked() {
        assert!(check_path(b"blobs/sha256/ab").is_ok());
        assert!(matches!(
            check_path(b"../x"),
            Err(TarError::Traversal { .. })
        ));
        assert!(matches!(
            check_path(b"a/../../x"),
            Err(TarError::Traversal { .. })
        ));
        assert!(matches!(
            check_path(b"/etc/passwd"),
            Err(TarError::Absolute { .. })
        ));
        assert!(matches!(
            check_path(b"./a"),
            Err(TarError::NonCanonical { .. })
        ));
        assert!(matches!(
            check_path(b"a//b"),
            Err(TarError::NonCanonical { .. })
        ));
        assert!(matches!(
            check_path(b"a/"),
            Err(TarError::NonCanonical { .. })
        ));
        assert!(matches!(
            check_path(b"\xff"),
            Err(TarError::NonCanonical { .. })
        ));
    }
}
