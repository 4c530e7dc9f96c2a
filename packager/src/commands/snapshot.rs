//! `airlift-pack snapshot`: reads a live SaaS cluster (list and get only) and writes a bundle
//! definition folder that `lint` and `build` accept. The rules are in docs/snapshot.md.

use std::path::PathBuf;

use airlift_cli::{outln, CommandError, OutputFormat};
use airlift_cluster::{Cluster, ConnectOptions};
use airlift_snapshot::{Options, ParamKind, Selection};
use anyhow::Context;

/// Arguments of `snapshot`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The SaaS cluster's kubeconfig [default: $KUBECONFIG, then ~/.kube/config].
    #[arg(long, value_name = "FILE")]
    pub kubeconfig: Option<PathBuf>,
    /// The kubeconfig context [default: its current context].
    #[arg(long)]
    pub context: Option<String>,
    /// A namespace to take; the first one becomes the release namespace.
    #[arg(long = "namespace", short = 'n', value_name = "NS", required = true)]
    pub namespaces: Vec<String>,
    /// Take only namespaced objects matching this label selector.
    #[arg(long, short = 'l', value_name = "LABELS")]
    pub selector: Option<String>,
    /// The definition folder to write (created; an earlier snapshot there is replaced).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// The bundle name [default: the first namespace].
    #[arg(long)]
    pub name: Option<String>,
    /// The bundle version.
    #[arg(
        long = "bundle-version",
        value_name = "SEMVER",
        default_value = "0.1.0"
    )]
    pub bundle_version: String,
    /// The vendor named in the bundle.
    #[arg(long, default_value = "unknown vendor")]
    pub vendor: String,
    /// Output format of the summary.
    #[arg(long, short = 'o', value_enum, default_value_t = OutputFormat::Text)]
    pub output: OutputFormat,
}

/// Runs `snapshot`.
pub fn run(args: Args) -> Result<(), CommandError> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let name = args
        .name
        .clone()
        .unwrap_or_else(|| args.namespaces[0].clone());
    let snapshot = runtime.block_on(async {
        let cluster = Cluster::connect(&ConnectOptions {
            kubeconfig: args.kubeconfig.clone(),
            context: args.context.clone(),
        })
        .await
        .map_err(|e| {
            let hint = e.hint();
            CommandError::new(airlift_cli::ExitKind::Cluster, e).with_hint(hint)
        })?;
        let options = Options {
            name,
            version: args.bundle_version.clone(),
            vendor: args.vendor.clone(),
            selection: Selection {
                namespaces: args.namespaces.clone(),
                selector: args.selector.clone(),
            },
            source: cluster.target().to_string(),
        };
        airlift_snapshot::take(cluster.client(), &options)
            .await
            .map_err(CommandError::diagnosed)
    })?;
    snapshot.write(&args.out).map_err(CommandError::diagnosed)?;
    let r = &snapshot.report;
    if args.output.is_machine() {
        return Ok(airlift_cli::print_as(args.output, r)?);
    }
    let count = |k: ParamKind| r.params.iter().filter(|p| p.kind == k).count();
    let out = args.out.display().to_string();
    let out = airlift_cli::output::escape_control(&out);
    outln!("Wrote {out}")?;
    outln!(
        "  {} objects taken, {} skipped, {} images pinned",
        r.taken.len(),
        r.skipped.values().map(Vec::len).sum::<usize>(),
        r.images.values().filter(|i| i.contains('@')).count()
    )?;
    outln!(
        "  config items: {} SaaS defaults, {} cloud-specific, {} secrets (values never copied)",
        count(ParamKind::Saas),
        count(ParamKind::Cloud),
        count(ParamKind::Secret)
    )?;
    for (why, list) in &r.skipped {
        outln!("  skipped {:>4}  {why}", list.len())?;
    }
    if !r.review.is_empty() {
        outln!("Needs review ({}), see SNAPSHOT.md:", r.review.len())?;
        for line in &r.review {
            outln!("  - {}", airlift_cli::output::escape_control(line))?;
        }
    }
    outln!("Next: airlift-pack lint {0} && airlift-pack build {0}", out)?;
    Ok(())
}
