//! `airlift-install support-bundle RELEASE [-n NS] [--out FILE.tar.gz]`: collects, through the
//! API server, what a vendor needs to diagnose a release (records, live objects, Events, Pods,
//! the last lines of every container's logs, nodes, preflight, versions and, with `--bundle`,
//! the bundle's manifest), redacts every secret before anything is written, writes one tar.gz
//! and prints what it found.

use std::path::PathBuf;

use airlift_cli::about::VersionInfo;
use airlift_cli::output::{escape_control, human_bytes};
use airlift_cli::{outln, progress_for, CommandError, OutputFormat};
use airlift_deploy::open_verified;
use airlift_deploy::support::{self, SupportContext, SupportOptions};

use crate::args::{runtime, ReleaseArgs, TrustArgs};

/// Arguments of `support-bundle`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The release.
    #[command(flatten)]
    pub release: ReleaseArgs,
    /// The archive to write [default: airlift-support-RELEASE.tar.gz].
    #[arg(long, value_name = "FILE.tar.gz")]
    pub out: Option<PathBuf>,
    /// Also include this bundle's manifest (verified first; no blobs) and check the cluster
    /// against its requirements.
    #[arg(long, value_name = "FILE")]
    pub bundle: Option<PathBuf>,
    /// Key flags for --bundle.
    #[command(flatten)]
    pub trust: TrustArgs,
    /// The last lines of each container log to include.
    #[arg(long, value_name = "N", default_value_t = 500, value_parser = clap::value_parser!(i64).range(1..=100_000))]
    pub log_lines: i64,
    /// Output format.
    #[arg(long, short = 'o', value_enum, default_value_t = OutputFormat::Text)]
    pub output: OutputFormat,
}

/// Runs `support-bundle`.
pub fn run(args: Args, no_progress: bool) -> Result<(), CommandError> {
    let r = &args.release;
    let namespace = r.namespace();
    let quiet = no_progress || args.output.is_machine();
    let progress = progress_for(quiet);
    let manifest = match &args.bundle {
        Some(path) => {
            let trust = args.trust.trust()?;
            let (bundle, _) = open_verified(path, &trust, progress.as_ref(), false)
                .map_err(CommandError::diagnosed)?;
            Some(bundle.manifest().clone())
        }
        None => None,
    };
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| PathBuf::from(format!("airlift-support-{}.tar.gz", r.release)));
    let version = VersionInfo::new("airlift-install", env!("CARGO_PKG_VERSION"));
    let context = SupportContext {
        airlift: serde_json::to_value(&version).unwrap_or_default(),
        manifest: manifest.as_ref(),
    };
    let options = SupportOptions {
        log_lines: args.log_lines,
        ..SupportOptions::default()
    };
    let bundle = runtime()?.block_on(async {
        let cluster = r.cluster.connect().await?;
        support::collect(
            &cluster,
            progress.as_ref(),
            &namespace,
            &r.release,
            &context,
            &options,
        )
        .await
        .map_err(CommandError::diagnosed)
    })?;
    let summary = bundle.write(&out).map_err(CommandError::diagnosed)?;
    if args.output.is_machine() {
        return Ok(airlift_cli::print_as(args.output, &summary)?);
    }
    outln!(
        "Wrote {} ({} files, {}, {} values redacted)",
        summary.path,
        summary.files,
        human_bytes(summary.bytes),
        summary.redactions
    )?;
    let findings = support::analyze(&bundle);
    if findings.is_empty() {
        outln!("Analysis: no problem found")?;
    } else {
        outln!("Analysis:")?;
        for line in findings {
            outln!("  {}", escape_control(&line))?;
        }
    }
    for note in &summary.notes {
        outln!("note: {}", escape_control(note))?;
    }
    Ok(())
}
