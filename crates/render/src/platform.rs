//! Platform profiles: what a bundle's provider-neutral `platform:` needs become on each provider.
//!
//! The mapping tables are data files in `crates/render/platforms/*.yaml`, embedded at compile
//! time; each row names the documentation page it comes from (see `docs/platforms.md`).
//! [`resolve`] turns the needs, the facts the installer detected on the cluster
//! ([`ClusterFacts`]) and the customer's overrides ([`PlatformOverrides`], the `platform:` key of
//! a values file or `--set platform.…`) into the [`ResolvedPlatform`] templates see as
//! `platform.*`. Each resolved value says how it was chosen. No network I/O.

use std::collections::BTreeMap;
use std::sync::LazyLock;

use airlift_bundle::schema::platform::{AccessMode, LoadBalancerScope, PlatformNeeds, StorageTier};
use serde::{Deserialize, Serialize};

/// The embedded mapping tables, by file name.
pub const TABLES: [(&str, &str); 6] = [
    ("aws.yaml", include_str!("../platforms/aws.yaml")),
    ("gcp.yaml", include_str!("../platforms/gcp.yaml")),
    ("azure.yaml", include_str!("../platforms/azure.yaml")),
    (
        "openshift.yaml",
        include_str!("../platforms/openshift.yaml"),
    ),
    ("k3s.yaml", include_str!("../platforms/k3s.yaml")),
    (
        "datacenter.yaml",
        include_str!("../platforms/datacenter.yaml"),
    ),
];

/// The values-file key that holds platform overrides; configuration groups cannot use it.
pub const OVERRIDES_KEY: &str = "platform";
/// The `--set` prefix of platform overrides.
pub const SET_PREFIX: &str = "platform.";

/// The profile used for providers without one of their own.
pub const FALLBACK_PROFILE: &str = "datacenter";

/// One provider's mapping table.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Profile {
    /// The provider it serves, e.g. `aws`.
    pub provider: String,
    /// Its display name.
    pub title: String,
    /// Storage rows, most preferred first.
    pub storage: Vec<StorageRow>,
    /// Service annotations per load balancer scope.
    pub load_balancer: LoadBalancerRows,
    /// Ingress classes, most preferred first.
    pub ingress: Vec<IngressRow>,
    /// The workload-identity annotation, when the provider has one.
    #[serde(default)]
    pub identity: Option<IdentityRow>,
}

/// A storage class that serves an access mode and tier.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StorageRow {
    /// The access mode it serves.
    pub access_mode: AccessMode,
    /// The tier it serves.
    pub tier: StorageTier,
    /// The class name the provider creates or documents; empty when there is none.
    pub class_name: String,
    /// Provisioners that can serve it: a cluster class with one of them is used instead.
    pub provisioners: Vec<String>,
    /// The parameters a class for it takes (shown in the fix when none exists).
    #[serde(default)]
    pub parameters: BTreeMap<String, String>,
    /// The documentation page.
    pub source: String,
}

/// Annotations for internal and public load balancers.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LoadBalancerRows {
    /// For `scope: internal`.
    pub internal: LoadBalancerRow,
    /// For `scope: public`.
    pub public: LoadBalancerRow,
}

/// The Service annotations of one scope.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LoadBalancerRow {
    /// The annotations.
    pub annotations: BTreeMap<String, String>,
    /// The documentation page.
    pub source: String,
}

/// An ingress class of the provider.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct IngressRow {
    /// The class name.
    pub class_name: String,
    /// The IngressClass `spec.controller`.
    pub controller: String,
    /// Served by the platform without an IngressClass object (GKE).
    #[serde(default)]
    pub built_in: bool,
    /// Annotations an Ingress needs to select it.
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    /// The documentation page.
    pub source: String,
}

/// The workload-identity annotation of a provider.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct IdentityRow {
    /// The ServiceAccount annotation, e.g. `eks.amazonaws.com/role-arn`.
    pub annotation: String,
    /// An example value, for messages.
    pub example: String,
    /// Labels the pods need, e.g. `azure.workload.identity/use: "true"`.
    #[serde(default)]
    pub pod_labels: BTreeMap<String, String>,
    /// The documentation page.
    pub source: String,
}

static PROFILES: LazyLock<Vec<Profile>> = LazyLock::new(|| {
    TABLES
        .iter()
        .map(|(name, text)| {
            serde_yaml::from_str(text)
                .unwrap_or_else(|e| panic!("embedded platform table {name} is invalid: {e}"))
        })
        .collect()
});

/// Every profile, in table order.
pub fn profiles() -> &'static [Profile] {
    &PROFILES
}

/// The profile for `provider` (`rke2` uses `k3s`'s; unknown providers use `datacenter`).
pub fn profile(provider: &str) -> &'static Profile {
    let wanted = match provider {
        "rke2" => "k3s",
        p => p,
    };
    PROFILES
        .iter()
        .find(|p| p.provider == wanted)
        .or_else(|| PROFILES.iter().find(|p| p.provider == FALLBACK_PROFILE))
        .unwrap_or_else(|| unreachable!("the datacenter table is embedded"))
}

/// A StorageClass the cluster has.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StorageClassFact {
    /// Its name.
    pub name: String,
    /// Its provisioner.
    pub provisioner: String,
    /// Whether it is the default class.
    pub is_default: bool,
}

/// An IngressClass the cluster has.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IngressClassFact {
    /// Its name.
    pub name: String,
    /// Its `spec.controller`.
    pub controller: String,
    /// Whether it is the default class.
    pub is_default: bool,
}

/// What the installer found on the cluster, as mapping needs it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClusterFacts {
    /// The detected provider, e.g. `aws`, `datacenter`.
    pub provider: String,
    /// The region, when the nodes tell.
    pub region: Option<String>,
    /// The zones the nodes run in.
    pub zones: Vec<String>,
    /// The cluster's storage classes.
    pub storage_classes: Vec<StorageClassFact>,
    /// The cluster's ingress classes.
    pub ingress_classes: Vec<IngressClassFact>,
}

impl ClusterFacts {
    /// The facts of a cluster that has exactly what `provider`'s table documents: its named
    /// storage classes (the first one default) and ingress classes. `lint` renders with these.
    pub fn documented(provider: &str) -> Self {
        let p = profile(provider);
        let mut storage_classes: Vec<StorageClassFact> = Vec::new();
        for row in &p.storage {
            let name = if row.class_name.is_empty() {
                format!("{}-{}", row.tier.as_str(), row.access_mode.as_str()).to_lowercase()
            } else {
                row.class_name.clone()
            };
            if storage_classes.iter().all(|s| s.name != name) {
                storage_classes.push(StorageClassFact {
                    is_default: storage_classes.is_empty(),
                    name,
                    provisioner: row.provisioners.first().cloned().unwrap_or_default(),
                });
            }
        }
        ClusterFacts {
            provider: p.provider.clone(),
            region: None,
            zones: Vec::new(),
            storage_classes,
            ingress_classes: p
                .ingress
                .iter()
                .filter(|r| !r.built_in)
                .map(|r| IngressClassFact {
                    name: r.class_name.clone(),
                    controller: r.controller.clone(),
                    is_default: false,
                })
                .collect(),
        }
    }
}

/// The customer's overrides: the `platform:` key of a values file, or `--set platform.…`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PlatformOverrides {
    /// Storage class per role.
    #[serde(default)]
    pub storage: BTreeMap<String, StorageOverride>,
    /// The load balancer scope and annotations.
    #[serde(default)]
    pub load_balancer: Option<LoadBalancerOverride>,
    /// The ingress class and annotations.
    #[serde(default)]
    pub ingress: Option<IngressOverride>,
    /// The cloud identity per name.
    #[serde(default)]
    pub identity: BTreeMap<String, IdentityOverride>,
}

/// A storage role's class, chosen by the customer.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StorageOverride {
    /// The StorageClass to use.
    pub class_name: Option<String>,
}

/// The load balancer, as the customer wants it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LoadBalancerOverride {
    /// `internal` or `public`.
    pub scope: Option<LoadBalancerScope>,
    /// Annotations that replace the profile's.
    pub annotations: Option<BTreeMap<String, String>>,
}

/// The ingress, as the customer wants it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct IngressOverride {
    /// The IngressClass to use.
    pub class_name: Option<String>,
    /// Annotations that replace the profile's.
    pub annotations: Option<BTreeMap<String, String>>,
}

/// A workload identity, as the customer gives it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct IdentityOverride {
    /// The cloud identity: an IAM role ARN, a Google service account e-mail, an Azure client id.
    pub value: Option<String>,
    /// ServiceAccount annotations that replace the profile's.
    pub annotations: Option<BTreeMap<String, String>>,
}

/// Errors in the customer's platform overrides.
#[derive(Debug, thiserror::Error)]
pub enum OverrideError {
    /// The `platform:` block does not have the expected shape.
    #[error("`platform` values from {origin} are malformed: {message}")]
    Shape {
        /// Where they came from.
        origin: String,
        /// What is wrong.
        message: String,
    },
    /// An override names a role or identity the bundle does not declare.
    #[error("`platform.{path}` from {origin} is not a platform need of this bundle (it declares: {declared})")]
    Unknown {
        /// The key, e.g. `storage.fast`.
        path: String,
        /// Where it came from.
        origin: String,
        /// What the bundle declares.
        declared: String,
    },
}

impl PlatformOverrides {
    /// The `platform:` key of a values file (YAML text), if any; `origin` names it in errors.
    pub fn from_values_yaml(text: &str, origin: &str) -> Result<Option<Self>, OverrideError> {
        let doc: serde_json::Value =
            serde_yaml::from_str(text).map_err(|e| OverrideError::Shape {
                origin: origin.to_string(),
                message: e.to_string(),
            })?;
        match doc.get(OVERRIDES_KEY) {
            None | Some(serde_json::Value::Null) => Ok(None),
            Some(v) => Self::from_value(v.clone(), origin).map(Some),
        }
    }

    /// Parses the `platform:` value of a values file; `origin` names it in errors.
    pub fn from_value(value: serde_json::Value, origin: &str) -> Result<Self, OverrideError> {
        serde_json::from_value(value).map_err(|e| OverrideError::Shape {
            origin: origin.to_string(),
            message: e.to_string(),
        })
    }

    /// Applies one `--set platform.PATH=VALUE` (PATH without `platform.`), e.g.
    /// `storage.fast-rwo.className=gp3-encrypted` or `identity.api.value=arn:…`.
    pub fn apply_set(&mut self, path: &str, value: &str) -> Result<(), OverrideError> {
        let shape = |message: &str| OverrideError::Shape {
            origin: "--set".into(),
            message: format!("`platform.{path}`: {message}"),
        };
        let parts: Vec<&str> = path.split('.').collect();
        match parts.as_slice() {
            ["storage", role, "className"] => {
                self.storage.entry(role.to_string()).or_default().class_name =
                    Some(value.to_string())
            }
            ["loadBalancer", "scope"] => {
                let scope = match value {
                    "internal" => LoadBalancerScope::Internal,
                    "public" => LoadBalancerScope::Public,
                    _ => return Err(shape("must be `internal` or `public`")),
                };
                self.load_balancer.get_or_insert_with(Default::default).scope = Some(scope);
            }
            ["loadBalancer", "annotations", key] => {
                self.load_balancer
                    .get_or_insert_with(Default::default)
                    .annotations
                    .get_or_insert_with(Default::default)
                    .insert(key.to_string(), value.to_string());
            }
            ["ingress", "className"] => {
                self.ingress.get_or_insert_with(Default::default).class_name =
                    Some(value.to_string())
            }
            ["ingress", "annotations", key] => {
                self.ingress
                    .get_or_insert_with(Default::default)
                    .annotations
                    .get_or_insert_with(Default::default)
                    .insert(key.to_string(), value.to_string());
            }
            ["identity", name, "value"] => {
                self.identity.entry(name.to_string()).or_default().value = Some(value.to_string())
            }
            _ => {
                return Err(shape(
                    "expected storage.ROLE.className, loadBalancer.scope, ingress.className, \
                     identity.NAME.value (annotation keys contain dots: use a values file for them)",
                ))
            }
        }
        Ok(())
    }

    /// Layers `other` over `self` (later values files and `--set` win).
    pub fn merge(&mut self, other: PlatformOverrides) {
        for (k, v) in other.storage {
            let e = self.storage.entry(k).or_default();
            e.class_name = v.class_name.or(e.class_name.take());
        }
        if let Some(lb) = other.load_balancer {
            let e = self.load_balancer.get_or_insert_with(Default::default);
            e.scope = lb.scope.or(e.scope);
            e.annotations = lb.annotations.or(e.annotations.take());
        }
        if let Some(i) = other.ingress {
            let e = self.ingress.get_or_insert_with(Default::default);
            e.class_name = i.class_name.or(e.class_name.take());
            e.annotations = i.annotations.or(e.annotations.take());
        }
        for (k, v) in other.identity {
            let e = self.identity.entry(k).or_default();
            e.value = v.value.or(e.value.take());
            e.annotations = v.annotations.or(e.annotations.take());
        }
    }

    /// Refuses overrides for needs the bundle does not declare.
    pub fn check_against(&self, needs: &PlatformNeeds, origin: &str) -> Result<(), OverrideError> {
        let unknown = |path: String, declared: Vec<&String>| OverrideError::Unknown {
            path,
            origin: origin.to_string(),
            declared: if declared.is_empty() {
                "none".into()
            } else {
                declared
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            },
        };
        if let Some(role) = self
            .storage
            .keys()
            .find(|r| !needs.storage.contains_key(*r))
        {
            return Err(unknown(
                format!("storage.{role}"),
                needs.storage.keys().collect(),
            ));
        }
        if let Some(n) = self
            .identity
            .keys()
            .find(|r| !needs.identity.contains_key(*r))
        {
            return Err(unknown(
                format!("identity.{n}"),
                needs.identity.keys().collect(),
            ));
        }
        Ok(())
    }
}

/// The platform needs, resolved for one cluster: what templates see as `platform`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResolvedPlatform {
    /// The provider, e.g. `aws`.
    pub provider: String,
    /// The profile used, e.g. `Amazon Elastic Kubernetes Service (EKS)`.
    pub profile: String,
    /// The region, when known.
    pub region: Option<String>,
    /// The zones, when known.
    pub zones: Vec<String>,
    /// Storage per role.
    pub storage: BTreeMap<String, ResolvedStorage>,
    /// The load balancer, when the bundle needs one.
    pub load_balancer: Option<ResolvedLoadBalancer>,
    /// The ingress, when the bundle needs one.
    pub ingress: Option<ResolvedIngress>,
    /// Workload identities per name.
    pub identity: BTreeMap<String, ResolvedIdentity>,
}

/// A storage role, resolved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResolvedStorage {
    /// The StorageClass to use in `storageClassName`.
    pub class_name: String,
    /// The access mode to request.
    pub access_mode: String,
    /// Whether the class exists on the cluster.
    pub found: bool,
    /// How it was chosen, or why nothing fits.
    pub how: String,
    /// What a class for it needs, when none exists: provisioner and parameters.
    pub suggestion: Option<String>,
}

/// The load balancer, resolved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResolvedLoadBalancer {
    /// `internal` or `public`.
    pub scope: String,
    /// The Service annotations.
    pub annotations: BTreeMap<String, String>,
    /// How they were chosen.
    pub how: String,
}

/// The ingress, resolved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResolvedIngress {
    /// The `ingressClassName` (empty when the class is selected by annotation only).
    pub class_name: String,
    /// Annotations the Ingress needs.
    pub annotations: BTreeMap<String, String>,
    /// Whether the class exists (or the platform serves it built in).
    pub found: bool,
    /// How it was chosen, or why nothing fits.
    pub how: String,
}

/// A workload identity, resolved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResolvedIdentity {
    /// The ServiceAccount it binds.
    pub service_account: String,
    /// The ServiceAccount annotations (empty until the customer gives a value).
    pub annotations: BTreeMap<String, String>,
    /// Labels the pods need.
    pub pod_labels: BTreeMap<String, String>,
    /// Whether it has a value.
    pub found: bool,
    /// How it was chosen, or what the customer must give.
    pub how: String,
}

impl ResolvedPlatform {
    /// The value templates see as `platform`.
    pub fn template_value(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or(serde_json::Value::Null)
    }
}

mod resolve;
pub use resolve::resolve;

#[cfg(test)]
mod tests;
