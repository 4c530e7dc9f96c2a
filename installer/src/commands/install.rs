//! `airlift-install install BUNDLE`: verify, configure, render, preflight, push, apply, wait,
//! record: the library's pipeline. Running it again after an interruption converges.

use airlift_cli::outln;
use airlift_cli::output::{escape_control, human_bytes};
use airlift_cli::{CommandError, OutputFormat};
use airlift_deploy::notes::render_notes;
use airlift_deploy::{Deployer, Intent};

use crate::args::{runtime, DeployArgs};
use crate::interact::Terminal;
use crate::outcome::{print_dry_run, print_outcome};
use crate::signals::cancel_on_signals;

/// Arguments of `install`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// What to install and where.
    #[command(flatten)]
    pub deploy: DeployArgs,
}

/// Runs `install`.
pub fn run(args: Args, no_progress: bool) -> Result<(), CommandError> {
    let a = &args.deploy;
    let rt = runtime()?;
    let (bundle, progress, site) = a.open(&rt, no_progress)?;
    let cancel = cancel_on_signals(&rt);
    let interaction = Terminal::new(a.config.yes);
    let done = rt.block_on(async {
        let cluster = a.cluster.connect().await?;
        let deployer = Deployer::new(&cluster, progress.clone(), &interaction, cancel);
        let prepared = deployer
            .prepare(bundle, &site, Intent::Install)
            .await
            .map_err(CommandError::diagnosed)?;
        crate::commands::license::print_warnings(prepared.license.as_ref());
        if a.dry_run {
            let plan = deployer
                .dry_run(&prepared, Intent::Install, &a.options())
                .await
                .map_err(CommandError::diagnosed)?;
            return Ok(Err(plan));
        }
        let report = deployer
            .deploy(&prepared, Intent::Install, &a.options(), a.force_unlock)
            .await
            .map_err(CommandError::diagnosed)?;
        let notes = render_notes(
            &prepared,
            &report.release,
            &report.namespace,
            u64::from(report.outcome.revision),
        );
        Ok::<_, CommandError>(Ok((
            report,
            prepared.relocation,
            cluster.target().clone(),
            notes,
        )))
    })?;
    let (report, relocation, server, notes) = match done {
        Ok(done) => done,
        Err(plan) => return print_dry_run(&plan, a.output),
    };
    match a.output {
        f @ (OutputFormat::Json | OutputFormat::Yaml) => airlift_cli::print_as(
            f,
            &serde_json::json!({
                "release": report.release,
                "namespace": report.namespace,
                "bundle": {"name": report.bundle.name, "version": report.bundle.version},
                "revision": report.outcome.revision,
                "recorded": report.outcome.recorded,
                "cluster": {"context": server.context, "server": server.server},
                "objects": report.outcome,
                "push": report.push,
            }),
        )?,
        OutputFormat::Text => {
            outln!(
                "Installed {} {} as release {} (revision {}) in namespace {} on {}{}",
                report.bundle.name,
                report.bundle.version,
                report.release,
                report.outcome.revision,
                report.namespace,
                server,
                if report.outcome.recorded {
                    ""
                } else {
                    " (no change: nothing new recorded)"
                }
            )?;
            outln!(
                "  images: {} pushed, {} already in {} ({} mounted)",
                human_bytes(report.push.bytes_pushed),
                human_bytes(report.push.bytes_skipped),
                report.push.registry,
                human_bytes(report.push.bytes_mounted)
            )?;
            print_outcome(&report.outcome)?;
            for (from, to) in &relocation {
                outln!("  {from} -> {to}")?;
            }
            print_notes(notes)?;
        }
    }
    Ok(())
}

/// Prints the bundle's rendered NOTES (secrets masked) after an install or upgrade; a NOTES
/// template that fails to render is a warning, never a failure: the deploy succeeded.
pub fn print_notes(
    notes: Option<Result<String, airlift_render::template::TemplateError>>,
) -> Result<(), CommandError> {
    match notes {
        None => {}
        Some(Ok(text)) => {
            outln!("\nNOTES:\n{}", escape_control(text.trim_end()))?;
        }
        Some(Err(e)) => {
            use std::io::Write as _;
            // Best effort: a closed stderr must not fail a deploy that succeeded.
            let _ = writeln!(
                std::io::stderr(),
                "warning: the bundle's NOTES did not render: {}",
                escape_control(&format!("{e:#}"))
            );
        }
    }
    Ok(())
}
