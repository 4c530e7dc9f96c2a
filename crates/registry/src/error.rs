//! Errors from talking to a registry, shared by pull, push and preflight.
//!
//! Every variant names the registry (`host[:port]`) and the image it was working on, and
//! [`RegistryError::hint`] says how an operator can fix it. Classify transport failures with
//! [`RegistryError::from_reqwest`] / [`RegistryError::from_oci`] and HTTP statuses with
//! [`RegistryError::from_status`], so pull and push report the same failure the same way.

use std::error::Error as StdError;
use std::fmt;
use std::time::Duration;

use oci_client::errors::OciDistributionError;

use crate::retry::{is_retryable_status, Retry, Retryable};
use crate::tls::{classify_tls, TlsProblem};

/// Where a registry operation failed: the registry host and the image (or repository).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The registry, `host[:port]`.
    pub registry: String,
    /// The image or repository, e.g. `acme/api:1.2` or `acme/api@sha256:…`.
    pub image: String,
}

impl Target {
    /// A target for `image` on `registry`.
    pub fn new(registry: impl Into<String>, image: impl Into<String>) -> Self {
        Self {
            registry: registry.into(),
            image: image.into(),
        }
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "`{}` on registry `{}`", self.image, self.registry)
    }
}

/// A failure while talking to a registry.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// The registry answered 401 or 403: the credentials are missing, wrong, or lack permission.
    #[error("registry refused access ({status}) to {target}")]
    AuthRefused {
        /// Registry and image.
        target: Target,
        /// 401 or 403.
        status: u16,
        /// Whether credentials were sent at all.
        had_credentials: bool,
    },
    /// The registry's TLS certificate was issued by a CA we do not trust.
    #[error("TLS certificate of registry `{}` is not trusted (unknown issuer) while accessing `{}`", target.registry, target.image)]
    UnknownCa {
        /// Registry and image.
        target: Target,
        /// The underlying transport error.
        #[source]
        source: Box<dyn StdError + Send + Sync>,
    },
    /// Another TLS certificate problem: expired, wrong host name, not valid yet, bad signature.
    #[error("TLS certificate of registry `{}` was rejected ({problem}) while accessing `{}`", target.registry, target.image)]
    BadCertificate {
        /// Registry and image.
        target: Target,
        /// What was wrong with the certificate.
        problem: TlsProblem,
        /// The underlying transport error.
        #[source]
        source: Box<dyn StdError + Send + Sync>,
    },
    /// The tag, manifest or blob does not exist (404 / MANIFEST_UNKNOWN / BLOB_UNKNOWN).
    #[error("not found: {target}")]
    NotFound {
        /// Registry and image.
        target: Target,
        /// What was missing: `tag`, `manifest`, `blob sha256:…`, `repository`.
        what: String,
    },
    /// The registry answered 429 Too Many Requests and retries were exhausted.
    #[error("registry `{}` rate-limited requests for `{}` (429)", target.registry, target.image)]
    RateLimited {
        /// Registry and image.
        target: Target,
        /// The `Retry-After` the registry asked for, when it sent one.
        retry_after: Option<Duration>,
    },
    /// The registry could not be reached: DNS, connection refused, reset, timeout.
    #[error("registry `{}` is unreachable while accessing `{}`", target.registry, target.image)]
    Unreachable {
        /// Registry and image.
        target: Target,
        /// The underlying transport error.
        #[source]
        source: Box<dyn StdError + Send + Sync>,
    },
    /// The registry answered with an unexpected status (5xx after retries, or a 4xx we do not
    /// classify).
    #[error("registry `{}` answered {status} for `{}`: {message}", target.registry, target.image)]
    Status {
        /// Registry and image.
        target: Target,
        /// The HTTP status.
        status: u16,
        /// The registry's error message (the body's first error, trimmed).
        message: String,
        /// The error codes of the registry's answer (`MANIFEST_BLOB_UNKNOWN`, …), in order;
        /// empty when the body carried none.
        codes: Vec<String>,
        /// The `Retry-After` the registry asked for, when it sent one (503 often does).
        retry_after: Option<Duration>,
    },
    /// The registry sent something that is not a valid answer: a bad manifest, a too large
    /// document, a missing header, or content that does not match its digest.
    #[error("registry `{}` sent an invalid answer for `{}`: {detail}", target.registry, target.image)]
    Protocol {
        /// Registry and image.
        target: Target,
        /// What was wrong.
        detail: String,
    },
}

impl RegistryError {
    /// The registry and image this error is about.
    pub fn target(&self) -> &Target {
        match self {
            Self::AuthRefused { target, .. }
            | Self::UnknownCa { target, .. }
            | Self::BadCertificate { target, .. }
            | Self::NotFound { target, .. }
            | Self::RateLimited { target, .. }
            | Self::Unreachable { target, .. }
            | Self::Status { target, .. }
            | Self::Protocol { target, .. } => target,
        }
    }

    /// How the operator can fix this.
    pub fn hint(&self) -> String {
        match self {
            Self::AuthRefused {
                status: 401,
                had_credentials: true,
                ..
            } => "401: the registry rejected the credentials: check the user and password \
                  (--registry-user, --password-stdin) or the entry in your docker config.json"
                .to_string(),
            Self::AuthRefused {
                status: 401,
                had_credentials: false,
                target,
                ..
            } => format!(
                "401: the registry requires login: pass --registry-user with --password-stdin, \
                 or run `docker login {}`",
                target.registry
            ),
            Self::AuthRefused { .. } => {
                "403: the user is authenticated but not allowed: ask the registry admin for \
                 pull/push permission on this repository"
                    .to_string()
            }
            Self::UnknownCa { .. } => {
                "unknown issuer: pass the registry's CA with --registry-ca FILE (PEM), or add \
                 it to the system trust store"
                    .to_string()
            }
            Self::BadCertificate { problem, .. } => match problem {
                TlsProblem::NameMismatch => "the certificate is not valid for this host name: \
                     use the name the certificate was issued for"
                    .to_string(),
                TlsProblem::Expired | TlsProblem::NotValidYet => {
                    "the certificate is outside its validity period: check the machine's \
                     clock or renew the registry's certificate"
                        .to_string()
                }
                _ => "the registry's certificate was rejected: check it with \
                      `openssl s_client -connect HOST:PORT`"
                    .to_string(),
            },
            Self::NotFound { what, .. } => format!(
                "the {what} does not exist: check the image name and tag, e.g. with \
                 `skopeo inspect docker://…`"
            ),
            Self::RateLimited { .. } => {
                "the registry is rate-limiting: wait and retry, lower --concurrency, or log in \
                 for a higher limit"
                    .to_string()
            }
            Self::Unreachable { target, .. } => format!(
                "check that `{}` is the right host and port, that the registry runs, and that \
                 no firewall or proxy is in the way; for a plain-HTTP registry pass \
                 --insecure-registry {}",
                target.registry, target.registry
            ),
            Self::Status { status, .. } if *status == 404 => {
                "404 on /v2/: is this a registry? check the host, port and path prefix".to_string()
            }
            Self::Status { status, .. } if *status >= 500 => {
                "the registry failed internally: check its logs; the operation can be re-run \
                 and resumes where it stopped"
                    .to_string()
            }
            Self::Status { .. } => {
                "the registry refused the request: check its logs and the registry's \
                 documentation for the status"
                    .to_string()
            }
            Self::Protocol { .. } => {
                "the registry or a proxy in between returned bad content: retry, and check \
                 whatever sits between this machine and the registry"
                    .to_string()
            }
        }
    }

    /// True when the registry answered with an error body naming `code` (an OCI error code such
    /// as `MANIFEST_BLOB_UNKNOWN`, compared without regard to case).
    pub fn has_code(&self, code: &str) -> bool {
        match self {
            Self::Status { codes, .. } => codes.iter().any(|c| c.eq_ignore_ascii_case(code)),
            _ => false,
        }
    }

    /// True for failures worth retrying: 5xx, 408, 429, resets, timeouts.
    pub fn is_transient(&self) -> bool {
        self.retry() != Retry::Never
    }

    /// Classifies an HTTP status that is not a success. `body` is the response body (only its
    /// first few hundred bytes are kept, as the message).
    pub fn from_status(
        target: Target,
        status: u16,
        body: &[u8],
        had_credentials: bool,
        retry_after: Option<Duration>,
    ) -> Self {
        let (message, codes) = error_message(body);
        match status {
            401 | 403 => Self::AuthRefused {
                target,
                status,
                had_credentials,
            },
            404 => Self::NotFound {
                what: not_found_what(&message),
                target,
            },
            429 => Self::RateLimited {
                target,
                retry_after,
            },
            _ => Self::Status {
                target,
                status,
                message,
                codes,
                retry_after,
            },
        }
    }

    /// Classifies a transport error from reqwest: TLS certificate problems become
    /// [`RegistryError::UnknownCa`] / [`RegistryError::BadCertificate`], everything else
    /// [`RegistryError::Unreachable`].
    pub fn from_reqwest(target: Target, err: reqwest::Error) -> Self {
        if let Some(status) = err.status() {
            return Self::from_status(target, status.as_u16(), b"", true, None);
        }
        if err.is_decode() || err.is_builder() {
            return Self::Protocol {
                target,
                detail: error_chain(&err),
            };
        }
        Self::from_transport(target, Box::new(err))
    }

    /// Classifies a failure while reading a response body (a connection cut mid-body): a
    /// transport failure, retryable, never bad content (no content decoding is enabled, so
    /// reqwest's "decode" kind only ever means the body could not be read).
    pub fn from_body(target: Target, err: reqwest::Error) -> Self {
        Self::from_transport(target, Box::new(err))
    }

    /// Classifies any transport-level error (with a source chain) by its TLS cause, if any.
    pub fn from_transport(target: Target, err: Box<dyn StdError + Send + Sync>) -> Self {
        match classify_tls(err.as_ref()) {
            Some(TlsProblem::UnknownIssuer) => Self::UnknownCa {
                target,
                source: err,
            },
            Some(problem) => Self::BadCertificate {
                target,
                problem,
                source: err,
            },
            None => Self::Unreachable {
                target,
                source: err,
            },
        }
    }

    /// Classifies an error from `oci-client`.
    pub fn from_oci(target: Target, err: OciDistributionError, had_credentials: bool) -> Self {
        use OciDistributionError as E;
        match err {
            E::RequestError(e) => Self::from_reqwest(target, e),
            E::UnauthorizedError { .. } => Self::AuthRefused {
                target,
                status: 401,
                had_credentials,
            },
            E::AuthenticationFailure(_) => Self::AuthRefused {
                target,
                status: 401,
                had_credentials,
            },
            E::RegistryError { envelope, .. } => {
                let codes: Vec<String> = envelope
                    .errors
                    .iter()
                    .map(|e| format!("{:?}", e.code))
                    .collect();
                let message = envelope
                    .errors
                    .iter()
                    .map(|e| format!("{:?}: {}", e.code, e.message))
                    .collect::<Vec<_>>()
                    .join("; ");
                let has = |c: &str| codes.iter().any(|x| x.eq_ignore_ascii_case(c));
                if has("Unauthorized") || has("Denied") {
                    Self::AuthRefused {
                        target,
                        status: if has("Denied") { 403 } else { 401 },
                        had_credentials,
                    }
                } else if has("ManifestUnknown") || has("NameUnknown") || has("BlobUnknown") {
                    Self::NotFound {
                        what: not_found_what(&message),
                        target,
                    }
                } else if has("Toomanyrequests") {
                    Self::RateLimited {
                        target,
                        retry_after: None,
                    }
                } else {
                    Self::Status {
                        target,
                        status: 400,
                        message,
                        codes: Vec::new(),
                        retry_after: None,
                    }
                }
            }
            E::ServerError { code, message, .. } => {
                Self::from_status(target, code, message.as_bytes(), had_credentials, None)
            }
            E::ImageManifestNotFoundError(m) => Self::NotFound {
                target,
                what: format!("manifest ({m})"),
            },
            E::IoError(e) => Self::from_transport(target, Box::new(e)),
            other => Self::Protocol {
                target,
                detail: error_chain(&other),
            },
        }
    }
}

impl Retryable for RegistryError {
    /// Unreachable (resets, refusals, timeouts), 5xx, 408 and 429 are transient; a
    /// `Retry-After` the registry sent is honoured.
    fn retry(&self) -> Retry {
        let after = |d: &Option<Duration>| d.map_or(Retry::Backoff, Retry::After);
        match self {
            Self::Unreachable { .. } => Retry::Backoff,
            Self::RateLimited { retry_after, .. } => after(retry_after),
            Self::Status {
                status,
                retry_after,
                ..
            } if is_retryable_status(*status) => after(retry_after),
            _ => Retry::Never,
        }
    }
}

/// The error and its sources joined with `: `, for `detail` strings of protocol errors.
pub(crate) fn error_chain(err: &dyn StdError) -> String {
    let mut out = err.to_string();
    let mut cur = err.source();
    while let Some(e) = cur {
        out.push_str(": ");
        out.push_str(&e.to_string());
        cur = e.source();
    }
    out
}

fn not_found_what(message: &str) -> String {
    let m = message.to_ascii_lowercase();
    if m.contains("blob") {
        "blob".to_string()
    } else if m.contains("name unknown") || m.contains("name_unknown") || m.contains("nameunknown")
    {
        "repository".to_string()
    } else {
        "tag or manifest".to_string()
    }
}

/// Extracts a short message and the error codes from an OCI error body
/// (`{"errors":[{"code":…,"message":…}]}`), or falls back to the first 200 characters of the
/// text and no code.
fn error_message(body: &[u8]) -> (String, Vec<String>) {
    #[derive(serde::Deserialize)]
    struct Envelope {
        errors: Vec<Item>,
    }
    #[derive(serde::Deserialize)]
    struct Item {
        #[serde(default)]
        code: String,
        #[serde(default)]
        message: String,
    }
    if let Ok(env) = serde_json::from_slice::<Envelope>(body) {
        let message = env
            .errors
            .iter()
            .map(|e| format!("{}: {}", e.code, e.message))
            .collect::<Vec<_>>()
            .join("; ");
        let codes = env.errors.into_iter().map(|e| e.code).collect();
        return (message, codes);
    }
    let text = String::from_utf8_lossy(body);
    (text.trim().chars().take(200).collect(), Vec::new())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t() -> Target {
        Target::new("reg.example:5000", "acme/api:1.0")
    }

    #[test]
    fn statuses_map_to_named_errors_with_hints() {
        let e = RegistryError::from_status(t(), 401, b"", true, None);
        assert!(matches!(e, RegistryError::AuthRefused { status: 401, .. }));
        assert!(e.hint().contains("check the user and password"));
        assert!(e.to_string().contains("reg.example:5000"));
        assert!(e.to_string().contains("acme/api:1.0"));

        let body = br#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown"}]}"#;
        let e = RegistryError::from_status(t(), 404, body, false, None);
        assert!(matches!(e, RegistryError::NotFound { .. }));
        assert!(!e.is_transient());

        let e = RegistryError::from_status(t(), 429, b"", false, Some(Duration::from_secs(3)));
        assert!(matches!(e, RegistryError::RateLimited { .. }));
        assert!(e.is_transient());

        let e = RegistryError::from_status(t(), 503, b"busy", false, None);
        assert!(e.is_transient());
        assert!(e.to_string().contains("503"));
    }

    #[test]
    fn the_error_codes_of_a_refusal_are_kept() {
        let body = br#"{"errors":[{"code":"DIGEST_INVALID","message":"invalid digest"},
            {"code":"MANIFEST_BLOB_UNKNOWN","message":"blob unknown to registry","detail":"sha256:ab"}]}"#;
        let e = RegistryError::from_status(t(), 400, body, false, None);
        assert!(e.has_code("MANIFEST_BLOB_UNKNOWN") && e.has_code("digest_invalid"));
        assert!(!e.has_code("BLOB_UNKNOWN"));
        assert!(
            !e.is_transient(),
            "a refusal is not retried by the transport"
        );
        assert!(
            e.to_string()
                .contains("MANIFEST_BLOB_UNKNOWN: blob unknown"),
            "{e}"
        );
        // A body that is not an OCI error carries no code.
        let e = RegistryError::from_status(t(), 400, b"MANIFEST_BLOB_UNKNOWN", false, None);
        assert!(!e.has_code("MANIFEST_BLOB_UNKNOWN"));
    }

    #[test]
    fn retry_classes_follow_the_status_and_retry_after() {
        let secs = |n| Some(Duration::from_secs(n));
        let class =
            |status, after| RegistryError::from_status(t(), status, b"", false, after).retry();
        assert_eq!(class(503, secs(2)), Retry::After(Duration::from_secs(2)));
        assert_eq!(class(429, secs(5)), Retry::After(Duration::from_secs(5)));
        assert_eq!(class(429, None), Retry::Backoff);
        assert_eq!(class(502, None), Retry::Backoff);
        assert_eq!(class(408, None), Retry::Backoff);
        for permanent in [400, 401, 403, 404, 405] {
            assert_eq!(class(permanent, secs(1)), Retry::Never, "{permanent}");
        }
        let reset = RegistryError::Unreachable {
            target: t(),
            source: Box::new(std::io::Error::from(std::io::ErrorKind::ConnectionReset)),
        };
        assert_eq!(reset.retry(), Retry::Backoff);
        let bad = RegistryError::Protocol {
            target: t(),
            detail: "x".into(),
        };
        assert_eq!(bad.retry(), Retry::Never);
    }
}
