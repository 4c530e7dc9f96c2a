//! `airlift-install verify`: checks a bundle's signature, then hashes every member and blob once,
//! with no side effects. Also holds the trust flags and the open-and-verify step that every
//! command reading a bundle shares.

use airlift_cli::outln;
use std::path::PathBuf;
use std::time::Instant;

use airlift_bundle::{escape, VerifyReport};
use airlift_cli::output::human_bytes;
use airlift_cli::{CommandError, ExitKind, OutputFormat};

use crate::args::TrustArgs;
use crate::bundle::{describe_signature, open_verified};

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
    #[arg(long, short = 'o', value_enum, default_value_t = OutputFormat::Text)]
    pub output: OutputFormat,
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
        f @ (OutputFormat::Json | OutputFormat::Yaml) => airlift_cli::print_as(
            f,
            &Output {
                bundle: args.bundle.display().to_string(),
                name: &m.metadata.name,
                version: &m.metadata.version,
                verified: true,
                report: &report,
                seconds,
            },
        )
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
