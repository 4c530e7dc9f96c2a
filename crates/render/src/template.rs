//! Manifest templating with minijinja.
//!
//! Templates see three objects: `config` (`config.group.item`), `bundle` (`name`, `version`) and
//! `release` (`name`, `namespace`, `revision`), plus `platform` when the caller resolved the
//! bundle's platform needs ([`Renderer::with_platform`]). Undefined names are errors (a typo'd key fails
//! with the file and line), output is never auto-escaped, and two filters help write YAML:
//! `tojson` (a value as a JSON/YAML scalar, quoted) and `b64encode` (for a Secret's `data`).
//!
//! Every render is bounded, each bound a named [`TemplateLimit`]: fuel (instructions) and
//! output here, memory and time by running the templates in a render worker
//! ([`crate::isolate`]), because minijinja's operators and filters (`~`, `+`, `replace`,
//! `join`, `indent`, `format`, list repetition…) grow values that no in-process check sees.

use std::sync::{LazyLock, Mutex};
use std::time::Duration;

use base64::Engine as _;
use minijinja::{AutoEscape, Environment, UndefinedBehavior};
use regex::Regex;
use serde::Serialize;

use crate::isolate::{self, Isolation, Session};
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
/// The most memory (address space, the worker's own code included) the process rendering
/// templates may use: a value grown without bound (a string doubled in a loop or a macro,
/// `replace`, `join`, a list repeated and materialised…) stops there. Enforced by the OS on the
/// render worker ([`crate::isolate`]).
pub const MAX_TEMPLATE_MEMORY: u64 = 512 * 1024 * 1024;
/// The longest one template may take to render, wall clock (and CPU time, on the worker).
pub const MAX_TEMPLATE_TIME: Duration = Duration::from_secs(10);

/// A bound a template hit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TemplateLimit {
    /// It ran more than [`TEMPLATE_FUEL`] instructions.
    Fuel,
    /// It produced more than [`MAX_TEMPLATE_OUTPUT`] bytes.
    Output,
    /// The render worker ran out of its address space ([`MAX_TEMPLATE_MEMORY`] unless the
    /// caller chose another bound).
    Memory {
        /// The bound, in bytes.
        bytes: u64,
    },
    /// It ran longer than its time bound ([`MAX_TEMPLATE_TIME`] unless the caller chose
    /// another).
    Time {
        /// The bound.
        limit: Duration,
    },
}

/// `bytes` as MiB, for messages.
pub(crate) fn mib(bytes: u64) -> String {
    let mib = bytes as f64 / (1024.0 * 1024.0);
    if bytes % (1024 * 1024) == 0 {
        format!("{mib:.0} MiB")
    } else {
        format!("{mib:.1} MiB")
    }
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
            TemplateLimit::Memory { bytes } => write!(
                f,
                ": it needed more than the {} memory limit (a value grown without bound, e.g. a \
                 string doubled in a loop or a macro)",
                mib(*bytes)
            ),
            TemplateLimit::Time { limit } => write!(
                f,
                ": it ran longer than the {} s time limit (a loop or filter over huge values)",
                limit.as_secs_f64()
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
    /// The bound it hit, when it was stopped for running too long, writing too much or using
    /// too much memory.
    pub limit: Option<TemplateLimit>,
    /// What failed: the template engine's message, or the render worker's fate.
    #[source]
    pub source: TemplateCause,
}

/// Why a template failed, under its [`TemplateError`].
#[derive(Debug, thiserror::Error)]
pub enum TemplateCause {
    /// What the template engine (minijinja) reported, e.g. `undefined value (in t.yaml:3)`.
    #[error("{0}")]
    Engine(String),
    /// The render worker was stopped at a bound; the text says how (e.g. `memory allocation
    /// of 536870912 bytes failed`).
    #[error("the render worker was stopped: {0}")]
    Stopped(String),
    /// The render worker could not be started.
    #[error("cannot start the render worker `{program}`")]
    Spawn {
        /// The program run as the worker.
        program: std::path::PathBuf,
        /// Why it did not start.
        #[source]
        source: std::io::Error,
    },
    /// The render worker failed for a reason that is not a bound: it died, answered out of
    /// protocol, or could not set its limits.
    #[error("the render worker failed: {0}")]
    Worker(String),
}

impl TemplateCause {
    /// True when the render worker itself failed (not the template): the error is not a
    /// configuration problem.
    pub fn is_worker_failure(&self) -> bool {
        matches!(self, TemplateCause::Spawn { .. } | TemplateCause::Worker(_))
    }
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

fn b64encode(value: String) -> String {
    base64::engine::general_purpose::STANDARD.encode(value.as_bytes())
}

/// The template engine in this process: minijinja with fuel and an output bound, over one
/// context. The render worker runs one; [`Isolation::InProcess`] renderers use one directly.
pub(crate) struct Engine {
    env: Environment<'static>,
    ctx: minijinja::Value,
    /// The same context as JSON, to name an undefined path in errors and to hand the worker.
    /// Holds secrets: never print.
    json: serde_json::Value,
}

impl Engine {
    /// An engine over `json` (`{config, bundle, release, …}`).
    pub(crate) fn new(json: serde_json::Value) -> Self {
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        env.set_auto_escape_callback(|_| AutoEscape::None);
        env.set_keep_trailing_newline(true);
        env.add_filter("b64encode", b64encode);
        env.set_fuel(Some(TEMPLATE_FUEL));
        let ctx = minijinja::Value::from_serialize(&json);
        Self { env, ctx, json }
    }

    /// The context as JSON. Holds secrets: never print.
    pub(crate) fn json(&self) -> &serde_json::Value {
        &self.json
    }

    fn set_json(&mut self, json: serde_json::Value) {
        self.ctx = minijinja::Value::from_serialize(&json);
        self.json = json;
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

    /// Renders one template in this process, bounded by fuel and output (not memory or time).
    pub(crate) fn render(&self, file: &str, source: &str) -> Result<String, TemplateError> {
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
                    source: TemplateCause::Engine("the output is not UTF-8".into()),
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
            source: TemplateCause::Engine(err.to_string()),
        })
    }
}

/// Renders manifest templates against one configuration.
///
/// Where the templates run is the renderer's [`Isolation`]: by default
/// ([`isolate::default_isolation`]) a render worker, a child process bounded by the OS in
/// memory ([`MAX_TEMPLATE_MEMORY`]) and time ([`MAX_TEMPLATE_TIME`]), started on the first
/// render and reused by the next ones; every template is also bounded by fuel
/// ([`TEMPLATE_FUEL`]) and output ([`MAX_TEMPLATE_OUTPUT`]).
pub struct Renderer {
    engine: Engine,
    isolation: Isolation,
    /// The render worker, once started (worker isolation only).
    session: Mutex<Option<Session>>,
}

impl std::fmt::Debug for Renderer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The context holds secrets: never print it.
        f.debug_struct("Renderer")
            .field("isolation", &self.isolation)
            .finish_non_exhaustive()
    }
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
        let json = serde_json::json!({
            "config": config,
            "bundle": bundle,
            "release": release,
        });
        Self {
            engine: Engine::new(json),
            isolation: isolate::default_isolation(),
            session: Mutex::new(None),
        }
    }

    /// The same renderer, its templates run as `isolation` says instead of the default.
    pub fn with_isolation(mut self, isolation: Isolation) -> Self {
        self.isolation = isolation;
        self.session = Mutex::new(None);
        self
    }

    /// Adds `platform` (the resolved platform needs, see [`crate::platform::resolve`]) to what
    /// templates see.
    pub fn with_platform(mut self, platform: serde_json::Value) -> Self {
        let mut json = self.engine.json.take();
        json["platform"] = platform;
        self.engine.set_json(json);
        self.session = Mutex::new(None);
        self
    }

    /// Adds `license` to what templates see (`license.customer`, `license.entitlements.*`).
    pub fn with_license(mut self, license: serde_json::Value) -> Self {
        let mut json = self.engine.json.take();
        if let Some(map) = json.as_object_mut() {
            map.insert("license".into(), license);
        }
        self.engine.set_json(json);
        self.session = Mutex::new(None);
        self
    }

    /// Renders one template; `file` names it in errors. Bounded: at most [`TEMPLATE_FUEL`]
    /// instructions and [`MAX_TEMPLATE_OUTPUT`] bytes of output, and, on a render worker, the
    /// worker's memory and time bounds.
    pub fn render(&self, file: &str, source: &str) -> Result<String, TemplateError> {
        match &self.isolation {
            Isolation::InProcess => self.engine.render(file, source),
            Isolation::Worker(command) => {
                let mut session = self
                    .session
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                Session::render(&mut session, command, &self.engine, file, source)
            }
        }
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
        // A test harness is no render worker: the bounded path is tested through the worker
        // in `tests/bounded_worker.rs` and through the binaries.
        .with_isolation(Isolation::InProcess)
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
