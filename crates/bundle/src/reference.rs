//! Image references: parsing and normalisation the way Docker and Kubernetes read them.
//!
//! `nginx` is `docker.io/library/nginx:latest`; `acme/api:1` is `docker.io/acme/api:1`; the first
//! path part names a registry only when it contains `.` or `:`, is `localhost`, or has capitals.

use std::fmt;
use std::str::FromStr;
use std::sync::LazyLock;

use crate::Digest;
use regex::Regex;

/// The registry Docker assumes when a reference names none.
pub const DEFAULT_REGISTRY: &str = "docker.io";
/// The tag assumed when a reference has neither a tag nor a digest.
pub const DEFAULT_TAG: &str = "latest";

static PATH_COMPONENT: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*$").unwrap_or_else(|_| unreachable!())
});
// Docker's `[\w][\w.-]{0,127}`, where `\w` (Go's regexp) is ASCII only: Unicode word
// characters are not tag characters (and compiling a Unicode `\w` 128 times over costs a visible
// part of every command's start).
static TAG: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$").unwrap_or_else(|_| unreachable!())
});
static HOST: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*|\[[0-9a-fA-F:]+\])(?::[0-9]{1,5})?$")
        .unwrap_or_else(|_| unreachable!())
});

/// Why a string is not an image reference.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReferenceError {
    /// The reference is empty.
    #[error("the image reference is empty")]
    Empty,
    /// The registry part is not a host name with an optional port.
    #[error("image `{reference}`: `{registry}` is not a registry host (expected `host[:port]`)")]
    Registry {
        /// The whole reference.
        reference: String,
        /// The registry part.
        registry: String,
    },
    /// A repository path part breaks the grammar.
    #[error("image `{reference}`: repository part `{part}` must be lowercase letters and digits, separated by `.`, `_`, `__` or `-`")]
    Repository {
        /// The whole reference.
        reference: String,
        /// The offending part.
        part: String,
    },
    /// The tag breaks the grammar.
    #[error("image `{reference}`: tag `{tag}` must be 1 to 128 letters, digits, `_`, `.` or `-`, not starting with `.` or `-`")]
    Tag {
        /// The whole reference.
        reference: String,
        /// The tag.
        tag: String,
    },
    /// The digest is not a sha256 digest.
    #[error("image `{reference}`: `{digest}` is not a sha256 digest (`sha256:` and 64 lowercase hex characters)")]
    Digest {
        /// The whole reference.
        reference: String,
        /// The digest part.
        digest: String,
    },
    /// The name is longer than registries accept.
    #[error("image `{reference}`: the name is longer than 255 characters")]
    TooLong {
        /// The whole reference.
        reference: String,
    },
}

/// A parsed, normalised image reference.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ImageRef {
    /// The registry host and port, e.g. `docker.io`, `registry.acme.io:5000`.
    pub registry: String,
    /// The repository path, e.g. `library/nginx`, `acme/api`.
    pub repository: String,
    /// The tag, when one was given (`latest` is filled in only when there is no digest either).
    pub tag: Option<String>,
    /// The digest, when one was given.
    pub digest: Option<Digest>,
}

impl ImageRef {
    /// Parses and normalises a reference.
    pub fn parse(reference: &str) -> Result<Self, ReferenceError> {
        let reference = reference.trim();
        if reference.is_empty() {
            return Err(ReferenceError::Empty);
        }
        let err_ref = || reference.to_string();
        let (name_tag, digest) = match reference.split_once('@') {
            Some((n, d)) => {
                let digest = d.parse::<Digest>().map_err(|_| ReferenceError::Digest {
                    reference: err_ref(),
                    digest: d.to_string(),
                })?;
                (n, Some(digest))
            }
            None => (reference, None),
        };
        let last_slash = name_tag.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match name_tag[last_slash..].rfind(':') {
            Some(i) => (
                &name_tag[..last_slash + i],
                Some(&name_tag[last_slash + i + 1..]),
            ),
            None => (name_tag, None),
        };
        if name.len() > 255 {
            return Err(ReferenceError::TooLong {
                reference: err_ref(),
            });
        }
        let (registry, path) = split_registry(name);
        if !HOST.is_match(&registry) {
            return Err(ReferenceError::Registry {
                reference: err_ref(),
                registry,
            });
        }
        let repository = if registry == DEFAULT_REGISTRY && !path.contains('/') {
            format!("library/{path}")
        } else {
            path.to_string()
        };
        for part in repository.split('/') {
            if !PATH_COMPONENT.is_match(part) {
                return Err(ReferenceError::Repository {
                    reference: err_ref(),
                    part: part.to_string(),
                });
            }
        }
        if let Some(t) = tag {
            if !TAG.is_match(t) {
                return Err(ReferenceError::Tag {
                    reference: err_ref(),
                    tag: t.to_string(),
                });
            }
        }
        let tag = match (tag, &digest) {
            (Some(t), _) => Some(t.to_string()),
            (None, None) => Some(DEFAULT_TAG.to_string()),
            (None, Some(_)) => None,
        };
        Ok(Self {
            registry,
            repository,
            tag,
            digest,
        })
    }

    /// `registry/repository`, without tag or digest.
    pub fn name(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }

    /// The reference pinned to `digest` under another registry: `REGISTRY/PATH@sha256:…`.
    pub fn relocated(&self, registry_prefix: &str, digest: &Digest) -> String {
        format!(
            "{}/{}@{digest}",
            registry_prefix.trim_end_matches('/'),
            self.repository
        )
    }
}

fn split_registry(name: &str) -> (String, &str) {
    match name.split_once('/') {
        Some((first, rest))
            if first.contains('.')
                || first.contains(':')
                || first == "localhost"
                || first.chars().any(|c| c.is_ascii_uppercase()) =>
        {
            let registry = if first == "index.docker.io" {
                DEFAULT_REGISTRY.to_string()
            } else {
                first.to_string()
            };
            (registry, rest)
        }
        _ => (DEFAULT_REGISTRY.to_string(), name),
    }
}

impl fmt::Display for ImageRef {
    /// The fully qualified form: `docker.io/library/nginx:1.25`, `host/app@sha256:…`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

impl FromStr for ImageRef {
    type Err = ReferenceError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn norm(s: &str) -> String {
        ImageRef::parse(s).unwrap().to_string()
    }

    #[test]
    fn docker_defaults_are_filled_in() {
        assert_eq!(norm("nginx"), "docker.io/library/nginx:latest");
        assert_eq!(norm("nginx:1.25"), "docker.io/library/nginx:1.25");
        assert_eq!(norm("acme/api:2"), "docker.io/acme/api:2");
        assert_eq!(
            norm("index.docker.io/acme/api"),
            "docker.io/acme/api:latest"
        );
        assert_eq!(norm("docker.io/nginx"), "docker.io/library/nginx:latest");
        assert_eq!(
            norm("localhost:5000/team/app:v1"),
            "localhost:5000/team/app:v1"
        );
        assert_eq!(norm("localhost/app"), "localhost/app:latest");
        assert_eq!(norm("[::1]:5000/app:1"), "[::1]:5000/app:1");
    }

    #[test]
    fn tag_and_digest_are_told_apart() {
        let d = format!("sha256:{}", "a".repeat(64));
        let r = ImageRef::parse(&format!("registry.acme.io:5000/app@{d}")).unwrap();
        assert_eq!(r.registry, "registry.acme.io:5000");
        assert_eq!(r.repository, "app");
        assert_eq!(r.tag, None);
        assert_eq!(r.digest.as_ref().map(|x| x.to_string()), Some(d.clone()));
        let both = ImageRef::parse(&format!("acme/app:1.0@{d}")).unwrap();
        assert_eq!(both.tag.as_deref(), Some("1.0"));
        assert_eq!(both.to_string(), format!("docker.io/acme/app:1.0@{d}"));
        assert_eq!(
            r.relocated("mirror.corp/prefix/", r.digest.as_ref().unwrap()),
            format!("mirror.corp/prefix/app@{d}")
        );
    }

    #[test]
    fn bad_references_name_the_part() {
        assert_eq!(ImageRef::parse(" "), Err(ReferenceError::Empty));
        let e = ImageRef::parse("acme/My_App:1").unwrap_err().to_string();
        assert!(e.contains("`My_App`"), "{e}");
        let e = ImageRef::parse("acme/app:-bad").unwrap_err().to_string();
        assert!(e.contains("tag `-bad`"), "{e}");
        // Tags are ASCII, as Docker's grammar says.
        assert!(ImageRef::parse("acme/app:caf\u{e9}").is_err());
        assert!(ImageRef::parse(&format!("acme/app:{}", "a".repeat(128))).is_ok());
        assert!(ImageRef::parse(&format!("acme/app:{}", "a".repeat(129))).is_err());
        let e = ImageRef::parse("acme/app@sha256:xyz")
            .unwrap_err()
            .to_string();
        assert!(e.contains("`sha256:xyz` is not a sha256 digest"), "{e}");
        let e = ImageRef::parse("acme/app@md5:abc").unwrap_err();
        assert!(matches!(e, ReferenceError::Digest { .. }));
        assert!(ImageRef::parse("bad_host.io:x/app").is_err());
        assert!(ImageRef::parse("acme//app").is_err());
    }
}
