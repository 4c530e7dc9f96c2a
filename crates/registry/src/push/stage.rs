//! The verifying push's first phase: every blob the registry lacks is mounted (from a repository
//! of the same registry that holds the source's blobs) or streamed into an upload session,
//! hashed on the way, and the sessions are committed only when every blob verified.

use std::collections::{HashMap, HashSet};

use airlift_bundle::Digest;
use futures::{stream, StreamExt, TryStreamExt};

use super::{Ctx, Planned, PushError};
use crate::client::UploadStart;
use crate::upload::Staged;

/// What [`Ctx::stage_one`] did with one blob.
enum Prepared {
    /// A repository of this push holds it already.
    Held,
    /// The registry mounted it from [`Ctx::mount_from`].
    Mounted,
    /// Streamed into an upload session (or failed to).
    Staged(Staged),
}

impl Ctx<'_> {
    /// Verifying push, before anything is committed: every blob the registry lacks (in every
    /// repository of this push that uses it) is streamed once into an upload session of the
    /// first such repository, hashed on the way ([`crate::client::RegistryClient::stage_blob`]). Only when all
    /// of them verified are the sessions committed; a mismatch or a failure cancels every
    /// session, so the registry commits no blob of a bundle that does not verify. Returns the
    /// committed blobs and their repository (the rest of the push finds them there, and mounts
    /// them into the other repositories).
    pub(super) async fn stage_all(
        &self,
        planned: &[Planned],
        concurrency: usize,
    ) -> Result<HashMap<Digest, (String, bool)>, PushError> {
        let mut seen = HashSet::new();
        let mut blobs = Vec::new();
        for p in planned {
            for (digest, size) in p.blobs_under(0) {
                if size == 0 && digest != Digest::of_bytes(&[]) {
                    // Nothing to stream, so nothing would hash it: refuse it before any upload.
                    return Err(PushError::Tampered {
                        image: p.image.reference.clone(),
                        actual: Digest::of_bytes(&[]),
                        digest,
                    });
                }
                if seen.insert(digest.clone()) {
                    blobs.push((p, digest, size));
                }
            }
        }
        // Largest first: one blob streams through one request at the speed of one core on each
        // side, so a large blob started last would finish alone, long after the others.
        blobs.sort_by_key(|(_, _, size)| std::cmp::Reverse(*size));
        let outcomes: Vec<_> = stream::iter(blobs.iter().map(|(p, digest, size)| async move {
            let outcome = self.stage_one(p, digest, *size).await;
            (*p, digest, outcome)
        }))
        .buffer_unordered(concurrency)
        .collect()
        .await;
        let mut failure: Option<PushError> = None;
        let mut staged = Vec::new();
        let mut cancel = Vec::new();
        let mut mounted = HashMap::new();
        for (p, digest, outcome) in outcomes {
            match outcome {
                Ok(Prepared::Held) => {}
                Ok(Prepared::Mounted) => {
                    mounted.insert(digest.clone(), (p.repository.clone(), true));
                }
                Ok(Prepared::Staged(Staged::Unreadable { error })) => {
                    if !matches!(failure, Some(PushError::Tampered { .. })) {
                        failure = Some(PushError::Source {
                            image: p.image.reference.clone(),
                            digest: digest.clone(),
                            source: error,
                        });
                    }
                }
                Ok(Prepared::Staged(Staged::Verified(session))) => {
                    staged.push((p, digest, session))
                }
                Ok(Prepared::Staged(Staged::Mismatch { session, actual })) => {
                    cancel.push((p, session));
                    // A tampered blob is the failure to report, over any registry error.
                    if !matches!(failure, Some(PushError::Tampered { .. })) {
                        failure = Some(PushError::Tampered {
                            image: p.image.reference.clone(),
                            digest: digest.clone(),
                            actual,
                        });
                    }
                }
                Err(e) => {
                    failure.get_or_insert(e);
                }
            }
        }
        if let Some(failure) = failure {
            cancel.extend(staged.into_iter().map(|(p, _, session)| (p, session)));
            stream::iter(cancel.iter().map(|(p, session)| async move {
                // Best effort: the registry purges abandoned sessions anyway.
                let _ = self.client.cancel_upload(&p.repository, session).await;
            }))
            .buffer_unordered(concurrency)
            .collect::<Vec<()>>()
            .await;
            return Err(failure);
        }
        stream::iter(staged.iter().map(|(p, digest, session)| async move {
            self.client
                .commit_staged(&p.repository, session, digest)
                .await
                .map_err(|e| self.registry_err(p, e))
        }))
        .buffer_unordered(concurrency)
        .try_collect::<Vec<()>>()
        .await?;
        mounted.extend(
            staged
                .into_iter()
                .map(|(p, digest, _)| (digest.clone(), (p.repository.clone(), false))),
        );
        Ok(mounted)
    }

    /// Stages one blob in `p`'s repository, unless a repository of this push already holds it
    /// or the registry mounts it from [`Ctx::mount_from`].
    async fn stage_one(
        &self,
        p: &Planned,
        digest: &Digest,
        size: u64,
    ) -> Result<Prepared, PushError> {
        for repo in self.users.get(digest).into_iter().flatten() {
            let held = self.client.blob_exists(repo, digest).await;
            if held.map_err(|e| self.registry_err(p, e))?.is_some() {
                return Ok(Prepared::Held);
            }
        }
        if let Some(from) = self.mount_from.as_deref().filter(|f| *f != p.repository) {
            let start = self
                .client
                .start_upload(&p.repository, digest, Some(from))
                .await;
            match start.map_err(|e| self.registry_err(p, e))? {
                UploadStart::Mounted => return Ok(Prepared::Mounted),
                // Declined: stream it (a new session; this one is not needed).
                UploadStart::Session(session) => {
                    let _ = self.client.cancel_upload(&p.repository, &session).await;
                }
            }
        }
        let label = p.image.reference.as_str();
        self.first_for_image(label, digest);
        let on_bytes = self.byte_reporter(label);
        self.client
            .stage_blob(&p.repository, digest, size, self.source.clone(), on_bytes)
            .await
            .map(Prepared::Staged)
            .map_err(|e| self.registry_err(p, e))
    }
}
