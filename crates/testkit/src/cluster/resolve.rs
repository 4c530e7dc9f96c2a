//! What a node's containerd does when the kubelet asks it to pull an image, up to (not including)
//! downloading layers: resolve the reference against the registry over HTTP(S), with the Pod's
//! pull-secret credentials (basic auth or the Docker token flow), pick the manifest for the
//! node's platform from an index, and check that the config and layer blobs exist.
//!
//! A failure comes back as the message a real kubelet records in its `Failed` Event.

use airlift_bundle::error_chain as chain;
use airlift_bundle::reference::ImageRef;
use base64::Engine;
use reqwest::header::{HeaderValue, ACCEPT, AUTHORIZATION, WWW_AUTHENTICATE};
use reqwest::{Method, StatusCode};
use serde_json::Value;
use sha2::Digest as _;

/// What containerd asks for: every manifest and index media type it understands.
const MANIFEST_ACCEPT: &str = "application/vnd.docker.distribution.manifest.v2+json, \
    application/vnd.docker.distribution.manifest.list.v2+json, \
    application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json, */*";

/// A registry credential from a pull secret.
#[derive(Clone)]
pub(crate) struct Credential {
    /// User name.
    pub user: String,
    /// Password or token.
    pub password: String,
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credential")
            .field("user", &self.user)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// How the node reaches registries.
#[derive(Debug, Clone)]
pub(crate) struct Resolver {
    /// The HTTP client (TLS roots: the system's plus the configured registry CAs).
    pub client: reqwest::Client,
    /// Registry hosts reached over plain HTTP.
    pub insecure: Vec<String>,
}

/// Why a pull failed: containerd's gRPC code and its error text.
struct Failure {
    code: &'static str,
    detail: String,
}

impl Failure {
    fn not_found(detail: String) -> Self {
        Failure {
            code: "NotFound",
            detail,
        }
    }

    fn unknown(detail: String) -> Self {
        Failure {
            code: "Unknown",
            detail,
        }
    }
}

/// One registry conversation, remembering the Authorization a challenge asked for.
struct Session<'a> {
    resolver: &'a Resolver,
    cred: Option<&'a Credential>,
    auth: Option<HeaderValue>,
}

impl Session<'_> {
    /// Sends a request, answering one `401` challenge (Basic, or a Bearer token) if it can.
    async fn send(
        &mut self,
        method: Method,
        url: &str,
        accept: &str,
    ) -> Result<reqwest::Response, Failure> {
        let verb = method.as_str().to_string();
        let build = |auth: &Option<HeaderValue>| {
            let mut rb = self
                .resolver
                .client
                .request(method.clone(), url)
                .header(ACCEPT, accept);
            if let Some(a) = auth {
                rb = rb.header(AUTHORIZATION, a.clone());
            }
            rb
        };
        let do_request = |e: reqwest::Error| {
            Failure::unknown(format!(
                "failed to do request: {} \"{url}\": {}",
                title(&verb),
                chain(&e)
            ))
        };
        let resp = build(&self.auth).send().await.map_err(do_request)?;
        if resp.status() != StatusCode::UNAUTHORIZED || self.auth.is_some() {
            return Ok(resp);
        }
        let challenge = resp
            .headers()
            .get(WWW_AUTHENTICATE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        let auth = if challenge.to_ascii_lowercase().starts_with("bearer") {
            Some(self.token(&challenge).await?)
        } else {
            self.cred.map(|c| {
                let raw = format!("{}:{}", c.user, c.password);
                let b64 = base64::engine::general_purpose::STANDARD.encode(raw);
                HeaderValue::from_str(&format!("Basic {b64}"))
                    .unwrap_or_else(|_| HeaderValue::from_static(""))
            })
        };
        let Some(auth) = auth else {
            return Ok(resp);
        };
        self.auth = Some(auth);
        build(&self.auth).send().await.map_err(do_request)
    }

    /// The Docker token flow: GET the realm with the service and scope, with basic auth when
    /// there is a credential.
    async fn token(&self, challenge: &str) -> Result<HeaderValue, Failure> {
        let param = |name: &str| -> Option<String> {
            let at = challenge.find(&format!("{name}=\""))? + name.len() + 2;
            let end = challenge[at..].find('"')?;
            Some(challenge[at..at + end].to_string())
        };
        let realm = param("realm").unwrap_or_default();
        let mut query = Vec::new();
        for k in ["service", "scope"] {
            if let Some(v) = param(k) {
                query.push((k, v));
            }
        }
        let mut rb = self.resolver.client.get(&realm).query(&query);
        if let Some(c) = self.cred {
            rb = rb.basic_auth(&c.user, Some(&c.password));
        }
        let kind = if self.cred.is_some() {
            "oauth"
        } else {
            "anonymous"
        };
        let failed = |why: String| {
            Failure::unknown(format!(
                "failed to authorize: failed to fetch {kind} token: {why}"
            ))
        };
        let resp = rb.send().await.map_err(|e| {
            failed(format!(
                "failed to do request: Get \"{realm}\": {}",
                chain(&e)
            ))
        })?;
        let status = resp.status();
        if !status.is_success() {
            return Err(failed(format!(
                "unexpected status from GET request to {realm}: {status}"
            )));
        }
        let bytes = read_bounded(resp, &realm)
            .await
            .map_err(|e| failed(format!("failed to read token response: {e}")))?;
        let body: Value = serde_json::from_slice(&bytes)
            .map_err(|e| failed(format!("failed to decode token response: {e}")))?;
        let token = body["token"]
            .as_str()
            .or(body["access_token"].as_str())
            .unwrap_or_default();
        HeaderValue::from_str(&format!("Bearer {token}"))
            .map_err(|_| failed("the token is not a valid header value".into()))
    }

    /// GETs a document (manifest or config) and returns its bytes.
    async fn fetch(&mut self, url: &str, accept: &str) -> Result<Option<Vec<u8>>, Failure> {
        let resp = self.send(Method::GET, url, accept).await?;
        match resp.status() {
            StatusCode::OK => read_bounded(resp, url)
                .await
                .map(Some)
                .map_err(|e| Failure::unknown(format!("failed to read {url}: {e}"))),
            StatusCode::NOT_FOUND => Ok(None),
            status => Err(Failure::unknown(format!(
                "unexpected status from GET request to {url}: {status}"
            ))),
        }
    }

    /// HEADs a blob; a missing one is containerd's `failed to copy` error.
    async fn blob_exists(&mut self, base: &str, digest: &str) -> Result<(), Failure> {
        let url = format!("{base}/blobs/{digest}");
        let resp = self.send(Method::HEAD, &url, "*/*").await?;
        match resp.status() {
            StatusCode::OK => Ok(()),
            StatusCode::NOT_FOUND => Err(Failure::not_found(format!(
                "failed to copy: httpReadSeeker: failed open: content at {url} not found: not found"
            ))),
            status => Err(Failure::unknown(format!(
                "failed to copy: httpReadSeeker: failed open: unexpected status code {url}: {status}"
            ))),
        }
    }
}

fn title(method: &str) -> String {
    let lower = method.to_ascii_lowercase();
    let mut c = lower.chars();
    c.next()
        .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
        .unwrap_or_default()
}

fn is_index(doc: &Value) -> bool {
    let mt = doc["mediaType"].as_str().unwrap_or_default();
    mt.contains("index") || mt.contains("manifest.list") || doc["manifests"].is_array()
}

/// Resolves `image` for a node of `arch` and returns the digest containerd would record as the
/// repo digest (the index digest when the reference names an index), or the kubelet's `Failed`
/// Event message.
pub(crate) async fn pull(
    resolver: &Resolver,
    image: &str,
    arch: &str,
    cred: Option<&Credential>,
) -> Result<String, String> {
    let r = ImageRef::parse(image).map_err(|_| {
        format!("Failed to apply default image tag \"{image}\": couldn't parse image reference \"{image}\": invalid reference format")
    })?;
    let full = r.to_string();
    resolve(resolver, &r, &full, arch, cred).await.map_err(|f| {
        format!(
            "Failed to pull image \"{image}\": rpc error: code = {} desc = failed to pull and unpack image \"{full}\": {}",
            f.code, f.detail
        )
    })
}

async fn resolve(
    resolver: &Resolver,
    r: &ImageRef,
    full: &str,
    arch: &str,
    cred: Option<&Credential>,
) -> Result<String, Failure> {
    let host = match r.registry.as_str() {
        "docker.io" => "registry-1.docker.io",
        h => h,
    };
    let scheme = if resolver.insecure.iter().any(|h| h == &r.registry) {
        "http"
    } else {
        "https"
    };
    let base = format!("{scheme}://{host}/v2/{}", r.repository);
    let reference = match (&r.digest, &r.tag) {
        (Some(d), _) => d.to_string(),
        (None, Some(t)) => t.clone(),
        (None, None) => "latest".to_string(),
    };
    let mut s = Session {
        resolver,
        cred,
        auth: None,
    };
    let url = format!("{base}/manifests/{reference}");
    // containerd resolves with HEAD first: that is where a 401 or a 404 shows.
    let head = s
        .send(Method::HEAD, &url, MANIFEST_ACCEPT)
        .await
        .map_err(|f| Failure {
            code: f.code,
            detail: format!("failed to resolve reference \"{full}\": {}", f.detail),
        })?;
    match head.status() {
        StatusCode::OK => {}
        StatusCode::NOT_FOUND => {
            return Err(Failure::not_found(format!(
                "failed to resolve reference \"{full}\": {full}: not found"
            )))
        }
        status => {
            return Err(Failure::unknown(format!(
                "failed to resolve reference \"{full}\": unexpected status from HEAD request to {url}: {status}"
            )))
        }
    }
    let Some(top) = s.fetch(&url, MANIFEST_ACCEPT).await? else {
        return Err(Failure::not_found(format!(
            "failed to resolve reference \"{full}\": {full}: not found"
        )));
    };
    let top_digest = format!("sha256:{}", hex::encode(sha2::Sha256::digest(&top)));
    let no_match = || Failure::not_found("no match for platform in manifest: not found".into());
    let parse = |bytes: &[u8]| -> Result<Value, Failure> {
        serde_json::from_slice(bytes)
            .map_err(|e| Failure::unknown(format!("failed to unmarshal manifest: {e}")))
    };
    let mut manifest = parse(&top)?;
    if is_index(&manifest) {
        let entry = manifest["manifests"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|m| m["platform"]["os"] == "linux" && m["platform"]["architecture"] == arch)
            .cloned()
            .ok_or_else(no_match)?;
        let child = entry["digest"].as_str().unwrap_or_default();
        let child_url = format!("{base}/manifests/{child}");
        let bytes = s.fetch(&child_url, MANIFEST_ACCEPT).await?.ok_or_else(|| {
            Failure::not_found(format!(
                "failed to copy: httpReadSeeker: failed open: content at {child_url} not found: not found"
            ))
        })?;
        manifest = parse(&bytes)?;
    }
    let config = manifest["config"]["digest"].as_str().unwrap_or_default();
    let config_url = format!("{base}/blobs/{config}");
    let config_doc = match s.fetch(&config_url, "*/*").await? {
        Some(b) => parse(&b)?,
        None => {
            return Err(Failure::not_found(format!(
                "failed to copy: httpReadSeeker: failed open: content at {config_url} not found: not found"
            )))
        }
    };
    if config_doc["architecture"] != arch {
        return Err(no_match());
    }
    for layer in manifest["layers"].as_array().into_iter().flatten() {
        s.blob_exists(&base, layer["digest"].as_str().unwrap_or_default())
            .await?;
    }
    Ok(top_digest)
}

/// The most a manifest, config or token response may hold (a registry's own manifest limit is
/// 4 MiB).
const MAX_DOCUMENT: usize = 4 << 20;

/// Reads a response body of at most [`MAX_DOCUMENT`] bytes.
async fn read_bounded(mut resp: reqwest::Response, what: &str) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(|e| chain(&e))? {
        if out.len() + chunk.len() > MAX_DOCUMENT {
            return Err(format!("{what} is larger than {MAX_DOCUMENT} bytes"));
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}
