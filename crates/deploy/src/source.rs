//! Opening a bundle: its signature under the operator's trust policy, then every digest (or a
//! recorded proof for this exact, unchanged file). Nothing else may happen to a bundle first.

use std::path::Path;

use airlift_bundle::{Bundle, Progress, ProofStore, Trust, VerifyReport};

use crate::error::DeployError;

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
