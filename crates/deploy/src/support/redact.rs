//! Redaction for support bundles: every value that could be a secret is replaced before
//! anything is written.
//!
//! Two layers, applied to every string (object fields, records, events, log lines):
//! 1. known values: every Secret value read from the release's namespaces (configuration
//!    secrets the site gave, generated secrets, registry credentials, any Secret's data), raw and
//!    base64-encoded; values of at least [`MIN_CONTAINED`] characters wherever they occur,
//!    shorter ones where a whole string equals them;
//! 2. patterns: PEM private keys, `Bearer`/`Basic` credentials, AWS access keys and secret keys,
//!    JWTs (service account tokens), passwords in URLs (`scheme://user:PASSWORD@host`), and
//!    `NAME=value` / `NAME: value` where NAME names a password, secret, token, key or credential.
//!
//! On objects also: Secret `data`/`stringData` values, `env[].value` of variables whose name
//! looks secret, and the `last-applied-configuration` annotation are replaced whole.

use std::sync::LazyLock;

use base64::Engine as _;
use regex::Regex;
use serde_json::Value;

/// What every redacted value becomes.
pub const REDACTED: &str = "[REDACTED]";

/// Known values at least this long are replaced wherever a string contains them.
pub const MIN_CONTAINED: usize = 4;

/// Secret values longer than this are not searched for literally (certificates, records);
/// the patterns cover keys inside them.
const MAX_KNOWN: usize = 8 * 1024;

fn re(pattern: &str) -> Regex {
    // The patterns are constants, tested below: a failure is a programming error.
    Regex::new(pattern).unwrap_or_else(|e| unreachable!("bad redaction pattern: {e}"))
}

/// A name that says its value is secret: `DB_PASSWORD`, `apiKey`, `client-secret`, `token`.
static SECRET_NAME: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"(?i)(pass(word|wd)?|pwd|secret|token|api[_-]?key|access[_-]?key|private[_-]?key|credential|auth)",
    )
});

/// The patterns, with what each becomes.
static PATTERNS: LazyLock<Vec<(Regex, &'static str)>> = LazyLock::new(|| {
    vec![
        // PEM private keys, also when cut off before their END line.
        (
            re(
                r"(?s)-----BEGIN ([A-Z0-9 ]*)PRIVATE KEY-----(?:.*?-----END [A-Z0-9 ]*PRIVATE KEY-----|.*)",
            ),
            "-----BEGIN ${1}PRIVATE KEY-----[REDACTED]-----END ${1}PRIVATE KEY-----",
        ),
        // Passwords in URLs.
        (
            re(r"\b([a-zA-Z][a-zA-Z0-9+.-]*://[^/\s:@]*:)[^@\s/]+@"),
            "${1}[REDACTED]@",
        ),
        // HTTP credentials.
        (
            re(r"(?i)\b(bearer)(\s+)[A-Za-z0-9._~+/-]{6,}=*"),
            "${1}${2}[REDACTED]",
        ),
        (
            re(r"\b(Basic)(\s+)[A-Za-z0-9+/]{12,}={0,2}"),
            "${1}${2}[REDACTED]",
        ),
        // JWTs (Kubernetes service account tokens, OIDC tokens).
        (
            re(r"\beyJ[A-Za-z0-9_-]{6,}\.[A-Za-z0-9_-]{6,}\.[A-Za-z0-9_-]*"),
            REDACTED,
        ),
        // AWS access key ids.
        (re(r"\b(?:AKIA|ASIA|AROA|AIDA)[0-9A-Z]{16}\b"), REDACTED),
        // NAME=value, NAME: value, "NAME": "value" where NAME names a secret.
        (
            re(
                r#"(?i)([A-Za-z0-9_.-]*(?:pass(?:word|wd)?|pwd|secret|token|api[_-]?key|access[_-]?key|private[_-]?key|credentials?)[A-Za-z0-9_.-]*["']?\s*[:=]\s*["']?)([^\s"',;&}]+)"#,
            ),
            "${1}[REDACTED]",
        ),
    ]
});

/// Replaces secret values in strings and objects.
#[derive(Debug, Default, Clone)]
pub struct Redactor {
    /// Known values, longest first.
    known: Vec<String>,
    /// How many replacements were made.
    count: usize,
}

impl Redactor {
    /// A redactor that knows no values yet (patterns only).
    pub fn new() -> Self {
        Self::default()
    }

    /// Learns a secret value: it and its base64 form are replaced wherever they occur.
    pub fn learn(&mut self, value: &str) {
        let value = value.trim_end_matches(['\n', '\r']);
        if value.is_empty() || value.len() > MAX_KNOWN || value == REDACTED {
            return;
        }
        for v in [
            value.to_string(),
            base64::engine::general_purpose::STANDARD.encode(value),
        ] {
            if !self.known.contains(&v) {
                self.known.push(v);
            }
        }
        self.known.sort_by_key(|v| std::cmp::Reverse(v.len()));
    }

    /// Learns every value of a Secret object (`data` base64-decoded, `stringData` as is), and
    /// the user:password pairs of a docker config inside it.
    pub fn learn_secret(&mut self, secret: &Value) {
        let engine = base64::engine::general_purpose::STANDARD;
        let mut values: Vec<String> = Vec::new();
        if let Some(data) = secret.get("data").and_then(Value::as_object) {
            for v in data.values().filter_map(Value::as_str) {
                if let Ok(bytes) = engine.decode(v) {
                    if let Ok(text) = String::from_utf8(bytes) {
                        values.push(text);
                    }
                }
            }
        }
        if let Some(data) = secret.get("stringData").and_then(Value::as_object) {
            values.extend(data.values().filter_map(Value::as_str).map(String::from));
        }
        for text in values {
            self.learn_docker_config(&text);
            self.learn(&text);
        }
    }

    /// Learns the passwords and `auth` strings of a `.dockerconfigjson`.
    fn learn_docker_config(&mut self, text: &str) {
        let Ok(config) = serde_json::from_str::<Value>(text) else {
            return;
        };
        let Some(auths) = config.get("auths").and_then(Value::as_object) else {
            return;
        };
        let engine = base64::engine::general_purpose::STANDARD;
        for entry in auths.values() {
            for key in ["password", "auth", "identitytoken", "registrytoken"] {
                if let Some(v) = entry.get(key).and_then(Value::as_str) {
                    self.learn(v);
                }
            }
            let decoded = entry
                .get("auth")
                .and_then(Value::as_str)
                .and_then(|a| engine.decode(a).ok())
                .and_then(|b| String::from_utf8(b).ok());
            if let Some((_, password)) = decoded.as_deref().and_then(|d| d.split_once(':')) {
                self.learn(password);
            }
        }
    }

    /// How many values were replaced so far.
    pub fn count(&self) -> usize {
        self.count
    }

    /// `text` with every known value and every pattern replaced.
    pub fn text(&mut self, text: &str) -> String {
        let mut out = text.to_string();
        for known in &self.known {
            if known.chars().count() < MIN_CONTAINED {
                if out == *known {
                    self.count += 1;
                    return REDACTED.to_string();
                }
                continue;
            }
            let hits = out.matches(known.as_str()).count();
            if hits > 0 {
                self.count += hits;
                out = out.replace(known.as_str(), REDACTED);
            }
        }
        for (pattern, with) in PATTERNS.iter() {
            let replaced = pattern.replace_all(&out, *with);
            if replaced != out {
                self.count += pattern.find_iter(&out).count();
                out = replaced.into_owned();
            }
        }
        out
    }

    /// Redacts `value` in place, at any depth: every string as [`Redactor::text`] does (keys
    /// kept), and in every object inside it the structural rules: a Secret's `data` and
    /// `stringData` values, `env[].value` of variables whose name looks secret, and the
    /// last-applied annotation are replaced whole; managed fields are dropped.
    pub fn value(&mut self, value: &mut Value) {
        match value {
            Value::String(s) => {
                let clean = self.text(s);
                if clean != *s {
                    *s = clean;
                }
            }
            Value::Array(items) => items.iter_mut().for_each(|v| self.value(v)),
            Value::Object(_) => {
                self.structure(value);
                if let Value::Object(map) = value {
                    map.values_mut().for_each(|v| self.value(v));
                }
            }
            _ => {}
        }
    }

    /// Redacts a Kubernetes object (or a list of them, or a record holding them).
    pub fn object(&mut self, object: &mut Value) {
        self.value(object);
    }

    /// The structural rules of [`Redactor::value`] on one JSON object (not its children).
    fn structure(&mut self, node: &mut Value) {
        let is_secret = node.get("kind").and_then(Value::as_str) == Some("Secret");
        let Value::Object(map) = node else {
            return;
        };
        if is_secret {
            for field in ["data", "stringData"] {
                if let Some(Value::Object(values)) = map.get_mut(field) {
                    for v in values.values_mut() {
                        if v.as_str() != Some(REDACTED) {
                            *v = Value::String(REDACTED.into());
                            self.count += 1;
                        }
                    }
                }
            }
        }
        if let Some(Value::Object(meta)) = map.get_mut("metadata") {
            meta.remove("managedFields");
            if let Some(Value::Object(annotations)) = meta.get_mut("annotations") {
                if let Some(v) =
                    annotations.get_mut("kubectl.kubernetes.io/last-applied-configuration")
                {
                    *v = Value::String(REDACTED.into());
                    self.count += 1;
                }
            }
        }
        if let Some(Value::Array(env)) = map.get_mut("env") {
            for entry in env.iter_mut() {
                let secret = entry
                    .get("name")
                    .and_then(Value::as_str)
                    .is_some_and(|n| SECRET_NAME.is_match(n));
                if let (true, Some(value)) = (secret, entry.get_mut("value")) {
                    if value.as_str() != Some(REDACTED) {
                        *value = Value::String(REDACTED.into());
                        self.count += 1;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn each_pattern_is_replaced() {
        let mut r = Redactor::new();
        let pem = "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA1234\nabcd\n-----END RSA PRIVATE KEY-----";
        for (text, secret) in [
            (format!("key:\n{pem}\nafter"), "MIIEowIBAAKCAQEA1234"),
            (
                "-----BEGIN PRIVATE KEY-----\nMIIEcut".to_string(),
                "MIIEcut",
            ),
            (
                "Authorization: Bearer abc.DEF-123_xyz".to_string(),
                "abc.DEF-123_xyz",
            ),
            (
                "auth Basic dXNlcjpodW50ZXIy".to_string(),
                "dXNlcjpodW50ZXIy",
            ),
            (
                "id AKIAIOSFODNN7EXAMPLE used".to_string(),
                "AKIAIOSFODNN7EXAMPLE",
            ),
            (
                "aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY".to_string(),
                "wJalrXUtnFEMI/K7MDENG",
            ),
            (
                "postgres://app:s3cr3tPw@db:5432/shop".to_string(),
                "s3cr3tPw",
            ),
            ("DB_PASSWORD=hunter2xyz other=1".to_string(), "hunter2xyz"),
            ("\"apiKey\": \"k-123456\"".to_string(), "k-123456"),
            (
                "token eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJzYSJ9.c2lnbmF0dXJl".to_string(),
                "eyJzdWIiOiJzYSJ9",
            ),
        ] {
            let out = r.text(&text);
            assert!(!out.contains(secret), "{text:?} became {out:?}");
            assert!(out.contains(REDACTED), "{out}");
        }
        // Ordinary text stays.
        let plain = "web is running on port 8080 (image registry.corp/acme/api@sha256:abc)";
        assert_eq!(r.text(plain), plain);
        assert_eq!(
            r.text("https://registry.corp:5000/v2/"),
            "https://registry.corp:5000/v2/"
        );
    }

    #[test]
    fn known_values_are_replaced_raw_and_in_base64() {
        let mut r = Redactor::new();
        r.learn_secret(&json!({"kind": "Secret", "data": {
            "password": base64::engine::general_purpose::STANDARD.encode("Gen3ratedValue"),
            ".dockerconfigjson": base64::engine::general_purpose::STANDARD.encode(
                r#"{"auths":{"reg:5000":{"username":"u","password":"RegPw-42","auth":"dTpSZWdQdy00Mg=="}}}"#),
        }, "stringData": {"short": "abc"}}));
        let mut v = json!({"a": "x Gen3ratedValue y", "b": "R2VuM3JhdGVkVmFsdWU=", "c": "RegPw-42",
            "d": "abc", "e": "abcd"});
        r.value(&mut v);
        let text = v.to_string();
        for s in ["Gen3ratedValue", "R2VuM3JhdGVkVmFsdWU", "RegPw-42"] {
            assert!(!text.contains(s), "{text}");
        }
        assert_eq!(v["d"], REDACTED);
        assert_eq!(v["e"], "abcd", "short values only replace whole strings");
    }

    #[test]
    fn objects_lose_secret_data_env_values_and_last_applied() {
        let mut r = Redactor::new();
        let mut secret = json!({"apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "db", "managedFields": [{"manager": "x"}],
                "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{\"data\":{}}"}},
            "data": {"password": "cGxhaW4="}});
        r.object(&mut secret);
        assert_eq!(secret["data"]["password"], REDACTED);
        assert!(secret["metadata"].get("managedFields").is_none());
        let mut deploy = json!({"kind": "Deployment", "spec": {"template": {"spec": {"containers": [
            {"name": "w", "env": [{"name": "ADMIN_PASS", "value": "x"}, {"name": "MODE", "value": "prod"}]}]}}}});
        r.object(&mut deploy);
        let env = &deploy["spec"]["template"]["spec"]["containers"][0]["env"];
        assert_eq!(env[0]["value"], REDACTED);
        assert_eq!(env[1]["value"], "prod");
        assert!(r.count() >= 3);
    }
}
