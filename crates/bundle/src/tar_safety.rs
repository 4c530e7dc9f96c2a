//! One pass over a bundle's tar headers: builds the member index and rejects hostile archives.
//!
//! Only plain files with canonical relative paths are accepted. Links, devices, FIFOs,
//! directories, absolute paths, `..` and `.` components, duplicates, and members whose declared
//! size runs past the end of the file are refused before any content is read; so is anything
//! that is not byte for byte the encoding the writer produces ([`crate::canonical`]), which
//! includes a blob of 4096 bytes or more whose content does not start at a multiple of 4096. The
//! one extension record accepted is the alignment record in front of such a blob, compared with
//! the writer's.

use std::collections::HashSet;
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

use crate::canonical::{self, BLOCK};
use crate::escape::{needs_escape, Escaped};

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
    /// Its header's mtime: the same for every member (the scan refuses anything else), and
    /// the manifest's `build.created`.
    pub mtime: u64,
}

/// A tar archive that is malformed, hostile, or not the canonical encoding the writer produces.
#[derive(Debug, thiserror::Error)]
pub enum TarError {
    /// Reading the archive failed.
    #[error("cannot read the archive at byte {offset}")]
    Malformed {
        /// Where reading stopped.
        offset: u64,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// The file is empty, or holds no member before its end-of-archive blocks.
    #[error("the file holds no tar member ({len} bytes): it is not an Airlift bundle")]
    Empty {
        /// The file's length.
        len: u64,
    },
    /// The first block is not a tar header at all.
    #[error("the file is not a tar archive: its first 512 bytes are not a tar header")]
    NotTar,
    /// A header whose checksum does not match its bytes.
    #[error("the tar header at byte {offset} is corrupt: its checksum does not match")]
    Checksum {
        /// Where the header is.
        offset: u64,
    },
    /// A header that is valid tar but not the one the writer produces for this member (a changed
    /// mode, owner, time, magic, link name or type flag, a reformatted number).
    #[error("the tar header of member `{}` at byte {offset} differs from the canonical header in its `{field}` field", Escaped(path))]
    NonCanonicalHeader {
        /// The member path.
        path: String,
        /// Where the header is.
        offset: u64,
        /// The first field that differs.
        field: &'static str,
    },
    /// Non-zero bytes in the padding after a member's content.
    #[error(
        "the padding after member `{}` (at byte {offset}) is not all zeros",
        Escaped(path)
    )]
    Padding {
        /// The member path.
        path: String,
        /// Where the padding starts.
        offset: u64,
    },
    /// The file ends where a header or the end-of-archive blocks should be.
    #[error("the archive ends at byte {offset} without its end-of-archive blocks (truncated)")]
    MissingEnd {
        /// Where the file ends.
        offset: u64,
    },
    /// Anything but exactly two zero blocks after the last member, then the end of the file:
    /// a non-zero second block, or bytes after the trailer.
    #[error("the end of the archive at byte {offset} is not exactly two zero blocks followed by the end of the file")]
    Trailer {
        /// Where the trailer starts.
        offset: u64,
    },
    /// A GNU long-name/long-link or PAX extension record other than the one alignment record
    /// the writer puts in front of a blob whose content would not start at a multiple of 4096
    /// bytes ([`canonical::alignment_record`]), byte for byte.
    #[error("tar extension record (type {kind:?}) at byte {offset}: a bundle holds no GNU extension records, and no PAX records but the one that aligns a blob's content, written exactly as the writer writes it")]
    Extension {
        /// Where its header is.
        offset: u64,
        /// The type byte.
        kind: char,
    },
    /// A blob of at least 4096 bytes whose content does not start at a multiple of 4096: a
    /// bundle written before blob contents were aligned, or an altered file.
    #[error("the content of blob member `{}` starts at byte {offset}, not at a multiple of 4096 bytes as in every bundle airlift-pack writes", Escaped(path))]
    Unaligned {
        /// The member path.
        path: String,
        /// Where its content starts.
        offset: u64,
    },
    /// A path that climbs out of the extraction root with `..`.
    #[error(
        "member `{}` escapes the archive with `..` (path traversal)",
        Escaped(path)
    )]
    Traversal {
        /// The member path as stored.
        path: String,
    },
    /// An absolute path.
    #[error("member `{}` has an absolute path", Escaped(path))]
    Absolute {
        /// The member path as stored.
        path: String,
    },
    /// A path with empty or `.` components, a backslash, or bytes that are not UTF-8.
    #[error("member `{}` has a non-canonical path", Escaped(path))]
    NonCanonical {
        /// The member path as stored (lossy when not UTF-8).
        path: String,
    },
    /// A path with a control character (an escape sequence would reach the terminal).
    #[error("member `{}` has a control character in its path", Escaped(path))]
    ControlCharacter {
        /// The member path as stored.
        path: String,
    },
    /// A symbolic link.
    #[error(
        "member `{}` is a symbolic link to `{}`",
        Escaped(path),
        Escaped(target)
    )]
    Symlink {
        /// The member path.
        path: String,
        /// Where it points.
        target: String,
    },
    /// A hard link.
    #[error("member `{}` is a hard link to `{}`", Escaped(path), Escaped(target))]
    HardLink {
        /// The member path.
        path: String,
        /// Where it points.
        target: String,
    },
    /// A character or block device, or a FIFO.
    #[error("member `{}` is a device or FIFO ({kind})", Escaped(path))]
    Device {
        /// The member path.
        path: String,
        /// `character device`, `block device` or `fifo`.
        kind: &'static str,
    },
    /// Any other entry type (directory, sparse file, …).
    #[error(
        "member `{}` has unsupported tar entry type {kind:?}: only plain files are allowed",
        Escaped(path)
    )]
    UnsupportedType {
        /// The member path.
        path: String,
        /// The raw type byte.
        kind: char,
    },
    /// The same path twice.
    #[error("member `{}` appears more than once", Escaped(path))]
    Duplicate {
        /// The member path.
        path: String,
    },
    /// A member's declared size runs past the end of the file.
    #[error("member `{}` declares {size} bytes at offset {offset}, past the end of the {file_len}-byte file", Escaped(path))]
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
            TarError::PastEof { .. } | TarError::Malformed { .. } | TarError::MissingEnd { .. } => {
                "the bundle file is truncated or corrupt: copy it again and compare its sha256sum with the vendor's"
            }
            TarError::Empty { .. } | TarError::NotTar => {
                "pass the NAME-VERSION.airlift file the vendor shipped (`airlift-pack build` writes it)"
            }
            TarError::Unaligned { .. } => {
                "an older airlift-pack wrote this bundle (blob contents unaligned), or it was altered: ask the vendor for a bundle built with the current airlift-pack"
            }
            TarError::Checksum { .. } | TarError::Padding { .. } | TarError::Trailer { .. } | TarError::NonCanonicalHeader { .. } => {
                "the bundle file was altered after it was built (any byte change is refused): get a fresh copy from the vendor and compare its sha256sum"
            }
            _ => "this file was not written by airlift-pack and may be hostile: do not extract it; ask the vendor for a fresh copy",
        }
    }
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
    if path.contains('\0') {
        return Err(TarError::NonCanonical { path: lossy() });
    }
    if path.chars().any(needs_escape) {
        return Err(TarError::ControlCharacter { path: lossy() });
    }
    let bad =
        path.is_empty() || path.contains('\\') || path.split('/').any(|c| c.is_empty() || c == ".");
    if bad {
        return Err(TarError::NonCanonical { path: lossy() });
    }
    Ok(path.to_string())
}

fn lossy(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Refuses every type but a plain file, naming what it is.
fn check_type(header: &tar::Header, path: String) -> Result<String, TarError> {
    let link = || {
        header
            .link_name_bytes()
            .map(|b| lossy(&b))
            .unwrap_or_default()
    };
    match header.as_bytes()[156] {
        b'0' | b'\0' => Ok(path),
        b'2' => Err(TarError::Symlink {
            target: link(),
            path,
        }),
        b'1' => Err(TarError::HardLink {
            target: link(),
            path,
        }),
        b'3' => Err(TarError::Device {
            path,
            kind: "character device",
        }),
        b'4' => Err(TarError::Device {
            path,
            kind: "block device",
        }),
        b'6' => Err(TarError::Device { path, kind: "fifo" }),
        other => Err(TarError::UnsupportedType {
            path,
            kind: char::from(other),
        }),
    }
}

fn is_zero(b: &[u8]) -> bool {
    b.iter().all(|&x| x == 0)
}

/// Reads exactly `buf.len()` bytes at `offset`.
fn read_at(file: &File, buf: &mut [u8], offset: u64) -> Result<(), TarError> {
    file.read_exact_at(buf, offset)
        .map_err(|source| TarError::Malformed { offset, source })
}

/// Reads every header of `file` once (reading only headers, padding and the trailer, never a
/// member's content) and returns the members in archive order. Refuses anything hostile and
/// anything that is not the canonical encoding: each header must equal
/// [`canonical::member_header`] for its path and size (with the first header's mtime), padding
/// must be zeros, the content of every blob that [`canonical::is_aligned`] must start at a
/// multiple of [`canonical::CONTENT_ALIGN`] (behind [`canonical::alignment_record`] where
/// needed, and no other extension record anywhere), and the archive must end with exactly two
/// zero blocks and then the end of the file. See [`TarError`].
pub fn scan(file: &File) -> Result<Vec<MemberEntry>, TarError> {
    let file_len = file
        .metadata()
        .map_err(|source| TarError::Malformed { offset: 0, source })?
        .len();
    if file_len == 0 {
        return Err(TarError::Empty { len: 0 });
    }
    let mut seen = HashSet::new();
    let mut out: Vec<MemberEntry> = Vec::new();
    let mut mtime = None;
    let mut pos = 0u64;
    let mut block = [0u8; 512];
    // Where the alignment record in front of the next member is, when there is one.
    let mut aligned_by: Option<u64> = None;
    loop {
        if pos + BLOCK > file_len {
            return Err(TarError::MissingEnd { offset: pos });
        }
        read_at(file, &mut block, pos)?;
        if is_zero(&block) {
            if let Some(offset) = aligned_by {
                return Err(TarError::Extension { offset, kind: 'x' });
            }
            check_trailer(file, pos, file_len)?;
            if out.is_empty() {
                return Err(TarError::Empty { len: file_len });
            }
            return Ok(out);
        }
        let header = tar::Header::from_byte_slice(&block);
        let stored = header.cksum().ok();
        if stored != Some(canonical::checksum(&block)) {
            // A block with at most one non-zero byte is a damaged end-of-archive block, not a
            // header: a header has a name, a mode, a magic and a checksum.
            if pos > 0 && block.iter().filter(|&&b| b != 0).count() <= 1 {
                return Err(TarError::Trailer { offset: pos });
            }
            if pos == 0 && header.as_ustar().is_none() && header.as_gnu().is_none() {
                return Err(TarError::NotTar);
            }
            return Err(TarError::Checksum { offset: pos });
        }
        let kind = block[156];
        if kind == b'x' && aligned_by.is_none() {
            if let Some(end) = check_alignment_record(file, &block, pos, mtime, file_len)? {
                aligned_by = Some(pos);
                pos = end;
                continue;
            }
        }
        if matches!(kind, b'L' | b'K' | b'x' | b'g') {
            return Err(TarError::Extension {
                offset: pos,
                kind: char::from(kind),
            });
        }
        let path = check_type(header, check_path(&header.path_bytes())?)?;
        let bad_number = |field| TarError::NonCanonicalHeader {
            path: path.clone(),
            offset: pos,
            field,
        };
        let size = header.entry_size().map_err(|_| bad_number("size"))?;
        let member_mtime = header.mtime().map_err(|_| bad_number("mtime"))?;
        let data_offset = pos + BLOCK;
        let end = data_offset.checked_add(size).filter(|&e| e <= file_len);
        let Some(end) = end else {
            return Err(TarError::PastEof {
                path,
                offset: data_offset,
                size,
                file_len,
            });
        };
        if !seen.insert(path.clone()) {
            return Err(TarError::Duplicate { path });
        }
        let mtime = *mtime.get_or_insert(member_mtime);
        let expected =
            canonical::member_header(&path, size, mtime).map_err(|_| bad_number("name"))?;
        // Name the first field that differs; the checksum only when nothing else does (any
        // other change also changes the canonical checksum).
        let differs = |i: &usize| expected[*i] != block[*i];
        let first = (0..148).chain(156..512).find(differs);
        if let Some(i) = first.or_else(|| (148..156).find(differs)) {
            return Err(bad_number(canonical::field_at(i)));
        }
        let aligned = canonical::is_aligned(&path, size);
        if let (Some(offset), false) = (aligned_by.take(), aligned) {
            return Err(TarError::Extension { offset, kind: 'x' });
        }
        if aligned && data_offset % canonical::CONTENT_ALIGN != 0 {
            return Err(TarError::Unaligned {
                path,
                offset: data_offset,
            });
        }
        let pad = canonical::padding(size);
        if end + pad > file_len {
            return Err(TarError::MissingEnd { offset: file_len });
        }
        let mut padding = [0u8; 512];
        let padding = &mut padding[..pad as usize];
        read_at(file, padding, end)?;
        if !is_zero(padding) {
            return Err(TarError::Padding { path, offset: end });
        }
        out.push(MemberEntry {
            path,
            header_offset: pos,
            data_offset,
            size,
            mtime,
        });
        pos = end + pad;
    }
}

/// Checks a PAX header at `pos` against the alignment record the writer puts there
/// ([`canonical::alignment_record`], with the bundle's `mtime`): returns where the next header
/// starts when it is that record byte for byte, `None` when it is not (an extension record the
/// caller refuses). Reads at most 4 KiB of content.
fn check_alignment_record(
    file: &File,
    block: &[u8; 512],
    pos: u64,
    mtime: Option<u64>,
    file_len: u64,
) -> Result<Option<u64>, TarError> {
    // The manifest comes first, so the bundle's mtime is known before any blob.
    let Some(mtime) = mtime else {
        return Ok(None);
    };
    let Ok(Some(expected)) = canonical::alignment_record(pos, mtime) else {
        return Ok(None);
    };
    if expected[..512] != block[..] {
        return Ok(None);
    }
    let end = pos + expected.len() as u64;
    if end > file_len {
        return Err(TarError::MissingEnd { offset: file_len });
    }
    let mut content = vec![0u8; expected.len() - 512];
    read_at(file, &mut content, pos + BLOCK)?;
    Ok((content[..] == expected[512..]).then_some(end))
}

/// After the first zero block at `pos`: exactly one more zero block, then the end of the file.
fn check_trailer(file: &File, pos: u64, file_len: u64) -> Result<(), TarError> {
    let end = pos + canonical::TRAILER.len() as u64;
    if end > file_len {
        return Err(TarError::MissingEnd { offset: file_len });
    }
    let mut second = [0u8; 512];
    read_at(file, &mut second, pos + BLOCK)?;
    if !is_zero(&second) || end != file_len {
        return Err(TarError::Trailer { offset: pos });
    }
    Ok(())
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
            check_path(b"components/a/\x1b[8mx.yaml"),
            Err(TarError::ControlCharacter { .. })
        ));
        assert!(matches!(
            check_path(b"\xff"),
            Err(TarError::NonCanonical { .. })
        ));
    }
}
