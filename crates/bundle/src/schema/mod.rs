//! Versioned schema types. What the vendor writes ([`definition`]) is kept apart from what the
//! packager records at build time ([`manifest`]). Both share [`config`] and [`common`].
//! Validation lives beside the types in the crates that use them, not inside serde.

pub mod common;
pub mod config;
pub mod definition;
pub mod json_schema;
pub mod license;
pub mod manifest;
pub mod platform;
pub mod validate;

/// The `apiVersion` of every Airlift document.
pub const API_VERSION: &str = "airlift.dev/v1alpha1";
