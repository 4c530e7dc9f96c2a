//! The deploy pipeline's errors: each says what kind of failure it is and how to fix it
//! ([`airlift_bundle::Diagnose`]).

use std::path::PathBuf;

use airlift_bundle::{Diagnose, ExitKind};

/// One failed preflight check, from the cluster, the registry or the release's own state.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PreflightFailure {
    /// What was checked: `cluster`, `registry`, `ownership`, `permissions`.
    pub area: &'static str,
    /// What is wrong.
    pub problem: String,
    /// How to fix it.
    pub fix: String,
}

/// Errors of the deploy pipeline.
#[derive(Debug, thiserror::Error)]
pub enum DeployError {
    /// The bundle could not be read or failed verification.
    #[error("{}", if .source.is_trust_failure() { format!("bundle `{}` failed verification", .path.display()) } else { format!("cannot read bundle `{}`", .path.display()) })]
    Bundle {
        /// The bundle file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: Box<airlift_bundle::BundleError>,
    },
    /// The vendor key could not be loaded.
    #[error("cannot load the vendor key")]
    Trust(#[source] airlift_bundle::TrustError),
    /// A manifest in the bundle is not text.
    #[error("manifest `{path}` in the bundle is not UTF-8 text")]
    NotText {
        /// The member.
        path: String,
    },
    /// The configuration is not usable.
    #[error("the configuration is not usable")]
    Config(#[source] airlift_render::ConfigError),
    /// The customer's platform overrides are not usable.
    #[error("the platform values are not usable")]
    Platform(#[source] airlift_render::platform::OverrideError),
    /// A component failed to render.
    #[error("cannot render component `{component}`")]
    Render {
        /// The component.
        component: String,
        /// The cause.
        #[source]
        source: airlift_render::RenderError,
    },
    /// Images could not be rewritten to the customer registry.
    #[error("cannot point the manifests at the customer registry")]
    Images(#[source] airlift_render::images::ImageError),
    /// A rendered object is not a Kubernetes object.
    #[error("a rendered object is not a Kubernetes object")]
    Object(#[source] airlift_cluster::object::ObjectError),
    /// `--enable`/`--disable` named a component wrongly.
    #[error("{0}")]
    Component(String),
    /// The registry destination is malformed or missing.
    #[error("{0}")]
    Destination(String),
    /// The repository mapping failed.
    #[error("cannot map the bundle's images to the customer registry")]
    Mapping(#[source] airlift_registry::push::PushError),
    /// The registry client could not be built.
    #[error("cannot set up the registry client for `{registry}`")]
    RegistryClient {
        /// The registry.
        registry: String,
        /// The cause.
        #[source]
        source: airlift_registry::client::ClientSetupError,
    },
    /// The push failed.
    #[error("failed to push the bundle's images")]
    Push(#[source] airlift_registry::push::PushError),
    /// Publishing, pulling or resolving a bundle artifact failed.
    #[error(transparent)]
    Artifact(#[from] airlift_registry::artifact::ArtifactError),
    /// The push did not put an image where rendering assumed.
    #[error(
        "image `{reference}` was pushed to `{got}`, but the manifests were rendered for `{want}`"
    )]
    Relocation {
        /// The original reference.
        reference: String,
        /// Where it went.
        got: String,
        /// Where rendering expected it.
        want: String,
    },
    /// One or more preflight checks failed; nothing was changed.
    #[error("preflight failed; nothing was changed:\n{}", failure_lines(.0))]
    Preflight(Vec<PreflightFailure>),
    /// A cluster operation failed.
    #[error(transparent)]
    Lifecycle(Box<airlift_cluster::lifecycle::LifecycleError>),
    /// The release lock.
    #[error(transparent)]
    Lock(#[from] airlift_cluster::lock::LockError),
    /// Connecting to the cluster failed.
    #[error(transparent)]
    Connect(#[from] airlift_cluster::ConnectError),
    /// Reading or writing kept values (generated or site secrets) failed.
    #[error(transparent)]
    Kept(#[from] airlift_cluster::generated::GeneratedError),
    /// Reading release records failed.
    #[error(transparent)]
    Records(#[from] airlift_cluster::release::ReleaseError),
    /// A live read of the cluster failed.
    #[error("failed to read {what} from the cluster")]
    Read {
        /// What was read.
        what: String,
        /// The cause.
        #[source]
        source: kube::Error,
    },
    /// The operator declined the confirmation.
    #[error("the operator declined; nothing was changed")]
    Declined,
    /// A prompt failed (e.g. the terminal went away).
    #[error("the prompt for `{key}` failed: {reason}")]
    Prompt {
        /// The key asked for.
        key: String,
        /// Why.
        reason: String,
    },
    /// The operator interrupted before any change.
    #[error("interrupted before any change; nothing was changed")]
    Interrupted,
    /// The license was refused; nothing was changed.
    #[error(transparent)]
    License(#[from] crate::license::LicenseCheckError),
}

impl From<airlift_cluster::lifecycle::LifecycleError> for DeployError {
    fn from(e: airlift_cluster::lifecycle::LifecycleError) -> Self {
        Self::Lifecycle(Box::new(e))
    }
}

impl DeployError {
    /// The cluster operation's error, when that is what failed.
    pub fn lifecycle(&self) -> Option<&airlift_cluster::lifecycle::LifecycleError> {
        match self {
            Self::Lifecycle(e) => Some(e),
            _ => None,
        }
    }
}

fn failure_lines(failures: &[PreflightFailure]) -> String {
    failures
        .iter()
        .map(|f| format!("  - [{}] {}", f.area, f.problem))
        .collect::<Vec<_>>()
        .join("\n")
}

/// A kubeconfig or context named on the command line (or by `KUBECONFIG`) that does not exist
/// is a wrong command line (exit 2); a cluster that cannot be used is the cluster's (exit 5).
fn connect_kind(e: &airlift_cluster::ConnectError) -> ExitKind {
    use airlift_cluster::ConnectError as C;
    match e {
        C::NoKubeconfig { .. }
        | C::Read { .. }
        | C::NoContext { .. }
        | C::UnknownContext { .. } => ExitKind::Usage,
        _ => ExitKind::Cluster,
    }
}

impl Diagnose for DeployError {
    fn exit_kind(&self) -> ExitKind {
        match self {
            Self::Bundle { source, .. } if source.is_missing_file() => ExitKind::Usage,
            Self::Bundle { source, .. } if source.is_trust_failure() => ExitKind::Trust,
            Self::Bundle { .. } | Self::Relocation { .. } | Self::NotText { .. } => {
                ExitKind::Failure
            }
            Self::Trust(_) | Self::Component(_) | Self::Destination(_) => ExitKind::Usage,
            Self::Config(e) => e.exit_kind(),
            // A template is a configuration problem; a render worker that failed by itself is not.
            Self::Render { source, .. } => source.exit_kind(),
            Self::Platform(_) | Self::Images(_) | Self::Object(_) | Self::Mapping(_) => {
                ExitKind::Config
            }
            Self::RegistryClient { .. } => ExitKind::Registry,
            Self::Push(e) => e.exit_kind(),
            Self::Artifact(e) => e.exit_kind(),
            // A report of registry problems only is the registry's failure (exit 4), as when
            // `push` meets it; anything else found before a change is a preflight failure.
            Self::Preflight(f) if !f.is_empty() && f.iter().all(|f| f.area == "registry") => {
                ExitKind::Registry
            }
            Self::Preflight(_) => ExitKind::Preflight,
            Self::Lifecycle(e) => e.exit_kind(),
            Self::Lock(e) => e.exit_kind(),
            Self::Connect(e) => connect_kind(e),
            Self::Kept(_) | Self::Records(_) | Self::Read { .. } => ExitKind::Cluster,
            Self::Declined | Self::Prompt { .. } | Self::Interrupted => ExitKind::Interrupted,
            Self::License(e) => e.exit_kind(),
        }
    }

    fn fix(&self) -> Option<String> {
        Some(match self {
            Self::Bundle { source, .. } => source.hint(),
            Self::Trust(e) => e.hint(),
            Self::NotText { .. } => "the bundle is malformed: ask the vendor for a new build".into(),
            Self::Config(e) => match e {
                airlift_render::ConfigError::Missing { .. } => {
                    "run interactively to be prompted, or pass a values file (-f) or --set KEY=VALUE"
                        .into()
                }
                airlift_render::ConfigError::Invalid { .. } => {
                    "fix each value named above; `airlift-install config BUNDLE` lists the items \
                     and their rules"
                        .into()
                }
                airlift_render::ConfigError::MalformedSet { .. } => {
                    "write --set group.item=value".into()
                }
                _ => "check the values files named above".into(),
            },
            Self::Platform(_) => {
                "fix the `platform:` values named above; `airlift-install platform` shows what \
                 the cluster offers and docs/platforms.md the keys"
                    .into()
            }
            // A template stopped at a bound, or a worker that failed, says what to do itself.
            Self::Render {
                source: airlift_render::RenderError::Template(t),
                ..
            } if t.limit.is_some() || t.source.is_worker_failure() => t.fix().unwrap_or_default(),
            Self::Render { .. } => {
                "check the configuration values used by the template named above".into()
            }
            Self::Images(_) => "every image a manifest uses must be carried by the bundle: ask \
                                the vendor for a fixed bundle"
                .into(),
            Self::Object(_) => "the bundle is malformed: ask the vendor for a new build".into(),
            Self::Component(_) => "`airlift-install inspect BUNDLE` lists the components".into(),
            Self::Destination(_) => {
                "write --registry HOST[:PORT][/PREFIX], e.g. registry.corp:5000/vendor".into()
            }
            Self::Mapping(e) => e.hint(),
            Self::RegistryClient { registry, .. } => {
                format!("check --registry-ca and the registry address `{registry}`")
            }
            Self::Push(e) => e.hint(),
            Self::Artifact(e) => e.hint(),
            Self::Relocation { .. } => {
                "this is a bug in Airlift: report it with the bundle's `inspect` output".into()
            }
            Self::Preflight(failures) => failures
                .iter()
                .map(|f| f.fix.as_str())
                .filter(|f| !f.is_empty())
                .collect::<Vec<_>>()
                .join("; "),
            Self::Lifecycle(e) => return e.fix(),
            Self::Lock(e) => return e.fix(),
            Self::Connect(e) => e.hint(),
            Self::Kept(e) => e.hint(),
            Self::Records(e) => e.hint(),
            Self::Read { source, .. } => airlift_cluster::kubeconfig::api_hint(source),
            Self::Declined | Self::Interrupted => return None,
            Self::Prompt { .. } => "pass the value with --set or a values file instead".into(),
            Self::License(e) => return e.fix(),
        })
    }
}
