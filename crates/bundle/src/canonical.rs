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
    let mut h = tar::Header::new_ustar();
    h.set_path(path)?;
    h.set_size(size);
    h.set_mode(0o644);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(mtime);
    h.set_entry_type(tar::EntryType::Regular);
    h.set_cksum();
    let mut out = [0u8; 512];
    out.copy_from_slice(h.as_bytes());
    Ok(out)
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
}
