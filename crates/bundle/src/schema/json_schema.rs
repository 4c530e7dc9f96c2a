//! The JSON Schema of the bundle definition, generated from the types so editors can check
//! `airlift.yaml` as it is written. The committed copy lives at
//! `docs/schema/bundle-definition.schema.json`; a test fails when it is stale.

use super::definition::BundleDefinition;

/// The JSON Schema of [`BundleDefinition`], pretty-printed, with a trailing newline.
pub fn definition_schema_json() -> String {
    schema_json::<BundleDefinition>()
}

/// The JSON Schema of `T`, pretty-printed, with a trailing newline: the form of every schema
/// committed under `docs/schema/`.
pub fn schema_json<T: schemars::JsonSchema>() -> String {
    let schema = schemars::schema_for!(T);
    let mut text =
        serde_json::to_string_pretty(&schema).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"));
    text.push('\n');
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Regenerate with `AIRLIFT_UPDATE_SCHEMA=1 cargo test -p airlift-bundle committed_schema`.
    #[test]
    fn committed_schema_is_current() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../docs/schema/bundle-definition.schema.json");
        let fresh = definition_schema_json();
        if std::env::var_os("AIRLIFT_UPDATE_SCHEMA").is_some() {
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, &fresh).unwrap();
        }
        let committed = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            committed == fresh,
            "{} is stale or missing: run `AIRLIFT_UPDATE_SCHEMA=1 cargo test -p airlift-bundle committed_schema` and commit it",
            path.display()
        );
    }

    #[test]
    fn schema_names_the_definition_fields() {
        let text = definition_schema_json();
        for field in [
            "apiVersion",
            "requirements",
            "components",
            "generate",
            "platforms",
        ] {
            assert!(text.contains(field), "{field} missing");
        }
    }
}
