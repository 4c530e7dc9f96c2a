//! [`Diagnose`] for the registry engine's errors: each says its exit kind and how to fix it, so
//! the binaries convert them with one call (`airlift_cli::CommandError::diagnosed`).
//!
//! Registry failures (reach, TLS, auth, refusals) are [`ExitKind::Registry`]; a failed
//! preflight is [`ExitKind::Preflight`]; a bad image reference or destination is
//! [`ExitKind::Config`]; a bundle whose images are missing or damaged is [`ExitKind::Trust`].

use airlift_bundle::{Diagnose, ExitKind};

use crate::artifact::ArtifactError;
use crate::auth::AuthError;
use crate::client::ClientSetupError;
use crate::error::RegistryError;
use crate::mapping::MappingError;
use crate::preflight::PreflightError;
use crate::pull::PullError;
use crate::push::PushError;
use crate::serve::ServeError;
use crate::tls::TlsError;

const DAMAGED_BUNDLE: &str = "the bundle is incomplete or damaged: run `airlift-install verify` \
                              on it, or ask the vendor for a new copy";

impl Diagnose for RegistryError {
    fn exit_kind(&self) -> ExitKind {
        ExitKind::Registry
    }
    fn fix(&self) -> Option<String> {
        Some(self.hint())
    }
}

impl Diagnose for TlsError {
    fn exit_kind(&self) -> ExitKind {
        ExitKind::Registry
    }
    fn fix(&self) -> Option<String> {
        Some(self.hint().to_string())
    }
}

impl Diagnose for AuthError {
    fn exit_kind(&self) -> ExitKind {
        ExitKind::Registry
    }
    fn fix(&self) -> Option<String> {
        Some(self.hint().to_string())
    }
}

impl Diagnose for ClientSetupError {
    fn exit_kind(&self) -> ExitKind {
        ExitKind::Registry
    }
    fn fix(&self) -> Option<String> {
        Some(self.hint().to_string())
    }
}

impl Diagnose for MappingError {
    /// A bad image reference is the bundle's configuration; a bad `--registry` is usage.
    fn exit_kind(&self) -> ExitKind {
        match self {
            Self::Reference(_) => ExitKind::Config,
            Self::Destination { .. } => ExitKind::Usage,
        }
    }
    fn fix(&self) -> Option<String> {
        Some(match self {
            Self::Reference(_) => "check the image references the bundle records".to_string(),
            Self::Destination { .. } => {
                "write --registry HOST[:PORT][/PREFIX], e.g. registry.corp:5000/vendor".to_string()
            }
        })
    }
}

impl Diagnose for PullError {
    /// The registry's failures, except a local write failure (exit 1).
    fn exit_kind(&self) -> ExitKind {
        match self {
            Self::Write { .. } => ExitKind::Failure,
            _ => ExitKind::Registry,
        }
    }
    fn fix(&self) -> Option<String> {
        Some(self.hint())
    }
}

impl Diagnose for PushError {
    /// A source that is a registry and failed to answer is the registry's failure; a source
    /// whose bytes are wrong or missing (a damaged bundle, a registry serving other bytes) is a
    /// trust failure.
    fn exit_kind(&self) -> ExitKind {
        if let Some(e) = self.source_registry_error() {
            return match e {
                RegistryError::Protocol { .. } => ExitKind::Trust,
                _ => ExitKind::Registry,
            };
        }
        match self {
            Self::Registry { .. } => ExitKind::Registry,
            Self::Mapping(_) => ExitKind::Config,
            Self::Walk(_)
            | Self::ReadManifest { .. }
            | Self::Tampered { .. }
            | Self::Source { .. } => ExitKind::Trust,
        }
    }
    fn fix(&self) -> Option<String> {
        Some(self.hint())
    }
}

impl Diagnose for PreflightError {
    fn exit_kind(&self) -> ExitKind {
        ExitKind::Preflight
    }
    fn fix(&self) -> Option<String> {
        Some(self.hint())
    }
}

impl Diagnose for ServeError {
    fn exit_kind(&self) -> ExitKind {
        match self {
            Self::Mapping(_) => ExitKind::Config,
            Self::Walk(_) => ExitKind::Trust,
        }
    }
    fn fix(&self) -> Option<String> {
        Some(match self {
            Self::Mapping(e) => return e.fix(),
            Self::Walk(_) => DAMAGED_BUNDLE.to_string(),
        })
    }
}

impl Diagnose for ArtifactError {
    /// A changed or unverifiable artifact is a trust failure; a taken tag or bad reference is
    /// usage; the rest is the registry's.
    fn exit_kind(&self) -> ExitKind {
        match self {
            Self::Tampered { .. }
            | Self::LayerDigest { .. }
            | Self::NotABundle { .. }
            | Self::SourceChanged { .. } => ExitKind::Trust,
            Self::Bundle { source, .. } => source.exit_kind(),
            Self::BadReference { .. } | Self::Unpublishable { .. } | Self::TagTaken { .. } => {
                ExitKind::Usage
            }
            Self::Registry(_) | Self::NotFound { .. } => ExitKind::Registry,
            Self::Io { .. } => ExitKind::Failure,
        }
    }
    fn fix(&self) -> Option<String> {
        Some(self.hint())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Target;

    #[test]
    fn kinds_and_hints() {
        let e = RegistryError::from_status(Target::new("r:5000", "a:1"), 401, b"", false, None);
        assert_eq!(e.exit_kind(), ExitKind::Registry);
        assert!(e.fix().unwrap().contains("docker login r:5000"));

        // A downloaded blob the disk would not take is the machine's failure, not the registry's.
        let write = PullError::Write {
            path: "/out/app-1.0.0.airlift".into(),
            source: std::io::Error::from(std::io::ErrorKind::StorageFull),
        };
        assert_eq!(write.exit_kind(), ExitKind::Failure);
        assert!(write.fix().unwrap().contains("free disk space"));
        assert!(write.to_string().contains("/out/app-1.0.0.airlift"));

        let pre = PreflightError::NotARegistry {
            registry: "r:5000".into(),
        };
        assert_eq!(pre.exit_kind(), ExitKind::Preflight);

        let walk = PushError::Walk(airlift_bundle::walk::WalkError::TooDeep {
            reference: "a:1".into(),
        });
        assert_eq!(walk.exit_kind(), ExitKind::Trust);
        assert!(walk.fix().unwrap().contains("verify"));

        let map = PushError::Mapping(MappingError::Reference(
            airlift_bundle::reference::ImageRef::parse("UPPER case").unwrap_err(),
        ));
        assert_eq!(map.exit_kind(), ExitKind::Config);
        let dest = MappingError::Destination {
            target: "a b".into(),
            reason: "spaces",
        };
        assert_eq!(dest.exit_kind(), ExitKind::Usage);
        assert!(dest.fix().unwrap().contains("--registry"));
    }
}
