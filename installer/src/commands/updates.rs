//! `airlift-install updates oci://HOST/REPO`: the versions published there that are newer than
//! the running release (or `--current`) on its channel (or the channel of `--license`), in
//! semver order. Every candidate's signature is checked; version and channel come from the
//! signed manifests only, and a license only after it verified with the vendor key.

use std::path::PathBuf;

use airlift_bundle::NoProgress;
use airlift_bundle::{escape, Trust};
use airlift_cli::{outln, CommandError, ExitKind, OutputFormat, RegistryFlags};
use airlift_deploy::license::LicenseCheckError;
use airlift_deploy::publish::updates;
use airlift_registry::artifact::{version_tag, OciReference};

use crate::args::{runtime, ClusterArgs, TrustArgs};
use crate::commands::pull::parse_reference;

/// Arguments of `updates`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The repository the vendor publishes to: `oci://HOST[:PORT]/REPOSITORY`.
    pub reference: String,
    /// The running release: its deployed version is the current one.
    #[arg(long, value_name = "NAME", required_unless_present = "current")]
    pub release: Option<String>,
    /// The release namespace [default: the release name].
    #[arg(long, short = 'n', value_name = "NAMESPACE")]
    pub namespace: Option<String>,
    /// The current version, instead of reading it from a release.
    #[arg(long, value_name = "VERSION", conflicts_with = "release")]
    pub current: Option<String>,
    /// The channel [default: the channel of --license, else of the current version as
    /// published there].
    #[arg(long, value_name = "CHANNEL")]
    pub channel: Option<String>,
    /// The license the vendor sent: its channel is the one listed (checked with --key first).
    #[arg(long, value_name = "FILE")]
    pub license: Option<PathBuf>,
    /// Key flags.
    #[command(flatten)]
    pub trust: TrustArgs,
    /// Registry access.
    #[command(flatten)]
    pub registry: RegistryFlags,
    /// The cluster (with --release).
    #[command(flatten)]
    pub cluster: ClusterArgs,
    /// Output format.
    #[arg(long, short = 'o', value_enum, default_value_t = OutputFormat::Text)]
    pub output: OutputFormat,
}

fn usage(message: String, hint: &str) -> CommandError {
    CommandError::new(ExitKind::Usage, anyhow::anyhow!(message)).with_hint(hint.to_string())
}

/// The id and channel of the license at `path`, after its signature verified with the vendor
/// key.
fn license_channel(
    path: &std::path::Path,
    trust: &Trust,
) -> Result<(String, String), CommandError> {
    let Trust::Key(key) = trust else {
        return Err(CommandError::diagnosed(LicenseCheckError::NoVendorKey));
    };
    let raw = airlift_deploy::license::read(path).map_err(CommandError::diagnosed)?;
    let license = airlift_bundle::license::verify(raw.as_bytes(), key).map_err(|source| {
        CommandError::diagnosed(LicenseCheckError::Signature {
            path: path.display().to_string(),
            source,
        })
    })?;
    Ok((license.id, license.channel))
}

/// Runs `updates`.
pub fn run(args: Args, _no_progress: bool) -> Result<(), CommandError> {
    let oci = parse_reference(&args.reference)?;
    let trust = args.trust.trust()?;
    let options = args
        .registry
        .options(Some(&oci.registry))
        .map_err(|e| CommandError::new(ExitKind::Usage, e))?;
    let licensed = match &args.license {
        Some(path) => Some(license_channel(path, &trust)?),
        None => None,
    };
    let wanted = match (&args.channel, &licensed) {
        (Some(c), Some((id, l))) if c != l => {
            return Err(usage(
                format!(
                    "--channel {} differs from the channel `{}` of license {}",
                    escape(c),
                    escape(l),
                    escape(id)
                ),
                "leave out --channel: the license names the channel you may install from",
            ))
        }
        (Some(c), _) => Some(c.clone()),
        (None, Some((_, l))) => Some(l.clone()),
        (None, None) => None,
    };
    let rt = runtime()?;
    let found = rt.block_on(async {
        let current = match (&args.current, &args.release) {
            (Some(v), _) => v.clone(),
            (None, Some(release)) => {
                let cluster = args.cluster.connect().await?;
                let ns = args.namespace.clone().unwrap_or_else(|| release.clone());
                let status = airlift_deploy::releases::status(&cluster, &NoProgress, &ns, release)
                    .await
                    .map_err(CommandError::diagnosed)?;
                let deployed = status.deployed.ok_or_else(|| {
                    usage(
                        format!("release `{release}` has no deployed revision"),
                        "pass --current VERSION",
                    )
                })?;
                deployed.bundle.version
            }
            (None, None) => return Err(usage("give --release or --current".into(), "")),
        };
        let version = semver::Version::parse(&current).map_err(|e| {
            usage(
                format!("`{}` is not a semver version: {e}", escape(&current)),
                "write e.g. --current 1.2.0",
            )
        })?;
        let channel = match &wanted {
            Some(c) => c.clone(),
            None => {
                let this = OciReference {
                    reference: Some(version_tag(&current)),
                    ..oci.clone()
                };
                let rt_client = airlift_registry::client::RegistryClient::new(&oci.registry, &options)
                    .map_err(|e| CommandError::diagnosed(airlift_deploy::DeployError::RegistryClient {
                        registry: oci.registry.clone(),
                        source: e,
                    }))?;
                let resolved = airlift_registry::artifact_pull::resolve(&rt_client, &this, &trust)
                    .await
                    .map_err(|e| {
                        CommandError::diagnosed(airlift_deploy::DeployError::from(e))
                            .with_hint("pass --channel CHANNEL when the running version is not published there")
                    })?;
                resolved.manifest.metadata.channel
            }
        };
        let found = updates(&oci, &channel, &version, &trust, &options)
            .await
            .map_err(CommandError::diagnosed)?;
        Ok::<_, CommandError>((current, channel, found))
    })?;
    let (current, channel, found) = found;
    match args.output {
        f @ (OutputFormat::Json | OutputFormat::Yaml) => airlift_cli::print_as(
            f,
            &serde_json::json!({
                "current": current,
                "channel": channel,
                "newer": found.newer,
                "skipped": found.skipped,
            }),
        )?,
        OutputFormat::Text => {
            if found.newer.is_empty() {
                outln!(
                    "No version newer than {} on channel {} in oci://{}/{}",
                    escape(&current),
                    escape(&channel),
                    oci.registry,
                    oci.repository
                )?;
            } else {
                outln!(
                    "Newer than {} on channel {} in oci://{}/{}:",
                    escape(&current),
                    escape(&channel),
                    oci.registry,
                    oci.repository
                )?;
            }
            for p in &found.newer {
                outln!(
                    "  {}  built {}  components: {}  (oci://{}/{}:{})",
                    escape(&p.version),
                    escape(&p.created),
                    escape(&p.components.join(", ")),
                    oci.registry,
                    oci.repository,
                    escape(&p.tag)
                )?;
            }
        }
    }
    Ok(())
}
