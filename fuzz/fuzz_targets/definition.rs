//! The bundle definition parser (`airlift.yaml` of `airlift-pack`) on arbitrary text.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = airlift_render::definition::parse_definition(Path::new("airlift.yaml"), text);
    }
});
