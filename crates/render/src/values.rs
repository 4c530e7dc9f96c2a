//! Configuration resolution: the SaaS defaults, then values files, then `--set`, then generated
//! secrets; validation that names the key and the rule; one error listing every missing key.
//!
//! ```text
//! let mut b = ConfigBuilder::new(&schema)?;      // SaaS defaults
//! b.apply_values_file(Path::new("prod.yaml"))?;  // repeatable, later wins
//! b.apply_set("web.replicas=3")?;                // typed per item
//! for (key, item) in b.missing() { /* prompt */ }
//! let config = b.finish(&previously_generated)?; // all problems, or all missing keys, at once
//! ```
//!
//! In a values file `null` removes a value (so a required item must then come from elsewhere).

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use airlift_bundle::schema::config::{ConfigItem, ConfigSchema, ConfigType};
use regex::Regex;
use serde_json::Value;

pub use crate::rules::is_hostname;
use crate::rules::{check_rules, typed_from_text, typed_from_yaml};

use crate::secret::{self, Secret, MASK};

/// Where a value in effect came from.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case", tag = "kind", content = "path")]
pub enum Origin {
    /// The bundle's default: the SaaS value.
    SaasDefault,
    /// A values file.
    ValuesFile(String),
    /// `--set`.
    Set,
    /// An interactive prompt.
    Prompt,
    /// Generated at this install.
    Generated,
    /// Generated at an earlier install and kept.
    Kept,
    /// Given by the site at an earlier install or upgrade, and remembered by the release.
    Remembered,
}

impl Origin {
    /// True when the customer gave the value (values file, `--set` or prompt).
    pub fn is_customer(&self) -> bool {
        matches!(
            self,
            Origin::ValuesFile(_) | Origin::Set | Origin::Prompt | Origin::Remembered
        )
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::SaasDefault => f.write_str("the SaaS default"),
            Origin::ValuesFile(p) => write!(f, "values file `{p}`"),
            Origin::Set => f.write_str("--set"),
            Origin::Prompt => f.write_str("the prompt"),
            Origin::Generated => f.write_str("generated"),
            Origin::Kept => f.write_str("generated earlier"),
            Origin::Remembered => f.write_str("the site's earlier value"),
        }
    }
}

/// One value that breaks a rule. Never holds a secret's value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValueProblem {
    /// The full key, `group.item`.
    pub key: String,
    /// Where the value came from.
    pub origin: Origin,
    /// The rule broken, e.g. `3 is above the maximum 2`.
    pub rule: String,
}

impl fmt::Display for ValueProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "`{}` (from {}): {}", self.key, self.origin, self.rule)
    }
}

/// Errors from resolving the configuration.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// An item's `validation.pattern` is not a valid regular expression.
    #[error("config item `{key}` has an invalid validation pattern `{pattern}`")]
    Pattern {
        /// The item's key.
        key: String,
        /// The pattern.
        pattern: String,
        /// The regex error.
        #[source]
        source: regex::Error,
    },
    /// A values file could not be read.
    #[error("cannot read values file `{path}`")]
    ReadValues {
        /// The file.
        path: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A values file over its size or nesting bound (`--values /dev/zero`, a hostile file).
    #[error("values file `{path}` is refused before it is parsed")]
    ValuesLimit {
        /// The file.
        path: String,
        /// The bound it broke.
        #[source]
        source: airlift_bundle::LimitError,
    },
    /// A values file is not YAML.
    #[error("values file `{path}` is not valid YAML")]
    ParseValues {
        /// The file.
        path: String,
        /// The cause, with line and column.
        #[source]
        source: serde_yaml::Error,
    },
    /// A values file is not a mapping of groups to mappings of items.
    #[error(
        "values file `{path}` must be a mapping of groups to items, e.g. `web: {{replicas: 3}}`"
    )]
    ValuesShape {
        /// The file.
        path: String,
    },
    /// A `--set` argument is not `group.item=value`.
    #[error("`--set {arg}` must be `group.item=value`, e.g. `--set web.replicas=3`")]
    MalformedSet {
        /// The argument.
        arg: String,
    },
    /// Values that break their rules or name no item.
    #[error("invalid configuration:\n{}", list(.problems))]
    Invalid {
        /// Every problem found.
        problems: Vec<ValueProblem>,
    },
    /// Required items with no value.
    #[error("required configuration has no value: {}; give each a value in a values file or with `--set KEY=VALUE`", .keys.iter().map(|k| format!("`{k}`")).collect::<Vec<_>>().join(", "))]
    Missing {
        /// Every missing key, in schema order.
        keys: Vec<String>,
    },
}

fn list(problems: &[ValueProblem]) -> String {
    problems
        .iter()
        .map(|p| format!("  - {p}"))
        .collect::<Vec<_>>()
        .join("\n")
}

struct Slot<'s> {
    key: String,
    group: &'s str,
    item: &'s ConfigItem,
    pattern: Option<Regex>,
    value: Option<(Value, Origin)>,
}

/// Collects values in precedence order; [`ConfigBuilder::finish`] validates them.
pub struct ConfigBuilder<'s> {
    slots: Vec<Slot<'s>>,
    index: BTreeMap<String, usize>,
    problems: Vec<ValueProblem>,
}

impl fmt::Debug for ConfigBuilder<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConfigBuilder")
            .field("items", &self.slots.len())
            .field("problems", &self.problems)
            .finish_non_exhaustive()
    }
}

impl<'s> ConfigBuilder<'s> {
    /// Starts from the SaaS defaults of `schema`.
    pub fn new(schema: &'s ConfigSchema) -> Result<Self, ConfigError> {
        let mut slots = Vec::new();
        let mut index = BTreeMap::new();
        for group in &schema.groups {
            for item in &group.items {
                let key = format!("{}.{}", group.name, item.name);
                let pattern = match &item.validation.pattern {
                    Some(p) => Some(Regex::new(&format!("^(?:{p})$")).map_err(|source| {
                        ConfigError::Pattern {
                            key: key.clone(),
                            pattern: p.clone(),
                            source,
                        }
                    })?),
                    None => None,
                };
                index.insert(key.clone(), slots.len());
                slots.push(Slot {
                    key,
                    group: &group.name,
                    item,
                    pattern,
                    value: item.default.clone().map(|v| (v, Origin::SaasDefault)),
                });
            }
        }
        Ok(Self {
            slots,
            index,
            problems: Vec::new(),
        })
    }

    fn unknown(&mut self, key: String, origin: Origin) {
        let group = key.split('.').next().unwrap_or_default();
        let siblings: Vec<&str> = self
            .slots
            .iter()
            .filter(|s| s.group == group)
            .map(|s| s.key.as_str())
            .collect();
        let rule = if siblings.is_empty() {
            let mut groups: Vec<&str> = self.slots.iter().map(|s| s.group).collect();
            groups.dedup();
            format!(
                "is not a configuration key of this bundle; its groups are: {}",
                groups.join(", ")
            )
        } else {
            format!(
                "is not a configuration key of this bundle; group `{group}` has: {}",
                siblings.join(", ")
            )
        };
        self.problems.push(ValueProblem { key, origin, rule });
    }

    /// Reads and applies a values file (`group: {item: value}`).
    pub fn apply_values_file(&mut self, path: &Path) -> Result<(), ConfigError> {
        let label = path.display().to_string();
        let text = airlift_bundle::read_bounded_string(path, airlift_bundle::limits::MAX_DOCUMENT)
            .map_err(|e| match e {
                airlift_bundle::LimitError::Io { source, .. } => ConfigError::ReadValues {
                    path: label.clone(),
                    source,
                },
                other => ConfigError::ValuesLimit {
                    path: label.clone(),
                    source: other,
                },
            })?;
        self.apply_values_yaml(&label, &text)
    }

    /// Applies values given as YAML text; `label` names the source in messages.
    pub fn apply_values_yaml(&mut self, label: &str, text: &str) -> Result<(), ConfigError> {
        airlift_bundle::check_nesting(text.as_bytes(), label, airlift_bundle::limits::MAX_NESTING)
            .map_err(|source| ConfigError::ValuesLimit {
                path: label.to_string(),
                source,
            })?;
        let doc: serde_yaml::Value =
            serde_yaml::from_str(text).map_err(|source| ConfigError::ParseValues {
                path: label.to_string(),
                source,
            })?;
        let groups = match doc {
            serde_yaml::Value::Null => return Ok(()),
            serde_yaml::Value::Mapping(m) => m,
            _ => {
                return Err(ConfigError::ValuesShape {
                    path: label.to_string(),
                })
            }
        };
        let origin = Origin::ValuesFile(label.to_string());
        for (g, items) in groups {
            let Some(g) = g.as_str().map(str::to_string) else {
                return Err(ConfigError::ValuesShape {
                    path: label.to_string(),
                });
            };
            if g == crate::platform::OVERRIDES_KEY {
                // The platform overrides, read by `platform::overrides_from_yaml`.
                continue;
            }
            let items = match items {
                serde_yaml::Value::Mapping(m) => m,
                serde_yaml::Value::Null => continue,
                _ => {
                    self.problems.push(ValueProblem {
                        key: g,
                        origin: origin.clone(),
                        rule: "must be a mapping of items, e.g. `replicas: 3`".into(),
                    });
                    continue;
                }
            };
            for (i, v) in items {
                let item = match i {
                    serde_yaml::Value::String(s) => s,
                    other => format!("{other:?}"),
                };
                let key = format!("{g}.{item}");
                let Some(&idx) = self.index.get(&key) else {
                    self.unknown(key, origin.clone());
                    continue;
                };
                if v.is_null() {
                    self.slots[idx].value = None;
                    continue;
                }
                let json = match serde_json::to_value(&v) {
                    Ok(j) => j,
                    Err(e) => {
                        self.problems.push(ValueProblem {
                            key,
                            origin: origin.clone(),
                            rule: format!("cannot be read as a value: {e}"),
                        });
                        continue;
                    }
                };
                let kind = self.slots[idx].item.kind;
                match typed_from_yaml(kind, json) {
                    Ok(value) => self.slots[idx].value = Some((value, origin.clone())),
                    Err(rule) => self.problems.push(ValueProblem {
                        key,
                        origin: origin.clone(),
                        rule,
                    }),
                }
            }
        }
        Ok(())
    }

    /// Applies a value the release remembered from an earlier deploy (already typed). Returns
    /// `false`, applying nothing, when this bundle no longer has the key.
    pub fn apply_remembered(&mut self, key: &str, value: Value) -> bool {
        let Some(&idx) = self.index.get(key) else {
            return false;
        };
        let kind = self.slots[idx].item.kind;
        match typed_from_yaml(kind, value) {
            Ok(v) => self.slots[idx].value = Some((v, Origin::Remembered)),
            Err(rule) => self.problems.push(ValueProblem {
                key: key.to_string(),
                origin: Origin::Remembered,
                rule,
            }),
        }
        true
    }

    /// Applies one `group.item=value`; the value is read according to the item's type (`true` or
    /// `false`, a whole number, or comma-separated for lists).
    pub fn apply_set(&mut self, arg: &str) -> Result<(), ConfigError> {
        let Some((key, raw)) = arg.split_once('=') else {
            return Err(ConfigError::MalformedSet {
                arg: mask_set_arg(arg),
            });
        };
        let key = key.trim();
        if !key.contains('.') {
            return Err(ConfigError::MalformedSet {
                arg: mask_set_arg(arg),
            });
        }
        if key.starts_with(crate::platform::SET_PREFIX) {
            // A platform override, read by `PlatformOverrides::apply_set`.
            return Ok(());
        }
        self.apply_text(key, raw, Origin::Set);
        Ok(())
    }

    /// Applies a typed-in answer (from a prompt); returns the problem at once, so the prompt
    /// can ask again.
    pub fn answer(&mut self, key: &str, raw: &str) -> Result<(), ValueProblem> {
        let before = self.problems.len();
        self.apply_text(key, raw, Origin::Prompt);
        if let Some(p) = self.problems.get(before).cloned() {
            self.problems.truncate(before);
            return Err(p);
        }
        if let Some(&idx) = self.index.get(key) {
            if let Some(rule) = self.check_slot(idx) {
                self.slots[idx].value = None;
                return Err(ValueProblem {
                    key: key.to_string(),
                    origin: Origin::Prompt,
                    rule,
                });
            }
        }
        Ok(())
    }

    fn apply_text(&mut self, key: &str, raw: &str, origin: Origin) {
        let Some(&idx) = self.index.get(key) else {
            self.unknown(key.to_string(), origin);
            return;
        };
        match typed_from_text(self.slots[idx].item.kind, raw) {
            Ok(v) => self.slots[idx].value = Some((v, origin)),
            Err(rule) => self.problems.push(ValueProblem {
                key: key.to_string(),
                origin,
                rule,
            }),
        }
    }

    /// Required items that still have no value and will not be generated, in schema order: what
    /// an interactive install prompts for.
    pub fn missing(&self) -> Vec<(&str, &ConfigItem)> {
        self.slots
            .iter()
            .filter(|s| s.item.required && s.value.is_none() && s.item.generate.is_none())
            .map(|s| (s.key.as_str(), s.item))
            .collect()
    }

    fn check_slot(&self, idx: usize) -> Option<String> {
        let slot = &self.slots[idx];
        let (value, _) = slot.value.as_ref()?;
        check_rules(slot.item, slot.pattern.as_ref(), value).err()
    }

    /// Fills generated secrets (keeping `previous` ones), validates every value and checks that
    /// every required item has one. Reports every invalid value at once, or else every missing
    /// key at once.
    pub fn finish(mut self, previous: &BTreeMap<String, Secret>) -> Result<Config, ConfigError> {
        for slot in &mut self.slots {
            if let (None, Some(spec)) = (&slot.value, &slot.item.generate) {
                slot.value = Some(match previous.get(&slot.key) {
                    Some(s) => (Value::String(s.expose().to_string()), Origin::Kept),
                    None => (
                        Value::String(secret::generate(spec).expose().to_string()),
                        Origin::Generated,
                    ),
                });
            }
        }
        let mut problems = std::mem::take(&mut self.problems);
        for idx in 0..self.slots.len() {
            if let Some(rule) = self.check_slot(idx) {
                let slot = &self.slots[idx];
                problems.push(ValueProblem {
                    key: slot.key.clone(),
                    origin: slot
                        .value
                        .as_ref()
                        .map_or(Origin::SaasDefault, |(_, o)| o.clone()),
                    rule,
                });
            }
        }
        if !problems.is_empty() {
            return Err(ConfigError::Invalid { problems });
        }
        let missing: Vec<String> = self.missing().iter().map(|(k, _)| k.to_string()).collect();
        if !missing.is_empty() {
            return Err(ConfigError::Missing { keys: missing });
        }
        Ok(Config {
            entries: self
                .slots
                .into_iter()
                .map(|s| Entry {
                    key: s.key,
                    group: s.group.to_string(),
                    item: s.item.clone(),
                    value: s.value,
                })
                .collect(),
        })
    }
}

/// Masks what follows `=` in a `--set` argument, in case it held a secret.
fn mask_set_arg(arg: &str) -> String {
    match arg.split_once('=') {
        Some((k, _)) => format!("{k}={MASK}"),
        None => arg.to_string(),
    }
}

/// One item of a resolved configuration.
#[derive(Clone)]
pub struct Entry {
    /// The full key, `group.item`.
    pub key: String,
    /// The group's name.
    pub group: String,
    /// The item's schema.
    pub item: ConfigItem,
    /// The value in effect and where it came from; `None` for an optional item left empty.
    pub value: Option<(Value, Origin)>,
}

impl Entry {
    /// True for secret items.
    pub fn is_secret(&self) -> bool {
        self.item.kind == ConfigType::Secret
    }
}

/// A validated configuration: every item, in schema order, with the value in effect.
#[derive(Clone)]
pub struct Config {
    entries: Vec<Entry>,
}

impl Config {
    /// Every item, in schema order.
    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// The value in effect for `key`, secrets in clear; `None` when unset or unknown.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.entries
            .iter()
            .find(|e| e.key == key)
            .and_then(|e| e.value.as_ref().map(|(v, _)| v))
    }

    /// The `config` object templates see: `{group: {item: value}}`, unset items as `null`.
    pub fn template_context(&self) -> Value {
        let mut groups = serde_json::Map::new();
        for e in &self.entries {
            let group = groups
                .entry(e.group.clone())
                .or_insert_with(|| Value::Object(serde_json::Map::new()));
            if let Value::Object(items) = group {
                items.insert(
                    e.item.name.clone(),
                    e.value.as_ref().map_or(Value::Null, |(v, _)| v.clone()),
                );
            }
        }
        Value::Object(groups)
    }

    /// The values of every item with `generate`, to pass as `previous` at the next upgrade so
    /// they stay the same. Includes values the customer set for such items, so a password never
    /// changes just because a later upgrade omits it.
    pub fn generated_secrets(&self) -> BTreeMap<String, Secret> {
        self.entries
            .iter()
            .filter(|e| e.item.generate.is_some())
            .filter_map(|e| match &e.value {
                Some((Value::String(s), _)) => Some((e.key.clone(), Secret::new(s.clone()))),
                _ => None,
            })
            .collect()
    }

    /// Keys whose secret was generated by this resolution (not kept from before).
    pub fn newly_generated(&self) -> Vec<&str> {
        self.entries
            .iter()
            .filter(|e| matches!(e.value, Some((_, Origin::Generated))))
            .map(|e| e.key.as_str())
            .collect()
    }

    /// The configuration for a release record: secrets replaced by their fingerprint keyed
    /// with `key` (the release's fingerprint key, see [`Secret::keyed_fingerprint`]).
    pub fn redacted(&self, key: &Secret) -> BTreeMap<String, Value> {
        self.entries
            .iter()
            .filter_map(|e| {
                let (v, _) = e.value.as_ref()?;
                let shown = match (e.is_secret(), v) {
                    (true, Value::String(s)) => {
                        Value::String(Secret::new(s.clone()).keyed_fingerprint(key))
                    }
                    _ => v.clone(),
                };
                Some((e.key.clone(), shown))
            })
            .collect()
    }

    /// Per item: the SaaS default, the value in effect, and whether the customer differs from
    /// the SaaS. Secrets are masked.
    pub fn diff_from_saas(&self) -> Vec<DiffRow> {
        self.entries
            .iter()
            .map(|e| {
                let secret = e.is_secret();
                let value = e.value.as_ref().map(|(v, _)| display_value(v, secret));
                let differs = match &e.value {
                    Some((v, origin)) => {
                        if secret {
                            origin.is_customer()
                        } else {
                            e.item.default.as_ref() != Some(v)
                        }
                    }
                    None => e.item.default.is_some(),
                };
                DiffRow {
                    key: e.key.clone(),
                    kind: e.item.kind,
                    description: e.item.description.clone(),
                    saas_default: e.item.default.as_ref().map(|v| display_value(v, secret)),
                    value,
                    origin: e.value.as_ref().map(|(_, o)| o.clone()),
                    differs,
                    secret,
                    generated: e.item.generate.is_some(),
                }
            })
            .collect()
    }
}

fn display_value(v: &Value, secret: bool) -> String {
    if secret {
        return MASK.to_string();
    }
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut m = f.debug_map();
        for e in &self.entries {
            let shown = e
                .value
                .as_ref()
                .map(|(v, _)| display_value(v, e.is_secret()));
            m.entry(&e.key, &shown);
        }
        m.finish()
    }
}

impl fmt::Display for Config {
    /// One `key = value (origin)` line per item; secrets masked.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for e in &self.entries {
            match &e.value {
                Some((v, o)) => {
                    writeln!(f, "{} = {} ({o})", e.key, display_value(v, e.is_secret()))?
                }
                None => writeln!(f, "{} (unset)", e.key)?,
            }
        }
        Ok(())
    }
}

/// One line of `airlift-install config`: how an item compares with the SaaS.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DiffRow {
    /// The full key.
    pub key: String,
    /// The item's type.
    #[serde(rename = "type")]
    pub kind: ConfigType,
    /// What the item means.
    pub description: String,
    /// The SaaS default, for display (secrets masked).
    pub saas_default: Option<String>,
    /// The value in effect, for display (secrets masked).
    pub value: Option<String>,
    /// Where the value in effect came from.
    pub origin: Option<Origin>,
    /// True when the customer's value differs from the SaaS.
    pub differs: bool,
    /// True for secret items.
    pub secret: bool,
    /// True for an item Airlift generates at the first install (a password, a key) when no value
    /// is given: no value yet means "generated at install", not "missing".
    pub generated: bool,
}

#[cfg(test)]
#[path = "values_tests.rs"]
mod tests;
