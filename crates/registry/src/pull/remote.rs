//! Pulling from a registry with oci-client: tag resolution, parallel blob downloads with
//! bounded concurrency, retries with backoff, and resume with `Range` after a reset.

use std::collections::HashMap;
use std::future::Future;
use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};

use airlift_bundle::reference::ImageRef;
use airlift_bundle::schema::common::Platform;
use airlift_bundle::{Digest, DirBlobStore, Progress, SlotWriter, StoreError};
use futures::future::BoxFuture;
use futures::{StreamExt, TryStreamExt};
use oci_client::client::BlobResponse;
use oci_client::secrets::RegistryAuth;
use oci_client::Reference;

use airlift_bundle::oci::{Descriptor, ACCEPTED_MANIFEST_TYPES};

use super::{plan, BlobRef, DocKind, FetchDoc, PullError, PulledImage};
use crate::auth::{resolve_credentials, Credentials};
use crate::error::{RegistryError, Target};
use crate::options::RegistryOptions;
use crate::retry::Retryable;
use crate::tls;

/// Pulls images from registries into a [`DirBlobStore`]. Use one per build and run pulls on it
/// concurrently: all downloads share one concurrency limit ([`RegistryOptions::concurrency`]),
/// and a blob shared by several images is downloaded once.
pub struct RegistryPuller {
    /// Made at the first registry request: building one loads the system's CA certificates
    /// (twice, inside oci-client: about 10 ms here), which a build of local images never needs.
    client: OnceLock<oci_client::Client>,
    opts: RegistryOptions,
    store: DirBlobStore,
    creds: Mutex<HashMap<String, Option<Credentials>>>,
    /// Bounds blob downloads across every pull running on this puller.
    slots: tokio::sync::Semaphore,
    /// One lock per blob being downloaded, so concurrent pulls of images that share a layer
    /// download it once.
    in_flight: Mutex<HashMap<Digest, Arc<tokio::sync::Mutex<()>>>>,
}

impl std::fmt::Debug for RegistryPuller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegistryPuller")
            .field("store", &self.store.root())
            .field("opts", &self.opts)
            .finish()
    }
}

impl RegistryPuller {
    /// A puller writing into `store`, configured by `opts` (trust, auth, concurrency, retries).
    /// The CA files are read and checked here; the client is made at the first request.
    pub fn new(store: DirBlobStore, opts: RegistryOptions) -> Result<Self, PullError> {
        tls::oci_client_config(&opts)?;
        Ok(Self {
            client: OnceLock::new(),
            slots: tokio::sync::Semaphore::new(opts.concurrency.max(1)),
            in_flight: Mutex::new(HashMap::new()),
            opts,
            store,
            creds: Mutex::new(HashMap::new()),
        })
    }

    /// The registry client, made on first use.
    fn client(&self) -> Result<&oci_client::Client, PullError> {
        if let Some(client) = self.client.get() {
            return Ok(client);
        }
        let client = tls::oci_client(&self.opts)?;
        Ok(self.client.get_or_init(|| client))
    }

    /// The store blobs go into.
    pub fn store(&self) -> &DirBlobStore {
        &self.store
    }

    fn credentials(&self, registry: &str) -> Result<Option<Credentials>, PullError> {
        let mut cache = self.creds.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(c) = cache.get(registry) {
            return Ok(c.clone());
        }
        let found = resolve_credentials(registry, &self.opts)
            .map_err(|source| PullError::Auth {
                registry: registry.to_string(),
                source,
            })?
            .map(|r| r.credentials);
        cache.insert(registry.to_string(), found.clone());
        Ok(found)
    }

    /// Runs `op` under the retry policy.
    async fn retry<T, F, Fut>(&self, op: F) -> Result<T, PullError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, PullError>>,
    {
        self.opts.retry.run(op, |_, _, _| {}).await
    }

    /// The context of one image's requests: its reference and the credentials for its
    /// registry (stored in the client for the token flow).
    async fn ctx(&self, r: &Reference) -> Result<Ctx<'_>, PullError> {
        let registry = r.resolve_registry().to_string();
        let creds = self.credentials(r.registry())?;
        let had_credentials = creds.is_some();
        let auth = creds
            .as_ref()
            .map(Credentials::to_oci)
            .unwrap_or(RegistryAuth::Anonymous);
        let client = self.client()?;
        client.store_auth_if_needed(&registry, &auth).await;
        Ok(Ctx {
            puller: self,
            client,
            reference: r.clone(),
            auth,
            target: Target::new(&registry, image_name(r)),
            had_credentials,
        })
    }

    /// Resolves `reference` (`host[:port]/repo:tag` or `…@sha256:…`) keeping exactly
    /// `platforms` (all when empty): fetches, verifies and stores its manifests (and, for a
    /// single-platform image, its config), and lists its blobs, without fetching them. Fetch
    /// them with [`RegistryPuller::fetch_blob`], or use [`RegistryPuller::pull`].
    pub async fn resolve(
        &self,
        reference: &str,
        platforms: &[Platform],
        progress: &dyn Progress,
    ) -> Result<ResolvedImage, PullError> {
        let r = oci_reference(reference)?;
        let ctx = self.ctx(&r).await?;
        progress.message(&format!("resolving {reference}"));
        let top = self
            .retry(|| async {
                ctx.client_call(|c| {
                    c.pull_manifest_raw(&ctx.reference, &ctx.auth, ACCEPTED_MANIFEST_TYPES)
                })
                .await
            })
            .await?
            .0;
        let image = reference.to_string();
        let source_digest = Digest::of_bytes(&top);
        if let Some(want) = r.digest() {
            if want != source_digest.to_string() {
                return Err(PullError::BadManifest {
                    image,
                    detail: format!("registry sent manifest {source_digest} for {want}"),
                });
            }
        }
        let plan = plan(&ctx, &self.store, &image, top, None, platforms).await?;
        let pinned = format!("{}/{}@{}", r.registry(), r.repository(), source_digest);
        Ok(ResolvedImage {
            image: plan.into_image(image, pinned, source_digest, &self.store),
            reference: r,
        })
    }

    /// Pulls `reference` (`host[:port]/repo:tag` or `…@sha256:…`) keeping exactly `platforms`
    /// (all when empty) into the store. Reports bytes under the label `reference`.
    pub async fn pull(
        &self,
        reference: &str,
        platforms: &[Platform],
        progress: &dyn Progress,
    ) -> Result<PulledImage, PullError> {
        let resolved = self.resolve(reference, platforms, progress).await?;
        let ctx = self.ctx(&resolved.reference).await?;
        let image = resolved.image.reference.clone();
        let missing: Vec<&BlobRef> = resolved
            .image
            .blobs
            .iter()
            .filter(|b| !self.store.contains(&b.digest))
            .collect();
        progress.start(&image, Some(missing.iter().map(|b| b.size).sum()));
        let transferred: Vec<u64> = futures::stream::iter(missing)
            .map(|b| ctx.download(b, &image, progress))
            .buffer_unordered(self.opts.concurrency.max(1))
            .try_collect()
            .await?;
        progress.finish(&image);
        let mut pulled = resolved.image;
        pulled.bytes_transferred = transferred.iter().sum();
        Ok(pulled)
    }

    /// Downloads one blob of a resolved image into `sink` (not into the store), resuming with
    /// `Range` after transient failures, under the same concurrency limit as every download of
    /// this puller. Checks the size; the sink checks the digest when it is finished. Reports
    /// bytes under `label`; returns the bytes transferred.
    pub async fn fetch_blob(
        &self,
        image: &ResolvedImage,
        blob: &BlobRef,
        sink: &mut dyn BlobSink,
        progress: &dyn Progress,
        label: &str,
    ) -> Result<u64, PullError> {
        let ctx = self.ctx(&image.reference).await?;
        let _slot = self.slot().await?;
        ctx.fetch_into(blob, &image.image.reference, sink, progress, label)
            .await
    }

    async fn slot(&self) -> Result<tokio::sync::SemaphorePermit<'_>, PullError> {
        self.slots.acquire().await.map_err(|_| PullError::Io {
            path: self.store.root().to_path_buf(),
            source: std::io::Error::other("download slots closed"),
        })
    }
}

/// An image whose manifests are in the store and whose blobs are listed, not yet fetched
/// ([`RegistryPuller::resolve`]).
#[derive(Debug, Clone)]
pub struct ResolvedImage {
    /// The image as it will be once pulled (`bytes_transferred` is 0; `blobs_cached` counts the
    /// blobs the store held when it was resolved).
    pub image: PulledImage,
    reference: Reference,
}

/// Where a downloaded blob's bytes go, in order: a store entry, or its place in a bundle.
pub trait BlobSink: Send {
    /// Appends bytes.
    fn write_chunk(&mut self, data: &[u8]) -> std::io::Result<()>;
    /// Drops what was written and starts again from the first byte (the registry ignored a
    /// `Range` request).
    fn restart(&mut self) -> std::io::Result<()>;
    /// Where the bytes go, for errors.
    fn location(&self) -> std::path::PathBuf;
}

/// A blob being downloaded into the store.
struct StoreSink<'a> {
    store: &'a DirBlobStore,
    digest: &'a Digest,
    writer: airlift_bundle::source::BlobWriter,
}

impl BlobSink for StoreSink<'_> {
    fn write_chunk(&mut self, data: &[u8]) -> std::io::Result<()> {
        self.writer.write_all(data)
    }
    fn restart(&mut self) -> std::io::Result<()> {
        self.writer = self
            .store
            .writer(self.digest)
            .map_err(std::io::Error::other)?;
        Ok(())
    }
    fn location(&self) -> std::path::PathBuf {
        self.store.root().to_path_buf()
    }
}

/// Downloads go straight into a bundle's place for the blob; [`SlotWriter::finish`] checks the
/// digest.
impl BlobSink for SlotWriter {
    fn write_chunk(&mut self, data: &[u8]) -> std::io::Result<()> {
        SlotWriter::write_chunk(self, data).map_err(std::io::Error::other)
    }
    fn restart(&mut self) -> std::io::Result<()> {
        SlotWriter::restart(self);
        Ok(())
    }
    fn location(&self) -> std::path::PathBuf {
        self.bundle_path().to_path_buf()
    }
}

fn image_name(r: &Reference) -> String {
    match (r.tag(), r.digest()) {
        (_, Some(d)) => format!("{}@{d}", r.repository()),
        (Some(t), None) => format!("{}:{t}", r.repository()),
        (None, None) => r.repository().to_string(),
    }
}

/// One image pull in progress.
struct Ctx<'a> {
    puller: &'a RegistryPuller,
    client: &'a oci_client::Client,
    reference: Reference,
    auth: RegistryAuth,
    target: Target,
    had_credentials: bool,
}

impl Ctx<'_> {
    fn err(&self, e: oci_client::errors::OciDistributionError) -> PullError {
        if let oci_client::errors::OciDistributionError::DigestError(d) = &e {
            return PullError::BadManifest {
                image: self.target.image.clone(),
                detail: d.to_string(),
            };
        }
        RegistryError::from_oci(self.target.clone(), e, self.had_credentials).into()
    }

    async fn client_call<'c, T, Fut>(
        &'c self,
        f: impl FnOnce(&'c oci_client::Client) -> Fut,
    ) -> Result<T, PullError>
    where
        Fut: Future<Output = oci_client::errors::Result<T>>,
    {
        f(self.client).await.map_err(|e| self.err(e))
    }

    fn stream_err(&self, e: std::io::Error) -> PullError {
        let digest_problem = e
            .get_ref()
            .and_then(|i| i.downcast_ref::<oci_client::errors::DigestError>())
            .map(|d| d.to_string());
        match digest_problem {
            Some(detail) => PullError::BadManifest {
                image: self.target.image.clone(),
                detail,
            },
            None => RegistryError::from_transport(self.target.clone(), Box::new(e)).into(),
        }
    }

    /// Downloads one blob into the store, once even when several pulls want it.
    async fn download(
        &self,
        blob: &BlobRef,
        image: &str,
        progress: &dyn Progress,
    ) -> Result<u64, PullError> {
        let lock = {
            let mut map = self
                .puller
                .in_flight
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            map.entry(blob.digest.clone()).or_default().clone()
        };
        let _blob_guard = lock.lock().await;
        if self.puller.store.contains(&blob.digest) {
            // Another pull fetched it meanwhile.
            progress.advance(image, blob.size);
            return Ok(0);
        }
        let _slot = self.puller.slot().await?;
        let store = &self.puller.store;
        let store_err = |source| PullError::Store {
            image: image.to_string(),
            digest: blob.digest.clone(),
            source,
        };
        let mut sink = StoreSink {
            store,
            digest: &blob.digest,
            writer: store.writer(&blob.digest).map_err(store_err)?,
        };
        let transferred = self
            .fetch_into(blob, image, &mut sink, progress, image)
            .await?;
        sink.writer.commit().map_err(|e| match e {
            StoreError::DigestMismatch { actual, .. } => PullError::Corrupt {
                image: image.to_string(),
                digest: blob.digest.clone(),
                actual,
            },
            other => store_err(other),
        })?;
        Ok(transferred)
    }

    /// Streams one blob into `sink`, resuming with `Range` after transient failures; checks
    /// its size. Returns the bytes transferred.
    async fn fetch_into(
        &self,
        blob: &BlobRef,
        image: &str,
        sink: &mut dyn BlobSink,
        progress: &dyn Progress,
        label: &str,
    ) -> Result<u64, PullError> {
        let mut written = 0u64;
        let mut transferred = 0u64;
        let mut attempt = 1;
        loop {
            let res = self
                .stream_into(blob, sink, &mut written, &mut transferred, progress, label)
                .await;
            match res {
                Ok(()) => break,
                Err(e) => match self.puller.opts.retry.next_delay(attempt, e.retry()) {
                    Some(wait) => {
                        progress.message(&format!(
                            "retrying {} of {image} at byte {written} (attempt {}): {e}",
                            blob.digest,
                            attempt + 1
                        ));
                        tokio::time::sleep(wait).await;
                        attempt += 1;
                    }
                    None => return Err(e),
                },
            }
        }
        if written != blob.size {
            return Err(RegistryError::Protocol {
                target: self.target.clone(),
                detail: format!(
                    "blob {} is {written} bytes, the manifest says {}",
                    blob.digest, blob.size
                ),
            }
            .into());
        }
        Ok(transferred)
    }

    async fn stream_into(
        &self,
        blob: &BlobRef,
        sink: &mut dyn BlobSink,
        written: &mut u64,
        transferred: &mut u64,
        progress: &dyn Progress,
        label: &str,
    ) -> Result<(), PullError> {
        let digest = blob.digest.to_string();
        let sink_err = |sink: &dyn BlobSink, source| PullError::Write {
            path: sink.location(),
            source,
        };
        // Always a ranged request (`bytes=N-`, from 0 at first): the client then hands the bytes
        // over unhashed and the sink hashes them, once. A registry that ignores the range sends
        // the whole blob, which the client also hashes.
        let offset = *written;
        let response = self
            .client_call(|c| {
                c.pull_blob_stream_partial(&self.reference, digest.as_str(), offset, None)
            })
            .await
            .map_err(|e| match e {
                PullError::Registry(RegistryError::NotFound { target, .. }) => {
                    PullError::Registry(RegistryError::NotFound {
                        target,
                        what: format!("blob {}", blob.digest),
                    })
                }
                other => other,
            })?;
        let mut stream = match response {
            BlobResponse::Partial(s) => s,
            BlobResponse::Full(s) => {
                if offset > 0 {
                    // The registry ignored the range: start over.
                    sink.restart().map_err(|e| sink_err(sink, e))?;
                    *written = 0;
                }
                s
            }
        };
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| self.stream_err(e))?;
            let n = chunk.len() as u64;
            if *written + n > blob.size {
                return Err(RegistryError::Protocol {
                    target: self.target.clone(),
                    detail: format!(
                        "blob {} is longer than the {} bytes the manifest says",
                        blob.digest, blob.size
                    ),
                }
                .into());
            }
            sink.write_chunk(&chunk).map_err(|e| sink_err(sink, e))?;
            *written += n;
            *transferred += n;
            progress.advance(label, n);
        }
        Ok(())
    }
}

impl FetchDoc for Ctx<'_> {
    fn fetch_doc<'a>(
        &'a self,
        desc: &'a Descriptor,
        kind: DocKind,
    ) -> BoxFuture<'a, Result<Vec<u8>, PullError>> {
        Box::pin(async move {
            match kind {
                DocKind::Manifest => {
                    let r = self.reference.clone_with_digest(desc.digest.to_string());
                    self.puller
                        .retry(|| async {
                            self.client_call(|c| {
                                c.pull_manifest_raw(&r, &self.auth, ACCEPTED_MANIFEST_TYPES)
                            })
                            .await
                        })
                        .await
                        .map(|(bytes, _)| bytes)
                }
                DocKind::Config => {
                    let digest = desc.digest.to_string();
                    let digest = &digest;
                    self.puller
                        .retry(|| async {
                            let mut s = self
                                .client_call(|c| {
                                    c.pull_blob_stream(&self.reference, digest.as_str())
                                })
                                .await?;
                            let mut out = Vec::new();
                            while let Some(chunk) = s.next().await {
                                let chunk = chunk.map_err(|e| self.stream_err(e))?;
                                if out.len() as u64 + chunk.len() as u64 > kind.limit() {
                                    return Err(PullError::BadManifest {
                                        image: self.target.image.clone(),
                                        detail: format!(
                                            "config {digest} is larger than {} bytes",
                                            kind.limit()
                                        ),
                                    });
                                }
                                out.extend_from_slice(&chunk);
                            }
                            Ok(out)
                        })
                        .await
                }
            }
        })
    }
}

/// `reference` as the OCI client takes it, parsed by the project's own grammar
/// ([`ImageRef::parse`]: Docker's, in ASCII). The OCI client's own parser compiles a regular
/// expression with Unicode classes repeated 128 times, which cost every command that talks to a
/// registry tens of milliseconds of CPU before its first request.
fn oci_reference(reference: &str) -> Result<Reference, PullError> {
    let parsed = ImageRef::parse(reference).map_err(|source| PullError::Reference {
        reference: reference.to_string(),
        source,
    })?;
    let ImageRef {
        registry,
        repository,
        tag,
        digest,
    } = parsed;
    Ok(match (tag, digest) {
        (Some(tag), Some(digest)) => {
            Reference::with_tag_and_digest(registry, repository, tag, digest.to_string())
        }
        (None, Some(digest)) => Reference::with_digest(registry, repository, digest.to_string()),
        (tag, None) => Reference::with_tag(
            registry,
            repository,
            tag.unwrap_or_else(|| "latest".to_string()),
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_reach_the_client_as_its_own_parser_would_give_them() {
        let digest = format!("sha256:{}", "ab".repeat(32));
        for reference in [
            "registry.acme.io:5000/team/api:1.2.3".to_string(),
            "127.0.0.1:5000/acme/svc-0:1.0".to_string(),
            "nginx".to_string(),
            "docker.io/library/nginx:1.27".to_string(),
            "ghcr.io/acme/tool".to_string(),
            format!("registry.acme.io/api@{digest}"),
            format!("registry.acme.io/api:1.0@{digest}"),
            format!("localhost:5000/a/b/c:v_1.0-rc.1@{digest}"),
        ] {
            let ours = oci_reference(&reference).unwrap();
            let theirs: Reference = reference.parse().unwrap();
            assert_eq!(ours.registry(), theirs.registry(), "{reference}");
            assert_eq!(ours.repository(), theirs.repository(), "{reference}");
            assert_eq!(ours.digest(), theirs.digest(), "{reference}");
            // The client's parser leaves the tag out when none is given; both mean `latest`.
            assert_eq!(
                ours.tag().unwrap_or("latest"),
                theirs.tag().unwrap_or("latest"),
                "{reference}"
            );
            assert_eq!(ours.whole(), theirs.whole(), "{reference}");
        }
    }

    #[test]
    fn a_reference_outside_the_grammar_is_refused_by_name() {
        for bad in [
            "",
            "Acme/API:1",
            "acme/api:tag with space",
            "acme/api@sha256:12",
        ] {
            match oci_reference(bad) {
                Err(PullError::Reference { reference, .. }) => assert_eq!(reference, bad),
                other => panic!("{bad:?}: {other:?}"),
            }
        }
    }
}
