//! What a bundle needs from the platform it lands on, in provider-neutral terms (`platform:` in
//! the definition and the manifest). Airlift maps each need to the concrete storage class,
//! Service annotations, ingress class and workload-identity annotation of the cluster it
//! detects; templates see the result as `platform.*`, and the customer may override any of it.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The platform needs of a bundle. Every part is optional; an empty block needs nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PlatformNeeds {
    /// Storage by role: the role name (e.g. `fast-rwo`, `shared-rwx`) is what templates use,
    /// as `platform.storage["fast-rwo"].className`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub storage: BTreeMap<String, StorageNeed>,
    /// A Service of type LoadBalancer; templates get its annotations as
    /// `platform.loadBalancer.annotations`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub load_balancer: Option<LoadBalancerNeed>,
    /// An Ingress; templates get `platform.ingress.className` and `platform.ingress.annotations`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ingress: Option<IngressNeed>,
    /// Workload identities by name: a cloud identity bound to a ServiceAccount. Templates get
    /// `platform.identity.NAME.annotations` (for the ServiceAccount) and `.podLabels`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub identity: BTreeMap<String, IdentityNeed>,
}

impl PlatformNeeds {
    /// Whether the bundle needs nothing from the platform.
    pub fn is_empty(&self) -> bool {
        self.storage.is_empty()
            && self.load_balancer.is_none()
            && self.ingress.is_none()
            && self.identity.is_empty()
    }
}

/// How volumes of a storage role are mounted.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
pub enum AccessMode {
    /// One node mounts the volume read-write (block storage).
    ReadWriteOnce,
    /// Many nodes mount the volume read-write (a shared file system).
    ReadWriteMany,
}

impl AccessMode {
    /// The Kubernetes spelling, e.g. `ReadWriteOnce`.
    pub fn as_str(self) -> &'static str {
        match self {
            AccessMode::ReadWriteOnce => "ReadWriteOnce",
            AccessMode::ReadWriteMany => "ReadWriteMany",
        }
    }
}

/// The performance class of a storage role.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum StorageTier {
    /// The provider's general-purpose storage.
    #[default]
    Standard,
    /// SSD-backed, higher-IOPS storage.
    Fast,
}

impl StorageTier {
    /// The spelling in definitions and tables, e.g. `fast`.
    pub fn as_str(self) -> &'static str {
        match self {
            StorageTier::Standard => "standard",
            StorageTier::Fast => "fast",
        }
    }
}

/// One storage role.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StorageNeed {
    /// `ReadWriteOnce` (block) or `ReadWriteMany` (shared file system).
    pub access_mode: AccessMode,
    /// `standard` or `fast`.
    #[serde(default)]
    pub tier: StorageTier,
    /// What the role is for, shown to the operator.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// Who may reach a load balancer.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum LoadBalancerScope {
    /// Reachable from the internet.
    Public,
    /// Reachable only inside the customer's network.
    #[default]
    Internal,
}

impl LoadBalancerScope {
    /// The spelling in definitions and tables, e.g. `internal`.
    pub fn as_str(self) -> &'static str {
        match self {
            LoadBalancerScope::Public => "public",
            LoadBalancerScope::Internal => "internal",
        }
    }
}

/// A Service of type LoadBalancer.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LoadBalancerNeed {
    /// `internal` (the default) or `public`; the customer may override it.
    #[serde(default)]
    pub scope: LoadBalancerScope,
}

/// An Ingress.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct IngressNeed {
    /// What the ingress is for, shown to the operator.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// A workload identity: the ServiceAccount that must act as a cloud identity (an IAM role, a
/// Google service account, an Azure managed identity), named by the customer at install.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct IdentityNeed {
    /// The ServiceAccount the bundle creates for it.
    pub service_account: String,
    /// What the identity must be allowed to do, shown to the operator.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn needs_parse_from_yaml_and_refuse_unknown_fields() {
        let needs: PlatformNeeds = serde_yaml::from_str(
            "storage:\n  fast-rwo: {accessMode: ReadWriteOnce, tier: fast}\n\
             loadBalancer: {scope: public}\ningress: {}\n\
             identity:\n  api: {serviceAccount: api}\n",
        )
        .unwrap();
        assert_eq!(needs.storage["fast-rwo"].tier, StorageTier::Fast);
        assert_eq!(
            needs.load_balancer.map(|l| l.scope),
            Some(LoadBalancerScope::Public)
        );
        assert_eq!(needs.identity["api"].service_account, "api");
        assert!(PlatformNeeds::default().is_empty());
        assert!(serde_yaml::from_str::<PlatformNeeds>("storge: {}").is_err());
    }
}
