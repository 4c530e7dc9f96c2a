//! `airlift-install plan BUNDLE`: what upgrading to BUNDLE would change, changing nothing.

use airlift_cli::outln;
use airlift_cli::output::print_json;
use airlift_cli::{CommandError, OutputFormat};
use airlift_cluster::lifecycle::Engine;
use airlift_cluster::release::ReleaseStatus;

use crate::cluster_args::{lifecycle_error, runtime};
use crate::deploy::{prepare, DeployArgs, Intent};

/// Arguments of `plan`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The new bundle and where it would go.
    #[command(flatten)]
    pub deploy: DeployArgs,
}

/// Runs `plan`.
pub fn run(args: Args, no_progress: bool) -> Result<(), CommandError> {
    let a = &args.deploy;
    let (bundle, progress) = a.open(no_progress)?;
    let (prepared, plan, current) = runtime()?.block_on(async {
        let cluster = a.cluster.connect().await?;
        let engine = Engine::new(&cluster, progress.as_ref());
        let prepared = prepare(a, bundle, &cluster, progress.as_ref(), Intent::Upgrade).await?;
        let plan = engine
            .plan(&prepared.request)
            .await
            .map_err(lifecycle_error)?;
        let history = engine
            .status(&prepared.request.namespace, &prepared.request.release)
            .await
            .map_err(lifecycle_error)?;
        let current = history
            .into_iter()
            .rev()
            .find(|r| r.status == ReleaseStatus::Deployed);
        Ok::<_, CommandError>((prepared, plan, current))
    })?;
    let m = prepared.bundle.manifest();
    match a.output {
        OutputFormat::Json => print_json(&serde_json::json!({
            "release": prepared.request.release,
            "namespace": prepared.request.namespace,
            "from": current.as_ref().map(|r| &r.bundle),
            "to": {"name": m.metadata.name, "version": m.metadata.version},
            "plan": plan,
        }))?,
        OutputFormat::Text => {
            match &current {
                Some(r) => outln!(
                    "Plan for release {}: {} {} -> {} {}",
                    prepared.request.release,
                    r.bundle.name,
                    r.bundle.version,
                    m.metadata.name,
                    m.metadata.version
                )?,
                None => outln!(
                    "Plan for release {} (not installed yet): {} {}",
                    prepared.request.release,
                    m.metadata.name,
                    m.metadata.version
                )?,
            }
            outln!("{plan}")?;
        }
    }
    Ok(())
}
