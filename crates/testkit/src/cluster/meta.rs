//! Object metadata helpers (timestamps, uids) and `metav1.Status` errors.

use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};

/// Formats a Unix time (seconds) as RFC 3339 UTC, the way `metav1.Time` serialises.
pub(crate) fn rfc3339(secs: u64) -> String {
    airlift_bundle::time::epoch_to_rfc3339(secs)
}

/// Seconds since the Unix epoch.
pub(crate) fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// The current time as a `metav1.Time` string.
pub(crate) fn now() -> String {
    rfc3339(unix_now())
}

/// Parses the `YYYY-MM-DDTHH:MM:SSZ` form written by [`rfc3339`] back into Unix seconds.
pub(crate) fn parse_rfc3339(s: &str) -> Option<u64> {
    let b = s.as_bytes();
    if b.len() < 20 {
        return None;
    }
    let num = |r: std::ops::Range<usize>| s.get(r)?.parse::<i64>().ok();
    let (y, m, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hh, mm, ss) = (num(11..13)?, num(14..16)?, num(17..19)?);
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    u64::try_from(days * 86_400 + hh * 3600 + mm * 60 + ss).ok()
}

/// A random RFC 4122 version 4 UUID, as Kubernetes uses for `metadata.uid`.
pub(crate) fn new_uid() -> String {
    let mut b: [u8; 16] = rand::random();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// A random lowercase alphanumeric suffix like the one `generateName` and controllers use.
pub(crate) fn random_suffix(len: usize) -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    (0..len)
        .map(|_| ALPHABET[rand::random::<usize>() % ALPHABET.len()] as char)
        .collect()
}

/// A stable short hash of a JSON value (FNV-1a), rendered the way controllers name revisions.
pub(crate) fn short_hash(v: &Value) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in v.to_string().bytes() {
        h ^= u64::from(byte);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    (0..10)
        .map(|i| ALPHABET[((h >> (i * 6)) % ALPHABET.len() as u64) as usize] as char)
        .collect()
}

/// One field error, as `field.Error` in apimachinery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FieldError {
    /// The field path, e.g. `spec.template`.
    pub field: String,
    /// `Invalid value: VALUE: detail` when `Some(VALUE)` (FieldValueInvalid), else
    /// `Forbidden: detail` (FieldValueForbidden).
    pub value: Option<String>,
    /// The detail, e.g. `field is immutable`.
    pub detail: String,
}

impl FieldError {
    /// `field: Invalid value: VALUE: detail`; `value` is rendered as JSON (Go prints `%#v`).
    pub(crate) fn invalid(field: &str, value: &Value, detail: &str) -> Self {
        let value = match value {
            Value::Null => "null".to_string(),
            other => other.to_string(),
        };
        FieldError {
            field: field.into(),
            value: Some(value),
            detail: detail.into(),
        }
    }

    /// `field: Forbidden: detail`.
    pub(crate) fn forbidden(field: &str, detail: &str) -> Self {
        FieldError {
            field: field.into(),
            value: None,
            detail: detail.into(),
        }
    }

    fn reason(&self) -> &'static str {
        if self.value.is_some() {
            "FieldValueInvalid"
        } else {
            "FieldValueForbidden"
        }
    }

    /// What `ErrorBody` gives: the message of a cause.
    fn body(&self) -> String {
        match &self.value {
            Some(v) => format!("Invalid value: {v}: {}", self.detail),
            None => format!("Forbidden: {}", self.detail),
        }
    }

    fn text(&self) -> String {
        format!("{}: {}", self.field, self.body())
    }
}

/// An API error, rendered as a `metav1.Status` with the real reason and code.
#[derive(Debug, Clone)]
pub(crate) struct ApiError {
    /// HTTP status code.
    pub code: u16,
    /// `StatusReason`, e.g. `NotFound`.
    pub reason: &'static str,
    /// Human-readable message, worded like the apiserver's.
    pub message: String,
    /// `details`, if any.
    pub details: Option<Value>,
}

/// `plural` or `plural.group`, the way the apiserver names a resource in messages.
pub(crate) fn qualified(group: &str, plural: &str) -> String {
    if group.is_empty() {
        plural.to_string()
    } else {
        format!("{plural}.{group}")
    }
}

impl ApiError {
    fn new(code: u16, reason: &'static str, message: String) -> Self {
        ApiError {
            code,
            reason,
            message,
            details: None,
        }
    }

    fn with_details(mut self, details: Value) -> Self {
        self.details = Some(details);
        self
    }

    pub(crate) fn not_found(group: &str, plural: &str, name: &str) -> Self {
        Self::new(
            404,
            "NotFound",
            format!("{} \"{name}\" not found", qualified(group, plural)),
        )
        .with_details(json!({"name": name, "group": group, "kind": plural}))
    }

    pub(crate) fn no_route() -> Self {
        Self::new(
            404,
            "NotFound",
            "the server could not find the requested resource".into(),
        )
        .with_details(json!({"causes": [{"reason": "UnexpectedServerResponse", "message": "404 page not found"}]}))
    }

    pub(crate) fn already_exists(group: &str, plural: &str, name: &str) -> Self {
        Self::new(
            409,
            "AlreadyExists",
            format!("{} \"{name}\" already exists", qualified(group, plural)),
        )
        .with_details(json!({"name": name, "group": group, "kind": plural}))
    }

    pub(crate) fn conflict(group: &str, plural: &str, name: &str, why: &str) -> Self {
        Self::new(
            409,
            "Conflict",
            format!(
                "Operation cannot be fulfilled on {} \"{name}\": {why}",
                qualified(group, plural)
            ),
        )
        .with_details(json!({"name": name, "group": group, "kind": plural}))
    }

    /// A server-side apply conflict: `fields` are `("manager" using apiVersion, .field.path)`
    /// pairs; the message is worded like the apiserver's.
    pub(crate) fn apply_conflict(
        group: &str,
        plural: &str,
        name: &str,
        fields: &[(String, String)],
    ) -> Self {
        let message = match fields {
            [(m, f)] => format!("Apply failed with 1 conflict: conflict with {m}: {f}"),
            _ => {
                let list: Vec<String> = fields
                    .iter()
                    .map(|(m, f)| format!("conflict with {m}: {f}"))
                    .collect();
                format!(
                    "Apply failed with {} conflicts: {}",
                    fields.len(),
                    list.join("\n")
                )
            }
        };
        let causes: Vec<Value> = fields
            .iter()
            .map(|(m, f)| json!({"reason": "FieldManagerConflict", "message": format!("conflict with {m}"), "field": f}))
            .collect();
        Self::new(409, "Conflict", message)
            .with_details(json!({"name": name, "group": group, "kind": plural, "causes": causes}))
    }

    pub(crate) fn invalid(group: &str, kind: &str, name: &str, field: &str, why: &str) -> Self {
        let gk = if group.is_empty() {
            kind.to_string()
        } else {
            format!("{kind}.{group}")
        };
        Self::new(
            422,
            "Invalid",
            format!("{gk} \"{name}\" is invalid: {field}: {why}"),
        )
        .with_details(json!({"name": name, "group": group, "kind": kind,
            "causes": [{"reason": "FieldValueInvalid", "message": why, "field": field}]}))
    }

    /// A 422 with several causes, worded like `apierrors.NewInvalid`: one cause reads
    /// `Kind "name" is invalid: field: detail`, several read `... is invalid: [a, b]`.
    pub(crate) fn invalid_fields(
        group: &str,
        kind: &str,
        name: &str,
        causes: &[FieldError],
    ) -> Self {
        let gk = if group.is_empty() {
            kind.to_string()
        } else {
            format!("{kind}.{group}")
        };
        let texts: Vec<String> = causes.iter().map(FieldError::text).collect();
        let joined = match texts.as_slice() {
            [one] => one.clone(),
            many => format!("[{}]", many.join(", ")),
        };
        let causes: Vec<Value> = causes
            .iter()
            .map(|c| json!({"reason": c.reason(), "message": c.body(), "field": c.field}))
            .collect();
        Self::new(
            422,
            "Invalid",
            format!("{gk} \"{name}\" is invalid: {joined}"),
        )
        .with_details(json!({"name": name, "group": group, "kind": kind, "causes": causes}))
    }

    pub(crate) fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, "BadRequest", message.into())
    }

    pub(crate) fn forbidden(message: impl Into<String>) -> Self {
        Self::new(403, "Forbidden", message.into())
    }

    pub(crate) fn unauthorized() -> Self {
        Self::new(401, "Unauthorized", "Unauthorized".into())
    }

    pub(crate) fn method_not_allowed() -> Self {
        Self::new(
            405,
            "MethodNotAllowed",
            "the server does not allow this method on the requested resource".into(),
        )
    }

    pub(crate) fn unsupported_media_type(got: &str) -> Self {
        Self::new(
            415,
            "UnsupportedMediaType",
            format!("the body of the request was in an unknown format ({got}) - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml, application/strategic-merge-patch+json"),
        )
    }

    pub(crate) fn too_large() -> Self {
        Self::new(
            413,
            "RequestEntityTooLarge",
            "Request entity too large: limit is 3145728".into(),
        )
    }

    /// The `metav1.Status` object for this error.
    pub(crate) fn to_status(&self) -> Value {
        let mut s = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        });
        if let Some(d) = &self.details {
            s["details"] = d.clone();
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_round_trips() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_795_475_999), "2026-11-23T23:19:59Z");
        for t in [0, 951_782_400, 1_795_475_999, 4_102_444_800] {
            assert_eq!(parse_rfc3339(&rfc3339(t)), Some(t));
        }
    }

    #[test]
    fn uid_has_uuid_shape() {
        let u = new_uid();
        assert_eq!(u.len(), 36);
        assert_eq!(&u[14..15], "4");
        assert_ne!(u, new_uid());
    }

    #[test]
    fn not_found_status_names_group_and_resource() {
        let s = ApiError::not_found("apps", "deployments", "web").to_status();
        assert_eq!(s["message"], "deployments.apps \"web\" not found");
        assert_eq!(s["code"], 404);
        assert_eq!(s["reason"], "NotFound");
    }
}
