//! The bundle definition (`bundles/NAME/airlift.yaml`, `kind: BundleDefinition`): what the vendor
//! writes. The packager turns it into a signed bundle.

use std::collections::BTreeMap;
use std::path::PathBuf;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::{ComponentMode, Layer, Metadata, Requirements};
use super::config::ConfigSchema;
use super::license::LicensePolicy;
use super::platform::PlatformNeeds;

/// The `kind` of a bundle definition.
pub const DEFINITION_KIND: &str = "BundleDefinition";

/// A bundle definition, as the vendor writes it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BundleDefinition {
    /// Always `airlift.dev/v1alpha1`.
    pub api_version: String,
    /// Always `BundleDefinition`.
    pub kind: String,
    /// The product and release.
    pub metadata: Metadata,
    /// What the target cluster must offer.
    pub requirements: Requirements,
    /// The components, installed in `order`.
    pub components: Vec<ComponentDefinition>,
    /// The configuration schema with the SaaS defaults.
    #[serde(default)]
    pub config: ConfigSchema,
    /// A NOTES template (at most 16 KiB) printed after install and upgrade, like helm's NOTES.txt: it sees
    /// `config` (secret items masked), `bundle` and `release`, as manifest templates do.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notes: Option<String>,
    /// What the bundle needs from the platform, mapped per provider at install.
    #[serde(default, skip_serializing_if = "PlatformNeeds::is_empty")]
    pub platform: PlatformNeeds,
    /// The license the product asks for: required or not, and its entitlements.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub license: Option<LicensePolicy>,
}

/// One component of the product.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ComponentDefinition {
    /// The component's name: lowercase letters, digits and `-`.
    pub name: String,
    /// What the component does.
    pub description: String,
    /// Whether it is required, optional-on or optional-off.
    #[serde(default = "default_mode")]
    pub mode: ComponentMode,
    /// The distro layer or a workload.
    pub layer: Layer,
    /// Its position among the components: lower installs first.
    #[serde(default)]
    pub order: i32,
    /// Manifest files or folders, relative to the definition's folder, templated with the config.
    #[serde(default)]
    pub manifests: Vec<PathBuf>,
    /// The images the component's manifests use.
    #[serde(default)]
    pub images: Vec<ImageDefinition>,
    /// A bool entitlement the license must grant for this component to be installed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entitlement: Option<String>,
}

fn default_mode() -> ComponentMode {
    ComponentMode::Required
}

/// An image the bundle carries.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ImageDefinition {
    /// The reference the manifests use, e.g. `registry.acme.io/app/api:1.4.2`. It is recorded in
    /// the bundle, names the image in the OCI index, and keys the relocation map.
    pub reference: String,
    /// Where the bytes come from. Without it, `reference` is pulled from its registry.
    /// Written as a one-key map, e.g. `source: {build: {context: images/web}}`.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "serde_yaml::with::singleton_map"
    )]
    #[schemars(with = "Option<ImageSource>")]
    pub source: Option<ImageSource>,
}

/// Where an image's bytes come from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub enum ImageSource {
    /// Pull this reference (by tag or digest) from a registry; tags are pinned at build time.
    Registry(String),
    /// A local OCI image layout folder.
    OciLayout(LocalOci),
    /// A local OCI archive (a tar of an OCI layout).
    OciArchive(LocalOci),
    /// Build the image from local files: a folder becomes one layer.
    Build(BuildSpec),
}

/// An image inside a local OCI layout or archive.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LocalOci {
    /// The folder or archive, relative to the definition's folder.
    pub path: PathBuf,
    /// The `org.opencontainers.image.ref.name` to pick; may be omitted when there is one image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
}

/// An image built from local files, with no registry and no container engine.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BuildSpec {
    /// The folder whose contents become the image's single layer, relative to the definition.
    /// At most 100 000 files, folders and symlinks, nested at most 128 folders deep; symlinks
    /// must stay inside it, and sockets, FIFOs and devices are refused.
    pub context: PathBuf,
    /// The entrypoint.
    #[serde(default)]
    pub entrypoint: Vec<String>,
    /// The default arguments.
    #[serde(default)]
    pub cmd: Vec<String>,
    /// Environment variables.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Exposed ports, e.g. `8080/tcp`.
    #[serde(default)]
    pub ports: Vec<String>,
    /// The working directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workdir: Option<String>,
    /// The user to run as, e.g. `65532:65532`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
}
