//! The `--output` format, colour handling, and everything a command prints on stdout.
//!
//! Commands print through [`Printer`] (or the [`outln!`](crate::outln) macro), never
//! `println!`: a closed stdout (`airlift-install inspect B --output json | head -1`) then comes
//! back as a `BrokenPipe` error, which [`crate::report`] turns into a quiet exit 0, instead of
//! a panic with exit 101.

use std::borrow::Cow;
use std::fmt;
use std::io::{self, Write};

use serde::Serialize;

/// How a command prints its result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum OutputFormat {
    /// Tables and sentences for people.
    #[default]
    Text,
    /// One JSON document on stdout, for machines.
    Json,
    /// The same document as YAML.
    Yaml,
}

impl OutputFormat {
    /// True for the machine formats (JSON and YAML): no progress bars, errors as JSON.
    pub fn is_machine(self) -> bool {
        self != OutputFormat::Text
    }
}

/// Turns colours off when `NO_COLOR` is set (any value) or stdout/stderr is not a terminal.
pub fn init_colors() {
    if std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty()) {
        console::set_colors_enabled(false);
        console::set_colors_enabled_stderr(false);
    }
}

/// Writes a command's output. Every write returns `io::Result`, so a reader that went away is
/// an error the command returns (and [`crate::report`] makes a quiet exit 0), never a panic.
#[derive(Debug)]
pub struct Printer<W: Write = io::Stdout> {
    out: W,
}

impl Printer<io::Stdout> {
    /// A printer on the process's stdout.
    pub fn stdout() -> Self {
        Self { out: io::stdout() }
    }
}

impl<W: Write> Printer<W> {
    /// A printer on any writer (tests use a `Vec<u8>`).
    pub fn new(out: W) -> Self {
        Self { out }
    }

    /// Writes one line (the text and `\n`), flushed.
    pub fn line(&mut self, args: fmt::Arguments<'_>) -> io::Result<()> {
        self.out.write_fmt(args)?;
        self.out.write_all(b"\n")?;
        self.out.flush()
    }

    /// Writes `value` as pretty JSON and a newline.
    pub fn json<T: Serialize>(&mut self, value: &T) -> io::Result<()> {
        let text = serde_json::to_string_pretty(value).map_err(io::Error::other)?;
        self.line(format_args!("{text}"))
    }

    /// Writes `value` as pretty JSON or as YAML. `Text` is not a document format: it prints
    /// JSON too, so a caller that forgot its table still prints something parseable.
    pub fn document<T: Serialize>(&mut self, format: OutputFormat, value: &T) -> io::Result<()> {
        match format {
            OutputFormat::Yaml => {
                let text = serde_yaml::to_string(value).map_err(io::Error::other)?;
                self.out.write_all(text.as_bytes())?;
                self.out.flush()
            }
            OutputFormat::Json | OutputFormat::Text => self.json(value),
        }
    }

    /// The writer, back.
    pub fn into_inner(self) -> W {
        self.out
    }
}

/// Prints one line on stdout through a [`Printer`]; evaluates to `std::io::Result<()>`, so use
/// it with `?`. With no arguments it prints an empty line.
#[macro_export]
macro_rules! outln {
    () => {
        $crate::output::Printer::stdout().line(format_args!(""))
    };
    ($($arg:tt)*) => {
        $crate::output::Printer::stdout().line(format_args!($($arg)*))
    };
}

/// Prints `value` as pretty JSON on stdout.
pub fn print_json<T: Serialize>(value: &T) -> io::Result<()> {
    Printer::stdout().json(value)
}

/// Prints `value` on stdout as the document `format` names (JSON or YAML).
pub fn print_as<T: Serialize>(format: OutputFormat, value: &T) -> io::Result<()> {
    Printer::stdout().document(format, value)
}

/// Formats a byte count for people, e.g. `1.5 GiB`.
pub fn human_bytes(n: u64) -> String {
    indicatif::HumanBytes(n).to_string()
}

/// `text` with every control character but newline and tab escaped (`\u{1b}`, `\r`), so text
/// from outside (registry messages, file names, bundle contents) cannot move the cursor,
/// recolour or rewrite the terminal.
pub fn escape_control(text: &str) -> Cow<'_, str> {
    if !text
        .chars()
        .any(|c| c.is_control() && c != '\n' && c != '\t')
    {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if c.is_control() && c != '\n' && c != '\t' {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A reader that went away.
    struct Closed;
    impl Write for Closed {
        fn write(&mut self, _: &[u8]) -> io::Result<usize> {
            Err(io::ErrorKind::BrokenPipe.into())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn printer_writes_lines_and_json_and_returns_broken_pipes() {
        let mut p = Printer::new(Vec::new());
        p.line(format_args!("a {}", 1)).unwrap();
        p.json(&serde_json::json!({"k": "v"})).unwrap();
        assert_eq!(
            String::from_utf8(p.into_inner()).unwrap(),
            "a 1\n{\n  \"k\": \"v\"\n}\n"
        );
        let mut p = Printer::new(Vec::new());
        p.document(OutputFormat::Yaml, &serde_json::json!({"k": ["v"]}))
            .unwrap();
        assert_eq!(String::from_utf8(p.into_inner()).unwrap(), "k:\n- v\n");
        let e = Printer::new(Closed).line(format_args!("x")).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::BrokenPipe);
    }

    #[test]
    fn escapes_control_characters_only() {
        assert!(matches!(escape_control("plain\ttext\n"), Cow::Borrowed(_)));
        assert_eq!(escape_control("a\x1b[2Jb\r\x00"), "a\\u{1b}[2Jb\\r\\u{0}");
        assert_eq!(escape_control("ünïcode ✓"), "ünïcode ✓");
    }
}
