//! Opening a bundle: its signature under the operator's trust policy, then every digest (or a
//! recorded proof for this exact, unchanged file). Nothing else may happen to a bundle first.
//!
//! A published bundle (`oci://…`) is opened in place ([`open_oci`]): the signature, the layer
//! list and every member are checked before it is returned; its blobs stay in the vendor's
//! registry and are hashed as the push streams them into the customer's (see
//! [`crate::registry::push_bundle_as`]).

use std::path::Path;
use std::sync::Arc;

use airlift_bundle::{Bundle, Progress, ProofStore, Trust, VerifyReport};
use airlift_registry::artifact::OciReference;
use airlift_registry::artifact_source::open_published;
use airlift_registry::client::RegistryClient;
use airlift_registry::RegistryOptions;

use crate::error::DeployError;

/// Opens the bundle published at `oci` for `install`, `upgrade` or `plan`, without a local copy
/// of its blobs: the signature under `trust` (before the manifest is parsed), the artifact's
/// layer list against the signed manifest, then the members (manifest, signature, component
/// files), each digest checked, into an anonymous temporary file. The blobs are read from the
/// vendor's registry only when pushed, each hashed as it streams; `plan` never reads one.
///
/// Call it on the Tokio runtime that will run the deploy: the bundle reads its blobs through it.
pub async fn open_oci(
    oci: &OciReference,
    trust: &Trust,
    options: &RegistryOptions,
    progress: &dyn Progress,
) -> Result<Bundle, DeployError> {
    let client = RegistryClient::new(&oci.registry, options).map_err(|source| {
        DeployError::RegistryClient {
            registry: oci.registry.clone(),
            source,
        }
    })?;
    Ok(open_published(Arc::new(client), oci, trust, progress).await?)
}

/// Opens `path`, checks its signature under `trust` and every digest, skipping the hash pass
/// when a recorded proof for this exact, unchanged file exists (unless `no_cache`).
pub fn open_verified(
    path: &Path,
    trust: &Trust,
    progress: &dyn Progress,
    no_cache: bool,
) -> Result<(Bundle, VerifyReport), DeployError> {
    let err = |source| DeployError::Bundle {
        path: path.to_path_buf(),
        source: Box::new(source),
    };
    let bundle = Bundle::open_trusted(path, trust).map_err(err)?;
    let report = match ProofStore::default_location() {
        Some(proofs) if !no_cache => bundle.verify_with_proof(trust, progress, &proofs),
        _ => bundle.verify(trust, progress),
    }
    .map_err(err)?;
    Ok((bundle, report))
}

/// How much of a bundle opened by [`open_for_push`] is known good. (A bundle opened by
/// [`open_oci`] is always pushed hashing every blob, whatever this says.)
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlobTrust {
    /// A recorded proof says this exact, unchanged file was fully verified before.
    Proven,
    /// Only the signature (and so the manifest) is checked: the blobs must be hashed as they are
    /// read (see [`crate::registry::push_bundle_as`]).
    SignatureOnly,
}

/// Opens `path` for a push: checks its signature under `trust` (a few kilobytes), and looks up a
/// recorded proof for this exact, unchanged file (unless `no_cache`). Hashes no blob: the push
/// hashes each blob while it streams it, so an unverified bundle is read once, not twice.
pub fn open_for_push(
    path: &Path,
    trust: &Trust,
    progress: &dyn Progress,
    no_cache: bool,
) -> Result<(Bundle, BlobTrust), DeployError> {
    let bundle = Bundle::open_trusted(path, trust).map_err(|source| DeployError::Bundle {
        path: path.to_path_buf(),
        source: Box::new(source),
    })?;
    let proven = match ProofStore::default_location() {
        Some(proofs) if !no_cache => proofs
            .key_for(&bundle, trust)
            .ok()
            .and_then(|key| {
                proofs.lookup(&key).unwrap_or_else(|refused| {
                    progress.message(&format!("note: {refused}; hashing every blob sent"));
                    None
                })
            })
            .is_some(),
        _ => false,
    };
    if proven {
        progress.message(&format!(
            "{}: verified before and unchanged since (recorded proof), not hashing it again",
            path.display()
        ));
    }
    Ok((
        bundle,
        if proven {
            BlobTrust::Proven
        } else {
            BlobTrust::SignatureOnly
        },
    ))
}
