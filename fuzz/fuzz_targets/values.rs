//! Values files (`--values`) on arbitrary text, against a schema with every item type.
#![no_main]

use std::sync::OnceLock;

use airlift_bundle::schema::config::ConfigSchema;
use airlift_render::ConfigBuilder;
use libfuzzer_sys::fuzz_target;

fn schema() -> &'static ConfigSchema {
    static SCHEMA: OnceLock<ConfigSchema> = OnceLock::new();
    SCHEMA.get_or_init(|| {
        serde_yaml::from_str(include_str!("../seeds/values-schema.yaml"))
            .unwrap_or_else(|e| panic!("the fuzz schema is valid: {e}"))
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(mut builder) = ConfigBuilder::new(schema()) else {
        return;
    };
    if builder.apply_values_yaml("values.yaml", text).is_ok() {
        let _ = builder.finish(&Default::default());
    }
});
