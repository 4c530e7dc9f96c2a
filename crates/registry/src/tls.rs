//! TLS for registry connections: the system trust store plus extra CA files, and recognising
//! certificate failures so they can be reported as [`crate::RegistryError::UnknownCa`] with a
//! hint instead of a bare "connection error".
//!
//! [`http_client`] builds the reqwest client used by push and preflight; [`oci_client()`] builds
//! the oci-client used by pull, from the same [`RegistryOptions`].

use std::error::Error as StdError;
use std::fmt;
use std::path::{Path, PathBuf};

use oci_client::client::{Certificate, CertificateEncoding, ClientConfig, ClientProtocol};

use crate::options::RegistryOptions;

/// The user agent sent to registries.
pub const USER_AGENT: &str = concat!("airlift/", env!("CARGO_PKG_VERSION"));

/// Errors from setting up TLS.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A CA file could not be read.
    #[error("cannot read CA file `{path}`")]
    ReadCa {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A CA file holds no PEM certificate.
    #[error("CA file `{path}` holds no PEM certificate (`-----BEGIN CERTIFICATE-----`)")]
    NoCertificate {
        /// The file.
        path: PathBuf,
    },
    /// A certificate in a CA file is not valid.
    #[error("CA file `{path}` holds an invalid certificate")]
    BadCertificate {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: Box<dyn StdError + Send + Sync>,
    },
    /// The HTTP client could not be built.
    #[error("cannot set up the HTTP client")]
    Client {
        /// The cause.
        #[source]
        source: Box<dyn StdError + Send + Sync>,
    },
}

impl TlsError {
    /// How the operator can fix this.
    pub fn hint(&self) -> &'static str {
        match self {
            Self::ReadCa { .. } => "check the path given to --registry-ca",
            Self::NoCertificate { .. } | Self::BadCertificate { .. } => {
                "--registry-ca needs the CA certificate in PEM form; convert DER with \
                 `openssl x509 -inform der -in ca.der -out ca.pem`"
            }
            Self::Client { .. } => "check the TLS options",
        }
    }
}

/// What was wrong with a server certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TlsProblem {
    /// Signed by a CA that is not trusted.
    UnknownIssuer,
    /// Not valid for the host name connected to.
    NameMismatch,
    /// Expired.
    Expired,
    /// Not valid yet.
    NotValidYet,
    /// Anything else (revoked, bad signature, bad encoding, ...).
    Other(String),
}

impl fmt::Display for TlsProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::UnknownIssuer => f.write_str("unknown issuer"),
            Self::NameMismatch => f.write_str("certificate not valid for this host name"),
            Self::Expired => f.write_str("certificate expired"),
            Self::NotValidYet => f.write_str("certificate not valid yet"),
            Self::Other(s) => f.write_str(s),
        }
    }
}

/// Reads every certificate of a PEM file (DER bytes each).
pub fn load_ca_file(path: &Path) -> Result<Vec<Vec<u8>>, TlsError> {
    let data = airlift_bundle::read_bounded(path, airlift_bundle::limits::MAX_DOCUMENT)
        .map_err(std::io::Error::other)
        .map_err(|source| TlsError::ReadCa {
            path: path.to_path_buf(),
            source,
        })?;
    let mut certs = Vec::new();
    for item in rustls_pemfile::certs(&mut &data[..]) {
        let der = item.map_err(|e| TlsError::BadCertificate {
            path: path.to_path_buf(),
            source: Box::new(e),
        })?;
        certs.push(der.to_vec());
    }
    if certs.is_empty() {
        return Err(TlsError::NoCertificate {
            path: path.to_path_buf(),
        });
    }
    Ok(certs)
}

/// Every extra CA certificate of `opts` (DER), checked to parse.
pub fn extra_roots(opts: &RegistryOptions) -> Result<Vec<Vec<u8>>, TlsError> {
    let mut all = Vec::new();
    for p in &opts.ca_files {
        for der in load_ca_file(p)? {
            reqwest::Certificate::from_der(&der).map_err(|e| TlsError::BadCertificate {
                path: p.clone(),
                source: Box::new(e),
            })?;
            all.push(der);
        }
    }
    Ok(all)
}

/// A reqwest client trusting the system roots (unless turned off) and the extra CA files, with
/// the options' timeouts. Redirects are followed (registries redirect blob downloads), and
/// plain HTTP is only used for URLs the caller builds with [`RegistryOptions::scheme`].
pub fn http_client(opts: &RegistryOptions) -> Result<reqwest::Client, TlsError> {
    let mut b = reqwest::Client::builder()
        .user_agent(USER_AGENT)
        .tls_built_in_root_certs(opts.system_roots)
        .connect_timeout(opts.connect_timeout)
        .read_timeout(opts.read_timeout)
        .pool_max_idle_per_host(opts.concurrency.max(1) * 2);
    for der in extra_roots(opts)? {
        let cert = reqwest::Certificate::from_der(&der).map_err(|e| TlsError::Client {
            source: Box::new(e),
        })?;
        b = b.add_root_certificate(cert);
    }
    b.build().map_err(|e| TlsError::Client {
        source: Box::new(e),
    })
}

/// The oci-client configuration for `opts`: HTTPS except registries named insecure, the extra
/// CA certificates, no platform resolver (we resolve indexes ourselves), the timeouts.
pub fn oci_client_config(opts: &RegistryOptions) -> Result<ClientConfig, TlsError> {
    let extra_root_certificates = extra_roots(opts)?
        .into_iter()
        .map(|data| Certificate {
            encoding: CertificateEncoding::Der,
            data,
        })
        .collect();
    Ok(ClientConfig {
        protocol: ClientProtocol::HttpsExcept(opts.insecure.iter().cloned().collect()),
        extra_root_certificates,
        platform_resolver: None,
        max_concurrent_download: opts.concurrency.max(1),
        max_concurrent_upload: opts.concurrency.max(1),
        connect_timeout: Some(opts.connect_timeout),
        read_timeout: Some(opts.read_timeout),
        user_agent: USER_AGENT,
        ..ClientConfig::default()
    })
}

/// An oci-client for `opts` (fails instead of silently falling back to defaults).
pub fn oci_client(opts: &RegistryOptions) -> Result<oci_client::Client, TlsError> {
    oci_client::Client::try_from(oci_client_config(opts)?).map_err(|e| TlsError::Client {
        source: Box::new(e),
    })
}

/// Walks an error's source chain looking for a rustls certificate error.
pub fn classify_tls(err: &(dyn StdError + 'static)) -> Option<TlsProblem> {
    let mut cur: Option<&(dyn StdError + 'static)> = Some(err);
    while let Some(e) = cur {
        if let Some(p) = rustls_problem(e) {
            return Some(p);
        }
        // io::Error hides its payload from `source()`; look inside it explicitly.
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            if let Some(inner) = io.get_ref() {
                if let Some(p) = classify_tls(inner) {
                    return Some(p);
                }
            }
        }
        cur = e.source();
    }
    // Last resort: the rendered chain (some layers stringify their cause).
    let text = crate::error::error_chain(err);
    if text.contains("UnknownIssuer") || text.contains("unknown issuer") {
        return Some(TlsProblem::UnknownIssuer);
    }
    if text.contains("invalid peer certificate") {
        return Some(TlsProblem::Other(text));
    }
    None
}

fn rustls_problem(e: &(dyn StdError + 'static)) -> Option<TlsProblem> {
    use rustls::CertificateError as C;
    let rustls::Error::InvalidCertificate(c) = e.downcast_ref::<rustls::Error>()? else {
        return None;
    };
    Some(match c {
        C::UnknownIssuer => TlsProblem::UnknownIssuer,
        C::NotValidForName | C::NotValidForNameContext { .. } => TlsProblem::NameMismatch,
        C::Expired | C::ExpiredContext { .. } => TlsProblem::Expired,
        C::NotValidYet | C::NotValidYetContext { .. } => TlsProblem::NotValidYet,
        other => TlsProblem::Other(format!("{other:?}")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_rustls_errors_inside_io_errors() {
        let inner = rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer);
        let io = std::io::Error::other(inner);
        assert_eq!(classify_tls(&io), Some(TlsProblem::UnknownIssuer));
        let plain = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        assert_eq!(classify_tls(&plain), None);
    }

    #[test]
    fn ca_file_errors_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("ca.pem");
        std::fs::write(&p, "not a pem").unwrap();
        let e = load_ca_file(&p).unwrap_err();
        assert!(matches!(e, TlsError::NoCertificate { .. }));
        assert!(e.to_string().contains("ca.pem"));
        let e = load_ca_file(&dir.path().join("missing.pem")).unwrap_err();
        assert!(matches!(e, TlsError::ReadCa { .. }));
    }
}
