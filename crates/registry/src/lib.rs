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
//! - [`client`]: a small OCI distribution client for pushing (blob HEAD, mount, streamed upload,
//!   manifest HEAD/PUT with the original bytes), with retries and token caching.
//! - [`mapping`]: where each image lands in the customer's registry (the documented rule), and
//!   the relocation map.
//! - [`push`]: push images from any [`airlift_bundle::BlobSource`], blobs before manifests,
//!   tags last; resumable and parallel.
//! - [`preflight`]: reachable, trusted, a registry, credentials that can push.
//! - [`serve`]: a read-only OCI endpoint over a [`airlift_bundle::BlobSource`].

pub mod auth;
pub mod client;
pub mod error;
pub mod mapping;
pub mod options;
pub mod preflight;
pub mod pull;
pub mod push;
pub mod serve;
pub mod tls;

pub use auth::{Credentials, Secret};
pub use error::{RegistryError, Target};
pub use options::{RegistryOptions, RetryPolicy};
