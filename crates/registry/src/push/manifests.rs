//! Manifests of a push: the `HEAD` that tells whether the registry holds one, and the `PUT` that
//! writes one once everything under it is there.
//!
//! A registry refuses a manifest whose blobs (or, for an index, whose manifests) it does not
//! find: `400 MANIFEST_BLOB_UNKNOWN`. The push only writes a manifest after it found or committed
//! every one of them, so that answer means the registry lost sight of one since. Two causes are
//! known. Another push is writing the same blob into the same repository: CNCF distribution up to
//! 2.8 (Debian's `docker-registry`, and registries built on it) rewrites the repository's link to
//! a blob in place, and a manifest check that reads it meanwhile finds it empty, answering
//! `DIGEST_INVALID` and `MANIFEST_BLOB_UNKNOWN` although the blob is there a moment later. Or the
//! registry really dropped it (a garbage collection in between). Either way the push checks what
//! is under the manifest again, restores what is missing, and writes the manifest again, with the
//! one retry policy's backoff and attempts.

use std::sync::atomic::Ordering;

use airlift_bundle::walk::{read_small, MAX_MANIFEST_SIZE};
use bytes::Bytes;

use super::{Ctx, Planned, PushError};
use crate::client::ManifestHead;
use crate::retry::Retry;

/// The error code of a registry that does not find something a manifest refers to.
const MANIFEST_BLOB_UNKNOWN: &str = "MANIFEST_BLOB_UNKNOWN";

impl Ctx<'_> {
    /// `HEAD` of `reference` (a tag or a digest) in the image's repository.
    pub(super) async fn manifest_head(
        &self,
        p: &Planned,
        reference: &str,
    ) -> Result<Option<ManifestHead>, PushError> {
        let _permit = self.permits.acquire().await.ok();
        self.client
            .manifest_head(&p.repository, reference)
            .await
            .map_err(|e| self.registry_err(p, e))
    }

    /// `PUT`s manifest `node` as `reference` (its digest, or the image's tag), with the exact
    /// bytes of the source. A registry that answers `MANIFEST_BLOB_UNKNOWN` gets what is under
    /// the manifest checked and restored, then the manifest again (see the module docs).
    pub(super) async fn put_manifest(
        &self,
        p: &Planned,
        node: usize,
        reference: &str,
    ) -> Result<(), PushError> {
        let desc = &p.graph.manifests[node].descriptor;
        let bytes = {
            let source = self.source.clone();
            let digest = desc.digest.clone();
            tokio::task::spawn_blocking(move || read_small(&*source, &digest, MAX_MANIFEST_SIZE))
                .await
                .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()))
                .map_err(|source| PushError::ReadManifest {
                    image: p.image.reference.clone(),
                    digest: desc.digest.clone(),
                    source,
                })?
        };
        let bytes = Bytes::from(bytes);
        let policy = self.client.retry_policy();
        let mut attempt = 1;
        loop {
            let put = {
                let _permit = self.permits.acquire().await.ok();
                self.client
                    .put_manifest(&p.repository, reference, &desc.media_type, bytes.clone())
                    .await
            };
            match put {
                Ok(()) => break,
                Err(e) if e.has_code(MANIFEST_BLOB_UNKNOWN) => {
                    let Some(wait) = policy.next_delay(attempt, Retry::Backoff) else {
                        return Err(self.registry_err(p, e));
                    };
                    tokio::time::sleep(wait).await;
                    self.restore_under(p, node).await?;
                    attempt += 1;
                }
                Err(e) => return Err(self.registry_err(p, e)),
            }
        }
        self.counters
            .manifests_pushed
            .fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// Checks again that the registry holds what manifest `node` refers to, and sends what it
    /// lacks: an index's manifests (each pushed as a whole when missing), a manifest's config
    /// and layers (each sent again when a `HEAD` does not find it).
    async fn restore_under(&self, p: &Planned, node: usize) -> Result<(), PushError> {
        let m = &p.graph.manifests[node];
        if m.is_index() {
            for &child in &m.children {
                self.push_node(p, child).await?;
            }
            return Ok(());
        }
        for blob in &m.blobs {
            let found = {
                let _permit = self.permits.acquire().await.ok();
                self.client
                    .blob_exists(&p.repository, &blob.digest)
                    .await
                    .map_err(|e| self.registry_err(p, e))?
            };
            if found.is_none() {
                self.forget_held(p, &blob.digest).await;
                self.ensure_blob(p, &blob.digest, blob.size).await?;
            }
        }
        Ok(())
    }
}
