//! Errors from install, upgrade, rollback, uninstall and status.

use crate::apply::ApplyError;
use crate::readiness::ReadinessError;
use crate::release::ReleaseError;

/// Why a deploy step failed: the apply or the readiness wait.
#[derive(Debug, thiserror::Error)]
pub enum DeployFailure {
    /// Applying failed.
    #[error(transparent)]
    Apply(#[from] ApplyError),
    /// Workloads did not become ready.
    #[error(transparent)]
    Readiness(#[from] ReadinessError),
}

impl DeployFailure {
    /// How the operator can fix it.
    pub fn hint(&self) -> String {
        match self {
            Self::Apply(e) => e.hint(),
            Self::Readiness(e) => e.hint(),
        }
    }
}

/// Errors from install, upgrade, rollback, uninstall and status.
#[derive(Debug, thiserror::Error)]
pub enum LifecycleError {
    /// Reading or writing release records failed.
    #[error(transparent)]
    Release(#[from] ReleaseError),
    /// Preparing, applying or deleting objects failed before anything was deployed.
    #[error(transparent)]
    Apply(#[from] ApplyError),
    /// The deploy failed and there was no previous release to return to (or rollback was off).
    #[error("{action} of release `{release}` failed; revision {revision} is recorded as failed")]
    Failed {
        /// `install`, `upgrade` or `rollback`.
        action: &'static str,
        /// The release.
        release: String,
        /// The failed revision.
        revision: u32,
        /// What failed.
        #[source]
        cause: DeployFailure,
    },
    /// The upgrade failed and the previous release was restored and is running.
    #[error("upgrade of release `{release}` to {version} failed and was rolled back; revision {running} ({running_version}) is running")]
    RolledBack {
        /// The release.
        release: String,
        /// The version that failed.
        version: String,
        /// The revision running again.
        running: u32,
        /// Its version.
        running_version: String,
        /// What failed.
        #[source]
        cause: DeployFailure,
    },
    /// The upgrade failed and so did the automatic rollback.
    #[error("upgrade of release `{release}` failed, and rolling back to revision {previous} failed too: {rollback_error}")]
    RollbackFailed {
        /// The release.
        release: String,
        /// The revision we tried to return to.
        previous: u32,
        /// Why the rollback failed.
        rollback_error: String,
        /// Why the upgrade failed.
        #[source]
        cause: DeployFailure,
    },
    /// `install` found the release already installed with another bundle.
    #[error("release `{release}` is already installed with {installed}; this bundle is {new}")]
    AlreadyInstalled {
        /// The release.
        release: String,
        /// The installed bundle version.
        installed: String,
        /// The new bundle version.
        new: String,
    },
    /// `upgrade`, `rollback` or `uninstall` found no deployed release.
    #[error("release `{release}` is not installed in namespace `{namespace}`")]
    NotInstalled {
        /// The release.
        release: String,
        /// The release namespace.
        namespace: String,
    },
    /// The new version is older than the installed one.
    #[error("refusing to downgrade release `{release}` from {from} to {to}")]
    Downgrade {
        /// The release.
        release: String,
        /// The installed version.
        from: String,
        /// The new version.
        to: String,
    },
    /// A version is not semver.
    #[error("bundle version `{version}` is not a semantic version")]
    BadVersion {
        /// The version.
        version: String,
        /// The parser's complaint.
        #[source]
        source: semver::Error,
    },
    /// A rollback needs secret values the cluster no longer has.
    #[error("cannot roll back: {object} no longer holds the secret values at {}", .keys.join(", "))]
    SecretDataLost {
        /// The object (a Secret, or an object a secret was rendered into).
        object: String,
        /// The Secret keys or JSON pointers missing.
        keys: Vec<String>,
    },
    /// Reading or deleting the generated secret values failed.
    #[error(transparent)]
    Generated(#[from] crate::generated::GeneratedError),
    /// Listing PersistentVolumeClaims failed during uninstall.
    #[error("failed to list PersistentVolumeClaims in namespace `{namespace}`")]
    ListPvcs {
        /// The namespace.
        namespace: String,
        /// The server's answer.
        #[source]
        source: kube::Error,
    },
}

impl LifecycleError {
    /// How the operator can fix it.
    pub fn hint(&self) -> String {
        match self {
            Self::Release(e) => e.hint(),
            Self::Apply(e) => e.hint(),
            Self::Failed { cause, .. } => cause.hint(),
            Self::RolledBack { cause, .. } => format!(
                "the previous version runs unchanged; {}, then run the upgrade again",
                cause.hint()
            ),
            Self::RollbackFailed { cause, .. } => format!(
                "run `airlift-install rollback` once the cluster is healthy; {}",
                cause.hint()
            ),
            Self::AlreadyInstalled { .. } => "use `airlift-install upgrade` to change versions \
                                              or configuration"
                .into(),
            Self::NotInstalled { .. } => {
                "use `airlift-install install`, or pass the release's --namespace".into()
            }
            Self::Downgrade { .. } => {
                "pass --force to downgrade, or `airlift-install rollback` to an earlier revision"
                    .into()
            }
            Self::BadVersion { .. } => {
                "the bundle is malformed; ask the vendor for a new one".into()
            }
            Self::SecretDataLost { .. } => {
                "install that bundle version again with its configuration values instead".into()
            }
            Self::ListPvcs { source, .. } => crate::kubeconfig::api_hint(source),
            Self::Generated(e) => e.hint(),
        }
    }
}
