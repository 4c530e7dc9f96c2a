//! The canonical tar encoding of a bundle: the one header, padding and trailer the writer emits
//! for each member. The reader accepts exactly these bytes (see [`crate::tar_safety::scan`]), so
//! a bundle file is a function of what its signature covers and its sha256 is a stable identity.

use std::io;

/// The tar block size.
pub const BLOCK: u64 = 512;

/// The end of the archive: two zero blocks, then the end of the file.
pub const TRAILER: [u8; 1024] = [0u8; 1024];

/// Bytes of zero padding after `size` bytes of content.
pub fn padding(size: u64) -> u64 {
    (BLOCK - size % BLOCK) % BLOCK
}

/// The canonical header of a member: ustar, type `0`, mode 0644, uid/gid 0, empty user and group
/// names, `mtime` (the manifest's build time), and a path longer than 100 bytes split into the
/// ustar prefix field.
pub fn member_header(path: &str, size: u64, mtime: u64) -> io::Result<[u8; 512]> {
    header(path, size, mtime, tar::EntryType::Regular)
}

/// A canonical header of type `kind`: the fields [`member_header`] describes.
fn header(path: &str, size: u64, mtime: u64, kind: tar::EntryType) -> io::Result<[u8; 512]> {
    let mut h = tar::Header::new_ustar();
    h.set_path(path)?;
    h.set_size(size);
    h.set_mode(0o644);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(mtime);
    h.set_entry_type(kind);
    h.set_cksum();
    let mut out = [0u8; 512];
    out.copy_from_slice(h.as_bytes());
    Ok(out)
}

/// Every blob of at least this size starts at a multiple of it in the file. A filesystem that
/// shares extents between files (XFS with reflink, Btrfs) can then take a blob into a bundle, or
/// a bundle's blob into the blob cache, by sharing its blocks instead of copying them: the
/// kernel shares only whole blocks at equal offsets within them, and 4096 bytes is the block
/// size of both filesystems' defaults.
pub const CONTENT_ALIGN: u64 = 4096;

/// Whether a member's content must start at a multiple of [`CONTENT_ALIGN`]: a blob of at least
/// that size (a smaller one has no whole block to share).
pub fn is_aligned(path: &str, size: u64) -> bool {
    size >= CONTENT_ALIGN && path.starts_with(crate::reader::BLOBS_PREFIX)
}

/// The path in the header of the alignment record (GNU tar names its PAX headers
/// `…/PaxHeaders/…` too). No member has it: a PAX header describes the member after it.
pub const ALIGNMENT_HEADER_PATH: &str = "PaxHeaders/align";

/// What the alignment record's one PAX `comment` record says, before the spaces that fill it.
const ALIGNMENT_COMMENT: &str =
    "airlift: pads the next member so its content starts at a multiple of 4096 bytes";

/// What goes in front of a member that [`is_aligned`] whose header would start at `pos`:
/// nothing when its content (after the 512-byte header) already starts at a multiple of
/// [`CONTENT_ALIGN`]; otherwise one PAX extended header (type `x`, the member's canonical header fields otherwise,
/// path [`ALIGNMENT_HEADER_PATH`]) whose content, a whole number of blocks, is a single
/// `comment` record (a keyword every tar reader ignores) filled with spaces to the length that
/// moves the member's header to the next aligned place. `pos` must be a multiple of 512.
pub fn alignment_record(pos: u64, mtime: u64) -> io::Result<Option<Vec<u8>>> {
    let Some(size) = alignment_content_size(pos) else {
        return Ok(None);
    };
    let h = header(ALIGNMENT_HEADER_PATH, size, mtime, tar::EntryType::XHeader)?;
    // `size` is 512..=4096 (see `alignment_content_size`): three or four digits.
    let size = usize::try_from(size).map_err(io::Error::other)?;
    let digits = size.to_string().len();
    let fill = size - digits - " comment=".len() - ALIGNMENT_COMMENT.len() - "\n".len();
    let mut out = Vec::with_capacity(512 + size);
    out.extend_from_slice(&h);
    out.extend_from_slice(format!("{size} comment={ALIGNMENT_COMMENT}").as_bytes());
    out.resize(out.len() + fill, b' ');
    out.push(b'\n');
    debug_assert_eq!(out.len(), 512 + size);
    Ok(Some(out))
}

/// The content size of the alignment record in front of a member header at `pos`, or `None`
/// when that member's content is already aligned: the one multiple of 512 in 512..=4096 that
/// puts the content (after the record's header and content, and the member's own header) at a
/// multiple of [`CONTENT_ALIGN`].
pub fn alignment_content_size(pos: u64) -> Option<u64> {
    if (pos + BLOCK) % CONTENT_ALIGN == 0 {
        return None;
    }
    let after_headers = (pos + 2 * BLOCK) % CONTENT_ALIGN;
    Some(match (CONTENT_ALIGN - after_headers) % CONTENT_ALIGN {
        0 => CONTENT_ALIGN,
        n => n,
    })
}

/// The ustar header fields by byte range, to name the first field where a header differs from
/// the canonical one.
const FIELDS: &[(usize, &str)] = &[
    (100, "name"),
    (108, "mode"),
    (116, "uid"),
    (124, "gid"),
    (136, "size"),
    (148, "mtime"),
    (156, "checksum"),
    (157, "typeflag"),
    (257, "linkname"),
    (263, "magic"),
    (265, "version"),
    (297, "uname"),
    (329, "gname"),
    (337, "devmajor"),
    (345, "devminor"),
    (500, "prefix"),
    (512, "padding"),
];

/// The name of the ustar field holding byte `offset` of a header.
pub fn field_at(offset: usize) -> &'static str {
    FIELDS
        .iter()
        .find(|(end, _)| offset < *end)
        .map_or("padding", |(_, name)| name)
}

/// The sum of a header's bytes with the checksum field read as spaces, as ustar defines it.
pub fn checksum(block: &[u8; 512]) -> u32 {
    block
        .iter()
        .enumerate()
        .map(|(i, &b)| {
            if (148..156).contains(&i) {
                u32::from(b' ')
            } else {
                u32::from(b)
            }
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_header_is_stable_and_checksummed() {
        let h = member_header("blobs/sha256/ab", 3, 1_700_000_000).unwrap();
        assert_eq!(&h[257..263], b"ustar\0");
        let stored = std::str::from_utf8(&h[148..156]).unwrap();
        let stored = stored.trim_matches(|c| c == '\0' || c == ' ');
        assert_eq!(u32::from_str_radix(stored, 8).unwrap(), checksum(&h));
        assert_eq!(field_at(0), "name");
        assert_eq!(field_at(100), "mode");
        assert_eq!(field_at(156), "typeflag");
        assert_eq!(field_at(400), "prefix");
        assert_eq!(padding(512), 0);
        assert_eq!(padding(1), 511);
    }

    #[test]
    fn every_blob_header_position_gets_the_record_that_aligns_its_content() {
        for block in 0..64u64 {
            let pos = block * BLOCK;
            let record = alignment_record(pos, 1_700_000_000).unwrap();
            let content_at = pos + record.as_ref().map_or(0, |r| r.len() as u64) + BLOCK;
            assert_eq!(content_at % CONTENT_ALIGN, 0, "header at {pos}");
            let Some(record) = record else {
                assert_eq!((pos + BLOCK) % CONTENT_ALIGN, 0);
                continue;
            };
            // A valid PAX header: checksummed, type `x`, its size the record's length.
            let header: &[u8; 512] = record[..512].try_into().unwrap();
            let h = tar::Header::from_byte_slice(header);
            assert_eq!(h.cksum().unwrap(), checksum(header));
            assert_eq!(h.entry_type(), tar::EntryType::XHeader);
            let body = &record[512..];
            assert_eq!(h.entry_size().unwrap(), body.len() as u64);
            assert_eq!(body.len() as u64 % BLOCK, 0);
            // One record whose decimal length is its own length, ending the content.
            let text = std::str::from_utf8(body).unwrap();
            let (len, rest) = text.split_once(' ').unwrap();
            assert_eq!(len.parse::<usize>().unwrap(), body.len());
            assert!(rest.starts_with("comment=airlift: "));
            assert!(rest.ends_with(" \n") && rest.matches('\n').count() == 1);
        }
    }
}
