//! Manifest templating with minijinja.
//!
//! Templates see three objects: `config` (`config.group.item`), `bundle` (`name`, `version`) and
//! `release` (`name`, `namespace`, `revision`), plus `platform` when the caller resolved the
//! bundle's platform needs ([`Renderer::with_platform`]). Undefined names are errors (a typo'd key fails
//! with the file and line), output is never auto-escaped, and two filters help write YAML:
//! `tojson` (a value as a JSON/YAML scalar, quoted) and `b64encode` (for a Secret's `data`).

use std::sync::LazyLock;

use base64::Engine as _;
use minijinja::{AutoEscape, Environment, UndefinedBehavior};
use regex::Regex;
use serde::Serialize;

use crate::values::Config;

/// What templates see as `bundle`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BundleInfo {
    /// The product name.
    pub name: String,
    /// The release version.
    pub version: String,
}

/// What templates see as `release`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReleaseInfo {
    /// The release name, usually the bundle name.
    pub name: String,
    /// The namespace the install targets.
    pub namespace: String,
    /// The revision being installed, from 1.
    pub revision: u64,
}

/// The most template instructions one render may run (minijinja fuel): far above any real
/// manifest, far below what a self-doubling macro needs.
pub const TEMPLATE_FUEL: u64 = 2_000_000;
/// The most output one render may produce.
pub const MAX_TEMPLATE_OUTPUT: usize = 16 * 1024 * 1024;

/// A bound a template hit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TemplateLimit {
    /// It ran more than [`TEMPLATE_FUEL`] instructions.
    Fuel,
    /// It produced more than [`MAX_TEMPLATE_OUTPUT`] bytes.
    Output,
}

impl std::fmt::Display for TemplateLimit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TemplateLimit::Fuel => write!(
                f,
                ": it ran more than {TEMPLATE_FUEL} instructions (runaway loop or recursion)"
            ),
            TemplateLimit::Output => write!(
                f,
                ": its output exceeds the {MAX_TEMPLATE_OUTPUT}-byte limit"
            ),
        }
    }
}

/// A template that failed to render.
#[derive(Debug, thiserror::Error)]
#[error("template `{file}` failed to render{}{}{}", .line.map(|l| format!(" at line {l}")).unwrap_or_default(), .undefined.as_ref().map(|u| format!(": `{u}` is not defined")).unwrap_or_default(), .limit.map(|l| l.to_string()).unwrap_or_default())]
pub struct TemplateError {
    /// The template's path, as given to [`Renderer::render`].
    pub file: String,
    /// The line, when known.
    pub line: Option<usize>,
    /// For an undefined value: the first `config.…`, `bundle.…` or `release.…` path on that line
    /// that does not exist, e.g. `config.web.replcas`.
    pub undefined: Option<String>,
    /// The bound it hit, when it was stopped for running too long or writing too much.
    pub limit: Option<TemplateLimit>,
    /// minijinja's error, with its detail (e.g. `undefined value`).
    #[source]
    pub source: minijinja::Error,
}

/// Collects output up to [`MAX_TEMPLATE_OUTPUT`] bytes; a write past it fails.
#[derive(Default)]
struct BoundedOutput {
    buf: Vec<u8>,
    overflowed: bool,
}

impl std::io::Write for BoundedOutput {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        if self.buf.len() + data.len() > MAX_TEMPLATE_OUTPUT {
            self.overflowed = true;
            return Err(std::io::Error::other("template output limit"));
        }
        self.buf.extend_from_slice(data);
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Renders manifest templates against one configuration.
pub struct Renderer {
    env: Environment<'static>,
    ctx: minijinja::Value,
    /// The same context as JSON, to name an undefined path in errors. Holds secrets: never print.
    json: serde_json::Value,
}

impl std::fmt::Debug for Renderer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The context holds secrets: never print it.
        f.debug_struct("Renderer").finish_non_exhaustive()
    }
}

fn b64encode(value: String) -> String {
    base64::engine::general_purpose::STANDARD.encode(value.as_bytes())
}

impl Renderer {
    /// A renderer whose templates see `config`, `bundle` and `release`.
    pub fn new(config: &Config, bundle: &BundleInfo, release: &ReleaseInfo) -> Self {
        Self::with_context(config.template_context(), bundle, release)
    }

    /// A renderer over an already built `config` object (`{group: {item: value}}`).
    pub fn with_context(
        config: serde_json::Value,
        bundle: &BundleInfo,
        release: &ReleaseInfo,
    ) -> Self {
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        env.set_auto_escape_callback(|_| AutoEscape::None);
        env.set_keep_trailing_newline(true);
        env.add_filter("b64encode", b64encode);
        env.set_fuel(Some(TEMPLATE_FUEL));
        let json = serde_json::json!({
            "config": config,
            "bundle": bundle,
            "release": release,
        });
        let ctx = minijinja::Value::from_serialize(&json);
        Self { env, ctx, json }
    }

    /// Adds `platform` (the resolved platform needs, see [`crate::platform::resolve`]) to what
    /// templates see.
    pub fn with_platform(mut self, platform: serde_json::Value) -> Self {
        self.json["platform"] = platform;
        self.ctx = minijinja::Value::from_serialize(&self.json);
        self
    }

    /// Adds `license` to what templates see (`license.customer`, `license.entitlements.*`).
    pub fn with_license(mut self, license: serde_json::Value) -> Self {
        if let Some(map) = self.json.as_object_mut() {
            map.insert("license".into(), license);
        }
        self.ctx = minijinja::Value::from_serialize(&self.json);
        self
    }

    /// The first context path on `line` of `source` that does not resolve.
    fn find_undefined(&self, source: &str, line: Option<usize>) -> Option<String> {
        static PATH: LazyLock<Regex> = LazyLock::new(|| {
            Regex::new(r"\b(?:config|bundle|release|platform|license)(?:\.[A-Za-z_][A-Za-z0-9_]*)+")
                .unwrap_or_else(|_| unreachable!())
        });
        let text = source.lines().nth(line?.checked_sub(1)?)?;
        PATH.find_iter(text).map(|m| m.as_str()).find_map(|path| {
            let mut cur = &self.json;
            let mut walked = Vec::new();
            for part in path.split('.') {
                walked.push(part);
                match cur.get(part) {
                    Some(next) => cur = next,
                    None => return Some(walked.join(".")),
                }
            }
            None
        })
    }

    /// Renders one template; `file` names it in errors. Bounded: at most [`TEMPLATE_FUEL`]
    /// instructions and [`MAX_TEMPLATE_OUTPUT`] bytes of output.
    pub fn render(&self, file: &str, source: &str) -> Result<String, TemplateError> {
        let mut out = BoundedOutput::default();
        let rendered = self
            .env
            .template_from_named_str(file, source)
            .and_then(|t| t.render_captured_to(&self.ctx, &mut out).map(|_| ()));
        let err = match rendered {
            Ok(()) => {
                return String::from_utf8(out.buf).map_err(|_| TemplateError {
                    file: file.to_string(),
                    line: None,
                    undefined: None,
                    limit: None,
                    source: minijinja::Error::new(
                        minijinja::ErrorKind::BadSerialization,
                        "the output is not UTF-8",
                    ),
                })
            }
            Err(err) => err,
        };
        let limit = if out.overflowed {
            Some(TemplateLimit::Output)
        } else if err.kind() == minijinja::ErrorKind::OutOfFuel {
            Some(TemplateLimit::Fuel)
        } else {
            None
        };
        Err(TemplateError {
            file: file.to_string(),
            line: err.line(),
            undefined: if err.kind() == minijinja::ErrorKind::UndefinedError {
                self.find_undefined(source, err.line())
            } else {
                None
            },
            limit,
            source: err,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn renderer() -> Renderer {
        Renderer::with_context(
            json!({"web": {"replicas": 3, "title": "Acme: \"quoted\"", "origins": ["a", "b"], "token": "s3cr3t"}}),
            &BundleInfo {
                name: "demo".into(),
                version: "1.2.3".into(),
            },
            &ReleaseInfo {
                name: "demo".into(),
                namespace: "demo-ns".into(),
                revision: 4,
            },
        )
    }

    #[test]
    fn renders_config_bundle_and_release() {
        let out = renderer()
            .render(
                "deploy.yaml",
                "replicas: {{ config.web.replicas }}\nversion: {{ bundle.version }}\nns: {{ release.namespace }}/{{ release.revision }}\n",
            )
            .unwrap();
        assert_eq!(out, "replicas: 3\nversion: 1.2.3\nns: demo-ns/4\n");
    }

    #[test]
    fn tojson_quotes_for_yaml_and_b64encode_encodes() {
        let r = renderer();
        let out = r
            .render("x.yaml", "title: {{ config.web.title | tojson }}\norigins: {{ config.web.origins | tojson }}\ntoken: {{ config.web.token | b64encode }}")
            .unwrap();
        let doc: serde_json::Value = serde_yaml::from_str(&out).unwrap();
        assert_eq!(doc["title"], json!("Acme: \"quoted\""));
        assert_eq!(doc["origins"], json!(["a", "b"]));
        assert_eq!(doc["token"], json!("czNjcjN0"));
    }

    #[test]
    fn no_auto_escaping_in_yaml_files() {
        let out = renderer()
            .render("x.yaml", "{{ config.web.title }}")
            .unwrap();
        assert_eq!(out, "Acme: \"quoted\"");
    }

    #[test]
    fn a_typo_names_the_file_and_line() {
        let err = renderer()
            .render(
                "components/web/deploy.yaml",
                "a: 1\nb: 2\nreplicas: {{ config.web.replcas }}\n",
            )
            .unwrap_err();
        assert_eq!(err.line, Some(3));
        let text = format!("{err}: {}", err.source);
        assert!(
            text.starts_with("template `components/web/deploy.yaml` failed to render at line 3: `config.web.replcas` is not defined"),
            "{text}"
        );
        assert!(text.contains("undefined"), "{text}");
        let err = renderer()
            .render("t.yaml", "x: {{ release.name }}-{{ config.nogroup.x }}")
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "template `t.yaml` failed to render at line 1: `config.nogroup` is not defined"
        );
        let err = renderer().render("s.yaml", "{% if %}").unwrap_err();
        assert_eq!(err.line, Some(1));
    }

    #[test]
    fn a_self_doubling_macro_runs_out_of_fuel() {
        let src =
            "{% macro d(n) %}{% if n > 0 %}{{ d(n - 1) }}{{ d(n - 1) }}{% endif %}x{% endmacro %}\
                   {% if config.web.replicas > 2 %}{{ d(40) }}{% endif %}";
        let err = renderer().render("bomb.yaml", src).unwrap_err();
        assert_eq!(err.limit, Some(TemplateLimit::Fuel), "{err}");
        assert!(err.to_string().contains("instructions"), "{err}");
    }

    #[test]
    fn output_past_the_bound_is_refused() {
        let src = "{% for i in range(100) %}{{ 'x' * 1000000 }}{% endfor %}";
        let err = renderer().render("big.yaml", src).unwrap_err();
        assert_eq!(err.limit, Some(TemplateLimit::Output), "{err}");
    }

    #[test]
    fn debug_never_prints_the_context() {
        assert!(!format!("{:?}", renderer()).contains("s3cr3t"));
    }
}
