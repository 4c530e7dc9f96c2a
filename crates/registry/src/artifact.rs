//! The bundle as an OCI artifact: what `airlift-pack publish` puts into a registry and what
//! `airlift-install pull` and `install oci://…` accept (docs/bundle-format.md, "The bundle as an
//! OCI artifact").
//!
//! The artifact is an OCI image manifest with `artifactType`
//! [`ARTIFACT_TYPE`], the empty config, and **one layer per bundle member in archive order**
//! (`airlift.yaml`, `airlift.yaml.sig`, `oci-layout`, `index.json`, component files, blobs), each
//! titled with its member path. Since the bundle file is a canonical encoding of its members,
//! the layers rebuild it byte for byte. Nothing in the artifact is trusted: the reader checks the
//! signature of the `airlift.yaml` layer first, then that the layer list is exactly the one the
//! signed manifest implies, and only then downloads anything large.

use std::collections::BTreeMap;

use airlift_bundle::reader::{blob_member_path, INDEX_PATH, OCI_LAYOUT_PATH};
use airlift_bundle::reference::ImageRef;
use airlift_bundle::schema::manifest::{BundleManifest, MANIFEST_PATH, SIGNATURE_PATH};
use airlift_bundle::{escape, Digest};
use serde::{Deserialize, Serialize};

use crate::error::RegistryError;

/// The `artifactType` of a published bundle.
pub const ARTIFACT_TYPE: &str = "application/vnd.airlift.bundle.v1alpha1";
/// The media type of the `airlift.yaml` layer.
pub const MEDIA_TYPE_MANIFEST: &str = "application/vnd.airlift.bundle.manifest.v1alpha1+yaml";
/// The media type of the `airlift.yaml.sig` layer (DER ECDSA).
pub const MEDIA_TYPE_SIGNATURE: &str = "application/vnd.airlift.bundle.signature.v1alpha1";
/// The media type of `oci-layout`, `index.json` and component file layers.
pub const MEDIA_TYPE_MEMBER: &str = "application/vnd.airlift.bundle.member.v1alpha1";
/// The media type of blob layers (image manifests, configs, layers as stored in the bundle).
pub const MEDIA_TYPE_BLOB: &str = "application/vnd.airlift.bundle.blob.v1alpha1";
/// The OCI empty config (`{}`), as OCI 1.1 artifacts use it.
pub const MEDIA_TYPE_EMPTY: &str = "application/vnd.oci.empty.v1+json";
/// The bytes of the empty config.
pub const EMPTY_CONFIG: &[u8] = b"{}";
/// The annotation holding a layer's member path.
pub const ANNOTATION_TITLE: &str = "org.opencontainers.image.title";
/// The annotation holding the bundle's version.
pub const ANNOTATION_VERSION: &str = "org.opencontainers.image.version";
/// The annotation holding the bundle's build time.
pub const ANNOTATION_CREATED: &str = "org.opencontainers.image.created";
/// The annotation holding the bundle's vendor.
pub const ANNOTATION_VENDOR: &str = "org.opencontainers.image.vendor";
/// The annotation holding the bundle's channel.
pub const ANNOTATION_CHANNEL: &str = "dev.airlift.bundle.channel";
/// The annotation holding the sha256 of the bundle file the layers rebuild.
pub const ANNOTATION_FILE_SHA256: &str = "dev.airlift.bundle.sha256";
/// On the layer of an image's top manifest: the reference the components use.
pub const ANNOTATION_IMAGE_REF: &str = "dev.airlift.image.reference";
/// On the layer of an image's top manifest: where `publish` pushed the image, by digest.
pub const ANNOTATION_IMAGE_PUBLISHED: &str = "dev.airlift.image.published";
/// The OCI image manifest media type the artifact uses.
pub const MEDIA_TYPE_OCI_MANIFEST: &str = airlift_bundle::oci::MEDIA_TYPE_OCI_MANIFEST;

/// A failure specific to bundle artifacts (transport failures are [`RegistryError`]).
#[derive(Debug, thiserror::Error)]
pub enum ArtifactError {
    /// The `oci://` reference does not parse.
    #[error("`{reference}` is not an oci://HOST[:PORT]/REPOSITORY[:TAG] reference: {problem}")]
    BadReference {
        /// The reference as given (escaped).
        reference: String,
        /// What is wrong.
        problem: String,
    },
    /// Talking to the registry failed.
    #[error(transparent)]
    Registry(#[from] RegistryError),
    /// The tag or digest names no manifest.
    #[error("`{reference}` does not exist on registry `{registry}`")]
    NotFound {
        /// The registry.
        registry: String,
        /// Repository and tag or digest.
        reference: String,
    },
    /// The manifest there is not an Airlift bundle artifact.
    #[error("`{reference}` is not an Airlift bundle artifact: {problem}")]
    NotABundle {
        /// Repository and tag.
        reference: String,
        /// What it is instead.
        problem: String,
    },
    /// The layer list differs from what the signed manifest implies: the artifact was changed.
    #[error("artifact `{reference}` does not match its signed manifest at layer {position} ({found}); expected {expected}")]
    Tampered {
        /// Repository and tag.
        reference: String,
        /// The 1-based layer position.
        position: usize,
        /// What the layer is.
        found: String,
        /// What it should be.
        expected: String,
    },
    /// A downloaded layer's bytes do not match its digest or size.
    #[error("layer `{path}` of `{reference}` does not match its digest {digest}: the registry served other bytes")]
    LayerDigest {
        /// Repository and tag.
        reference: String,
        /// The member path.
        path: String,
        /// The expected digest.
        digest: Digest,
    },
    /// The bundle file no longer holds the bytes it was verified with (it changed while it
    /// was published): the blob's upload was cut short, so the registry committed nothing.
    #[error("the bundle file changed while it was published: blob {digest} now reads as {actual}")]
    SourceChanged {
        /// The blob's digest.
        digest: Digest,
        /// What its bytes hash to now.
        actual: Digest,
    },
    /// The `airlift.yaml` layer failed the trust policy, or does not parse.
    #[error("the bundle published at `{reference}` failed verification")]
    Bundle {
        /// Repository and tag.
        reference: String,
        /// The cause.
        #[source]
        source: Box<airlift_bundle::BundleError>,
    },
    /// The tag exists with other content; tags of published versions are never overwritten.
    #[error("`{reference}` already holds another bundle ({existing}); a published version is never replaced")]
    TagTaken {
        /// Repository and tag.
        reference: String,
        /// The manifest digest the tag holds.
        existing: String,
    },
    /// The bundle cannot be published as it is (e.g. its version makes no tag).
    #[error("cannot publish: {problem}")]
    Unpublishable {
        /// What is wrong.
        problem: String,
    },
    /// Writing the pulled bundle failed.
    #[error("cannot write `{path}`")]
    Io {
        /// The file.
        path: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

impl ArtifactError {
    /// How the operator can fix this.
    pub fn hint(&self) -> String {
        match self {
            Self::BadReference { .. } => {
                "write oci://HOST[:PORT]/REPOSITORY[:TAG], e.g. oci://registry.corp:5000/acme/shop:1.2.0"
                    .into()
            }
            Self::Registry(e) => e.hint(),
            Self::NotFound { .. } => {
                "check the repository and tag; `airlift-install updates oci://HOST/REPO` lists the published versions"
                    .into()
            }
            Self::NotABundle { .. } => {
                "point at a tag `airlift-pack publish` wrote; images are pulled by `install`, not named directly"
                    .into()
            }
            Self::SourceChanged { .. } => {
                "do not change the bundle file while it is published; verify it, then publish again".into()
            }
            Self::Tampered { .. } | Self::LayerDigest { .. } => {
                "the copy in the registry was changed after it was signed: do not install it; ask the vendor to publish it again"
                    .into()
            }
            Self::Bundle { source, .. } => source.hint(),
            Self::TagTaken { .. } => {
                "publish the new build under a new version, or pass another tag; a customer who pulled the old one must keep getting it"
                    .into()
            }
            Self::Unpublishable { .. } => "give an explicit :TAG in the oci:// reference".into(),
            Self::Io { .. } => "check that the folder exists and is writable, and that the disk has room".into(),
        }
    }
}

/// A parsed `oci://HOST[:PORT]/REPOSITORY[:TAG|@DIGEST]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OciReference {
    /// `host[:port]`.
    pub registry: String,
    /// The repository path.
    pub repository: String,
    /// The tag or `sha256:…` digest, when one was given.
    pub reference: Option<String>,
}

impl OciReference {
    /// Parses `oci://…`. The registry host must be explicit.
    pub fn parse(text: &str) -> Result<Self, ArtifactError> {
        let bad = |problem: &str| ArtifactError::BadReference {
            reference: escape(text).to_string(),
            problem: escape(problem).to_string(),
        };
        let rest = text
            .strip_prefix("oci://")
            .ok_or_else(|| bad("it must start with oci://"))?;
        let (host, path) = rest
            .split_once('/')
            .ok_or_else(|| bad("it names no repository after the host"))?;
        if host.is_empty() || path.is_empty() {
            return Err(bad("it names no host or no repository"));
        }
        let parsed = ImageRef::parse(rest).map_err(|e| bad(&e.to_string()))?;
        if parsed.registry != host {
            return Err(bad("the host must be a registry, e.g. registry.corp:5000"));
        }
        let last = path.rsplit('/').next().unwrap_or(path);
        let reference = if let Some(d) = parsed.digest {
            Some(d.to_string())
        } else if last.contains(':') {
            parsed.tag
        } else {
            None
        };
        Ok(Self {
            registry: parsed.registry,
            repository: parsed.repository,
            reference,
        })
    }

    /// `repository:reference` for messages.
    pub fn display_with(&self, reference: &str) -> String {
        if reference.starts_with("sha256:") {
            format!("{}/{}@{reference}", self.registry, self.repository)
        } else {
            format!("{}/{}:{reference}", self.registry, self.repository)
        }
    }
}

/// The tag a version is published under: the version with `+` (not allowed in tags) as `_`,
/// as helm does.
pub fn version_tag(version: &str) -> String {
    version.replace('+', "_")
}

/// An OCI descriptor as the artifact manifest holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    /// The media type.
    pub media_type: String,
    /// The content digest.
    pub digest: Digest,
    /// The content size.
    pub size: u64,
    /// Annotations (the member path, image references).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// The artifact manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ArtifactManifest {
    /// Always 2.
    pub schema_version: u32,
    /// [`MEDIA_TYPE_OCI_MANIFEST`].
    #[serde(default)]
    pub media_type: Option<String>,
    /// [`ARTIFACT_TYPE`].
    #[serde(default)]
    pub artifact_type: Option<String>,
    /// The empty config.
    pub config: Descriptor,
    /// One per bundle member, in archive order.
    pub layers: Vec<Descriptor>,
    /// Name, version, channel, vendor, creation time and file sha256 of the bundle (for
    /// listing; never trusted: the signed manifest decides).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// One expected member: its path, media type, digest and size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// The member path in the bundle.
    pub path: String,
    /// The layer media type.
    pub media_type: &'static str,
    /// Its digest.
    pub digest: Digest,
    /// Its size.
    pub size: u64,
}

/// The members of the bundle that `manifest` (whose exact bytes are `manifest_bytes`, signed by
/// `signature`) describes, in archive order: exactly the order the bundle reader demands.
pub fn members(
    manifest: &BundleManifest,
    manifest_bytes: &[u8],
    signature: Option<&[u8]>,
) -> Vec<Member> {
    let mut out = vec![Member {
        path: MANIFEST_PATH.into(),
        media_type: MEDIA_TYPE_MANIFEST,
        digest: Digest::of_bytes(manifest_bytes),
        size: manifest_bytes.len() as u64,
    }];
    if let Some(sig) = signature {
        out.push(Member {
            path: SIGNATURE_PATH.into(),
            media_type: MEDIA_TYPE_SIGNATURE,
            digest: Digest::of_bytes(sig),
            size: sig.len() as u64,
        });
    }
    let listed = |path: &str| manifest.members.iter().find(|m| m.path == path);
    for fixed in [OCI_LAYOUT_PATH, INDEX_PATH] {
        if let Some(m) = listed(fixed) {
            out.push(Member {
                path: m.path.clone(),
                media_type: MEDIA_TYPE_MEMBER,
                digest: m.digest.clone(),
                size: m.size,
            });
        }
    }
    let mut files: Vec<_> = manifest
        .members
        .iter()
        .filter(|m| m.path != OCI_LAYOUT_PATH && m.path != INDEX_PATH)
        .collect();
    files.sort_by(|a, b| a.path.cmp(&b.path));
    out.extend(files.into_iter().map(|m| Member {
        path: m.path.clone(),
        media_type: MEDIA_TYPE_MEMBER,
        digest: m.digest.clone(),
        size: m.size,
    }));
    let mut blobs: Vec<_> = manifest.blobs.iter().collect();
    blobs.sort_by_key(|b| blob_member_path(&b.digest));
    out.extend(blobs.into_iter().map(|b| Member {
        path: blob_member_path(&b.digest),
        media_type: MEDIA_TYPE_BLOB,
        digest: b.digest.clone(),
        size: b.size,
    }));
    out
}

/// The empty config's descriptor.
pub fn empty_config() -> Descriptor {
    Descriptor {
        media_type: MEDIA_TYPE_EMPTY.into(),
        digest: Digest::of_bytes(EMPTY_CONFIG),
        size: EMPTY_CONFIG.len() as u64,
        annotations: BTreeMap::new(),
    }
}

/// The artifact manifest for a bundle: `members` as layers, `images` (top manifest digest →
/// original reference and published reference) annotated on their layers, and the listing
/// annotations.
pub fn artifact_manifest(
    manifest: &BundleManifest,
    members: &[Member],
    images: &BTreeMap<Digest, (String, String)>,
    file_sha256: &Digest,
) -> ArtifactManifest {
    let layers = members
        .iter()
        .map(|m| {
            let mut annotations = BTreeMap::from([(ANNOTATION_TITLE.to_string(), m.path.clone())]);
            if m.media_type == MEDIA_TYPE_BLOB {
                if let Some((original, published)) = images.get(&m.digest) {
                    annotations.insert(ANNOTATION_IMAGE_REF.into(), original.clone());
                    annotations.insert(ANNOTATION_IMAGE_PUBLISHED.into(), published.clone());
                }
            }
            Descriptor {
                media_type: m.media_type.into(),
                digest: m.digest.clone(),
                size: m.size,
                annotations,
            }
        })
        .collect();
    let md = &manifest.metadata;
    ArtifactManifest {
        schema_version: 2,
        media_type: Some(MEDIA_TYPE_OCI_MANIFEST.into()),
        artifact_type: Some(ARTIFACT_TYPE.into()),
        config: empty_config(),
        layers,
        annotations: BTreeMap::from([
            (ANNOTATION_TITLE.to_string(), md.name.clone()),
            (ANNOTATION_VERSION.to_string(), md.version.clone()),
            (ANNOTATION_VENDOR.to_string(), md.vendor.clone()),
            (ANNOTATION_CHANNEL.to_string(), md.channel.clone()),
            (
                ANNOTATION_CREATED.to_string(),
                manifest.build.created.clone(),
            ),
            (ANNOTATION_FILE_SHA256.to_string(), file_sha256.to_string()),
        ]),
    }
}

/// Checks that `bytes` are an Airlift bundle artifact manifest and parses it. Bounded by the
/// caller's read limit; nesting is checked before parsing.
pub fn parse_artifact(reference: &str, bytes: &[u8]) -> Result<ArtifactManifest, ArtifactError> {
    let not = |problem: String| ArtifactError::NotABundle {
        reference: reference.to_string(),
        problem,
    };
    airlift_bundle::check_nesting(bytes, reference, airlift_bundle::oci::MAX_JSON_DEPTH)
        .map_err(|e| not(e.to_string()))?;
    let m: ArtifactManifest = serde_json::from_slice(bytes)
        .map_err(|e| not(format!("not an OCI image manifest: {e}")))?;
    if m.media_type.as_deref() != Some(MEDIA_TYPE_OCI_MANIFEST) {
        return Err(not(format!(
            "its media type is {}",
            escape(m.media_type.as_deref().unwrap_or("missing"))
        )));
    }
    if m.artifact_type.as_deref() != Some(ARTIFACT_TYPE) {
        return Err(not(format!(
            "its artifactType is {} (an Airlift bundle's is {ARTIFACT_TYPE})",
            escape(m.artifact_type.as_deref().unwrap_or("missing"))
        )));
    }
    match m.layers.first() {
        Some(l) if l.media_type == MEDIA_TYPE_MANIFEST => Ok(m),
        _ => Err(not("its first layer is not airlift.yaml".into())),
    }
}

/// Checks the artifact's layers against the members the signed manifest implies: same count,
/// and per position the same path, media type, digest and size.
pub fn check_layers(
    reference: &str,
    artifact: &ArtifactManifest,
    expected: &[Member],
) -> Result<(), ArtifactError> {
    let describe = |d: &Descriptor| {
        format!(
            "`{}` {} {} bytes",
            escape(
                d.annotations
                    .get(ANNOTATION_TITLE)
                    .map_or("untitled", |s| s)
            ),
            d.digest,
            d.size
        )
    };
    for (i, want) in expected.iter().enumerate() {
        let expected_text = format!("`{}` {} {} bytes", want.path, want.digest, want.size);
        let Some(got) = artifact.layers.get(i) else {
            return Err(ArtifactError::Tampered {
                reference: reference.to_string(),
                position: i + 1,
                found: "missing".into(),
                expected: expected_text,
            });
        };
        let same = got.digest == want.digest
            && got.size == want.size
            && got.media_type == want.media_type
            && got.annotations.get(ANNOTATION_TITLE) == Some(&want.path);
        if !same {
            return Err(ArtifactError::Tampered {
                reference: reference.to_string(),
                position: i + 1,
                found: describe(got),
                expected: expected_text,
            });
        }
    }
    if let Some(extra) = artifact.layers.get(expected.len()) {
        return Err(ArtifactError::Tampered {
            reference: reference.to_string(),
            position: expected.len() + 1,
            found: describe(extra),
            expected: "no more layers".into(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oci_references_parse_with_and_without_tags() {
        let r = OciReference::parse("oci://reg.corp:5000/acme/shop:1.2.0").unwrap();
        assert_eq!(r.registry, "reg.corp:5000");
        assert_eq!(r.repository, "acme/shop");
        assert_eq!(r.reference.as_deref(), Some("1.2.0"));
        let r = OciReference::parse("oci://reg.corp:5000/acme/shop").unwrap();
        assert_eq!(r.reference, None);
        let d = Digest::of_bytes(b"x");
        let r = OciReference::parse(&format!("oci://127.0.0.1:5000/shop@{d}")).unwrap();
        assert_eq!(r.reference, Some(d.to_string()));
        for bad in [
            "reg.corp/acme/shop",
            "oci://reg.corp",
            "oci:///shop",
            "oci://reg.corp/Acme",
            "oci://reg.corp/shop:bad tag",
            "oci://shop/x\u{1b}[31m",
        ] {
            let e = OciReference::parse(bad).unwrap_err();
            assert!(
                matches!(e, ArtifactError::BadReference { .. }),
                "{bad}: {e}"
            );
            assert!(!e.to_string().contains('\u{1b}'));
        }
    }

    #[test]
    fn versions_with_build_metadata_make_valid_tags() {
        assert_eq!(version_tag("1.2.0+build.7"), "1.2.0_build.7");
        assert_eq!(version_tag("2.0.0-rc.1"), "2.0.0-rc.1");
    }

    fn layer(path: &str, media_type: &str, data: &[u8]) -> Descriptor {
        Descriptor {
            media_type: media_type.into(),
            digest: Digest::of_bytes(data),
            size: data.len() as u64,
            annotations: BTreeMap::from([(ANNOTATION_TITLE.to_string(), path.to_string())]),
        }
    }

    #[test]
    fn layers_must_be_exactly_the_signed_members() {
        let expected = vec![
            Member {
                path: MANIFEST_PATH.into(),
                media_type: MEDIA_TYPE_MANIFEST,
                digest: Digest::of_bytes(b"m"),
                size: 1,
            },
            Member {
                path: "components/a/a.yaml".into(),
                media_type: MEDIA_TYPE_MEMBER,
                digest: Digest::of_bytes(b"a"),
                size: 1,
            },
        ];
        let good = ArtifactManifest {
            schema_version: 2,
            media_type: Some(MEDIA_TYPE_OCI_MANIFEST.into()),
            artifact_type: Some(ARTIFACT_TYPE.into()),
            config: empty_config(),
            layers: vec![
                layer(MANIFEST_PATH, MEDIA_TYPE_MANIFEST, b"m"),
                layer("components/a/a.yaml", MEDIA_TYPE_MEMBER, b"a"),
            ],
            annotations: BTreeMap::new(),
        };
        check_layers("r", &good, &expected).unwrap();
        let bytes = serde_json::to_vec(&good).unwrap();
        assert_eq!(parse_artifact("r", &bytes).unwrap(), good);

        let mut swapped = good.clone();
        swapped.layers[1] = layer("components/a/a.yaml", MEDIA_TYPE_MEMBER, b"b");
        let e = check_layers("r", &swapped, &expected).unwrap_err();
        assert!(
            matches!(e, ArtifactError::Tampered { position: 2, .. }),
            "{e}"
        );
        let mut renamed = good.clone();
        renamed.layers[1] = layer("components/a/../b.yaml", MEDIA_TYPE_MEMBER, b"a");
        assert!(check_layers("r", &renamed, &expected).is_err());
        let mut extra = good.clone();
        extra.layers.push(layer("x", MEDIA_TYPE_MEMBER, b"x"));
        let e = check_layers("r", &extra, &expected).unwrap_err();
        assert!(
            matches!(e, ArtifactError::Tampered { position: 3, .. }),
            "{e}"
        );
        let mut short = good.clone();
        short.layers.pop();
        assert!(check_layers("r", &short, &expected).is_err());

        let mut image = good.clone();
        image.artifact_type = None;
        let bytes = serde_json::to_vec(&image).unwrap();
        assert!(matches!(
            parse_artifact("r", &bytes),
            Err(ArtifactError::NotABundle { .. })
        ));
    }
}
