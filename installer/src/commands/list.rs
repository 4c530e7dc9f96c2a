//! `airlift-install list [-n NAMESPACE | -A]`: the releases, newest revision first per release.

use airlift_cli::Table;

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
    let mut table = Table::new(&[
        "NAME",
        "NAMESPACE",
        "BUNDLE",
        "VERSION",
        "REVISION",
        "STATUS",
        "UPDATED",
    ])
    .right(4);
    for r in &list {
        table.row([
            r.name.clone(),
            r.namespace.clone(),
            r.latest.bundle.name.clone(),
            r.latest.bundle.version.to_string(),
            r.latest.revision.to_string(),
            r.latest.status.to_string(),
            r.latest.time.to_string(),
        ]);
    }
    if !table.is_empty() {
        table.print()?;
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
