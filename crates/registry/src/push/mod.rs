//! Push a set of images from any [`BlobSource`] into a registry, resumably.
//!
//! For each image (original reference, top-level digest, media type) the manifest graph is read
//! from the source first (manifests are small and size-capped; layers are never read into
//! memory). Then, per image and in parallel, with at most `concurrency` transfers at a time:
//!
//! 1. if the target tag already points at the image's digest, nothing is sent;
//! 2. for every manifest, children first: when the registry already holds the manifest by digest,
//!    its whole subtree is complete (a registry accepts a manifest only when its blobs are there)
//!    and is skipped; otherwise every blob is ensured: skipped when a `HEAD` finds it, mounted
//!    from another repository of this push that holds it, or streamed from the source;
//! 3. a manifest is `PUT` by digest only after all its blobs, an index only after all its
//!    manifests, with the exact original bytes and media type; a registry that then answers that
//!    one of them is unknown (another push rewriting the same blob's link) has them checked,
//!    restored and the manifest written again (`manifests`);
//! 4. the tag is set last, so a tag never points at something incomplete.
//!
//! [`push_verifying`] also hashes every blob while it streams, so an unverified bundle is read
//! once: a blob that does not match its digest is never committed, and nothing above it written.
//! [`push_verifying_mounting`] does the same for a source whose blobs the destination registry
//! also holds in another repository (a bundle published to that same registry): it asks the
//! registry to mount each missing blob from there first, and streams only what it declines.
//!
//! Killing the process at any point leaves only complete, untagged content and whole blobs
//! behind; running the push again skips everything the registry holds.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use airlift_bundle::walk::{walk_image, ImageGraph, SmallReadError, WalkError};
use airlift_bundle::{BlobSource, Digest, Progress};
use futures::future::{try_join_all, BoxFuture};
use futures::FutureExt;
use serde::Serialize;
use tokio::sync::Semaphore;

use crate::client::RegistryClient;
use crate::error::RegistryError;
use crate::mapping::{Destination, MappingError, Relocated, RelocationMap};
use crate::upload::BlobPush;
use airlift_bundle::reference::ImageRef;

mod manifests;
mod stage;

/// The progress label of the overall byte count.
pub const OVERALL_LABEL: &str = "push";

/// One image to push.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushImage {
    /// The reference the bundle records (and the workloads use).
    pub reference: String,
    /// The digest of the top-level manifest or index.
    pub digest: Digest,
    /// The media type of that manifest or index.
    pub media_type: String,
}

impl From<&airlift_bundle::schema::manifest::ImageRecord> for PushImage {
    fn from(r: &airlift_bundle::schema::manifest::ImageRecord) -> Self {
        Self {
            reference: r.reference.clone(),
            digest: r.digest.clone(),
            media_type: r.media_type.clone(),
        }
    }
}

/// Errors from a push.
#[derive(Debug, thiserror::Error)]
pub enum PushError {
    /// An image reference does not parse.
    #[error("cannot map image to the target registry")]
    Mapping(#[source] MappingError),
    /// An image's manifests or blobs in the source are missing, damaged or invalid.
    #[error(transparent)]
    Walk(#[from] WalkError),
    /// A manifest could not be read again from the source to be sent.
    #[error("cannot read manifest {digest} of image `{image}` from the bundle")]
    ReadManifest {
        /// The image.
        image: String,
        /// The manifest.
        digest: Digest,
        /// The cause.
        #[source]
        source: SmallReadError,
    },
    /// A blob's bytes in the source do not match its digest (found while streaming it): its
    /// upload was cut short and cancelled, and no manifest or tag above it was written.
    #[error(
        "blob {digest} of image `{image}` failed verification: the bundle holds bytes with \
         digest {actual}; the registry committed none of it"
    )]
    Tampered {
        /// The image.
        image: String,
        /// The blob's listed digest.
        digest: Digest,
        /// The digest of the bytes found.
        actual: Digest,
    },
    /// Reading a blob from the source failed (the bundle file, or the registry a published
    /// bundle is read from): its upload was cut short and cancelled, and no manifest or tag
    /// above it was written.
    #[error("cannot read blob {digest} of image `{image}` from the source; the registry committed none of it")]
    Source {
        /// The image.
        image: String,
        /// The blob.
        digest: Digest,
        /// The source's error (a [`RegistryError`] inside for a registry source).
        #[source]
        source: std::io::Error,
    },
    /// The registry refused or failed; the image is left untagged.
    #[error("failed to push image `{image}` to `{destination}`")]
    Registry {
        /// The original reference.
        image: String,
        /// The target repository.
        destination: String,
        /// The registry failure.
        #[source]
        source: Box<RegistryError>,
    },
}

impl PushError {
    /// How the operator can fix this.
    pub fn hint(&self) -> String {
        if let Some(e) = self.source_registry_error() {
            return e.hint();
        }
        match self {
            Self::Registry { source, .. } => source.hint(),
            Self::Mapping(e) => airlift_bundle::Diagnose::fix(e).unwrap_or_default(),
            _ => "the bundle is incomplete or damaged: run `airlift-install verify` on it, \
                  or ask the vendor for a new copy"
                .to_string(),
        }
    }

    /// The failure of the source's registry, when the source is a registry ([`crate::artifact_source`])
    /// and reading it is what failed: the error its reads carry inside their `io::Error`.
    pub fn source_registry_error(&self) -> Option<&RegistryError> {
        source_registry_error(self.source_io()?)
    }

    /// The I/O error of a failed read of the source, if that is what failed.
    pub fn source_io(&self) -> Option<&std::io::Error> {
        match self {
            Self::Source { source, .. }
            | Self::Walk(WalkError::Io { source, .. })
            | Self::ReadManifest {
                source: SmallReadError::Io(source),
                ..
            } => Some(source),
            _ => None,
        }
    }
}

/// The [`RegistryError`] an `io::Error` from a registry source carries, if any.
pub fn source_registry_error(e: &std::io::Error) -> Option<&RegistryError> {
    e.get_ref()?.downcast_ref::<RegistryError>()
}

/// One image and where it goes.
#[derive(Debug, Clone)]
struct Planned {
    image: PushImage,
    repository: String,
    tag: Option<String>,
    graph: ImageGraph,
    blob_bytes: u64,
}

impl Planned {
    /// Every config and layer under manifest `node` (a position in the graph), each once.
    fn blobs_under(&self, node: usize) -> Vec<(Digest, u64)> {
        let mut out = Vec::new();
        let mut seen = HashSet::new();
        let mut stack = vec![node];
        let mut visited = HashSet::new();
        while let Some(i) = stack.pop() {
            if !visited.insert(i) {
                continue;
            }
            let m = &self.graph.manifests[i];
            for d in &m.blobs {
                if seen.insert(d.digest.clone()) {
                    out.push((d.digest.clone(), d.size));
                }
            }
            stack.extend(m.children.iter().rev());
        }
        out
    }
}

fn plan(
    source: &dyn BlobSource,
    images: &[PushImage],
    destination: &Destination,
) -> Result<Vec<Planned>, PushError> {
    let mut seen_refs = HashSet::new();
    let mut parsed = Vec::new();
    for img in images {
        if !seen_refs.insert(img.reference.clone()) {
            continue;
        }
        let r = ImageRef::parse(&img.reference).map_err(|e| PushError::Mapping(e.into()))?;
        parsed.push((img.clone(), r));
    }
    let repos = destination.map_repositories(parsed.iter().map(|(_, r)| r));
    let mut out = Vec::new();
    for (image, r) in parsed {
        let graph = walk_image(source, &image.reference, &image.digest, &image.media_type)?;
        let blob_bytes = graph.content_blobs().iter().map(|d| d.size).sum();
        let repository = repos
            .get(&r.name())
            .cloned()
            .unwrap_or_else(|| r.repository.clone());
        out.push(Planned {
            blob_bytes,
            image,
            repository,
            tag: r.tag,
            graph,
        });
    }
    Ok(out)
}

/// What happened to one image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageReport {
    /// The original reference.
    pub reference: String,
    /// Where it went, by digest.
    pub relocated: String,
    /// The bytes of all its blobs.
    pub bytes: u64,
    /// True when the registry already held the whole image under its tag (nothing was sent).
    pub already_present: bool,
}

/// The outcome of a push.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PushReport {
    /// The registry, `host[:port]`.
    pub registry: String,
    /// Blob bytes sent.
    pub bytes_pushed: u64,
    /// Blob bytes the registry already held in the target repository.
    pub bytes_skipped: u64,
    /// Blob bytes mounted from another repository (not sent).
    pub bytes_mounted: u64,
    /// Blobs sent.
    pub blobs_pushed: u64,
    /// Blobs the registry already held.
    pub blobs_skipped: u64,
    /// Blobs mounted from another repository.
    pub blobs_mounted: u64,
    /// Manifests and indexes written (by digest and by tag).
    pub manifests_pushed: u64,
    /// Per image.
    pub images: Vec<ImageReport>,
    /// Original reference to relocated `repository@digest`.
    pub relocation_map: RelocationMap,
}

#[derive(Default)]
struct Counters {
    bytes_pushed: AtomicU64,
    bytes_skipped: AtomicU64,
    bytes_mounted: AtomicU64,
    blobs_pushed: AtomicU64,
    blobs_skipped: AtomicU64,
    blobs_mounted: AtomicU64,
    manifests_pushed: AtomicU64,
}

/// Shared state of one push.
struct Ctx<'a> {
    client: &'a RegistryClient,
    source: Arc<dyn BlobSource>,
    progress: Arc<dyn Progress>,
    permits: Semaphore,
    /// Hash every streamed blob and refuse one that does not match its digest.
    verify: bool,
    /// A repository of the destination registry that holds the source's blobs too: missing
    /// blobs are mounted from it before any is streamed.
    mount_from: Option<String>,
    /// Blobs committed by [`Ctx::stage_all`], the repository each went to, and whether it was
    /// mounted there rather than sent.
    staged: HashMap<Digest, (String, bool)>,
    /// Per blob: the repositories known to hold it. The async lock serialises work on one blob,
    /// so a second repository waits for the first upload and then mounts instead of re-sending.
    holders: Mutex<HashMap<Digest, Arc<tokio::sync::Mutex<HashSet<String>>>>>,
    /// Per blob: every repository of this push whose images use it (mount candidates).
    users: HashMap<Digest, Vec<String>>,
    /// `(image, blob)` pairs already counted in the image's progress (an index's manifests
    /// often share layers).
    accounted: Mutex<HashSet<(String, Digest)>>,
    counters: Counters,
}

impl Ctx<'_> {
    fn holder(&self, digest: &Digest) -> Arc<tokio::sync::Mutex<HashSet<String>>> {
        let mut map = self.holders.lock().unwrap_or_else(|p| p.into_inner());
        map.entry(digest.clone()).or_default().clone()
    }

    fn advance(&self, label: &str, bytes: u64) {
        self.progress.advance(label, bytes);
        self.progress.advance(OVERALL_LABEL, bytes);
    }

    /// A callback that advances the image's and the overall progress by the bytes it is given
    /// (for a blob being streamed).
    fn byte_reporter(&self, label: &str) -> Arc<dyn Fn(u64) + Send + Sync> {
        let progress = self.progress.clone();
        let label = label.to_string();
        Arc::new(move |n| {
            progress.advance(&label, n);
            progress.advance(OVERALL_LABEL, n);
        })
    }

    /// True the first time `digest` is counted for image `label`.
    fn first_for_image(&self, label: &str, digest: &Digest) -> bool {
        let mut set = self.accounted.lock().unwrap_or_else(|p| p.into_inner());
        set.insert((label.to_string(), digest.clone()))
    }

    /// Advances the image's and the overall progress by `size` once per (image, blob).
    fn account(&self, label: &str, digest: &Digest, size: u64) {
        if self.first_for_image(label, digest) {
            self.advance(label, size);
        }
    }

    fn registry_err(&self, p: &Planned, source: RegistryError) -> PushError {
        PushError::Registry {
            image: p.image.reference.clone(),
            destination: format!("{}/{}", self.client.registry(), p.repository),
            source: Box::new(source),
        }
    }

    /// Makes sure `repo` holds the blob; counts and reports it once per repository.
    async fn ensure_blob(&self, p: &Planned, digest: &Digest, size: u64) -> Result<(), PushError> {
        let repo = p.repository.as_str();
        let label = p.image.reference.as_str();
        let holder = self.holder(digest);
        let mut held = holder.lock().await;
        if held.contains(repo) {
            self.account(label, digest, size);
            return Ok(());
        }
        let _permit = self.permits.acquire().await.ok();
        if self
            .client
            .blob_exists(repo, digest)
            .await
            .map_err(|e| self.registry_err(p, e))?
            .is_some()
        {
            held.insert(repo.to_string());
            let c = &self.counters;
            let (bytes, blobs) = match self.staged.get(digest) {
                Some((r, false)) if r == repo => (&c.bytes_pushed, &c.blobs_pushed),
                Some((r, true)) if r == repo => (&c.bytes_mounted, &c.blobs_mounted),
                _ => (&c.bytes_skipped, &c.blobs_skipped),
            };
            bytes.fetch_add(size, Ordering::Relaxed);
            blobs.fetch_add(1, Ordering::Relaxed);
            self.account(label, digest, size);
            return Ok(());
        }
        // Prefer a repository known to hold it; otherwise one this push also fills (it may hold
        // it from an earlier run; if not, the registry just opens a normal upload).
        let from = held
            .iter()
            .find(|r| r.as_str() != repo)
            .cloned()
            .or_else(|| {
                self.users
                    .get(digest)
                    .and_then(|u| u.iter().find(|r| r.as_str() != repo).cloned())
            });
        self.first_for_image(label, digest);
        let on_bytes = self.byte_reporter(label);
        let sent = Arc::new(AtomicU64::new(0));
        let sent_in = sent.clone();
        let counting: Arc<dyn Fn(u64) + Send + Sync> = Arc::new(move |n| {
            sent_in.fetch_add(n, Ordering::Relaxed);
            on_bytes(n);
        });
        let mounted = match self
            .client
            .push_blob(
                repo,
                digest,
                size,
                self.source.clone(),
                from.as_deref(),
                self.verify,
                counting,
            )
            .await
            .map_err(|e| self.registry_err(p, e))?
        {
            BlobPush::Sent => false,
            BlobPush::Mounted => true,
            BlobPush::Mismatch { actual } => {
                return Err(PushError::Tampered {
                    image: p.image.reference.clone(),
                    digest: digest.clone(),
                    actual,
                })
            }
            BlobPush::Unreadable { error } => {
                return Err(PushError::Source {
                    image: p.image.reference.clone(),
                    digest: digest.clone(),
                    source: error,
                })
            }
        };
        held.insert(repo.to_string());
        if mounted {
            self.counters
                .bytes_mounted
                .fetch_add(size, Ordering::Relaxed);
            self.counters.blobs_mounted.fetch_add(1, Ordering::Relaxed);
            self.advance(label, size.saturating_sub(sent.load(Ordering::Relaxed)));
        } else {
            self.counters
                .bytes_pushed
                .fetch_add(size, Ordering::Relaxed);
            self.counters.blobs_pushed.fetch_add(1, Ordering::Relaxed);
            // Bytes already reported while streaming; report any remainder (a zero-byte blob).
            let streamed = sent.load(Ordering::Relaxed);
            if size > streamed {
                self.advance(label, size - streamed);
            }
        }
        Ok(())
    }

    /// Forgets that the image's repository holds `digest` (the registry lost it), so the next
    /// [`Ctx::ensure_blob`] checks and sends it again.
    async fn forget_held(&self, p: &Planned, digest: &Digest) {
        self.holder(digest).lock().await.remove(&p.repository);
    }

    /// Marks every blob under `node` as held by the image's repository (the registry holds the
    /// manifest, so it holds them), counting newly known ones as skipped.
    async fn mark_present(&self, p: &Planned, node: usize) {
        for (digest, size) in p.blobs_under(node) {
            let holder = self.holder(&digest);
            let mut held = holder.lock().await;
            if held.insert(p.repository.clone()) {
                self.counters
                    .bytes_skipped
                    .fetch_add(size, Ordering::Relaxed);
                self.counters.blobs_skipped.fetch_add(1, Ordering::Relaxed);
            }
            self.account(&p.image.reference, &digest, size);
        }
    }

    /// Pushes manifest `node` and everything under it, children first, and `PUT`s it by digest.
    fn push_node<'s>(
        &'s self,
        p: &'s Planned,
        node: usize,
    ) -> BoxFuture<'s, Result<(), PushError>> {
        async move {
            let m = &p.graph.manifests[node];
            let digest = m.descriptor.digest.to_string();
            if self.manifest_head(p, &digest).await?.is_some() {
                self.mark_present(p, node).await;
                return Ok(());
            }
            if m.is_index() {
                try_join_all(m.children.iter().map(|&c| self.push_node(p, c))).await?;
            } else {
                try_join_all(
                    m.blobs
                        .iter()
                        .map(|d| self.ensure_blob(p, &d.digest, d.size)),
                )
                .await?;
            }
            self.put_manifest(p, node, &digest).await
        }
        .boxed()
    }

    async fn push_image(&self, p: &Planned) -> Result<bool, PushError> {
        let label = p.image.reference.as_str();
        self.progress.start(label, Some(p.blob_bytes));
        // Tagged: the tag already names this digest. By digest only: the registry has it.
        let probe = p.tag.clone().unwrap_or_else(|| p.image.digest.to_string());
        let head = self.manifest_head(p, &probe).await?;
        let done = match (&p.tag, head) {
            (Some(_), Some(h)) => h.digest.as_ref() == Some(&p.image.digest),
            (None, found) => found.is_some(),
            (Some(_), None) => false,
        };
        if done {
            self.mark_present(p, 0).await;
            self.progress.finish(label);
            return Ok(true);
        }
        self.push_node(p, 0).await?;
        if let Some(tag) = &p.tag {
            self.put_manifest(p, 0, tag).await?;
        }
        self.progress.finish(label);
        Ok(false)
    }
}

/// How a push treats its source's blobs.
enum Mode {
    /// Verified before (a bundle file with a full verification or proof): streamed as is.
    Trusted,
    /// Hashed while streamed; mounted first from `mount_from` when given.
    Verifying { mount_from: Option<String> },
}

/// Pushes `images` from `source` to `destination` through `client`, with at most `concurrency`
/// transfers at once. See the module docs for the order and the resume rules. The source is
/// trusted as it is (a bundle verified before): blobs are streamed without hashing; use
/// [`push_verifying`] for a source whose blobs are not verified yet.
pub async fn push(
    client: &RegistryClient,
    source: Arc<dyn BlobSource>,
    images: &[PushImage],
    destination: &Destination,
    concurrency: usize,
    progress: Arc<dyn Progress>,
) -> Result<PushReport, PushError> {
    push_with(
        client,
        source,
        images,
        destination,
        concurrency,
        Mode::Trusted,
        progress,
    )
    .await
}

/// Like [`push`], but every blob streamed from `source` is hashed on the way and its last chunk
/// held back until it matches its digest; a mismatch cuts that upload short (the registry commits
/// nothing of it) and fails with [`PushError::Tampered`], so no manifest or tag is written above a
/// blob that did not verify. Blobs the registry already holds, or mounts, are not read at all:
/// the registry holds them under their digest. Manifests are always checked when read.
pub async fn push_verifying(
    client: &RegistryClient,
    source: Arc<dyn BlobSource>,
    images: &[PushImage],
    destination: &Destination,
    concurrency: usize,
    progress: Arc<dyn Progress>,
) -> Result<PushReport, PushError> {
    let mode = Mode::Verifying { mount_from: None };
    push_with(
        client,
        source,
        images,
        destination,
        concurrency,
        mode,
        progress,
    )
    .await
}

/// [`push_verifying`] for a source whose blobs the destination registry holds as well, in
/// repository `mount_from` (a bundle published to the same registry it is relocated into):
/// each blob the target repositories lack is first requested as a cross-repository mount from
/// `mount_from`, which sends no bytes (the registry holds it under its digest); only a blob the
/// registry declines to mount is streamed, hashed, and staged as [`push_verifying`] does.
pub async fn push_verifying_mounting(
    client: &RegistryClient,
    source: Arc<dyn BlobSource>,
    images: &[PushImage],
    destination: &Destination,
    concurrency: usize,
    mount_from: &str,
    progress: Arc<dyn Progress>,
) -> Result<PushReport, PushError> {
    let mode = Mode::Verifying {
        mount_from: Some(mount_from.to_string()),
    };
    push_with(
        client,
        source,
        images,
        destination,
        concurrency,
        mode,
        progress,
    )
    .await
}

async fn push_with(
    client: &RegistryClient,
    source: Arc<dyn BlobSource>,
    images: &[PushImage],
    destination: &Destination,
    concurrency: usize,
    mode: Mode,
    progress: Arc<dyn Progress>,
) -> Result<PushReport, PushError> {
    let (verify, mount_from) = match mode {
        Mode::Trusted => (false, None),
        Mode::Verifying { mount_from } => (true, mount_from),
    };
    let planned = {
        let source = source.clone();
        let images = images.to_vec();
        let destination = destination.clone();
        tokio::task::spawn_blocking(move || plan(&*source, &images, &destination))
            .await
            .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()))?
    };
    let mut users: HashMap<Digest, Vec<String>> = HashMap::new();
    for p in &planned {
        for (d, _) in p.blobs_under(0) {
            let u = users.entry(d).or_default();
            if !u.contains(&p.repository) {
                u.push(p.repository.clone());
            }
        }
    }
    let total: u64 = planned.iter().map(|p| p.blob_bytes).sum();
    progress.start(OVERALL_LABEL, Some(total));
    let mut ctx = Ctx {
        client,
        source,
        progress: progress.clone(),
        permits: Semaphore::new(concurrency.max(1)),
        verify,
        mount_from,
        staged: HashMap::new(),
        holders: Mutex::new(HashMap::new()),
        users,
        accounted: Mutex::new(HashSet::new()),
        counters: Counters::default(),
    };
    if verify {
        ctx.staged = ctx.stage_all(&planned, concurrency.max(1)).await?;
    }
    let present = try_join_all(planned.iter().map(|p| ctx.push_image(p))).await?;
    progress.finish(OVERALL_LABEL);

    let registry = client.registry().to_string();
    let mut relocation_map = RelocationMap::default();
    let mut reports = Vec::new();
    for (p, already_present) in planned.iter().zip(present) {
        let repository = format!("{registry}/{}", p.repository);
        let reference = format!("{repository}@{}", p.image.digest);
        relocation_map.images.insert(
            p.image.reference.clone(),
            Relocated {
                reference: reference.clone(),
                repository,
                tag: p.tag.clone(),
                digest: p.image.digest.clone(),
            },
        );
        reports.push(ImageReport {
            reference: p.image.reference.clone(),
            relocated: reference,
            bytes: p.blob_bytes,
            already_present,
        });
    }
    let c = &ctx.counters;
    Ok(PushReport {
        registry,
        bytes_pushed: c.bytes_pushed.load(Ordering::Relaxed),
        bytes_skipped: c.bytes_skipped.load(Ordering::Relaxed),
        bytes_mounted: c.bytes_mounted.load(Ordering::Relaxed),
        blobs_pushed: c.blobs_pushed.load(Ordering::Relaxed),
        blobs_skipped: c.blobs_skipped.load(Ordering::Relaxed),
        blobs_mounted: c.blobs_mounted.load(Ordering::Relaxed),
        manifests_pushed: c.manifests_pushed.load(Ordering::Relaxed),
        images: reports,
        relocation_map,
    })
}

/// The repository each image goes to, without pushing (for `--dry-run` style displays).
pub fn plan_repositories(
    images: &[PushImage],
    destination: &Destination,
) -> Result<BTreeMap<String, String>, PushError> {
    let refs = images
        .iter()
        .map(|i| ImageRef::parse(&i.reference).map(|r| (i.reference.clone(), r)))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| PushError::Mapping(e.into()))?;
    let repos = destination.map_repositories(refs.iter().map(|(_, r)| r));
    Ok(refs
        .into_iter()
        .map(|(orig, r)| {
            let repo = repos.get(&r.name()).cloned().unwrap_or(r.repository);
            (orig, format!("{}/{repo}", destination.registry))
        })
        .collect())
}
