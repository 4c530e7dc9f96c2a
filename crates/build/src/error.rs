//! Why a build failed, and what the operator can do about it.

use std::path::PathBuf;

use airlift_bundle::limits::LimitError;
use airlift_bundle::{Diagnose, ExitKind, WriteError};
use airlift_registry::pull::PullError;

use crate::local_image::LocalImageError;

/// A failed build. Each variant diagnoses itself ([`Diagnose`]): a registry failure exits 4, a
/// definition problem 6, anything else 1, each with a hint.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// The registry client could not be set up (a CA file, a client certificate).
    #[error("cannot set up the registry client")]
    Client(#[source] Box<PullError>),
    /// One image could not be resolved, read, built or downloaded.
    #[error("cannot get image `{image}`")]
    Image {
        /// The image's reference in the definition.
        image: String,
        /// What went wrong.
        #[source]
        source: ImageError,
    },
    /// A definition file or manifest template could not be read within its bound.
    #[error(transparent)]
    Read(#[from] LimitError),
    /// The output folder could not be created.
    #[error("cannot create the output folder `{}`", path.display())]
    OutDir {
        /// The folder.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The bundle could not be planned, written or finished (its partial file is removed).
    #[error("cannot write bundle `{}`", path.display())]
    Write {
        /// The bundle file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: Box<WriteError>,
    },
    /// A blob of an OCI layout or archive does not match its digest: the source is damaged, or
    /// changed while the build read it.
    #[error("cannot write bundle `{}`", path.display())]
    Source {
        /// The bundle file.
        path: PathBuf,
        /// The layout or archive, and the blob.
        #[source]
        source: Box<PullError>,
    },
    /// A worker thread ended without an answer (it panicked).
    #[error("the {0} stopped unexpectedly")]
    Worker(&'static str),
}

/// Why one image could not be had.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    /// Resolving or downloading it failed, or a downloaded blob did not match its digest.
    #[error(transparent)]
    Pull(Box<PullError>),
    /// Building it from local files failed.
    #[error(transparent)]
    Local(#[from] LocalImageError),
    /// The thread building it from local files ended without an answer (it panicked).
    #[error("the image builder stopped unexpectedly")]
    Panicked,
}

impl From<PullError> for ImageError {
    fn from(e: PullError) -> Self {
        ImageError::Pull(Box::new(e))
    }
}

impl Diagnose for BuildError {
    fn exit_kind(&self) -> ExitKind {
        match self {
            BuildError::Client(e) | BuildError::Source { source: e, .. } => e.exit_kind(),
            BuildError::Image { source, .. } => match source {
                ImageError::Pull(e) => e.exit_kind(),
                ImageError::Local(e) => e.exit_kind(),
                ImageError::Panicked => ExitKind::Failure,
            },
            BuildError::Read(e) => e.exit_kind(),
            // A bundle that cannot be written is this machine's problem (space, permissions),
            // whatever the writer's own classification of the definition's part in it.
            BuildError::OutDir { .. } | BuildError::Write { .. } | BuildError::Worker(_) => {
                ExitKind::Failure
            }
        }
    }

    fn fix(&self) -> Option<String> {
        match self {
            BuildError::Client(e) | BuildError::Source { source: e, .. } => e.fix(),
            BuildError::Image { source, .. } => match source {
                ImageError::Pull(e) => e.fix(),
                ImageError::Local(e) => e.fix(),
                ImageError::Panicked => Some("report this as a bug".into()),
            },
            BuildError::Read(e) => e.fix(),
            BuildError::OutDir { .. } => {
                Some("check permissions there, or write the bundle elsewhere with --out".into())
            }
            BuildError::Write { source, .. } => match source.as_ref() {
                WriteError::SourceCorrupt { .. } => Some(
                    "the corrupt cache entry was removed: run the build again to fetch it".into(),
                ),
                other => Some(other.hint()),
            },
            BuildError::Worker(_) => Some("report this as a bug".into()),
        }
    }
}
