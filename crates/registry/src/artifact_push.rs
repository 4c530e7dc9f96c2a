//! Pushing a bundle's artifact: every layer blob (skipped when the repository holds it, mounted
//! from an image repository when the registry can), the empty config, and the manifest under
//! its tag **last**, so a tag never names a half-published bundle. Running it again after an
//! interruption sends only what is missing.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use airlift_bundle::reader::MAX_MANIFEST_BYTES;
use airlift_bundle::schema::manifest::{MANIFEST_PATH, SIGNATURE_PATH};
use airlift_bundle::{BlobSource, Bundle, Digest, Progress};
use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};

use crate::artifact::{
    ArtifactError, ArtifactManifest, Member, EMPTY_CONFIG, MEDIA_TYPE_BLOB, MEDIA_TYPE_OCI_MANIFEST,
};
use crate::client::RegistryClient;
use crate::upload::BlobPush;

/// The progress label of an artifact push.
pub const PUBLISH_LABEL: &str = "publish";

/// What pushing the artifact did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ArtifactPushReport {
    /// Layer blobs sent.
    pub blobs_pushed: u64,
    /// Layer blobs the repository already held (or mounted).
    pub blobs_present: u64,
    /// Bytes sent.
    pub bytes_pushed: u64,
    /// False when the tag already named this exact artifact (nothing was written).
    pub tagged: bool,
}

/// Serves a bundle's blobs from the bundle and its other members from memory.
struct MemberSource {
    bundle: Arc<Bundle>,
    members: HashMap<Digest, Bytes>,
}

impl BlobSource for MemberSource {
    fn blob_size(&self, digest: &Digest) -> Option<u64> {
        match self.members.get(digest) {
            Some(b) => Some(b.len() as u64),
            None => self.bundle.blob_size(digest),
        }
    }

    fn read_blob_at(&self, digest: &Digest, offset: u64, buf: &mut [u8]) -> std::io::Result<usize> {
        match self.members.get(digest) {
            Some(b) => {
                let start = usize::try_from(offset).unwrap_or(usize::MAX).min(b.len());
                let n = (b.len() - start).min(buf.len());
                buf[..n].copy_from_slice(&b[start..start + n]);
                Ok(n)
            }
            None => self.bundle.read_blob_at(digest, offset, buf),
        }
    }
}

/// What to push: the artifact manifest built from `members`, where it goes, and where each
/// blob can be mounted from.
#[derive(Debug, Clone, Copy)]
pub struct ArtifactUpload<'a> {
    /// The bundle's members, in archive order.
    pub members: &'a [Member],
    /// The artifact manifest built from them.
    pub artifact: &'a ArtifactManifest,
    /// The repository.
    pub repo: &'a str,
    /// The tag.
    pub tag: &'a str,
    /// Per blob digest, an image repository on the same registry that holds it.
    pub mount_from: &'a BTreeMap<Digest, String>,
}

/// Pushes `upload` from `bundle`. Refuses a tag that already names other content
/// ([`ArtifactError::TagTaken`]).
pub async fn push_artifact(
    client: &RegistryClient,
    bundle: Arc<Bundle>,
    upload: ArtifactUpload<'_>,
    concurrency: usize,
    progress: Arc<dyn Progress>,
) -> Result<ArtifactPushReport, ArtifactError> {
    let ArtifactUpload {
        members,
        artifact,
        repo,
        tag,
        mount_from,
    } = upload;
    let bytes =
        Bytes::from(
            serde_json::to_vec(artifact).map_err(|e| ArtifactError::Unpublishable {
                problem: format!("cannot encode the artifact manifest: {e}"),
            })?,
        );
    let digest = Digest::of_bytes(&bytes);
    let reference = format!("{}/{repo}:{tag}", client.registry());
    if let Some(head) = client.manifest_head(repo, tag).await? {
        return match head.digest {
            Some(d) if d == digest => Ok(ArtifactPushReport::default()),
            other => Err(ArtifactError::TagTaken {
                reference,
                existing: other.map_or_else(|| "unknown digest".into(), |d| d.to_string()),
            }),
        };
    }
    let mut in_memory = HashMap::new();
    for m in members.iter().filter(|m| m.media_type != MEDIA_TYPE_BLOB) {
        let data = match m.path.as_str() {
            MANIFEST_PATH => bundle.manifest_bytes().to_vec(),
            SIGNATURE_PATH => bundle.signature().unwrap_or_default().to_vec(),
            path => bundle
                .read_member(path, MAX_MANIFEST_BYTES)
                .map_err(|source| ArtifactError::Bundle {
                    reference: reference.clone(),
                    source: Box::new(source),
                })?,
        };
        in_memory.insert(m.digest.clone(), Bytes::from(data));
    }
    in_memory.insert(
        Digest::of_bytes(EMPTY_CONFIG),
        Bytes::from_static(EMPTY_CONFIG),
    );
    let bundle_path = bundle.path().display().to_string();
    let source: Arc<dyn BlobSource> = Arc::new(MemberSource {
        bundle,
        members: in_memory,
    });
    let mut blobs: Vec<(Digest, u64)> = members
        .iter()
        .map(|m| (m.digest.clone(), m.size))
        .chain([(artifact.config.digest.clone(), artifact.config.size)])
        .collect();
    blobs.sort();
    blobs.dedup();
    let total: u64 = blobs.iter().map(|(_, s)| s).sum();
    progress.start(PUBLISH_LABEL, Some(total));
    let results: Vec<(bool, u64)> = futures::stream::iter(blobs)
        .map(|(d, size)| {
            let source = source.clone();
            let progress = progress.clone();
            let bundle_path = &bundle_path;
            async move {
                if client.blob_exists(repo, &d).await?.is_some() {
                    progress.advance(PUBLISH_LABEL, size);
                    return Ok::<_, ArtifactError>((false, 0));
                }
                let on_bytes: Arc<dyn Fn(u64) + Send + Sync> = {
                    let progress = progress.clone();
                    Arc::new(move |n| progress.advance(PUBLISH_LABEL, n))
                };
                // The bundle was verified when it was opened: no second hashing pass.
                let pushed = client
                    .push_blob(
                        repo,
                        &d,
                        size,
                        source,
                        mount_from.get(&d).map(String::as_str),
                        false,
                        on_bytes,
                    )
                    .await?;
                match pushed {
                    BlobPush::Mounted => {
                        progress.advance(PUBLISH_LABEL, size);
                        Ok((false, 0))
                    }
                    BlobPush::Sent => Ok((true, size)),
                    BlobPush::Mismatch { actual } => {
                        Err(ArtifactError::SourceChanged { digest: d, actual })
                    }
                    BlobPush::Unreadable { error } => Err(ArtifactError::Io {
                        path: bundle_path.clone(),
                        source: error,
                    }),
                }
            }
        })
        .buffer_unordered(concurrency.max(1))
        .try_collect()
        .await?;
    progress.finish(PUBLISH_LABEL);
    client
        .put_manifest(repo, tag, MEDIA_TYPE_OCI_MANIFEST, bytes)
        .await?;
    Ok(ArtifactPushReport {
        blobs_pushed: results.iter().filter(|(p, _)| *p).count() as u64,
        blobs_present: results.iter().filter(|(p, _)| !*p).count() as u64,
        bytes_pushed: results.iter().map(|(_, b)| b).sum(),
        tagged: true,
    })
}
