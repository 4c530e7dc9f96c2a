//! A published bundle opened in place: `install`, `upgrade` and `plan` of `oci://HOST/REPO:TAG`
//! read its members (manifest, signature, component files: kilobytes) into an anonymous
//! temporary file and leave its blobs in the vendor's registry. Relocation then streams each
//! image blob from the artifact's repository straight into the customer's registry
//! ([`crate::push::push_verifying`] hashes it on the way): no image byte is written locally.
//!
//! Order of work, as for a pull ([`crate::artifact_pull`]): the artifact manifest (bounded); the
//! `airlift.yaml` and signature layers (bounded, digest checked); the signature under the
//! operator's trust policy **before** the manifest is parsed; the layer list against the members
//! the signed manifest implies; only then the member layers (each digest checked as it
//! arrives). The blobs are served by [`ArtifactBlobs`], which reads only the blobs the signed
//! manifest lists and no further than their signed sizes.

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::sync::{Arc, Mutex};

use airlift_bundle::reader::blob_member_path;
use airlift_bundle::walk::{SmallReadError, WalkError};
use airlift_bundle::{BlobSource, Bundle, Digest, Progress, Trust};
use bytes::Bytes;
use http::header::{CONTENT_LENGTH, CONTENT_RANGE, RANGE};
use http::StatusCode;

use crate::artifact::{ArtifactError, OciReference};
use crate::artifact_pull::{resolve, write_members, Resolved};
use crate::client::{RegistryClient, Retries};
use crate::error::RegistryError;
use crate::fetch::pull_scope;
use crate::push::PushError;
use crate::retry::Retryable;

/// Streams kept open between two reads of the same blob (a reader that stopped half way leaves
/// one behind; the oldest is dropped beyond this).
const MAX_IDLE_STREAMS: usize = 16;

/// Opens the bundle published at `oci` without downloading its blobs: resolves it (signature,
/// then layer list, see the module docs), writes its members to an anonymous temporary file
/// (in `TMPDIR`, removed by the system when the bundle is dropped), and returns a bundle whose
/// blobs are read from the artifact's repository through `client`. Its [`Bundle::path`] is
/// `oci://HOST/REPO:TAG`.
///
/// The blobs are read with blocking calls on the Tokio runtime this is called on, which must
/// outlive the bundle: read them from blocking threads (`spawn_blocking`, as the push and the
/// graph walk do) of that runtime.
pub async fn open_published(
    client: Arc<RegistryClient>,
    oci: &OciReference,
    trust: &Trust,
    progress: &dyn Progress,
) -> Result<Bundle, ArtifactError> {
    let resolved = resolve(&client, oci, trust).await?;
    let origin = format!("oci://{}", resolved.reference);
    let temp = format!("a temporary file in TMPDIR for the members of {origin}");
    let io_err = |source| ArtifactError::Io {
        path: temp.clone(),
        source,
    };
    let file = tempfile::tempfile().map_err(io_err)?;
    let handle = tokio::runtime::Handle::try_current().map_err(|e| io_err(io::Error::other(e)))?;
    write_members(
        &client,
        &resolved,
        file.try_clone().map_err(io_err)?,
        &temp,
        progress,
    )
    .await?;
    let blobs = Arc::new(ArtifactBlobs::new(client, &resolved, handle));
    Bundle::open_members_trusted(file, &origin, trust, blobs).map_err(|source| {
        ArtifactError::Bundle {
            reference: resolved.reference.clone(),
            source: Box::new(source),
        }
    })
}

/// The blobs of a published bundle, read from its artifact's repository: a [`BlobSource`] for
/// [`Bundle::open_members_trusted`]. Only the blobs the signed manifest lists are served, with
/// their signed sizes. A sequential reader gets one streamed `GET` per blob: a read that
/// continues where the last one of that blob stopped continues its response; any other offset
/// opens a `Range` request. A response cut mid-way is resumed at the byte it stopped, as the
/// client's [`crate::RetryPolicy`] allows. Nothing is hashed here: bytes are only as good as
/// the consumer's check (the verifying push hashes every blob before committing it).
///
/// Errors are `io::Error`s carrying the [`RegistryError`] (see
/// [`crate::push::source_registry_error`]): a body that is shorter or longer than the signed
/// size is [`RegistryError::Protocol`].
pub struct ArtifactBlobs {
    client: Arc<RegistryClient>,
    repository: String,
    sizes: HashMap<Digest, u64>,
    handle: tokio::runtime::Handle,
    idle: Mutex<Vec<OpenBlob>>,
}

impl std::fmt::Debug for ArtifactBlobs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ArtifactBlobs")
            .field("registry", &self.client.registry())
            .field("repository", &self.repository)
            .field("blobs", &self.sizes.len())
            .finish_non_exhaustive()
    }
}

/// One blob's response being read.
struct OpenBlob {
    digest: Digest,
    /// The blob offset of the next byte the response yields.
    pos: u64,
    resp: reqwest::Response,
    /// Received and not yet handed out.
    pending: Bytes,
}

impl ArtifactBlobs {
    /// The blobs `resolved` lists, read from its repository through `client`, blocking on
    /// `handle`'s runtime.
    pub fn new(
        client: Arc<RegistryClient>,
        resolved: &Resolved,
        handle: tokio::runtime::Handle,
    ) -> Self {
        Self {
            client,
            repository: resolved.repository.clone(),
            sizes: resolved
                .manifest
                .blobs
                .iter()
                .map(|b| (b.digest.clone(), b.size))
                .collect(),
            handle,
            idle: Mutex::new(Vec::new()),
        }
    }

    /// The registry, `host[:port]`.
    pub fn registry(&self) -> &str {
        self.client.registry()
    }

    /// The artifact's repository, which holds every blob.
    pub fn repository(&self) -> &str {
        &self.repository
    }

    fn block<T>(&self, fut: impl Future<Output = T>) -> T {
        // On a blocking thread this only runs `block_on`; on a worker of a multi-thread
        // runtime it first hands the worker's other tasks away.
        tokio::task::block_in_place(|| self.handle.block_on(fut))
    }

    fn take_idle(&self, digest: &Digest, pos: u64) -> Option<OpenBlob> {
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        let i = idle
            .iter()
            .position(|o| &o.digest == digest && o.pos == pos)?;
        Some(idle.swap_remove(i))
    }

    fn keep_idle(&self, open: OpenBlob) {
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        if idle.len() >= MAX_IDLE_STREAMS {
            idle.remove(0);
        }
        idle.push(open);
    }

    /// `GET` blob `digest` from `offset` (a `Range` request past 0), its size checked against
    /// the signed `size`.
    async fn open(
        &self,
        digest: &Digest,
        offset: u64,
        size: u64,
    ) -> Result<OpenBlob, RegistryError> {
        let repo = &self.repository;
        let c = &self.client;
        let target = c.target(format!("{repo}@{digest}"));
        let url = c.url(&format!("{repo}/blobs/{digest}"));
        let scope = pull_scope(repo);
        let mut resp = c
            .send(&target, Some(&scope), Retries::Yes, &url, || {
                let req = c.http_client().get(url.clone());
                if offset > 0 {
                    req.header(RANGE, format!("bytes={offset}-"))
                } else {
                    req
                }
            })
            .await?;
        let bad = |detail: String| RegistryError::Protocol {
            target: target.clone(),
            detail,
        };
        let header = |resp: &reqwest::Response, name| {
            resp.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        let mut skip = 0;
        match resp.status() {
            StatusCode::PARTIAL_CONTENT => {
                let range = header(&resp, CONTENT_RANGE).unwrap_or_default();
                let (start, total) = parse_content_range(&range)
                    .ok_or_else(|| bad(format!("a range answer with Content-Range `{range}`")))?;
                if start != offset || total.is_some_and(|t| t != size) {
                    return Err(bad(format!(
                        "asked for byte {offset} of {size}, got Content-Range `{range}`"
                    )));
                }
            }
            s if s.is_success() => {
                let length = header(&resp, CONTENT_LENGTH).and_then(|v| v.parse::<u64>().ok());
                if let Some(length) = length.filter(|l| *l != size) {
                    return Err(bad(format!(
                        "the blob served has {length} bytes, the signed manifest lists {size}"
                    )));
                }
                // The registry ignored the range: skip to the offset.
                skip = offset;
            }
            StatusCode::NOT_FOUND => {
                return Err(RegistryError::NotFound {
                    target,
                    what: format!("blob {digest}"),
                })
            }
            s => return Err(c.status_error(target, s, resp).await),
        }
        while skip > 0 {
            let chunk = resp
                .chunk()
                .await
                .map_err(|e| RegistryError::from_body(target.clone(), e))?
                .ok_or_else(|| bad(format!("the blob ended before byte {offset}")))?;
            let n = (chunk.len() as u64).min(skip);
            skip -= n;
            if skip == 0 {
                let rest = chunk.slice(usize::try_from(n).unwrap_or(chunk.len())..);
                return Ok(OpenBlob {
                    digest: digest.clone(),
                    pos: offset,
                    resp,
                    pending: rest,
                });
            }
        }
        Ok(OpenBlob {
            digest: digest.clone(),
            pos: offset,
            resp,
            pending: Bytes::new(),
        })
    }

    /// Fills `buf` from `open` (at most to the blob's end); returns how many bytes.
    async fn fill(
        &self,
        open: &mut OpenBlob,
        size: u64,
        buf: &mut [u8],
    ) -> Result<usize, RegistryError> {
        let mut filled = 0;
        while filled < buf.len() && open.pos < size {
            if open.pending.is_empty() {
                let target = self
                    .client
                    .target(format!("{}@{}", self.repository, open.digest));
                match open
                    .resp
                    .chunk()
                    .await
                    .map_err(|e| RegistryError::from_body(target.clone(), e))?
                {
                    Some(chunk) => open.pending = chunk,
                    None => {
                        return Err(RegistryError::Protocol {
                            target,
                            detail: format!(
                                "the blob ended after {} of its {size} signed bytes",
                                open.pos
                            ),
                        })
                    }
                }
            }
            let room = usize::try_from(size - open.pos).unwrap_or(usize::MAX);
            let n = open.pending.len().min(buf.len() - filled).min(room);
            buf[filled..filled + n].copy_from_slice(&open.pending[..n]);
            open.pending = open.pending.slice(n..);
            open.pos += n as u64;
            filled += n;
        }
        Ok(filled)
    }

    /// Reads `buf` at `offset` of `digest`, resuming a cut response at the byte it stopped.
    async fn read_at(
        &self,
        digest: &Digest,
        offset: u64,
        size: u64,
        buf: &mut [u8],
    ) -> Result<usize, RegistryError> {
        let retry = self.client.retry_policy();
        let mut open = self.take_idle(digest, offset);
        let mut filled = 0;
        let mut attempt = 0;
        loop {
            let at = offset + filled as u64;
            let mut current = match open.take() {
                Some(o) => o,
                None => self.open(digest, at, size).await?,
            };
            match self.fill(&mut current, size, &mut buf[filled..]).await {
                Ok(n) => {
                    filled += n;
                    if current.pos < size {
                        self.keep_idle(current);
                    }
                    return Ok(filled);
                }
                Err(e) => {
                    // What arrived before the cut is good: continue from there.
                    filled = usize::try_from(current.pos - offset).unwrap_or(filled);
                    attempt += 1;
                    match retry.next_delay(attempt, e.retry()) {
                        Some(wait) => tokio::time::sleep(wait).await,
                        None => return Err(e),
                    }
                }
            }
        }
    }
}

impl BlobSource for ArtifactBlobs {
    fn blob_size(&self, digest: &Digest) -> Option<u64> {
        self.sizes.get(digest).copied()
    }

    fn read_blob_at(&self, digest: &Digest, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
        let size = *self.sizes.get(digest).ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::NotFound,
                format!("blob {digest} is not listed by the published bundle"),
            )
        })?;
        if offset >= size || buf.is_empty() {
            return Ok(0);
        }
        let want = usize::try_from(size - offset)
            .unwrap_or(usize::MAX)
            .min(buf.len());
        self.block(self.read_at(digest, offset, size, &mut buf[..want]))
            .map_err(io::Error::other)
    }
}

/// `bytes START-END/TOTAL` (TOTAL may be `*`): the start and the total.
fn parse_content_range(value: &str) -> Option<(u64, Option<u64>)> {
    let rest = value.trim().strip_prefix("bytes ")?;
    let (range, total) = rest.split_once('/')?;
    let (start, _) = range.split_once('-')?;
    let total = match total.trim() {
        "*" => None,
        t => Some(t.parse().ok()?),
    };
    Some((start.trim().parse().ok()?, total))
}

/// For a push from a bundle opened by [`open_published`] (named `reference`): the failures
/// that are the source's, as the [`ArtifactError`] a pull reports for them. Bytes that do not
/// hash to their signed digest, or a body of another size, are
/// [`ArtifactError::LayerDigest`] (a trust failure); the source registry failing to answer is
/// [`ArtifactError::Registry`]. Any other failure (the destination's) comes back unchanged.
pub fn source_failure(reference: &str, e: PushError) -> Result<ArtifactError, PushError> {
    let layer = |digest: &Digest| ArtifactError::LayerDigest {
        reference: reference.to_string(),
        path: blob_member_path(digest),
        digest: digest.clone(),
    };
    match &e {
        PushError::Tampered { digest, .. }
        | PushError::Walk(WalkError::DigestMismatch { digest, .. })
        | PushError::ReadManifest {
            digest,
            source: SmallReadError::DigestMismatch { .. },
            ..
        } => return Ok(layer(digest)),
        _ => {}
    }
    let Some(registry) = e.source_registry_error() else {
        return Err(e);
    };
    let protocol = matches!(registry, RegistryError::Protocol { .. });
    let (digest, source) = match e {
        PushError::Source { digest, source, .. }
        | PushError::Walk(WalkError::Io { digest, source, .. })
        | PushError::ReadManifest {
            digest,
            source: SmallReadError::Io(source),
            ..
        } => (digest, source),
        other => return Err(other),
    };
    if protocol {
        return Ok(layer(&digest));
    }
    match source.into_inner().map(|b| b.downcast::<RegistryError>()) {
        Some(Ok(registry)) => Ok(ArtifactError::Registry(*registry)),
        // Not reached: `source_registry_error` found one.
        _ => Ok(layer(&digest)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_ranges_parse() {
        assert_eq!(
            parse_content_range("bytes 100-199/1000"),
            Some((100, Some(1000)))
        );
        assert_eq!(parse_content_range("bytes 5-9/*"), Some((5, None)));
        assert_eq!(parse_content_range("items 1-2/3"), None);
        assert_eq!(parse_content_range("bytes x-9/10"), None);
    }

    #[test]
    fn source_failures_become_artifact_errors_and_the_rest_stays() {
        let d = Digest::of_bytes(b"layer");
        let tampered = PushError::Tampered {
            image: "a:1".into(),
            digest: d.clone(),
            actual: Digest::of_bytes(b"other"),
        };
        let e = source_failure("r/shop:1", tampered).unwrap();
        assert!(
            matches!(&e, ArtifactError::LayerDigest { path, .. } if path == &blob_member_path(&d)),
            "{e}"
        );
        let target = crate::error::Target::new("vendor:5000", "shop@x");
        let short = io::Error::other(RegistryError::Protocol {
            target: target.clone(),
            detail: "short".into(),
        });
        let e = source_failure(
            "r/shop:1",
            PushError::Source {
                image: "a:1".into(),
                digest: d.clone(),
                source: short,
            },
        )
        .unwrap();
        assert!(matches!(e, ArtifactError::LayerDigest { .. }), "{e}");
        let down = io::Error::other(RegistryError::Status {
            target,
            status: 503,
            message: "down".into(),
            codes: Vec::new(),
            retry_after: None,
        });
        let e = source_failure(
            "r/shop:1",
            PushError::Walk(WalkError::Io {
                reference: "a:1".into(),
                digest: d.clone(),
                source: down,
            }),
        )
        .unwrap();
        assert!(
            matches!(&e, ArtifactError::Registry(r) if r.target().registry == "vendor:5000"),
            "{e}"
        );
        let destination = PushError::Registry {
            image: "a:1".into(),
            destination: "corp/a".into(),
            source: Box::new(RegistryError::Protocol {
                target: crate::error::Target::new("corp:5000", "a"),
                detail: "x".into(),
            }),
        };
        assert!(source_failure("r/shop:1", destination).is_err());
    }
}
