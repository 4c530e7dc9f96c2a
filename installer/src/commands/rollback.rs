//! `airlift-install rollback RELEASE [REVISION]`: returns to an earlier revision, under the
//! release lock. Without a revision: to the newest earlier deployed one, or, when the last
//! operation failed or was interrupted, back to the revision still recorded as deployed.

use airlift_cli::outln;

use airlift_cli::{progress_for, CommandError, OutputFormat};
use airlift_deploy::{releases, DeployError, Interaction};

use crate::args::{runtime, ReleaseArgs, WaitArgs};
use crate::interact::Terminal;
use crate::outcome::print_outcome;

/// Arguments of `rollback`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The release.
    #[command(flatten)]
    pub release: ReleaseArgs,
    /// The revision to return to.
    pub revision: Option<u32>,
    /// Readiness.
    #[command(flatten)]
    pub wait: WaitArgs,
    /// Take the release lock even if another operation holds it (only when that one is gone).
    #[arg(long)]
    pub force_unlock: bool,
    /// Never ask for confirmation (asked only on a terminal).
    #[arg(long, short = 'y')]
    pub yes: bool,
    /// Output format.
    #[arg(long, short = 'o', value_enum, default_value_t = OutputFormat::Text)]
    pub output: OutputFormat,
}

/// Runs `rollback`.
pub fn run(args: Args, no_progress: bool) -> Result<(), CommandError> {
    let r = &args.release;
    let namespace = r.namespace();
    let terminal = Terminal::new(args.yes);
    if terminal.interactive() {
        let to = args.revision.map_or_else(
            || "the last deployed revision".to_string(),
            |n| format!("revision {n}"),
        );
        let question = format!(
            "Roll back release {} in namespace {namespace} to {to}?",
            r.release
        );
        if !terminal
            .confirm(&question)
            .map_err(CommandError::diagnosed)?
        {
            return Err(CommandError::diagnosed(DeployError::Declined));
        }
    }
    let rt = runtime()?;
    let mut options = args.wait.deploy_options();
    options.cancel = crate::signals::cancel_on_signals(&rt);
    let outcome = rt.block_on(async {
        let cluster = r.cluster.connect().await?;
        let progress = progress_for(no_progress || args.output.is_machine());
        releases::rollback(
            &cluster,
            progress.as_ref(),
            &namespace,
            &r.release,
            args.revision,
            &options,
            args.force_unlock,
        )
        .await
        .map_err(CommandError::diagnosed)
    })?;
    match args.output {
        f @ (OutputFormat::Json | OutputFormat::Yaml) => airlift_cli::print_as(
            f,
            &serde_json::json!({
                "release": r.release,
                "namespace": namespace,
                "revision": outcome.revision,
                "objects": outcome,
            }),
        )?,
        OutputFormat::Text => {
            outln!(
                "Rolled back release {} in namespace {namespace}: revision {} is running.",
                r.release,
                outcome.revision
            )?;
            print_outcome(&outcome)?;
        }
    }
    Ok(())
}
