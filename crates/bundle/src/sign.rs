//! Signatures: ECDSA P-256 with SHA-256.
//!
//! The signature over `airlift.yaml` is a DER-encoded ECDSA signature, so it verifies with
//! `openssl dgst -sha256 -verify vendor.pub -signature airlift.yaml.sig airlift.yaml`. Signing is
//! deterministic (RFC 6979): the same key and manifest always give the same signature bytes, which
//! keeps bundles reproducible. Private keys are PKCS#8 PEM, public keys SPKI PEM.

use std::fmt;
use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use p256::ecdsa::signature::{Signer, Verifier};
use p256::ecdsa::{Signature, SigningKey, VerifyingKey};
use p256::pkcs8::{
    DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey, LineEnding,
};

use crate::digest::Digest;
use crate::limits::{self, LimitError, MAX_KEY_FILE};

/// Errors from keys and key files.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// A key file could not be read.
    #[error("cannot read key file `{path}`")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// A key file could not be written.
    #[error("cannot write key file `{path}`")]
    Write {
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
    /// A key file larger than any PEM key ([`MAX_KEY_FILE`]).
    #[error("key file `{path}` is larger than the {MAX_KEY_FILE}-byte limit for a PEM key")]
    TooLarge {
        /// The file.
        path: PathBuf,
    },
    /// A private key file that other users can read (as ssh, refused unless allowed).
    #[error("private key `{path}` is readable by other users (mode {mode:04o})")]
    InsecurePermissions {
        /// The file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
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
                format!("check that `{}` exists and is readable", path.display())
            }
            KeyError::Write { path, .. } => {
                format!("check that the folder of `{}` exists and is writable", path.display())
            }
            KeyError::TooLarge { .. } => "pass the PEM key file itself (a few hundred bytes), not another file".into(),
            KeyError::InsecurePermissions { path, .. } => format!(
                "run `chmod 600 {}` (or pass --allow-insecure-key-permissions to sign anyway)",
                path.display()
            ),
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

/// Reads a PEM key file, at most [`MAX_KEY_FILE`] bytes; a file that is not text is a bad key,
/// not an unreadable file.
fn read_key_file(path: &Path) -> Result<String, KeyError> {
    match limits::read_bounded_string(path, MAX_KEY_FILE) {
        Ok(pem) => Ok(pem),
        Err(LimitError::Io { source, .. }) => Err(KeyError::Io {
            path: path.to_path_buf(),
            source,
        }),
        Err(LimitError::TooLarge { .. }) => Err(KeyError::TooLarge {
            path: path.to_path_buf(),
        }),
        // Neither PEM form: the caller's parse names which key was expected.
        Err(_) => Ok(String::new()),
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
        let pem = read_key_file(path)?;
        Self::from_pem(&pem, path).map_err(|_| KeyError::BadPrivateKey {
            path: path.to_path_buf(),
        })
    }

    /// Like [`PrivateKey::load`], but refuses a key file that users other than its owner can
    /// read (any group or other permission bit), as ssh does, unless `allow_insecure`.
    pub fn load_private(path: &Path, allow_insecure: bool) -> Result<Self, KeyError> {
        // The key is parsed first, so a public key passed by mistake is named as such rather
        // than refused for its (normal) 0644 mode.
        let key = Self::load(path)?;
        let meta = std::fs::metadata(path).map_err(|source| KeyError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 && !allow_insecure {
            return Err(KeyError::InsecurePermissions {
                path: path.to_path_buf(),
                mode,
            });
        }
        Ok(key)
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

    /// Signs `message` (SHA-256, RFC 6979 deterministic nonce) and returns the DER signature,
    /// normalized to low S: the one form readers accept.
    pub fn sign(&self, message: &[u8]) -> Vec<u8> {
        let sig: Signature = self.inner.sign(message);
        let sig = sig.normalize_s().unwrap_or(sig);
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
    /// Wraps a verifying key.
    pub(crate) fn from_verifying_key(inner: VerifyingKey) -> Self {
        Self { inner }
    }

    /// Parses an SPKI PEM public key; `path` only names the source in errors.
    pub fn from_pem(pem: &str, path: &Path) -> Result<Self, KeyError> {
        VerifyingKey::from_public_key_pem(pem)
            .map(|inner| Self { inner })
            .map_err(|_| KeyError::BadPublicKey {
                path: path.to_path_buf(),
            })
    }

    /// Reads an SPKI PEM public key file (at most [`MAX_KEY_FILE`] bytes).
    pub fn load(path: &Path) -> Result<Self, KeyError> {
        let pem = read_key_file(path)?;
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
                KeyError::Write {
                    path: path.to_path_buf(),
                    source,
                }
            }
        })?;
    file.write_all(contents)
        .and_then(|()| file.sync_all())
        .map_err(|source| KeyError::Write {
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
