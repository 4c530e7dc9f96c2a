//! `airlift-install config BUNDLE`: the configuration items, their SaaS defaults and the values in
//! effect, marking where the customer differs from the SaaS. Secrets are masked.

use airlift_cli::outln;
use std::collections::BTreeMap;
use std::path::PathBuf;

use airlift_cli::output::print_json;
use airlift_cli::{CommandError, OutputFormat};

use crate::commands::verify::{open_verified, TrustArgs};
use crate::configure::{resolve, ConfigArgs};

/// Arguments of `config`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The bundle file.
    pub bundle: PathBuf,
    /// Key flags.
    #[command(flatten)]
    pub trust: TrustArgs,
    /// The customer's values.
    #[command(flatten)]
    pub config: ConfigArgs,
    /// Output format.
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    pub output: OutputFormat,
}

/// Runs `config`.
pub fn run(args: Args, no_progress: bool) -> Result<(), CommandError> {
    let trust = args.trust.trust()?;
    let (bundle, _) = open_verified(&args.bundle, &trust, no_progress, false)?;
    let config = resolve(&bundle.manifest().config, &args.config, &BTreeMap::new())?;
    let rows = config.diff_from_saas();
    match args.output {
        OutputFormat::Json => print_json(&rows)?,
        OutputFormat::Text => {
            outln!(
                "{:<32} {:<9} {:<24} {:<24} DIFFERS",
                "KEY",
                "TYPE",
                "SAAS DEFAULT",
                "IN EFFECT"
            )?;
            for r in &rows {
                outln!(
                    "{:<32} {:<9} {:<24} {:<24} {}",
                    r.key,
                    format!("{:?}", r.kind).to_ascii_lowercase(),
                    r.saas_default.as_deref().unwrap_or("-"),
                    r.value.as_deref().unwrap_or("-"),
                    if r.differs { "*" } else { "" }
                )?;
            }
            let differing = rows.iter().filter(|r| r.differs).count();
            outln!(
                "\n{differing} of {} items differ from the SaaS (*).",
                rows.len()
            )?;
        }
    }
    Ok(())
}
