//! Pure manifest logic shared by every image source: parsing manifests and indexes, matching
//! platforms, and writing a filtered index that keeps exactly the required platforms.

use airlift_bundle::schema::common::Platform;
use airlift_bundle::Digest;
use serde::Deserialize;

/// OCI image manifest.
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// OCI image index.
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// Docker schema 2 manifest.
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// Docker manifest list.
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
/// Every manifest media type we accept, for `Accept` headers.
pub const ACCEPTED: &[&str] = &[OCI_INDEX, DOCKER_LIST, OCI_MANIFEST, DOCKER_MANIFEST];

/// The largest manifest or config we read (they are held in memory; blobs never are).
pub const MAX_DOCUMENT: u64 = 4 << 20;

/// True for index / manifest-list media types.
pub fn is_index(media_type: &str) -> bool {
    media_type == OCI_INDEX || media_type == DOCKER_LIST
}

/// A descriptor inside a manifest or index.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    /// Media type.
    #[serde(default)]
    pub media_type: String,
    /// Digest (validated by [`Descriptor::digest`]).
    #[serde(rename = "digest")]
    pub digest_str: String,
    /// Size in bytes.
    pub size: u64,
    /// Platform, in index entries.
    #[serde(default)]
    pub platform: Option<PlatformJson>,
}

impl Descriptor {
    /// The parsed digest.
    pub fn digest(&self) -> Result<Digest, String> {
        self.digest_str
            .parse()
            .map_err(|e: airlift_bundle::DigestError| e.to_string())
    }
}

/// The platform object of an index entry or the os/architecture fields of a config.
#[derive(Debug, Clone, Deserialize, Default)]
pub struct PlatformJson {
    /// Operating system.
    #[serde(default)]
    pub os: String,
    /// Architecture.
    #[serde(default)]
    pub architecture: String,
    /// Variant.
    #[serde(default)]
    pub variant: Option<String>,
}

impl PlatformJson {
    /// As a [`Platform`] (with `unknown` parts when empty).
    pub fn to_platform(&self) -> Platform {
        let or_unknown = |s: &str| {
            if s.is_empty() {
                "unknown".to_string()
            } else {
                s.to_string()
            }
        };
        Platform {
            os: or_unknown(&self.os),
            architecture: or_unknown(&self.architecture),
            variant: self.variant.clone().filter(|v| !v.is_empty()),
        }
    }
}

/// A parsed manifest or index (only what we need).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawDoc {
    #[serde(default)]
    schema_version: Option<u32>,
    #[serde(default)]
    media_type: Option<String>,
    #[serde(default)]
    manifests: Option<Vec<Descriptor>>,
    #[serde(default)]
    config: Option<Descriptor>,
    #[serde(default)]
    layers: Option<Vec<Descriptor>>,
}

/// A parsed top-level document.
#[derive(Debug, Clone)]
pub enum Document {
    /// An index (OCI index or docker manifest list) and its entries.
    Index {
        /// The media type.
        media_type: String,
        /// The entries.
        manifests: Vec<Descriptor>,
    },
    /// A single image manifest.
    Manifest {
        /// The media type.
        media_type: String,
        /// The config blob.
        config: Descriptor,
        /// The layers.
        layers: Vec<Descriptor>,
    },
}

impl Document {
    /// The media type.
    pub fn media_type(&self) -> &str {
        match self {
            Self::Index { media_type, .. } | Self::Manifest { media_type, .. } => media_type,
        }
    }
}

/// Parses a manifest or index; `hint_type` is the media type from a descriptor or
/// `Content-Type`, used when the document does not name its own.
pub fn parse_document(bytes: &[u8], hint_type: Option<&str>) -> Result<Document, String> {
    let raw: RawDoc =
        serde_json::from_slice(bytes).map_err(|e| format!("manifest is not valid JSON: {e}"))?;
    if raw.schema_version != Some(2) {
        return Err(format!(
            "unsupported manifest schemaVersion {:?} (only 2; docker schema 1 is obsolete)",
            raw.schema_version
        ));
    }
    let media_type = raw
        .media_type
        .clone()
        .or_else(|| hint_type.map(str::to_string))
        .filter(|m| !m.is_empty())
        .unwrap_or_else(|| {
            if raw.manifests.is_some() {
                OCI_INDEX.to_string()
            } else {
                OCI_MANIFEST.to_string()
            }
        });
    if is_index(&media_type) {
        let manifests = raw.manifests.ok_or("index without `manifests`")?;
        for m in &manifests {
            m.digest()?;
        }
        Ok(Document::Index {
            media_type,
            manifests,
        })
    } else if media_type == OCI_MANIFEST || media_type == DOCKER_MANIFEST {
        let config = raw.config.ok_or("manifest without `config`")?;
        config.digest()?;
        let layers = raw.layers.unwrap_or_default();
        for l in &layers {
            l.digest()?;
        }
        Ok(Document::Manifest {
            media_type,
            config,
            layers,
        })
    } else {
        Err(format!("unsupported manifest media type `{media_type}`"))
    }
}

/// Whether an available platform satisfies a required one: os and architecture equal, and the
/// variant equal when the requirement names one.
pub fn platform_matches(required: &Platform, available: &Platform) -> bool {
    required.os == available.os
        && required.architecture == available.architecture
        && match &required.variant {
            Some(v) => available.variant.as_deref() == Some(v.as_str()),
            None => true,
        }
}

/// The outcome of choosing platforms from an index.
#[derive(Debug, Clone)]
pub struct Selection {
    /// The chosen entries, one per required platform, in index order.
    pub kept: Vec<Descriptor>,
    /// Whether entries were dropped (then the index must be rewritten).
    pub filtered: bool,
}

/// Chooses one entry per required platform from an index. An empty `required` keeps every
/// entry. Err names the first missing platform and lists the available ones.
pub fn select_platforms(
    manifests: &[Descriptor],
    required: &[Platform],
) -> Result<Selection, (Platform, String)> {
    if required.is_empty() {
        return Ok(Selection {
            kept: manifests.to_vec(),
            filtered: false,
        });
    }
    let mut keep = vec![false; manifests.len()];
    for req in required {
        // Prefer an exact variant match, then the first compatible entry.
        let plat = |m: &Descriptor| m.platform.as_ref().map(PlatformJson::to_platform);
        let exact = manifests.iter().position(|m| plat(m).as_ref() == Some(req));
        let any = || {
            manifests
                .iter()
                .position(|m| plat(m).is_some_and(|p| platform_matches(req, &p)))
        };
        match exact.or_else(any) {
            Some(i) => keep[i] = true,
            None => return Err((req.clone(), available_platforms(manifests))),
        }
    }
    let kept: Vec<Descriptor> = manifests
        .iter()
        .zip(&keep)
        .filter(|(_, k)| **k)
        .map(|(m, _)| m.clone())
        .collect();
    Ok(Selection {
        filtered: kept.len() != manifests.len(),
        kept,
    })
}

/// The platforms of an index, for messages: `linux/amd64, linux/arm64/v8`.
pub fn available_platforms(manifests: &[Descriptor]) -> String {
    let list: Vec<String> = manifests
        .iter()
        .filter_map(|m| m.platform.as_ref())
        .map(|p| p.to_platform().to_string())
        .collect();
    if list.is_empty() {
        "no platforms".to_string()
    } else {
        list.join(", ")
    }
}

/// Rewrites an index to hold only the entries whose digests are in `kept`, preserving every
/// other field (media type, annotations) and the entries' own JSON.
pub fn filtered_index(original: &[u8], kept: &[Descriptor]) -> Result<Vec<u8>, String> {
    let mut doc: serde_json::Value =
        serde_json::from_slice(original).map_err(|e| format!("index is not valid JSON: {e}"))?;
    let entries = doc
        .get("manifests")
        .and_then(|m| m.as_array())
        .ok_or("index without `manifests`")?;
    let keep: Vec<serde_json::Value> = entries
        .iter()
        .filter(|e| {
            e.get("digest")
                .and_then(|d| d.as_str())
                .is_some_and(|d| kept.iter().any(|k| k.digest_str == d))
        })
        .cloned()
        .collect();
    doc["manifests"] = serde_json::Value::Array(keep);
    serde_json::to_vec(&doc).map_err(|e| e.to_string())
}

/// Reads the platform of an image config.
pub fn config_platform(config: &[u8]) -> Result<Platform, String> {
    let p: PlatformJson =
        serde_json::from_slice(config).map_err(|e| format!("config is not valid JSON: {e}"))?;
    Ok(p.to_platform())
}

/// Checks a single-platform image against the required platforms: it must satisfy every one.
pub fn check_single(have: &Platform, required: &[Platform]) -> Result<(), Platform> {
    match required.iter().find(|r| !platform_matches(r, have)) {
        Some(missing) => Err(missing.clone()),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Platform {
        s.parse().unwrap()
    }

    const INDEX: &str = r#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json",
      "manifests":[
       {"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:1111111111111111111111111111111111111111111111111111111111111111","size":1,"platform":{"os":"linux","architecture":"amd64"}},
       {"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:2222222222222222222222222222222222222222222222222222222222222222","size":2,"platform":{"os":"linux","architecture":"arm64","variant":"v8"}},
       {"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:3333333333333333333333333333333333333333333333333333333333333333","size":3,"platform":{"os":"linux","architecture":"s390x"}}],
      "annotations":{"a":"b"}}"#;

    #[test]
    fn selects_and_filters_keeping_other_fields() {
        let Document::Index { manifests, .. } = parse_document(INDEX.as_bytes(), None).unwrap()
        else {
            panic!("not an index")
        };
        let s = select_platforms(&manifests, &[p("linux/arm64"), p("linux/amd64")]).unwrap();
        assert!(s.filtered);
        assert_eq!(s.kept.len(), 2);
        let out = filtered_index(INDEX.as_bytes(), &s.kept).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["manifests"].as_array().unwrap().len(), 2);
        assert_eq!(v["annotations"]["a"], "b");
        assert_eq!(v["mediaType"], OCI_INDEX);

        let (missing, avail) = select_platforms(&manifests, &[p("linux/ppc64le")]).unwrap_err();
        assert_eq!(missing, p("linux/ppc64le"));
        assert!(avail.contains("linux/arm64/v8"));
        assert!(select_platforms(&manifests, &[p("linux/arm64/v7")]).is_err());
        let all = select_platforms(&manifests, &[]).unwrap();
        assert!(!all.filtered);
    }

    #[test]
    fn single_platform_check() {
        let have = config_platform(br#"{"os":"linux","architecture":"amd64"}"#).unwrap();
        assert!(check_single(&have, &[p("linux/amd64")]).is_ok());
        assert_eq!(
            check_single(&have, &[p("linux/amd64"), p("linux/arm64")]),
            Err(p("linux/arm64"))
        );
    }

    #[test]
    fn rejects_schema1_and_unknown_types() {
        assert!(parse_document(br#"{"schemaVersion":1}"#, None).is_err());
        assert!(parse_document(br#"{"schemaVersion":2,"mediaType":"text/plain"}"#, None).is_err());
    }
}
