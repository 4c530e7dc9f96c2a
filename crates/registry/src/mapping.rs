//! Repository mapping: where each bundled image lands in the customer's registry.
//!
//! # The rule
//!
//! The operator names a target as `HOST[:PORT][/PREFIX]` (`--registry`). An image whose original
//! reference is `SOURCE-HOST/PATH[:TAG][@DIGEST]` is relocated to:
//!
//! * **nested (default):** `HOST[:PORT]/PREFIX/PATH`, keeping `TAG`.
//!   `ghcr.io/acme/api:1.4` with `--registry registry.corp:5000/vendor` becomes
//!   `registry.corp:5000/vendor/acme/api:1.4`.
//! * **`--flatten`**, for registries that do not allow nested paths: the segments of `PATH` are
//!   joined with `-` into one segment: `registry.corp:5000/vendor/acme-api:1.4`. The prefix is
//!   kept as given.
//!
//! `PATH` is the repository path without the source host. Docker Hub's short names are expanded
//! first, as `docker pull` does: `nginx:1.25` is `docker.io/library/nginx:1.25`, so its `PATH` is
//! `library/nginx`. The source host is dropped, so images from two hosts may share a `PATH`
//! (`ghcr.io/acme/api` and `quay.io/acme/api`), and flattening may make two paths equal
//! (`acme/web-api` and `acme-web/api` both flatten to `acme-web-api`). **Names never collide:**
//! when two different source repositories would map to the same target repository, *each* of
//! them gets `-` plus the first 8 hex characters of the sha256 of its full source repository name
//! (`SOURCE-HOST/PATH`) appended to its last segment, e.g. `acme/api-3f2a9c1b`. Images that do not
//! collide keep their plain names, and the suffix depends only on the source name, so the mapping
//! is stable from one push to the next for the same set of images.
//!
//! The tag is always kept. An image given only by digest is pushed by digest. Every relocated
//! image is also recorded by digest in the relocation map (`repository@sha256:…`), which the
//! deploy step uses to rewrite image references, so workloads run exactly the bytes that were
//! verified.

use std::collections::{BTreeMap, BTreeSet};

use airlift_bundle::reference::{ImageRef, ReferenceError};
use airlift_bundle::Digest;
use serde::{Deserialize, Serialize};

/// The Docker Hub host that short names expand to.
pub const DOCKER_HUB: &str = "docker.io";

/// Errors from parsing references and targets.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum MappingError {
    /// An image reference does not parse.
    #[error(transparent)]
    Reference(#[from] ReferenceError),
    /// The `--registry` target does not parse.
    #[error("invalid registry target `{target}`: {reason}; expected HOST[:PORT][/PREFIX], e.g. `registry.corp:5000/vendor`")]
    Destination {
        /// The target as given.
        target: String,
        /// What is wrong with it.
        reason: &'static str,
    },
}

/// One path segment per the distribution spec: `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`.
fn valid_segment(s: &str) -> bool {
    let b = s.as_bytes();
    if b.is_empty() || !is_alnum(b[0]) || !is_alnum(b[b.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if is_alnum(b[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && !is_alnum(b[i]) {
            i += 1;
        }
        let sep = &s[start..i];
        let ok = sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|c| c == b'-');
        if !ok {
            return false;
        }
    }
    true
}

fn is_alnum(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit()
}

fn valid_path(p: &str) -> bool {
    p.split('/').all(valid_segment)
}

/// Where images are relocated to: a registry, an optional prefix, and the flatten switch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Destination {
    /// `HOST[:PORT]`.
    pub registry: String,
    /// The path prefix every repository goes under, without slashes at the ends.
    pub prefix: Option<String>,
    /// Join the original path's segments with `-` (see the module docs).
    pub flatten: bool,
}

impl Destination {
    /// Parses `HOST[:PORT][/PREFIX]`.
    pub fn parse(target: &str, flatten: bool) -> Result<Self, MappingError> {
        let bad = |reason| MappingError::Destination {
            target: target.to_string(),
            reason,
        };
        let trimmed = target.trim_end_matches('/');
        if trimmed.contains("://") {
            return Err(bad("give the host without a scheme"));
        }
        let (registry, prefix) = match trimmed.split_once('/') {
            Some((h, p)) => (h, Some(p)),
            None => (trimmed, None),
        };
        if registry.is_empty()
            || !registry.bytes().all(|b| {
                b.is_ascii_alphanumeric()
                    || b == b'.'
                    || b == b'-'
                    || b == b':'
                    || b == b'['
                    || b == b']'
            })
        {
            return Err(bad("the host is empty or holds characters a host cannot"));
        }
        if let Some(p) = prefix {
            if !valid_path(p) {
                return Err(bad(
                    "the prefix must be lowercase path segments of [a-z0-9._-]",
                ));
            }
        }
        Ok(Self {
            registry: registry.to_string(),
            prefix: prefix.map(str::to_string),
            flatten,
        })
    }

    /// The target repository (without host) for a source path, before collision handling.
    fn base_repository(&self, source_path: &str) -> String {
        let path = if self.flatten {
            source_path.replace('/', "-")
        } else {
            source_path.to_string()
        };
        match &self.prefix {
            Some(p) => format!("{p}/{path}"),
            None => path,
        }
    }

    /// Maps every source repository (`HOST/PATH`) among `images` to its target repository (without
    /// the registry host), applying the collision rule of the module docs.
    pub fn map_repositories<'a>(
        &self,
        images: impl IntoIterator<Item = &'a ImageRef>,
    ) -> BTreeMap<String, String> {
        let sources: BTreeSet<(String, String)> = images
            .into_iter()
            .map(|r| (r.name(), r.repository.clone()))
            .collect();
        let mut by_target: BTreeMap<String, Vec<&str>> = BTreeMap::new();
        for (full, path) in &sources {
            by_target
                .entry(self.base_repository(path))
                .or_default()
                .push(full);
        }
        let mut out = BTreeMap::new();
        for (target, fulls) in by_target {
            if fulls.len() == 1 {
                out.insert(fulls[0].to_string(), target);
            } else {
                for full in fulls {
                    let hash = Digest::of_bytes(full.as_bytes());
                    out.insert(full.to_string(), format!("{target}-{}", &hash.hex()[..8]));
                }
            }
        }
        out
    }
}

/// Where one image went: the relocated repository, the tag it keeps, and its digest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Relocated {
    /// `HOST[:PORT]/REPOSITORY@sha256:…`, the reference the deploy step uses.
    pub reference: String,
    /// `HOST[:PORT]/REPOSITORY`.
    pub repository: String,
    /// The original tag, also set in the target registry.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub tag: Option<String>,
    /// The digest of the top-level manifest or index, identical to the source.
    pub digest: Digest,
}

/// The relocation map: original reference (as the bundle records it) to where it now lives.
/// Serialized as a JSON object keyed by original reference, for the deploy step.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct RelocationMap {
    /// The entries, sorted by original reference.
    pub images: BTreeMap<String, Relocated>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(s: &str) -> ImageRef {
        ImageRef::parse(s).unwrap()
    }

    #[test]
    fn parses_references_like_docker() {
        let n = r("nginx:1.25");
        assert_eq!(
            (n.registry.as_str(), n.repository.as_str()),
            ("docker.io", "library/nginx")
        );
        assert_eq!(n.tag.as_deref(), Some("1.25"));
        let l = r("localhost:5000/a/b");
        assert_eq!(
            (l.registry.as_str(), l.repository.as_str()),
            ("localhost:5000", "a/b")
        );
        assert_eq!(l.tag.as_deref(), Some("latest"));
        let d = format!("ghcr.io/acme/api:1.0@sha256:{}", "a".repeat(64));
        let d = r(&d);
        assert_eq!(d.tag.as_deref(), Some("1.0"));
        assert!(d.digest.is_some());
        assert_eq!(r("acme/api").registry, "docker.io");
        assert_eq!(r("acme/api").repository, "acme/api");
        for bad in [
            "acme/Upper",
            "a//b",
            "a:",
            "ghcr.io/x@sha256:12",
            "ghcr.io/",
            "a/-b",
        ] {
            assert!(ImageRef::parse(bad).is_err(), "{bad} should not parse");
        }
    }

    #[test]
    fn targets_parse_with_and_without_prefix() {
        let t = Destination::parse("registry.corp:5000/vendor/team", false).unwrap();
        assert_eq!(t.registry, "registry.corp:5000");
        assert_eq!(t.prefix.as_deref(), Some("vendor/team"));
        assert_eq!(
            Destination::parse("127.0.0.1:5000", false).unwrap().prefix,
            None
        );
        assert!(Destination::parse("https://r.corp", false).is_err());
        assert!(Destination::parse("r.corp/Bad", false).is_err());
        assert!(Destination::parse("", false).is_err());
    }

    #[test]
    fn nested_mapping_keeps_the_path() {
        let t = Destination::parse("reg:5000/vendor", false).unwrap();
        let imgs = [r("ghcr.io/acme/api:1"), r("nginx:1.25")];
        let m = t.map_repositories(&imgs);
        assert_eq!(m["ghcr.io/acme/api"], "vendor/acme/api");
        assert_eq!(m["docker.io/library/nginx"], "vendor/library/nginx");
    }

    #[test]
    fn flatten_joins_segments_and_never_collides() {
        let t = Destination::parse("reg/v", true).unwrap();
        let imgs = [
            r("ghcr.io/acme/web-api:1"),
            r("ghcr.io/acme-web/api:1"),
            r("quay.io/acme/web-api:2"),
            r("ghcr.io/acme/db:1"),
            r("ghcr.io/acme/db:2"),
        ];
        let m = t.map_repositories(&imgs);
        assert_eq!(m.len(), 4, "four distinct source repositories");
        assert_eq!(m["ghcr.io/acme/db"], "v/acme-db", "no collision, no suffix");
        let targets: BTreeSet<&String> = m.values().collect();
        assert_eq!(targets.len(), 4, "every source has its own target: {m:?}");
        for src in [
            "ghcr.io/acme/web-api",
            "ghcr.io/acme-web/api",
            "quay.io/acme/web-api",
        ] {
            let got = &m[src];
            assert!(got.starts_with("v/acme-web-api-"), "{got}");
            assert_eq!(got.len(), "v/acme-web-api-".len() + 8);
            assert!(valid_path(got), "{got} must be a valid repository name");
        }
        // Stable: the same source always gets the same suffix, whatever else is in the set.
        let again = t.map_repositories(&[r("ghcr.io/acme-web/api:1"), r("quay.io/acme/web-api:1")]);
        assert_eq!(again["ghcr.io/acme-web/api"], m["ghcr.io/acme-web/api"]);
    }

    #[test]
    fn nested_mapping_disambiguates_hosts() {
        let t = Destination::parse("reg", false).unwrap();
        let m = t.map_repositories(&[r("ghcr.io/acme/api:1"), r("quay.io/acme/api:1")]);
        assert_ne!(m["ghcr.io/acme/api"], m["quay.io/acme/api"]);
        assert!(m.values().all(|v| v.starts_with("acme/api-")));
    }

    #[test]
    fn relocation_map_serializes_as_an_object() {
        let mut map = RelocationMap::default();
        let d = Digest::of_bytes(b"x");
        map.images.insert(
            "ghcr.io/acme/api:1".into(),
            Relocated {
                reference: format!("reg/acme/api@{d}"),
                repository: "reg/acme/api".into(),
                tag: Some("1".into()),
                digest: d.clone(),
            },
        );
        let json = serde_json::to_value(&map).unwrap();
        assert_eq!(
            json["ghcr.io/acme/api:1"]["reference"],
            format!("reg/acme/api@{d}")
        );
        let back: RelocationMap = serde_json::from_value(json).unwrap();
        assert_eq!(back, map);
    }
}
