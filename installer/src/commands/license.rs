//! `airlift-install license show RELEASE` and `license update RELEASE FILE`: the license stored
//! with a release, and replacing it without a reinstall (the same checks as install: the vendor
//! key and channel the release was installed with, expiry, entitlements, node count).

use std::path::PathBuf;

use airlift_cli::output::escape_control as e;
use airlift_cli::{outln, CommandError, ExitKind, OutputFormat};
use airlift_deploy::license::{self, LicenseSummary, Licensed};

use crate::args::{runtime, ReleaseArgs};

/// Arguments of `license`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// What to do.
    #[command(subcommand)]
    pub action: Action,
}

/// The `license` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum Action {
    /// Show the license stored with a release: customer, channel, expiry, days left.
    Show {
        /// The release.
        #[command(flatten)]
        release: ReleaseArgs,
        /// Output format.
        #[arg(long, short = 'o', value_enum, default_value_t = OutputFormat::Text)]
        output: OutputFormat,
    },
    /// Replace the license of a release (e.g. a renewal), checked as at install; no reinstall.
    Update {
        /// The release.
        #[command(flatten)]
        release: ReleaseArgs,
        /// The new license file.
        file: PathBuf,
        /// Take the release lock even if another operation holds it (only when that one is gone).
        #[arg(long)]
        force_unlock: bool,
        /// Output format.
        #[arg(long, short = 'o', value_enum, default_value_t = OutputFormat::Text)]
        output: OutputFormat,
    },
}

/// Prints license warnings (expiry near, grace period) to stderr.
pub fn print_warnings(licensed: Option<&Licensed>) {
    for w in licensed.iter().flat_map(|l| &l.warnings) {
        eprintln!("warning: {w}");
    }
}

/// Prints a license summary as text lines, each prefixed with `indent`.
pub fn print_summary(s: &LicenseSummary, indent: &str) -> Result<(), CommandError> {
    outln!("{indent}License:   {}", e(&s.id))?;
    outln!(
        "{indent}Customer:  {} ({})",
        e(&s.customer),
        e(&s.customer_id)
    )?;
    outln!("{indent}Channel:   {}", e(&s.channel))?;
    match (&s.expires, s.days_left) {
        (Some(at), Some(days)) if days < 0 => outln!(
            "{indent}Expires:   {at} (expired {} day(s) ago: {})",
            -days,
            s.state
        )?,
        (Some(at), Some(days)) => outln!("{indent}Expires:   {at} ({days} day(s) left)")?,
        _ => outln!("{indent}Expires:   never")?,
    }
    if let Some(max) = s.max_nodes {
        outln!("{indent}Max nodes: {max}")?;
    }
    for (k, v) in &s.entitlements {
        outln!("{indent}Entitles:  {}={}", e(k), e(v))?;
    }
    Ok(())
}

impl Args {
    /// The `--output` format of the subcommand.
    pub fn output(&self) -> OutputFormat {
        match &self.action {
            Action::Show { output, .. } | Action::Update { output, .. } => *output,
        }
    }
}

/// Runs `license`.
pub fn run(args: Args, _no_progress: bool) -> Result<(), CommandError> {
    let diag = CommandError::diagnosed;
    match args.action {
        Action::Show { release, output } => {
            let ns = release.namespace();
            let summary = runtime()?.block_on(async {
                let cluster = release.cluster.connect().await?;
                license::show(&cluster, &ns, &release.release)
                    .await
                    .map_err(diag)
            })?;
            let Some(summary) = summary else {
                return Err(CommandError::new(
                    ExitKind::Failure,
                    anyhow::anyhow!(
                        "release `{}` in namespace `{ns}` stores no license",
                        release.release
                    ),
                )
                .with_hint("install or upgrade with --license FILE to store one"));
            };
            match output {
                f @ (OutputFormat::Json | OutputFormat::Yaml) => {
                    airlift_cli::print_as(f, &summary)?
                }
                OutputFormat::Text => print_summary(&summary, "")?,
            }
        }
        Action::Update {
            release,
            file,
            force_unlock,
            output,
        } => {
            let ns = release.namespace();
            let (summary, warnings) = runtime()?.block_on(async {
                let cluster = release.cluster.connect().await?;
                license::update(&cluster, &ns, &release.release, &file, force_unlock)
                    .await
                    .map_err(diag)
            })?;
            for w in &warnings {
                eprintln!("warning: {w}");
            }
            match output {
                f @ (OutputFormat::Json | OutputFormat::Yaml) => {
                    airlift_cli::print_as(f, &summary)?
                }
                OutputFormat::Text => {
                    outln!(
                        "Updated the license of release {} in namespace {} (no reinstall)",
                        e(&release.release),
                        e(&ns)
                    )?;
                    print_summary(&summary, "  ")?;
                }
            }
        }
    }
    Ok(())
}
