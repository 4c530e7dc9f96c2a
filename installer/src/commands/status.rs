//! `airlift-install status RELEASE`: the current release and its history.

use airlift_cli::outln;
use airlift_cli::output::print_json;
use airlift_cli::{CommandError, OutputFormat};
use airlift_cluster::lifecycle::Engine;
use airlift_cluster::release::{Release, ReleaseStatus};

use crate::cluster_args::{lifecycle_error, runtime, ClusterArgs};

/// Arguments of `status`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The release name (the bundle's name unless installed with --release).
    pub release: String,
    /// Cluster flags (`--namespace` defaults to the release name).
    #[command(flatten)]
    pub cluster: ClusterArgs,
    /// Output format.
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    pub output: OutputFormat,
}

#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct Row<'a> {
    revision: u32,
    status: ReleaseStatus,
    bundle: &'a str,
    version: &'a str,
    digest: &'a str,
    time: &'a str,
    description: &'a str,
    objects: usize,
}

fn row(r: &Release) -> Row<'_> {
    Row {
        revision: r.revision,
        status: r.status,
        bundle: &r.bundle.name,
        version: &r.bundle.version,
        digest: &r.bundle.digest,
        time: &r.time,
        description: &r.description,
        objects: r.inventory.len(),
    }
}

/// Runs `status`.
pub fn run(args: Args, no_progress: bool) -> Result<(), CommandError> {
    let namespace = args.cluster.namespace_name(&args.release);
    let rt = runtime()?;
    let history = rt.block_on(async {
        let cluster = args.cluster.connect().await?;
        let progress = airlift_cli::progress_for(no_progress);
        Engine::new(&cluster, progress.as_ref())
            .status(&namespace, &args.release)
            .await
            .map_err(lifecycle_error)
    })?;
    let current = history
        .iter()
        .rev()
        .find(|r| r.status == ReleaseStatus::Deployed);
    match args.output {
        OutputFormat::Json => print_json(&serde_json::json!({
            "release": args.release,
            "namespace": namespace,
            "installed": current.is_some(),
            "current": current.map(row),
            "config": current.map(|r| &r.config),
            "history": history.iter().map(row).collect::<Vec<_>>(),
        }))?,
        OutputFormat::Text => {
            match current {
                Some(r) => outln!(
                    "Release {} in namespace {}: revision {} deployed, {} {} ({} objects)",
                    args.release,
                    namespace,
                    r.revision,
                    r.bundle.name,
                    r.bundle.version,
                    r.inventory.len()
                )?,
                None if history.is_empty() => outln!(
                    "Release {} is not installed in namespace {namespace}.",
                    args.release
                )?,
                None => outln!(
                    "Release {} in namespace {namespace} has no deployed revision.",
                    args.release
                )?,
            }
            if !history.is_empty() {
                outln!(
                    "\n{:>8}  {:<12}  {:<10}  {:<20}  DESCRIPTION",
                    "REVISION",
                    "STATUS",
                    "VERSION",
                    "TIME"
                )?;
                for r in &history {
                    outln!(
                        "{:>8}  {:<12}  {:<10}  {:<20}  {}",
                        r.revision,
                        r.status.to_string(),
                        r.bundle.version,
                        r.time,
                        r.description
                    )?;
                }
            }
        }
    }
    Ok(())
}
