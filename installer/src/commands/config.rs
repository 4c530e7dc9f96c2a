//! `airlift-install config BUNDLE`: the configuration items, their SaaS defaults and the values in
//! effect, marking where the customer differs from the SaaS. Secrets are masked.

use airlift_cli::outln;
use std::collections::BTreeMap;
use std::path::PathBuf;

use airlift_cli::{progress_for, CommandError, OutputFormat, Table};
use airlift_deploy::site::resolve_config;
use airlift_deploy::{open_verified, SiteRequest};

use crate::args::{ConfigArgs, TrustArgs};
use crate::interact::Terminal;

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
    #[arg(long, short = 'o', value_enum, default_value_t = OutputFormat::Text)]
    pub output: OutputFormat,
}

/// Runs `config`.
pub fn run(args: Args, no_progress: bool) -> Result<(), CommandError> {
    let diag = CommandError::diagnosed;
    let trust = args.trust.trust()?;
    let progress = progress_for(no_progress);
    let (bundle, _) =
        open_verified(&args.bundle, &trust, progress.as_ref(), false).map_err(diag)?;
    let site = SiteRequest {
        values_files: args.config.values.clone(),
        set: args.config.set.clone(),
        ..SiteRequest::default()
    };
    let (config, _) = resolve_config(
        &bundle.manifest().config,
        &site,
        None,
        &BTreeMap::new(),
        &Terminal::new(args.config.yes),
    )
    .map_err(diag)?;
    let rows = config.diff_from_saas();
    match args.output {
        f @ (OutputFormat::Json | OutputFormat::Yaml) => airlift_cli::print_as(f, &rows)?,
        OutputFormat::Text => {
            let mut table = Table::new(&["KEY", "TYPE", "SAAS DEFAULT", "IN EFFECT", "DIFFERS"]);
            for r in &rows {
                let in_effect = match (&r.value, r.generated) {
                    (Some(v), _) => v.clone(),
                    (None, true) => "(generated at install)".to_string(),
                    (None, false) => "(not set)".to_string(),
                };
                table.row([
                    r.key.clone(),
                    format!("{:?}", r.kind).to_ascii_lowercase(),
                    r.saas_default.clone().unwrap_or_else(|| "-".into()),
                    in_effect,
                    if r.differs { "*".into() } else { String::new() },
                ]);
            }
            table.print()?;
            let differing = rows.iter().filter(|r| r.differs).count();
            outln!(
                "\n{differing} of {} items differ from the SaaS (*).",
                rows.len()
            )?;
        }
    }
    Ok(())
}
