//! The registry phase of `install` and `upgrade`: preflight, then a resumable push from the
//! verified bundle file. `push` the command adds its own output around the same calls.

use std::sync::Arc;

use airlift_bundle::{BlobSource, Bundle, Progress};
use airlift_cli::{CommandError, ExitKind};
use airlift_registry::client::RegistryClient;
use airlift_registry::mapping::Destination;
use airlift_registry::push::{push, PushReport};
use airlift_registry::RegistryOptions;

use crate::relocation::push_images;

fn registry_error(e: impl std::error::Error + Send + Sync + 'static, hint: String) -> CommandError {
    CommandError::new(ExitKind::Registry, e).with_hint(hint)
}

/// A client for the destination registry.
pub fn client(destination: &Destination, opts: &RegistryOptions) -> Result<RegistryClient, CommandError> {
    RegistryClient::new(&destination.registry, opts).map_err(|e| {
        let hint = format!("check --registry-ca and the registry address `{}`", destination.registry);
        registry_error(e, hint)
    })
}

/// Checks that the registry answers as a registry, before anything is sent.
pub async fn preflight(client: &RegistryClient) -> Result<(), CommandError> {
    client.ping().await.map_err(|e| {
        let hint = e.hint();
        registry_error(e, hint)
    })
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
