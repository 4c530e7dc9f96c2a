//! Exit codes with meaning, and the error report printed on failure.

use std::fmt;
use std::io::Write;
use std::process::ExitCode;

use airlift_bundle::Diagnose;
pub use airlift_bundle::ExitKind;

/// A failed command: the error chain, its kind and an optional hint on how to fix it.
#[derive(Debug)]
pub struct CommandError {
    /// The error and its causes.
    pub error: anyhow::Error,
    /// The kind, which gives the exit code.
    pub kind: ExitKind,
    /// What the operator can do about it.
    pub hint: Option<String>,
}

impl CommandError {
    /// Wraps an error with a kind and no hint.
    pub fn new(kind: ExitKind, error: impl Into<anyhow::Error>) -> Self {
        Self {
            error: error.into(),
            kind,
            hint: None,
        }
    }

    /// Wraps a library error that diagnoses itself: its kind and its hint.
    pub fn diagnosed(error: impl Diagnose) -> Self {
        let kind = error.exit_kind();
        let hint = error.fix();
        Self {
            error: anyhow::Error::new(error),
            kind,
            hint,
        }
    }

    /// Adds or replaces the hint.
    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }
}

impl fmt::Display for CommandError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#}", self.error)
    }
}

impl From<anyhow::Error> for CommandError {
    fn from(error: anyhow::Error) -> Self {
        Self::new(ExitKind::Failure, error)
    }
}

/// Classifies errors on the way out of a command.
pub trait ResultExt<T> {
    /// Marks the error with `kind`.
    fn kind(self, kind: ExitKind) -> Result<T, CommandError>;
}

impl<T, E: Into<anyhow::Error>> ResultExt<T> for Result<T, E> {
    fn kind(self, kind: ExitKind) -> Result<T, CommandError> {
        self.map_err(|e| CommandError::new(kind, e))
    }
}

/// Prints `error: …`, one `Caused by: …` line per source and `hint: …` to stderr, and returns
/// the exit code. A broken pipe on stdout is not an error worth reporting.
pub fn report(err: &CommandError) -> ExitCode {
    let mut chain = err.error.chain();
    if chain
        .clone()
        .any(|c| matches!(c.downcast_ref::<std::io::Error>(), Some(e) if e.kind() == std::io::ErrorKind::BrokenPipe))
    {
        return ExitCode::SUCCESS;
    }
    let stderr = std::io::stderr();
    let mut out = stderr.lock();
    let red = console::Style::new().red().bold();
    let cyan = console::Style::new().cyan().bold();
    if let Some(top) = chain.next() {
        let _ = writeln!(out, "{} {top}", red.apply_to("error:"));
    }
    for cause in chain {
        let _ = writeln!(out, "  Caused by: {cause}");
    }
    if let Some(hint) = &err.hint {
        let _ = writeln!(out, "{} {hint}", cyan.apply_to("hint:"));
    }
    ExitCode::from(err.kind.code())
}
