//! The Airlift build engine: a bundle definition in, one signed offline bundle out.
//!
//! [`build`] resolves every image of a loaded definition (from a registry, an OCI layout or
//! archive, or built from local files with [`local_image`]), plans the bundle from the images'
//! manifests, signs it, and writes each blob into its place once ([`KeepLayers`] says whether
//! downloaded layers are also kept in the blob cache). It draws nothing: progress goes through
//! [`airlift_bundle::Progress`], and failures are [`BuildError`]s that diagnose themselves, so
//! `airlift-pack` and any other caller (a release pipeline, a test) drive the same engine
//! in-process.

mod assemble;
mod build;
mod error;
pub mod lint;
pub mod local_image;
pub mod local_image_reuse;

pub use assemble::KeepLayers;
pub use build::{build, BuildRequest, BuildSummary, ImageSummary};
pub use error::{BuildError, ImageError};
