//! The Airlift deploy pipeline as a library.
//!
//! ```text
//! open_verified(path, trust)                  // signature, then every digest; nothing before
//!   | open_oci(oci://…, trust)                // signature, layer list, members; blobs stay
//!                                             // in the vendor registry, hashed when pushed
//!   → Deployer::prepare(bundle, site, intent) // configuration, relocation, render; reads only
//!   → Deployer::plan(prepared)                // what would change, old → new values
//!   → Deployer::deploy(prepared, intent, ..)  // preflight (all at once) → push → lock →
//!                                             // keep values → apply → wait → record → unlock
//! releases::{status, list, rollback, uninstall, values}, drift::drift
//! ```
//!
//! The installer binary holds only flags, prompts ([`site::Interaction`]), progress and
//! printing; fleet rollouts and tests drive the same calls. Every error implements
//! [`airlift_bundle::Diagnose`].

// Errors are the cold path, and a `DeployError` carries the cluster's and the registry's full
// error context for the operator; boxing every variant would buy nothing measurable.
#![allow(clippy::result_large_err)]

pub mod drift;
pub mod error;
pub mod license;
pub mod notes;
pub mod pipeline;
pub mod platform;
pub mod publish;
pub mod registry;
pub mod releases;
pub mod render;
pub mod site;
pub mod source;
pub mod support;

pub use error::{DeployError, PreflightFailure};
pub use pipeline::{DeployReport, Deployer, Intent, PlanReport, Prepared};
pub use site::{Interaction, NonInteractive, SiteRequest};
pub use source::{open_for_push, open_oci, open_verified, BlobTrust};
