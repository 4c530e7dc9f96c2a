//! OCI image-spec types: media types, descriptors, image indexes and image manifests.
//!
//! These types are for *reading* what a manifest references. A manifest blob is never re-encoded
//! from them: blobs are stored and served byte for byte, so digests stay identical end to end.
//! Unknown fields are kept in `extra` so that nothing is lost when a document is inspected.
//!
//! This is the one model of OCI documents in Airlift: the bundle writer and verifier, the pull,
//! push and serve engines and the packager's local images all use these types and
//! [`Parsed::from_slice`]. Everything from outside is bounded before serde sees it: its size
//! ([`MAX_MANIFEST_SIZE`], [`MAX_CONFIG_SIZE`]) and its JSON nesting ([`MAX_JSON_DEPTH`]).

use std::collections::BTreeMap;

use serde::de::{DeserializeOwned, Error as _};
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

/// Every manifest media type Airlift reads, in the order it asks for them (`Accept`).
pub const ACCEPTED_MANIFEST_TYPES: &[&str] = &[
    MEDIA_TYPE_OCI_INDEX,
    MEDIA_TYPE_DOCKER_LIST,
    MEDIA_TYPE_OCI_MANIFEST,
    MEDIA_TYPE_DOCKER_MANIFEST,
];

/// The largest manifest or index read into memory (registries use the same 4 MiB limit).
pub const MAX_MANIFEST_SIZE: u64 = 4 * 1024 * 1024;
/// The largest image config read into memory to learn its platform.
pub const MAX_CONFIG_SIZE: u64 = 16 * 1024 * 1024;
/// How deeply arrays and objects may nest in a manifest, index or config. Real documents nest
/// five or six levels; a hostile registry could send millions.
pub const MAX_JSON_DEPTH: usize = 32;
/// How deep indexes may nest (an index listing an index counts one level).
pub const MAX_INDEX_DEPTH: usize = 4;

/// Fails when `bytes`, read as JSON, nests arrays and objects deeper than `max` levels.
///
/// A linear scan that understands strings and escapes, so it costs nothing even on hostile
/// input; it does not validate the JSON (serde does that afterwards).
pub fn check_json_depth(bytes: &[u8], max: usize) -> Result<(), serde_json::Error> {
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    for &b in bytes {
        if in_string {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_string = false;
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > max {
                    return Err(serde_json::Error::custom(format!(
                        "JSON nests deeper than {max} levels"
                    )));
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    Ok(())
}

/// Parses JSON from outside into `T`, refusing more than `limit` bytes or more than
/// [`MAX_JSON_DEPTH`] levels of nesting before serde parses anything.
pub fn from_json_bounded<T: DeserializeOwned>(
    bytes: &[u8],
    limit: u64,
) -> Result<T, serde_json::Error> {
    if bytes.len() as u64 > limit {
        return Err(serde_json::Error::custom(format!(
            "document is {} bytes, over the {limit}-byte limit",
            bytes.len()
        )));
    }
    check_json_depth(bytes, MAX_JSON_DEPTH)?;
    serde_json::from_slice(bytes)
}

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
    /// The media type of the referenced content (empty when the document omits it).
    #[serde(default)]
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
    /// A descriptor with no platform, annotations or other fields.
    pub fn new(media_type: impl Into<String>, digest: Digest, size: u64) -> Self {
        Self {
            media_type: media_type.into(),
            digest,
            size,
            platform: None,
            annotations: BTreeMap::new(),
            extra: BTreeMap::new(),
        }
    }

    /// The same descriptor with `platform` set.
    pub fn with_platform(mut self, platform: Option<OciPlatform>) -> Self {
        self.platform = platform;
        self
    }

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
    /// The CPU architecture, e.g. `amd64` (empty when the document omits it).
    #[serde(default)]
    pub architecture: String,
    /// The operating system, e.g. `linux` (empty when the document omits it).
    #[serde(default)]
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

    /// This platform as written, with `unknown` for an empty os or architecture and no variant
    /// when it is empty: for matching and for messages, never `None`.
    pub fn platform_or_unknown(&self) -> crate::schema::common::Platform {
        let or_unknown = |s: &str| {
            if s.is_empty() {
                "unknown".to_string()
            } else {
                s.to_string()
            }
        };
        crate::schema::common::Platform {
            os: or_unknown(&self.os),
            architecture: or_unknown(&self.architecture),
            variant: self.variant.clone().filter(|v| !v.is_empty()),
        }
    }

    /// The OCI form of a schema platform.
    pub fn from_platform(p: &crate::schema::common::Platform) -> Self {
        Self {
            architecture: p.architecture.clone(),
            os: p.os.clone(),
            variant: p.variant.clone(),
            extra: BTreeMap::new(),
        }
    }

    /// The `os`, `architecture` and `variant` of an image config (bounded by
    /// [`MAX_CONFIG_SIZE`] and [`MAX_JSON_DEPTH`]); the rest of the config is not kept.
    pub fn from_config(config: &[u8]) -> Result<Self, serde_json::Error> {
        #[derive(Deserialize)]
        struct Cfg {
            #[serde(default)]
            os: String,
            #[serde(default)]
            architecture: String,
            #[serde(default)]
            variant: Option<String>,
        }
        let c: Cfg = from_json_bounded(config, MAX_CONFIG_SIZE)?;
        Ok(Self {
            architecture: c.architecture,
            os: c.os,
            variant: c.variant,
            extra: BTreeMap::new(),
        })
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
    /// Parses a manifest or index blob. Refuses more than [`MAX_MANIFEST_SIZE`] bytes, nesting
    /// deeper than [`MAX_JSON_DEPTH`], a `schemaVersion` other than 2 (docker schema 1 is
    /// obsolete) and unknown media types.
    ///
    /// The kind is the document's own `mediaType`; when it has none, `media_type` (the
    /// descriptor's or the `Content-Type`) if that is a manifest or index type; otherwise the
    /// shape (`manifests` makes an index). The parsed document's `media_type` is set to the kind
    /// decided, so callers never guess again.
    pub fn from_slice(media_type: &str, bytes: &[u8]) -> Result<Self, serde_json::Error> {
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Probe {
            #[serde(default)]
            schema_version: Option<u64>,
            #[serde(default)]
            media_type: Option<String>,
            #[serde(default)]
            manifests: Option<serde::de::IgnoredAny>,
        }
        let probe: Probe = from_json_bounded(bytes, MAX_MANIFEST_SIZE)?;
        if probe.schema_version != Some(2) {
            return Err(serde_json::Error::custom(format!(
                "unsupported manifest schemaVersion {} (only 2; docker schema 1 is obsolete)",
                probe
                    .schema_version
                    .map_or_else(|| "(none)".to_string(), |v| v.to_string())
            )));
        }
        let hint = Some(media_type)
            .filter(|m| is_index_media_type(m) || is_manifest_media_type(m))
            .map(str::to_string);
        let kind = match probe.media_type.filter(|m| !m.is_empty()).or(hint) {
            Some(m) => m,
            None if probe.manifests.is_some() => MEDIA_TYPE_OCI_INDEX.to_string(),
            None => MEDIA_TYPE_OCI_MANIFEST.to_string(),
        };
        if is_index_media_type(&kind) {
            let mut index: ImageIndex = serde_json::from_slice(bytes)?;
            index.media_type = Some(kind);
            Ok(Parsed::Index(index))
        } else if is_manifest_media_type(&kind) {
            let mut manifest: ImageManifest = serde_json::from_slice(bytes)?;
            manifest.media_type = Some(kind);
            Ok(Parsed::Manifest(manifest))
        } else {
            Err(serde_json::Error::custom(format!(
                "unsupported manifest media type `{kind}`"
            )))
        }
    }

    /// The media type decided by [`Parsed::from_slice`].
    pub fn media_type(&self) -> &str {
        let (m, default) = match self {
            Parsed::Index(i) => (&i.media_type, MEDIA_TYPE_OCI_INDEX),
            Parsed::Manifest(m) => (&m.media_type, MEDIA_TYPE_OCI_MANIFEST),
        };
        m.as_deref().unwrap_or(default)
    }

    /// Every descriptor this document references directly (children, or config then layers),
    /// plus a `subject` when present.
    pub fn children(&self) -> Vec<Descriptor> {
        let mut out = match self {
            Parsed::Index(i) => i.manifests.clone(),
            Parsed::Manifest(m) => {
                let mut v = vec![m.config.clone()];
                v.extend(m.layers.iter().cloned());
                v
            }
        };
        out.extend(self.subject());
        out
    }

    /// The `subject` descriptor (OCI referrers), when the document has a valid one.
    pub fn subject(&self) -> Option<Descriptor> {
        let extra = match self {
            Parsed::Index(i) => &i.extra,
            Parsed::Manifest(m) => &m.extra,
        };
        extra
            .get("subject")
            .and_then(|s| serde_json::from_value::<Descriptor>(s.clone()).ok())
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

    #[test]
    fn deep_nesting_is_refused_before_serde() {
        let deep = format!(
            "{{\"schemaVersion\":2,\"x\":{}1{}}}",
            "[".repeat(100_000),
            "]".repeat(100_000)
        );
        let e = Parsed::from_slice(MEDIA_TYPE_OCI_MANIFEST, deep.as_bytes()).unwrap_err();
        assert!(e.to_string().contains("deeper than 32"), "{e}");
        // Brackets inside strings (and escaped quotes) do not count.
        let s = format!("{{\"a\":\"\\\"{}\"}}", "[".repeat(100));
        check_json_depth(s.as_bytes(), 2).unwrap();
        assert!(check_json_depth(b"[[[]]]", 2).is_err());
        check_json_depth(b"[[[]]]", 3).unwrap();
    }

    #[test]
    fn size_schema_version_and_media_type_rules() {
        let big = vec![b' '; MAX_MANIFEST_SIZE as usize + 1];
        let e = Parsed::from_slice(MEDIA_TYPE_OCI_MANIFEST, &big).unwrap_err();
        assert!(e.to_string().contains("limit"), "{e}");
        let e = Parsed::from_slice("", br#"{"schemaVersion":1}"#).unwrap_err();
        assert!(e.to_string().contains("schemaVersion 1"), "{e}");
        let e =
            Parsed::from_slice("", br#"{"schemaVersion":2,"mediaType":"text/plain"}"#).unwrap_err();
        assert!(e.to_string().contains("text/plain"), "{e}");

        let cfg = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        let doc = format!(
            r#"{{"schemaVersion":2,"config":{{"mediaType":"c","digest":"{cfg}","size":0}}}}"#
        );
        // No mediaType in the document: the descriptor's decides, else the shape.
        let p = Parsed::from_slice(MEDIA_TYPE_DOCKER_MANIFEST, doc.as_bytes()).unwrap();
        assert_eq!(p.media_type(), MEDIA_TYPE_DOCKER_MANIFEST);
        let p = Parsed::from_slice("application/octet-stream", doc.as_bytes()).unwrap();
        assert_eq!(p.media_type(), MEDIA_TYPE_OCI_MANIFEST);
        let index = br#"{"schemaVersion":2,"manifests":[]}"#;
        let p = Parsed::from_slice("", index).unwrap();
        assert!(matches!(p, Parsed::Index(_)));
        assert_eq!(p.media_type(), MEDIA_TYPE_OCI_INDEX);
    }

    #[test]
    fn config_platform_and_unknown_parts() {
        let p = OciPlatform::from_config(
            br#"{"os":"linux","architecture":"arm64","variant":"v8","rootfs":{}}"#,
        )
        .unwrap();
        assert_eq!(p.platform_or_unknown().to_string(), "linux/arm64/v8");
        assert!(p.extra.is_empty());
        let p = OciPlatform::from_config(b"{}").unwrap();
        assert_eq!(p.platform_or_unknown().to_string(), "unknown/unknown");
        assert!(OciPlatform::from_config(&[b'['; 100]).is_err());
    }
}
