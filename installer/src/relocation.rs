//! Where each bundled image lives in the customer's registry.

use std::collections::BTreeMap;

use airlift_bundle::schema::manifest::BundleManifest;
use airlift_cli::{CommandError, ExitKind};
use airlift_registry::mapping::Destination;
use airlift_registry::push::{plan_repositories, PushImage};

/// The customer registry flags shared by `push`, `install`, `upgrade`, `plan` and `render`.
#[derive(Debug, Clone, clap::Args)]
pub struct TargetArgs {
    /// The customer registry: `HOST[:PORT][/PREFIX]`. Images go to `HOST/PREFIX/<original path>`.
    #[arg(long, value_name = "HOST[:PORT][/PREFIX]")]
    pub registry: String,
    /// Map every repository to one path segment, for registries without nested paths.
    #[arg(long)]
    pub flatten: bool,
    /// Speak plain HTTP (no TLS) to the --registry. Only for registries that serve no TLS at all.
    #[arg(long)]
    pub insecure: bool,
}

impl TargetArgs {
    /// The registry options of `flags` for this destination: its credentials, and plain HTTP
    /// when `--insecure` was given.
    pub fn registry_options(
        &self,
        flags: &airlift_cli::RegistryFlags,
        destination: &Destination,
    ) -> Result<airlift_registry::RegistryOptions, CommandError> {
        let mut opts = flags
            .options(Some(&destination.registry))
            .map_err(|e| CommandError::new(ExitKind::Usage, e))?;
        if self.insecure {
            opts.insecure.insert(destination.registry.clone());
        }
        Ok(opts)
    }

    /// The parsed destination.
    pub fn destination(&self) -> Result<Destination, CommandError> {
        Destination::parse(&self.registry, self.flatten).map_err(|e| {
            CommandError::new(ExitKind::Usage, e)
                .with_hint("write --registry HOST[:PORT][/PREFIX], e.g. registry.corp:5000/vendor")
        })
    }
}

/// Every image of the bundle, as the push engine takes them.
pub fn push_images(manifest: &BundleManifest) -> Vec<PushImage> {
    let mut images: Vec<PushImage> = manifest
        .components
        .iter()
        .flat_map(|c| &c.images)
        .map(PushImage::from)
        .collect();
    images.sort_by(|a, b| a.reference.cmp(&b.reference));
    images.dedup_by(|a, b| a.reference == b.reference);
    images
}

/// Original reference -> `REGISTRY/REPOSITORY@sha256:…`, computed by the same mapping rule the
/// push uses, without contacting the registry. The whole bundle's image set is mapped, so the
/// collision suffixes match the push exactly.
pub fn planned_relocation(
    manifest: &BundleManifest,
    destination: &Destination,
) -> Result<BTreeMap<String, String>, CommandError> {
    let images = push_images(manifest);
    let repos = plan_repositories(&images, destination).map_err(|e| {
        let hint = e.hint();
        CommandError::new(ExitKind::Config, e).with_hint(hint)
    })?;
    Ok(images
        .iter()
        .filter_map(|i| {
            repos
                .get(&i.reference)
                .map(|repo| (i.reference.clone(), format!("{repo}@{}", i.digest)))
        })
        .collect())
}
