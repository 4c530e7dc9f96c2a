//! Signed product bundles for lifecycle tests: a small "shop" product (a namespace, a ConfigMap
//! from configuration, a Secret with a generated password, a web Deployment on a real image) at
//! any version, with SaaS defaults and extra manifests chosen by the test. Written with the
//! bundle library, so tests need no packager binary.

use std::path::{Path, PathBuf};

use airlift_bundle::schema::common::{ComponentMode, Layer, Metadata, Requirements};
use airlift_bundle::schema::config::{ConfigGroup, ConfigItem, ConfigSchema, ConfigType, Generate};
use airlift_bundle::schema::manifest::{BuildInfo, BundleManifest, Component, ImageRecord};
use airlift_bundle::schema::platform::PlatformNeeds;
use airlift_bundle::{write_bundle, BundleContents, ComponentFile, Digest, NoProgress, PrivateKey};
use serde_json::{json, Value};

use crate::images::{sample_set, SampleSet, OCI_MANIFEST};

/// The image reference the shop's web Deployment uses (relocated at install).
pub const SHOP_IMAGE: &str = "registry.example.com/acme/api:1.0";

const BASE: &str = "\
apiVersion: v1
kind: Namespace
metadata:
  name: {{ release.namespace }}
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: web-config
data:
  hostname: \"{{ config.web.hostname }}\"
  color: \"{{ config.web.color }}\"
---
apiVersion: v1
kind: Secret
metadata:
  name: db
stringData:
  password: \"{{ config.db.password }}\"
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: {{ config.web.replicas }}
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
      annotations: {shop.example.com/version: \"{{ bundle.version }}\"}
    spec:
      containers:
        - name: web
          image: registry.example.com/acme/api:1.0
";

const REPORTS: &str = "\
apiVersion: v1
kind: ConfigMap
metadata:
  name: reports
data:
  customer: \"{{ license.customer }}\"
  seats: \"{{ license.entitlements.seats }}\"
";

/// One version of the shop product.
#[derive(Debug, Clone)]
pub struct ShopVersion {
    /// The bundle name (and default release name).
    pub name: String,
    /// The version.
    pub version: String,
    /// SaaS default of `web.replicas`.
    pub replicas: i64,
    /// SaaS default of `web.color`.
    pub color: String,
    /// Extra manifest templates (YAML documents) appended to the component.
    pub extra: String,
    /// The NOTES template, if any.
    pub notes: Option<String>,
    /// The release channel (`stable` unless changed).
    pub channel: String,
    /// What the bundle needs from the platform (`platform:`); templates in `extra` see the
    /// mapped values as `platform.*`.
    pub platform: PlatformNeeds,
    /// The license policy the bundle declares.
    pub license: Option<airlift_bundle::schema::license::LicensePolicy>,
    /// Adds the optional-on component `reports` (a ConfigMap naming `license.customer`), which
    /// needs the bool entitlement `reports`.
    pub gated: bool,
}

impl ShopVersion {
    /// `shop` at `version`, 1 replica, color `blue`.
    pub fn new(version: &str) -> Self {
        Self {
            name: "shop".into(),
            version: version.into(),
            replicas: 1,
            color: "blue".into(),
            extra: String::new(),
            notes: None,
            channel: "stable".into(),
            platform: PlatformNeeds::default(),
            license: None,
            gated: false,
        }
    }
}

/// Signed bundles over one key and one image set.
pub struct ShopBundles {
    dir: PathBuf,
    key: PrivateKey,
    images: SampleSet,
}

impl std::fmt::Debug for ShopBundles {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShopBundles")
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

fn item(name: &str, kind: ConfigType, default: Option<Value>, description: &str) -> ConfigItem {
    ConfigItem {
        name: name.into(),
        kind,
        description: description.into(),
        default,
        required: true,
        validation: Default::default(),
        generate: None,
    }
}

impl ShopBundles {
    /// Writes the image set and a signing key under `dir`.
    pub fn new(dir: &Path) -> std::io::Result<Self> {
        Self::with_base_layer(dir, 64 << 10)
    }

    /// [`ShopBundles::new`] with `base_size` bytes of content in the shop image's base layer
    /// (its largest blob), for tests that measure what an image's size shows up in.
    pub fn with_base_layer(dir: &Path, base_size: u64) -> std::io::Result<Self> {
        let images = sample_set(&dir.join("images"), 7, base_size)?;
        Ok(Self {
            dir: dir.to_path_buf(),
            key: PrivateKey::generate(),
            images,
        })
    }

    /// The image set the bundles carry (the shop's image is [`SampleSet::api`]).
    pub fn images(&self) -> &SampleSet {
        &self.images
    }

    /// The vendor's public key file (written on first use).
    pub fn public_key(&self) -> std::io::Result<PathBuf> {
        let path = self.dir.join("vendor.pub");
        let pem = self
            .key
            .public_key()
            .to_pem()
            .map_err(|e| std::io::Error::other(e.to_string()))?;
        std::fs::write(&path, pem)?;
        Ok(path)
    }

    /// The vendor's signing key (it signs bundles and licenses).
    pub fn private_key(&self) -> &PrivateKey {
        &self.key
    }

    /// Writes the signed bundle for `v` and returns its path.
    pub fn write(&self, v: &ShopVersion) -> std::io::Result<PathBuf> {
        let path = "components/shop/shop.yaml".to_string();
        let mut template = BASE.to_string();
        if !v.extra.is_empty() {
            template.push_str("---\n");
            template.push_str(&v.extra);
        }
        let mut password = item("password", ConfigType::Secret, None, "database password");
        password.generate = Some(Generate {
            length: 24,
            charset: Default::default(),
        });
        let config = ConfigSchema {
            groups: vec![
                ConfigGroup {
                    name: "web".into(),
                    title: None,
                    description: None,
                    items: vec![
                        item(
                            "replicas",
                            ConfigType::Int,
                            Some(json!(v.replicas)),
                            "web pods",
                        ),
                        item(
                            "hostname",
                            ConfigType::Hostname,
                            Some(json!("shop.example.com")),
                            "public host name",
                        ),
                        item("color", ConfigType::String, Some(json!(v.color)), "theme"),
                    ],
                },
                ConfigGroup {
                    name: "db".into(),
                    title: None,
                    description: None,
                    items: vec![password],
                },
            ],
        };
        let api = &self.images.api;
        let manifest = BundleManifest {
            api_version: "airlift.dev/v1alpha1".into(),
            kind: "Bundle".into(),
            metadata: Metadata {
                name: v.name.clone(),
                version: v.version.clone(),
                channel: v.channel.clone(),
                vendor: "Acme".into(),
                description: None,
            },
            build: BuildInfo {
                created: "2026-01-02T03:04:05Z".into(),
                tool: "airlift-testkit".into(),
                definition_digest: Digest::of_bytes(v.version.as_bytes()),
                signer: None,
            },
            requirements: Requirements {
                kubernetes: ">=1.28.0".into(),
                platforms: vec!["linux/amd64"
                    .parse()
                    .map_err(|e| std::io::Error::other(format!("{e}")))?],
                storage_classes: vec![],
                crds: vec![],
            },
            components: vec![Component {
                name: "shop".into(),
                description: "the shop".into(),
                mode: ComponentMode::Required,
                layer: Layer::Workload,
                order: 0,
                images: vec![ImageRecord {
                    reference: SHOP_IMAGE.into(),
                    source: format!("oci-layout:test@{}", api.manifest.digest),
                    digest: api.manifest.digest.clone(),
                    media_type: OCI_MANIFEST.into(),
                    platforms: vec![api
                        .platform
                        .parse()
                        .map_err(|e| std::io::Error::other(format!("{e}")))?],
                }],
                manifests: vec![path.clone()],
                entitlement: None,
            }],
            config,
            platform: v.platform.clone(),
            members: vec![],
            blobs: vec![],
            notes: v.notes.clone(),
            license: v.license.clone(),
        };
        let mut manifest = manifest;
        let mut files = vec![ComponentFile {
            path,
            data: template.into_bytes(),
        }];
        if v.gated {
            let path = "components/reports/reports.yaml".to_string();
            manifest.components.push(Component {
                name: "reports".into(),
                description: "licensed reports".into(),
                mode: ComponentMode::OptionalOn,
                layer: Layer::Workload,
                order: 1,
                images: vec![],
                manifests: vec![path.clone()],
                entitlement: Some("reports".into()),
            });
            files.push(ComponentFile {
                path,
                data: REPORTS.as_bytes().to_vec(),
            });
        }
        let store = airlift_bundle::DirBlobStore::open(self.dir.join("images/blobs"))
            .map_err(|e| std::io::Error::other(e.to_string()))?;
        let out = self.dir.join(format!("{}-{}.airlift", v.name, v.version));
        write_bundle(
            BundleContents { manifest, files },
            &store,
            Some(&self.key),
            &out,
            &NoProgress,
        )
        .map_err(|e| std::io::Error::other(e.to_string()))?;
        Ok(out)
    }
}
