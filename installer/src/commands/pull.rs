//! `airlift-install pull oci://HOST/REPO:TAG --out FILE|DIR`: fetches a published bundle into one
//! file, byte-identical to the one the vendor published. The signature is checked and the
//! artifact's layer list matched against the signed manifest before anything large is
//! downloaded; every layer's digest is checked as it streams; then the file is verified like any
//! bundle (which records a proof, so a later `install FILE` does not hash it again).
//!
//! `install`, `upgrade` and `plan` take an `oci://` argument without pulling a file: see
//! `airlift_deploy::open_oci`.

use std::path::{Path, PathBuf};

use airlift_bundle::{escape, Bundle, Progress, Trust, VerifyReport};
use airlift_cli::output::human_bytes;
use airlift_cli::{outln, progress_for, CommandError, ExitKind, OutputFormat, RegistryFlags};
use airlift_deploy::DeployError;
use airlift_registry::artifact::OciReference;
use airlift_registry::RegistryOptions;

use crate::args::{runtime, TrustArgs};
use crate::bundle::describe_signature;

/// Arguments of `pull`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The published bundle: `oci://HOST[:PORT]/REPOSITORY:TAG`.
    pub reference: String,
    /// Where to write it: a file, or a folder (then `NAME-VERSION.airlift` inside it).
    #[arg(long, value_name = "FILE|DIR")]
    pub out: PathBuf,
    /// Key flags.
    #[command(flatten)]
    pub trust: TrustArgs,
    /// Registry access.
    #[command(flatten)]
    pub registry: RegistryFlags,
    /// Output format.
    #[arg(long, short = 'o', value_enum, default_value_t = OutputFormat::Text)]
    pub output: OutputFormat,
}

/// Parses an `oci://` argument, as a usage error when it does not parse.
pub fn parse_reference(text: &str) -> Result<OciReference, CommandError> {
    OciReference::parse(text).map_err(|e| CommandError::diagnosed(DeployError::from(e)))
}

/// Pulls `oci` to `out` (a file or a folder) and verifies the file under `trust`.
pub fn pull_verified(
    oci: &OciReference,
    trust: &Trust,
    options: &RegistryOptions,
    out: &Path,
    progress: &dyn Progress,
) -> Result<(Bundle, VerifyReport, u64), CommandError> {
    let rt = runtime()?;
    let (_, pulled) = rt
        .block_on(airlift_deploy::publish::pull(
            oci, trust, options, out, progress,
        ))
        .map_err(CommandError::diagnosed)?;
    let (bundle, report) = airlift_deploy::open_verified(&pulled.path, trust, progress, false)
        .map_err(CommandError::diagnosed)?;
    Ok((bundle, report, pulled.bytes))
}

/// Runs `pull`.
pub fn run(args: Args, no_progress: bool) -> Result<(), CommandError> {
    let oci = parse_reference(&args.reference)?;
    let trust = args.trust.trust()?;
    let options = args
        .registry
        .options(Some(&oci.registry))
        .map_err(|e| CommandError::new(ExitKind::Usage, e))?;
    let progress = progress_for(no_progress || args.output.is_machine());
    let (bundle, report, bytes) =
        pull_verified(&oci, &trust, &options, &args.out, progress.as_ref())?;
    let m = bundle.manifest();
    match args.output {
        f @ (OutputFormat::Json | OutputFormat::Yaml) => airlift_cli::print_as(
            f,
            &serde_json::json!({
                "bundle": bundle.path().display().to_string(),
                "name": m.metadata.name,
                "version": m.metadata.version,
                "channel": m.metadata.channel,
                "sha256": report.sha256.to_string(),
                "bytes": bytes,
            }),
        )?,
        OutputFormat::Text => {
            outln!(
                "Pulled {} {} (channel {}) to {}",
                escape(&m.metadata.name),
                escape(&m.metadata.version),
                escape(&m.metadata.channel),
                bundle.path().display()
            )?;
            outln!("  sha256:    {}", report.sha256.hex())?;
            outln!("  size:      {}", human_bytes(bytes))?;
            outln!("  signature: {}", describe_signature(&report.signature))?;
        }
    }
    Ok(())
}
