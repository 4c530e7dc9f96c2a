//! Turning live values into configuration items: SaaS values become defaults, cloud-specific
//! values become required items (the SaaS value is only recorded for review), and Secret data
//! becomes `secret` items (never copied). Each parameterized value is replaced by a token that
//! `output` turns into a template expression.

use std::collections::BTreeSet;

use airlift_bundle::schema::config::{
    Charset, ConfigGroup, ConfigItem, ConfigType, Generate, Validation,
};
use airlift_bundle::schema::validate::is_config_name;
use base64::Engine as _;
use serde::Serialize;
use serde_json::Value;

/// The annotation that turns SaaS-value parameters off for one object (`"false"`).
pub const PARAM_ANNOTATION: &str = "airlift.dev/param";

/// Annotations whose values are cloud-specific: prefixes.
const CLOUD_ANNOTATION_PREFIXES: &[&str] = &[
    "service.beta.kubernetes.io/",
    "service.kubernetes.io/",
    "cloud.google.com/",
    "networking.gke.io/",
    "alb.ingress.kubernetes.io/",
    "kubernetes.io/ingress.class",
    "eks.amazonaws.com/role-arn",
    "iam.gke.io/gcp-service-account",
    "azure.workload.identity/client-id",
];

/// Node label keys that name a provider's machines or places.
const CLOUD_NODE_LABEL_PREFIXES: &[&str] = &[
    "eks.amazonaws.com/",
    "cloud.google.com/",
    "kubernetes.azure.com/",
    "karpenter.sh/",
    "node.kubernetes.io/instance-type",
    "beta.kubernetes.io/instance-type",
    "topology.kubernetes.io/zone",
    "topology.kubernetes.io/region",
    "failure-domain.beta.kubernetes.io/",
];

/// Why a value became a parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ParamKind {
    /// A SaaS setting: the live value is the default.
    Saas,
    /// A cloud-specific value: required, the SaaS value recorded for review only.
    Cloud,
    /// Secret data: never copied.
    Secret,
}

/// One parameterized value, for the report.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Param {
    /// `group.item`.
    pub key: String,
    /// Why.
    pub kind: ParamKind,
    /// The object, `Kind namespace/name`.
    pub object: String,
    /// The field, e.g. `spec.replicas` or `metadata.annotations[eks.amazonaws.com/role-arn]`.
    pub field: String,
    /// The SaaS value as text, for SaaS and cloud values; never for secrets.
    pub saas_value: Option<String>,
    /// For secrets: `generated` or `required`.
    pub secret_mode: Option<String>,
}

/// The parameters of a whole snapshot, and the template text of each token.
#[derive(Debug, Default)]
pub struct Params {
    groups: Vec<ConfigGroup>,
    /// Every parameter, in the order found.
    pub list: Vec<Param>,
    exprs: Vec<String>,
    names: BTreeSet<String>,
}

/// The text a token is written as inside a manifest.
pub fn token(n: usize) -> String {
    format!("__airlift_token_{n}__")
}

impl Params {
    /// The template text token `n` stands for.
    pub fn expr(&self, n: usize) -> Option<&str> {
        self.exprs.get(n).map(String::as_str)
    }

    /// The config groups, in the order their objects were seen.
    pub fn groups(&self) -> Vec<ConfigGroup> {
        self.groups
            .iter()
            .filter(|g| !g.items.is_empty())
            .cloned()
            .collect()
    }

    /// A token that renders `text` literally (for strings that look like template syntax).
    pub fn literal(&mut self, text: &str) -> Value {
        let json = serde_json::to_string(text).unwrap_or_else(|_| "\"\"".into());
        self.push_expr(format!("{{{{ {json} | tojson }}}}"))
    }

    /// A token for a raw template expression (such as `{{ release.namespace | tojson }}`).
    pub fn literal_expr(&mut self, expr: &str) -> Value {
        self.push_expr(expr.to_string())
    }

    /// How many tokens exist so far.
    pub fn issued(&self) -> usize {
        self.exprs.len()
    }

    fn push_expr(&mut self, expr: String) -> Value {
        self.exprs.push(expr);
        Value::String(token(self.exprs.len() - 1))
    }

    fn group_name(&mut self, wanted: &str, title: &str) -> String {
        let base = config_name(wanted);
        if let Some(g) = self.groups.iter().find(|g| g.name == base) {
            return g.name.clone();
        }
        self.groups.push(ConfigGroup {
            name: base.clone(),
            title: Some(title.to_string()),
            description: None,
            items: Vec::new(),
        });
        base
    }

    /// Adds an item to `group` and returns the token that replaces the value.
    fn add(&mut self, group: &str, wanted: &str, item: ConfigItem, param: Param) -> Value {
        let mut name = config_name(wanted);
        let mut n = 2;
        while self.names.contains(&format!("{group}.{name}")) {
            let suffix = format!("_{n}");
            name = format!("{}{suffix}", &name[..name.len().min(63 - suffix.len())]);
            n += 1;
        }
        let key = format!("{group}.{name}");
        self.names.insert(key.clone());
        let expr = match item.kind {
            ConfigType::Int | ConfigType::Bool => format!("{{{{ config.{key} }}}}"),
            _ => format!("{{{{ config.{key} | tojson }}}}"),
        };
        if let Some(g) = self.groups.iter_mut().find(|g| g.name == group) {
            g.items.push(ConfigItem { name, ..item });
        }
        self.list.push(Param { key, ..param });
        self.push_expr(expr)
    }
}

/// A config name from any text: lowercase, `_` for anything else, starting with a letter, at
/// most 63 characters.
pub fn config_name(s: &str) -> String {
    let mut out: String = s
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect();
    while out.contains("__") {
        out = out.replace("__", "_");
    }
    let mut out = out.trim_matches('_').to_string();
    if !out.starts_with(|c: char| c.is_ascii_lowercase()) {
        out = format!("x_{out}");
    }
    out.truncate(63);
    let out = out.trim_end_matches('_').to_string();
    debug_assert!(is_config_name(&out));
    out
}

fn describe(obj: &Value) -> String {
    match obj.pointer("/metadata/namespace").and_then(Value::as_str) {
        Some(ns) => format!(
            "{} {ns}/{}",
            obj["kind"].as_str().unwrap_or_default(),
            obj["metadata"]["name"].as_str().unwrap_or_default()
        ),
        None => format!(
            "{} {}",
            obj["kind"].as_str().unwrap_or_default(),
            obj["metadata"]["name"].as_str().unwrap_or_default()
        ),
    }
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn item(kind: ConfigType, description: String, default: Option<Value>) -> ConfigItem {
    ConfigItem {
        name: String::new(),
        required: default.is_none(),
        kind,
        description,
        default,
        validation: Validation::default(),
        generate: None,
    }
}

fn param(object: &str, field: String, kind: ParamKind, saas: Option<String>) -> Param {
    Param {
        key: String::new(),
        kind,
        object: object.to_string(),
        field,
        saas_value: saas,
        secret_mode: None,
    }
}

/// Parameterizes one object in place. `saas` is false when the object carries
/// `airlift.dev/param: "false"`: then only cloud bits and secrets become items.
pub fn parameterize(obj: &mut Value, params: &mut Params, saas: bool) {
    let kind = obj["kind"].as_str().unwrap_or_default().to_string();
    let name = obj["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let object = describe(obj);
    let group = params.group_name(&format!("{kind}_{name}"), &format!("{kind} {name}"));
    cloud_annotations(obj, params, &group, &object);
    match kind.as_str() {
        "Secret" => secret_data(obj, params, &object),
        "ConfigMap" if saas => {
            if let Some(data) = obj.get_mut("data").and_then(Value::as_object_mut) {
                for (k, v) in data.iter_mut() {
                    let it = item(
                        ConfigType::String,
                        format!("`{k}` in ConfigMap {name}."),
                        Some(v.clone()),
                    );
                    let p = param(
                        &object,
                        format!("data[{k}]"),
                        ParamKind::Saas,
                        Some(text(v)),
                    );
                    *v = params.add(&group, k, it, p);
                }
            }
        }
        "PersistentVolumeClaim" => {
            if let Some(sc) = obj.pointer_mut("/spec/storageClassName") {
                *sc = cloud(
                    params,
                    &group,
                    "storage_class",
                    &object,
                    "spec.storageClassName",
                    sc,
                );
            }
        }
        "Ingress" => {
            if let Some(ic) = obj.pointer_mut("/spec/ingressClassName") {
                *ic = cloud(
                    params,
                    &group,
                    "ingress_class",
                    &object,
                    "spec.ingressClassName",
                    ic,
                );
            }
        }
        _ => {}
    }
    if saas {
        if let Some(r) = obj.pointer_mut("/spec/replicas") {
            if r.is_i64() {
                let it = item(
                    ConfigType::Int,
                    format!("Replicas of {kind} {name}."),
                    Some(r.clone()),
                );
                let p = param(
                    &object,
                    "spec.replicas".into(),
                    ParamKind::Saas,
                    Some(text(r)),
                );
                *r = params.add(&group, "replicas", it, p);
            }
        }
    }
    if let Some(list) = obj
        .pointer_mut("/spec/volumeClaimTemplates")
        .and_then(Value::as_array_mut)
    {
        for t in list {
            let tname = t["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            if let Some(sc) = t.pointer_mut("/spec/storageClassName") {
                *sc = cloud(
                    params,
                    &group,
                    &format!("{tname}_storage_class"),
                    &object,
                    &format!("spec.volumeClaimTemplates[{tname}].spec.storageClassName"),
                    sc,
                );
            }
        }
    }
    for (ptr, field) in pod_spec_pointers(&kind) {
        if let Some(spec) = obj.pointer_mut(ptr) {
            pod_spec(spec, params, &group, &object, field, saas);
        }
    }
}

/// Where a kind keeps its pod spec.
pub fn pod_spec_pointers(kind: &str) -> Vec<(&'static str, &'static str)> {
    match kind {
        "Pod" => vec![("/spec", "spec")],
        "CronJob" => vec![(
            "/spec/jobTemplate/spec/template/spec",
            "spec.jobTemplate.spec.template.spec",
        )],
        "Deployment" | "StatefulSet" | "DaemonSet" | "Job" | "ReplicaSet" => {
            vec![("/spec/template/spec", "spec.template.spec")]
        }
        _ => Vec::new(),
    }
}

fn cloud(
    params: &mut Params,
    group: &str,
    wanted: &str,
    object: &str,
    field: &str,
    v: &Value,
) -> Value {
    let list = v.is_array();
    let it = item(
        if list {
            ConfigType::List
        } else {
            ConfigType::String
        },
        format!(
            "Cloud-specific `{field}` of {object}: set it for this site's cloud (the SaaS uses {}).",
            text(v)
        ),
        None,
    );
    let p = param(object, field.to_string(), ParamKind::Cloud, Some(text(v)));
    params.add(group, wanted, it, p)
}

fn is_cloud_annotation(k: &str) -> bool {
    CLOUD_ANNOTATION_PREFIXES.iter().any(|p| k.starts_with(p))
}

fn is_cloud_node_label(k: &str) -> bool {
    CLOUD_NODE_LABEL_PREFIXES.iter().any(|p| k.starts_with(p))
}

fn cloud_annotations(obj: &mut Value, params: &mut Params, group: &str, object: &str) {
    let Some(ann) = obj
        .pointer_mut("/metadata/annotations")
        .and_then(Value::as_object_mut)
    else {
        return;
    };
    for (k, v) in ann.iter_mut() {
        if is_cloud_annotation(k) {
            let short = k.rsplit('/').next().unwrap_or(k);
            *v = cloud(
                params,
                group,
                short,
                object,
                &format!("metadata.annotations[{k}]"),
                v,
            );
        }
    }
}

fn pod_spec(
    spec: &mut Value,
    params: &mut Params,
    group: &str,
    object: &str,
    at: &str,
    saas: bool,
) {
    if let Some(sel) = spec.get_mut("nodeSelector").and_then(Value::as_object_mut) {
        for (k, v) in sel.iter_mut() {
            if is_cloud_node_label(k) {
                let short = k.rsplit('/').next().unwrap_or(k);
                *v = cloud(
                    params,
                    group,
                    &format!("node_{short}"),
                    object,
                    &format!("{at}.nodeSelector[{k}]"),
                    v,
                );
            }
        }
    }
    if let Some(terms) = spec
        .pointer_mut("/affinity/nodeAffinity/requiredDuringSchedulingIgnoredDuringExecution/nodeSelectorTerms")
        .and_then(Value::as_array_mut)
    {
        for term in terms {
            for e in term
                .get_mut("matchExpressions")
                .and_then(Value::as_array_mut)
                .into_iter()
                .flatten()
            {
                let key = e["key"].as_str().unwrap_or_default().to_string();
                if !is_cloud_node_label(&key) {
                    continue;
                }
                if let Some(values) = e.get_mut("values") {
                    let short = key.rsplit('/').next().unwrap_or(&key).to_string();
                    *values = cloud(
                        params,
                        group,
                        &format!("affinity_{short}"),
                        object,
                        &format!("{at}.affinity.nodeAffinity[{key}]"),
                        values,
                    );
                }
            }
        }
    }
    if !saas {
        return;
    }
    for list in ["initContainers", "containers"] {
        for c in spec
            .get_mut(list)
            .and_then(Value::as_array_mut)
            .into_iter()
            .flatten()
        {
            let cname = c["name"].as_str().unwrap_or_default().to_string();
            for (section, short) in [("requests", "request"), ("limits", "limit")] {
                if let Some(m) = c
                    .pointer_mut(&format!("/resources/{section}"))
                    .and_then(Value::as_object_mut)
                {
                    for (res, v) in m.iter_mut() {
                        let it = item(
                            ConfigType::String,
                            format!("The {res} {short} of container {cname}."),
                            Some(Value::String(text(v))),
                        );
                        let p = param(
                            object,
                            format!("{at}.{list}[{cname}].resources.{section}.{res}"),
                            ParamKind::Saas,
                            Some(text(v)),
                        );
                        *v = params.add(group, &format!("{cname}_{res}_{short}"), it, p);
                    }
                }
            }
            for e in c
                .get_mut("env")
                .and_then(Value::as_array_mut)
                .into_iter()
                .flatten()
            {
                let var = e["name"].as_str().unwrap_or_default().to_string();
                if let Some(v) = e.get_mut("value") {
                    let it = item(
                        ConfigType::String,
                        format!("`{var}` of container {cname}."),
                        Some(Value::String(text(v))),
                    );
                    let p = param(
                        object,
                        format!("{at}.{list}[{cname}].env[{var}]"),
                        ParamKind::Saas,
                        Some(text(v)),
                    );
                    *v = params.add(group, &format!("{cname}_{var}"), it, p);
                }
            }
        }
    }
}

/// Replaces a Secret's `data` and `stringData` by `stringData` tokens of `secret` items in the
/// `secrets` group. The decoded value is looked at (to decide whether it can be generated) and
/// then dropped.
fn secret_data(obj: &mut Value, params: &mut Params, object: &str) {
    let name = obj["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let group = params.group_name("secrets", "Secrets");
    let mut keys: Vec<(String, Option<Vec<u8>>)> = Vec::new();
    if let Some(m) = obj.get("data").and_then(Value::as_object) {
        for (k, v) in m {
            let bytes = v
                .as_str()
                .and_then(|s| base64::engine::general_purpose::STANDARD.decode(s).ok());
            keys.push((k.clone(), bytes));
        }
    }
    if let Some(m) = obj.get("stringData").and_then(Value::as_object) {
        for (k, v) in m {
            keys.push((k.clone(), v.as_str().map(|s| s.as_bytes().to_vec())));
        }
    }
    keys.sort_by(|a, b| a.0.cmp(&b.0));
    keys.dedup_by(|a, b| a.0 == b.0);
    let mut string_data = serde_json::Map::new();
    for (k, bytes) in keys {
        let generate = bytes.as_deref().and_then(looks_generated);
        let mode = if generate.is_some() {
            "generated"
        } else {
            "required"
        };
        let it = ConfigItem {
            name: String::new(),
            kind: ConfigType::Secret,
            description: format!(
                "`{k}` of Secret {name} ({}; the SaaS value is never copied).",
                if generate.is_some() {
                    "generated at install"
                } else {
                    "the site must provide it"
                }
            ),
            default: None,
            required: generate.is_none(),
            validation: Validation::default(),
            generate,
        };
        let mut p = param(object, format!("data[{k}]"), ParamKind::Secret, None);
        p.secret_mode = Some(mode.into());
        let tok = params.add(&group, &format!("{name}_{k}"), it, p);
        string_data.insert(k, tok);
    }
    if let Some(o) = obj.as_object_mut() {
        o.remove("data");
        o.remove("stringData");
        if !string_data.is_empty() {
            o.insert("stringData".into(), Value::Object(string_data));
        }
    }
}

/// A generator for a value that looks random: 16 to 256 characters, all letters and digits with
/// both present (or all lowercase hex), and no character making up more than a quarter of it.
pub fn looks_generated(bytes: &[u8]) -> Option<Generate> {
    let len = bytes.len();
    if !(16..=256).contains(&len) {
        return None;
    }
    let mut counts = [0usize; 256];
    for b in bytes {
        counts[usize::from(*b)] += 1;
    }
    if counts.iter().any(|c| *c * 4 > len) {
        return None;
    }
    let hex = bytes
        .iter()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(b));
    if hex {
        return Some(Generate {
            length: len,
            charset: Charset::Hex,
        });
    }
    let alnum = bytes.iter().all(u8::is_ascii_alphanumeric)
        && bytes.iter().any(u8::is_ascii_digit)
        && bytes.iter().any(u8::is_ascii_alphabetic);
    alnum.then_some(Generate {
        length: len,
        charset: Charset::Alphanumeric,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn config_names_are_valid_whatever_the_input() {
        for s in ["Deployment_web-api", "9lives", "ÄÖ--x", "", "a.b/c"] {
            assert!(is_config_name(&config_name(s)), "{s}");
        }
        assert_eq!(config_name("Deployment_web-api"), "deployment_web_api");
    }

    #[test]
    fn random_values_are_generated_words_are_required() {
        assert_eq!(
            looks_generated(b"q8ZrT2mXv9LkP4sN"),
            Some(Generate {
                length: 16,
                charset: Charset::Alphanumeric
            })
        );
        assert_eq!(
            looks_generated(b"0f3a9c2b7e1d4f5a6b8c").map(|g| g.charset),
            Some(Charset::Hex)
        );
        assert_eq!(looks_generated(b"correct horse battery staple"), None);
        assert_eq!(looks_generated(b"short1"), None);
        assert_eq!(looks_generated(b"aaaaaaaaaaaaaaaaaaaa1"), None);
    }

    #[test]
    fn secret_values_leave_the_object() {
        let mut s = json!({"apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "db", "namespace": "saas"},
            "data": {"password": "cGxhbnRlZC1zZWNyZXQtdmFsdWU="}, "stringData": {"token": "x"}});
        let mut p = Params::default();
        parameterize(&mut s, &mut p, true);
        let text = s.to_string();
        assert!(!text.contains("cGxhbnRlZC1zZWNyZXQtdmFsdWU="));
        assert!(s.get("data").is_none());
        assert_eq!(s["stringData"]["password"], token(0));
        assert_eq!(p.list[0].key, "secrets.db_password");
        assert_eq!(p.list[0].saas_value, None);
        assert_eq!(p.groups()[0].items[0].kind, ConfigType::Secret);
        assert!(p.groups()[0].items[0].required);
    }

    #[test]
    fn cloud_bits_are_required_and_saas_values_are_defaults() {
        let mut d = json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "saas"},
            "spec": {"replicas": 3, "template": {"spec": {
                "nodeSelector": {"node.kubernetes.io/instance-type": "m5.large", "tier": "web"},
                "containers": [{"name": "web", "image": "x",
                    "env": [{"name": "LOG_LEVEL", "value": "info"}],
                    "resources": {"requests": {"cpu": "250m"}}}]}}}});
        let mut p = Params::default();
        parameterize(&mut d, &mut p, true);
        let items = &p.groups()[0].items;
        let find = |n: &str| items.iter().find(|i| i.name == n).expect(n);
        assert_eq!(find("replicas").default, Some(json!(3)));
        assert_eq!(find("web_cpu_request").default, Some(json!("250m")));
        assert_eq!(find("web_log_level").default, Some(json!("info")));
        let it = find("node_instance_type");
        assert!(it.required && it.default.is_none());
        assert_eq!(d["spec"]["template"]["spec"]["nodeSelector"]["tier"], "web");

        let mut off = d.clone();
        off["spec"]["replicas"] = json!(2);
        let mut q = Params::default();
        parameterize(&mut off, &mut q, false);
        assert!(q.list.iter().all(|p| p.kind != ParamKind::Saas));
        assert_eq!(off["spec"]["replicas"], 2);
    }
}
