//! Signatures: ECDSA P-256 with SHA-256.
//!
//! The signature over `airlift.yaml` is a DER-encoded ECDSA signature, so it verifies with
//! `openssl dgst -sha256 -verify vendor.pub -signature airlift.yaml.sig airlift.yaml`. Signing is
//! deterministic (RFC 6979): the same key and manifest always give the same signature bytes, which
//! keeps bundles reproducible. Private keys are PKCS#8 PEM, public keys SPKI PEM.

use std::fmt;
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use p256::ecdsa::signature::{Signer, Verifier};
use p256::ecdsa::{Signature, SigningKey, VerifyingKey};
use p256::pkcs8::{
    DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey, LineEnding,
};

use crate::digest::Digest;

/// Errors from keys and key files.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// A key file could not be read or written.
    #[error("cannot access key file `{path}`")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// keygen refuses to overwrite an existing file.
    #[error("key file `{path}` already exists; refusing to overwrite it")]
    Exists {
        /// The file.
        path: PathBuf,
    },
    /// The file is not a PKCS#8 PEM P-256 private key.
    #[error("`{path}` is not a PKCS#8 PEM ECDSA P-256 private key")]
    BadPrivateKey {
        /// The file.
        path: PathBuf,
    },
    /// The file is not an SPKI PEM P-256 public key.
    #[error("`{path}` is not an SPKI PEM ECDSA P-256 public key")]
    BadPublicKey {
        /// The file.
        path: PathBuf,
    },
    /// Encoding a key as PEM failed (should not happen for valid keys).
    #[error("cannot encode the key as PEM")]
    Encode,
}

impl KeyError {
    /// What the operator can do about it.
    pub fn hint(&self) -> String {
        match self {
            KeyError::Io { path, .. } => {
                format!("check that `{}` exists and is readable/writable", path.display())
            }
            KeyError::Exists { path } => format!(
                "choose another --out prefix, or move `{}` away first (keys are never overwritten)",
                path.display()
            ),
            KeyError::BadPrivateKey { .. } => "pass the PREFIX.key file written by `airlift-pack keygen` (PEM starting with `-----BEGIN PRIVATE KEY-----`)".into(),
            KeyError::BadPublicKey { .. } => "pass the vendor's PREFIX.pub file (PEM starting with `-----BEGIN PUBLIC KEY-----`), not the private key".into(),
            KeyError::Encode => "regenerate the key with `airlift-pack keygen`".into(),
        }
    }
}

/// A private signing key. Its `Debug` shows only the public fingerprint; the secret is zeroized
/// on drop.
#[derive(Clone)]
pub struct PrivateKey {
    inner: SigningKey,
}

impl fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PrivateKey(public {})", self.public_key().fingerprint())
    }
}

impl PrivateKey {
    /// A fresh random key from the operating system's CSPRNG.
    pub fn generate() -> Self {
        Self {
            inner: SigningKey::random(&mut rand::rngs::OsRng),
        }
    }

    /// Parses a PKCS#8 PEM private key; `path` only names the source in errors.
    pub fn from_pem(pem: &str, path: &Path) -> Result<Self, KeyError> {
        SigningKey::from_pkcs8_pem(pem)
            .map(|inner| Self { inner })
            .map_err(|_| KeyError::BadPrivateKey {
                path: path.to_path_buf(),
            })
    }

    /// Reads a PKCS#8 PEM private key file.
    pub fn load(path: &Path) -> Result<Self, KeyError> {
        let pem = std::fs::read_to_string(path).map_err(|source| KeyError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_pem(&pem, path)
    }

    /// The PKCS#8 PEM text (secret: never log it).
    pub fn to_pem(&self) -> Result<zeroize_string::Secret, KeyError> {
        self.inner
            .to_pkcs8_pem(LineEnding::LF)
            .map(zeroize_string::Secret)
            .map_err(|_| KeyError::Encode)
    }

    /// The matching public key.
    pub fn public_key(&self) -> PublicKey {
        PublicKey {
            inner: *self.inner.verifying_key(),
        }
    }

    /// Signs `message` (SHA-256, RFC 6979 deterministic nonce) and returns the DER signature.
    pub fn sign(&self, message: &[u8]) -> Vec<u8> {
        let sig: Signature = self.inner.sign(message);
        sig.to_der().as_bytes().to_vec()
    }
}

/// Holds secret PEM text; zeroized on drop and never printed.
pub mod zeroize_string {
    /// Secret text, zeroized when dropped.
    pub struct Secret(pub p256::pkcs8::der::zeroize::Zeroizing<String>);

    impl Secret {
        /// The text.
        pub fn expose(&self) -> &str {
            self.0.as_str()
        }
    }

    impl std::fmt::Debug for Secret {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("Secret(<redacted>)")
        }
    }
}

/// A public verification key.
#[derive(Clone, PartialEq, Eq)]
pub struct PublicKey {
    inner: VerifyingKey,
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({})", self.fingerprint())
    }
}

impl PublicKey {
    /// Parses an SPKI PEM public key; `path` only names the source in errors.
    pub fn from_pem(pem: &str, path: &Path) -> Result<Self, KeyError> {
        VerifyingKey::from_public_key_pem(pem)
            .map(|inner| Self { inner })
            .map_err(|_| KeyError::BadPublicKey {
                path: path.to_path_buf(),
            })
    }

    /// Reads an SPKI PEM public key file.
    pub fn load(path: &Path) -> Result<Self, KeyError> {
        let pem = std::fs::read_to_string(path).map_err(|source| KeyError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_pem(&pem, path)
    }

    /// The SPKI PEM text.
    pub fn to_pem(&self) -> Result<String, KeyError> {
        self.inner
            .to_public_key_pem(LineEnding::LF)
            .map_err(|_| KeyError::Encode)
    }

    /// The fingerprint: sha256 of the SPKI DER encoding (what
    /// `openssl pkey -pubin -in vendor.pub -outform DER | sha256sum` prints).
    pub fn fingerprint(&self) -> Digest {
        match self.inner.to_public_key_der() {
            Ok(der) => Digest::of_bytes(der.as_bytes()),
            // Encoding a valid point cannot fail; hash the SEC1 point as a stable fallback.
            Err(_) => Digest::of_bytes(&self.inner.to_encoded_point(false).to_bytes()),
        }
    }

    /// True when `signature` (DER) is a valid signature of `message` by this key.
    pub fn verifies(&self, message: &[u8], signature: &[u8]) -> bool {
        match Signature::from_der(signature) {
            Ok(sig) => self.inner.verify(message, &sig).is_ok(),
            Err(_) => false,
        }
    }
}

/// The two files written by [`keygen`].
#[derive(Debug, Clone)]
pub struct KeyPairFiles {
    /// `PREFIX.key`, PKCS#8 PEM, mode 0600.
    pub private_key: PathBuf,
    /// `PREFIX.pub`, SPKI PEM.
    pub public_key: PathBuf,
    /// The public key's fingerprint.
    pub fingerprint: Digest,
}

fn with_suffix(prefix: &Path, suffix: &str) -> PathBuf {
    let mut s = prefix.as_os_str().to_os_string();
    s.push(suffix);
    PathBuf::from(s)
}

fn create_new(path: &Path, mode: u32, contents: &[u8]) -> Result<(), KeyError> {
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(|source| {
            if source.kind() == io::ErrorKind::AlreadyExists {
                KeyError::Exists {
                    path: path.to_path_buf(),
                }
            } else {
                KeyError::Io {
                    path: path.to_path_buf(),
                    source,
                }
            }
        })?;
    file.write_all(contents)
        .and_then(|()| file.sync_all())
        .map_err(|source| KeyError::Io {
            path: path.to_path_buf(),
            source,
        })
}

/// Generates a key pair and writes `PREFIX.key` (mode 0600, created exclusively) and
/// `PREFIX.pub`. Never overwrites: if either file exists, nothing is written.
pub fn keygen(prefix: &Path) -> Result<KeyPairFiles, KeyError> {
    let key_path = with_suffix(prefix, ".key");
    let pub_path = with_suffix(prefix, ".pub");
    for p in [&key_path, &pub_path] {
        if p.symlink_metadata().is_ok() {
            return Err(KeyError::Exists { path: p.clone() });
        }
    }
    let key = PrivateKey::generate();
    let public = key.public_key();
    let pem = key.to_pem()?;
    let pub_pem = public.to_pem()?;
    create_new(&key_path, 0o600, pem.expose().as_bytes())?;
    if let Err(e) = create_new(&pub_path, 0o644, pub_pem.as_bytes()) {
        // Do not leave half a key pair behind.
        let _ = std::fs::remove_file(&key_path);
        return Err(e);
    }
    Ok(KeyPairFiles {
        private_key: key_path,
        public_key: pub_path,
        fingerprint: public.fingerprint(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signing_is_deterministic_and_verifies() {
        let key = PrivateKey::generate();
        let a = key.sign(b"manifest");
        assert_eq!(a, key.sign(b"manifest"));
        assert!(key.public_key().verifies(b"manifest", &a));
        assert!(!key.public_key().verifies(b"manifesT", &a));
        assert!(!PrivateKey::generate()
            .public_key()
            .verifies(b"manifest", &a));
        assert!(!key.public_key().verifies(b"manifest", b"not der"));
    }

    #[test]
    fn pem_round_trips() {
        let key = PrivateKey::generate();
        let p = Path::new("k");
        let back = PrivateKey::from_pem(key.to_pem().unwrap().expose(), p).unwrap();
        assert_eq!(back.public_key(), key.public_key());
        let pub_pem = key.public_key().to_pem().unwrap();
        assert!(pub_pem.starts_with("-----BEGIN PUBLIC KEY-----"));
        assert_eq!(PublicKey::from_pem(&pub_pem, p).unwrap(), key.public_key());
        assert!(matches!(
            PublicKey::from_pem(key.to_pem().unwrap().expose(), p),
            Err(KeyError::BadPublicKey { .. })
        ));
        assert!(!format!("{key:?}").contains("PRIVATE"));
    }
}
