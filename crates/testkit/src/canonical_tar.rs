//! Bundle archives written member by member in the canonical encoding, for tests that attack
//! one thing of a real bundle and must keep everything else as the writer makes it.

use std::io::Write;

/// Writes members in the canonical encoding the writer uses: each member's canonical header,
/// content and padding, the alignment record in front of every blob, then the trailer. Tests
/// use it to build archives that differ from a real bundle only in what they attack.
pub struct CanonicalTar<W: Write> {
    /// Where the archive goes.
    pub out: W,
    /// Whether blobs get their alignment record (off: the encoding of older writers).
    pub align: bool,
    pos: u64,
    mtime: u64,
}

impl<W: Write> CanonicalTar<W> {
    /// An archive whose headers all carry `mtime`.
    pub fn new(out: W, mtime: u64) -> Self {
        CanonicalTar {
            out,
            align: true,
            pos: 0,
            mtime,
        }
    }

    /// Where the next byte goes.
    pub fn pos(&self) -> u64 {
        self.pos
    }

    /// Appends bytes as they are (a crafted header or record).
    ///
    /// # Panics
    /// When the output cannot be written.
    pub fn raw(&mut self, bytes: &[u8]) {
        self.out
            .write_all(bytes)
            .unwrap_or_else(|e| panic!("cannot write the archive: {e}"));
        self.pos += bytes.len() as u64;
    }

    /// Appends one member: its alignment record when it needs one, header, content, padding.
    ///
    /// # Panics
    /// When the path or size has no canonical header, or the output cannot be written.
    pub fn member(&mut self, path: &str, data: &[u8]) {
        use airlift_bundle::canonical::{alignment_record, is_aligned, member_header, padding};
        let size = data.len() as u64;
        if self.align && is_aligned(path, size) {
            let record = alignment_record(self.pos, self.mtime)
                .unwrap_or_else(|e| panic!("no alignment record at {}: {e}", self.pos));
            if let Some(record) = record {
                self.raw(&record);
            }
        }
        let header = member_header(path, size, self.mtime)
            .unwrap_or_else(|e| panic!("no canonical header for `{path}`: {e}"));
        self.raw(&header);
        self.raw(data);
        self.raw(&vec![0u8; padding(data.len() as u64) as usize]);
    }

    /// Appends the end of the archive and hands back the output.
    pub fn finish(mut self) -> W {
        self.raw(&airlift_bundle::canonical::TRAILER);
        self.out
    }
}
