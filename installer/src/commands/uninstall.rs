//! `airlift-install uninstall RELEASE`: deletes the release's objects in reverse order.

use airlift_cli::outln;
use airlift_cli::output::print_json;
use airlift_cli::{CommandError, ExitKind, OutputFormat};
use airlift_cluster::generated;
use airlift_cluster::lifecycle::Engine;

use crate::cluster_args::{lifecycle_error, runtime, ClusterArgs};

/// Arguments of `uninstall`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The release name.
    pub release: String,
    /// Cluster flags (`--namespace` defaults to the release name).
    #[command(flatten)]
    pub cluster: ClusterArgs,
    /// Also delete PersistentVolumeClaims, the namespaces holding them, CRDs and the generated
    /// secrets. Without it, data survives and a later install finds it again.
    #[arg(long)]
    pub delete_data: bool,
    /// Do not ask for confirmation.
    #[arg(long, short = 'y')]
    pub yes: bool,
    /// Output format.
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    pub output: OutputFormat,
}

/// Runs `uninstall`.
pub fn run(args: Args, no_progress: bool) -> Result<(), CommandError> {
    let namespace = args.cluster.namespace_name(&args.release);
    if args.delete_data && !args.yes {
        crate::confirm::confirm(&format!(
            "Delete release {} AND its data (volumes, CRDs, generated secrets)?",
            args.release
        ))?;
    }
    let outcome = runtime()?.block_on(async {
        let cluster = args.cluster.connect().await?;
        let progress = airlift_cli::progress_for(no_progress || args.output == OutputFormat::Json);
        let outcome = Engine::new(&cluster, progress.as_ref())
            .uninstall(&namespace, &args.release, args.delete_data)
            .await
            .map_err(lifecycle_error)?;
        if args.delete_data {
            generated::delete(&cluster, &namespace, &args.release)
                .await
                .map_err(|e| {
                    let hint = e.hint();
                    CommandError::new(ExitKind::Cluster, e).with_hint(hint)
                })?;
        }
        Ok::<_, CommandError>(outcome)
    })?;
    match args.output {
        OutputFormat::Json => print_json(&serde_json::json!({
            "release": args.release,
            "namespace": namespace,
            "deleted": outcome.pruned.iter().map(ToString::to_string).collect::<Vec<_>>(),
            "kept": outcome.kept.iter().map(ToString::to_string).collect::<Vec<_>>(),
        }))?,
        OutputFormat::Text => {
            outln!(
                "Uninstalled release {} from namespace {namespace}: {} objects deleted.",
                args.release,
                outcome.pruned.len()
            )?;
            if !outcome.kept.is_empty() {
                outln!("Kept (pass --delete-data to delete them):")?;
                for k in &outcome.kept {
                    outln!("  {k}")?;
                }
            }
        }
    }
    Ok(())
}
