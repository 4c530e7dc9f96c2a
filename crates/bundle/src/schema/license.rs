//! The license a bundle asks for (`license:` in the definition and the manifest): whether one is
//! required, and the entitlements it understands, typed, with defaults. Components name the
//! entitlement they need with `entitlement:`.

use std::collections::{BTreeMap, BTreeSet};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::validate::Problem;

/// The bundle's license policy.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LicensePolicy {
    /// Install and upgrade refuse to run without a valid license (`--license FILE`).
    #[serde(default)]
    pub required: bool,
    /// The entitlements a license may carry, typed, with defaults for licenses that omit them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub entitlements: Vec<Entitlement>,
}

/// One entitlement a license may grant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Entitlement {
    /// The key: lowercase letters, digits and `_`, starting with a letter.
    pub name: String,
    /// The type of its value.
    #[serde(rename = "type")]
    pub kind: EntitlementType,
    /// What it grants.
    pub description: String,
    /// The value when a license does not grant it; without one, a missing entitlement is unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<Value>,
}

/// The type of an entitlement's value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum EntitlementType {
    /// `true` or `false`; a component may require it.
    Bool,
    /// A whole number.
    Int,
    /// Text.
    String,
}

impl EntitlementType {
    /// Types the license's text value; `None` when it is not of this type.
    pub fn parse(self, text: &str) -> Option<Value> {
        match self {
            EntitlementType::Bool => match text {
                "true" => Some(Value::Bool(true)),
                "false" => Some(Value::Bool(false)),
                _ => None,
            },
            EntitlementType::Int => text.parse::<i64>().ok().map(Value::from),
            EntitlementType::String => Some(Value::String(text.to_string())),
        }
    }

    fn fits(self, value: &Value) -> bool {
        match self {
            EntitlementType::Bool => value.is_boolean(),
            EntitlementType::Int => value.is_i64(),
            EntitlementType::String => value.is_string(),
        }
    }

    /// The type's name for messages.
    pub fn name(self) -> &'static str {
        match self {
            EntitlementType::Bool => "bool",
            EntitlementType::Int => "int",
            EntitlementType::String => "string",
        }
    }
}

impl LicensePolicy {
    /// The entitlements with `granted` (the license's text values) typed over the defaults:
    /// `Err((key, value, type))` names the first granted value that is not of its type.
    /// Keys the policy does not declare are left out.
    pub fn resolve(
        &self,
        granted: &BTreeMap<String, String>,
    ) -> Result<BTreeMap<String, Value>, (String, String, EntitlementType)> {
        let mut out = BTreeMap::new();
        for e in &self.entitlements {
            let value = match granted.get(&e.name) {
                Some(text) => Some(
                    e.kind
                        .parse(text)
                        .ok_or_else(|| (e.name.clone(), text.clone(), e.kind))?,
                ),
                None => e.default.clone(),
            };
            if let Some(v) = value {
                out.insert(e.name.clone(), v);
            }
        }
        Ok(out)
    }
}

/// True when a resolved entitlement grants what a component requires: a bool `true`.
pub fn grants(entitlements: &BTreeMap<String, Value>, name: &str) -> bool {
    entitlements.get(name) == Some(&Value::Bool(true))
}

/// Checks the policy and the components' `entitlement:` names; problems are pushed with their
/// field paths.
pub fn check_policy<'a>(
    policy: Option<&LicensePolicy>,
    gated: impl Iterator<Item = (usize, &'a str)>,
    problems: &mut Vec<Problem>,
) {
    let mut push = |path: String, message: String| problems.push(Problem { path, message });
    let mut bools = BTreeSet::new();
    if let Some(policy) = policy {
        let mut seen = BTreeSet::new();
        for (i, e) in policy.entitlements.iter().enumerate() {
            let at = format!("license.entitlements[{i}]");
            let key_ok = e
                .name
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_lowercase())
                && e.name
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
                && e.name.len() <= 63;
            if !key_ok {
                push(
                    format!("{at}.name"),
                    format!(
                        "`{}` is not a valid key: use lowercase letters, digits and `_`, starting with a letter",
                        e.name
                    ),
                );
            }
            if !seen.insert(e.name.as_str()) {
                push(
                    format!("{at}.name"),
                    format!("entitlement `{}` is declared twice", e.name),
                );
            }
            if let Some(d) = &e.default {
                if !e.kind.fits(d) {
                    push(
                        format!("{at}.default"),
                        format!("the default `{d}` is not a {}", e.kind.name()),
                    );
                }
            }
            if e.kind == EntitlementType::Bool {
                bools.insert(e.name.as_str());
            }
        }
    }
    for (i, name) in gated {
        if !bools.contains(name) {
            push(
                format!("components[{i}].entitlement"),
                format!("`{name}` is not a bool entitlement declared under `license.entitlements`"),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn policy() -> LicensePolicy {
        serde_yaml::from_str(
            "required: true\nentitlements:\n  - {name: analytics, type: bool, description: x, default: false}\n  - {name: seats, type: int, description: y, default: 10}\n  - {name: tier, type: string, description: z}\n",
        )
        .unwrap()
    }

    #[test]
    fn entitlements_are_typed_over_their_defaults() {
        let p = policy();
        let none = p.resolve(&BTreeMap::new()).unwrap();
        assert_eq!(none.get("analytics"), Some(&json!(false)));
        assert_eq!(none.get("seats"), Some(&json!(10)));
        assert_eq!(none.get("tier"), None);
        let granted = [
            ("analytics".to_string(), "true".to_string()),
            ("seats".to_string(), "25".to_string()),
            ("other".to_string(), "x".to_string()),
        ]
        .into();
        let got = p.resolve(&granted).unwrap();
        assert!(grants(&got, "analytics"));
        assert_eq!(got.get("seats"), Some(&json!(25)));
        assert!(!got.contains_key("other"));
        let bad = [("seats".to_string(), "many".to_string())].into();
        assert_eq!(
            p.resolve(&bad).unwrap_err(),
            ("seats".into(), "many".into(), EntitlementType::Int)
        );
    }

    #[test]
    fn policy_problems_are_reported_with_paths() {
        let mut p = policy();
        p.entitlements[1].default = Some(json!("ten"));
        p.entitlements.push(p.entitlements[0].clone());
        let mut problems = Vec::new();
        check_policy(
            Some(&p),
            [(0, "analytics"), (1, "seats")].into_iter(),
            &mut problems,
        );
        let paths: Vec<&str> = problems.iter().map(|p| p.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "license.entitlements[1].default",
                "license.entitlements[3].name",
                "components[1].entitlement"
            ]
        );
    }
}
