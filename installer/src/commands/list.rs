//! `airlift-install list [-n NAMESPACE | -A]`: the releases, newest revision first per release.

use airlift_cli::outln;

use airlift_cli::{CommandError, OutputFormat};
use airlift_deploy::releases;

use crate::args::{runtime, ClusterArgs};

/// Arguments of `list`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Only this namespace [default: every namespace, since each release has its own].
    #[arg(
        long,
        short = 'n',
        value_name = "NAMESPACE",
        conflicts_with = "all_namespaces"
    )]
    pub namespace: Option<String>,
    /// Releases in every namespace (the default; kept for kubectl habits).
    #[arg(long, short = 'A')]
    pub all_namespaces: bool,
    /// The cluster.
    #[command(flatten)]
    pub cluster: ClusterArgs,
    /// Output format.
    #[arg(long, short = 'o', value_enum, default_value_t = OutputFormat::Text)]
    pub output: OutputFormat,
}

/// Runs `list`.
pub fn run(args: Args, _no_progress: bool) -> Result<(), CommandError> {
    let namespace = args.namespace.clone();
    let list = runtime()?.block_on(async {
        let cluster = args.cluster.connect().await?;
        releases::list(&cluster, namespace.as_deref())
            .await
            .map_err(CommandError::diagnosed)
    })?;
    if args.output.is_machine() {
        return Ok(airlift_cli::print_as(args.output, &list)?);
    }
    outln!(
        "{:<20} {:<20} {:<16} {:<10} {:>8}  {:<12} UPDATED",
        "NAME",
        "NAMESPACE",
        "BUNDLE",
        "VERSION",
        "REVISION",
        "STATUS"
    )?;
    for r in &list {
        outln!(
            "{:<20} {:<20} {:<16} {:<10} {:>8}  {:<12} {}",
            r.name,
            r.namespace,
            r.latest.bundle.name,
            r.latest.bundle.version,
            r.latest.revision,
            r.latest.status.to_string(),
            r.latest.time
        )?;
    }
    if list.is_empty() {
        eprintln!(
            "no releases{}",
            namespace
                .map(|n| format!(" in namespace `{n}`"))
                .unwrap_or_default()
        );
    }
    Ok(())
}
