//! Bounds on everything read from outside: one bounded reader for files and stdin, and one
//! nesting check that runs (linearly, without parsing) before any YAML or JSON from outside is
//! handed to a parser, so a hostile document costs no more than reading it.

use std::io::{self, Read};
use std::path::{Path, PathBuf};

/// The deepest nesting of mappings and sequences accepted in YAML or JSON from outside.
pub const MAX_NESTING: usize = 64;
/// The largest key file (PEM) read.
pub const MAX_KEY_FILE: u64 = 64 * 1024;
/// The largest values file, definition or other YAML/JSON input file read.
pub const MAX_DOCUMENT: u64 = 16 * 1024 * 1024;
/// The largest secret (password, token) read from stdin or a file.
pub const MAX_SECRET: u64 = 64 * 1024;

/// An input over its size or nesting bound, or unreadable.
#[derive(Debug, thiserror::Error)]
pub enum LimitError {
    /// The input is larger than its bound (`/dev/zero`, a wrong file).
    #[error("{what} is larger than the {limit}-byte limit")]
    TooLarge {
        /// What was read (a path, `stdin`).
        what: String,
        /// The bound.
        limit: u64,
    },
    /// YAML or JSON nested deeper than [`MAX_NESTING`].
    #[error("{what} nests mappings or sequences {depth} levels deep (line {line}), over the limit of {limit}")]
    TooDeep {
        /// What was checked.
        what: String,
        /// The depth reached when the check stopped.
        depth: usize,
        /// The 1-based line where the limit was passed.
        line: usize,
        /// The bound.
        limit: usize,
    },
    /// Reading failed.
    #[error("cannot read `{}`", path.display())]
    Io {
        /// The file (or `-` for stdin).
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// The input is not UTF-8 text.
    #[error("`{}` is not UTF-8 text", path.display())]
    NotUtf8 {
        /// The file.
        path: PathBuf,
    },
}

impl LimitError {
    /// What the operator can do about it.
    pub fn hint(&self) -> String {
        match self {
            LimitError::TooLarge { what, .. } => format!("check that {what} is the file you meant: no legitimate input of this kind is that large"),
            LimitError::TooDeep { .. } => "flatten the document: no legitimate Airlift input nests this deep (it may be hostile)".into(),
            LimitError::Io { path, .. } => format!("check that `{}` exists and is readable", path.display()),
            LimitError::NotUtf8 { path } => format!("save `{}` as UTF-8 text", path.display()),
        }
    }
}

/// Reads at most `limit` bytes from `reader`; more is [`LimitError::TooLarge`]. `what` names
/// the input in errors (a path, `stdin`).
pub fn read_reader_bounded(
    reader: impl Read,
    what: &Path,
    limit: u64,
) -> Result<Vec<u8>, LimitError> {
    let mut buf = Vec::new();
    reader
        .take(limit.saturating_add(1))
        .read_to_end(&mut buf)
        .map_err(|source| LimitError::Io {
            path: what.to_path_buf(),
            source,
        })?;
    if buf.len() as u64 > limit {
        return Err(LimitError::TooLarge {
            what: format!("`{}`", what.display()),
            limit,
        });
    }
    Ok(buf)
}

/// Reads the file at `path`, refusing more than `limit` bytes (whatever its metadata says, so
/// `/dev/zero` and FIFOs are bounded too).
pub fn read_bounded(path: &Path, limit: u64) -> Result<Vec<u8>, LimitError> {
    let file = std::fs::File::open(path).map_err(|source| LimitError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    read_reader_bounded(file, path, limit)
}

/// [`read_bounded`], as UTF-8 text.
pub fn read_bounded_string(path: &Path, limit: u64) -> Result<String, LimitError> {
    String::from_utf8(read_bounded(path, limit)?).map_err(|_| LimitError::NotUtf8 {
        path: path.to_path_buf(),
    })
}

/// Refuses YAML or JSON whose mappings and sequences nest deeper than `limit`, in one linear pass
/// over the text, without parsing it. It counts block indentation levels, `- ` entries and flow
/// brackets outside quotes, comments and block scalars; the count can only over-estimate the
/// real depth, never miss nesting. `what` names the input in errors.
pub fn check_nesting(text: &[u8], what: &str, limit: usize) -> Result<(), LimitError> {
    let mut scan = NestingScan::default();
    for (n, line) in text.split(|&b| b == b'\n').enumerate() {
        let depth = scan.line(line);
        if depth > limit {
            return Err(LimitError::TooDeep {
                what: what.to_string(),
                depth,
                line: n + 1,
                limit,
            });
        }
    }
    Ok(())
}

/// The state of [`check_nesting`] between lines.
#[derive(Default)]
struct NestingScan {
    /// Indentation columns of the open block levels, strictly increasing.
    indents: Vec<usize>,
    /// Open flow brackets.
    flow: usize,
    /// An open quoted scalar (`"` or `'`) that spans lines.
    quote: Option<u8>,
    /// The indentation of the line that opened a block scalar (`|`, `>`), while in one.
    block_scalar: Option<usize>,
}

impl NestingScan {
    /// Scans one line; returns the deepest nesting seen on it.
    fn line(&mut self, line: &[u8]) -> usize {
        let indent = line.iter().take_while(|&&b| b == b' ').count();
        let rest = &line[indent..];
        let blank = rest.iter().all(|b| b.is_ascii_whitespace());
        if let Some(parent) = self.block_scalar {
            if blank || indent > parent {
                return 0;
            }
            self.block_scalar = None;
        }
        let mut depth = self.indents.len() + self.flow;
        if self.flow > 0 || self.quote.is_some() {
            return depth.max(self.chars(rest, depth));
        }
        if blank || rest.first() == Some(&b'#') {
            return 0;
        }
        while self.indents.last().is_some_and(|&top| top > indent) {
            self.indents.pop();
        }
        if self.indents.last().is_none_or(|&top| top < indent) {
            self.indents.push(indent);
        }
        depth = self.indents.len();
        let mut rest = rest;
        while let Some(after) = rest
            .strip_prefix(b"- ")
            .or_else(|| rest.strip_prefix(b"? "))
        {
            depth += 1;
            rest = after.trim_ascii_start();
        }
        let deepest = self.chars(rest, depth);
        if self.flow == 0 && self.quote.is_none() && opens_block_scalar(rest) {
            self.block_scalar = Some(indent);
        }
        deepest.max(depth)
    }

    /// Scans the characters of a line for quotes, comments and flow brackets.
    fn chars(&mut self, rest: &[u8], base: usize) -> usize {
        let mut deepest = base;
        let mut prev: Option<u8> = None;
        let mut i = 0;
        while i < rest.len() {
            let c = rest[i];
            match self.quote {
                Some(b'"') if c == b'\\' => i += 1,
                Some(q) if c == q => self.quote = None,
                Some(_) => {}
                None => {
                    let token_start = matches!(prev, None | Some(b' ' | b'\t'))
                        || (self.flow > 0 && matches!(prev, Some(b'[' | b'{' | b',')));
                    match c {
                        b'#' if matches!(prev, None | Some(b' ' | b'\t')) => break,
                        b'"' | b'\'' if token_start || (self.flow > 0 && prev == Some(b':')) => {
                            self.quote = Some(c)
                        }
                        b'[' | b'{' if self.flow > 0 || token_start => {
                            self.flow += 1;
                            deepest = deepest.max(base + self.flow);
                        }
                        b']' | b'}' if self.flow > 0 => self.flow -= 1,
                        _ => {}
                    }
                }
            }
            prev = Some(c);
            i += 1;
        }
        deepest
    }
}

/// True when a block-context line ends with a block scalar indicator (`|`, `>`, with optional
/// chomping and indentation indicators), before any comment.
fn opens_block_scalar(rest: &[u8]) -> bool {
    let text = match rest.windows(2).position(|w| w == b" #") {
        Some(p) => &rest[..p],
        None => rest,
    };
    let text = text.trim_ascii_end();
    let indicators = text
        .iter()
        .rev()
        .take_while(|b| matches!(b, b'+' | b'-' | b'0'..=b'9'))
        .count();
    let head = &text[..text.len() - indicators];
    matches!(head.last(), Some(b'|' | b'>'))
        && (head.len() == 1 || matches!(head.get(head.len() - 2), Some(b' ')))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn depth_ok(text: &str, limit: usize) -> bool {
        check_nesting(text.as_bytes(), "t", limit).is_ok()
    }

    #[test]
    fn flow_nesting_is_counted() {
        assert!(depth_ok("a: [[1]]\n", 3));
        assert!(!depth_ok("a: [[[[1]]]]\n", 3));
        assert!(!depth_ok(&"[".repeat(100_000), MAX_NESTING));
        assert!(!depth_ok(&"{\"a\":".repeat(1000), MAX_NESTING));
        assert!(depth_ok("{\"a\":{\"b\":[1,2]}}", 4));
    }

    #[test]
    fn block_nesting_is_counted() {
        let mut deep = String::new();
        for i in 0..200 {
            deep.push_str(&format!("{}k:\n", " ".repeat(i)));
        }
        assert!(!depth_ok(&deep, MAX_NESTING));
        assert!(!depth_ok(&format!("{}x\n", "- ".repeat(100)), MAX_NESTING));
        assert!(depth_ok("a:\n  b:\n    c: 1\n  d: 2\ne: 3\n", 3));
    }

    #[test]
    fn quotes_comments_and_block_scalars_are_not_nesting() {
        assert!(depth_ok("a: \"[[[[[[\"\nb: '{{{{{'\nc: x # [[[[[[\n", 2));
        assert!(depth_ok("d: it's [not] a quote\n", 2));
        assert!(depth_ok(
            "t: |\n      [[[[[[[[\n          {{{{{{\nu: 1\n",
            2
        ));
        assert!(depth_ok("s: x[[[[[[[[\n", 2));
    }

    #[test]
    fn reads_are_bounded() {
        let e = read_bounded(Path::new("/dev/zero"), 1024).unwrap_err();
        assert!(matches!(e, LimitError::TooLarge { limit: 1024, .. }), "{e}");
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        std::fs::write(&p, b"abc").unwrap();
        assert_eq!(read_bounded(&p, 3).unwrap(), b"abc");
        assert!(read_bounded(&p, 2).is_err());
    }
}
