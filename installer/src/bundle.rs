//! Opening bundles the way every command does, and how the binary words what it found.

use std::path::Path;

use airlift_bundle::{Bundle, BundleError, SignatureStatus, Trust, VerifyReport};
use airlift_cli::{progress_for, CommandError};
use airlift_deploy::DeployError;

/// Classifies a bundle error: trust failures exit with the verification code and the error's hint.
pub fn bundle_error(path: &Path, e: BundleError) -> CommandError {
    CommandError::diagnosed(DeployError::Bundle {
        path: path.to_path_buf(),
        source: Box::new(e),
    })
}

/// Opens `path`, checks its signature under `trust` and every digest (or a recorded proof of
/// this exact, unchanged file, unless `no_cache`); the library's step, with this binary's
/// progress and error classification.
pub fn open_verified(
    path: &Path,
    trust: &Trust,
    no_progress: bool,
    no_cache: bool,
) -> Result<(Bundle, VerifyReport), CommandError> {
    let progress = progress_for(no_progress);
    airlift_deploy::open_verified(path, trust, progress.as_ref(), no_cache)
        .map_err(CommandError::diagnosed)
}

/// A sentence for a signature status.
pub fn describe_signature(status: &SignatureStatus) -> String {
    match status {
        SignatureStatus::Unsigned => "unsigned".into(),
        SignatureStatus::Unchecked { claimed_signer } => format!(
            "signed, NOT checked (pass --key vendor.pub); claimed signer {}",
            claimed_signer
                .as_ref()
                .map_or_else(|| "unknown".to_string(), ToString::to_string)
        ),
        SignatureStatus::Verified { key } => format!("verified with key {key}"),
        SignatureStatus::Skipped => "NOT checked (--insecure-skip-verify)".into(),
    }
}
