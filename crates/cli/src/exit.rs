//! Exit codes with meaning, and the error report printed on failure.

use std::fmt;
use std::io::Write;
use std::process::ExitCode;

use airlift_bundle::Diagnose;
pub use airlift_bundle::ExitKind;

use crate::output::escape_control;

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

impl From<std::io::Error> for CommandError {
    /// An I/O failure of the binary itself (e.g. writing stdout); a broken pipe among them is
    /// reported as a quiet success by [`report`].
    fn from(error: std::io::Error) -> Self {
        Self::new(ExitKind::Failure, error)
    }
}

/// True when the error chain holds a broken pipe: the reader of stdout went away (`| head`),
/// which is not a failure worth reporting.
pub fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|c| {
        matches!(c.downcast_ref::<std::io::Error>(),
            Some(e) if e.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// The messages of an error chain, top first, each with control characters escaped, leaving
/// out every cause whose text its parent's message already contains (a `transparent` wrapper,
/// or a message that embeds its source).
pub fn chain_messages(err: &anyhow::Error) -> Vec<String> {
    let mut out = Vec::new();
    let mut parent: Option<String> = None;
    for cause in err.chain() {
        let text = cause.to_string();
        let repeated = parent
            .as_deref()
            .is_some_and(|p| text.trim().is_empty() || p.contains(text.trim()));
        if !repeated {
            out.push(escape_control(&text).into_owned());
        }
        parent = Some(text);
    }
    out
}

/// The error report as text: `error: …`, one `  Caused by: …` line per cause that adds
/// something, and `hint: …`. `styled` colours the labels.
pub fn render_report(err: &CommandError, styled: bool) -> String {
    let red = console::Style::new().red().bold().force_styling(styled);
    let cyan = console::Style::new().cyan().bold().force_styling(styled);
    let mut out = String::new();
    let mut messages = chain_messages(&err.error).into_iter();
    if let Some(top) = messages.next() {
        out.push_str(&format!("{} {top}\n", red.apply_to("error:")));
    }
    for cause in messages {
        out.push_str(&format!("  Caused by: {cause}\n"));
    }
    if let Some(hint) = &err.hint {
        out.push_str(&format!(
            "{} {}\n",
            cyan.apply_to("hint:"),
            escape_control(hint)
        ));
    }
    out
}

/// The error report as one JSON object, for `--output json`:
/// `{"message", "causes", "hint", "exitCode"}` (causes deduplicated as in the text form).
pub fn report_json_value(err: &CommandError) -> serde_json::Value {
    let mut messages = chain_messages(&err.error).into_iter();
    let message = messages.next().unwrap_or_default();
    serde_json::json!({
        "message": message,
        "causes": messages.collect::<Vec<_>>(),
        "hint": err.hint.as_deref().map(|h| escape_control(h).into_owned()),
        "exitCode": err.kind.code(),
    })
}

/// Prints the error report (see [`render_report`]) to stderr and returns the exit code. A
/// broken pipe on stdout is not an error worth reporting: it exits 0 and prints nothing.
pub fn report(err: &CommandError) -> ExitCode {
    if is_broken_pipe(&err.error) {
        return ExitCode::SUCCESS;
    }
    let styled = console::colors_enabled_stderr();
    let _ = std::io::stderr()
        .lock()
        .write_all(render_report(err, styled).as_bytes());
    ExitCode::from(err.kind.code())
}

/// Like [`report`], but prints the error as one JSON object on stderr (`--output json`).
pub fn report_json(err: &CommandError) -> ExitCode {
    if is_broken_pipe(&err.error) {
        return ExitCode::SUCCESS;
    }
    let text = report_json_value(err).to_string();
    let _ = writeln!(std::io::stderr().lock(), "{text}");
    ExitCode::from(err.kind.code())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("failed to push image `acme/api` to `registry.corp:5000`")]
    struct Outer(#[source] Inner);

    #[derive(Debug, thiserror::Error)]
    #[error("certificate verify failed: unknown issuer")]
    struct Inner;

    #[derive(Debug, thiserror::Error)]
    #[error("cannot read `{0}`: certificate verify failed: unknown issuer")]
    struct Embeds(String, #[source] Inner);

    #[test]
    fn prints_error_causes_and_hint() {
        let err = CommandError::new(ExitKind::Registry, Outer(Inner))
            .with_hint("pass the registry's CA with `--registry-ca ca.pem`");
        assert_eq!(
            render_report(&err, false),
            "error: failed to push image `acme/api` to `registry.corp:5000`\n  \
             Caused by: certificate verify failed: unknown issuer\n\
             hint: pass the registry's CA with `--registry-ca ca.pem`\n"
        );
    }

    #[test]
    fn a_cause_contained_in_its_parent_is_not_repeated() {
        let err = CommandError::new(ExitKind::Failure, Embeds("x".into(), Inner));
        assert_eq!(
            render_report(&err, false),
            "error: cannot read `x`: certificate verify failed: unknown issuer\n"
        );
        // A context that adds something keeps both lines; the embedded cause is dropped.
        let err = CommandError::new(
            ExitKind::Failure,
            anyhow::Error::new(Embeds("x".into(), Inner)).context("loading the bundle"),
        );
        assert_eq!(chain_messages(&err.error).len(), 2);
    }

    #[test]
    fn control_characters_are_escaped_but_newlines_kept() {
        let err = CommandError::new(
            ExitKind::Failure,
            anyhow::anyhow!("bad name `a\x1b[31mred\r`\n  - second line"),
        )
        .with_hint("no \x07bell");
        let text = render_report(&err, false);
        assert!(!text.contains('\x1b') && !text.contains('\r') && !text.contains('\x07'));
        assert!(
            text.contains("a\\u{1b}[31mred\\r`\n  - second line"),
            "{text}"
        );
        assert!(text.contains("hint: no \\u{7}bell"), "{text}");
    }

    #[test]
    fn json_report_is_one_object() {
        let err = CommandError::new(ExitKind::Registry, Outer(Inner)).with_hint("h");
        let v = report_json_value(&err);
        assert_eq!(
            v,
            serde_json::json!({
                "message": "failed to push image `acme/api` to `registry.corp:5000`",
                "causes": ["certificate verify failed: unknown issuer"],
                "hint": "h",
                "exitCode": 4,
            })
        );
        let bare = report_json_value(&CommandError::new(ExitKind::Failure, anyhow::anyhow!("x")));
        assert_eq!(bare["hint"], serde_json::Value::Null);
        assert_eq!(bare["causes"], serde_json::json!([]));
    }

    #[test]
    fn broken_pipe_anywhere_in_the_chain_is_recognised() {
        let io = std::io::Error::from(std::io::ErrorKind::BrokenPipe);
        assert!(is_broken_pipe(&anyhow::Error::new(io).context("printing")));
        assert!(!is_broken_pipe(&anyhow::anyhow!("other")));
    }
}
