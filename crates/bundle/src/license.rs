//! Licenses (`kind: License`): who may run a product, on which channel, until when, on how many
//! nodes, with which entitlements. Signed with the vendor's bundle key by the same scheme as
//! bundles (ECDSA P-256, SHA-256, strict DER, low S), so `openssl dgst -verify` checks them too.
//!
//! A license file is two YAML documents. The first, the body, is the exact byte string that is
//! signed; the second holds only the base64 DER signature:
//!
//! ```text
//! apiVersion: airlift.dev/v1alpha1
//! kind: License
//! id: lic-0f3c…
//! issuedAt: 2026-12-01T04:00:00Z
//! customer: Example Corp
//! customerId: cust-42
//! channel: stable
//! expires: 2027-12-31T23:59:59Z
//! maxNodes: 5
//! entitlements:
//!   analytics: 'true'
//! signer: sha256:…
//! ---
//! signature: MEUCIQ…
//! ```
//!
//! Reading checks the size bound, then the signature over the raw body, and only then parses
//! the body, which must be exactly the canonical encoding the issuer writes.

use std::collections::BTreeMap;
use std::fmt;

use base64::Engine as _;
use serde::{Deserialize, Serialize};

use crate::digest::Digest;
use crate::schema::API_VERSION;
use crate::sign::{PrivateKey, PublicKey};
use crate::time::{epoch_to_rfc3339, rfc3339_to_epoch};
use crate::trust::{parse_signature, signed_by};

/// The `kind` of a license.
pub const LICENSE_KIND: &str = "License";
/// The largest license file read.
pub const MAX_LICENSE_FILE: u64 = 64 * 1024;
/// The most entitlements a license carries.
pub const MAX_ENTITLEMENTS: usize = 256;
/// The longest customer name, customer id, channel, entitlement key or value.
pub const MAX_FIELD: usize = 256;
/// What separates the signed body from the signature document.
const SEPARATOR: &str = "---\n";
/// The one key of the signature document.
const SIGNATURE_KEY: &str = "signature: ";

/// A license, as signed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct License {
    /// Always `airlift.dev/v1alpha1`.
    pub api_version: String,
    /// Always `License`.
    pub kind: String,
    /// A unique id, `lic-` and 32 hex digits, random at issue.
    pub id: String,
    /// When it was issued, RFC 3339 UTC.
    pub issued_at: String,
    /// The customer's name, as the vendor wrote it.
    pub customer: String,
    /// The vendor's id for the customer.
    pub customer_id: String,
    /// The release channel the customer may install from, e.g. `stable`.
    pub channel: String,
    /// Not valid before this time, RFC 3339 UTC.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub valid_from: Option<String>,
    /// Expires at this time, RFC 3339 UTC; no expiry when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires: Option<String>,
    /// The most nodes the cluster may have; no limit when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_nodes: Option<u32>,
    /// Entitlements, `key: value` as text; the bundle's entitlement schema types them.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub entitlements: BTreeMap<String, String>,
    /// The fingerprint of the signing key (sha256 of its SPKI DER).
    pub signer: Digest,
}

impl License {
    /// The expiry in seconds since the epoch, if any.
    pub fn expires_epoch(&self) -> Option<u64> {
        self.expires.as_deref().map(rfc3339_to_epoch)
    }

    /// The start of validity in seconds since the epoch, if any.
    pub fn valid_from_epoch(&self) -> Option<u64> {
        self.valid_from.as_deref().map(rfc3339_to_epoch)
    }
}

/// What the vendor asks `issue` to sign.
#[derive(Debug, Clone, Default)]
pub struct LicenseRequest {
    /// The customer's name.
    pub customer: String,
    /// The vendor's id for the customer.
    pub customer_id: String,
    /// The channel.
    pub channel: String,
    /// Not valid before (seconds since the epoch).
    pub valid_from: Option<u64>,
    /// Expiry (seconds since the epoch).
    pub expires: Option<u64>,
    /// The node limit.
    pub max_nodes: Option<u32>,
    /// Entitlements, key → value text.
    pub entitlements: BTreeMap<String, String>,
}

/// Why a license file is refused.
#[derive(Debug, thiserror::Error)]
pub enum LicenseError {
    /// Larger than [`MAX_LICENSE_FILE`].
    #[error("the license file is larger than the {MAX_LICENSE_FILE}-byte limit")]
    TooLarge,
    /// Not two documents, body then `signature: BASE64`.
    #[error("the license file is malformed: {0}")]
    Malformed(String),
    /// The signature does not verify and was not made by another known key: altered.
    #[error("the license does not verify with the vendor key {key}: it was altered after signing")]
    Tampered {
        /// The vendor key's fingerprint.
        key: Digest,
    },
    /// A valid signature by another key.
    #[error("the license was signed by key {signer}, not by this bundle's vendor key {given}")]
    OtherVendor {
        /// The key that signed it.
        signer: Digest,
        /// The bundle's vendor key.
        given: Digest,
    },
    /// Verified, but the body is not the canonical encoding or a field is invalid.
    #[error("the license is invalid: {0}")]
    Invalid(String),
}

impl LicenseError {
    /// What the operator can do about it.
    pub fn hint(&self) -> String {
        match self {
            LicenseError::TooLarge | LicenseError::Malformed(_) => {
                "pass the license file the vendor sent (written by `airlift-pack license issue`)"
                    .into()
            }
            LicenseError::Tampered { .. } | LicenseError::Invalid(_) => {
                "the license changed after the vendor signed it: ask the vendor for a fresh copy"
                    .into()
            }
            LicenseError::OtherVendor { .. } => {
                "this license is for another vendor's product: pass the license this vendor issued"
                    .into()
            }
        }
    }
}

/// Parses a date flag: `YYYY-MM-DD` (the end of that day, 23:59:59 UTC, when `end_of_day`, else
/// its start) or RFC 3339 UTC `YYYY-MM-DDTHH:MM:SSZ`.
pub fn parse_date(text: &str, end_of_day: bool) -> Option<u64> {
    let full = if text.len() == 10 {
        format!(
            "{text}T{}Z",
            if end_of_day { "23:59:59" } else { "00:00:00" }
        )
    } else {
        text.to_string()
    };
    parse_time(&full)
}

/// Parses the one time form a license holds, `YYYY-MM-DDTHH:MM:SSZ`, refusing anything else.
fn parse_time(text: &str) -> Option<u64> {
    let epoch = rfc3339_to_epoch(text);
    (epoch_to_rfc3339(epoch) == text).then_some(epoch)
}

fn check_text(field: &str, value: &str, problems: &mut Vec<String>) {
    if value.trim().is_empty() {
        problems.push(format!("`{field}` must not be empty"));
    }
    if value.len() > MAX_FIELD {
        problems.push(format!("`{field}` is longer than {MAX_FIELD} bytes"));
    }
    if value.chars().any(char::is_control) {
        problems.push(format!("`{field}` must not contain control characters"));
    }
}

fn is_key(s: &str) -> bool {
    let mut chars = s.chars();
    chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && s.len() <= 63
}

/// Checks every field: types, lengths, times in their one form, entitlement keys.
fn validate(l: &License) -> Result<(), LicenseError> {
    let mut p = Vec::new();
    if l.api_version != API_VERSION {
        p.push(format!(
            "apiVersion is `{}`, expected `{API_VERSION}`",
            l.api_version
        ));
    }
    if l.kind != LICENSE_KIND {
        p.push(format!("kind is `{}`, expected `{LICENSE_KIND}`", l.kind));
    }
    let id_ok = l.id.strip_prefix("lic-").is_some_and(|h| {
        h.len() == 32
            && h.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    });
    if !id_ok {
        p.push("`id` is not `lic-` and 32 hex digits".into());
    }
    check_text("customer", &l.customer, &mut p);
    check_text("customerId", &l.customer_id, &mut p);
    check_text("channel", &l.channel, &mut p);
    for (field, value) in [
        ("issuedAt", Some(&l.issued_at)),
        ("validFrom", l.valid_from.as_ref()),
        ("expires", l.expires.as_ref()),
    ] {
        if let Some(v) = value {
            if parse_time(v).is_none() {
                p.push(format!("`{field}` is not a time `YYYY-MM-DDTHH:MM:SSZ`"));
            }
        }
    }
    if let (Some(from), Some(to)) = (l.valid_from_epoch(), l.expires_epoch()) {
        if from >= to {
            p.push("`validFrom` is not before `expires`".into());
        }
    }
    if l.max_nodes == Some(0) {
        p.push("`maxNodes` must be at least 1".into());
    }
    if l.entitlements.len() > MAX_ENTITLEMENTS {
        p.push(format!("more than {MAX_ENTITLEMENTS} entitlements"));
    }
    for (k, v) in &l.entitlements {
        if !is_key(k) {
            p.push(format!(
                "entitlement `{}` is not a key (lowercase letters, digits and `_`, starting with a letter)",
                crate::escape(k)
            ));
        }
        if v.len() > MAX_FIELD || v.chars().any(char::is_control) {
            p.push(format!(
                "entitlement `{k}` has a value longer than {MAX_FIELD} bytes or with control characters"
            ));
        }
    }
    if p.is_empty() {
        Ok(())
    } else {
        Err(LicenseError::Invalid(p.join("; ")))
    }
}

/// The canonical body: the YAML the issuer writes for `license`.
fn body_of(license: &License) -> Result<String, LicenseError> {
    serde_yaml::to_string(license).map_err(|e| LicenseError::Invalid(e.to_string()))
}

/// Signs a new license with `key` at `now` (seconds since the epoch) and returns it with the
/// file's bytes.
pub fn issue(
    request: &LicenseRequest,
    key: &PrivateKey,
    now: u64,
) -> Result<(License, Vec<u8>), LicenseError> {
    let mut id = [0u8; 16];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut id);
    let license = License {
        api_version: API_VERSION.into(),
        kind: LICENSE_KIND.into(),
        id: format!("lic-{}", hex::encode(id)),
        issued_at: epoch_to_rfc3339(now),
        customer: request.customer.clone(),
        customer_id: request.customer_id.clone(),
        channel: request.channel.clone(),
        valid_from: request.valid_from.map(epoch_to_rfc3339),
        expires: request.expires.map(epoch_to_rfc3339),
        max_nodes: request.max_nodes,
        entitlements: request.entitlements.clone(),
        signer: key.public_key().fingerprint(),
    };
    validate(&license)?;
    let body = body_of(&license)?;
    let signature = base64::engine::general_purpose::STANDARD.encode(key.sign(body.as_bytes()));
    let file = format!("{body}{SEPARATOR}{SIGNATURE_KEY}{signature}\n");
    Ok((license, file.into_bytes()))
}

/// The signed body and the DER signature of a license file, split without parsing YAML.
pub fn split(raw: &[u8]) -> Result<(&[u8], Vec<u8>), LicenseError> {
    if raw.len() as u64 > MAX_LICENSE_FILE {
        return Err(LicenseError::TooLarge);
    }
    let text = std::str::from_utf8(raw)
        .map_err(|_| LicenseError::Malformed("it is not UTF-8 text".into()))?;
    let at = text
        .find(&format!("\n{SEPARATOR}"))
        .ok_or_else(|| LicenseError::Malformed("no `---` line before the signature".into()))?;
    let (body, rest) = text.split_at(at + 1);
    let line = rest
        .strip_prefix(SEPARATOR)
        .and_then(|r| r.strip_prefix(SIGNATURE_KEY))
        .and_then(|r| r.strip_suffix('\n'))
        .filter(|r| !r.contains('\n'))
        .ok_or_else(|| {
            LicenseError::Malformed(
                "the second document must be one line `signature: BASE64`".into(),
            )
        })?;
    let der = base64::engine::general_purpose::STANDARD
        .decode(line)
        .map_err(|_| LicenseError::Malformed("the signature is not base64".into()))?;
    Ok((body.as_bytes(), der))
}

/// The `signer:` the body claims, read linearly without parsing (unproven).
fn claimed_signer(body: &[u8]) -> Option<Digest> {
    body.split(|&b| b == b'\n')
        .find_map(|l| l.strip_prefix(b"signer: "))
        .and_then(|v| std::str::from_utf8(v).ok())
        .and_then(|v| v.trim().parse().ok())
}

/// Verifies a license file with the vendor's key, then parses and validates it. The signature
/// is checked over the raw bytes before anything of them is parsed.
pub fn verify(raw: &[u8], key: &PublicKey) -> Result<License, LicenseError> {
    let (body, der) = split(raw)?;
    let given = key.fingerprint();
    let sig = parse_signature(&der).map_err(|_| LicenseError::Tampered { key: given.clone() })?;
    if !key.verifies(body, &der) {
        return Err(match claimed_signer(body) {
            Some(signer) if signer != given && signed_by(body, &sig, &signer) => {
                LicenseError::OtherVendor { signer, given }
            }
            _ => LicenseError::Tampered { key: given },
        });
    }
    let text = std::str::from_utf8(body)
        .map_err(|_| LicenseError::Invalid("the body is not UTF-8".into()))?;
    crate::limits::check_nesting(body, "the license", 4)
        .map_err(|e| LicenseError::Invalid(e.to_string()))?;
    let license: License =
        serde_yaml::from_str(text).map_err(|e| LicenseError::Invalid(e.to_string()))?;
    if body_of(&license)? != text {
        return Err(LicenseError::Invalid(
            "the body is not in the canonical form the issuer writes".into(),
        ));
    }
    validate(&license)?;
    if license.signer != given {
        return Err(LicenseError::Invalid(format!(
            "it names signer {} but verifies with {given}",
            license.signer
        )));
    }
    Ok(license)
}

/// What templates see as `license`: `id`, `customer`, `customerId`, `channel` (empty strings
/// without a license) and `entitlements` (typed, defaults filled in).
pub fn template_context(
    license: Option<&License>,
    entitlements: &BTreeMap<String, serde_json::Value>,
) -> serde_json::Value {
    let text = |f: fn(&License) -> &String| license.map(f).cloned().unwrap_or_default();
    serde_json::json!({
        "id": text(|l| &l.id),
        "customer": text(|l| &l.customer),
        "customerId": text(|l| &l.customer_id),
        "channel": text(|l| &l.channel),
        "entitlements": entitlements,
    })
}

impl fmt::Display for License {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} for {} ({}), channel {}",
            self.id,
            crate::escape(&self.customer),
            crate::escape(&self.customer_id),
            crate::escape(&self.channel)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request() -> LicenseRequest {
        LicenseRequest {
            customer: "Example Corp".into(),
            customer_id: "cust-42".into(),
            channel: "stable".into(),
            valid_from: None,
            expires: parse_date("2027-12-31", true),
            max_nodes: Some(3),
            entitlements: [("analytics".to_string(), "true".to_string())].into(),
        }
    }

    #[test]
    fn issued_licenses_verify_and_round_trip() {
        let key = PrivateKey::generate();
        let (license, raw) = issue(&request(), &key, 1_700_000_000).unwrap();
        assert_eq!(verify(&raw, &key.public_key()).unwrap(), license);
        assert_eq!(license.expires.as_deref(), Some("2027-12-31T23:59:59Z"));
        assert_eq!(license.issued_at, "2023-11-14T22:13:20Z");
        let (other, _) = issue(&request(), &key, 1_700_000_000).unwrap();
        assert_ne!(license.id, other.id, "ids are unique");
    }

    #[test]
    fn tampering_other_keys_and_non_canonical_bodies_are_named() {
        let key = PrivateKey::generate();
        let (_, raw) = issue(&request(), &key, 1_700_000_000).unwrap();
        let text = String::from_utf8(raw.clone()).unwrap();
        let changed = text.replace("maxNodes: 3", "maxNodes: 9");
        assert!(matches!(
            verify(changed.as_bytes(), &key.public_key()),
            Err(LicenseError::Tampered { .. })
        ));
        let other = PrivateKey::generate();
        assert!(matches!(
            verify(&raw, &other.public_key()),
            Err(LicenseError::OtherVendor { .. })
        ));
        // A body signed correctly but not in canonical form is still refused.
        let (body, _) = split(&raw).unwrap();
        let loose = format!("{}# comment\n", std::str::from_utf8(body).unwrap());
        let sig = base64::engine::general_purpose::STANDARD.encode(key.sign(loose.as_bytes()));
        let file = format!("{loose}---\nsignature: {sig}\n");
        assert!(matches!(
            verify(file.as_bytes(), &key.public_key()),
            Err(LicenseError::Invalid(_))
        ));
        assert!(matches!(
            verify(&vec![b'a'; 70_000], &key.public_key()),
            Err(LicenseError::TooLarge)
        ));
        assert!(matches!(
            verify(b"kind: License\n", &key.public_key()),
            Err(LicenseError::Malformed(_))
        ));
    }

    #[test]
    fn invalid_requests_are_refused_at_issue() {
        let key = PrivateKey::generate();
        let mut r = request();
        r.customer = "bad\u{1b}[31m".into();
        r.entitlements.insert("Bad-Key".into(), "x".into());
        r.valid_from = parse_date("2028-01-01", false);
        let err = issue(&r, &key, 0).unwrap_err().to_string();
        for part in ["control characters", "Bad-Key", "validFrom"] {
            assert!(err.contains(part), "{part} missing from {err}");
        }
        assert_eq!(parse_date("2026-02-30", true), None);
        assert_eq!(parse_date("tomorrow", true), None);
    }
}
