//! `airlift-pack publish BUNDLE oci://HOST/REPO[:TAG]`: verifies the bundle, pushes its images
//! under `HOST/REPO/…`, then the bundle itself as an OCI artifact tagged last (the tag defaults
//! to the bundle's version). Resumable: a second run sends only what is missing; a tag that
//! already holds another bundle is refused.

use std::path::PathBuf;
use std::sync::Arc;

use airlift_bundle::{escape, Progress, Trust};
use airlift_cli::output::human_bytes;
use airlift_cli::{outln, progress_for, CommandError, ExitKind, OutputFormat, RegistryFlags};
use airlift_deploy::publish::publish;
use airlift_registry::artifact::OciReference;
use anyhow::Context;

/// Arguments of `publish`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The bundle file.
    pub bundle: PathBuf,
    /// Where to publish: `oci://HOST[:PORT]/REPOSITORY[:TAG]` [default tag: the bundle's version].
    pub target: String,
    /// The vendor's public key: the bundle must verify with it before anything is sent.
    #[arg(long, value_name = "FILE")]
    pub key: PathBuf,
    /// Map every image repository to one path segment under REPOSITORY, for registries (many
    /// marketplaces) that allow no deeper names.
    #[arg(long)]
    pub flatten: bool,
    /// Registry access.
    #[command(flatten)]
    pub registry: RegistryFlags,
    /// Output format.
    #[arg(long, short = 'o', value_enum, default_value_t = OutputFormat::Text)]
    pub output: OutputFormat,
}

/// Runs `publish`.
pub fn run(args: Args, no_progress: bool) -> Result<(), CommandError> {
    let oci = OciReference::parse(&args.target)
        .map_err(|e| CommandError::diagnosed(airlift_deploy::DeployError::from(e)))?;
    let trust = Trust::from_flags(Some(&args.key), false).map_err(|e| {
        let hint = e.hint();
        CommandError::new(
            ExitKind::Usage,
            anyhow::Error::new(e).context("cannot load the vendor key"),
        )
        .with_hint(hint)
    })?;
    let options = args
        .registry
        .options(Some(&oci.registry))
        .map_err(|e| CommandError::new(ExitKind::Usage, e))?;
    let quiet = no_progress || args.output.is_machine();
    let progress: Arc<dyn Progress> = Arc::from(progress_for(quiet));
    let (bundle, verified) =
        airlift_deploy::open_verified(&args.bundle, &trust, progress.as_ref(), false)
            .map_err(CommandError::diagnosed)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
        .map_err(|e| CommandError::new(ExitKind::Failure, e))?;
    let bundle = Arc::new(bundle);
    let report = runtime
        .block_on(publish(
            bundle.clone(),
            &verified.sha256,
            &oci,
            args.flatten,
            &options,
            progress,
        ))
        .map_err(CommandError::diagnosed)?;
    let m = bundle.manifest();
    match args.output {
        f @ (OutputFormat::Json | OutputFormat::Yaml) => airlift_cli::print_as(
            f,
            &serde_json::json!({
                "name": m.metadata.name,
                "version": m.metadata.version,
                "channel": m.metadata.channel,
                "sha256": verified.sha256.to_string(),
                "publish": report,
            }),
        )?,
        OutputFormat::Text => {
            outln!(
                "Published {} {} (channel {}) as oci://{}{}",
                escape(&m.metadata.name),
                escape(&m.metadata.version),
                escape(&m.metadata.channel),
                report.reference,
                if report.artifact.tagged {
                    ""
                } else {
                    " (already published: nothing changed)"
                }
            )?;
            outln!("  bundle sha256: {}", verified.sha256.hex())?;
            outln!(
                "  images: {} pushed, {} already there; artifact: {} layers sent ({}), {} already there",
                human_bytes(report.images.bytes_pushed),
                human_bytes(report.images.bytes_skipped),
                report.artifact.blobs_pushed,
                human_bytes(report.artifact.bytes_pushed),
                report.artifact.blobs_present
            )?;
            for image in &report.images.images {
                outln!("  {} -> {}", escape(&image.reference), image.relocated)?;
            }
        }
    }
    Ok(())
}
