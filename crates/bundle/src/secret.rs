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

    /// `sha256:<hex>` of the value: the unkeyed form older release records hold. A weak value
    /// can be found from it by brute force; new records use [`Secret::keyed_fingerprint`].
    pub fn fingerprint(&self) -> String {
        crate::Digest::of_bytes(self.0.as_bytes()).to_string()
    }

    /// `hmac-sha256:<hex>`: the HMAC-SHA-256 of the value under `key`, for records that must
    /// show that a secret changed but never the value. Without the key (kept apart from the
    /// records, in the release's generated Secret) a weak value cannot be brute-forced from it.
    pub fn keyed_fingerprint(&self, key: &Secret) -> String {
        use hmac::{Hmac, Mac};
        let mut mac = <Hmac<sha2::Sha256> as Mac>::new_from_slice(key.expose().as_bytes())
            .unwrap_or_else(|_| unreachable!("HMAC takes a key of any length"));
        mac.update(self.0.as_bytes());
        format!("hmac-sha256:{}", hex::encode(mac.finalize().into_bytes()))
    }

    /// True when `recorded` (either fingerprint form) is this value's fingerprint.
    pub fn matches_fingerprint(&self, recorded: &str, key: &Secret) -> bool {
        recorded == self.keyed_fingerprint(key) || recorded == self.fingerprint()
    }

    /// A new random fingerprint key (32 bytes from the OS, hex).
    pub fn new_fingerprint_key() -> Secret {
        use rand::RngCore;
        let mut bytes = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        Secret(hex::encode(bytes))
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
