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

pub mod auth;
pub mod client;
pub mod error;
pub mod mapping;
pub mod options;
pub mod pull;
pub mod preflight;
pub mod push;
pub mod serve;
pub mod tls;

pub use auth::{Credentials, Secret};
pub use error::{RegistryError, Target};
pub use options::{RegistryOptions, RetryPolicy};
