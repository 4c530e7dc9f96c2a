//! The bundle manifest (`airlift.yaml` inside a bundle, `kind: Bundle`): what the packager recorded
//! at build time. Its signature covers every byte of the bundle, because it lists the digest and
//! size of every other member.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::{ComponentMode, Layer, Metadata, Platform, Requirements};
use super::config::ConfigSchema;
use super::license::LicensePolicy;
use super::platform::PlatformNeeds;
use crate::digest::Digest;

/// The `kind` of a bundle manifest.
pub const BUNDLE_KIND: &str = "Bundle";
/// The path of the bundle manifest inside the bundle: always the first member.
pub const MANIFEST_PATH: &str = "airlift.yaml";
/// The path of the detached signature: the second member when the bundle is signed.
pub const SIGNATURE_PATH: &str = "airlift.yaml.sig";

/// The bundle manifest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BundleManifest {
    /// Always `airlift.dev/v1alpha1`.
    pub api_version: String,
    /// Always `Bundle`.
    pub kind: String,
    /// The product and release.
    pub metadata: Metadata,
    /// How and when the bundle was built.
    pub build: BuildInfo,
    /// What the target cluster must offer.
    pub requirements: Requirements,
    /// The components, sorted by install order.
    pub components: Vec<Component>,
    /// The configuration schema with the SaaS defaults.
    pub config: ConfigSchema,
    /// What the bundle needs from the platform, mapped per provider at install.
    #[serde(default, skip_serializing_if = "PlatformNeeds::is_empty")]
    pub platform: PlatformNeeds,
    /// Every member other than the manifest, its signature and the blobs: `oci-layout`,
    /// `index.json` and component files, with digest and size.
    pub members: Vec<MemberRecord>,
    /// Every blob under `blobs/sha256/`, once each, sorted by digest.
    pub blobs: Vec<BlobRecord>,
    /// The license the product asks for, from the definition.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub license: Option<LicensePolicy>,
}

/// Build provenance. Never read from the clock: reproducible builds give identical bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BuildInfo {
    /// RFC 3339 time from `SOURCE_DATE_EPOCH`, or derived from the inputs.
    pub created: String,
    /// The packager that built it, e.g. `airlift-pack 0.1.0`.
    pub tool: String,
    /// The digest of the definition file the bundle was built from.
    pub definition_digest: Digest,
    /// The fingerprint of the signing key: sha256 of its public key's SPKI DER encoding. The
    /// writer sets it when it signs (whatever the caller put here is replaced); it lets a reader
    /// tell "wrong key" apart from "tampered manifest" when a signature does not verify.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signer: Option<Digest>,
}

/// A component as recorded in the bundle.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Component {
    /// The component's name.
    pub name: String,
    /// What it does.
    pub description: String,
    /// Required, optional-on or optional-off.
    pub mode: ComponentMode,
    /// Distro layer or workload.
    pub layer: Layer,
    /// Install order: lower first.
    pub order: i32,
    /// The component's images.
    pub images: Vec<ImageRecord>,
    /// The component's manifest templates: member paths under `components/<name>/`.
    pub manifests: Vec<String>,
    /// A bool entitlement the license must grant for this component to be installed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entitlement: Option<String>,
}

/// An image as recorded in the bundle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ImageRecord {
    /// The reference the manifests use; also its `org.opencontainers.image.ref.name` in `index.json`.
    pub reference: String,
    /// Where it came from: the pinned source reference (`host/repo@sha256:…`), or `build:<path>`,
    /// `oci-layout:<path>`, `oci-archive:<path>`.
    pub source: String,
    /// The digest of the top-level manifest or index, kept identical end to end.
    pub digest: Digest,
    /// The media type of that manifest or index.
    pub media_type: String,
    /// The platforms it carries.
    pub platforms: Vec<Platform>,
}

/// A non-blob member and its digest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MemberRecord {
    /// The member's path in the tar.
    pub path: String,
    /// Its digest.
    pub digest: Digest,
    /// Its size in bytes.
    pub size: u64,
}

/// A blob and its size; its path is `blobs/sha256/<hex>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BlobRecord {
    /// The blob's digest.
    pub digest: Digest,
    /// Its size in bytes.
    pub size: u64,
}
