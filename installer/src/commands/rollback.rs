//! `airlift-install rollback RELEASE [REVISION]`: returns to an earlier release.

use airlift_cli::outln;
use airlift_cli::output::print_json;
use airlift_cli::{CommandError, OutputFormat};
use airlift_cluster::lifecycle::Engine;

use crate::cluster_args::{lifecycle_error, runtime, ClusterArgs, WaitArgs};

/// Arguments of `rollback`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The release name.
    pub release: String,
    /// The revision to return to [default: the newest earlier revision that was deployed].
    pub revision: Option<u32>,
    /// Cluster flags (`--namespace` defaults to the release name).
    #[command(flatten)]
    pub cluster: ClusterArgs,
    /// Readiness.
    #[command(flatten)]
    pub wait: WaitArgs,
    /// Output format.
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    pub output: OutputFormat,
}

/// Runs `rollback`.
pub fn run(args: Args, no_progress: bool) -> Result<(), CommandError> {
    let namespace = args.cluster.namespace_name(&args.release);
    let outcome = runtime()?.block_on(async {
        let cluster = args.cluster.connect().await?;
        let progress = airlift_cli::progress_for(no_progress || args.output == OutputFormat::Json);
        Engine::new(&cluster, progress.as_ref())
            .rollback(
                &namespace,
                &args.release,
                args.revision,
                &args.wait.deploy_options(),
            )
            .await
            .map_err(lifecycle_error)
    })?;
    match args.output {
        OutputFormat::Json => print_json(&serde_json::json!({
            "release": args.release,
            "namespace": namespace,
            "revision": outcome.revision,
            "pruned": outcome.pruned.iter().map(ToString::to_string).collect::<Vec<_>>(),
        }))?,
        OutputFormat::Text => outln!(
            "Rolled back release {} in namespace {namespace}: revision {} is running ({} objects removed).",
            args.release,
            outcome.revision,
            outcome.pruned.len()
        )?,
    }
    Ok(())
}
