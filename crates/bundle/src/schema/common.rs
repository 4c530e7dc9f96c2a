//! Types shared by the definition and the bundle manifest.

use std::fmt;
use std::str::FromStr;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Name, version and origin of a product release.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Metadata {
    /// The product name: lowercase letters, digits and `-`; it names the bundle file.
    pub name: String,
    /// The release version, semver (`1.4.2`, `2.0.0-rc.1`).
    pub version: String,
    /// The release channel, e.g. `stable` or `beta`.
    #[serde(default = "default_channel")]
    pub channel: String,
    /// The vendor that ships the product.
    pub vendor: String,
    /// A one-line description of the product.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

fn default_channel() -> String {
    "stable".to_string()
}

/// What a target cluster must offer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Requirements {
    /// The Kubernetes server versions supported, as a semver range, e.g. `>=1.28.0, <1.36.0`.
    pub kubernetes: String,
    /// The node platforms every image must cover, e.g. `linux/amd64` and `linux/arm64`.
    pub platforms: Vec<Platform>,
    /// Storage classes that must exist in the cluster.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub storage_classes: Vec<String>,
    /// CRDs (`plural.group`) that must already exist and that the bundle does not ship.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub crds: Vec<String>,
}

/// How a component is selected at install time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum ComponentMode {
    /// Always installed.
    Required,
    /// Installed unless the customer turns it off.
    OptionalOn,
    /// Installed only when the customer turns it on.
    OptionalOff,
}

/// Which layer a component belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Layer {
    /// Platform components and defaults that every install gets.
    Distro,
    /// The vendor's SaaS workloads.
    Workload,
}

/// Errors from parsing a platform string.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("malformed platform `{0}`: expected `os/architecture` or `os/architecture/variant`, e.g. `linux/arm64`")]
pub struct PlatformError(pub String);

/// An OCI platform such as `linux/amd64` or `linux/arm/v7`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Platform {
    /// The operating system, e.g. `linux`.
    pub os: String,
    /// The CPU architecture in Go's naming, e.g. `amd64`, `arm64`.
    pub architecture: String,
    /// The variant, e.g. `v7` or `v8`.
    pub variant: Option<String>,
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

impl FromStr for Platform {
    type Err = PlatformError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let parts: Vec<&str> = s.split('/').collect();
        let valid = |p: &str| {
            !p.is_empty()
                && p.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        };
        match parts.as_slice() {
            [os, arch] if valid(os) && valid(arch) => Ok(Self {
                os: os.to_string(),
                architecture: arch.to_string(),
                variant: None,
            }),
            [os, arch, var] if valid(os) && valid(arch) && valid(var) => Ok(Self {
                os: os.to_string(),
                architecture: arch.to_string(),
                variant: Some(var.to_string()),
            }),
            _ => Err(PlatformError(s.to_string())),
        }
    }
}

impl Serialize for Platform {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Platform {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

impl JsonSchema for Platform {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Platform".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "pattern": "^[a-z0-9_]+/[a-z0-9_]+(/[a-z0-9_]+)?$",
            "description": "An OCI platform, `os/architecture[/variant]`, e.g. `linux/arm64`."
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn platform_round_trips() {
        for s in ["linux/amd64", "linux/arm/v7"] {
            assert_eq!(
                s.parse::<Platform>().map(|p| p.to_string()),
                Ok(s.to_string())
            );
        }
        assert!("linux".parse::<Platform>().is_err());
        assert!("linux/AMD64".parse::<Platform>().is_err());
    }
}
