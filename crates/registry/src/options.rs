//! Options shared by every registry operation (pull, push, preflight): trust, plain-HTTP
//! registries, credentials, concurrency and the retry policy.
//!
//! The binaries fill one [`RegistryOptions`] from their flags and hand it to the engine:
//!
//! ```
//! use airlift_registry::options::RegistryOptions;
//! use airlift_registry::auth::{Credentials, Secret};
//!
//! let opts = RegistryOptions::default()
//!     .with_ca_file("/etc/airlift/registry-ca.pem")
//!     .with_credentials("registry.corp:5000", Credentials::basic("ci", Secret::new("s3cret")))
//!     .with_concurrency(8);
//! assert!(!opts.is_insecure("registry.corp:5000"));
//! assert!(!format!("{opts:?}").contains("s3cret"));
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::Duration;

use crate::auth::Credentials;
pub use crate::retry::RetryPolicy;

/// The default number of blobs transferred at the same time.
pub const DEFAULT_CONCURRENCY: usize = 4;

/// How a registry operation connects, authenticates and retries.
///
/// `Debug` never shows a password: [`Credentials`] redacts its secret.
#[derive(Debug, Clone)]
pub struct RegistryOptions {
    /// Extra CA certificates (PEM files, each may hold several certificates) to trust, in
    /// addition to the system trust store. From `--registry-ca FILE` (repeatable).
    pub ca_files: Vec<PathBuf>,
    /// Whether the system trust store (and the bundled Mozilla roots) is trusted. On by default;
    /// turn it off to trust only `ca_files`. Honoured by [`crate::tls::http_client`]; the
    /// oci-client used for pulls always keeps the built-in roots.
    pub system_roots: bool,
    /// Registries (`host[:port]`, exactly as in image references) spoken to over plain HTTP.
    /// Only ever filled from an explicit `--insecure`-style flag; everything else is HTTPS with
    /// verified certificates.
    pub insecure: BTreeSet<String>,
    /// Credentials given explicitly (flags, environment), by registry `host[:port]`. They win
    /// over anything found in auth files.
    pub credentials: BTreeMap<String, Credentials>,
    /// An auth file to use instead of the usual search (`REGISTRY_AUTH_FILE`,
    /// `$XDG_RUNTIME_DIR/containers/auth.json`, docker's `config.json`).
    pub auth_file: Option<PathBuf>,
    /// Whether to look up credentials in auth files and credential helpers at all. On by
    /// default; tests and `--no-auth-files` turn it off.
    pub use_auth_files: bool,
    /// How many blobs move at the same time.
    pub concurrency: usize,
    /// When and how often transient failures are retried.
    pub retry: RetryPolicy,
    /// How long to wait for a TCP + TLS connection.
    pub connect_timeout: Duration,
    /// How long a read may stall before the request counts as failed (and is retried).
    pub read_timeout: Duration,
}

impl Default for RegistryOptions {
    fn default() -> Self {
        Self {
            ca_files: Vec::new(),
            system_roots: true,
            insecure: BTreeSet::new(),
            credentials: BTreeMap::new(),
            auth_file: None,
            use_auth_files: true,
            concurrency: DEFAULT_CONCURRENCY,
            retry: RetryPolicy::default(),
            connect_timeout: Duration::from_secs(15),
            read_timeout: Duration::from_secs(60),
        }
    }
}

impl RegistryOptions {
    /// Adds a CA file (PEM) to trust.
    pub fn with_ca_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.ca_files.push(path.into());
        self
    }

    /// Marks `registry` (`host[:port]`) as plain HTTP.
    pub fn with_insecure(mut self, registry: impl Into<String>) -> Self {
        self.insecure.insert(registry.into());
        self
    }

    /// Sets explicit credentials for `registry` (`host[:port]`).
    pub fn with_credentials(mut self, registry: impl Into<String>, creds: Credentials) -> Self {
        self.credentials.insert(registry.into(), creds);
        self
    }

    /// Uses `path` as the only auth file.
    pub fn with_auth_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.auth_file = Some(path.into());
        self
    }

    /// Turns auth-file and credential-helper lookup off (only explicit credentials are used).
    pub fn without_auth_files(mut self) -> Self {
        self.use_auth_files = false;
        self
    }

    /// Sets how many blobs move at once (at least 1).
    pub fn with_concurrency(mut self, n: usize) -> Self {
        self.concurrency = n.max(1);
        self
    }

    /// Sets the retry policy.
    pub fn with_retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// True when `registry` was named plain HTTP.
    pub fn is_insecure(&self, registry: &str) -> bool {
        self.insecure.contains(registry)
    }

    /// `http` for registries named insecure, `https` otherwise.
    pub fn scheme(&self, registry: &str) -> &'static str {
        if self.is_insecure(registry) {
            "http"
        } else {
            "https"
        }
    }

    /// The base URL of a registry's API, e.g. `https://registry.corp:5000/v2/`.
    pub fn api_base(&self, registry: &str) -> String {
        format!("{}://{registry}/v2/", self.scheme(registry))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::Secret;

    #[test]
    fn insecure_only_when_named_and_debug_hides_password() {
        let o = RegistryOptions::default()
            .with_insecure("127.0.0.1:5000")
            .with_credentials("r:1", Credentials::basic("u", Secret::new("hunter2")));
        assert_eq!(o.scheme("127.0.0.1:5000"), "http");
        assert_eq!(o.scheme("127.0.0.1:5001"), "https");
        assert_eq!(o.api_base("r:1"), "https://r:1/v2/");
        assert!(!format!("{o:?}").contains("hunter2"));
    }
}
