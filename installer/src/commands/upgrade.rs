//! `airlift-install upgrade BUNDLE`: shows the plan, pushes, applies, prunes; rolls back
//! automatically when the new version fails to apply or to become ready.

use airlift_cli::outln;
use airlift_cli::output::print_json;
use airlift_cli::{CommandError, OutputFormat};
use airlift_cluster::lifecycle::Engine;

use crate::cluster_args::{lifecycle_error, runtime};
use crate::commands::install::{cluster_preflight, push_phase};
use crate::deploy::{keep_generated, prepare, DeployArgs, Intent};

/// Arguments of `upgrade`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// What to upgrade to and where.
    #[command(flatten)]
    pub deploy: DeployArgs,
    /// Leave a failed upgrade as it is instead of rolling back automatically.
    #[arg(long)]
    pub no_rollback: bool,
    /// Allow installing an older version than the one running.
    #[arg(long)]
    pub force: bool,
}

/// Runs `upgrade`.
pub fn run(args: Args, no_progress: bool) -> Result<(), CommandError> {
    let a = &args.deploy;
    let (bundle, progress) = a.open(no_progress)?;
    let rt = runtime()?;
    let (prepared, plan, outcome) = rt.block_on(async {
        let cluster = a.cluster.connect().await?;
        let prepared = prepare(a, bundle, &cluster, progress.as_ref(), Intent::Upgrade).await?;
        // Secret values rendered into any object are kept out of the release records.
        let engine = Engine::new(&cluster, progress.as_ref()).redacting(&prepared.config);
        let plan = engine
            .plan(&prepared.request)
            .await
            .map_err(lifecycle_error)?;
        if a.output == OutputFormat::Text {
            outln!("Plan for release {}:\n{plan}", prepared.request.release)?;
        }
        if !a.config.yes && a.config.interactive() {
            crate::confirm::confirm("Apply this upgrade?")?;
        }
        cluster_preflight(&engine, &prepared).await?;
        push_phase(
            &prepared,
            usize::from(a.registry.concurrency),
            progress.clone(),
        )
        .await?;
        keep_generated(&cluster, &prepared).await?;
        let mut options = a.wait.deploy_options();
        options.no_rollback = args.no_rollback;
        options.force = args.force;
        let outcome = engine
            .upgrade(&prepared.request, &options)
            .await
            .map_err(lifecycle_error)?;
        Ok::<_, CommandError>((prepared, plan, outcome))
    })?;
    let m = prepared.bundle.manifest();
    match a.output {
        OutputFormat::Json => print_json(&serde_json::json!({
            "release": prepared.request.release,
            "namespace": prepared.request.namespace,
            "bundle": {"name": m.metadata.name, "version": m.metadata.version},
            "revision": outcome.revision,
            "plan": plan,
            "pruned": outcome.pruned.iter().map(ToString::to_string).collect::<Vec<_>>(),
        }))?,
        OutputFormat::Text => outln!(
            "Upgraded release {} to {} {} (revision {}); {} objects pruned.",
            prepared.request.release,
            m.metadata.name,
            m.metadata.version,
            outcome.revision,
            outcome.pruned.len()
        )?,
    }
    Ok(())
}
