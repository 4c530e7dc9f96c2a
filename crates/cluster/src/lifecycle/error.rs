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
    #[error("release `{release}` in namespace `{namespace}` is already installed with {installed}; this bundle is {new}")]
    AlreadyInstalled {
        /// The release.
        release: String,
        /// The release namespace.
        namespace: String,
        /// The installed bundle version.
        installed: String,
        /// The new bundle version.
        new: String,
    },
    /// The release has no records in this namespace.
    #[error("release `{release}` is not installed in namespace `{namespace}`{}", elsewhere_text(.elsewhere))]
    NotInstalled {
        /// The release.
        release: String,
        /// The release namespace.
        namespace: String,
        /// Namespaces where a release of that name does exist.
        elsewhere: Vec<String>,
    },
    /// Objects the deploy would change exist and belong to another release or to nobody.
    #[error("release `{release}` in namespace `{namespace}` would take over {} object(s) it does not own:\n{}", .conflicts.len(), conflict_lines(.conflicts))]
    Conflicts {
        /// The release.
        release: String,
        /// The release namespace.
        namespace: String,
        /// Each object and its owner.
        conflicts: Vec<crate::ownership::Conflict>,
    },
    /// The operator interrupted the operation; it stopped at a safe point.
    #[error("{action} of release `{release}` was interrupted during {phase}{}", interrupted_text(.action, *.revision, *.deployed))]
    Interrupted {
        /// `install`, `upgrade`, `rollback` or `uninstall`.
        action: &'static str,
        /// The release.
        release: String,
        /// The release namespace.
        namespace: String,
        /// The revision recorded as interrupted; `None` when nothing was changed.
        revision: Option<u32>,
        /// Where it stopped.
        phase: &'static str,
        /// The revision still recorded as deployed, if any.
        deployed: Option<u32>,
    },
    /// A rollback without a revision found nothing earlier to return to.
    #[error("release `{release}` in namespace `{namespace}` has no earlier deployed revision to roll back to (revision {current} is the newest)")]
    NoEarlierRevision {
        /// The release.
        release: String,
        /// The release namespace.
        namespace: String,
        /// The newest revision.
        current: u32,
    },
    /// A rollback named a revision that never ran.
    #[error("revision {revision} of release `{release}` was never deployed (it is {status})")]
    NeverDeployed {
        /// The release.
        release: String,
        /// The revision.
        revision: u32,
        /// Its status.
        status: String,
    },
    /// Taking or giving back the release lock failed, or another operation holds it.
    #[error(transparent)]
    Lock(#[from] crate::lock::LockError),
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
    /// The release namespace is being deleted and was still there after the wait.
    #[error(transparent)]
    NamespaceDeleting(#[from] crate::namespace::StillDeleting),
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
    /// Listing what a namespace holds failed while deciding whether to keep it.
    #[error("failed to list {what} in namespace `{namespace}`")]
    List {
        /// What was listed.
        what: &'static str,
        /// The namespace.
        namespace: String,
        /// The server's answer.
        #[source]
        source: crate::status::ServerError,
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
            Self::NotInstalled {
                release, elsewhere, ..
            } => match elsewhere.first() {
                Some(ns) => format!("pass `-n {ns}` to act on the release there"),
                None => format!(
                    "`airlift-install list -A` lists the releases; install with `airlift-install \
                     install BUNDLE --release {release}`"
                ),
            },
            Self::Conflicts { namespace, .. } => format!(
                "install this release in its own namespace (`-n NAME`), uninstall the owner, or \
                 pass --adopt to take these objects over (the previous owner then no longer \
                 manages them); release namespace now: `{namespace}`"
            ),
            Self::Interrupted {
                action,
                release,
                namespace,
                revision,
                deployed,
                ..
            } => match (revision, deployed) {
                (None, _) if *action == "uninstall" => format!(
                    "run the same `airlift-install uninstall {release} -n {namespace}` again to \
                     finish deleting"
                ),
                (None, _) => format!("nothing was changed; run the {action} again"),
                (Some(_), Some(d)) => format!(
                    "run the same `airlift-install {action}` command again to finish it, or \
                     `airlift-install rollback {release} -n {namespace}` to return to revision {d}"
                ),
                (Some(_), None) => format!(
                    "run the same `airlift-install {action}` command again to finish it, or \
                     `airlift-install uninstall {release} -n {namespace}` to remove what it applied"
                ),
            },
            Self::NoEarlierRevision {
                release, namespace, ..
            } => format!("`airlift-install status {release} -n {namespace}` lists the revisions"),
            Self::NeverDeployed { release, .. } => format!(
                "pick a revision whose status is deployed, superseded or rolled-back \
                 (`airlift-install status {release}`)"
            ),
            Self::Lock(e) => airlift_bundle::Diagnose::fix(e).unwrap_or_default(),
            Self::Downgrade { .. } => {
                "pass --force to downgrade, or `airlift-install rollback` to an earlier revision"
                    .into()
            }
            Self::BadVersion { .. } => {
                "the bundle is malformed; ask the vendor for a new one".into()
            }
            Self::NamespaceDeleting(e) => e.hint(),
            Self::SecretDataLost { .. } => {
                "install that bundle version again with its configuration values instead".into()
            }
            Self::List { source, .. } => crate::kubeconfig::api_hint(source.inner()),
            Self::Generated(e) => e.hint(),
        }
    }
}

fn elsewhere_text(elsewhere: &[String]) -> String {
    if elsewhere.is_empty() {
        String::new()
    } else {
        format!(
            "; a release of that name exists in namespace {}",
            elsewhere
                .iter()
                .map(|n| format!("`{n}`"))
                .collect::<Vec<_>>()
                .join(", ")
        )
    }
}

fn conflict_lines(conflicts: &[crate::ownership::Conflict]) -> String {
    conflicts
        .iter()
        .map(|c| format!("  - {c}"))
        .collect::<Vec<_>>()
        .join("\n")
}

fn interrupted_text(action: &str, revision: Option<u32>, deployed: Option<u32>) -> String {
    match (revision, deployed) {
        (None, _) if action == "uninstall" => "; some objects are deleted, the records remain".into(),
        (None, _) => "; nothing was changed".into(),
        (Some(r), Some(d)) => format!(
            "; revision {r} is recorded as interrupted (partly applied), revision {d} is the last deployed"
        ),
        (Some(r), None) => format!("; revision {r} is recorded as interrupted (partly applied)"),
    }
}

impl airlift_bundle::Diagnose for LifecycleError {
    fn exit_kind(&self) -> airlift_bundle::ExitKind {
        use airlift_bundle::ExitKind;
        match self {
            Self::RolledBack { .. } => ExitKind::RolledBack,
            Self::Conflicts { .. } | Self::Downgrade { .. } => ExitKind::Preflight,
            Self::Interrupted { .. } => ExitKind::Interrupted,
            Self::Lock(e) => airlift_bundle::Diagnose::exit_kind(e),
            Self::Apply(e) => airlift_bundle::Diagnose::exit_kind(e),
            Self::NotInstalled { .. }
            | Self::AlreadyInstalled { .. }
            | Self::NoEarlierRevision { .. }
            | Self::NeverDeployed { .. } => ExitKind::Failure,
            _ => ExitKind::Cluster,
        }
    }

    fn fix(&self) -> Option<String> {
        Some(self.hint())
    }
}
