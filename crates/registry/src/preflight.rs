//! Checks run before a push, so a push never starts against a registry it cannot finish on.
//!
//! 1. The registry is reachable and its TLS certificate is trusted (`GET /v2/`).
//! 2. It is an OCI registry: a `404` on `/v2/` means something else answers on that address.
//! 3. The credentials are accepted.
//! 4. The credentials can push to the target repository: an upload is started there and
//!    cancelled at once (`POST` then `DELETE`), so no upload data stays behind. (docker
//!    distribution 2.8 still rewrites the hash state of a cancelled session after the `DELETE`,
//!    leaving `_uploads/<uuid>/hashstates/sha256/0`; its upload purging removes it, by default
//!    after 7 days. No client request avoids this short of committing a blob.)
//!
//! Each failure names the registry and carries the hint of its cause.

use airlift_bundle::Digest;

use crate::client::{RegistryClient, UploadStart};
use crate::error::RegistryError;

/// A failed preflight check.
#[derive(Debug, thiserror::Error)]
pub enum PreflightError {
    /// The registry cannot be reached, or its certificate is not trusted.
    #[error("preflight: cannot connect to registry `{registry}`")]
    Connect {
        /// The registry.
        registry: String,
        /// The cause.
        #[source]
        source: RegistryError,
    },
    /// `/v2/` answered 404: whatever listens there is not an OCI registry.
    #[error("preflight: `{registry}` answered 404 on /v2/: it does not look like an OCI registry")]
    NotARegistry {
        /// The registry.
        registry: String,
    },
    /// The registry refused the credentials.
    #[error("preflight: registry `{registry}` refused to log in")]
    Login {
        /// The registry.
        registry: String,
        /// The cause.
        #[source]
        source: RegistryError,
    },
    /// The registry does not let these credentials push to the target repository.
    #[error("preflight: cannot push to `{registry}/{repository}`")]
    CannotPush {
        /// The registry.
        registry: String,
        /// The repository tried.
        repository: String,
        /// The cause.
        #[source]
        source: RegistryError,
    },
}

impl PreflightError {
    /// How the operator can fix this.
    pub fn hint(&self) -> String {
        match self {
            Self::NotARegistry { .. } => {
                "404 on /v2/: is this a registry? check the host and port in --registry".to_string()
            }
            Self::Connect { source, .. }
            | Self::Login { source, .. }
            | Self::CannotPush { source, .. } => match source {
                RegistryError::Status { status: 405, .. } => {
                    "405: the registry is read-only (or a pull-through mirror): push to a \
                     registry that accepts uploads"
                        .to_string()
                }
                other => other.hint(),
            },
        }
    }

    /// The underlying registry error, if any.
    pub fn registry_error(&self) -> Option<&RegistryError> {
        match self {
            Self::NotARegistry { .. } => None,
            Self::Connect { source, .. }
            | Self::Login { source, .. }
            | Self::CannotPush { source, .. } => Some(source),
        }
    }
}

/// Runs the checks of the module docs against `client`'s registry, proving push rights on
/// `repository` (the first repository the push will write, without the host).
pub async fn preflight(client: &RegistryClient, repository: &str) -> Result<(), PreflightError> {
    let registry = client.registry().to_string();
    match client.ping().await {
        Ok(()) => {}
        Err(RegistryError::Status { status: 404, .. }) => {
            return Err(PreflightError::NotARegistry { registry })
        }
        Err(e @ RegistryError::AuthRefused { .. }) => {
            return Err(PreflightError::Login {
                registry,
                source: e,
            })
        }
        Err(e) => {
            return Err(PreflightError::Connect {
                registry,
                source: e,
            })
        }
    }
    // Any digest will do: the upload is cancelled before a byte is sent.
    let probe = Digest::of_bytes(b"airlift preflight");
    let cannot_push = |source| PreflightError::CannotPush {
        registry: registry.clone(),
        repository: repository.to_string(),
        source,
    };
    match client
        .start_upload(repository, &probe, None)
        .await
        .map_err(cannot_push)?
    {
        UploadStart::Session(url) => client
            .cancel_upload(repository, &url)
            .await
            .map_err(cannot_push),
        UploadStart::Mounted => Ok(()),
    }
}
