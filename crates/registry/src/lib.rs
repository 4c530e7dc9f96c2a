//! The registry transfer engine.
//!
//! - [`options`]: [`RegistryOptions`], shared by every operation: trust, plain-HTTP registries,
//!   credentials, concurrency, retries.
//! - [`auth`]: credentials from flags, auth files and credential helpers; the challenge/token flow.
//! - [`tls`]: system roots plus `--registry-ca`, and recognising certificate failures.
//! - [`error`]: [`RegistryError`], one named failure per thing that goes wrong talking to a
//!   registry, each with a hint.
//! - [`pull`]: pull images (registry, OCI layout folder, OCI archive) into a
//!   [`airlift_bundle::DirBlobStore`], keeping exactly the required platforms.
//! - [`retry`]: [`RetryPolicy`], the one retry policy (attempts, backoff with jitter,
//!   `Retry-After`, what is retryable) every request and transfer uses.
//! - [`client`]: a small OCI distribution client for pushing (blob HEAD, mount, streamed upload,
//!   manifest HEAD/PUT with the original bytes), with retries and token caching.
//! - [`mapping`]: where each image lands in the customer's registry (the documented rule), and
//!   the relocation map.
//! - [`push`]: push images from any [`airlift_bundle::BlobSource`], blobs before manifests,
//!   tags last; resumable and parallel.
//! - [`preflight`]: reachable, trusted, a registry, credentials that can push.
//! - [`diagnose`]: `airlift_bundle::Diagnose` (exit kind and fix) for every error above.
//! - [`serve`]: a read-only OCI endpoint over a [`airlift_bundle::BlobSource`].
//! - [`artifact`], [`artifact_push`], [`artifact_pull`]: a bundle published as an OCI artifact,
//!   and pulled back byte-identical, the signature checked before anything large is read.
//! - [`artifact_source`]: a published bundle opened in place (members in a temporary file, blobs
//!   read from its registry as they are pushed), for `install|upgrade|plan oci://…`.
//! - [`fetch`]: bounded and streamed reads (manifests, blobs, tag lists) with the same client.

pub mod artifact;
pub mod artifact_pull;
pub mod artifact_push;
pub mod artifact_source;
pub mod auth;
mod chunks;
pub mod client;
pub mod diagnose;
pub mod error;
pub mod fetch;
pub mod mapping;
pub mod options;
pub mod preflight;
pub mod pull;
pub mod push;
pub mod retry;
pub mod serve;
pub mod tls;
pub mod upload;

pub use auth::{Credentials, Secret};
pub use error::{RegistryError, Target};
pub use options::{RegistryOptions, RetryPolicy};
