//! The trust policy and the signature check: the first thing done with a bundle, before any
//! blob is read.

use std::path::Path;

use ecdsa::RecoveryId;
use p256::ecdsa::{Signature, VerifyingKey};

use crate::digest::Digest;
use crate::sign::{KeyError, PublicKey};

/// How a reader decides whether to trust a bundle's manifest.
#[derive(Debug, Clone)]
pub enum Trust {
    /// The manifest must carry a valid signature by this key.
    Key(PublicKey),
    /// No key was given and skipping was not asked for: every bundle is refused, a signed one
    /// with [`TrustError::SignedButNoKey`], an unsigned one with [`TrustError::UnsignedNoKey`].
    NoKey,
    /// Explicitly skip the signature check (`--insecure-skip-verify`). Digests are still checked
    /// against the manifest, but nothing proves who wrote it.
    InsecureSkipVerify,
}

impl Trust {
    /// The policy for the usual flags: `--key FILE` and `--insecure-skip-verify`. A key wins
    /// over skipping.
    pub fn from_flags(key: Option<&Path>, insecure_skip_verify: bool) -> Result<Self, KeyError> {
        match key {
            Some(path) => PublicKey::load(path).map(Trust::Key),
            None if insecure_skip_verify => Ok(Trust::InsecureSkipVerify),
            None => Ok(Trust::NoKey),
        }
    }

    /// A stable label of this policy for the recorded proof: the key fingerprint, or a word.
    pub fn label(&self) -> String {
        match self {
            Trust::Key(k) => k.fingerprint().to_string(),
            Trust::NoKey => "no-key".into(),
            Trust::InsecureSkipVerify => "insecure-skip-verify".into(),
        }
    }
}

/// What is known about a bundle's signature.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case", tag = "status")]
pub enum SignatureStatus {
    /// The bundle carries no signature.
    Unsigned,
    /// The bundle is signed but the signature has not been checked (no key given).
    Unchecked {
        /// The signer fingerprint the manifest claims, if any (unproven).
        claimed_signer: Option<Digest>,
    },
    /// The signature verified with this key.
    Verified {
        /// The key's fingerprint.
        key: Digest,
    },
    /// The check was skipped on request (`--insecure-skip-verify`).
    Skipped,
}

/// Why a bundle's manifest is not trusted.
#[derive(Debug, thiserror::Error)]
pub enum TrustError {
    /// A key was given, but the bundle has no signature.
    #[error("a key ({key}) was given but the bundle is unsigned")]
    Unsigned {
        /// The given key's fingerprint.
        key: Digest,
    },
    /// The bundle is signed but no key was given.
    #[error("the bundle is signed (claimed signer {}) but no key was given to check it", .claimed_signer.as_ref().map_or("unknown".to_string(), |d| d.to_string()))]
    SignedButNoKey {
        /// The signer fingerprint the manifest claims (unproven).
        claimed_signer: Option<Digest>,
    },
    /// The bundle is unsigned and no key was given.
    #[error("the bundle is unsigned and no key was given")]
    UnsignedNoKey,
    /// The bundle was signed with another key than the one given.
    #[error("the bundle was signed by key {signer}, not by the given key {given}")]
    WrongKey {
        /// The fingerprint of the key the manifest names as its signer.
        signer: Digest,
        /// The given key's fingerprint.
        given: Digest,
    },
    /// The signature does not match the manifest: the manifest (or the signature) changed after
    /// signing. ECDSA cannot tell which of the two was altered.
    #[error("the signature of airlift.yaml does not verify with key {key}: the manifest or its signature was altered after signing")]
    TamperedManifest {
        /// The given key's fingerprint.
        key: Digest,
    },
    /// The signature member is not a DER ECDSA signature.
    #[error("airlift.yaml.sig is not a DER-encoded ECDSA signature")]
    MalformedSignature,
    /// The signature is valid ECDSA but not the one encoding the writer emits: not strict DER,
    /// or the high-S twin of a signature (which verifies too, but changes the file's bytes).
    #[error("airlift.yaml.sig is not in canonical form: {reason}")]
    NonCanonicalSignature {
        /// What is not canonical.
        reason: &'static str,
    },
    /// The manifest names a signer but the bundle carries no signature: it was removed.
    #[error("the manifest names signer {signer} but the bundle carries no signature: the signature was removed")]
    SignatureRemoved {
        /// The signer the manifest names.
        signer: Digest,
    },
}

impl TrustError {
    /// What the operator can do about it.
    pub fn hint(&self) -> String {
        match self {
            TrustError::Unsigned { .. } => "the vendor did not sign this bundle: ask for a signed bundle, or pass --insecure-skip-verify (instead of --key) to accept it without proof of origin".into(),
            TrustError::SignedButNoKey { .. } => "pass the vendor's public key with --key vendor.pub (or --insecure-skip-verify to skip the check, which is not recommended)".into(),
            TrustError::UnsignedNoKey => "this bundle carries no signature, so its origin cannot be proven: pass --insecure-skip-verify to accept it anyway".into(),
            TrustError::WrongKey { signer, .. } => format!("pass the public key whose fingerprint is {signer} (`openssl pkey -pubin -in KEY.pub -outform DER | sha256sum` prints a key's fingerprint)"),
            TrustError::TamperedManifest { .. } | TrustError::MalformedSignature | TrustError::NonCanonicalSignature { .. } | TrustError::SignatureRemoved { .. } => "do not install this bundle: it changed after the vendor signed it. Get a fresh copy from the vendor and check its sha256sum".into(),
        }
    }
}

/// Reads the `build.signer` fingerprint the manifest claims, without trusting or parsing it: a
/// linear scan for the `signer:` line of the top-level `build:` block, as the writer emits it.
/// Anything else (a hostile or hand-written manifest) claims no signer.
pub fn claimed_signer(manifest_bytes: &[u8]) -> Option<Digest> {
    let mut lines = manifest_bytes.split(|&b| b == b'\n');
    lines.find(|l| *l == b"build:")?;
    lines
        .take_while(|l| l.starts_with(b" "))
        .find_map(|l| l.strip_prefix(b"  signer: "))
        .and_then(|v| std::str::from_utf8(v).ok())
        .and_then(|v| v.trim().parse().ok())
}

/// Parses a DER signature, refusing any encoding but the one the writer emits: strict DER with
/// a low S.
pub(crate) fn parse_signature(der: &[u8]) -> Result<Signature, TrustError> {
    let sig = Signature::from_der(der).map_err(|_| TrustError::MalformedSignature)?;
    if sig.to_der().as_bytes() != der {
        return Err(TrustError::NonCanonicalSignature {
            reason: "it is not strict DER",
        });
    }
    if sig.normalize_s().is_some() {
        return Err(TrustError::NonCanonicalSignature {
            reason: "its S value is high (the writer only emits low-S signatures)",
        });
    }
    Ok(sig)
}

/// True when `signature` over `message` was made by the key whose fingerprint is `signer`
/// (found by recovering the candidate public keys from the signature).
pub(crate) fn signed_by(message: &[u8], signature: &Signature, signer: &Digest) -> bool {
    (0..4u8).filter_map(RecoveryId::from_byte).any(|id| {
        VerifyingKey::recover_from_msg(message, signature, id)
            .is_ok_and(|k| &PublicKey::from_verifying_key(k).fingerprint() == signer)
    })
}

/// Applies `trust` to the raw manifest bytes and the optional DER signature. Runs before the
/// manifest is parsed (and costs no parse), so a tampered manifest is reported as such even when
/// it no longer parses, and a hostile one costs nothing.
pub fn check_signature(
    manifest_bytes: &[u8],
    signature: Option<&[u8]>,
    trust: &Trust,
) -> Result<SignatureStatus, TrustError> {
    let claimed = claimed_signer(manifest_bytes);
    let Some(der) = signature else {
        return match (claimed, trust) {
            (Some(signer), _) => Err(TrustError::SignatureRemoved { signer }),
            (None, Trust::InsecureSkipVerify) => Ok(SignatureStatus::Skipped),
            (None, Trust::NoKey) => Err(TrustError::UnsignedNoKey),
            (None, Trust::Key(key)) => Err(TrustError::Unsigned {
                key: key.fingerprint(),
            }),
        };
    };
    let sig = parse_signature(der)?;
    match trust {
        Trust::InsecureSkipVerify => Ok(SignatureStatus::Skipped),
        Trust::NoKey => Err(TrustError::SignedButNoKey {
            claimed_signer: claimed,
        }),
        Trust::Key(key) => {
            let given = key.fingerprint();
            if key.verifies(manifest_bytes, der) {
                return Ok(SignatureStatus::Verified { key: given });
            }
            // Another key's valid signature is a wrong key; anything else (a changed
            // `build.signer` included) is an altered manifest or signature.
            match claimed {
                Some(signer) if signer != given && signed_by(manifest_bytes, &sig, &signer) => {
                    Err(TrustError::WrongKey { signer, given })
                }
                _ => Err(TrustError::TamperedManifest { key: given }),
            }
        }
    }
}

/// The signature status known without a key. What can be refused without one is: a manifest
/// that names a signer without a signature ([`TrustError::SignatureRemoved`]), and a signature
/// that is not in canonical form.
pub fn unchecked_status(
    manifest_bytes: &[u8],
    signature: Option<&[u8]>,
) -> Result<SignatureStatus, TrustError> {
    let claimed = claimed_signer(manifest_bytes);
    match (signature, claimed) {
        (None, Some(signer)) => Err(TrustError::SignatureRemoved { signer }),
        (None, None) => Ok(SignatureStatus::Unsigned),
        (Some(der), claimed_signer) => {
            parse_signature(der)?;
            Ok(SignatureStatus::Unchecked { claimed_signer })
        }
    }
}
