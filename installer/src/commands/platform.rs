//! `airlift-install platform`: what the cluster is (provider, region and zones, default storage
//! class, ingress classes), each with the evidence it was read from, and which mapping table
//! Airlift applies to a bundle's `platform:` needs there.

use airlift_cli::outln;
use airlift_cli::output::escape_control as e;
use airlift_cli::{CommandError, OutputFormat};
use airlift_cluster::platform::{detect, PlatformReport};
use airlift_render::platform::profile;
use serde::Serialize;

use crate::args::{runtime, ClusterArgs};

/// Arguments of `platform`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The cluster.
    #[command(flatten)]
    pub cluster: ClusterArgs,
    /// Output format.
    #[arg(long, short = 'o', value_enum, default_value_t = OutputFormat::Text)]
    pub output: OutputFormat,
}

/// What `-o json|yaml` prints.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Output<'a> {
    #[serde(flatten)]
    platform: &'a PlatformReport,
    /// The mapping table applied to bundles' platform needs.
    profile: &'a str,
}

/// Runs `platform`.
pub fn run(args: Args, _no_progress: bool) -> Result<(), CommandError> {
    let report = runtime()?.block_on(async {
        let cluster = args.cluster.connect().await?;
        Ok::<_, CommandError>(detect(cluster.client()).await)
    })?;
    let table = profile(&report.provider);
    if args.output.is_machine() {
        return Ok(airlift_cli::print_as(
            args.output,
            &Output {
                platform: &report,
                profile: &table.title,
            },
        )?);
    }
    outln!(
        "provider:   {} (mapping table: {})",
        e(&report.provider),
        e(&table.title)
    )?;
    for why in &report.provider_evidence {
        outln!("            - {}", e(why))?;
    }
    if let Some(v) = &report.kubernetes {
        outln!("kubernetes: {}", e(v))?;
    }
    match &report.region {
        Some(r) => outln!(
            "region:     {} (zones: {})",
            e(r),
            e(&report.zones.join(", "))
        )?,
        None => {
            outln!("region:     unknown (no topology.kubernetes.io/region label on the nodes)")?
        }
    }
    for why in &report.location_evidence {
        outln!("            - {}", e(why))?;
    }
    match &report.default_storage_class {
        Some(d) => outln!("default storage class: {}", e(d))?,
        None => outln!(
            "default storage class: none (bundles that need ReadWriteOnce storage fail preflight \
             until a class is marked default or named with --set platform.storage.ROLE.className)"
        )?,
    }
    for sc in &report.storage_classes {
        outln!(
            "  storage class {:<32} {}{}",
            e(&sc.name),
            e(&sc.provisioner),
            if sc.is_default { " (default)" } else { "" }
        )?;
    }
    if report.ingress_classes.is_empty() {
        outln!("ingress classes: none")?;
    }
    for ic in &report.ingress_classes {
        outln!(
            "  ingress class {:<32} {}{}",
            e(&ic.name),
            e(&ic.controller),
            if ic.is_default { " (default)" } else { "" }
        )?;
    }
    for u in &report.unreadable {
        eprintln!("warning: {}", e(u));
    }
    Ok(())
}
