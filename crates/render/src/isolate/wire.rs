//! The render worker's protocol over its standard input and output: frames of a small JSON
//! header and a raw body, each length-prefixed and read with a bound.
//!
//! ```text
//! frame = header length (u32, big endian) · header (JSON) · body length (u64, big endian) · body
//! ```
//!
//! The worker speaks first (`hello`); the parent then sends `context` (body: the template
//! context as JSON) and, per template, `render` (body: the source); the worker answers each
//! `render` with `rendered` (body: the output) or `failed`.

use std::io::{self, Read, Write};

use serde::{Deserialize, Serialize};

/// The longest header either side accepts.
pub(crate) const MAX_HEADER: u32 = 64 * 1024;
/// The longest engine message a `failed` header carries (the rest is cut).
pub(crate) const MAX_MESSAGE: usize = 4 * 1024;
/// The protocol version `hello` announces.
pub(crate) const PROTOCOL: u32 = 1;
/// The name `hello` announces.
pub(crate) const WORKER_NAME: &str = "airlift-render";

/// A bound the worker itself saw a template hit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) enum WireLimit {
    /// Out of fuel.
    Fuel,
    /// Output past its bound.
    Output,
    /// A size past what can be allocated (`capacity overflow`).
    Memory,
}

/// A frame's header.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase", deny_unknown_fields)]
pub(crate) enum Header {
    /// Worker → parent, first: who answers, once its limits are set.
    Hello {
        /// [`WORKER_NAME`].
        worker: String,
        /// [`PROTOCOL`].
        protocol: u32,
        /// The address-space bound it set, in bytes (lower than asked when its own hard limit
        /// already was).
        memory: u64,
    },
    /// Parent → worker: the body is the template context, as JSON.
    Context,
    /// Parent → worker: render the body (the source) as `file`.
    Render {
        /// The template's name, for errors.
        file: String,
    },
    /// Worker → parent: the body is the output.
    Rendered,
    /// Worker → parent: the template failed (empty body).
    Failed {
        /// The line, when known.
        line: Option<usize>,
        /// The undefined context path, for an undefined value.
        undefined: Option<String>,
        /// The bound it hit, if any.
        limit: Option<WireLimit>,
        /// The engine's message.
        message: String,
    },
}

/// One frame.
#[derive(Debug)]
pub(crate) struct Frame {
    /// The header.
    pub header: Header,
    /// The body.
    pub body: Vec<u8>,
}

/// Writes one frame and flushes.
pub(crate) fn write_frame(w: &mut impl Write, header: &Header, body: &[u8]) -> io::Result<()> {
    let head = serde_json::to_vec(header).map_err(io::Error::other)?;
    let head_len = u32::try_from(head.len())
        .ok()
        .filter(|n| *n <= MAX_HEADER)
        .ok_or_else(|| io::Error::other("frame header too long"))?;
    w.write_all(&head_len.to_be_bytes())?;
    w.write_all(&head)?;
    w.write_all(&(body.len() as u64).to_be_bytes())?;
    w.write_all(body)?;
    w.flush()
}

/// Reads one frame whose body is at most `max_body` bytes; `None` at a clean end of stream
/// (before a frame starts).
pub(crate) fn read_frame(r: &mut impl Read, max_body: u64) -> io::Result<Option<Frame>> {
    let mut len = [0u8; 4];
    let mut got = 0;
    while got < len.len() {
        match r.read(&mut len[got..]) {
            Ok(0) if got == 0 => return Ok(None),
            Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    let head_len = u32::from_be_bytes(len);
    if head_len > MAX_HEADER {
        return Err(invalid(format!(
            "a frame header of {head_len} bytes (at most {MAX_HEADER})"
        )));
    }
    let head = read_exactly(r, u64::from(head_len))?;
    let header: Header = serde_json::from_slice(&head)
        .map_err(|e| invalid(format!("an unreadable frame header: {e}")))?;
    let mut len = [0u8; 8];
    r.read_exact(&mut len)?;
    let body_len = u64::from_be_bytes(len);
    if body_len > max_body {
        return Err(invalid(format!(
            "a frame body of {body_len} bytes (at most {max_body})"
        )));
    }
    let body = read_exactly(r, body_len)?;
    Ok(Some(Frame { header, body }))
}

/// Exactly `len` bytes, the buffer growing as they arrive (a claimed length alone allocates
/// nothing).
fn read_exactly(r: &mut impl Read, len: u64) -> io::Result<Vec<u8>> {
    let mut buf = Vec::new();
    r.take(len).read_to_end(&mut buf)?;
    if buf.len() as u64 != len {
        return Err(io::ErrorKind::UnexpectedEof.into());
    }
    Ok(buf)
}

fn invalid(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message)
}

/// `text` cut to at most [`MAX_MESSAGE`] bytes on a character boundary.
pub(crate) fn cut_message(mut text: String) -> String {
    if text.len() > MAX_MESSAGE {
        let mut cut = MAX_MESSAGE;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
        text.push('…');
    }
    text
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn frames_round_trip_and_a_clean_end_is_none() {
        let mut buf = Vec::new();
        let header = Header::Render {
            file: "a.yaml".into(),
        };
        write_frame(&mut buf, &header, b"x: {{ 1 }}").unwrap();
        write_frame(&mut buf, &Header::Rendered, b"").unwrap();
        let mut r = buf.as_slice();
        let f = read_frame(&mut r, 100).unwrap().unwrap();
        assert_eq!(f.header, header);
        assert_eq!(f.body, b"x: {{ 1 }}");
        let f = read_frame(&mut r, 100).unwrap().unwrap();
        assert_eq!(f.header, Header::Rendered);
        assert!(f.body.is_empty());
        assert!(read_frame(&mut r, 100).unwrap().is_none());
    }

    #[test]
    fn oversized_and_torn_frames_are_refused() {
        let mut buf = Vec::new();
        write_frame(&mut buf, &Header::Rendered, &[b'x'; 101]).unwrap();
        let err = read_frame(&mut buf.as_slice(), 100).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        assert!(err.to_string().contains("101 bytes"), "{err}");
        let torn = &buf[..buf.len() - 1];
        let err = read_frame(&mut &torn[..], 1000).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
        let mut huge = (MAX_HEADER + 1).to_be_bytes().to_vec();
        huge.extend_from_slice(b"{}");
        let err = read_frame(&mut huge.as_slice(), 1000).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        // A body length far past what was sent allocates nothing up front and fails cleanly.
        let mut lying = Vec::new();
        let head = serde_json::to_vec(&Header::Rendered).unwrap();
        lying.extend_from_slice(&(head.len() as u32).to_be_bytes());
        lying.extend_from_slice(&head);
        lying.extend_from_slice(&(1u64 << 40).to_be_bytes());
        let err = read_frame(&mut lying.as_slice(), u64::MAX).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
    }

    #[test]
    fn long_messages_are_cut_on_a_char_boundary() {
        let text = "é".repeat(MAX_MESSAGE);
        let cut = cut_message(text);
        assert!(cut.len() <= MAX_MESSAGE + '…'.len_utf8());
        assert!(cut.ends_with('…'));
        assert_eq!(cut_message("short".into()), "short");
    }
}
