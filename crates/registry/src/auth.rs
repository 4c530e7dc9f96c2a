//! Registry credentials: explicit flags, auth files and credential helpers, plus the HTTP
//! challenge/token flow for code that talks to a registry with plain reqwest (push, preflight).
//!
//! Lookup order for a registry `host[:port]` ([`resolve_credentials`]):
//! 1. explicit credentials in [`RegistryOptions::credentials`] (flags, environment);
//! 2. [`RegistryOptions::auth_file`] when set, otherwise, in order, `$REGISTRY_AUTH_FILE`,
//!    `$XDG_RUNTIME_DIR/containers/auth.json`, and `$DOCKER_CONFIG/config.json` (or
//!    `~/.docker/config.json`). In each file: `credHelpers[host]`, then `auths[host]`, then
//!    `credsStore`. Helpers run as `docker-credential-<name> get`.
//!
//! Secrets are wrapped in [`Secret`], whose `Debug` and `Display` never show them.

use std::collections::BTreeMap;
use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use base64::Engine as _;
use serde::Deserialize;

use crate::error::{RegistryError, Target};
use crate::options::RegistryOptions;

/// The largest token-endpoint response read (tokens are a few KiB).
const MAX_TOKEN_RESPONSE: usize = 1 << 20;

pub use airlift_bundle::secret::Secret;

/// Credentials for one registry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credentials {
    /// A user name and password (HTTP basic, or exchanged for a bearer token).
    Basic {
        /// The user name.
        username: String,
        /// The password.
        password: Secret,
    },
    /// A registry token sent as `Authorization: Bearer` as is (docker's `registrytoken`).
    Bearer(Secret),
}

impl Credentials {
    /// User name and password.
    pub fn basic(username: impl Into<String>, password: Secret) -> Self {
        Self::Basic {
            username: username.into(),
            password,
        }
    }

    /// The equivalent oci-client auth.
    pub fn to_oci(&self) -> oci_client::secrets::RegistryAuth {
        match self {
            Self::Basic { username, password } => oci_client::secrets::RegistryAuth::Basic(
                username.clone(),
                password.expose().to_string(),
            ),
            Self::Bearer(t) => oci_client::secrets::RegistryAuth::Bearer(t.expose().to_string()),
        }
    }

    /// The value of an `Authorization: Basic …` header, for basic credentials.
    pub fn basic_header(&self) -> Option<String> {
        match self {
            Self::Basic { username, password } => Some(format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD
                    .encode(format!("{username}:{}", password.expose()))
            )),
            Self::Bearer(_) => None,
        }
    }
}

/// Where credentials came from (safe to print).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CredentialOrigin {
    /// From a flag or environment variable.
    Explicit,
    /// From an auth file.
    File(PathBuf),
    /// From `docker-credential-<name>`.
    Helper(String),
}

impl fmt::Display for CredentialOrigin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Explicit => f.write_str("command-line credentials"),
            Self::File(p) => write!(f, "auth file `{}`", p.display()),
            Self::Helper(h) => write!(f, "credential helper `docker-credential-{h}`"),
        }
    }
}

/// Credentials found for a registry, and where they came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedCredentials {
    /// The credentials.
    pub credentials: Credentials,
    /// Their origin.
    pub origin: CredentialOrigin,
}

/// Errors from finding credentials.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// An auth file exists but could not be read.
    #[error("cannot read auth file `{path}`")]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// An auth file is not valid JSON of the expected shape.
    #[error("auth file `{path}` is not a valid docker config / auth.json")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: serde_json::Error,
    },
    /// An `auth` entry is not base64 of `user:password`.
    #[error("the `auth` entry for `{registry}` in `{path}` is not base64 of `user:password`")]
    BadAuthEntry {
        /// The file.
        path: PathBuf,
        /// The registry key.
        registry: String,
    },
    /// A credential helper could not be started.
    #[error("cannot run credential helper `docker-credential-{helper}` for `{registry}`")]
    HelperMissing {
        /// The helper name.
        helper: String,
        /// The registry.
        registry: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A credential helper failed or printed something unexpected.
    #[error("credential helper `docker-credential-{helper}` failed for `{registry}`: {detail}")]
    HelperFailed {
        /// The helper name.
        helper: String,
        /// The registry.
        registry: String,
        /// Its stderr or the parse failure (never the secret).
        detail: String,
    },
}

impl AuthError {
    /// How the operator can fix this.
    pub fn hint(&self) -> &'static str {
        match self {
            Self::Read { .. } | Self::Parse { .. } | Self::BadAuthEntry { .. } => {
                "fix or remove the auth file, point REGISTRY_AUTH_FILE elsewhere, or pass \
                 --registry-user with --password-stdin"
            }
            Self::HelperMissing { .. } => {
                "install the credential helper named in config.json, or remove `credsStore` / \
                 `credHelpers` from it"
            }
            Self::HelperFailed { .. } => {
                "run `docker login` again, or pass --registry-user with --password-stdin"
            }
        }
    }
}

/// Finds credentials for `registry` (`host[:port]`) as described in the module docs, reading the
/// process environment for the auth file locations. `Ok(None)` means anonymous.
pub fn resolve_credentials(
    registry: &str,
    opts: &RegistryOptions,
) -> Result<Option<ResolvedCredentials>, AuthError> {
    if let Some(c) = opts.credentials.get(registry) {
        return Ok(Some(ResolvedCredentials {
            credentials: c.clone(),
            origin: CredentialOrigin::Explicit,
        }));
    }
    if !opts.use_auth_files {
        return Ok(None);
    }
    let files = match &opts.auth_file {
        Some(p) => vec![p.clone()],
        None => AuthFileEnv::from_process().candidates(),
    };
    for file in files {
        if let Some(found) = lookup_in_file(&file, registry)? {
            return Ok(Some(found));
        }
    }
    Ok(None)
}

/// The environment that decides where auth files are looked for (kept apart from the process
/// environment so it can be tested).
#[derive(Debug, Clone, Default)]
pub struct AuthFileEnv {
    /// `REGISTRY_AUTH_FILE`.
    pub registry_auth_file: Option<PathBuf>,
    /// `XDG_RUNTIME_DIR`.
    pub xdg_runtime_dir: Option<PathBuf>,
    /// `DOCKER_CONFIG` (a folder).
    pub docker_config: Option<PathBuf>,
    /// The home folder.
    pub home: Option<PathBuf>,
}

impl AuthFileEnv {
    /// Reads the process environment.
    pub fn from_process() -> Self {
        let var = |k: &str| {
            std::env::var_os(k)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        };
        Self {
            registry_auth_file: var("REGISTRY_AUTH_FILE"),
            xdg_runtime_dir: var("XDG_RUNTIME_DIR"),
            docker_config: var("DOCKER_CONFIG"),
            home: dirs::home_dir(),
        }
    }

    /// The auth files to try, in order (they may not exist).
    pub fn candidates(&self) -> Vec<PathBuf> {
        let mut out = Vec::new();
        if let Some(p) = &self.registry_auth_file {
            out.push(p.clone());
        }
        if let Some(d) = &self.xdg_runtime_dir {
            out.push(d.join("containers").join("auth.json"));
        }
        match (&self.docker_config, &self.home) {
            (Some(d), _) => out.push(d.join("config.json")),
            (None, Some(h)) => out.push(h.join(".docker").join("config.json")),
            (None, None) => {}
        }
        out
    }
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct AuthFile {
    #[serde(default)]
    auths: BTreeMap<String, AuthEntry>,
    #[serde(default)]
    cred_helpers: BTreeMap<String, String>,
    #[serde(default)]
    creds_store: Option<String>,
}

#[derive(Deserialize, Default)]
struct AuthEntry {
    #[serde(default)]
    auth: Option<String>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password: Option<String>,
    #[serde(default)]
    registrytoken: Option<String>,
}

/// Looks `registry` up in one auth file; a missing file is `Ok(None)`.
pub fn lookup_in_file(
    path: &Path,
    registry: &str,
) -> Result<Option<ResolvedCredentials>, AuthError> {
    let text = match airlift_bundle::read_bounded(path, airlift_bundle::limits::MAX_DOCUMENT) {
        Ok(t) => t,
        Err(airlift_bundle::LimitError::Io { source, .. }) => {
            if source.kind() == std::io::ErrorKind::NotFound {
                return Ok(None);
            }
            return Err(AuthError::Read {
                path: path.to_path_buf(),
                source,
            });
        }
        Err(other) => {
            return Err(AuthError::Read {
                path: path.to_path_buf(),
                source: std::io::Error::other(other),
            })
        }
    };
    let file: AuthFile = serde_json::from_slice(&text).map_err(|source| AuthError::Parse {
        path: path.to_path_buf(),
        source,
    })?;
    let want = normalize_key(registry);
    if let Some(helper) = file
        .cred_helpers
        .iter()
        .find(|(k, _)| normalize_key(k) == want)
        .map(|(_, v)| v.clone())
    {
        return run_helper(&helper, registry);
    }
    if let Some((key, entry)) = file.auths.iter().find(|(k, _)| normalize_key(k) == want) {
        let origin = CredentialOrigin::File(path.to_path_buf());
        if let Some(token) = entry.registrytoken.as_deref().filter(|t| !t.is_empty()) {
            return Ok(Some(ResolvedCredentials {
                credentials: Credentials::Bearer(Secret::new(token)),
                origin,
            }));
        }
        if let Some(auth) = entry.auth.as_deref().filter(|a| !a.is_empty()) {
            let bad = || AuthError::BadAuthEntry {
                path: path.to_path_buf(),
                registry: key.clone(),
            };
            let raw = base64::engine::general_purpose::STANDARD
                .decode(auth.trim())
                .map_err(|_| bad())?;
            let text = String::from_utf8(raw).map_err(|_| bad())?;
            let (u, p) = text.split_once(':').ok_or_else(bad)?;
            return Ok(Some(ResolvedCredentials {
                credentials: Credentials::basic(u, Secret::new(p)),
                origin,
            }));
        }
        if let (Some(u), Some(p)) = (&entry.username, &entry.password) {
            return Ok(Some(ResolvedCredentials {
                credentials: Credentials::basic(u.clone(), Secret::new(p.clone())),
                origin,
            }));
        }
    }
    if let Some(store) = file.creds_store.filter(|s| !s.is_empty()) {
        return run_helper(&store, registry);
    }
    Ok(None)
}

/// `https://index.docker.io/v1/` → `docker.io`, `https://reg:5000/x` → `reg:5000`.
fn normalize_key(key: &str) -> String {
    let k = key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"))
        .unwrap_or(key);
    let host = k.split('/').next().unwrap_or(k).to_ascii_lowercase();
    match host.as_str() {
        "index.docker.io" | "registry-1.docker.io" | "docker.io" => "docker.io".to_string(),
        _ => host,
    }
}

/// Runs `docker-credential-<helper> get` with the registry on stdin.
fn run_helper(helper: &str, registry: &str) -> Result<Option<ResolvedCredentials>, AuthError> {
    #[derive(Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct HelperOut {
        username: String,
        secret: String,
    }
    let failed = |detail: String| AuthError::HelperFailed {
        helper: helper.to_string(),
        registry: registry.to_string(),
        detail,
    };
    let mut child = Command::new(format!("docker-credential-{helper}"))
        .arg("get")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|source| AuthError::HelperMissing {
            helper: helper.to_string(),
            registry: registry.to_string(),
            source,
        })?;
    if let Some(mut stdin) = child.stdin.take() {
        // A helper may exit without reading its input; its exit status and stderr then tell
        // what went wrong, so a broken pipe here is not the error to report.
        match stdin.write_all(registry.as_bytes()) {
            Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
                return Err(failed(format!("writing to its stdin: {e}")));
            }
            _ => {}
        }
    }
    let out = child
        .wait_with_output()
        .map_err(|e| failed(format!("waiting for it: {e}")))?;
    if !out.status.success() {
        let msg = String::from_utf8_lossy(&out.stdout).to_string()
            + &String::from_utf8_lossy(&out.stderr);
        if msg.to_ascii_lowercase().contains("credentials not found") {
            return Ok(None);
        }
        return Err(failed(format!(
            "{}: {}",
            out.status,
            msg.trim().chars().take(200).collect::<String>()
        )));
    }
    let parsed: HelperOut = serde_json::from_slice(&out.stdout)
        .map_err(|e| failed(format!("unexpected output: {e}")))?;
    let credentials = if parsed.username == "<token>" {
        Credentials::Bearer(Secret::new(parsed.secret))
    } else {
        Credentials::basic(parsed.username, Secret::new(parsed.secret))
    };
    Ok(Some(ResolvedCredentials {
        credentials,
        origin: CredentialOrigin::Helper(helper.to_string()),
    }))
}

/// A parsed `WWW-Authenticate` challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Challenge {
    /// `Basic realm="…"`: send the user name and password with every request.
    Basic,
    /// `Bearer realm="…",service="…",scope="…"`: fetch a token from `realm` first.
    Bearer {
        /// The token endpoint.
        realm: String,
        /// The `service` parameter, when given.
        service: Option<String>,
        /// The `scope` parameter, when given.
        scope: Option<String>,
    },
}

impl Challenge {
    /// Parses a `WWW-Authenticate` header value; `None` for schemes we do not speak.
    pub fn parse(header: &str) -> Option<Self> {
        let header = header.trim();
        let (scheme, rest) = header.split_once(' ').unwrap_or((header, ""));
        if scheme.eq_ignore_ascii_case("basic") {
            return Some(Self::Basic);
        }
        if !scheme.eq_ignore_ascii_case("bearer") {
            return None;
        }
        let mut params = BTreeMap::new();
        let mut s = rest.trim();
        while !s.is_empty() {
            let (key, after) = s.split_once('=')?;
            let key = key
                .trim()
                .trim_start_matches(',')
                .trim()
                .to_ascii_lowercase();
            let after = after.trim_start();
            let (value, next) = if let Some(q) = after.strip_prefix('"') {
                let end = q.find('"')?;
                (q[..end].to_string(), &q[end + 1..])
            } else {
                let end = after.find(',').unwrap_or(after.len());
                (after[..end].trim().to_string(), &after[end..])
            };
            params.insert(key, value);
            s = next.trim_start().trim_start_matches(',').trim_start();
        }
        Some(Self::Bearer {
            realm: params.remove("realm")?,
            service: params.remove("service"),
            scope: params.remove("scope"),
        })
    }
}

/// Answers a challenge: returns the `Authorization` header value to send, fetching a bearer
/// token from the challenge's realm when needed. `scope` is e.g.
/// `repository:acme/api:pull,push`; it overrides the challenge's own scope.
pub async fn authorize(
    http: &reqwest::Client,
    target: &Target,
    challenge: &Challenge,
    scope: Option<&str>,
    creds: Option<&Credentials>,
) -> Result<Option<String>, RegistryError> {
    match (challenge, creds) {
        (_, Some(Credentials::Bearer(t))) => Ok(Some(format!("Bearer {}", t.expose()))),
        (Challenge::Basic, Some(c)) => Ok(c.basic_header()),
        (Challenge::Basic, None) => Ok(None),
        (
            Challenge::Bearer {
                realm,
                service,
                scope: own_scope,
            },
            c,
        ) => {
            let mut query: Vec<(&str, &str)> = Vec::new();
            if let Some(s) = service {
                query.push(("service", s));
            }
            if let Some(s) = scope.or(own_scope.as_deref()) {
                query.push(("scope", s));
            }
            let mut req = http.get(realm).query(&query);
            if let Some(h) = c.and_then(Credentials::basic_header) {
                req = req.header(http::header::AUTHORIZATION, h);
            }
            let resp = req
                .send()
                .await
                .map_err(|e| RegistryError::from_reqwest(target.clone(), e))?;
            let status = resp.status();
            if !status.is_success() {
                let body = crate::client::body_prefix(resp, crate::client::ERROR_BODY_LIMIT)
                    .await
                    .unwrap_or_default();
                return Err(RegistryError::from_status(
                    target.clone(),
                    status.as_u16(),
                    &body,
                    c.is_some(),
                    None,
                ));
            }
            #[derive(Deserialize)]
            struct Token {
                #[serde(default)]
                token: Option<String>,
                #[serde(default)]
                access_token: Option<String>,
            }
            let body = crate::client::body_prefix(resp, MAX_TOKEN_RESPONSE + 1)
                .await
                .map_err(|e| RegistryError::from_reqwest(target.clone(), e))?;
            let tok: Token =
                airlift_bundle::oci::from_json_bounded(&body, MAX_TOKEN_RESPONSE as u64).map_err(
                    |e| RegistryError::Protocol {
                        target: target.clone(),
                        detail: format!("token endpoint `{realm}` sent invalid JSON: {e}"),
                    },
                )?;
            let t = tok
                .token
                .or(tok.access_token)
                .ok_or_else(|| RegistryError::Protocol {
                    target: target.clone(),
                    detail: format!("token endpoint `{realm}` sent no token"),
                })?;
            Ok(Some(format!("Bearer {t}")))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    #[test]
    fn secret_never_printed() {
        let c = Credentials::basic("alice", Secret::new("pa55word"));
        assert!(!format!("{c:?}").contains("pa55word"));
        assert_eq!(Secret::new("x").to_string(), airlift_bundle::secret::MASK);
    }

    #[test]
    fn reads_auth_and_username_password_entries() {
        let dir = tempfile::tempdir().unwrap();
        let auth = base64::engine::general_purpose::STANDARD.encode("bob:pw:with:colons");
        let p = write(
            dir.path(),
            "config.json",
            &format!(
                r#"{{"auths":{{"https://reg.example:5000/v2/":{{"auth":"{auth}"}},
                "other.example":{{"username":"u","password":"p"}},
                "https://index.docker.io/v1/":{{"auth":"{auth}"}}}}}}"#
            ),
        );
        let r = lookup_in_file(&p, "reg.example:5000").unwrap().unwrap();
        assert_eq!(
            r.credentials,
            Credentials::basic("bob", Secret::new("pw:with:colons"))
        );
        assert_eq!(r.origin, CredentialOrigin::File(p.clone()));
        let r = lookup_in_file(&p, "other.example").unwrap().unwrap();
        assert_eq!(r.credentials, Credentials::basic("u", Secret::new("p")));
        assert!(lookup_in_file(&p, "docker.io").unwrap().is_some());
        assert!(lookup_in_file(&p, "nope.example").unwrap().is_none());
        assert!(lookup_in_file(&dir.path().join("missing.json"), "x")
            .unwrap()
            .is_none());
    }

    #[test]
    fn bad_files_are_named_errors() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(dir.path(), "a.json", "{not json");
        assert!(matches!(
            lookup_in_file(&p, "r"),
            Err(AuthError::Parse { .. })
        ));
        let p = write(dir.path(), "b.json", r#"{"auths":{"r":{"auth":"!!!"}}}"#);
        let e = lookup_in_file(&p, "r").unwrap_err();
        assert!(matches!(e, AuthError::BadAuthEntry { .. }));
        assert!(!e.hint().is_empty());
    }

    #[test]
    fn missing_helper_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(
            dir.path(),
            "c.json",
            r#"{"credHelpers":{"r:1":"airlift-test-no-such-helper"}}"#,
        );
        assert!(matches!(
            lookup_in_file(&p, "r:1"),
            Err(AuthError::HelperMissing { .. })
        ));
    }

    #[test]
    fn explicit_credentials_win_and_file_order() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(
            dir.path(),
            "auth.json",
            r#"{"auths":{"r:1":{"username":"file","password":"f"}}}"#,
        );
        let opts = RegistryOptions::default().with_auth_file(&p);
        let r = resolve_credentials("r:1", &opts).unwrap().unwrap();
        assert_eq!(r.credentials, Credentials::basic("file", Secret::new("f")));
        let opts = opts.with_credentials("r:1", Credentials::basic("flag", Secret::new("x")));
        let r = resolve_credentials("r:1", &opts).unwrap().unwrap();
        assert_eq!(r.origin, CredentialOrigin::Explicit);
        let none = RegistryOptions::default()
            .with_auth_file(&p)
            .without_auth_files();
        assert!(resolve_credentials("r:1", &none).unwrap().is_none());

        let env = AuthFileEnv {
            registry_auth_file: Some("/a.json".into()),
            xdg_runtime_dir: Some("/run/user/1".into()),
            docker_config: None,
            home: Some("/home/u".into()),
        };
        assert_eq!(
            env.candidates(),
            vec![
                PathBuf::from("/a.json"),
                PathBuf::from("/run/user/1/containers/auth.json"),
                PathBuf::from("/home/u/.docker/config.json"),
            ]
        );
    }

    #[test]
    fn parses_challenges() {
        assert_eq!(
            Challenge::parse(r#"Basic realm="basic-realm""#),
            Some(Challenge::Basic)
        );
        assert_eq!(
            Challenge::parse(
                r#"Bearer realm="https://auth.example/token",service="reg",scope="repository:a/b:pull""#
            ),
            Some(Challenge::Bearer {
                realm: "https://auth.example/token".into(),
                service: Some("reg".into()),
                scope: Some("repository:a/b:pull".into()),
            })
        );
        assert_eq!(Challenge::parse("Negotiate abc"), None);
    }
}
