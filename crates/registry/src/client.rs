//! A small OCI distribution client for pushing: ping, auth (basic and bearer tokens, cached per
//! scope), blob HEAD, cross-repository mount, streamed monolithic upload, manifest HEAD/PUT with
//! the exact original bytes, and cancelling an upload (for preflight).
//!
//! Every request retries transient failures (5xx, 408, 429 honouring `Retry-After`, resets,
//! timeouts) as the one [`RetryPolicy`] says; failures come back as a named [`RegistryError`] that carries the
//! registry and repository. Blob uploads live in [`crate::upload`].

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use airlift_bundle::oci::ACCEPTED_MANIFEST_TYPES;
use airlift_bundle::Digest;
use bytes::Bytes;
use http::header::{
    ACCEPT, AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE, LOCATION, WWW_AUTHENTICATE,
};
use http::StatusCode;
use url::Url;

use crate::auth::{authorize, resolve_credentials, AuthError, Challenge, Credentials};
use crate::error::{RegistryError, Target};
use crate::options::RegistryOptions;
use crate::retry::{is_retryable_status, parse_retry_after, Retry, RetryPolicy, Retryable};
use crate::tls::{http_client, TlsError};

/// Errors from setting a client up (before any request is sent).
#[derive(Debug, thiserror::Error)]
pub enum ClientSetupError {
    /// The TLS configuration (CA files) is unusable.
    #[error("cannot set up TLS for registry `{registry}`")]
    Tls {
        /// The registry.
        registry: String,
        /// The cause.
        #[source]
        source: TlsError,
    },
    /// The registry name does not make a URL.
    #[error("`{registry}` is not a registry host[:port]")]
    BadRegistry {
        /// The registry as given.
        registry: String,
        /// The cause.
        #[source]
        source: url::ParseError,
    },
    /// Looking up credentials failed.
    #[error("cannot find credentials for registry `{registry}`")]
    Auth {
        /// The registry.
        registry: String,
        /// The cause.
        #[source]
        source: AuthError,
    },
}

impl ClientSetupError {
    /// How the operator can fix this.
    pub fn hint(&self) -> &'static str {
        match self {
            Self::Tls { source, .. } => source.hint(),
            Self::Auth { source, .. } => source.hint(),
            Self::BadRegistry { .. } => "give the registry as HOST[:PORT], e.g. registry.corp:5000",
        }
    }
}

/// What a started upload turned into.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UploadStart {
    /// The registry mounted the blob from another repository: nothing to send.
    Mounted,
    /// An upload session to PUT the blob to.
    Session(Url),
}

/// What a manifest HEAD found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestHead {
    /// `Docker-Content-Digest`, when the registry sent it.
    pub digest: Option<Digest>,
    /// `Content-Type`, when the registry sent it.
    pub media_type: Option<String>,
}

#[derive(Default)]
struct AuthState {
    /// The registry's challenge, once seen.
    challenge: Option<Challenge>,
    /// `Authorization` values by scope.
    tokens: HashMap<String, String>,
}

/// A client for one registry.
pub struct RegistryClient {
    pub(crate) http: reqwest::Client,
    registry: String,
    base: Url,
    creds: Option<Credentials>,
    auth: Mutex<AuthState>,
    pub(crate) retry: RetryPolicy,
    /// Read buffers of upload bodies, reused across this client's uploads.
    pub(crate) chunks: Arc<crate::chunks::ChunkPool>,
}

impl std::fmt::Debug for RegistryClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegistryClient")
            .field("registry", &self.registry)
            .field("base", &self.base.as_str())
            .field("has_credentials", &self.creds.is_some())
            .finish()
    }
}

/// Retry or not, per request.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Retries {
    Yes,
    No,
}

impl RegistryClient {
    /// A client for `registry` (`host[:port]`) with the TLS, credentials and retry policy of
    /// `opts`.
    pub fn new(registry: &str, opts: &RegistryOptions) -> Result<Self, ClientSetupError> {
        let http = http_client(opts).map_err(|source| ClientSetupError::Tls {
            registry: registry.to_string(),
            source,
        })?;
        let creds = resolve_credentials(registry, opts)
            .map_err(|source| ClientSetupError::Auth {
                registry: registry.to_string(),
                source,
            })?
            .map(|r| r.credentials);
        Self::with_http(http, registry, opts, creds)
    }

    /// A client over a given reqwest client (tests, or a shared connection pool).
    pub fn with_http(
        http: reqwest::Client,
        registry: &str,
        opts: &RegistryOptions,
        creds: Option<Credentials>,
    ) -> Result<Self, ClientSetupError> {
        let base = Url::parse(&opts.api_base(registry)).map_err(|source| {
            ClientSetupError::BadRegistry {
                registry: registry.to_string(),
                source,
            }
        })?;
        Ok(Self {
            http,
            registry: registry.to_string(),
            base,
            creds,
            auth: Mutex::new(AuthState::default()),
            retry: opts.retry,
            chunks: crate::chunks::ChunkPool::new(crate::upload::CHUNK, crate::upload::KEPT_CHUNKS),
        })
    }

    /// The registry, `host[:port]`.
    pub fn registry(&self) -> &str {
        &self.registry
    }

    pub(crate) fn http_client(&self) -> &reqwest::Client {
        &self.http
    }

    pub(crate) fn retry_policy(&self) -> RetryPolicy {
        self.retry
    }

    pub(crate) fn same_origin_url(&self, url: &Url) -> bool {
        self.same_origin(url)
    }

    pub(crate) fn target(&self, image: impl Into<String>) -> Target {
        Target::new(self.registry.clone(), image)
    }

    pub(crate) fn url(&self, path: &str) -> Url {
        // `path` is built from validated repository names and digests only.
        self.base.join(path).unwrap_or_else(|_| self.base.clone())
    }

    pub(crate) fn push_scope(repo: &str) -> String {
        format!("repository:{repo}:pull,push")
    }

    /// `GET /v2/`: the registry answers and speaks the distribution API. With credentials, also
    /// checks that they are accepted. A 404 is reported as [`RegistryError::Status`] 404, whose
    /// hint asks whether this is a registry at all.
    pub async fn ping(&self) -> Result<(), RegistryError> {
        let target = self.target("/v2/");
        let url = self.url("");
        let resp = self
            .send(&target, None, Retries::Yes, &url, || {
                self.http.get(url.clone())
            })
            .await?;
        let status = resp.status();
        if status.is_success() {
            return Ok(());
        }
        let body = body_prefix(resp, ERROR_BODY_LIMIT)
            .await
            .unwrap_or_default();
        if status == StatusCode::NOT_FOUND {
            return Err(RegistryError::Status {
                target,
                status: 404,
                message: "the server has no /v2/ API".to_string(),
                codes: Vec::new(),
                retry_after: None,
            });
        }
        Err(RegistryError::from_status(
            target,
            status.as_u16(),
            &body,
            self.creds.is_some(),
            None,
        ))
    }

    /// `HEAD /v2/<repo>/blobs/<digest>`: the blob's size when the repository holds it.
    pub async fn blob_exists(
        &self,
        repo: &str,
        digest: &Digest,
    ) -> Result<Option<u64>, RegistryError> {
        let target = self.target(format!("{repo}@{digest}"));
        let url = self.url(&format!("{repo}/blobs/{digest}"));
        let scope = Self::push_scope(repo);
        let resp = self
            .send(&target, Some(&scope), Retries::Yes, &url, || {
                self.http.head(url.clone())
            })
            .await?;
        match resp.status() {
            s if s.is_success() => Ok(Some(
                resp.headers()
                    .get(CONTENT_LENGTH)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0),
            )),
            StatusCode::NOT_FOUND => Ok(None),
            s => Err(self.status_error(target, s, resp).await),
        }
    }

    /// `POST /v2/<repo>/blobs/uploads/`, with `?mount=<digest>&from=<repo>` when `mount_from` is
    /// given: either the registry mounts the blob (201) or it opens an upload session (202).
    pub async fn start_upload(
        &self,
        repo: &str,
        digest: &Digest,
        mount_from: Option<&str>,
    ) -> Result<UploadStart, RegistryError> {
        let target = self.target(format!("{repo}@{digest}"));
        let mut url = self.url(&format!("{repo}/blobs/uploads/"));
        if let Some(from) = mount_from {
            url.query_pairs_mut()
                .append_pair("mount", &digest.to_string())
                .append_pair("from", from);
        }
        let scope = Self::push_scope(repo);
        let resp = self
            .send(&target, Some(&scope), Retries::Yes, &url, || {
                self.http.post(url.clone()).header(CONTENT_LENGTH, "0")
            })
            .await?;
        let status = resp.status();
        if status == StatusCode::CREATED && mount_from.is_some() {
            let _ = body_prefix(resp, DRAIN_LIMIT).await;
            return Ok(UploadStart::Mounted);
        }
        if status != StatusCode::ACCEPTED {
            return Err(self.status_error(target, status, resp).await);
        }
        let location = resp
            .headers()
            .get(LOCATION)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let base = resp.url().clone();
        let _ = body_prefix(resp, DRAIN_LIMIT).await;
        let location = location.ok_or_else(|| RegistryError::Protocol {
            target: target.clone(),
            detail: "upload started (202) without a Location header".to_string(),
        })?;
        let session = base.join(&location).map_err(|e| RegistryError::Protocol {
            target,
            detail: format!("upload Location `{location}` is not a URL: {e}"),
        })?;
        Ok(UploadStart::Session(session))
    }

    /// `DELETE` an upload session (preflight starts one to prove push rights, then cancels it).
    pub async fn cancel_upload(&self, repo: &str, session: &Url) -> Result<(), RegistryError> {
        let target = self.target(repo.to_string());
        let scope = Self::push_scope(repo);
        let resp = self
            .send(&target, Some(&scope), Retries::Yes, session, || {
                self.http.delete(session.clone())
            })
            .await?;
        let status = resp.status();
        // 404: the session is already gone, which is what we wanted.
        if status.is_success() || status == StatusCode::NOT_FOUND {
            let _ = body_prefix(resp, DRAIN_LIMIT).await;
            return Ok(());
        }
        Err(self.status_error(target, status, resp).await)
    }

    /// `HEAD /v2/<repo>/manifests/<reference>` (a tag or a digest).
    pub async fn manifest_head(
        &self,
        repo: &str,
        reference: &str,
    ) -> Result<Option<ManifestHead>, RegistryError> {
        let target = self.target(format!("{repo}:{reference}"));
        let url = self.url(&format!("{repo}/manifests/{reference}"));
        let scope = Self::push_scope(repo);
        let accept = ACCEPTED_MANIFEST_TYPES.join(", ");
        let resp = self
            .send(&target, Some(&scope), Retries::Yes, &url, || {
                self.http.head(url.clone()).header(ACCEPT, accept.as_str())
            })
            .await?;
        match resp.status() {
            s if s.is_success() => {
                let header = |name: &str| {
                    resp.headers()
                        .get(name)
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_string)
                };
                Ok(Some(ManifestHead {
                    digest: header("docker-content-digest").and_then(|d| d.parse().ok()),
                    media_type: header("content-type"),
                }))
            }
            StatusCode::NOT_FOUND => Ok(None),
            s => Err(self.status_error(target, s, resp).await),
        }
    }

    /// `PUT /v2/<repo>/manifests/<reference>` with the exact original bytes and media type.
    /// Checks that the registry computed the same digest.
    pub async fn put_manifest(
        &self,
        repo: &str,
        reference: &str,
        media_type: &str,
        bytes: Bytes,
    ) -> Result<(), RegistryError> {
        let target = self.target(format!("{repo}:{reference}"));
        let url = self.url(&format!("{repo}/manifests/{reference}"));
        let scope = Self::push_scope(repo);
        let resp = self
            .send(&target, Some(&scope), Retries::Yes, &url, || {
                self.http
                    .put(url.clone())
                    .header(CONTENT_TYPE, media_type)
                    .body(bytes.clone())
            })
            .await?;
        let status = resp.status();
        if !status.is_success() {
            return Err(self.status_error(target, status, resp).await);
        }
        let expected = Digest::of_bytes(&bytes);
        let got = resp
            .headers()
            .get("docker-content-digest")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<Digest>().ok());
        let _ = body_prefix(resp, DRAIN_LIMIT).await;
        match got {
            Some(d) if d != expected => Err(RegistryError::Protocol {
                target,
                detail: format!("the registry stored the manifest as {d}, expected {expected}"),
            }),
            _ => Ok(()),
        }
    }

    /// Credentials never leave the registry's own origin (upload sessions may live elsewhere).
    fn same_origin(&self, url: &Url) -> bool {
        url.scheme() == self.base.scheme()
            && url.host_str() == self.base.host_str()
            && url.port_or_known_default() == self.base.port_or_known_default()
    }

    pub(crate) async fn status_error(
        &self,
        target: Target,
        status: StatusCode,
        resp: reqwest::Response,
    ) -> RegistryError {
        let retry_after = retry_after(&resp);
        let body = body_prefix(resp, ERROR_BODY_LIMIT)
            .await
            .unwrap_or_default();
        let body = &body[..];
        RegistryError::from_status(
            target,
            status.as_u16(),
            body,
            self.creds.is_some(),
            retry_after,
        )
    }

    /// The `Authorization` value cached for `scope`, or fetched when the challenge is known.
    async fn auth_header(
        &self,
        target: &Target,
        scope: Option<&str>,
        refresh: bool,
    ) -> Result<Option<String>, RegistryError> {
        let key = scope.unwrap_or("").to_string();
        let challenge = {
            let mut state = self.auth.lock().unwrap_or_else(|p| p.into_inner());
            if refresh {
                state.tokens.remove(&key);
            } else if let Some(h) = state.tokens.get(&key) {
                return Ok(Some(h.clone()));
            }
            state.challenge.clone()
        };
        let Some(challenge) = challenge else {
            return Ok(None);
        };
        let header = authorize(&self.http, target, &challenge, scope, self.creds.as_ref()).await?;
        if let Some(h) = &header {
            let mut state = self.auth.lock().unwrap_or_else(|p| p.into_inner());
            state.tokens.insert(key, h.clone());
        }
        Ok(header)
    }

    /// Sends a request built by `build`, answering auth challenges and retrying transient
    /// failures. Returns the final response whatever its status, except that a 401 after
    /// authenticating becomes [`RegistryError::AuthRefused`] and transient statuses that outlast
    /// the retries become their classified error.
    pub(crate) async fn send(
        &self,
        target: &Target,
        scope: Option<&str>,
        retries: Retries,
        url: &Url,
        build: impl Fn() -> reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, RegistryError> {
        let mut attempt = 0u32;
        let mut refreshed = false;
        loop {
            attempt += 1;
            let header = self.auth_header(target, scope, false).await?;
            let mut req = build();
            if let Some(h) = &header {
                if self.same_origin(url) {
                    req = req.header(AUTHORIZATION, h);
                }
            }
            let outcome = req.send().await;
            let policy = match retries {
                Retries::Yes => self.retry,
                Retries::No => RetryPolicy::none(),
            };
            let resp = match outcome {
                Ok(r) => r,
                Err(e) => {
                    let err = RegistryError::from_reqwest(target.clone(), e);
                    if let Some(wait) = policy.next_delay(attempt, err.retry()) {
                        tokio::time::sleep(wait).await;
                        continue;
                    }
                    return Err(err);
                }
            };
            let status = resp.status();
            if status == StatusCode::UNAUTHORIZED {
                let challenge = resp
                    .headers()
                    .get(WWW_AUTHENTICATE)
                    .and_then(|v| v.to_str().ok())
                    .and_then(Challenge::parse);
                let known = {
                    let mut state = self.auth.lock().unwrap_or_else(|p| p.into_inner());
                    let known = state.challenge.is_some();
                    if let Some(c) = challenge {
                        state.challenge = Some(c);
                    }
                    known
                };
                let can_answer = self.creds.is_some() || !known;
                if !refreshed && can_answer && scope.is_some() {
                    refreshed = true;
                    let _ = body_prefix(resp, DRAIN_LIMIT).await;
                    if self.auth_header(target, scope, true).await?.is_some() {
                        attempt -= 1;
                        continue;
                    }
                    return Err(RegistryError::AuthRefused {
                        target: target.clone(),
                        status: 401,
                        had_credentials: self.creds.is_some(),
                    });
                }
                if scope.is_none() && !refreshed && self.creds.is_some() {
                    // Ping: log in once with no scope to check the credentials.
                    refreshed = true;
                    if self.auth_header(target, None, true).await?.is_some() {
                        attempt -= 1;
                        continue;
                    }
                }
                return Ok(resp);
            }
            if is_retryable_status(status.as_u16()) {
                let class = retry_after(&resp).map_or(Retry::Backoff, Retry::After);
                if let Some(wait) = policy.next_delay(attempt, class) {
                    let _ = body_prefix(resp, DRAIN_LIMIT).await;
                    tokio::time::sleep(wait).await;
                    continue;
                }
            }
            return Ok(resp);
        }
    }
}

/// The most bytes of an error body read (the message is taken from them).
pub(crate) const ERROR_BODY_LIMIT: usize = 4096;
/// The most bytes read from a response only to finish it; a longer body is dropped with the
/// connection.
pub(crate) const DRAIN_LIMIT: usize = 64 * 1024;

/// At most `limit` bytes of a response's body, read chunk by chunk: a registry that sends an
/// endless body costs `limit` bytes of memory, not all of it.
pub(crate) async fn body_prefix(
    mut resp: reqwest::Response,
    limit: usize,
) -> Result<Vec<u8>, reqwest::Error> {
    let mut out = Vec::new();
    while out.len() < limit {
        let Some(chunk) = resp.chunk().await? else {
            break;
        };
        let room = limit - out.len();
        out.extend_from_slice(&chunk[..chunk.len().min(room)]);
    }
    Ok(out)
}

/// The response's `Retry-After`, when it has a valid one.
fn retry_after(resp: &reqwest::Response) -> Option<std::time::Duration> {
    resp.headers()
        .get(http::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| parse_retry_after(v, std::time::SystemTime::now()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(registry: &str, insecure: bool) -> RegistryClient {
        let mut opts = RegistryOptions::default().without_auth_files();
        if insecure {
            opts = opts.with_insecure(registry);
        }
        RegistryClient::with_http(reqwest::Client::new(), registry, &opts, None).unwrap()
    }

    #[test]
    fn credentials_stay_on_the_registry_origin() {
        let c = client("reg.corp:5000", false);
        let same = Url::parse("https://reg.corp:5000/v2/a/blobs/uploads/x?_state=1").unwrap();
        assert!(c.same_origin(&same));
        for other in [
            "https://storage.corp:5000/upload",
            "http://reg.corp:5000/v2/",
            "https://reg.corp/v2/",
        ] {
            assert!(!c.same_origin(&Url::parse(other).unwrap()), "{other}");
        }
        assert!(client("127.0.0.1:5000", true)
            .same_origin(&Url::parse("http://127.0.0.1:5000/v2/").unwrap()));
    }

    #[test]
    fn a_registry_that_is_not_a_host_is_a_setup_error() {
        let opts = RegistryOptions::default().without_auth_files();
        let e =
            RegistryClient::with_http(reqwest::Client::new(), "bad host", &opts, None).unwrap_err();
        assert!(matches!(e, ClientSetupError::BadRegistry { .. }), "{e:?}");
        assert!(e.to_string().contains("bad host"));
    }
}
