//! The configuration schema: typed items in groups, whose defaults are the SaaS values.
//!
//! An item's full key is `<group>.<item>`: that is what `--set` and error messages name, what a
//! values file nests (`group: {item: value}`), and what templates read as `config.group.item`.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The configuration a bundle accepts.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ConfigSchema {
    /// The groups of items, in display order.
    #[serde(default)]
    pub groups: Vec<ConfigGroup>,
}

/// A named group of configuration items.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ConfigGroup {
    /// The group's key: lowercase letters, digits and `_`, starting with a letter.
    pub name: String,
    /// A human title for prompts and listings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// What the group configures.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The items of the group, in display order.
    pub items: Vec<ConfigItem>,
}

/// One typed configuration item.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ConfigItem {
    /// The item's key within its group: lowercase letters, digits and `_`, starting with a letter.
    pub name: String,
    /// The item's type.
    #[serde(rename = "type")]
    pub kind: ConfigType,
    /// What the item means, shown in prompts and listings.
    pub description: String,
    /// The default, which is the value the SaaS runs with. Never set for secrets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<serde_json::Value>,
    /// Whether the install must have a value (from the default, the customer or generation).
    #[serde(default)]
    pub required: bool,
    /// Rules the value must meet.
    #[serde(default, skip_serializing_if = "Validation::is_empty")]
    pub validation: Validation,
    /// For `secret` items: generate a random value once at install, kept across upgrades.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generate: Option<Generate>,
}

/// The type of a configuration item.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ConfigType {
    /// Free text.
    String,
    /// `true` or `false`.
    Bool,
    /// A whole number.
    Int,
    /// Text that is never logged, printed or recorded in clear.
    Secret,
    /// One of `validation.enum`.
    Enum,
    /// A DNS name (RFC 1123).
    Hostname,
    /// A list of strings.
    List,
}

/// Rules a value must meet. Every field is optional.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Validation {
    /// A regular expression the whole string must match (string, secret, hostname, list items).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pattern: Option<String>,
    /// The smallest allowed value (int).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<i64>,
    /// The largest allowed value (int).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<i64>,
    /// The shortest allowed length (string, secret) or item count (list).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_length: Option<usize>,
    /// The longest allowed length (string, secret) or item count (list).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_length: Option<usize>,
    /// The allowed values (enum).
    #[serde(default, rename = "enum", skip_serializing_if = "Vec::is_empty")]
    pub allowed: Vec<String>,
}

impl Validation {
    /// True when no rule is set.
    pub fn is_empty(&self) -> bool {
        self == &Self::default()
    }
}

/// How to generate a secret at install time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Generate {
    /// The number of characters, 16 to 256.
    #[serde(default = "default_secret_length")]
    pub length: usize,
    /// The alphabet.
    #[serde(default)]
    pub charset: Charset,
}

fn default_secret_length() -> usize {
    32
}

/// The alphabet of a generated secret.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Charset {
    /// Letters and digits.
    #[default]
    Alphanumeric,
    /// Lowercase hex digits.
    Hex,
}
