//! The JSON Schema of the fleet file, generated from the types so editors can check it as it is
//! written. The committed copy lives at `docs/schema/fleet.schema.json`; a test fails when it is
//! stale.

use crate::model::Fleet;

/// The JSON Schema of [`Fleet`], pretty-printed, with a trailing newline.
pub fn fleet_schema_json() -> String {
    airlift_bundle::schema::json_schema::schema_json::<Fleet>()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Regenerate with `AIRLIFT_UPDATE_SCHEMA=1 cargo test -p airlift-fleet committed_schema`.
    #[test]
    fn committed_schema_is_current() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../docs/schema/fleet.schema.json");
        let fresh = fleet_schema_json();
        if std::env::var_os("AIRLIFT_UPDATE_SCHEMA").is_some() {
            std::fs::write(&path, &fresh).expect("write the schema");
        }
        let committed = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            committed == fresh,
            "{} is stale or missing: run `AIRLIFT_UPDATE_SCHEMA=1 cargo test -p airlift-fleet committed_schema` and commit it",
            path.display()
        );
    }

    #[test]
    fn schema_names_the_fleet_fields() {
        let text = fleet_schema_json();
        for field in [
            "clusters",
            "stages",
            "maxParallel",
            "bakeTime",
            "onFailure",
            "passwordEnv",
        ] {
            assert!(text.contains(field), "{field} missing");
        }
        assert!(
            !text.contains("\"password\""),
            "the schema must offer no password field"
        );
    }
}
