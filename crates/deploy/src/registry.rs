//! The registry phase: preflight, then a resumable push from the verified bundle file (or,
//! for a bundle opened from `oci://…`, straight from the vendor's registry, every blob hashed as
//! it streams), checked against the relocation rendering assumed.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use airlift_bundle::schema::manifest::BundleManifest;
use airlift_bundle::{BlobSource, Bundle, Progress};
use airlift_registry::artifact::OciReference;
use airlift_registry::artifact_source::source_failure;
use airlift_registry::client::RegistryClient;
use airlift_registry::mapping::{Destination, RelocationMap};
use airlift_registry::preflight::preflight as registry_preflight;
use airlift_registry::push::{
    plan_repositories, push, push_verifying, push_verifying_mounting, PushReport,
};
use airlift_registry::RegistryOptions;

use crate::error::{DeployError, PreflightFailure};
use crate::render::push_images;
use crate::source::BlobTrust;

/// A client for the destination registry.
pub fn client(
    destination: &Destination,
    options: &RegistryOptions,
) -> Result<RegistryClient, DeployError> {
    RegistryClient::new(&destination.registry, options).map_err(|source| {
        DeployError::RegistryClient {
            registry: destination.registry.clone(),
            source,
        }
    })
}

/// Before anything is sent: the registry is reachable, its certificate trusted, it is a
/// registry, and the credentials may push (an upload to the first target repository is started
/// and cancelled). Returns the failure, if any, for the combined preflight report.
pub async fn preflight(
    client: &RegistryClient,
    manifest: &BundleManifest,
    destination: &Destination,
) -> Result<Option<PreflightFailure>, DeployError> {
    let repos =
        plan_repositories(&push_images(manifest), destination).map_err(DeployError::Mapping)?;
    let first = repos
        .into_values()
        .next()
        .and_then(|r| r.split_once('/').map(|(_, repo)| repo.to_string()));
    // A bundle without images needs no registry.
    let Some(repo) = first else {
        return Ok(None);
    };
    Ok(registry_preflight(client, &repo)
        .await
        .err()
        .map(|e| PreflightFailure {
            area: "registry",
            problem: chain(&e),
            fix: e.hint(),
        }))
}

/// An error and its causes on one line (the workspace's one printer).
pub use airlift_bundle::error_chain as chain;

/// Pushes every image of a verified `bundle` to `destination` (skipping what the registry
/// holds), then checks that each went where rendering assumed.
pub async fn push_bundle(
    client: &RegistryClient,
    bundle: Arc<Bundle>,
    destination: &Destination,
    planned: &BTreeMap<String, String>,
    concurrency: usize,
    progress: Arc<dyn Progress>,
) -> Result<PushReport, DeployError> {
    let proven = BlobTrust::Proven;
    push_bundle_as(
        client,
        bundle,
        destination,
        planned,
        concurrency,
        proven,
        progress,
    )
    .await
}

/// [`push_bundle`] for a bundle opened by [`crate::source::open_for_push`]: with
/// [`BlobTrust::SignatureOnly`], each blob is hashed while it streams, and a mismatch cuts its
/// upload short and fails the push with a trust error before any manifest or tag above it.
///
/// A bundle opened by [`crate::source::open_oci`] is always pushed that way, whatever
/// `blob_trust` says: each blob streams from the vendor's registry into `destination`, hashed
/// on the way, and nothing is committed unless every blob verified. When `destination` is the
/// vendor's registry itself, each blob is first mounted from the artifact's repository (no byte
/// moves). A blob that does not match its signed digest is
/// [`airlift_registry::artifact::ArtifactError::LayerDigest`] (exit 3), as a pull reports it.
pub async fn push_bundle_as(
    client: &RegistryClient,
    bundle: Arc<Bundle>,
    destination: &Destination,
    planned: &BTreeMap<String, String>,
    concurrency: usize,
    blob_trust: BlobTrust,
    progress: Arc<dyn Progress>,
) -> Result<PushReport, DeployError> {
    let images = push_images(bundle.manifest());
    let concurrency = concurrency.max(1);
    if let Some(origin) = bundle.blobs_origin().map(str::to_string) {
        let source: Arc<dyn BlobSource> = bundle;
        let published = OciReference::parse(&origin)?;
        let reference = origin.trim_start_matches("oci://");
        let pushed = if published.registry == client.registry() {
            let from = published.repository.as_str();
            push_verifying_mounting(
                client,
                source,
                &images,
                destination,
                concurrency,
                from,
                progress,
            )
            .await
        } else {
            push_verifying(client, source, &images, destination, concurrency, progress).await
        };
        let report = pushed.map_err(|e| match source_failure(reference, e) {
            Ok(artifact) => DeployError::Artifact(artifact),
            Err(push) => DeployError::Push(push),
        })?;
        check_relocation(planned, &report.relocation_map)?;
        return Ok(report);
    }
    let source: Arc<dyn BlobSource> = bundle;
    let pushed = if blob_trust == BlobTrust::SignatureOnly {
        push_verifying(client, source, &images, destination, concurrency, progress).await
    } else {
        push(client, source, &images, destination, concurrency, progress).await
    };
    let report = pushed.map_err(DeployError::Push)?;
    check_relocation(planned, &report.relocation_map)?;
    Ok(report)
}

/// Pushes shared by several deployments of one bundle, as in a fleet rollout: each distinct
/// destination (registry, prefix, layout) is pushed once. Deployments to a destination that is
/// being pushed wait for that push and reuse its report; a failed push is not remembered, so the
/// next deployment to that destination tries again.
#[derive(Debug, Default)]
pub struct SharedPushes {
    cells: Mutex<HashMap<String, Arc<tokio::sync::OnceCell<PushReport>>>>,
}

impl SharedPushes {
    /// No push done yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// How many distinct destinations have been pushed to.
    pub fn pushed(&self) -> usize {
        self.cells
            .lock()
            .map(|c| c.values().filter(|v| v.initialized()).count())
            .unwrap_or(0)
    }

    /// The report of the push to `destination`, running `push` only when no push there has
    /// succeeded yet; the report is checked against `planned` either way.
    pub(crate) async fn push_once<F>(
        &self,
        destination: &Destination,
        planned: &BTreeMap<String, String>,
        push: F,
    ) -> Result<PushReport, DeployError>
    where
        F: std::future::Future<Output = Result<PushReport, DeployError>>,
    {
        let key = format!(
            "{}/{}|{}",
            destination.registry,
            destination.prefix.as_deref().unwrap_or(""),
            destination.flatten
        );
        let cell = match self.cells.lock() {
            Ok(mut cells) => cells.entry(key).or_default().clone(),
            // A panic while the map was held: push without sharing.
            Err(_) => Arc::new(tokio::sync::OnceCell::new()),
        };
        let report = cell.get_or_try_init(|| push).await?.clone();
        check_relocation(planned, &report.relocation_map)?;
        Ok(report)
    }
}

/// Checks that the push put every image where rendering assumed it would be.
fn check_relocation(
    planned: &BTreeMap<String, String>,
    pushed: &RelocationMap,
) -> Result<(), DeployError> {
    for (reference, want) in planned {
        let got = pushed.images.get(reference).map(|r| r.reference.as_str());
        if got != Some(want.as_str()) {
            return Err(DeployError::Relocation {
                reference: reference.clone(),
                got: got.unwrap_or("nowhere").to_string(),
                want: want.clone(),
            });
        }
    }
    Ok(())
}
