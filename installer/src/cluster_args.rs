//! The cluster flags shared by every command that talks to Kubernetes, and their conversions.

use std::path::PathBuf;
use std::time::Duration;

use airlift_cli::{CommandError, ExitKind};
use airlift_cluster::lifecycle::{DeployOptions, LifecycleError};
use airlift_cluster::readiness::WaitOptions;
use airlift_cluster::{Cluster, ConnectError, ConnectOptions};

/// Where the cluster is and which release to act on.
#[derive(Debug, Clone, clap::Args)]
pub struct ClusterArgs {
    /// The kubeconfig file [default: $KUBECONFIG, then ~/.kube/config].
    #[arg(long, value_name = "FILE")]
    pub kubeconfig: Option<PathBuf>,
    /// The kubeconfig context [default: its current context].
    #[arg(long, value_name = "NAME")]
    pub context: Option<String>,
    /// The release namespace: holds the release records and namespaced objects that name none
    /// [default: the bundle's name].
    #[arg(long, short = 'n', value_name = "NAMESPACE")]
    pub namespace: Option<String>,
}

impl ClusterArgs {
    /// The release namespace, defaulting to `default` (the bundle's or the release's name).
    pub fn namespace_name(&self, default: &str) -> String {
        self.namespace
            .clone()
            .unwrap_or_else(|| default.to_string())
    }

    /// Connects, naming the context and server in any error.
    pub async fn connect(&self) -> Result<Cluster, CommandError> {
        Cluster::connect(&ConnectOptions {
            kubeconfig: self.kubeconfig.clone(),
            context: self.context.clone(),
        })
        .await
        .map_err(connect_error)
    }
}

/// How long to wait for readiness.
#[derive(Debug, Clone, clap::Args)]
pub struct WaitArgs {
    /// How long to wait for workloads to become ready, in seconds.
    #[arg(long, value_name = "SECONDS", default_value_t = 300)]
    pub timeout: u64,
}

impl WaitArgs {
    /// Deploy options with this timeout.
    pub fn deploy_options(&self) -> DeployOptions {
        DeployOptions {
            wait: WaitOptions {
                timeout: Duration::from_secs(self.timeout),
                ..WaitOptions::default()
            },
            ..DeployOptions::default()
        }
    }
}

/// Classifies a connection failure.
pub fn connect_error(e: ConnectError) -> CommandError {
    let hint = e.hint();
    CommandError::new(ExitKind::Cluster, e).with_hint(hint)
}

/// Classifies a lifecycle failure: a rolled-back upgrade has its own exit code.
pub fn lifecycle_error(e: LifecycleError) -> CommandError {
    let hint = e.hint();
    let kind = if matches!(e, LifecycleError::RolledBack { .. }) {
        ExitKind::RolledBack
    } else {
        ExitKind::Cluster
    };
    CommandError::new(kind, e).with_hint(hint)
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
