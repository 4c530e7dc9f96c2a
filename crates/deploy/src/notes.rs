//! Post-install notes: the bundle's NOTES template (like helm's NOTES.txt), rendered after an
//! install or upgrade with the configuration in effect, every secret item masked, so what is
//! printed can go into a terminal log or a ticket. Bounded like manifest templates (fuel and
//! output limits), and cut at [`MAX_NOTES_OUTPUT`] bytes.

use airlift_render::template::TemplateError;
use airlift_render::{BundleInfo, ReleaseInfo, Renderer};
use serde_json::Value;

use crate::pipeline::Prepared;

/// What a secret configuration value reads as in the notes.
pub const MASKED: &str = "[hidden]";

/// The most bytes of rendered notes printed.
pub const MAX_NOTES_OUTPUT: usize = 16 * 1024;

/// The bundle's notes rendered for `release` in `namespace` at `revision`: `None` when the
/// bundle has none.
pub fn render_notes(
    prepared: &Prepared,
    release: &str,
    namespace: &str,
    revision: u64,
) -> Option<Result<String, TemplateError>> {
    let manifest = prepared.bundle.manifest();
    let source = manifest.notes.as_deref()?;
    let mut context = prepared.config.template_context();
    for entry in prepared.config.entries().iter().filter(|e| e.is_secret()) {
        if let Some(Value::Object(items)) = context.get_mut(&entry.group) {
            items.insert(entry.item.name.clone(), Value::String(MASKED.into()));
        }
    }
    let renderer = Renderer::with_context(
        context,
        &BundleInfo {
            name: manifest.metadata.name.clone(),
            version: manifest.metadata.version.clone(),
        },
        &ReleaseInfo {
            name: release.to_string(),
            namespace: namespace.to_string(),
            revision,
        },
    );
    Some(renderer.render("NOTES", source).map(|mut text| {
        if text.len() > MAX_NOTES_OUTPUT {
            let mut cut = MAX_NOTES_OUTPUT;
            while !text.is_char_boundary(cut) {
                cut -= 1;
            }
            text.truncate(cut);
            text.push_str("\n… (notes cut)\n");
        }
        text
    }))
}
