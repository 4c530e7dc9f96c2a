//! One way to print text that came from outside (a bundle, a registry): control characters are
//! shown as escapes, so a hostile name cannot move the cursor, hide lines or set a terminal title.

use std::borrow::Cow;
use std::fmt::{self, Write};

/// `s` with every control character (C0, DEL, C1, and the Unicode bidirectional overrides that
/// reorder what a terminal shows) replaced by a visible escape: `\e`, `\n`, `\t`, `\r`, `\u{…}`.
/// Borrows when there is nothing to escape.
pub fn escape(s: &str) -> Cow<'_, str> {
    if !s.chars().any(needs_escape) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        push_escaped(&mut out, c);
    }
    Cow::Owned(out)
}

/// True for a character [`escape`] replaces.
pub fn needs_escape(c: char) -> bool {
    c.is_control() || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

fn push_escaped(out: &mut String, c: char) {
    match c {
        '\u{1b}' => out.push_str("\\e"),
        '\n' => out.push_str("\\n"),
        '\r' => out.push_str("\\r"),
        '\t' => out.push_str("\\t"),
        c if needs_escape(c) => {
            let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
        }
        c => out.push(c),
    }
}

/// Displays a string through [`escape`]; for `format!` arguments and error messages.
#[derive(Debug, Clone, Copy)]
pub struct Escaped<'a>(pub &'a str);

impl fmt::Display for Escaped<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&escape(self.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_become_visible() {
        assert_eq!(escape("acme"), "acme");
        assert!(matches!(escape("acme"), Cow::Borrowed(_)));
        assert_eq!(escape("a\u{1b}[8mb"), "a\\e[8mb");
        assert_eq!(escape("a\u{1b}]0;t\u{7}"), "a\\e]0;t\\u{7}");
        assert_eq!(escape("x\u{9b}y\u{7f}"), "x\\u{9b}y\\u{7f}");
        assert_eq!(escape("l\n\r\t"), "l\\n\\r\\t");
        assert_eq!(escape("\u{202e}evil"), "\\u{202e}evil");
        assert_eq!(format!("{}", Escaped("é\u{0}")), "é\\u{0}");
    }
}
