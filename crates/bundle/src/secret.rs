//! A secret string (password, token, generated value) that never prints itself.

use std::fmt;

/// What a secret prints as.
pub const MASK: &str = "********";

/// A secret string. `Debug` and `Display` print [`MASK`]; only [`Secret::expose`] gives the value.
/// Shared by the configuration (generated and customer secrets) and registry credentials, so
/// every secret in Airlift is masked the same way.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The value in clear. Call it only to hand the value to a template, a registry or the
    /// cluster; never to log or print it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// `sha256:<hex>` of the value, for records that must show a change but never the value.
    pub fn fingerprint(&self) -> String {
        crate::Digest::of_bytes(self.0.as_bytes()).to_string()
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
}
