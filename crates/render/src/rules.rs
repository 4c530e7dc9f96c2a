//! Typing of configuration values (from YAML or from text) and the rules they must meet.

use airlift_bundle::schema::config::{ConfigItem, ConfigType};
use airlift_bundle::schema::validate::type_name;
use regex::Regex;
use serde_json::Value;

fn describe(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a bool",
        Value::Number(n) if n.is_i64() || n.is_u64() => "a whole number",
        Value::Number(_) => "a decimal number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a mapping",
    }
}

pub(crate) fn typed_from_yaml(kind: ConfigType, v: Value) -> Result<Value, String> {
    let ok = match (&kind, &v) {
        (
            ConfigType::String | ConfigType::Secret | ConfigType::Enum | ConfigType::Hostname,
            Value::String(_),
        ) => true,
        (ConfigType::Bool, Value::Bool(_)) => true,
        (ConfigType::Int, Value::Number(n)) => n.is_i64(),
        (ConfigType::List, Value::Array(a)) => a.iter().all(Value::is_string),
        _ => false,
    };
    if ok {
        return Ok(v);
    }
    let quote_hint = matches!(
        kind,
        ConfigType::String | ConfigType::Secret | ConfigType::Enum | ConfigType::Hostname
    ) && matches!(v, Value::Bool(_) | Value::Number(_));
    Err(format!(
        "expected {}{}, got {}{}",
        type_name(kind),
        if kind == ConfigType::List {
            " of strings"
        } else {
            ""
        },
        describe(&v),
        if quote_hint {
            "; put the value in quotes"
        } else {
            ""
        }
    ))
}

pub(crate) fn typed_from_text(kind: ConfigType, raw: &str) -> Result<Value, String> {
    match kind {
        ConfigType::String | ConfigType::Secret | ConfigType::Enum | ConfigType::Hostname => {
            Ok(Value::String(raw.to_string()))
        }
        ConfigType::Bool => match raw.trim() {
            "true" => Ok(Value::Bool(true)),
            "false" => Ok(Value::Bool(false)),
            other => Err(format!("expected `true` or `false`, got `{other}`")),
        },
        ConfigType::Int => raw
            .trim()
            .parse::<i64>()
            .map(Value::from)
            .map_err(|_| format!("expected a whole number, got `{}`", raw.trim())),
        ConfigType::List => Ok(Value::Array(
            raw.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|s| Value::String(s.to_string()))
                .collect(),
        )),
    }
}

/// True for a lowercase RFC 1123 DNS name: labels of 1 to 63 letters, digits and `-`, joined by
/// `.`, at most 253 characters.
pub fn is_hostname(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.split('.')
            .all(airlift_bundle::schema::validate::is_dns_label)
}

pub(crate) fn check_rules(
    item: &ConfigItem,
    pattern: Option<&Regex>,
    value: &Value,
) -> Result<(), String> {
    let rules = &item.validation;
    let secret = item.kind == ConfigType::Secret;
    let shown = |s: &str| {
        if secret {
            "the value".to_string()
        } else {
            format!("`{s}`")
        }
    };
    let check_len = |len: usize, what: &str| -> Result<(), String> {
        if let Some(min) = rules.min_length {
            if len < min {
                return Err(format!("has {len} {what}, fewer than the minimum {min}"));
            }
        }
        if let Some(max) = rules.max_length {
            if len > max {
                return Err(format!("has {len} {what}, more than the maximum {max}"));
            }
        }
        Ok(())
    };
    let check_pattern = |s: &str| -> Result<(), String> {
        match pattern {
            Some(re) if !re.is_match(s) => Err(format!(
                "{} does not match the pattern `{}`",
                shown(s),
                rules.pattern.as_deref().unwrap_or_default()
            )),
            _ => Ok(()),
        }
    };
    match (item.kind, value) {
        (ConfigType::String | ConfigType::Secret, Value::String(s)) => {
            check_len(s.chars().count(), "characters")?;
            check_pattern(s)
        }
        (ConfigType::Hostname, Value::String(s)) => {
            if !is_hostname(s) {
                return Err(format!(
                    "{} is not a lowercase DNS name (RFC 1123), e.g. `app.example.com`",
                    shown(s)
                ));
            }
            check_len(s.chars().count(), "characters")?;
            check_pattern(s)
        }
        (ConfigType::Enum, Value::String(s)) => {
            if rules.allowed.contains(s) {
                Ok(())
            } else {
                Err(format!(
                    "`{s}` is not one of the allowed values: {}",
                    rules.allowed.join(", ")
                ))
            }
        }
        (ConfigType::Int, Value::Number(n)) => {
            let n = n
                .as_i64()
                .ok_or_else(|| "expected a whole number".to_string())?;
            if let Some(min) = rules.min {
                if n < min {
                    return Err(format!("{n} is below the minimum {min}"));
                }
            }
            if let Some(max) = rules.max {
                if n > max {
                    return Err(format!("{n} is above the maximum {max}"));
                }
            }
            Ok(())
        }
        (ConfigType::Bool, Value::Bool(_)) => Ok(()),
        (ConfigType::List, Value::Array(items)) => {
            check_len(items.len(), "items")?;
            for it in items {
                match it {
                    Value::String(s) => check_pattern(s)?,
                    other => {
                        return Err(format!(
                            "list items must be strings, got {}",
                            describe(other)
                        ))
                    }
                }
            }
            Ok(())
        }
        (kind, other) => Err(format!(
            "expected {}, got {}",
            type_name(kind),
            describe(other)
        )),
    }
}
