//! `airlift-install plan BUNDLE`: what installing or upgrading to BUNDLE would change, changing
//! nothing: objects, images, and every value old → new with the reason.

use airlift_cli::{CommandError, OutputFormat};
use airlift_deploy::{Deployer, Intent, NonInteractive};

use crate::args::{runtime, DeployArgs};
use crate::outcome::print_plan;

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
    let rt = runtime()?;
    let (bundle, progress, site) = a.open(&rt, no_progress)?;
    let plan = rt.block_on(async {
        let cluster = a.cluster.connect().await?;
        let deployer = Deployer::new(
            &cluster,
            progress.clone(),
            &NonInteractive,
            airlift_cluster::cancel::Cancel::new(),
        );
        let prepared = deployer
            .prepare(bundle, &site, Intent::Upgrade)
            .await
            .map_err(CommandError::diagnosed)?;
        deployer
            .plan(&prepared)
            .await
            .map_err(CommandError::diagnosed)
    })?;
    match a.output {
        f @ (OutputFormat::Json | OutputFormat::Yaml) => airlift_cli::print_as(f, &plan)?,
        OutputFormat::Text => print_plan(&plan)?,
    }
    Ok(())
}
