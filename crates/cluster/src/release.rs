//! Release records: one Secret per revision, `airlift-release-<name>-v<N>` of type
//! `airlift.dev/release` in the release namespace, holding the bundle, the configuration with
//! secrets hashed, the inventory, the rendered objects (Secret data removed), the status and the
//! time, as plain JSON under the data key `release`. History is kept to a set depth.
//!
//! Why a Secret and not a ConfigMap: the rendered objects and configuration can hold values an
//! operator considers sensitive (hostnames, internal URLs); Secrets are what RBAC and encryption
//! at rest already protect. Secret *values* are never stored, whatever the kind of record.

use std::collections::BTreeMap;

use base64::Engine as _;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};
use kube::Client;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::object::{ManagedObject, ObjectRef, FIELD_MANAGER, LABEL_MANAGED_BY, MANAGED_BY};

/// The Secret type of release records.
pub const RELEASE_SECRET_TYPE: &str = "airlift.dev/release";
/// The label that marks a release record and names its release.
pub const LABEL_RECORD: &str = "airlift.dev/release-record";
/// The label holding a record's revision.
pub const LABEL_REVISION: &str = "airlift.dev/revision";
/// How many revisions are kept by default.
pub const DEFAULT_HISTORY: usize = 10;
const DATA_KEY: &str = "release";

/// Errors from reading or writing release records.
#[derive(Debug, thiserror::Error)]
pub enum ReleaseError {
    /// Listing, reading or writing a record failed.
    #[error("failed to {action} release records of `{release}` in namespace `{namespace}`")]
    Api {
        /// What we tried.
        action: &'static str,
        /// The release.
        release: String,
        /// The release namespace.
        namespace: String,
        /// The server's answer.
        #[source]
        source: crate::status::ServerError,
    },
    /// A record's content is not a release.
    #[error("release record `{secret}` is corrupt")]
    Corrupt {
        /// The record Secret.
        secret: String,
        /// What is wrong.
        #[source]
        source: serde_json::Error,
    },
    /// A record's data is not base64.
    #[error("release record `{secret}` is not base64 JSON")]
    Encoding {
        /// The record Secret.
        secret: String,
    },
    /// No such revision.
    #[error("release `{release}` has no revision {revision}")]
    NoRevision {
        /// The release.
        release: String,
        /// The revision asked for.
        revision: u32,
    },
}

impl ReleaseError {
    /// How the operator can fix it.
    pub fn hint(&self) -> String {
        match self {
            Self::Api { source, .. } => crate::kubeconfig::api_hint(source.inner()),
            Self::Corrupt { secret, .. } | Self::Encoding { secret } => format!(
                "the record was edited or written by another tool; delete `{secret}` to drop \
                 that revision from the history"
            ),
            Self::NoRevision { .. } => "`airlift-install status` lists the revisions".into(),
        }
    }
}

/// The state of a revision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ReleaseStatus {
    /// Running now.
    Deployed,
    /// Replaced by a later upgrade.
    Superseded,
    /// Its apply or readiness failed.
    Failed,
    /// Was running, then a rollback returned to an earlier revision.
    RolledBack,
    /// Being deployed now, or its process died while deploying (the release lock tells which).
    Pending,
    /// Stopped by the operator (SIGINT/SIGTERM) at a safe point; partly applied.
    Interrupted,
}

impl ReleaseStatus {
    /// Whether this revision was once fully deployed (what a rollback may return to).
    pub fn was_deployed(self) -> bool {
        matches!(self, Self::Deployed | Self::Superseded | Self::RolledBack)
    }
}

impl std::fmt::Display for ReleaseStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Deployed => "deployed",
            Self::Superseded => "superseded",
            Self::Failed => "failed",
            Self::RolledBack => "rolled-back",
            Self::Pending => "pending",
            Self::Interrupted => "interrupted",
        })
    }
}

/// The bundle a release came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BundleInfo {
    /// The product name.
    pub name: String,
    /// The release version (semver).
    pub version: String,
    /// The digest of the bundle manifest.
    pub digest: String,
}

/// The site's own inputs to a release, remembered so an upgrade or plan reuses them: an upgrade
/// starts from the new SaaS defaults, then these, then its own flags.
///
/// Secret values never appear here: the keys of secret values the site gave are listed, and the
/// values live in the Secret `airlift-site-<release>` beside the records.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SiteInputs {
    /// Non-secret values the site gave (values files, `--set`, prompts), by key.
    #[serde(default)]
    pub values: BTreeMap<String, Value>,
    /// Keys of secret values the site gave; their values are in the site Secret.
    #[serde(default)]
    pub secret_keys: Vec<String>,
    /// The registry destination as given (`HOST[:PORT][/PREFIX]`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registry: Option<String>,
    /// Whether repositories were flattened to one path segment.
    #[serde(default)]
    pub flatten: bool,
    /// The registry user nodes pull with; the password is in the site Secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registry_user: Option<String>,
    /// Optional components the site turned on.
    #[serde(default)]
    pub enabled: Vec<String>,
    /// Optional components the site turned off.
    #[serde(default)]
    pub disabled: Vec<String>,
}

/// A rendered object as stored in a record: Secret `data`/`stringData` removed (their keys
/// kept), and in every other object each string holding a known secret value blanked (its JSON
/// pointer kept), so a rollback can put the live values back.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StoredObject {
    /// The object, without secret values.
    pub object: ManagedObject,
    /// For Secrets: the keys whose values were removed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub redacted_keys: Vec<String>,
    /// For other objects: JSON pointers of strings that held a secret value, now empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub redacted_paths: Vec<String>,
}

/// Secret values shorter than this are only scrubbed where a string equals them exactly;
/// longer ones wherever a string contains them.
const MIN_CONTAINED_SECRET: usize = 6;

impl StoredObject {
    /// Stores `object`, removing the values of a core `Secret`.
    pub fn redact(object: &ManagedObject) -> Self {
        Self::redact_with(object, &[])
    }

    /// Stores `object`, removing the values of a core `Secret` and blanking, anywhere else,
    /// every string that holds one of `secrets` (e.g. a password rendered into an env var).
    pub fn redact_with(object: &ManagedObject, secrets: &[String]) -> Self {
        let mut object = object.clone();
        let mut redacted_keys = Vec::new();
        let is_secret = object.kind() == "Secret"
            && object.object.get("apiVersion").and_then(Value::as_str) == Some("v1");
        if is_secret {
            if let Some(map) = object.object.as_object_mut() {
                for field in ["data", "stringData"] {
                    if let Some(Value::Object(values)) = map.remove(field) {
                        redacted_keys.extend(values.keys().cloned());
                    }
                }
            }
            redacted_keys.sort();
            redacted_keys.dedup();
        }
        let mut redacted_paths = Vec::new();
        let secrets: Vec<&str> = secrets
            .iter()
            .map(String::as_str)
            .filter(|s| !s.is_empty())
            .collect();
        if !secrets.is_empty() {
            scrub(&mut object.object, "", &secrets, &mut redacted_paths);
        }
        Self {
            object,
            redacted_keys,
            redacted_paths,
        }
    }
}

fn scrub(v: &mut Value, pointer: &str, secrets: &[&str], found: &mut Vec<String>) {
    match v {
        Value::String(s) => {
            let hit = secrets.iter().any(|secret| {
                s == secret || (secret.len() >= MIN_CONTAINED_SECRET && s.contains(secret))
            });
            if hit {
                s.clear();
                found.push(pointer.to_string());
            }
        }
        Value::Array(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                scrub(item, &format!("{pointer}/{i}"), secrets, found);
            }
        }
        Value::Object(map) => {
            for (k, item) in map.iter_mut() {
                let key = k.replace('~', "~0").replace('/', "~1");
                scrub(item, &format!("{pointer}/{key}"), secrets, found);
            }
        }
        _ => {}
    }
}

/// One revision of a release.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Release {
    /// The release name.
    pub name: String,
    /// The namespace holding the records (and by default the objects).
    pub namespace: String,
    /// The revision, from 1.
    pub revision: u32,
    /// The bundle.
    pub bundle: BundleInfo,
    /// The configuration in effect, secrets replaced by `sha256:` fingerprints.
    pub config: BTreeMap<String, Value>,
    /// The bundle's SaaS defaults (non-secret items only), so a later plan can show which
    /// defaults the vendor changed. Empty in records written before it existed.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub saas_defaults: BTreeMap<String, Value>,
    /// What the site chose, reused by later upgrades and plans. `None` in records written
    /// before it existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub site: Option<SiteInputs>,
    /// Who ran the operation (the cluster identity), when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operator: Option<String>,
    /// Every object applied.
    pub inventory: Vec<ObjectRef>,
    /// The rendered objects, for rollback; Secret values removed.
    pub objects: Vec<StoredObject>,
    /// The state.
    pub status: ReleaseStatus,
    /// When the revision was recorded (RFC 3339, UTC).
    pub time: String,
    /// What happened, e.g. `install`, `upgrade from 1.0.0`, `rollback to 2`.
    pub description: String,
}

impl Release {
    /// The name of the record Secret.
    pub fn secret_name(&self) -> String {
        record_name(&self.name, self.revision)
    }
}

/// The record Secret's name for a revision.
pub fn record_name(release: &str, revision: u32) -> String {
    format!("airlift-release-{release}-v{revision}")
}

/// The current time, RFC 3339 in UTC.
pub fn now() -> String {
    k8s_openapi::jiff::Timestamp::now()
        .round(k8s_openapi::jiff::Unit::Second)
        .map(|t| t.to_string())
        .unwrap_or_default()
}

/// Reads and writes the records of one release.
pub struct ReleaseStore {
    api: Api<Secret>,
    release: String,
    namespace: String,
}

impl ReleaseStore {
    /// The store of `release` in `namespace`.
    pub fn new(client: Client, namespace: &str, release: &str) -> Self {
        Self {
            api: Api::namespaced(client, namespace),
            release: release.to_string(),
            namespace: namespace.to_string(),
        }
    }

    fn api_err(&self, action: &'static str) -> impl FnOnce(kube::Error) -> ReleaseError + '_ {
        move |source| ReleaseError::Api {
            action,
            release: self.release.clone(),
            namespace: self.namespace.clone(),
            source: source.into(),
        }
    }

    /// Every revision, oldest first.
    pub async fn history(&self) -> Result<Vec<Release>, ReleaseError> {
        let selector = format!("{LABEL_RECORD}={}", self.release);
        let list = match self
            .api
            .list(&ListParams::default().labels(&selector))
            .await
        {
            Ok(l) => l,
            // The namespace does not exist yet: no releases.
            Err(kube::Error::Api(s)) if s.code == 404 => return Ok(Vec::new()),
            Err(e) => return Err(self.api_err("list")(e)),
        };
        let mut out = Vec::new();
        for secret in list.items {
            let name = secret.metadata.name.clone().unwrap_or_default();
            let is_record = secret.type_.as_deref() == Some(RELEASE_SECRET_TYPE)
                && secret
                    .metadata
                    .labels
                    .as_ref()
                    .and_then(|l| l.get(LABEL_RECORD))
                    == Some(&self.release);
            if !is_record {
                continue;
            }
            out.push(decode(&secret, name)?);
        }
        out.sort_by_key(|r| r.revision);
        Ok(out)
    }

    /// The revision currently deployed, if any.
    pub async fn deployed(&self) -> Result<Option<Release>, ReleaseError> {
        Ok(self
            .history()
            .await?
            .into_iter()
            .rev()
            .find(|r| r.status == ReleaseStatus::Deployed))
    }

    /// One revision.
    pub async fn get(&self, revision: u32) -> Result<Release, ReleaseError> {
        self.history()
            .await?
            .into_iter()
            .find(|r| r.revision == revision)
            .ok_or(ReleaseError::NoRevision {
                release: self.release.clone(),
                revision,
            })
    }

    /// Writes (creates or replaces) a revision's record.
    pub async fn write(&self, release: &Release) -> Result<(), ReleaseError> {
        let body = serde_json::to_vec(release).map_err(|source| ReleaseError::Corrupt {
            secret: release.secret_name(),
            source,
        })?;
        let secret = json!({
            "apiVersion": "v1",
            "kind": "Secret",
            "type": RELEASE_SECRET_TYPE,
            "metadata": {
                "name": release.secret_name(),
                "namespace": self.namespace,
                "labels": {
                    LABEL_MANAGED_BY: MANAGED_BY,
                    LABEL_RECORD: self.release,
                    LABEL_REVISION: release.revision.to_string(),
                    "airlift.dev/status": release.status.to_string(),
                },
            },
            "data": {DATA_KEY: base64::engine::general_purpose::STANDARD.encode(body)},
        });
        self.api
            .patch(
                &release.secret_name(),
                &PatchParams::apply(FIELD_MANAGER).force(),
                &Patch::Apply(&secret),
            )
            .await
            .map_err(self.api_err("write"))?;
        Ok(())
    }

    /// Deletes the oldest records beyond `depth`, never the deployed one.
    pub async fn prune(&self, depth: usize) -> Result<(), ReleaseError> {
        let history = self.history().await?;
        let depth = depth.max(1);
        if history.len() <= depth {
            return Ok(());
        }
        let excess = history.len() - depth;
        for r in history
            .iter()
            .filter(|r| r.status != ReleaseStatus::Deployed)
            .take(excess)
        {
            match self
                .api
                .delete(&r.secret_name(), &DeleteParams::default())
                .await
            {
                Ok(_) => {}
                Err(kube::Error::Api(s)) if s.code == 404 => {}
                Err(e) => return Err(self.api_err("prune")(e)),
            }
        }
        Ok(())
    }

    /// Deletes every record of the release (uninstall).
    pub async fn delete_all(&self) -> Result<(), ReleaseError> {
        for r in self.history().await? {
            match self
                .api
                .delete(&r.secret_name(), &DeleteParams::default())
                .await
            {
                Ok(_) => {}
                Err(kube::Error::Api(s)) if s.code == 404 => {}
                Err(e) => return Err(self.api_err("delete")(e)),
            }
        }
        Ok(())
    }
}

/// The release in a record Secret named `name`.
#[allow(clippy::result_large_err)] // the same error type as every async reader here
fn decode(secret: &Secret, name: String) -> Result<Release, ReleaseError> {
    let Some(bytes) = secret.data.as_ref().and_then(|d| d.get(DATA_KEY)) else {
        return Err(ReleaseError::Encoding { secret: name });
    };
    serde_json::from_slice(&bytes.0).map_err(|source| ReleaseError::Corrupt {
        secret: name,
        source,
    })
}

/// One release as `list` shows it: its newest revision and its deployed one.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ReleaseSummary {
    /// The release name.
    pub name: String,
    /// The release namespace.
    pub namespace: String,
    /// The newest revision.
    pub latest: Release,
    /// The revision deployed now, if any.
    pub deployed: Option<u32>,
}

/// Every release in `namespace`, or in all namespaces when `None`, sorted by namespace and name.
pub async fn list_releases(
    client: Client,
    namespace: Option<&str>,
) -> Result<Vec<ReleaseSummary>, ReleaseError> {
    let api: Api<Secret> = match namespace {
        Some(ns) => Api::namespaced(client, ns),
        None => Api::all(client),
    };
    let list = api
        .list(&ListParams::default().labels(LABEL_RECORD))
        .await
        .map_err(|source| ReleaseError::Api {
            action: "list",
            release: "*".into(),
            namespace: namespace.unwrap_or("(all namespaces)").to_string(),
            source: source.into(),
        })?;
    let mut by_release: BTreeMap<(String, String), Vec<Release>> = BTreeMap::new();
    for secret in list.items {
        if secret.type_.as_deref() != Some(RELEASE_SECRET_TYPE) {
            continue;
        }
        let release = decode(&secret, secret.metadata.name.clone().unwrap_or_default())?;
        let ns = secret.metadata.namespace.clone().unwrap_or_default();
        by_release
            .entry((ns, release.name.clone()))
            .or_default()
            .push(release);
    }
    Ok(by_release
        .into_iter()
        .filter_map(|((namespace, name), mut revisions)| {
            revisions.sort_by_key(|r| r.revision);
            let deployed = revisions
                .iter()
                .rev()
                .find(|r| r.status == ReleaseStatus::Deployed)
                .map(|r| r.revision);
            Some(ReleaseSummary {
                name,
                namespace,
                latest: revisions.pop()?,
                deployed,
            })
        })
        .collect())
}

/// The namespaces holding a release named `release` (for "not found here, but there" errors).
/// Empty when the user may not list Secrets cluster-wide.
pub async fn namespaces_of(client: Client, release: &str) -> Vec<String> {
    let api: Api<Secret> = Api::all(client);
    let selector = format!("{LABEL_RECORD}={release}");
    let Ok(list) = api.list(&ListParams::default().labels(&selector)).await else {
        return Vec::new();
    };
    let mut out: Vec<String> = list
        .items
        .into_iter()
        .filter(|s| s.type_.as_deref() == Some(RELEASE_SECRET_TYPE))
        .filter_map(|s| s.metadata.namespace)
        .collect();
    out.sort();
    out.dedup();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redaction_removes_values_and_keeps_keys() {
        let o = ManagedObject::new(
            "db",
            0,
            0,
            json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db"},
                   "data": {"password": "aHVudGVyMg=="}, "stringData": {"user": "admin-secret"}}),
        )
        .unwrap();
        let stored = StoredObject::redact(&o);
        let text = serde_json::to_string(&stored).unwrap();
        assert!(!text.contains("aHVudGVyMg=="), "{text}");
        assert!(!text.contains("admin-secret"), "{text}");
        assert_eq!(stored.redacted_keys, ["password", "user"]);

        let d = ManagedObject::new(
            "web",
            0,
            0,
            json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "w"},
                   "spec": {"template": {"spec": {"containers": [{"name": "w", "env": [
                       {"name": "DSN", "value": "postgres://app:hunter2-long@db/app"},
                       {"name": "MODE", "value": "prod"}]}]}}}}),
        )
        .unwrap();
        let stored = StoredObject::redact_with(&d, &["hunter2-long".to_string()]);
        let text = serde_json::to_string(&stored).unwrap();
        assert!(!text.contains("hunter2"), "{text}");
        assert_eq!(
            stored.redacted_paths,
            ["/spec/template/spec/containers/0/env/0/value"]
        );
        assert!(text.contains("prod"));

        let cm = ManagedObject::new(
            "db",
            0,
            0,
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"},
                   "data": {"a": "b"}}),
        )
        .unwrap();
        assert_eq!(StoredObject::redact(&cm).object, cm);
    }

    #[test]
    fn time_is_rfc3339_utc() {
        let t = now();
        assert!(t.ends_with('Z') && t.contains('T'), "{t}");
    }
}
