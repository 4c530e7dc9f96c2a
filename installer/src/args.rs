//! The flags shared by several commands, and their conversion into the library's requests.

use std::path::PathBuf;
use std::time::Duration;

use std::sync::Arc;

use airlift_bundle::{Bundle, Progress, Trust};
use airlift_cli::{progress_for, CommandError, ExitKind, OutputFormat, RegistryFlags};
use airlift_cluster::lifecycle::DeployOptions;
use airlift_cluster::readiness::WaitOptions;
use airlift_cluster::{Cluster, ConnectOptions};
use airlift_deploy::{open_verified, SiteRequest};
use airlift_registry::mapping::Destination;

/// The trust flags shared by every command that reads a bundle.
#[derive(Debug, Clone, clap::Args)]
pub struct TrustArgs {
    /// The vendor's public key (SPKI PEM); the bundle's signature must verify with it.
    #[arg(long, value_name = "FILE")]
    pub key: Option<PathBuf>,
    /// Accept a bundle without checking its signature (digests are still checked). Not
    /// recommended: nothing then proves who built the bundle.
    #[arg(long, conflicts_with = "key")]
    pub insecure_skip_verify: bool,
}

impl TrustArgs {
    /// The trust policy these flags ask for.
    pub fn trust(&self) -> Result<Trust, CommandError> {
        Trust::from_flags(self.key.as_deref(), self.insecure_skip_verify).map_err(|e| {
            let hint = e.hint();
            CommandError::new(
                ExitKind::Usage,
                anyhow::Error::new(e).context("cannot load the vendor key"),
            )
            .with_hint(hint)
        })
    }
}

/// Where the cluster is.
#[derive(Debug, Clone, clap::Args)]
pub struct ClusterArgs {
    /// The kubeconfig file [default: $KUBECONFIG, then ~/.kube/config].
    #[arg(long, value_name = "FILE")]
    pub kubeconfig: Option<PathBuf>,
    /// The kubeconfig context [default: its current context].
    #[arg(long, value_name = "NAME")]
    pub context: Option<String>,
}

impl ClusterArgs {
    /// Connects, naming the context and server in any error.
    pub async fn connect(&self) -> Result<Cluster, CommandError> {
        Cluster::connect(&ConnectOptions {
            kubeconfig: self.kubeconfig.clone(),
            context: self.context.clone(),
        })
        .await
        .map_err(|e| CommandError::diagnosed(airlift_deploy::DeployError::from(e)))
    }
}

/// A release that exists: its name and namespace.
#[derive(Debug, Clone, clap::Args)]
pub struct ReleaseArgs {
    /// The release name.
    pub release: String,
    /// The release namespace [default: the release name].
    #[arg(long, short = 'n', value_name = "NAMESPACE")]
    pub namespace: Option<String>,
    /// The cluster.
    #[command(flatten)]
    pub cluster: ClusterArgs,
}

impl ReleaseArgs {
    /// The namespace: `-n`, else the release name.
    pub fn namespace(&self) -> String {
        self.namespace
            .clone()
            .unwrap_or_else(|| self.release.clone())
    }
}

/// How long to wait for readiness.
#[derive(Debug, Clone, clap::Args)]
pub struct WaitArgs {
    /// How long to wait for workloads to become ready: `300`, `90s`, `5m`, `1h30m`.
    #[arg(long, value_name = "DURATION", default_value = "5m", value_parser = parse_duration)]
    pub timeout: Duration,
}

impl WaitArgs {
    /// Deploy options with this timeout.
    pub fn deploy_options(&self) -> DeployOptions {
        DeployOptions {
            wait: WaitOptions {
                timeout: self.timeout,
                ..WaitOptions::default()
            },
            ..DeployOptions::default()
        }
    }
}

/// Parses `300` (seconds), `90s`, `5m`, `2h`, `1h30m`, `1m30s`, as kubectl and helm take them.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    airlift_fleet::duration::FleetDuration::parse(text).map(|d| d.0)
}

#[cfg(test)]
mod tests {
    use super::parse_duration;
    use std::time::Duration;

    #[test]
    fn durations_read_like_kubectls() {
        for (text, secs) in [
            ("300", 300),
            ("90s", 90),
            ("5m", 300),
            ("1h30m", 5400),
            ("1m30s", 90),
        ] {
            assert_eq!(
                parse_duration(text),
                Ok(Duration::from_secs(secs)),
                "{text}"
            );
        }
        for bad in ["", "5x", "m", "1.5m", "5m3"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }
}

/// The customer registry.
#[derive(Debug, Clone, clap::Args)]
pub struct TargetArgs {
    /// The customer registry: `HOST[:PORT][/PREFIX]`. Images go to `HOST/PREFIX/<original
    /// path>` [default for upgrade and plan: the one the release remembers].
    #[arg(long, value_name = "HOST[:PORT][/PREFIX]")]
    pub registry: Option<String>,
    /// Map every repository to one path segment, for registries without nested paths.
    #[arg(long)]
    pub flatten: bool,
}

impl TargetArgs {
    /// The parsed destination, which `push` and `render` need.
    pub fn destination(&self) -> Result<Destination, CommandError> {
        let text = self.registry.as_deref().ok_or_else(|| {
            CommandError::new(ExitKind::Usage, anyhow::anyhow!("--registry is required"))
                .with_hint("write --registry HOST[:PORT][/PREFIX], e.g. registry.corp:5000/vendor")
        })?;
        Destination::parse(text, self.flatten).map_err(|e| {
            CommandError::new(ExitKind::Usage, e)
                .with_hint("write --registry HOST[:PORT][/PREFIX], e.g. registry.corp:5000/vendor")
        })
    }

    /// The registry options of `flags`, credentials applied to the registry host (plain HTTP
    /// only for hosts named with `--insecure-registry`).
    pub fn registry_options(
        &self,
        flags: &RegistryFlags,
    ) -> Result<airlift_registry::RegistryOptions, CommandError> {
        let host = self
            .registry
            .as_deref()
            .map(|r| r.split('/').next().unwrap_or(r).to_string());
        flags
            .options(host.as_deref())
            .map_err(|e| CommandError::new(ExitKind::Usage, e))
    }
}

/// The configuration flags shared by every command that renders.
#[derive(Debug, Clone, clap::Args)]
pub struct ConfigArgs {
    /// A values file (YAML, `group: {item: value}`), over the SaaS defaults. Repeatable; later
    /// files win.
    #[arg(long = "values", short = 'f', value_name = "FILE")]
    pub values: Vec<PathBuf>,
    /// One value, `group.item=value`, over the values files. Repeatable.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
    /// Never prompt or ask for confirmation: fail listing every required value that is missing.
    #[arg(long, short = 'y')]
    pub yes: bool,
}

/// Which optional components to install.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ComponentArgs {
    /// Install this optional component even if it is off by default. Repeatable.
    #[arg(long = "enable", value_name = "COMPONENT")]
    pub enable: Vec<String>,
    /// Leave out this optional component. Repeatable.
    #[arg(long = "disable", value_name = "COMPONENT")]
    pub disable: Vec<String>,
}

/// A verified bundle, the progress to report to, and the library request.
pub type Opened = (Arc<Bundle>, Arc<dyn Progress>, SiteRequest);

/// The flags of every command that deploys a bundle.
#[derive(Debug, clap::Args)]
pub struct DeployArgs {
    /// The bundle file, or a published bundle: `oci://HOST[:PORT]/REPOSITORY:TAG`.
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
    /// The release namespace: holds the release records and namespaced objects that name none
    /// [default: the release name].
    #[arg(long, short = 'n', value_name = "NAMESPACE")]
    pub namespace: Option<String>,
    /// Configuration.
    #[command(flatten)]
    pub config: ConfigArgs,
    /// Forget the values this release remembers from earlier deploys; start from the new SaaS
    /// defaults and the values given now.
    #[arg(long)]
    pub reset_values: bool,
    /// Optional components.
    #[command(flatten)]
    pub components: ComponentArgs,
    /// Take over objects that exist and belong to no release or to another one.
    #[arg(long)]
    pub adopt: bool,
    /// Take the release lock even if another operation holds it (only when that one is gone).
    #[arg(long)]
    pub force_unlock: bool,
    /// Run everything up to and including preflight (cluster, registry, ownership), print the
    /// plan, and change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// The license file from the vendor [default: the license the release stores].
    #[arg(long, value_name = "FILE")]
    pub license: Option<PathBuf>,
    /// Readiness.
    #[command(flatten)]
    pub wait: WaitArgs,
    /// Output format.
    #[arg(long, short = 'o', value_enum, default_value_t = OutputFormat::Text)]
    pub output: OutputFormat,
}

impl DeployArgs {
    /// Verifies the bundle (before anything else happens), and sets up progress (bars on a
    /// terminal, nothing with `--no-progress` or `--output json`) and the library request. A
    /// published bundle (`oci://…`) is opened in place on `rt` (the runtime that then runs the
    /// deploy): its members are fetched and checked, its blobs stay in its registry.
    pub fn open(
        &self,
        rt: &tokio::runtime::Runtime,
        no_progress: bool,
    ) -> Result<Opened, CommandError> {
        let trust = self.trust.trust()?;
        let quiet = no_progress || self.output.is_machine();
        let progress: Arc<dyn Progress> = Arc::from(progress_for(quiet));
        let bundle = match self.bundle.to_str().filter(|s| s.starts_with("oci://")) {
            Some(oci) => {
                let oci = crate::commands::pull::parse_reference(oci)?;
                let options = self.target.registry_options(&self.registry)?;
                rt.block_on(airlift_deploy::open_oci(
                    &oci,
                    &trust,
                    &options,
                    progress.as_ref(),
                ))
                .map_err(CommandError::diagnosed)?
            }
            None => {
                open_verified(&self.bundle, &trust, progress.as_ref(), false)
                    .map_err(CommandError::diagnosed)?
                    .0
            }
        };
        let mut site = self.site()?;
        if let Trust::Key(key) = &trust {
            site.vendor_key = Some(key.clone());
        }
        Ok((Arc::new(bundle), progress, site))
    }

    /// The library request these flags make.
    pub fn site(&self) -> Result<SiteRequest, CommandError> {
        Ok(SiteRequest {
            release: self.release.clone(),
            namespace: self.namespace.clone(),
            values_files: self.config.values.clone(),
            set: self.config.set.clone(),
            enable: self.components.enable.clone(),
            disable: self.components.disable.clone(),
            registry: self.target.registry.clone(),
            flatten: self.target.flatten,
            registry_options: self.target.registry_options(&self.registry)?,
            reset_values: self.reset_values,
            license: self.license.clone(),
            vendor_key: None,
        })
    }

    /// Deploy options: timeout and adoption.
    pub fn options(&self) -> DeployOptions {
        DeployOptions {
            adopt: self.adopt,
            ..self.wait.deploy_options()
        }
    }
}

/// A runtime for the async engines.
pub fn runtime() -> Result<tokio::runtime::Runtime, CommandError> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| {
            CommandError::new(
                ExitKind::Failure,
                anyhow::Error::new(e).context("cannot start the async runtime"),
            )
        })
}
