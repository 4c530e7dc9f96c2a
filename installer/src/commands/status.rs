//! `airlift-install status RELEASE`: the release as the cluster shows it now (workloads ready,
//! objects missing or changed, the last operation and who ran it) and its history. An unknown
//! release is an error naming where a release of that name does exist.

use airlift_cli::outln;
use airlift_cli::Table;

use airlift_cli::{progress_for, CommandError, OutputFormat};
use airlift_deploy::releases;

use crate::args::{runtime, ReleaseArgs};

/// Arguments of `status`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The release.
    #[command(flatten)]
    pub release: ReleaseArgs,
    /// Output format.
    #[arg(long, short = 'o', value_enum, default_value_t = OutputFormat::Text)]
    pub output: OutputFormat,
}

/// Runs `status`.
pub fn run(args: Args, no_progress: bool) -> Result<(), CommandError> {
    let r = &args.release;
    let namespace = r.namespace();
    let (report, license) = runtime()?.block_on(async {
        let cluster = r.cluster.connect().await?;
        let progress = progress_for(no_progress || args.output.is_machine());
        let report = releases::status(&cluster, progress.as_ref(), &namespace, &r.release)
            .await
            .map_err(CommandError::diagnosed)?;
        // A damaged license record does not hide the release's status: it is a warning here,
        // and `license show` reports it as an error.
        let license = match airlift_deploy::license::show(&cluster, &namespace, &r.release).await {
            Ok(l) => l,
            Err(e) => {
                eprintln!("warning: the stored license cannot be shown: {e}");
                None
            }
        };
        Ok::<_, CommandError>((report, license))
    })?;
    if args.output.is_machine() {
        let mut json = serde_json::to_value(&report).map_err(anyhow::Error::new)?;
        if let (Some(map), Some(l)) = (json.as_object_mut(), &license) {
            map.insert(
                "license".into(),
                serde_json::to_value(l).map_err(anyhow::Error::new)?,
            );
        }
        return Ok(airlift_cli::print_as(args.output, &json)?);
    }
    outln!(
        "Release {} in namespace {}: {}",
        report.release,
        report.namespace,
        report.summary
    )?;
    let last = &report.latest;
    outln!(
        "Last operation: revision {} {} ({}) at {}{}",
        last.revision,
        last.status,
        last.description,
        last.time,
        last.operator
            .as_ref()
            .map(|o| format!(" by {o}"))
            .unwrap_or_default()
    )?;
    if let Some(holder) = &report.locked_by {
        outln!("Locked by {holder}")?;
    }
    if let Some(registry) = &report.registry {
        outln!("Registry: {registry}")?;
    }
    outln!(
        "Platform: {}",
        airlift_cli::output::escape_control(&report.platform.summary())
    )?;
    if let Some(l) = &license {
        crate::commands::license::print_summary(l, "")?;
    }
    if !report.workloads.is_empty() {
        outln!()?;
        let mut table = Table::new(&["WORKLOAD", "READY", "CONDITION"]).right(1);
        for w in &report.workloads {
            table.row([
                w.object.to_string(),
                format!("{}/{}", w.ready, w.desired),
                w.condition.to_string(),
            ]);
        }
        table.print()?;
    }
    for m in &report.missing {
        outln!("missing: {m}")?;
    }
    for c in &report.changed {
        outln!(
            "changed since applied: {} ({})",
            c.object,
            c.fields.join(", ")
        )?;
    }
    outln!()?;
    let mut table = Table::new(&["REVISION", "STATUS", "VERSION", "TIME", "DESCRIPTION"]).right(0);
    for h in &report.history {
        table.row([
            h.revision.to_string(),
            h.status.to_string(),
            h.bundle.version.to_string(),
            h.time.to_string(),
            h.description.to_string(),
        ]);
    }
    table.print()?;
    Ok(())
}
