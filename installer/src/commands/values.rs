//! `airlift-install values RELEASE`: the site's own values beside the SaaS defaults of the
//! deployed revision, and the value in effect. Secrets show as `(secret)` or a fingerprint.

use airlift_cli::Table;

use airlift_cli::{progress_for, CommandError, OutputFormat};
use airlift_deploy::releases;
use serde_json::Value;

use crate::args::{runtime, ReleaseArgs};

/// Arguments of `values`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The release.
    #[command(flatten)]
    pub release: ReleaseArgs,
    /// Output format.
    #[arg(long, short = 'o', value_enum, default_value_t = OutputFormat::Text)]
    pub output: OutputFormat,
}

fn text(v: Option<&Value>) -> String {
    match v {
        None => "-".into(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    }
}

/// Runs `values`.
pub fn run(args: Args, no_progress: bool) -> Result<(), CommandError> {
    let r = &args.release;
    let namespace = r.namespace();
    let rows = runtime()?.block_on(async {
        let cluster = r.cluster.connect().await?;
        let progress = progress_for(no_progress);
        releases::values(&cluster, progress.as_ref(), &namespace, &r.release)
            .await
            .map_err(CommandError::diagnosed)
    })?;
    match args.output {
        f @ (OutputFormat::Json | OutputFormat::Yaml) => airlift_cli::print_as(f, &rows)?,
        OutputFormat::Text => {
            let mut table = Table::new(&["KEY", "SAAS DEFAULT", "SITE VALUE", "IN EFFECT"]);
            for row in &rows {
                table.row([
                    row.key.clone(),
                    text(row.saas_default.as_ref()),
                    text(row.site.as_ref()),
                    text(row.effective.as_ref()),
                ]);
            }
            table.print()?;
        }
    }
    Ok(())
}
