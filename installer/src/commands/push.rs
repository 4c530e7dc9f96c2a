//! `airlift-install push BUNDLE --registry HOST[:PORT][/PREFIX]`: check the bundle's signature,
//! check the registry (preflight), then relocate every image into it straight from the bundle
//! file, hashing each blob as it streams, and write the relocation map. Interrupted or failed, it can be run again: it resumes, sending
//! only what the registry does not hold.

use airlift_cli::outln;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use airlift_bundle::Progress;
use airlift_cli::output::human_bytes;
use airlift_cli::{progress_for, CommandError, ExitKind, OutputFormat, RegistryFlags};
use airlift_registry::mapping::RelocationMap;
use airlift_registry::push::PushReport;

use airlift_deploy::registry::{client, preflight, push_bundle_as};
use airlift_deploy::render::planned_relocation;

use crate::args::{runtime, TargetArgs, TrustArgs};

/// Arguments of `push`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The bundle file.
    pub bundle: PathBuf,
    /// Key flags.
    #[command(flatten)]
    pub trust: TrustArgs,
    /// Where the images go.
    #[command(flatten)]
    pub target: TargetArgs,
    /// Registry access.
    #[command(flatten)]
    pub registry: RegistryFlags,
    /// Hash every blob sent even if this exact file was verified before.
    #[arg(long)]
    pub no_cache: bool,
    /// Also write the relocation map (original reference -> relocated reference@digest) here, as
    /// JSON, for the deploy step.
    #[arg(long, value_name = "FILE")]
    pub relocation_map: Option<PathBuf>,
    /// Output format.
    #[arg(long, short = 'o', value_enum, default_value_t = OutputFormat::Text)]
    pub output: OutputFormat,
}

#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct Output<'a> {
    bundle: String,
    name: &'a str,
    version: &'a str,
    #[serde(flatten)]
    report: &'a PushReport,
    seconds: f64,
}

/// Writes the map next to its final place, then renames it in, so a reader never sees half.
fn write_map(path: &Path, map: &RelocationMap) -> Result<(), CommandError> {
    let fail = |e: anyhow::Error| {
        CommandError::new(
            ExitKind::Failure,
            e.context(format!(
                "cannot write the relocation map to `{}`",
                path.display()
            )),
        )
        .with_hint("check that the folder exists and is writable; the push itself is complete")
    };
    let text = serde_json::to_vec_pretty(map).map_err(|e| fail(e.into()))?;
    let mut tmp_name = path.as_os_str().to_owned();
    tmp_name.push(".tmp");
    let tmp = PathBuf::from(tmp_name);
    fs_err::write(&tmp, &text).map_err(|e| fail(e.into()))?;
    fs_err::rename(&tmp, path).map_err(|e| fail(e.into()))?;
    Ok(())
}

/// Runs `push`.
pub fn run(args: Args, no_progress: bool) -> Result<(), CommandError> {
    let started = Instant::now();
    let trust = args.trust.trust()?;
    let destination = args.target.destination()?;
    let opts = args.target.registry_options(&args.registry)?;
    let diag = CommandError::diagnosed;

    // Trust first: the signature before anything reaches the registry; then each blob is hashed
    // while it streams (unless a recorded proof covers this exact file), and a blob that does
    // not match is never committed, nor anything above it.
    let progress: Arc<dyn Progress> = Arc::from(progress_for(no_progress));
    let (bundle, blob_trust) =
        airlift_deploy::open_for_push(&args.bundle, &trust, progress.as_ref(), args.no_cache)
            .map_err(diag)?;
    let bundle = Arc::new(bundle);
    let planned = planned_relocation(bundle.manifest(), &destination).map_err(diag)?;
    let rt = runtime()?;
    let report = rt.block_on(async {
        let client = client(&destination, &opts).map_err(diag)?;
        let work = async {
            if let Some(failure) = preflight(&client, bundle.manifest(), &destination)
                .await
                .map_err(diag)?
            {
                return Err(diag(airlift_deploy::DeployError::Preflight(vec![failure])));
            }
            push_bundle_as(
                &client,
                bundle.clone(),
                &destination,
                &planned,
                opts.concurrency,
                blob_trust,
                progress.clone(),
            )
            .await
            .map_err(diag)
        };
        tokio::select! {
            r = work => r,
            _ = tokio::signal::ctrl_c() => Err(CommandError::new(
                ExitKind::Interrupted,
                anyhow::anyhow!("push to `{}` interrupted", destination.registry),
            )
            .with_hint("run the same command again: it resumes and sends only what is missing")),
        }
    })?;

    if let Some(path) = &args.relocation_map {
        write_map(path, &report.relocation_map)?;
    }
    let seconds = started.elapsed().as_secs_f64();
    let meta = &bundle.manifest().metadata;
    match args.output {
        f @ (OutputFormat::Json | OutputFormat::Yaml) => airlift_cli::print_as(
            f,
            &Output {
                bundle: args.bundle.display().to_string(),
                name: &meta.name,
                version: &meta.version,
                report: &report,
                seconds,
            },
        )
        .map_err(|e| CommandError::new(ExitKind::Failure, e))?,
        OutputFormat::Text => {
            let present = report.images.iter().filter(|i| i.already_present).count();
            outln!(
                "pushed {} {} to {}: {} sent, {} already there, {} mounted ({} of {} images were \
                 complete already) in {seconds:.1}s",
                meta.name,
                meta.version,
                report.registry,
                human_bytes(report.bytes_pushed),
                human_bytes(report.bytes_skipped),
                human_bytes(report.bytes_mounted),
                present,
                report.images.len(),
            )?;
            for (from, to) in &report.relocation_map.images {
                outln!("  {from} -> {}", to.reference)?;
            }
            if let Some(path) = &args.relocation_map {
                outln!("relocation map written to {}", path.display())?;
            }
        }
    }
    Ok(())
}
