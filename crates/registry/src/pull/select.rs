//! Platform selection shared by every image source: matching platforms, choosing the entries
//! of an index that satisfy the required platforms, and writing a filtered index that keeps
//! exactly those. Documents are parsed with the one OCI model, [`airlift_bundle::oci`].

use airlift_bundle::oci::{Descriptor, OciPlatform};
use airlift_bundle::schema::common::Platform;

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
        let plat = |m: &Descriptor| m.platform.as_ref().map(OciPlatform::platform_or_unknown);
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
        .map(|p| p.platform_or_unknown().to_string())
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
        airlift_bundle::oci::from_json_bounded(original, airlift_bundle::oci::MAX_MANIFEST_SIZE)
            .map_err(|e| format!("index is not valid JSON: {e}"))?;
    let entries = doc
        .get("manifests")
        .and_then(|m| m.as_array())
        .ok_or("index without `manifests`")?;
    let keep: Vec<serde_json::Value> = entries
        .iter()
        .filter(|e| {
            e.get("digest")
                .and_then(|d| d.as_str())
                .is_some_and(|d| kept.iter().any(|k| k.digest.to_string() == d))
        })
        .cloned()
        .collect();
    doc["manifests"] = serde_json::Value::Array(keep);
    serde_json::to_vec(&doc).map_err(|e| e.to_string())
}

/// Reads the platform of an image config (`unknown` parts when it does not say).
pub fn config_platform(config: &[u8]) -> Result<Platform, String> {
    OciPlatform::from_config(config)
        .map(|p| p.platform_or_unknown())
        .map_err(|e| format!("config is not valid JSON: {e}"))
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
    use airlift_bundle::oci::{ImageIndex, Parsed, MEDIA_TYPE_OCI_INDEX as OCI_INDEX};

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
        let Parsed::Index(ImageIndex { manifests, .. }) =
            Parsed::from_slice("", INDEX.as_bytes()).unwrap()
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
}
