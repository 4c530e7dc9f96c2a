//! `airlift-install install BUNDLE`: verify, configure, render, preflight, push, apply, wait,
//! record. Running it again after an interruption converges to the same state.

use airlift_cli::outln;
use std::sync::Arc;

use airlift_bundle::Progress;
use airlift_cli::output::{human_bytes, print_json};
use airlift_cli::{CommandError, ExitKind, OutputFormat};
use airlift_cluster::lifecycle::Engine;
use airlift_cluster::preflight::{preflight, PreflightInput};
use airlift_cluster::Cluster;

use crate::cluster_args::{lifecycle_error, runtime};
use crate::deploy::{check_relocation, keep_generated, prepare, DeployArgs, Intent, Prepared};
use crate::pushing;

/// Arguments of `install`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// What to install and where.
    #[command(flatten)]
    pub deploy: DeployArgs,
}

/// Runs cluster preflight for `prepared`; every failure is reported at once.
pub async fn cluster_preflight(
    engine: &Engine<'_>,
    prepared: &Prepared,
) -> Result<(), CommandError> {
    preflight(
        engine.resolver(),
        &PreflightInput {
            requirements: &prepared.bundle.manifest().requirements,
            objects: &prepared.request.objects,
            namespace: &prepared.request.namespace,
        },
    )
    .await
    .map(|_| ())
    .map_err(|e| {
        let hint = e.hint();
        CommandError::new(ExitKind::Preflight, e).with_hint(hint)
    })
}

/// Registry preflight and push; returns the push report after checking the relocation.
pub async fn push_phase(
    prepared: &Prepared,
    concurrency: usize,
    progress: Arc<dyn Progress>,
) -> Result<airlift_registry::push::PushReport, CommandError> {
    let client = pushing::client(&prepared.destination, &prepared.registry)?;
    pushing::preflight(&client, prepared.bundle.manifest(), &prepared.destination).await?;
    let report = pushing::push_bundle(
        &client,
        prepared.bundle.clone(),
        &prepared.destination,
        concurrency,
        progress,
    )
    .await?;
    check_relocation(&prepared.relocation, &report.relocation_map)?;
    Ok(report)
}

/// Runs `install`.
pub fn run(args: Args, no_progress: bool) -> Result<(), CommandError> {
    let a = &args.deploy;
    let (bundle, progress) = a.open(no_progress)?;
    let rt = runtime()?;
    let (prepared, push, outcome, target) = rt.block_on(async {
        let cluster: Cluster = a.cluster.connect().await?;
        let prepared = prepare(a, bundle, &cluster, progress.as_ref(), Intent::Install).await?;
        // Secret values rendered into any object are kept out of the release records.
        let engine = Engine::new(&cluster, progress.as_ref()).redacting(&prepared.config);
        cluster_preflight(&engine, &prepared).await?;
        let push = push_phase(
            &prepared,
            usize::from(a.registry.concurrency),
            progress.clone(),
        )
        .await?;
        keep_generated(&cluster, &prepared).await?;
        let outcome = engine
            .install(&prepared.request, &a.wait.deploy_options())
            .await
            .map_err(lifecycle_error)?;
        Ok::<_, CommandError>((prepared, push, outcome, cluster.target().clone()))
    })?;
    let m = prepared.bundle.manifest();
    match a.output {
        OutputFormat::Json => print_json(&serde_json::json!({
            "release": prepared.request.release,
            "namespace": prepared.request.namespace,
            "bundle": {"name": m.metadata.name, "version": m.metadata.version},
            "revision": outcome.revision,
            "recorded": outcome.recorded,
            "objects": prepared.request.objects.len(),
            "cluster": {"context": target.context, "server": target.server},
            "push": push,
        }))?,
        OutputFormat::Text => {
            outln!(
                "Installed {} {} as release {} (revision {}) in namespace {} on {}",
                m.metadata.name,
                m.metadata.version,
                prepared.request.release,
                outcome.revision,
                prepared.request.namespace,
                target
            )?;
            outln!(
                "  images: {} pushed, {} already in {} ({} mounted)",
                human_bytes(push.bytes_pushed),
                human_bytes(push.bytes_skipped),
                push.registry,
                human_bytes(push.bytes_mounted)
            )?;
            outln!(
                "  objects: {} applied{}",
                prepared.request.objects.len(),
                if outcome.recorded {
                    ""
                } else {
                    " (no change: nothing new recorded)"
                }
            )?;
            for (from, to) in &prepared.relocation {
                outln!("  {from} -> {to}")?;
            }
        }
    }
    Ok(())
}
