//! Writing the definition folder: manifests as templates, `airlift.yaml` and `SNAPSHOT.md`.
//! Everything is sorted and carries no time, so an unchanged SaaS gives the same bytes.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use serde_json::{Map, Value};

use crate::error::SnapshotError;
use crate::params::{ParamKind, Params};
use crate::Report;

/// The prefix of every token; a live string containing it is written as a literal.
pub const TOKEN_PREFIX: &str = "__airlift_token_";

/// The report file's name.
pub const REPORT_FILE: &str = "SNAPSHOT.md";

/// Rebuilds every map with its keys sorted, whatever order the JSON map keeps.
pub fn sorted(v: Value) -> Value {
    match v {
        Value::Object(m) => {
            let mut pairs: Vec<(String, Value)> = m.into_iter().collect();
            pairs.sort_by(|a, b| a.0.cmp(&b.0));
            let mut out = Map::new();
            for (k, v) in pairs {
                out.insert(k, sorted(v));
            }
            Value::Object(out)
        }
        Value::Array(a) => Value::Array(a.into_iter().map(sorted).collect()),
        other => other,
    }
}

/// Replaces every string that the template engine would read as syntax (or that looks like one
/// of our tokens without being one) by a token that renders it literally.
pub fn escape_strings(v: &mut Value, params: &mut Params, issued: usize) {
    match v {
        Value::Object(m) => m
            .values_mut()
            .for_each(|c| escape_strings(c, params, issued)),
        Value::Array(a) => a.iter_mut().for_each(|c| escape_strings(c, params, issued)),
        Value::String(s) => {
            let ours = s
                .strip_prefix(TOKEN_PREFIX)
                .and_then(|r| r.strip_suffix("__"))
                .and_then(|n| n.parse::<usize>().ok())
                .is_some_and(|n| n < issued && s == &crate::params::token(n));
            let risky = s.contains("{{")
                || s.contains("{%")
                || s.contains("{#")
                || s.contains("}}")
                || s.contains("%}")
                || s.contains(TOKEN_PREFIX);
            if risky && !ours {
                *v = params.literal(s);
            }
        }
        _ => {}
    }
}

/// The object as a YAML template: tokens (bare or quoted) become their expressions, in one pass.
pub fn template(obj: &Value, params: &Params) -> String {
    let yaml = serde_yaml::to_string(obj).unwrap_or_default();
    let mut out = String::with_capacity(yaml.len());
    let mut rest = yaml.as_str();
    while let Some(at) = rest.find(TOKEN_PREFIX) {
        let after = &rest[at + TOKEN_PREFIX.len()..];
        let digits: String = after.chars().take_while(char::is_ascii_digit).collect();
        let expr = digits
            .parse::<usize>()
            .ok()
            .filter(|_| after[digits.len()..].starts_with("__"))
            .and_then(|n| params.expr(n));
        let Some(expr) = expr else {
            out.push_str(&rest[..at + TOKEN_PREFIX.len()]);
            rest = after;
            continue;
        };
        let end = at + TOKEN_PREFIX.len() + digits.len() + 2;
        let (mut start, mut stop) = (at, end);
        let before = rest[..at].chars().last();
        if matches!(before, Some('\'' | '"')) && rest[end..].starts_with(before.unwrap_or(' ')) {
            start -= 1;
            stop += 1;
        }
        out.push_str(&rest[..start]);
        out.push_str(expr);
        rest = &rest[stop..];
    }
    out.push_str(rest);
    out
}

/// A file name part from an object name.
pub fn file_part(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect()
}

/// `SNAPSHOT.md`.
pub fn report_markdown(r: &Report) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "# Snapshot of {}\n", r.source);
    let _ = writeln!(
        s,
        "Written by `airlift-pack snapshot`. Rerunning it on an unchanged SaaS gives the same \
         files byte for byte; review the diff in Git. Rules: docs/snapshot.md.\n"
    );
    let _ = writeln!(s, "## Taken ({})\n", r.taken.len());
    let _ = writeln!(s, "| object | file |\n| --- | --- |");
    for t in &r.taken {
        let _ = writeln!(s, "| {} | `{}` |", md(&t.object), t.file);
    }
    let total: usize = r.skipped.values().map(Vec::len).sum();
    let _ = writeln!(s, "\n## Skipped ({total})\n");
    let _ = writeln!(s, "| reason | count | objects |\n| --- | --- | --- |");
    for (why, list) in &r.skipped {
        let shown: Vec<String> = list.iter().take(20).map(|o| md(o)).collect();
        let more = if list.len() > 20 {
            format!(", and {} more", list.len() - 20)
        } else {
            String::new()
        };
        let _ = writeln!(
            s,
            "| {} | {} | {}{more} |",
            md(why),
            list.len(),
            shown.join(", ")
        );
    }
    let _ = writeln!(s, "\n## Parameterized ({})\n", r.params.len());
    let _ = writeln!(
        s,
        "| config key | why | object | field | SaaS value |\n| --- | --- | --- | --- | --- |"
    );
    for p in &r.params {
        let value = match p.kind {
            ParamKind::Secret => format!(
                "(never copied; {})",
                p.secret_mode.as_deref().unwrap_or("required")
            ),
            ParamKind::Cloud => format!(
                "`{}` (not the default: review)",
                md(p.saas_value.as_deref().unwrap_or(""))
            ),
            ParamKind::Saas => format!("`{}`", md(p.saas_value.as_deref().unwrap_or(""))),
        };
        let why = match p.kind {
            ParamKind::Saas => "SaaS value",
            ParamKind::Cloud => "cloud-specific",
            ParamKind::Secret => "secret",
        };
        let _ = writeln!(
            s,
            "| `{}` | {why} | {} | `{}` | {value} |",
            p.key,
            md(&p.object),
            md(&p.field)
        );
    }
    let _ = writeln!(s, "\n## Images ({})\n", r.images.len());
    let _ = writeln!(
        s,
        "| as written on the SaaS | in the bundle |\n| --- | --- |"
    );
    for (from, to) in &r.images {
        let _ = writeln!(s, "| `{}` | `{}` |", md(from), md(to));
    }
    let _ = writeln!(s, "\n## Needs review ({})\n", r.review.len());
    for line in &r.review {
        let _ = writeln!(s, "- {}", md(line));
    }
    s
}

/// Escapes text for a Markdown table cell and strips control characters.
fn md(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect::<String>()
        .replace('|', "\\|")
        .replace('`', "'")
}

/// Writes `files` under `dir`, replacing stale manifests of an earlier snapshot and nothing else.
pub fn write_folder(dir: &Path, files: &BTreeMap<String, String>) -> Result<(), SnapshotError> {
    let werr = |path: &Path| {
        let path = path.to_path_buf();
        move |source| SnapshotError::Write { path, source }
    };
    if dir.exists() {
        let mut entries = fs_err::read_dir(dir).map_err(werr(dir))?;
        let empty = entries.next().is_none();
        if !empty && !dir.join(REPORT_FILE).exists() {
            return Err(SnapshotError::NotASnapshot {
                path: dir.to_path_buf(),
            });
        }
    }
    let manifests = dir.join("manifests");
    if manifests.exists() {
        fs_err::remove_dir_all(&manifests).map_err(werr(&manifests))?;
    }
    for (rel, text) in files {
        let path = dir.join(rel);
        if let Some(parent) = path.parent() {
            fs_err::create_dir_all(parent).map_err(werr(parent))?;
        }
        fs_err::write(&path, text).map_err(werr(&path))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn tokens_become_expressions_and_template_syntax_stays_literal() {
        let mut p = Params::default();
        let mut obj = json!({"kind": "ConfigMap", "metadata": {"name": "c"},
            "data": {"a": "{{ 7*7 }}", "b": "__airlift_token_0__", "c": "plain"}});
        escape_strings(&mut obj, &mut p, 0);
        let text = template(&sorted(obj), &p);
        assert!(!text.contains(TOKEN_PREFIX) || text.contains("\"__airlift_token_0__\" | tojson"));
        assert!(text.contains("a: {{ \"{{ 7*7 }}\" | tojson }}"), "{text}");
        assert!(text.contains("c: plain"));
    }
}
