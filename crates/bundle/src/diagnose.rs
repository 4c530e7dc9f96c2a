//! One way for every library error to say what kind of failure it is and how to fix it.
//!
//! Each library error type implements [`Diagnose`]; the binaries turn any `Diagnose` error into
//! an exit code and a `hint:` line with one conversion (`airlift_cli::CommandError::diagnosed`),
//! instead of a hand-written mapping per error type.

/// What kind of failure ended an operation; each kind has one documented exit code
/// (`docs/architecture.md`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub enum ExitKind {
    /// Anything not classified below (exit 1).
    Failure,
    /// The command line was wrong (exit 2, as clap uses).
    Usage,
    /// The bundle failed verification: signature, digest, or tar safety (exit 3).
    Trust,
    /// The registry refused, was unreachable, or its TLS or auth failed (exit 4).
    Registry,
    /// The cluster refused, was unreachable, or a workload never became ready (exit 5).
    Cluster,
    /// The configuration or definition is invalid or incomplete (exit 6).
    Config,
    /// A preflight check failed before any change was made (exit 7).
    Preflight,
    /// An upgrade failed and was rolled back automatically: the old release is running (exit 8).
    RolledBack,
    /// Another operation holds the release's lock; nothing was changed (exit 9).
    Locked,
    /// `drift` found the live release differing from what it applied (exit 11).
    Drifted,
    /// A fleet rollout halted or finished with failed clusters; later clusters untouched (exit 10).
    Fleet,
    /// Interrupted by the user (exit 130).
    Interrupted,
}

impl ExitKind {
    /// The process exit code.
    pub fn code(self) -> u8 {
        match self {
            ExitKind::Failure => 1,
            ExitKind::Usage => 2,
            ExitKind::Trust => 3,
            ExitKind::Registry => 4,
            ExitKind::Cluster => 5,
            ExitKind::Config => 6,
            ExitKind::Preflight => 7,
            ExitKind::RolledBack => 8,
            ExitKind::Locked => 9,
            ExitKind::Drifted => 11,
            ExitKind::Fleet => 10,
            ExitKind::Interrupted => 130,
        }
    }
}

/// An error that knows its kind of failure and, where it can, what the operator should do.
///
/// The hint never repeats the message: it says what to do, not what happened.
pub trait Diagnose: std::error::Error + Send + Sync + 'static {
    /// The kind of failure, which gives the exit code.
    fn exit_kind(&self) -> ExitKind;
    /// What the operator can do about it, when there is something useful to say.
    fn fix(&self) -> Option<String> {
        None
    }
}

use crate::error::{BundleError, IntegrityError};
use crate::limits::LimitError;
use crate::sign::KeyError;
use crate::tar_safety::TarError;
use crate::trust::TrustError;
use crate::writer::WriteError;

impl Diagnose for BundleError {
    fn exit_kind(&self) -> ExitKind {
        if self.is_missing_file() {
            ExitKind::Usage
        } else if self.is_trust_failure() {
            ExitKind::Trust
        } else {
            ExitKind::Failure
        }
    }
    fn fix(&self) -> Option<String> {
        Some(self.hint())
    }
}

impl Diagnose for TarError {
    fn exit_kind(&self) -> ExitKind {
        ExitKind::Trust
    }
    fn fix(&self) -> Option<String> {
        Some(self.hint().to_string())
    }
}

impl Diagnose for TrustError {
    fn exit_kind(&self) -> ExitKind {
        ExitKind::Trust
    }
    fn fix(&self) -> Option<String> {
        Some(self.hint())
    }
}

impl Diagnose for IntegrityError {
    fn exit_kind(&self) -> ExitKind {
        ExitKind::Trust
    }
    fn fix(&self) -> Option<String> {
        Some(self.hint().to_string())
    }
}

impl Diagnose for KeyError {
    fn exit_kind(&self) -> ExitKind {
        match self {
            KeyError::Write { .. } | KeyError::Encode => ExitKind::Failure,
            _ => ExitKind::Usage,
        }
    }
    fn fix(&self) -> Option<String> {
        Some(self.hint())
    }
}

impl Diagnose for WriteError {
    fn exit_kind(&self) -> ExitKind {
        match self {
            WriteError::BadPath { .. }
            | WriteError::MissingComponentFile { .. }
            | WriteError::DuplicateFile { .. }
            | WriteError::ConflictingReference { .. } => ExitKind::Config,
            _ => ExitKind::Failure,
        }
    }
    fn fix(&self) -> Option<String> {
        Some(self.hint())
    }
}

impl Diagnose for LimitError {
    fn exit_kind(&self) -> ExitKind {
        match self {
            LimitError::Io { .. } => ExitKind::Failure,
            _ => ExitKind::Config,
        }
    }
    fn fix(&self) -> Option<String> {
        Some(self.hint())
    }
}

/// An error and its causes on one line, `: `-joined as Go's wrapped errors print (a cause whose
/// text the line already holds is left out). The one chain printer every crate uses.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let text = c.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        cur = c.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("{text}")]
    struct Layer {
        text: &'static str,
        #[source]
        source: Option<Box<Layer>>,
    }

    #[test]
    fn the_chain_joins_causes_and_skips_one_already_said() {
        let inner = Layer {
            text: "connection refused",
            source: None,
        };
        let middle = Layer {
            text: "cannot reach host: connection refused",
            source: Some(Box::new(inner)),
        };
        let top = Layer {
            text: "push failed",
            source: Some(Box::new(middle)),
        };
        assert_eq!(
            error_chain(&top),
            "push failed: cannot reach host: connection refused"
        );
    }

    #[test]
    fn bundle_errors_diagnose_themselves() {
        let tampered = BundleError::Trust(TrustError::MalformedSignature);
        assert_eq!(tampered.exit_kind(), ExitKind::Trust);
        assert!(tampered.fix().is_some_and(|f| f.contains("fresh copy")));
        let missing = BundleError::NotFound { what: "x".into() };
        assert_eq!(missing.exit_kind(), ExitKind::Failure);
        assert_eq!(TarError::NotTar.exit_kind(), ExitKind::Trust);
        let big = LimitError::TooLarge {
            what: "`/dev/zero`".into(),
            limit: 1,
        };
        assert_eq!(big.exit_kind(), ExitKind::Config);
        let key = KeyError::InsecurePermissions {
            path: "k.key".into(),
            mode: 0o644,
        };
        assert_eq!(key.exit_kind(), ExitKind::Usage);
        assert!(key.fix().is_some_and(|f| f.contains("chmod 600")));
    }
}
