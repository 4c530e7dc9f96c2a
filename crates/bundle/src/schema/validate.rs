//! Validation of a bundle definition beyond what serde checks: names, versions, ranges, unique
//! names, defaults that match their item's type, and secret rules. Every problem is collected, so
//! the author fixes them all in one pass.

use std::collections::BTreeSet;
use std::fmt;

use super::config::{ConfigItem, ConfigType, Validation};
use super::definition::{BundleDefinition, ImageSource, DEFINITION_KIND};
use super::API_VERSION;

/// The shortest generated secret allowed.
pub const MIN_GENERATED_LENGTH: usize = 16;
/// The longest generated secret allowed.
pub const MAX_GENERATED_LENGTH: usize = 256;

/// One thing wrong with a definition, at a field path such as `components[1].name`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Where in the definition, e.g. `config.groups[0].items[2].default`.
    pub path: String,
    /// What is wrong and what is expected.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

/// A definition that failed validation, with every problem found.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the bundle definition has {} problem(s):\n{}", .problems.len(), list(.problems))]
pub struct DefinitionInvalid {
    /// Every problem, in definition order.
    pub problems: Vec<Problem>,
}

fn list(problems: &[Problem]) -> String {
    problems
        .iter()
        .map(|p| format!("  - {p}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Checks a bundle definition; returns every problem at once.
pub fn validate_definition(def: &BundleDefinition) -> Result<(), DefinitionInvalid> {
    let mut v = Collector::default();
    if def.api_version != API_VERSION {
        v.push(
            "apiVersion",
            format!("is `{}`, expected `{API_VERSION}`", def.api_version),
        );
    }
    if def.kind != DEFINITION_KIND {
        v.push(
            "kind",
            format!("is `{}`, expected `{DEFINITION_KIND}`", def.kind),
        );
    }
    check_dns_label(&mut v, "metadata.name", &def.metadata.name);
    if let Err(e) = semver::Version::parse(&def.metadata.version) {
        v.push(
            "metadata.version",
            format!(
                "`{}` is not a semver version ({e}); write e.g. `1.4.2`",
                def.metadata.version
            ),
        );
    }
    if def.metadata.vendor.trim().is_empty() {
        v.push("metadata.vendor", "must not be empty".to_string());
    }
    if let Err(e) = semver::VersionReq::parse(&def.requirements.kubernetes) {
        v.push(
            "requirements.kubernetes",
            format!(
                "`{}` is not a semver range ({e}); write e.g. `>=1.28.0, <1.36.0`",
                def.requirements.kubernetes
            ),
        );
    }
    if def.requirements.platforms.is_empty() {
        v.push(
            "requirements.platforms",
            "must list at least one platform, e.g. `linux/amd64`".to_string(),
        );
    }
    let mut seen = BTreeSet::new();
    for p in &def.requirements.platforms {
        if !seen.insert(p) {
            v.push("requirements.platforms", format!("`{p}` is listed twice"));
        }
    }
    check_components(&mut v, def);
    check_config(&mut v, def);
    super::license::check_policy(
        def.license.as_ref(),
        def.components
            .iter()
            .enumerate()
            .filter_map(|(i, c)| Some((i, c.entitlement.as_deref()?))),
        &mut v.problems,
    );
    v.finish()
}

#[derive(Default)]
struct Collector {
    problems: Vec<Problem>,
}

impl Collector {
    fn push(&mut self, path: impl Into<String>, message: String) {
        self.problems.push(Problem {
            path: path.into(),
            message,
        });
    }

    fn finish(self) -> Result<(), DefinitionInvalid> {
        if self.problems.is_empty() {
            Ok(())
        } else {
            Err(DefinitionInvalid {
                problems: self.problems,
            })
        }
    }
}

/// True for an RFC 1123 label: lowercase letters, digits and `-`, 1 to 63 characters, starting and
/// ending with a letter or digit.
pub fn is_dns_label(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b[0] != b'-'
        && b[b.len() - 1] != b'-'
}

/// True for a configuration key part: a lowercase letter, then lowercase letters, digits and `_`.
pub fn is_config_name(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && s.len() <= 63
}

fn check_dns_label(v: &mut Collector, path: &str, name: &str) {
    if !is_dns_label(name) {
        v.push(
            path,
            format!(
                "`{name}` is not a valid name: use 1 to 63 lowercase letters, digits and `-`, \
                 starting and ending with a letter or digit"
            ),
        );
    }
}

fn check_components(v: &mut Collector, def: &BundleDefinition) {
    if def.components.is_empty() {
        v.push("components", "must list at least one component".to_string());
    }
    let mut names = BTreeSet::new();
    for (i, c) in def.components.iter().enumerate() {
        let at = format!("components[{i}]");
        check_dns_label(v, &format!("{at}.name"), &c.name);
        if !names.insert(c.name.as_str()) {
            v.push(
                format!("{at}.name"),
                format!("component `{}` is defined twice", c.name),
            );
        }
        if c.description.trim().is_empty() {
            v.push(format!("{at}.description"), "must not be empty".to_string());
        }
        for (j, m) in c.manifests.iter().enumerate() {
            if m.is_absolute()
                || m.components()
                    .any(|p| matches!(p, std::path::Component::ParentDir))
            {
                v.push(
                    format!("{at}.manifests[{j}]"),
                    format!(
                        "`{}` must be a relative path inside the definition's folder (no `..`)",
                        m.display()
                    ),
                );
            }
        }
        let mut refs = BTreeSet::new();
        for (j, img) in c.images.iter().enumerate() {
            let ip = format!("{at}.images[{j}]");
            if img.reference.trim().is_empty() {
                v.push(format!("{ip}.reference"), "must not be empty".to_string());
            }
            if !refs.insert(img.reference.as_str()) {
                v.push(
                    format!("{ip}.reference"),
                    format!("image `{}` is listed twice", img.reference),
                );
            }
            let local = match &img.source {
                Some(ImageSource::OciLayout(l)) | Some(ImageSource::OciArchive(l)) => {
                    Some(("path", l.path.as_path()))
                }
                Some(ImageSource::Build(b)) => Some(("context", b.context.as_path())),
                Some(ImageSource::Registry(r)) => {
                    if r.trim().is_empty() {
                        v.push(
                            format!("{ip}.source.registry"),
                            "must not be empty".to_string(),
                        );
                    }
                    None
                }
                None => None,
            };
            if let Some((field, p)) = local {
                if p.is_absolute()
                    || p.components()
                        .any(|c| matches!(c, std::path::Component::ParentDir))
                {
                    v.push(
                        format!("{ip}.source.{field}"),
                        format!(
                            "`{}` must be a relative path inside the definition's folder (no `..`)",
                            p.display()
                        ),
                    );
                }
            }
            if let Some(ImageSource::Build(b)) = &img.source {
                for (k, port) in b.ports.iter().enumerate() {
                    if !is_port_spec(port) {
                        v.push(
                            format!("{ip}.source.build.ports[{k}]"),
                            format!("`{port}` is not a port: write `8080/tcp`, `53/udp` or `8080`"),
                        );
                    }
                }
            }
        }
    }
}

fn is_port_spec(s: &str) -> bool {
    let (num, proto) = s.split_once('/').unwrap_or((s, "tcp"));
    matches!(num.parse::<u32>(), Ok(1..=65535)) && matches!(proto, "tcp" | "udp" | "sctp")
}

fn check_config(v: &mut Collector, def: &BundleDefinition) {
    let mut groups = BTreeSet::new();
    for (g, group) in def.config.groups.iter().enumerate() {
        let gp = format!("config.groups[{g}]");
        if !is_config_name(&group.name) {
            v.push(
                format!("{gp}.name"),
                format!(
                    "`{}` is not a valid key: use lowercase letters, digits and `_`, starting with a letter",
                    group.name
                ),
            );
        }
        if !groups.insert(group.name.as_str()) {
            v.push(
                format!("{gp}.name"),
                format!("group `{}` is defined twice", group.name),
            );
        }
        if group.name == "platform" {
            v.push(
                format!("{gp}.name"),
                "`platform` is reserved: values files and `--set platform.…` use it for the \
                 platform overrides; rename the group"
                    .to_string(),
            );
        }
        let mut items = BTreeSet::new();
        for (i, item) in group.items.iter().enumerate() {
            let ip = format!("{gp}.items[{i}]");
            let key = format!("{}.{}", group.name, item.name);
            if !is_config_name(&item.name) {
                v.push(
                    format!("{ip}.name"),
                    format!(
                        "`{}` is not a valid key: use lowercase letters, digits and `_`, starting with a letter",
                        item.name
                    ),
                );
            }
            if !items.insert(item.name.as_str()) {
                v.push(format!("{ip}.name"), format!("`{key}` is defined twice"));
            }
            check_item(v, &ip, &key, item);
        }
    }
}

fn check_item(v: &mut Collector, ip: &str, key: &str, item: &ConfigItem) {
    let rules = &item.validation;
    if item.kind == ConfigType::Secret {
        if item.default.is_some() {
            v.push(
                format!("{ip}.default"),
                format!("`{key}` is a secret and must not have a default: a default would ship in clear in every bundle; use `generate` or make it required"),
            );
        }
    } else if item.generate.is_some() {
        v.push(
            format!("{ip}.generate"),
            format!("`{key}` is not a secret: only `secret` items can be generated"),
        );
    }
    if let Some(g) = &item.generate {
        if !(MIN_GENERATED_LENGTH..=MAX_GENERATED_LENGTH).contains(&g.length) {
            v.push(
                format!("{ip}.generate.length"),
                format!(
                    "is {}, must be between {MIN_GENERATED_LENGTH} and {MAX_GENERATED_LENGTH}",
                    g.length
                ),
            );
        }
    }
    if item.kind == ConfigType::Enum {
        if rules.allowed.is_empty() {
            v.push(
                format!("{ip}.validation.enum"),
                format!("`{key}` is an enum and must list its allowed values"),
            );
        }
        let mut seen = BTreeSet::new();
        for a in &rules.allowed {
            if !seen.insert(a) {
                v.push(
                    format!("{ip}.validation.enum"),
                    format!("`{a}` is listed twice"),
                );
            }
        }
    } else if !rules.allowed.is_empty() {
        v.push(
            format!("{ip}.validation.enum"),
            format!("`{key}` is not an enum: only `enum` items take allowed values"),
        );
    }
    check_rule_fit(v, ip, key, item.kind, rules);
    if let (Some(min), Some(max)) = (rules.min, rules.max) {
        if min > max {
            v.push(
                format!("{ip}.validation"),
                format!("min {min} is greater than max {max}"),
            );
        }
    }
    if let (Some(min), Some(max)) = (rules.min_length, rules.max_length) {
        if min > max {
            v.push(
                format!("{ip}.validation"),
                format!("minLength {min} is greater than maxLength {max}"),
            );
        }
    }
    if let Some(default) = &item.default {
        if let Err(msg) = default_type_fits(item.kind, default) {
            v.push(format!("{ip}.default"), format!("`{key}`: {msg}"));
        } else if let Some(msg) = default_breaks_simple_rules(item.kind, rules, default) {
            v.push(format!("{ip}.default"), format!("`{key}`: {msg}"));
        }
    }
}

fn check_rule_fit(v: &mut Collector, ip: &str, key: &str, kind: ConfigType, rules: &Validation) {
    let numeric = kind == ConfigType::Int;
    let lengthy = matches!(
        kind,
        ConfigType::String | ConfigType::Secret | ConfigType::List | ConfigType::Hostname
    );
    let patterned = matches!(
        kind,
        ConfigType::String | ConfigType::Secret | ConfigType::Hostname | ConfigType::List
    );
    let kind_name = type_name(kind);
    if !numeric && (rules.min.is_some() || rules.max.is_some()) {
        v.push(
            format!("{ip}.validation"),
            format!("`{key}` is {kind_name}: `min`/`max` apply only to int items"),
        );
    }
    if !lengthy && (rules.min_length.is_some() || rules.max_length.is_some()) {
        v.push(
            format!("{ip}.validation"),
            format!("`{key}` is {kind_name}: `minLength`/`maxLength` apply only to string, secret, hostname and list items"),
        );
    }
    if !patterned && rules.pattern.is_some() {
        v.push(
            format!("{ip}.validation.pattern"),
            format!("`{key}` is {kind_name}: `pattern` applies only to string, secret, hostname and list items"),
        );
    }
}

/// The article and name of a type, for messages: `an int`, `a list`.
pub fn type_name(kind: ConfigType) -> &'static str {
    match kind {
        ConfigType::String => "a string",
        ConfigType::Bool => "a bool",
        ConfigType::Int => "an int",
        ConfigType::Secret => "a secret",
        ConfigType::Enum => "an enum",
        ConfigType::Hostname => "a hostname",
        ConfigType::List => "a list",
    }
}

fn default_type_fits(kind: ConfigType, value: &serde_json::Value) -> Result<(), String> {
    use serde_json::Value;
    let ok = match kind {
        ConfigType::String | ConfigType::Secret | ConfigType::Enum | ConfigType::Hostname => {
            value.is_string()
        }
        ConfigType::Bool => value.is_boolean(),
        ConfigType::Int => value.is_i64(),
        ConfigType::List => matches!(value, Value::Array(a) if a.iter().all(Value::is_string)),
    };
    if ok {
        Ok(())
    } else {
        Err(format!(
            "the default `{value}` is not {}{}",
            type_name(kind),
            if kind == ConfigType::List {
                " of strings"
            } else {
                ""
            }
        ))
    }
}

/// Rules that need no regex engine; the render crate checks patterns and hostnames on every value.
fn default_breaks_simple_rules(
    kind: ConfigType,
    rules: &Validation,
    value: &serde_json::Value,
) -> Option<String> {
    match (kind, value) {
        (ConfigType::Enum, serde_json::Value::String(s)) if !rules.allowed.contains(s) => {
            Some(format!(
                "the default `{s}` is not one of the allowed values: {}",
                rules.allowed.join(", ")
            ))
        }
        (ConfigType::Int, serde_json::Value::Number(n)) => {
            let n = n.as_i64()?;
            match (rules.min, rules.max) {
                (Some(min), _) if n < min => Some(format!("the default {n} is below min {min}")),
                (_, Some(max)) if n > max => Some(format!("the default {n} is above max {max}")),
                _ => None,
            }
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn demo() -> BundleDefinition {
        serde_yaml::from_str(
            r#"
apiVersion: airlift.dev/v1alpha1
kind: BundleDefinition
metadata: {name: acme, version: 1.2.3, vendor: Acme}
requirements: {kubernetes: ">=1.28.0", platforms: [linux/amd64]}
components:
  - name: app
    description: the app
    layer: workload
    manifests: [manifests/app]
    images: [{reference: "registry.acme.io/app:1.0"}]
config:
  groups:
    - name: app
      items:
        - {name: replicas, type: int, description: Replicas, default: 2, validation: {min: 1}}
        - {name: tier, type: enum, description: Tier, default: gold, validation: {enum: [gold, silver]}}
        - {name: password, type: secret, description: Password, generate: {length: 24}}
"#,
        )
        .unwrap()
    }

    #[test]
    fn a_good_definition_passes() {
        validate_definition(&demo()).unwrap();
    }

    #[test]
    fn a_config_group_named_platform_is_refused() {
        let mut d = demo();
        d.config.groups[0].name = "platform".into();
        let err = validate_definition(&d).unwrap_err();
        assert!(
            err.problems
                .iter()
                .any(|p| p.path == "config.groups[0].name" && p.message.contains("reserved")),
            "{err}"
        );
    }

    #[test]
    fn every_problem_is_reported_with_its_path() {
        let mut d = demo();
        d.metadata.name = "Acme_Corp".into();
        d.metadata.version = "1.2".into();
        d.requirements.kubernetes = "newest".into();
        d.requirements.platforms.clear();
        d.components.push(d.components[0].clone());
        d.components[0].manifests.push("../outside".into());
        let items = &mut d.config.groups[0].items;
        items[0].default = Some(serde_json::json!("two"));
        items[1].default = Some(serde_json::json!("bronze"));
        items[2].default = Some(serde_json::json!("hunter2"));
        items[1].generate = items[2].generate.clone();
        let err = validate_definition(&d).unwrap_err();
        let paths: Vec<&str> = err.problems.iter().map(|p| p.path.as_str()).collect();
        for expected in [
            "metadata.name",
            "metadata.version",
            "requirements.kubernetes",
            "requirements.platforms",
            "components[1].name",
            "components[0].manifests[1]",
            "config.groups[0].items[0].default",
            "config.groups[0].items[1].default",
            "config.groups[0].items[1].generate",
            "config.groups[0].items[2].default",
        ] {
            assert!(paths.contains(&expected), "{expected} missing from {err}");
        }
        let text = err.to_string();
        assert!(text.contains("`app.password` is a secret and must not have a default"));
        assert!(text.contains("`bronze` is not one of the allowed values: gold, silver"));
    }

    #[test]
    fn generate_length_and_rule_fit_are_checked() {
        let mut d = demo();
        let items = &mut d.config.groups[0].items;
        items[2].generate.as_mut().unwrap().length = 8;
        items[1].validation.min = Some(3);
        items[0].default = Some(serde_json::json!(0));
        let err = validate_definition(&d).unwrap_err().to_string();
        assert!(
            err.contains("generate.length: is 8, must be between 16 and 256"),
            "{err}"
        );
        assert!(
            err.contains("`app.tier` is an enum: `min`/`max` apply only to int items"),
            "{err}"
        );
        assert!(err.contains("the default 0 is below min 1"), "{err}");
    }

    #[test]
    fn dns_labels() {
        assert!(is_dns_label("web-1"));
        for bad in ["", "-a", "a-", "A", "a_b", &"a".repeat(64)] {
            assert!(!is_dns_label(bad), "{bad}");
        }
    }
}
