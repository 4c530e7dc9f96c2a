//! `airlift-install verify`: checks a bundle's signature, then hashes every member and blob once,
//! with no side effects. Also holds the trust flags and the open-and-verify step that every
//! command reading a bundle shares.

use airlift_cli::outln;
use std::path::{Path, PathBuf};
use std::time::Instant;

use airlift_bundle::{escape, Bundle, BundleError, SignatureStatus, Trust, VerifyReport};
use airlift_cli::output::{human_bytes, print_json};
use airlift_cli::{progress_for, CommandError, ExitKind, OutputFormat};

pub use crate::args::TrustArgs;

/// Arguments of `verify`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The bundle file.
    pub bundle: PathBuf,
    /// Key flags.
    #[command(flatten)]
    pub trust: TrustArgs,
    /// Hash everything even if this exact file was verified before (ignore the recorded proof).
    #[arg(long)]
    pub no_cache: bool,
    /// Output format.
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    pub output: OutputFormat,
}

/// Classifies a bundle error: trust failures exit with the verification code and the error's hint.
pub fn bundle_error(path: &Path, e: BundleError) -> CommandError {
    let kind = if e.is_trust_failure() {
        ExitKind::Trust
    } else {
        ExitKind::Failure
    };
    let hint = e.hint();
    let what = if e.is_trust_failure() {
        format!("bundle `{}` failed verification", path.display())
    } else {
        format!("cannot read bundle `{}`", path.display())
    };
    CommandError::new(kind, anyhow::Error::new(e).context(what)).with_hint(hint)
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
    airlift_deploy::open_verified(path, trust, progress.as_ref(), no_cache).map_err(|e| match e {
        airlift_deploy::DeployError::Bundle { path, source } => bundle_error(&path, *source),
        other => CommandError::diagnosed(other),
    })
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

#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct Output<'a> {
    bundle: String,
    name: &'a str,
    version: &'a str,
    verified: bool,
    #[serde(flatten)]
    report: &'a VerifyReport,
    seconds: f64,
}

/// Runs `verify`.
pub fn run(args: Args, no_progress: bool) -> Result<(), CommandError> {
    let trust = args.trust.trust()?;
    let started = Instant::now();
    let (bundle, report) = open_verified(&args.bundle, &trust, no_progress, args.no_cache)?;
    let seconds = started.elapsed().as_secs_f64();
    let m = bundle.manifest();
    match args.output {
        OutputFormat::Json => print_json(&Output {
            bundle: args.bundle.display().to_string(),
            name: &m.metadata.name,
            version: &m.metadata.version,
            verified: true,
            report: &report,
            seconds,
        })
        .map_err(|e| CommandError::new(ExitKind::Failure, e))?,
        OutputFormat::Text => {
            outln!(
                "bundle {} {} ({}) is intact",
                escape(&m.metadata.name),
                escape(&m.metadata.version),
                escape(&m.metadata.vendor)
            )?;
            outln!("  sha256:    {}", report.sha256.hex())?;
            outln!("  signature: {}", describe_signature(&report.signature))?;
            if report.from_proof {
                outln!(
                    "  content:   {} blobs, {} images; unchanged since a full verification (recorded proof; --no-cache to re-hash)",
                    report.blobs, report.images
                )?;
            } else {
                let rate = if seconds > 0.0 {
                    format!(
                        " at {}/s",
                        human_bytes((report.bytes_hashed as f64 / seconds) as u64)
                    )
                } else {
                    String::new()
                };
                outln!(
                    "  content:   {} blobs, {} members, {} images; {} hashed in {:.1}s{rate}",
                    report.blobs,
                    report.members,
                    report.images,
                    human_bytes(report.bytes_hashed),
                    seconds
                )?;
            }
        }
    }
    Ok(())
}
