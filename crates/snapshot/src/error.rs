//! Errors of a snapshot.

use std::path::PathBuf;

use airlift_bundle::{Diagnose, ExitKind};

/// Why a snapshot failed.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    /// Listing or reading something on the SaaS cluster failed.
    #[error("cannot read {what} from the SaaS cluster")]
    List {
        /// What was being read.
        what: String,
        /// The API error.
        #[source]
        source: kube::Error,
    },
    /// An object the server returned could not be turned into JSON.
    #[error("an object from the SaaS cluster could not be decoded")]
    Decode(#[source] serde_json::Error),
    /// The selection holds more objects than one snapshot takes.
    #[error("the selection holds more than {limit} objects")]
    TooMany {
        /// The bound.
        limit: usize,
    },
    /// The output folder could not be written.
    #[error("cannot write `{path}`")]
    Write {
        /// The file or folder.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The output folder holds files the snapshot did not write.
    #[error("`{path}` exists and is not a snapshot folder (it has no SNAPSHOT.md)")]
    NotASnapshot {
        /// The folder.
        path: PathBuf,
    },
    /// Nothing was selected.
    #[error("no object was selected in namespaces {namespaces}")]
    Empty {
        /// The namespaces, comma-separated.
        namespaces: String,
    },
}

impl Diagnose for SnapshotError {
    fn exit_kind(&self) -> ExitKind {
        match self {
            SnapshotError::List { .. } => ExitKind::Cluster,
            SnapshotError::TooMany { .. } | SnapshotError::Empty { .. } => ExitKind::Config,
            _ => ExitKind::Failure,
        }
    }

    fn fix(&self) -> Option<String> {
        Some(match self {
            SnapshotError::List { source, .. } => airlift_cluster::kubeconfig::api_hint(source),
            SnapshotError::TooMany { .. } => {
                "narrow the selection with --selector or fewer --namespace".into()
            }
            SnapshotError::NotASnapshot { .. } => {
                "pass an empty or new folder to --out, or the folder of an earlier snapshot".into()
            }
            SnapshotError::Empty { .. } => {
                "check the namespace names and --selector (`kubectl get all -n NS -l SEL`)".into()
            }
            _ => return None,
        })
    }
}
