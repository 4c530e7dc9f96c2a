//! Configuration resolution, manifest templating, image discovery and image rewriting.
//!
//! The flow, for the packager's lint and build and for the installer's render:
//! 1. [`values::ConfigBuilder`] resolves the configuration: SaaS defaults, values files, `--set`,
//!    generated secrets; [`values::Config`] never prints a secret.
//! 2. [`template::Renderer`] renders each manifest template with `config`, `bundle`, `release`
//!    and `platform` (the needs resolved by [`platform::resolve`]), bounded in instructions,
//!    output, memory and time: the templates run in a render worker ([`isolate`]).
//! 3. [`objects::parse_objects`] turns each rendered file into Kubernetes objects.
//! 4. [`images`] finds every image, checks the bundle carries it, rewrites it to the customer's
//!    registry by digest and adds pull secrets.
//!
//! [`definition::load_definition`] reads a definition folder for the packager. No network I/O.

pub mod api_compat;
pub mod definition;
pub mod diagnose;
pub mod images;
pub mod isolate;
pub mod objects;
pub mod platform;
pub use airlift_bundle::reference;
mod rules;
pub mod secret;
pub mod template;
pub mod values;

pub use definition::{load_definition, LoadedDefinition};
pub use objects::{parse_objects, K8sObject};
pub use reference::ImageRef;
pub use secret::Secret;
pub use template::{BundleInfo, ReleaseInfo, Renderer};
pub use values::{Config, ConfigBuilder, ConfigError};

/// A manifest that failed to render or to parse.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    /// The template failed.
    #[error(transparent)]
    Template(#[from] template::TemplateError),
    /// The rendered text is not Kubernetes objects.
    #[error(transparent)]
    Objects(#[from] objects::ObjectError),
}

/// Renders each `(name, template)` and parses the output into objects, in order.
pub fn render_manifests<'a>(
    renderer: &Renderer,
    files: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> Result<Vec<K8sObject>, RenderError> {
    let mut out = Vec::new();
    for (name, source) in files {
        let text = renderer.render(name, source)?;
        out.extend(parse_objects(name, &text)?);
    }
    Ok(out)
}
