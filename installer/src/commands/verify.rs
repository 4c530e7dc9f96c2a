//! `airlift-install verify`: checks a bundle's signature, then hashes every member and blob once,
//! with no side effects. Also holds the trust flags and the open-and-verify step that every
//! command reading a bundle shares.

use std::path::{Path, PathBuf};
use std::time::Instant;

use airlift_bundle::{
    escape, Bundle, BundleError, ProofStore, SignatureStatus, Trust, VerifyReport,
};
use airlift_cli::output::{human_bytes, print_json};
use airlift_cli::{progress_for, CommandError, ExitKind, OutputFormat};

/// The trust flags shared by every command that reads a bundle.
#[derive(Debug, Clone, clap::Args)]
pub struct TrustArgs {
    /// The vendor's public key (SPKI PEM); the bundle's signature must verify with it.
    #[arg(long, value_name = "FILE")]
    pub key: Option<PathBuf>,
    /// Accept a bundle without checking its signature (digests are still checked). Not
    /// recommended: nothing then proves who built the bundle.
    #[arg(long, conflicts_with = "key")]
    pub insecure_skip_verify: bool,
}

impl TrustArgs {
    /// The trust policy these flags ask for.
    pub fn trust(&self) -> Result<Trust, CommandError> {
        Trust::from_flags(self.key.as_deref(), self.insecure_skip_verify).map_err(|e| {
            let hint = e.hint();
            CommandError::new(
                ExitKind::Usage,
                anyhow::Error::new(e).context("cannot load the vendor key"),
            )
            .with_hint(hint)
        })
    }
}

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

/// Opens `path`, checks its signature under `trust` and every digest (skipping the hash pass
/// when a recorded proof for this exact, unchanged file exists, unless `no_cache`). Nothing else
/// may happen to a bundle before this returns `Ok`.
pub fn open_verified(
    path: &Path,
    trust: &Trust,
    no_progress: bool,
    no_cache: bool,
) -> Result<(Bundle, VerifyReport), CommandError> {
    let bundle = Bundle::open_trusted(path, trust).map_err(|e| bundle_error(path, e))?;
    let progress = progress_for(no_progress);
    let report = match ProofStore::default_location() {
        Some(proofs) if !no_cache => bundle.verify_with_proof(trust, progress.as_ref(), &proofs),
        _ => bundle.verify(trust, progress.as_ref()),
    }
    .map_err(|e| bundle_error(path, e))?;
    Ok((bundle, report))
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
            println!(
                "bundle {} {} ({}) is intact",
                escape(&m.metadata.name),
                escape(&m.metadata.version),
                escape(&m.metadata.vendor)
            );
            println!("  sha256:    {}", report.sha256.hex());
            println!("  signature: {}", describe_signature(&report.signature));
            if report.from_proof {
                println!(
                    "  content:   {} blobs, {} images; unchanged since a full verification (recorded proof; --no-cache to re-hash)",
                    report.blobs, report.images
                );
            } else {
                let rate = if seconds > 0.0 {
                    format!(
                        " at {}/s",
                        human_bytes((report.bytes_hashed as f64 / seconds) as u64)
                    )
                } else {
                    String::new()
                };
                println!(
                    "  content:   {} blobs, {} members, {} images; {} hashed in {:.1}s{rate}",
                    report.blobs,
                    report.members,
                    report.images,
                    human_bytes(report.bytes_hashed),
                    seconds
                );
            }
        }
    }
    Ok(())
}
