//! Secret values: a wrapper that never prints its content, and random generation.

use std::fmt;

use airlift_bundle::schema::config::{Charset, Generate};
use rand::rngs::OsRng;
use rand::Rng;

/// What a masked secret prints as.
pub const MASK: &str = "********";

/// A secret string. `Debug` and `Display` print [`MASK`]; only [`Secret::expose`] gives the value.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The value in clear. Call it only to hand the value to a template or the cluster.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// `sha256:<hex>` of the value, for records that must show a change but never the value.
    pub fn fingerprint(&self) -> String {
        airlift_bundle::Digest::of_bytes(self.0.as_bytes()).to_string()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secret({MASK})")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(MASK)
    }
}

/// Generates a random secret from the operating system's random source.
pub fn generate(spec: &Generate) -> Secret {
    const ALNUM: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    const HEX: &[u8] = b"0123456789abcdef";
    let alphabet = match spec.charset {
        Charset::Alphanumeric => ALNUM,
        Charset::Hex => HEX,
    };
    let mut rng = OsRng;
    let value: String = (0..spec.length)
        .map(|_| char::from(alphabet[rng.gen_range(0..alphabet.len())]))
        .collect();
    Secret(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_never_print() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s:?} {s}"), "Secret(********) ********");
        assert_eq!(s.expose(), "hunter2");
        assert!(s.fingerprint().starts_with("sha256:"));
        assert!(!s.fingerprint().contains("hunter2"));
    }

    #[test]
    fn generated_secrets_follow_the_spec_and_differ() {
        let spec = Generate {
            length: 40,
            charset: Charset::Hex,
        };
        let a = generate(&spec);
        let b = generate(&spec);
        assert_eq!(a.expose().len(), 40);
        assert!(a.expose().bytes().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
        let alnum = generate(&Generate {
            length: 16,
            charset: Charset::Alphanumeric,
        });
        assert!(alnum.expose().bytes().all(|c| c.is_ascii_alphanumeric()));
    }
}
