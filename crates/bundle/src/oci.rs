//! OCI image-spec types: media types, descriptors, image indexes and image manifests.
//!
//! These types are for *reading* what a manifest references. A manifest blob is never re-encoded
//! from them: blobs are stored and served byte for byte, so digests stay identical end to end.
//! Unknown fields are kept in `extra` so that nothing is lost when a document is inspected.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::digest::Digest;

/// `application/vnd.oci.image.index.v1+json`.
pub const MEDIA_TYPE_OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// `application/vnd.oci.image.manifest.v1+json`.
pub const MEDIA_TYPE_OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// `application/vnd.oci.image.config.v1+json`.
pub const MEDIA_TYPE_OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
/// `application/vnd.oci.image.layer.v1.tar+gzip`.
pub const MEDIA_TYPE_OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
/// `application/vnd.oci.image.layer.v1.tar`.
pub const MEDIA_TYPE_OCI_LAYER_TAR: &str = "application/vnd.oci.image.layer.v1.tar";
/// `application/vnd.docker.distribution.manifest.list.v2+json`.
pub const MEDIA_TYPE_DOCKER_LIST: &str =
    "application/vnd.docker.distribution.manifest.list.v2+json";
/// `application/vnd.docker.distribution.manifest.v2+json`.
pub const MEDIA_TYPE_DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// `application/vnd.docker.container.image.v1+json`.
pub const MEDIA_TYPE_DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
/// The annotation that names an image in an OCI layout's `index.json`.
pub const ANNOTATION_REF_NAME: &str = "org.opencontainers.image.ref.name";
/// The content of the `oci-layout` member.
pub const OCI_LAYOUT_CONTENT: &str = "{\"imageLayoutVersion\":\"1.0.0\"}";

/// True for the media types of multi-platform indexes (OCI index, Docker manifest list).
pub fn is_index_media_type(media_type: &str) -> bool {
    media_type == MEDIA_TYPE_OCI_INDEX || media_type == MEDIA_TYPE_DOCKER_LIST
}

/// True for the media types of single-platform image manifests (OCI, Docker schema 2).
pub fn is_manifest_media_type(media_type: &str) -> bool {
    media_type == MEDIA_TYPE_OCI_MANIFEST || media_type == MEDIA_TYPE_DOCKER_MANIFEST
}

/// A content descriptor: what a manifest or index points at.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    /// The media type of the referenced content.
    pub media_type: String,
    /// Its digest.
    pub digest: Digest,
    /// Its size in bytes.
    pub size: u64,
    /// The platform, in index entries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<OciPlatform>,
    /// Annotations such as [`ANNOTATION_REF_NAME`].
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    /// Fields this type does not model (`urls`, `artifactType`, …), kept as they were.
    #[serde(flatten)]
    pub extra: BTreeMap<String, serde_json::Value>,
}

impl Descriptor {
    /// The `org.opencontainers.image.ref.name` annotation, if any.
    pub fn ref_name(&self) -> Option<&str> {
        self.annotations
            .get(ANNOTATION_REF_NAME)
            .map(String::as_str)
    }
}

/// The platform of an index entry, as the OCI image spec spells it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OciPlatform {
    /// The CPU architecture, e.g. `amd64`.
    pub architecture: String,
    /// The operating system, e.g. `linux`.
    pub os: String,
    /// The CPU variant, e.g. `v8`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    /// Fields this type does not model (`os.version`, `os.features`, …).
    #[serde(flatten)]
    pub extra: BTreeMap<String, serde_json::Value>,
}

impl OciPlatform {
    /// This platform as the schema's `os/architecture[/variant]` type, or `None` when it does not
    /// parse (e.g. `unknown/unknown` attestation entries).
    pub fn to_platform(&self) -> Option<crate::schema::common::Platform> {
        let mut s = format!("{}/{}", self.os, self.architecture);
        if let Some(v) = &self.variant {
            s.push('/');
            s.push_str(v);
        }
        s.parse().ok()
    }
}

/// An image index (or Docker manifest list), and also the shape of an OCI layout's `index.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageIndex {
    /// Always 2.
    pub schema_version: u32,
    /// The index's media type, when the document states it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    /// The manifests it lists.
    pub manifests: Vec<Descriptor>,
    /// Annotations of the index.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    /// Fields this type does not model (`subject`, `artifactType`, …).
    #[serde(flatten)]
    pub extra: BTreeMap<String, serde_json::Value>,
}

/// A single-platform image manifest (OCI or Docker schema 2).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageManifest {
    /// Always 2.
    pub schema_version: u32,
    /// The manifest's media type, when the document states it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    /// The image configuration.
    pub config: Descriptor,
    /// The layers, base first.
    #[serde(default)]
    pub layers: Vec<Descriptor>,
    /// Annotations of the manifest.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    /// Fields this type does not model (`subject`, `artifactType`, …).
    #[serde(flatten)]
    pub extra: BTreeMap<String, serde_json::Value>,
}

/// The referenced content of one manifest or index blob.
#[derive(Debug, Clone, PartialEq)]
pub enum Parsed {
    /// A multi-platform index: its children.
    Index(ImageIndex),
    /// A single-platform manifest: its config and layers.
    Manifest(ImageManifest),
}

impl Parsed {
    /// Parses a manifest or index blob, deciding by `media_type` (the descriptor's) and falling
    /// back to the document's own `mediaType` or shape.
    pub fn from_slice(media_type: &str, bytes: &[u8]) -> Result<Self, serde_json::Error> {
        if is_index_media_type(media_type) {
            return serde_json::from_slice(bytes).map(Parsed::Index);
        }
        if is_manifest_media_type(media_type) {
            return serde_json::from_slice(bytes).map(Parsed::Manifest);
        }
        // Unknown descriptor type: look at the document.
        let v: serde_json::Value = serde_json::from_slice(bytes)?;
        if v.get("manifests").is_some() {
            serde_json::from_value(v).map(Parsed::Index)
        } else {
            serde_json::from_value(v).map(Parsed::Manifest)
        }
    }

    /// Every descriptor this document references directly (children, or config then layers),
    /// plus a `subject` when present.
    pub fn children(&self) -> Vec<Descriptor> {
        let (mut out, extra) = match self {
            Parsed::Index(i) => (i.manifests.clone(), &i.extra),
            Parsed::Manifest(m) => {
                let mut v = vec![m.config.clone()];
                v.extend(m.layers.iter().cloned());
                (v, &m.extra)
            }
        };
        if let Some(subject) = extra.get("subject") {
            if let Ok(d) = serde_json::from_value::<Descriptor>(subject.clone()) {
                out.push(d);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_fields_are_kept() {
        let doc = r#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json",
            "manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json",
            "digest":"sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            "size":0,"platform":{"architecture":"arm64","os":"linux","variant":"v8",
            "os.features":["x"]},"urls":["u"]}],"artifactType":"a"}"#;
        let p = Parsed::from_slice(MEDIA_TYPE_OCI_INDEX, doc.as_bytes()).unwrap();
        let Parsed::Index(i) = p else {
            panic!("not an index")
        };
        assert!(i.extra.contains_key("artifactType"));
        assert!(i.manifests[0].extra.contains_key("urls"));
        let plat = i.manifests[0].platform.as_ref().unwrap();
        assert!(plat.extra.contains_key("os.features"));
        assert_eq!(plat.to_platform().unwrap().to_string(), "linux/arm64/v8");
    }
}
