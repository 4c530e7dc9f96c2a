//! Registry flags shared by `airlift-pack build` and the installer's registry commands.

use std::path::PathBuf;

use airlift_registry::{Credentials, RegistryOptions, Secret};
use anyhow::{bail, Context, Result};

/// The environment variable a registry password may come from (never a plain argument).
pub const PASSWORD_ENV: &str = "AIRLIFT_REGISTRY_PASSWORD";

/// How to reach and authenticate to registries.
#[derive(Debug, Clone, clap::Args)]
pub struct RegistryFlags {
    /// Trust this CA certificate (PEM) for registry TLS, in addition to the system store. Repeatable.
    #[arg(long = "registry-ca", value_name = "FILE")]
    pub registry_ca: Vec<PathBuf>,
    /// Speak plain HTTP to this registry (`host:port`). Repeatable. Never implied.
    #[arg(long = "insecure-registry", value_name = "HOST")]
    pub insecure_registry: Vec<String>,
    /// The registry user. The password comes from --password-stdin or AIRLIFT_REGISTRY_PASSWORD.
    #[arg(long = "registry-user", value_name = "USER")]
    pub registry_user: Option<String>,
    /// Read the registry password from standard input.
    #[arg(long = "password-stdin", requires = "registry_user")]
    pub password_stdin: bool,
    /// Read credentials from this auth file instead of the usual docker/containers locations.
    #[arg(long = "authfile", value_name = "FILE")]
    pub auth_file: Option<PathBuf>,
    /// How many blobs move at the same time.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub concurrency: u16,
}

impl RegistryFlags {
    /// The options, with `--registry-user` applied to `credential_host` (`host[:port]`).
    pub fn options(&self, credential_host: Option<&str>) -> Result<RegistryOptions> {
        let mut opts = RegistryOptions {
            ca_files: self.registry_ca.clone(),
            insecure: self.insecure_registry.iter().cloned().collect(),
            auth_file: self.auth_file.clone(),
            concurrency: usize::from(self.concurrency),
            ..RegistryOptions::default()
        };
        for ca in &self.registry_ca {
            if !ca.is_file() {
                bail!(
                    "the CA file `{}` given with --registry-ca does not exist",
                    ca.display()
                );
            }
        }
        if let Some(user) = &self.registry_user {
            let Some(host) = credential_host else {
                bail!("--registry-user needs a registry to apply to");
            };
            let password = self.password()?;
            opts.credentials
                .insert(host.to_string(), Credentials::basic(user.clone(), password));
        }
        Ok(opts)
    }

    fn password(&self) -> Result<Secret> {
        if self.password_stdin {
            let bytes = airlift_bundle::limits::read_reader_bounded(
                std::io::stdin(),
                std::path::Path::new("standard input"),
                airlift_bundle::limits::MAX_SECRET,
            )
            .context("cannot read the password from standard input")?;
            let s = String::from_utf8(bytes)
                .context("the password on standard input is not UTF-8 text")?;
            let s = s.trim_end_matches(['\n', '\r']).to_string();
            if s.is_empty() {
                bail!("--password-stdin was given but standard input was empty");
            }
            return Ok(Secret::new(s));
        }
        match std::env::var(PASSWORD_ENV) {
            Ok(s) if !s.is_empty() => Ok(Secret::new(s)),
            _ => bail!(
                "--registry-user needs a password: pipe it to --password-stdin or set {PASSWORD_ENV}"
            ),
        }
    }
}
