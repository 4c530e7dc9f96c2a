//! `airlift-install drift RELEASE`: is the site still in step? Live objects against what the
//! release applied (field by field, naming the field manager that changed each field), objects
//! missing, and the site's values beside the running bundle's SaaS defaults. Exit 0 in step,
//! 11 (`ExitKind::Drifted`) when drifted: for cron and CI.

use airlift_cli::{outln, progress_for, CommandError, ExitKind, OutputFormat};
use airlift_deploy::drift::{drift, DriftReport};
use serde_json::Value;

use crate::args::{runtime, ReleaseArgs};

/// Arguments of `drift`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The release.
    #[command(flatten)]
    pub release: ReleaseArgs,
    /// Output format.
    #[arg(long, short = 'o', value_enum, default_value_t = OutputFormat::Text)]
    pub output: OutputFormat,
}

/// Runs `drift`.
pub fn run(args: Args, no_progress: bool) -> Result<(), CommandError> {
    let r = &args.release;
    let namespace = r.namespace();
    let report = runtime()?.block_on(async {
        let cluster = r.cluster.connect().await?;
        let progress = progress_for(no_progress || args.output.is_machine());
        drift(&cluster, progress.as_ref(), &namespace, &r.release)
            .await
            .map_err(CommandError::diagnosed)
    })?;
    match args.output {
        f @ (OutputFormat::Json | OutputFormat::Yaml) => airlift_cli::print_as(f, &report)?,
        OutputFormat::Text => print_text(&report)?,
    }
    if report.in_step {
        return Ok(());
    }
    Err(CommandError::new(
        ExitKind::Drifted,
        anyhow::anyhow!(
            "release `{}` in namespace `{}` drifted: {} objects differ from what revision {} applied",
            report.release,
            report.namespace,
            report.objects.len(),
            report.revision.map(|r| r.to_string()).unwrap_or_else(|| "?".into())
        ),
    )
    .with_hint(
        "put the fields back in the SaaS definition (or as site values) and run \
         `airlift-install upgrade`, which re-applies what the bundle says",
    ))
}

fn short(v: &Option<Value>) -> String {
    match v {
        None => "(unset)".into(),
        Some(Value::String(s)) => airlift_cli::output::escape_control(s).into_owned(),
        Some(other) => other.to_string(),
    }
}

fn print_text(r: &DriftReport) -> std::io::Result<()> {
    if r.in_step {
        outln!(
            "Release {} in namespace {} is in step with revision {}.",
            r.release,
            r.namespace,
            r.revision
                .map(|v| v.to_string())
                .unwrap_or_else(|| "?".into())
        )?;
    } else {
        outln!(
            "Release {} in namespace {} DRIFTED from revision {}:",
            r.release,
            r.namespace,
            r.revision
                .map(|v| v.to_string())
                .unwrap_or_else(|| "?".into())
        )?;
    }
    for o in &r.objects {
        if o.missing {
            outln!("  {}: missing", o.object)?;
            continue;
        }
        outln!("  {}:", o.object)?;
        for f in &o.fields {
            outln!(
                "    {}: {} -> {}  by {}",
                f.path,
                short(&f.applied),
                short(&f.live),
                f.manager.as_deref().unwrap_or("an unknown manager")
            )?;
        }
    }
    if !r.overrides.is_empty() {
        outln!("Site values overriding a SaaS default (chosen by the site, not drift):")?;
        for o in &r.overrides {
            outln!("  {}: SaaS {} -> site {}", o.key, o.saas_default, o.site)?;
        }
    }
    outln!("{} values follow the SaaS defaults.", r.follows.len())?;
    Ok(())
}
