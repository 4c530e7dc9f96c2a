use super::*;
use airlift_bundle::schema::config::ConfigSchema;
use serde_json::json;

fn schema() -> ConfigSchema {
    serde_yaml::from_str(
        r#"
groups:
  - name: web
    items:
      - {name: replicas, type: int, description: Pods, default: 2, validation: {min: 1, max: 10}}
      - {name: debug, type: bool, description: Debug logs, default: false}
      - {name: host, type: hostname, description: Public host, default: app.example.com}
      - {name: tier, type: enum, description: Tier, default: gold, validation: {enum: [gold, silver]}}
      - {name: origins, type: list, description: CORS, default: ["https://a.example"], validation: {pattern: "https://.*"}}
      - {name: title, type: string, description: Title, default: Acme, validation: {maxLength: 10}}
  - name: db
    items:
      - {name: password, type: secret, description: DB password, generate: {length: 20}}
      - {name: license, type: secret, description: License key, required: true, validation: {minLength: 8}}
      - {name: url, type: string, description: External DB, required: true}
"#,
    )
    .unwrap()
}

fn none() -> BTreeMap<String, Secret> {
    BTreeMap::new()
}

#[test]
fn precedence_is_defaults_then_files_then_set() {
    let s = schema();
    let mut b = ConfigBuilder::new(&s).unwrap();
    b.apply_values_yaml(
        "a.yaml",
        "web: {replicas: 3, title: First}\ndb: {url: pg://x, license: abcdefgh}",
    )
    .unwrap();
    b.apply_values_yaml("b.yaml", "web: {replicas: 4}").unwrap();
    b.apply_set("web.debug=true").unwrap();
    b.apply_set("web.origins=https://x.example, https://y.example")
        .unwrap();
    let c = b.finish(&none()).unwrap();
    assert_eq!(c.get("web.replicas"), Some(&json!(4)));
    assert_eq!(c.get("web.title"), Some(&json!("First")));
    assert_eq!(c.get("web.debug"), Some(&json!(true)));
    assert_eq!(
        c.get("web.origins"),
        Some(&json!(["https://x.example", "https://y.example"]))
    );
    assert_eq!(c.get("web.tier"), Some(&json!("gold")));
    let ctx = c.template_context();
    assert_eq!(ctx["web"]["replicas"], json!(4));
    assert_eq!(ctx["db"]["url"], json!("pg://x"));
}

#[test]
fn one_error_lists_every_missing_key() {
    let s = schema();
    let b = ConfigBuilder::new(&s).unwrap();
    assert_eq!(
        b.missing().iter().map(|(k, _)| *k).collect::<Vec<_>>(),
        ["db.license", "db.url"]
    );
    let err = b.finish(&none()).unwrap_err();
    match &err {
        ConfigError::Missing { keys } => assert_eq!(keys, &["db.license", "db.url"]),
        other => panic!("wrong error {other:?}"),
    }
    let text = err.to_string();
    assert!(text.contains("`db.license`, `db.url`"), "{text}");
}

#[test]
fn validation_errors_name_key_origin_and_rule_without_secrets() {
    let s = schema();
    let mut b = ConfigBuilder::new(&s).unwrap();
    b.apply_values_yaml(
        "prod.yaml",
        "web: {replicas: 11, host: Bad_Host, tier: bronze, origins: [ftp://x], title: Much too long}\ndb: {license: s3cr3t, url: 5}",
    )
    .unwrap();
    b.apply_set("web.debug=yes").unwrap();
    b.apply_set("web.nope=1").unwrap();
    let err = b.finish(&none()).unwrap_err();
    let text = err.to_string();
    for expected in [
        "`web.replicas` (from values file `prod.yaml`): 11 is above the maximum 10",
        "`web.host` (from values file `prod.yaml`): `Bad_Host` is not a lowercase DNS name",
        "`web.tier` (from values file `prod.yaml`): `bronze` is not one of the allowed values: gold, silver",
        "`web.origins` (from values file `prod.yaml`): `ftp://x` does not match the pattern `https://.*`",
        "`web.title` (from values file `prod.yaml`): has 13 characters, more than the maximum 10",
        "`db.license` (from values file `prod.yaml`): has 6 characters, fewer than the minimum 8",
        "`db.url` (from values file `prod.yaml`): expected a string, got a whole number; put the value in quotes",
        "`web.debug` (from --set): expected `true` or `false`, got `yes`",
        "`web.nope` (from --set): is not a configuration key of this bundle; group `web` has:",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in\n{text}");
    }
    assert!(!text.contains("s3cr3t"), "{text}");
}

#[test]
fn secret_pattern_failures_do_not_show_the_value() {
    let mut s = schema();
    s.groups[1].items[1].validation.pattern = Some("LIC-[0-9]+".into());
    let mut b = ConfigBuilder::new(&s).unwrap();
    b.apply_set("db.license=topsecretvalue").unwrap();
    b.apply_set("db.url=x").unwrap();
    let text = b.finish(&none()).unwrap_err().to_string();
    assert!(
        text.contains("the value does not match the pattern `LIC-[0-9]+`"),
        "{text}"
    );
    assert!(!text.contains("topsecretvalue"));
}

#[test]
fn malformed_set_is_rejected_without_echoing_the_value() {
    let s = schema();
    let mut b = ConfigBuilder::new(&s).unwrap();
    let e = b.apply_set("replicas").unwrap_err().to_string();
    assert!(
        e.contains("`--set replicas` must be `group.item=value`"),
        "{e}"
    );
    let e = b.apply_set("license=hunter2").unwrap_err().to_string();
    assert!(!e.contains("hunter2"), "{e}");
}

#[test]
fn generated_secrets_are_kept_across_upgrades() {
    let s = schema();
    let fill = |b: &mut ConfigBuilder| {
        b.apply_set("db.license=abcdefgh").unwrap();
        b.apply_set("db.url=pg://x").unwrap();
    };
    let mut b = ConfigBuilder::new(&s).unwrap();
    fill(&mut b);
    let first = b.finish(&none()).unwrap();
    assert_eq!(first.newly_generated(), ["db.password"]);
    let pw = first
        .get("db.password")
        .unwrap()
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(pw.len(), 20);
    let kept = first.generated_secrets();

    let mut b = ConfigBuilder::new(&s).unwrap();
    fill(&mut b);
    let second = b.finish(&kept).unwrap();
    assert!(second.newly_generated().is_empty());
    assert_eq!(
        second.get("db.password").unwrap().as_str(),
        Some(pw.as_str())
    );

    // A fresh install without the previous values generates a different one.
    let mut b = ConfigBuilder::new(&s).unwrap();
    fill(&mut b);
    let other = b.finish(&none()).unwrap();
    assert_ne!(
        other.get("db.password").unwrap().as_str(),
        Some(pw.as_str())
    );
}

#[test]
fn debug_display_diff_and_records_mask_secrets() {
    let s = schema();
    let mut b = ConfigBuilder::new(&s).unwrap();
    b.apply_set("db.license=LICENSE-VALUE-1").unwrap();
    b.apply_set("db.url=pg://x").unwrap();
    b.apply_set("web.replicas=5").unwrap();
    let c = b.finish(&none()).unwrap();
    let pw = c.get("db.password").unwrap().as_str().unwrap().to_string();
    for text in [
        format!("{c:?}"),
        c.to_string(),
        serde_json::to_string(&c.diff_from_saas()).unwrap(),
        serde_json::to_string(&c.redacted(&Secret::new("k"))).unwrap(),
    ] {
        assert!(!text.contains("LICENSE-VALUE-1"), "{text}");
        assert!(!text.contains(&pw), "{text}");
    }
    let rows = c.diff_from_saas();
    let row = |k: &str| rows.iter().find(|r| r.key == k).unwrap();
    assert!(row("web.replicas").differs);
    assert_eq!(row("web.replicas").saas_default.as_deref(), Some("2"));
    assert_eq!(row("web.replicas").value.as_deref(), Some("5"));
    assert!(!row("web.debug").differs);
    assert!(row("db.license").differs && row("db.license").secret);
    assert_eq!(row("db.license").value.as_deref(), Some(MASK));
    assert!(
        !row("db.password").differs,
        "a generated secret is not a customer change"
    );
    let key = Secret::new_fingerprint_key();
    assert_eq!(
        c.redacted(&key)["db.license"],
        json!(Secret::new("LICENSE-VALUE-1").keyed_fingerprint(&key))
    );
}

#[test]
fn null_in_a_values_file_removes_a_default() {
    let s = schema();
    let mut b = ConfigBuilder::new(&s).unwrap();
    b.apply_values_yaml(
        "v.yaml",
        "web: {title: null}\ndb: {url: x, license: abcdefgh}",
    )
    .unwrap();
    let c = b.finish(&none()).unwrap();
    assert_eq!(c.get("web.title"), None);
    assert_eq!(c.template_context()["web"]["title"], Value::Null);
    let row = c
        .diff_from_saas()
        .into_iter()
        .find(|r| r.key == "web.title")
        .unwrap();
    assert!(row.differs);
}

#[test]
fn prompt_answers_are_checked_at_once() {
    let s = schema();
    let mut b = ConfigBuilder::new(&s).unwrap();
    let p = b.answer("db.license", "short").unwrap_err();
    assert_eq!(p.key, "db.license");
    assert!(p.rule.contains("fewer than the minimum 8"));
    assert_eq!(
        b.missing().len(),
        2,
        "a rejected answer leaves the item missing"
    );
    b.answer("db.license", "long-enough").unwrap();
    b.answer("db.url", "pg://db").unwrap();
    assert!(b.missing().is_empty());
    b.finish(&none()).unwrap();
}

#[test]
fn bad_values_files_are_named() {
    let s = schema();
    let mut b = ConfigBuilder::new(&s).unwrap();
    let e = b.apply_values_yaml("v.yaml", "web: [1, 2").unwrap_err();
    assert!(e
        .to_string()
        .contains("values file `v.yaml` is not valid YAML"));
    let e = b.apply_values_yaml("v.yaml", "- a").unwrap_err();
    assert!(matches!(e, ConfigError::ValuesShape { .. }));
    let e = b
        .apply_values_file(Path::new("/nonexistent/values.yaml"))
        .unwrap_err();
    assert!(e.to_string().contains("/nonexistent/values.yaml"));
}

#[test]
fn endless_or_deeply_nested_values_files_are_refused_by_name() {
    let s = schema();
    let mut b = ConfigBuilder::new(&s).unwrap();
    let e = b.apply_values_file(Path::new("/dev/zero")).unwrap_err();
    assert!(
        matches!(
            &e,
            ConfigError::ValuesLimit {
                source: airlift_bundle::LimitError::TooLarge { .. },
                ..
            }
        ),
        "{e:?}"
    );
    let deep = format!("web: {}", "[".repeat(100_000));
    let e = b.apply_values_yaml("deep.yaml", &deep).unwrap_err();
    assert!(
        matches!(
            &e,
            ConfigError::ValuesLimit {
                source: airlift_bundle::LimitError::TooDeep { .. },
                ..
            }
        ),
        "{e:?}"
    );
}

#[test]
fn a_bad_schema_pattern_is_reported() {
    let mut s = schema();
    s.groups[0].items[5].validation.pattern = Some("(".into());
    let e = ConfigBuilder::new(&s).unwrap_err().to_string();
    assert!(
        e.contains("`web.title` has an invalid validation pattern `(`"),
        "{e}"
    );
}

#[test]
fn hostnames() {
    assert!(is_hostname("a.example.com"));
    assert!(is_hostname("localhost"));
    for bad in ["", "A.com", "a..b", "-a.com", "a_b.com", "a.com."] {
        assert!(!is_hostname(bad), "{bad}");
    }
}
