//! `airlift-install upgrade BUNDLE`: shows the plan, asks (when interactive), pushes, applies,
//! prunes; rolls back automatically when the new version fails to apply or to become ready.

use airlift_cli::outln;

use airlift_cli::{CommandError, OutputFormat};
use airlift_deploy::{DeployError, Deployer, Intent, Interaction};

use crate::args::{runtime, DeployArgs};
use crate::interact::Terminal;
use crate::outcome::{print_dry_run, print_outcome, print_plan};
use crate::signals::cancel_on_signals;

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
    let rt = runtime()?;
    let (bundle, progress, site) = a.open(&rt, no_progress)?;
    let cancel = cancel_on_signals(&rt);
    let interaction = Terminal::new(a.config.yes);
    let done = rt.block_on(async {
        let cluster = a.cluster.connect().await?;
        let deployer = Deployer::new(&cluster, progress.clone(), &interaction, cancel);
        let diag = CommandError::diagnosed;
        let prepared = deployer
            .prepare(bundle, &site, Intent::Upgrade)
            .await
            .map_err(diag)?;
        crate::commands::license::print_warnings(prepared.license.as_ref());
        let mut options = a.options();
        options.no_rollback = args.no_rollback;
        options.force = args.force;
        // Refused before a plan is shown: not installed, or a downgrade without --force.
        deployer
            .check_upgrade(&prepared, options.force)
            .await
            .map_err(diag)?;
        if a.dry_run {
            let plan = deployer
                .dry_run(&prepared, Intent::Upgrade, &options)
                .await
                .map_err(diag)?;
            return Ok(Err(plan));
        }
        let plan = deployer.plan(&prepared).await.map_err(diag)?;
        if a.output == OutputFormat::Text {
            print_plan(&plan)?;
        }
        if interaction.interactive() && !interaction.confirm("Apply this upgrade?").map_err(diag)? {
            return Err(diag(DeployError::Declined));
        }
        let report = deployer
            .deploy(&prepared, Intent::Upgrade, &options, a.force_unlock)
            .await
            .map_err(diag)?;
        let notes = airlift_deploy::notes::render_notes(
            &prepared,
            &report.release,
            &report.namespace,
            u64::from(report.outcome.revision),
        );
        Ok::<_, CommandError>(Ok((plan, report, notes)))
    })?;
    let (plan, report, notes) = match done {
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
                "plan": plan,
                "objects": report.outcome,
                "push": report.push,
            }),
        )?,
        OutputFormat::Text => {
            outln!(
                "Upgraded release {} in namespace {} to {} {} (revision {})",
                report.release,
                report.namespace,
                report.bundle.name,
                report.bundle.version,
                report.outcome.revision,
            )?;
            print_outcome(&report.outcome)?;
            super::install::print_notes(notes)?;
        }
    }
    Ok(())
}
