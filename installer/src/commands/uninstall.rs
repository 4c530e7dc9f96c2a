//! `airlift-install uninstall RELEASE`: deletes the objects the release owns, in reverse order,
//! under the release lock. Volumes, CRDs, generated secrets and the namespaces holding them stay
//! unless `--delete-data`.

use airlift_cli::outln;

use airlift_cli::{progress_for, CommandError, ExitKind, OutputFormat};
use airlift_deploy::{releases, DeployError, Interaction};

use crate::args::{runtime, ReleaseArgs};
use crate::interact::Terminal;
use crate::outcome::print_outcome;

/// Arguments of `uninstall`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The release.
    #[command(flatten)]
    pub release: ReleaseArgs,
    /// Also delete PersistentVolumeClaims, CRDs, the generated secrets and the namespaces
    /// holding them. Without it, data survives and a later install finds it again.
    #[arg(long)]
    pub delete_data: bool,
    /// Never ask for confirmation (asked only on a terminal; off a terminal `--delete-data`
    /// requires it).
    #[arg(long, short = 'y')]
    pub yes: bool,
    /// Take the release lock even if another operation holds it (only when that one is gone).
    #[arg(long)]
    pub force_unlock: bool,
    /// Output format.
    #[arg(long, short = 'o', value_enum, default_value_t = OutputFormat::Text)]
    pub output: OutputFormat,
}

/// Runs `uninstall`.
pub fn run(args: Args, no_progress: bool) -> Result<(), CommandError> {
    let r = &args.release;
    let namespace = r.namespace();
    let terminal = Terminal::new(args.yes);
    if args.delete_data && !args.yes && !terminal.interactive() {
        return Err(CommandError::new(
            ExitKind::Usage,
            anyhow::anyhow!(
                "--delete-data deletes volumes and generated secrets; off a terminal it needs --yes"
            ),
        )
        .with_hint("pass --yes (-y) with --delete-data to delete data without a question"));
    }
    if terminal.interactive() {
        let question = if args.delete_data {
            format!(
                "Delete release {} in namespace {namespace} AND its data (volumes, CRDs, \
                 generated secrets)?",
                r.release
            )
        } else {
            format!(
                "Uninstall release {} from namespace {namespace} (volumes and generated \
                 secrets are kept)?",
                r.release
            )
        };
        if !terminal
            .confirm(&question)
            .map_err(CommandError::diagnosed)?
        {
            return Err(CommandError::diagnosed(DeployError::Declined));
        }
    }
    let rt = runtime()?;
    let cancel = crate::signals::cancel_on_signals(&rt);
    let outcome = rt.block_on(async {
        let cluster = r.cluster.connect().await?;
        let progress = progress_for(no_progress || args.output.is_machine());
        releases::uninstall(
            &cluster,
            progress.as_ref(),
            &namespace,
            &r.release,
            args.delete_data,
            args.force_unlock,
            cancel,
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
                "objects": outcome,
            }),
        )?,
        OutputFormat::Text => {
            outln!(
                "Uninstalled release {} from namespace {namespace}.",
                r.release
            )?;
            print_outcome(&outcome)?;
        }
    }
    Ok(())
}
