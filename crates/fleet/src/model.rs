//! The fleet file (`kind: Fleet`): the clusters, how to reach each one and its registry, the
//! values per cluster or per label group, and the rollout's stages. What the SRE writes; the
//! checks that need more than serde live in [`crate::validate`].

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::duration::FleetDuration;
use crate::error::FleetError;

/// The `apiVersion` of a fleet file.
pub const API_VERSION: &str = "airlift.dev/v1alpha1";
/// The `kind` of a fleet file.
pub const FLEET_KIND: &str = "Fleet";
/// The largest fleet file read.
pub const MAX_FLEET_FILE: u64 = 4 * 1024 * 1024;

/// A fleet: every cluster that runs the product, and how a new version reaches them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Fleet {
    /// Always `airlift.dev/v1alpha1`.
    pub api_version: String,
    /// Always `Fleet`.
    pub kind: String,
    /// The fleet's name.
    pub metadata: FleetMetadata,
    /// Release name and namespace for every cluster that names none.
    #[serde(default)]
    pub defaults: ReleaseDefaults,
    /// Every cluster of the fleet.
    pub clusters: Vec<ClusterEntry>,
    /// Values for a group of clusters chosen by labels, applied before each cluster's own.
    #[serde(default)]
    pub values: Vec<GroupValues>,
    /// How a new version is rolled out.
    pub rollout: Rollout,
}

/// The fleet's name.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FleetMetadata {
    /// A name for the fleet, shown in reports.
    pub name: String,
}

/// Release name and namespace used where a cluster names none.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ReleaseDefaults {
    /// The release name [default: the bundle's name].
    #[serde(default)]
    pub release: Option<String>,
    /// The release namespace [default: the release name].
    #[serde(default)]
    pub namespace: Option<String>,
}

/// One cluster.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ClusterEntry {
    /// A unique name for the cluster, used in stages, reports and HTTP gate URLs (`{cluster}`).
    pub name: String,
    /// The kubeconfig file, relative to the fleet file [default: $KUBECONFIG, then
    /// ~/.kube/config]. A leading `~/` is the home directory.
    #[serde(default)]
    pub kubeconfig: Option<PathBuf>,
    /// The kubeconfig context [default: the file's current context].
    #[serde(default)]
    pub context: Option<String>,
    /// Labels stages and value groups select by, e.g. `provider: aws`, `tier: canary`.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// The registry this cluster's nodes pull from.
    pub registry: RegistryEntry,
    /// The release name [default: `defaults.release`, then the bundle's name].
    #[serde(default)]
    pub release: Option<String>,
    /// The release namespace [default: `defaults.namespace`, then the release name].
    #[serde(default)]
    pub namespace: Option<String>,
    /// Values files for this cluster (relative to the fleet file), over the group values.
    #[serde(default)]
    pub values: Vec<PathBuf>,
    /// `group.item=value` overrides for this cluster, over everything else.
    #[serde(default)]
    pub set: Vec<String>,
}

/// A cluster's registry: where images go and how to authenticate. Never a password: a
/// reference to where the password is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RegistryEntry {
    /// `HOST[:PORT][/PREFIX]`: images go to `HOST/PREFIX/<original path>`.
    pub destination: String,
    /// A CA certificate (PEM) to trust for this registry, relative to the fleet file.
    #[serde(default)]
    pub ca: Option<PathBuf>,
    /// Speak plain HTTP to it. Only for registries that serve no TLS at all.
    #[serde(default)]
    pub insecure: bool,
    /// Map every repository to one path segment.
    #[serde(default)]
    pub flatten: bool,
    /// The credentials, by reference.
    #[serde(default)]
    pub credentials: Option<CredentialsRef>,
}

/// Where a registry's credentials come from; the fleet file never holds a password.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CredentialsRef {
    /// The user name.
    #[serde(default)]
    pub username: Option<String>,
    /// The environment variable holding the password for `username`.
    #[serde(default)]
    pub password_env: Option<String>,
    /// A docker/containers auth file to read credentials from, relative to the fleet file.
    #[serde(default)]
    pub auth_file: Option<PathBuf>,
}

/// Values for every cluster whose labels match `selector`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GroupValues {
    /// Labels a cluster must all carry.
    pub selector: BTreeMap<String, String>,
    /// Values files (relative to the fleet file); later ones win.
    #[serde(default)]
    pub files: Vec<PathBuf>,
    /// `group.item=value` overrides.
    #[serde(default)]
    pub set: Vec<String>,
}

/// How a version is rolled out: ordered stages.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Rollout {
    /// How long each cluster's workloads may take to become ready [default: 5m].
    #[serde(default)]
    pub timeout: Option<FleetDuration>,
    /// How often gates are checked while a stage bakes [default: 10s].
    #[serde(default)]
    pub gate_interval: Option<FleetDuration>,
    /// The stages, in order. Every cluster belongs to exactly one.
    pub stages: Vec<Stage>,
}

/// One stage: a set of clusters updated together, then watched for `bakeTime`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Stage {
    /// The stage's name, e.g. `canary`.
    pub name: String,
    /// Labels a cluster must all carry to be in this stage.
    #[serde(default)]
    pub selector: BTreeMap<String, String>,
    /// Clusters named explicitly, in addition to those the selector chooses.
    #[serde(default)]
    pub clusters: Vec<String>,
    /// How many clusters of the stage are updated at once [default: 1].
    #[serde(default = "one")]
    pub max_parallel: usize,
    /// How long every cluster of the stage must stay healthy before the next stage starts
    /// [default: 0s].
    #[serde(default)]
    pub bake_time: Option<FleetDuration>,
    /// What must hold for a cluster to count as healthy. Workload readiness always does.
    #[serde(default)]
    pub gates: Gates,
    /// What a failure in this stage does [default: halt].
    #[serde(default)]
    pub on_failure: OnFailure,
}

fn one() -> usize {
    1
}

/// A stage's health gates, besides workload readiness (always checked).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Gates {
    /// The release's drift must be clean: no object of the deployed revision missing or
    /// changed since it was applied [default: true].
    #[serde(default = "yes")]
    pub drift: bool,
    /// HTTP checks, run from where the rollout runs.
    #[serde(default)]
    pub http: Vec<HttpGate>,
}

impl Default for Gates {
    fn default() -> Self {
        Self {
            drift: true,
            http: Vec::new(),
        }
    }
}

fn yes() -> bool {
    true
}

/// An HTTP check: `GET url` must answer `expectStatus`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HttpGate {
    /// The URL; `{cluster}` is replaced with the cluster's name.
    pub url: String,
    /// The status code expected [default: 200].
    #[serde(default = "ok_status")]
    pub expect_status: u16,
    /// A CA certificate (PEM) to trust for this URL, relative to the fleet file.
    #[serde(default)]
    pub ca: Option<PathBuf>,
    /// How long one check may take [default: 10s].
    #[serde(default)]
    pub timeout: Option<FleetDuration>,
}

fn ok_status() -> u16 {
    200
}

/// What a failed cluster does to the rollout.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum OnFailure {
    /// Stop: start no other cluster, no later stage.
    #[default]
    Halt,
    /// Go on with the other clusters and stages; the rollout still fails at the end.
    Continue,
}

impl Fleet {
    /// Parses fleet YAML. Refuses a password anywhere in it before anything else.
    pub fn parse(text: &str, source: &Path) -> Result<Self, FleetError> {
        airlift_bundle::limits::check_nesting(
            text.as_bytes(),
            "fleet file",
            airlift_bundle::limits::MAX_NESTING,
        )
        .map_err(|e| FleetError::Read {
            path: source.to_path_buf(),
            source: Box::new(e),
        })?;
        let raw: serde_yaml::Value = serde_yaml::from_str(text).map_err(|e| FleetError::Parse {
            path: source.to_path_buf(),
            message: e.to_string(),
        })?;
        crate::validate::refuse_passwords(&raw, source)?;
        let fleet: Fleet = serde_yaml::from_value(raw).map_err(|e| FleetError::Parse {
            path: source.to_path_buf(),
            message: e.to_string(),
        })?;
        if fleet.api_version != API_VERSION || fleet.kind != FLEET_KIND {
            return Err(FleetError::Kind {
                path: source.to_path_buf(),
                api_version: fleet.api_version,
                kind: fleet.kind,
            });
        }
        Ok(fleet)
    }

    /// Reads and parses the fleet file at `path` (bounded).
    pub fn load(path: &Path) -> Result<Self, FleetError> {
        let text =
            airlift_bundle::limits::read_bounded_string(path, MAX_FLEET_FILE).map_err(|e| {
                FleetError::Read {
                    path: path.to_path_buf(),
                    source: Box::new(e),
                }
            })?;
        Self::parse(&text, path)
    }
}

/// `path` as given in the fleet file at `fleet_file`: `~/` is the home directory, a relative
/// path is relative to the fleet file's folder.
pub fn resolve_path(fleet_file: &Path, path: &Path) -> PathBuf {
    if let Ok(rest) = path.strip_prefix("~") {
        if let Some(home) = std::env::var_os("HOME") {
            return PathBuf::from(home).join(rest);
        }
    }
    if path.is_absolute() {
        return path.to_path_buf();
    }
    fleet_file
        .parent()
        .unwrap_or_else(|| Path::new("."))
        .join(path)
}
