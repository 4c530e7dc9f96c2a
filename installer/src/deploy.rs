//! What `install`, `upgrade` and `plan` share: the flags, and the way from a verified bundle to
//! a deploy request (configuration, relocation, rendering).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use airlift_bundle::Progress;
use airlift_bundle::{Bundle, Digest};
use airlift_cli::{progress_for, CommandError, ExitKind, OutputFormat, RegistryFlags};
use airlift_cluster::lifecycle::{DeployRequest, Engine};
use airlift_cluster::release::{BundleInfo, ReleaseStatus};
use airlift_cluster::{generated, Cluster};
use airlift_registry::mapping::Destination;
use airlift_registry::{Credentials, RegistryOptions};
use airlift_render::{Config, ReleaseInfo, Secret};

use crate::cluster_args::{lifecycle_error, ClusterArgs, WaitArgs};
use crate::commands::verify::{open_verified, TrustArgs};
use crate::configure::{resolve, ConfigArgs};
use crate::relocation::{planned_relocation, TargetArgs};
use crate::rendering::{managed, render_bundle, ComponentArgs, PullCredentials};

/// The flags of every command that deploys a bundle.
#[derive(Debug, clap::Args)]
pub struct DeployArgs {
    /// The bundle file.
    pub bundle: PathBuf,
    /// Key flags.
    #[command(flatten)]
    pub trust: TrustArgs,
    /// The customer registry.
    #[command(flatten)]
    pub target: TargetArgs,
    /// Registry access.
    #[command(flatten)]
    pub registry: RegistryFlags,
    /// The cluster.
    #[command(flatten)]
    pub cluster: ClusterArgs,
    /// The release name [default: the bundle's name].
    #[arg(long, value_name = "NAME")]
    pub release: Option<String>,
    /// Configuration.
    #[command(flatten)]
    pub config: ConfigArgs,
    /// Optional components.
    #[command(flatten)]
    pub components: ComponentArgs,
    /// Readiness.
    #[command(flatten)]
    pub wait: WaitArgs,
    /// Output format.
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    pub output: OutputFormat,
}

impl DeployArgs {
    /// Verifies the bundle (before anything else happens) and sets up progress: bars on a
    /// terminal, nothing with `--no-progress` or `--output json`.
    pub fn open(
        &self,
        no_progress: bool,
    ) -> Result<(Arc<Bundle>, Arc<dyn Progress>), CommandError> {
        let trust = self.trust.trust()?;
        let quiet = no_progress || self.output == OutputFormat::Json;
        let (bundle, _) = open_verified(&self.bundle, &trust, quiet, false)?;
        Ok((Arc::new(bundle), Arc::from(progress_for(quiet))))
    }
}

/// A bundle ready to deploy.
pub struct Prepared {
    /// The verified bundle.
    pub bundle: Arc<Bundle>,
    /// The destination registry.
    pub destination: Destination,
    /// How to reach it.
    pub registry: RegistryOptions,
    /// The resolved configuration.
    pub config: Config,
    /// Original reference -> relocated reference by digest.
    pub relocation: BTreeMap<String, String>,
    /// What to hand the cluster engine.
    pub request: DeployRequest,
}

/// Which revision number templates see: the running one for a re-install, else the next.
pub enum Intent {
    /// A first install or a re-install of the same bundle.
    Install,
    /// An upgrade or a plan for one.
    Upgrade,
}

/// Resolves configuration (keeping generated secrets), relocation and rendering. Reads the
/// cluster; changes nothing.
pub async fn prepare(
    args: &DeployArgs,
    bundle: Arc<Bundle>,
    cluster: &Cluster,
    progress: &dyn airlift_bundle::Progress,
    intent: Intent,
) -> Result<Prepared, CommandError> {
    let m = bundle.manifest();
    let release = args
        .release
        .clone()
        .unwrap_or_else(|| m.metadata.name.clone());
    let namespace = args.cluster.namespace_name(&m.metadata.name);
    let history = Engine::new(cluster, progress)
        .status(&namespace, &release)
        .await
        .map_err(lifecycle_error)?;
    let last = history.last().map_or(0, |r| r.revision);
    let deployed = history
        .iter()
        .rev()
        .find(|r| r.status == ReleaseStatus::Deployed);
    let revision = match (intent, deployed) {
        (Intent::Install, Some(d)) => d.revision,
        _ => last + 1,
    };
    let previous: BTreeMap<String, Secret> = generated::load(cluster, &namespace, &release)
        .await
        .map_err(|e| {
            let hint = e.hint();
            CommandError::new(ExitKind::Cluster, e).with_hint(hint)
        })?
        .into_iter()
        .map(|(k, v)| (k, Secret::new(v)))
        .collect();
    let config = resolve(&m.config, &args.config, &previous)?;

    let destination = args.target.destination()?;
    let registry = args.target.registry_options(&args.registry, &destination)?;
    let pull = match registry.credentials.get(&destination.registry) {
        Some(Credentials::Basic { username, password }) => Some(PullCredentials {
            registry: destination.registry.clone(),
            username: username.clone(),
            password: password.clone(),
        }),
        _ => None,
    };
    let relocation = planned_relocation(m, &destination)?;
    let components = args.components.select(&m.components)?;
    let info = ReleaseInfo {
        name: release.clone(),
        namespace: namespace.clone(),
        revision: u64::from(revision),
    };
    let rendered = render_bundle(
        &bundle,
        &components,
        &config,
        &relocation,
        pull.as_ref(),
        &info,
    )?;
    let request = DeployRequest {
        release,
        namespace,
        bundle: BundleInfo {
            name: m.metadata.name.clone(),
            version: m.metadata.version.clone(),
            digest: Digest::of_bytes(bundle.manifest_bytes()).to_string(),
        },
        config: config.redacted(),
        saas_defaults: m
            .config
            .groups
            .iter()
            .flat_map(|g| {
                g.items.iter().filter_map(move |i| {
                    i.default
                        .clone()
                        .map(|d| (format!("{}.{}", g.name, i.name), d))
                })
            })
            .collect(),
        objects: managed(&rendered)?,
    };
    Ok(Prepared {
        bundle,
        destination,
        registry,
        config,
        relocation,
        request,
    })
}

/// Stores the generated secrets before anything uses them, so an interrupted install that is
/// run again keeps the same values.
pub async fn keep_generated(cluster: &Cluster, prepared: &Prepared) -> Result<(), CommandError> {
    let values: BTreeMap<String, String> = prepared
        .config
        .generated_secrets()
        .into_iter()
        .map(|(k, v)| (k, v.expose().to_string()))
        .collect();
    if values.is_empty() {
        return Ok(());
    }
    generated::store(
        cluster,
        &prepared.request.namespace,
        &prepared.request.release,
        &values,
    )
    .await
    .map_err(|e| {
        let hint = e.hint();
        CommandError::new(ExitKind::Cluster, e).with_hint(hint)
    })
}

/// Checks that the push put every image where rendering assumed it would be.
pub fn check_relocation(
    planned: &BTreeMap<String, String>,
    pushed: &airlift_registry::mapping::RelocationMap,
) -> Result<(), CommandError> {
    for (reference, target) in planned {
        let got = pushed.images.get(reference).map(|r| r.reference.as_str());
        if got != Some(target.as_str()) {
            return Err(CommandError::new(
                ExitKind::Failure,
                anyhow::anyhow!(
                    "image `{reference}` was pushed to `{}`, but the manifests were rendered for `{target}`",
                    got.unwrap_or("nowhere")
                ),
            )
            .with_hint("this is a bug in Airlift: report it with the bundle's `inspect` output"));
        }
    }
    Ok(())
}
