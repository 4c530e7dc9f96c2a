//! Blob uploads: a monolithic streamed `PUT` ([`RegistryClient::push_blob`]), and staged
//! uploads ([`RegistryClient::stage_blob`], then [`RegistryClient::commit_staged`] or
//! [`RegistryClient::cancel_upload`]) for a source whose blobs are verified while they stream:
//! the bytes go with one `PATCH` into an upload session while they are hashed, and the session is
//! committed by its final `PUT` only once the caller knows every blob it needs verified.
//!
//! Blob bodies are read from a [`BlobSource`] in chunks by positioned reads, so a blob is never
//! whole in memory; hashing happens on the blocking thread that reads the chunk.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use airlift_bundle::digest::Hasher;
use airlift_bundle::{BlobSource, Digest};
use bytes::Bytes;
use http::header::{CONTENT_LENGTH, CONTENT_RANGE, CONTENT_TYPE, LOCATION};
use http::StatusCode;
use url::Url;

use crate::chunks::ChunkPool;
use crate::client::{body_prefix, RegistryClient, Retries, UploadStart, DRAIN_LIMIT};
use crate::error::RegistryError;

/// How many bytes one positioned read of an upload body takes.
pub(crate) const CHUNK: usize = 512 * 1024;

/// How many free read buffers a client keeps for upload bodies (8 MiB at most).
pub(crate) const KEPT_CHUNKS: usize = 16;

/// What [`RegistryClient::stage_blob`] did.
#[derive(Debug)]
pub enum Staged {
    /// Every byte is in the session, and they hash to the digest: commit it with
    /// [`RegistryClient::commit_staged`].
    Verified(Url),
    /// The bytes do not hash to the digest: cancel the session with
    /// [`RegistryClient::cancel_upload`] (the registry committed nothing).
    Mismatch {
        /// The session.
        session: Url,
        /// The digest of the bytes the source holds.
        actual: Digest,
    },
    /// Reading the blob from the source failed (a bundle file that cannot be read, a source
    /// registry that failed): the upload was cut short and its session cancelled, so the
    /// registry committed nothing. Not retried here: a source retries its own reads.
    Unreadable {
        /// The source's error.
        error: std::io::Error,
    },
}

/// The first failure of a source read during one upload attempt.
type ReadFailure = Arc<Mutex<Option<std::io::Error>>>;

fn take_failure(slot: &ReadFailure) -> Option<std::io::Error> {
    slot.lock().unwrap_or_else(|p| p.into_inner()).take()
}

impl RegistryClient {
    /// Uploads a blob to `repo`: mounts it from `mount_from` when the registry can, otherwise
    /// streams it from `source` with a monolithic PUT. A failed transfer restarts from a fresh
    /// upload session, with backoff. `on_bytes` is called with bytes sent for the first time (a
    /// retry does not count the same bytes twice).
    ///
    /// With `verify`, the blob is hashed while it streams and its last chunk is held back until
    /// the digest matches: on a mismatch the body is cut short (the registry cannot commit an
    /// incomplete upload), the session is cancelled, nothing is retried, and the result is
    /// [`BlobPush::Mismatch`]. A failed read of the source cuts the body short too, and is
    /// [`BlobPush::Unreadable`].
    #[allow(clippy::too_many_arguments)]
    pub async fn push_blob(
        &self,
        repo: &str,
        digest: &Digest,
        size: u64,
        source: Arc<dyn BlobSource>,
        mount_from: Option<&str>,
        verify: bool,
        on_bytes: Arc<dyn Fn(u64) + Send + Sync>,
    ) -> Result<BlobPush, RegistryError> {
        if verify && size == 0 {
            let actual = Digest::of_bytes(&[]);
            if &actual != digest {
                return Ok(BlobPush::Mismatch { actual });
            }
        }
        let high_water = Arc::new(AtomicU64::new(0));
        let mismatch: Arc<OnceLock<Digest>> = Arc::new(OnceLock::new());
        self.retry
            .run(
                || async {
                    let session = match self.start_upload(repo, digest, mount_from).await? {
                        UploadStart::Mounted => return Ok(BlobPush::Mounted),
                        UploadStart::Session(url) => url,
                    };
                    let failure = ReadFailure::default();
                    let body = BlobBody {
                        source: source.clone(),
                        digest: digest.clone(),
                        size,
                        high_water: high_water.clone(),
                        on_bytes: on_bytes.clone(),
                        mismatch: verify.then(|| mismatch.clone()),
                        cut: true,
                        failure: failure.clone(),
                        chunks: self.chunks.clone(),
                    };
                    match self.put_blob(repo, &session, &body).await {
                        Ok(()) => Ok(BlobPush::Sent),
                        Err(e) => {
                            let outcome = match (mismatch.get(), take_failure(&failure)) {
                                (Some(actual), _) => BlobPush::Mismatch {
                                    actual: actual.clone(),
                                },
                                (None, Some(error)) => BlobPush::Unreadable { error },
                                (None, None) => return Err(e),
                            };
                            // Best effort: the registry purges abandoned sessions anyway.
                            let _ = self.cancel_upload(repo, &session).await;
                            Ok(outcome)
                        }
                    }
                },
                |_, _, _| {},
            )
            .await
    }

    async fn put_blob(
        &self,
        repo: &str,
        session: &Url,
        body: &BlobBody,
    ) -> Result<(), RegistryError> {
        let digest = &body.digest;
        let target = self.target(format!("{repo}@{digest}"));
        let mut url = session.clone();
        url.query_pairs_mut()
            .append_pair("digest", &digest.to_string());
        let scope = Self::push_scope(repo);
        let resp = self
            .send(&target, Some(&scope), Retries::No, &url, || {
                self.http
                    .put(url.clone())
                    .header(CONTENT_TYPE, "application/octet-stream")
                    .header(CONTENT_LENGTH, body.size.to_string())
                    .body(body.stream())
            })
            .await?;
        let status = resp.status();
        if status == StatusCode::CREATED || status.is_success() {
            let _ = body_prefix(resp, DRAIN_LIMIT).await;
            return Ok(());
        }
        Err(self.status_error(target, status, resp).await)
    }

    /// Opens an upload session in `repo` and streams the blob into it with one `PATCH`
    /// (`Content-Range: 0-<size-1>`), hashing it on the way; does not commit it. A failed
    /// transfer restarts from a fresh session, with backoff (the failed one is cancelled).
    pub async fn stage_blob(
        &self,
        repo: &str,
        digest: &Digest,
        size: u64,
        source: Arc<dyn BlobSource>,
        on_bytes: Arc<dyn Fn(u64) + Send + Sync>,
    ) -> Result<Staged, RegistryError> {
        let high_water = Arc::new(AtomicU64::new(0));
        self.retry
            .run(
                || async {
                    let session = match self.start_upload(repo, digest, None).await? {
                        UploadStart::Session(url) => url,
                        UploadStart::Mounted => {
                            return Err(RegistryError::Protocol {
                                target: self.target(format!("{repo}@{digest}")),
                                detail: "a plain upload start answered as a mount".into(),
                            })
                        }
                    };
                    let mismatch = Arc::new(OnceLock::new());
                    let failure = ReadFailure::default();
                    let body = BlobBody {
                        source: source.clone(),
                        digest: digest.clone(),
                        size,
                        high_water: high_water.clone(),
                        on_bytes: on_bytes.clone(),
                        mismatch: Some(mismatch.clone()),
                        cut: false,
                        failure: failure.clone(),
                        chunks: self.chunks.clone(),
                    };
                    match self.patch_blob(repo, &session, &body).await {
                        Ok(next) => Ok(match mismatch.get() {
                            Some(actual) => Staged::Mismatch {
                                session: next,
                                actual: actual.clone(),
                            },
                            None => Staged::Verified(next),
                        }),
                        Err(e) => {
                            let _ = self.cancel_upload(repo, &session).await;
                            match take_failure(&failure) {
                                Some(error) => Ok(Staged::Unreadable { error }),
                                None => Err(e),
                            }
                        }
                    }
                },
                |_, _, _| {},
            )
            .await
    }

    /// `PATCH` the whole blob into `session`; returns the session's next URL.
    async fn patch_blob(
        &self,
        repo: &str,
        session: &Url,
        body: &BlobBody,
    ) -> Result<Url, RegistryError> {
        let target = self.target(format!("{repo}@{}", body.digest));
        let scope = Self::push_scope(repo);
        let resp = self
            .send(&target, Some(&scope), Retries::No, session, || {
                let mut req = self
                    .http
                    .patch(session.clone())
                    .header(CONTENT_TYPE, "application/octet-stream")
                    .header(CONTENT_LENGTH, body.size.to_string());
                if body.size > 0 {
                    req = req.header(CONTENT_RANGE, format!("0-{}", body.size - 1));
                }
                req.body(body.stream())
            })
            .await?;
        let status = resp.status();
        if status != StatusCode::ACCEPTED && !status.is_success() {
            return Err(self.status_error(target, status, resp).await);
        }
        let location = resp
            .headers()
            .get(LOCATION)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let base = resp.url().clone();
        let _ = body_prefix(resp, DRAIN_LIMIT).await;
        match location {
            Some(l) => base.join(&l).map_err(|e| RegistryError::Protocol {
                target,
                detail: format!("upload Location `{l}` is not a URL: {e}"),
            }),
            None => Ok(session.clone()),
        }
    }

    /// Commits a staged session: the final `PUT ?digest=` without a body. When the answer is
    /// lost and the session is gone, a `HEAD` tells whether the commit happened.
    pub async fn commit_staged(
        &self,
        repo: &str,
        session: &Url,
        digest: &Digest,
    ) -> Result<(), RegistryError> {
        let target = self.target(format!("{repo}@{digest}"));
        let mut url = session.clone();
        url.query_pairs_mut()
            .append_pair("digest", &digest.to_string());
        let scope = Self::push_scope(repo);
        let sent = self
            .send(&target, Some(&scope), Retries::No, &url, || {
                self.http
                    .put(url.clone())
                    .header(CONTENT_TYPE, "application/octet-stream")
                    .header(CONTENT_LENGTH, "0")
                    .body(Bytes::new())
            })
            .await;
        let failure = match sent {
            Ok(resp) if resp.status().is_success() => {
                let _ = body_prefix(resp, DRAIN_LIMIT).await;
                return Ok(());
            }
            Ok(resp) => {
                let status = resp.status();
                self.status_error(target, status, resp).await
            }
            Err(e) => e,
        };
        match self.blob_exists(repo, digest).await {
            Ok(Some(_)) => Ok(()),
            _ => Err(failure),
        }
    }
}

/// What [`RegistryClient::push_blob`] did.
#[derive(Debug)]
pub enum BlobPush {
    /// The blob was streamed and the registry committed it.
    Sent,
    /// The registry mounted it from another repository; nothing was sent.
    Mounted,
    /// The source's bytes do not hash to the blob's digest: the upload was cut short before its
    /// end and cancelled, so the registry committed nothing.
    Mismatch {
        /// The digest of the bytes the source holds.
        actual: Digest,
    },
    /// Reading the blob from the source failed: the upload was cut short and cancelled, so
    /// the registry committed nothing.
    Unreadable {
        /// The source's error.
        error: std::io::Error,
    },
}

/// The body of one blob upload: `[0, size)` of the blob, by positioned reads, one chunk at a
/// time; hashed on the way when `mismatch` is set, which receives the actual digest when it
/// differs. With `cut`, the stream then fails instead of yielding its last chunk. A failed read of
/// the source fails the stream and lands in `failure`, so the caller can tell it from the
/// registry's failure.
struct BlobBody {
    source: Arc<dyn BlobSource>,
    digest: Digest,
    size: u64,
    high_water: Arc<AtomicU64>,
    on_bytes: Arc<dyn Fn(u64) + Send + Sync>,
    mismatch: Option<Arc<OnceLock<Digest>>>,
    cut: bool,
    failure: ReadFailure,
    /// Where the body's read buffers come from and go back to.
    chunks: Arc<ChunkPool>,
}

impl BlobBody {
    fn stream(&self) -> reqwest::Body {
        let BlobBody {
            source,
            digest,
            size,
            high_water,
            on_bytes,
            mismatch,
            cut,
            failure,
            chunks,
        } = self;
        let cut = *cut;
        let (source, digest, size) = (source.clone(), digest.clone(), *size);
        let (high_water, on_bytes, mismatch) =
            (high_water.clone(), on_bytes.clone(), mismatch.clone());
        let failure = failure.clone();
        let chunks = chunks.clone();
        let hasher = mismatch.as_ref().map(|_| Hasher::new());
        let stream = futures::stream::try_unfold((0u64, hasher), move |(offset, hasher)| {
            let source = source.clone();
            let digest = digest.clone();
            let high_water = high_water.clone();
            let on_bytes = on_bytes.clone();
            let mismatch = mismatch.clone();
            let failure = failure.clone();
            let chunks = chunks.clone();
            async move {
                if offset >= size {
                    return Ok::<_, std::io::Error>(None);
                }
                let want = usize::try_from(size - offset).unwrap_or(CHUNK).min(CHUNK);
                let (chunk, hasher) = tokio::task::spawn_blocking(move || {
                    let chunk = match chunks.read(&*source, &digest, offset, want) {
                        Ok(chunk) => chunk,
                        Err(e) => {
                            let cut = std::io::Error::other(format!(
                                "reading blob {digest} from the source failed at byte {offset}: {e}"
                            ));
                            failure
                                .lock()
                                .unwrap_or_else(|p| p.into_inner())
                                .get_or_insert(e);
                            return Err(cut);
                        }
                    };
                    let hasher = hasher.map(|mut h| {
                        h.update(&chunk);
                        h
                    });
                    let end = offset + chunk.len() as u64;
                    if let (Some(h), Some(slot)) = (&hasher, &mismatch) {
                        if end >= size {
                            let actual = h.clone().finish();
                            if actual != digest {
                                let _ = slot.set(actual.clone());
                                if !cut {
                                    return Ok((chunk, hasher));
                                }
                                return Err(std::io::Error::new(
                                    std::io::ErrorKind::InvalidData,
                                    format!("blob {digest} hashes to {actual}: upload cut short"),
                                ));
                            }
                        }
                    }
                    Ok((chunk, hasher))
                })
                .await
                .map_err(std::io::Error::other)??;
                let end = offset + chunk.len() as u64;
                let before = high_water.fetch_max(end, Ordering::Relaxed);
                if end > before {
                    on_bytes(end - before);
                }
                Ok(Some((chunk, (end, hasher))))
            }
        });
        reqwest::Body::wrap_stream(stream)
    }
}
