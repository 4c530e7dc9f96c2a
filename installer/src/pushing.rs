//! The registry phase of `install` and `upgrade`: preflight, then a resumable push from the
//! verified bundle file. `push` the command adds its own output around the same calls.

use std::sync::Arc;

use airlift_bundle::schema::manifest::BundleManifest;
use airlift_bundle::{BlobSource, Bundle, Progress};
use airlift_cli::{CommandError, ExitKind};
use airlift_registry::client::RegistryClient;
use airlift_registry::mapping::Destination;
use airlift_registry::preflight::preflight as registry_preflight;
use airlift_registry::push::{plan_repositories, push, PushReport};
use airlift_registry::RegistryOptions;

use crate::relocation::push_images;

fn registry_error(e: impl std::error::Error + Send + Sync + 'static, hint: String) -> CommandError {
    CommandError::new(ExitKind::Registry, e).with_hint(hint)
}

/// A client for the destination registry.
pub fn client(
    destination: &Destination,
    opts: &RegistryOptions,
) -> Result<RegistryClient, CommandError> {
    RegistryClient::new(&destination.registry, opts).map_err(|e| {
        let hint = format!(
            "check --registry-ca and the registry address `{}`",
            destination.registry
        );
        registry_error(e, hint)
    })
}

/// Before anything is sent: the registry is reachable, its certificate trusted, it is a
/// registry, and the credentials may push (an upload to the first target repository is started
/// and cancelled). Each failure names the registry and says how to fix it.
pub async fn preflight(
    client: &RegistryClient,
    manifest: &BundleManifest,
    destination: &Destination,
) -> Result<(), CommandError> {
    let repos = plan_repositories(&push_images(manifest), destination).map_err(|e| {
        let hint = e.hint();
        CommandError::new(ExitKind::Config, e).with_hint(hint)
    })?;
    let first = repos
        .into_values()
        .next()
        .and_then(|r| r.split_once('/').map(|(_, repo)| repo.to_string()));
    match first {
        Some(repo) => registry_preflight(client, &repo).await.map_err(|e| {
            let hint = e.hint();
            CommandError::new(ExitKind::Preflight, e).with_hint(hint)
        }),
        // A bundle without images needs no registry.
        None => Ok(()),
    }
}

/// Pushes every image of `bundle` to `destination`; skips what the registry holds.
pub async fn push_bundle(
    client: &RegistryClient,
    bundle: Arc<Bundle>,
    destination: &Destination,
    concurrency: usize,
    progress: Arc<dyn Progress>,
) -> Result<PushReport, CommandError> {
    let images = push_images(bundle.manifest());
    let source: Arc<dyn BlobSource> = bundle;
    push(client, source, &images, destination, concurrency, progress)
        .await
        .map_err(|e| {
            let hint = e.hint();
            registry_error(e, hint)
        })
}
