//! Reading from a registry with the push client's auth, TLS and retries: manifests and small
//! blobs with a size bound, large blobs streamed (digest checked as they arrive), and tag
//! lists, paged and bounded. Reads ask for `pull` scope only, so read-only credentials work.

use airlift_bundle::oci::MAX_MANIFEST_SIZE;
use airlift_bundle::{Digest, Hasher};
use http::header::{ACCEPT, LINK};
use http::StatusCode;

use crate::client::{body_prefix, RegistryClient, Retries};
use crate::error::RegistryError;

/// The most tag-list pages read (each up to [`MAX_MANIFEST_SIZE`] bytes).
const MAX_TAG_PAGES: usize = 100;

/// A manifest as the registry serves it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchedManifest {
    /// The exact bytes.
    pub bytes: Vec<u8>,
    /// Their digest (computed here, never taken from a header).
    pub digest: Digest,
    /// `Content-Type`.
    pub media_type: Option<String>,
}

/// The token scope of a read of `repo`.
pub(crate) fn pull_scope(repo: &str) -> String {
    format!("repository:{repo}:pull")
}

impl RegistryClient {
    /// `GET /v2/<repo>/manifests/<reference>` with `accept`, at most [`MAX_MANIFEST_SIZE`]
    /// bytes. `None` on 404. When `reference` is a digest, the bytes must match it.
    pub async fn get_manifest(
        &self,
        repo: &str,
        reference: &str,
        accept: &str,
    ) -> Result<Option<FetchedManifest>, RegistryError> {
        let target = self.target(format!("{repo}:{reference}"));
        let url = self.url(&format!("{repo}/manifests/{reference}"));
        let scope = pull_scope(repo);
        let resp = self
            .send(&target, Some(&scope), Retries::Yes, &url, || {
                self.http_client().get(url.clone()).header(ACCEPT, accept)
            })
            .await?;
        match resp.status() {
            s if s.is_success() => {}
            StatusCode::NOT_FOUND => return Ok(None),
            s => return Err(self.status_error(target, s, resp).await),
        }
        let media_type = resp
            .headers()
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let limit = usize::try_from(MAX_MANIFEST_SIZE).unwrap_or(usize::MAX);
        let bytes = body_prefix(resp, limit + 1)
            .await
            .map_err(|e| RegistryError::from_reqwest(target.clone(), e))?;
        if bytes.len() > limit {
            return Err(RegistryError::Protocol {
                target,
                detail: format!("the manifest is larger than {MAX_MANIFEST_SIZE} bytes"),
            });
        }
        let digest = Digest::of_bytes(&bytes);
        if let Ok(want) = reference.parse::<Digest>() {
            if want != digest {
                return Err(RegistryError::Protocol {
                    target,
                    detail: format!("the manifest served for {want} has digest {digest}"),
                });
            }
        }
        Ok(Some(FetchedManifest {
            bytes,
            digest,
            media_type,
        }))
    }

    /// Streams blob `digest` (`size` bytes) from `repo` to `sink`, chunk by chunk, checking the
    /// size as it goes and the digest at the end; a transient failure restarts the blob (the
    /// sink is told to `reset`). Memory does not depend on the blob's size.
    pub async fn get_blob(
        &self,
        repo: &str,
        digest: &Digest,
        size: u64,
        sink: &mut dyn BlobSink,
    ) -> Result<(), RegistryError> {
        let target = self.target(format!("{repo}@{digest}"));
        let url = self.url(&format!("{repo}/blobs/{digest}"));
        let scope = pull_scope(repo);
        let retry = self.retry_policy();
        let mut attempt = 0;
        loop {
            attempt += 1;
            sink.reset().map_err(|e| io_error(&target, e))?;
            let result = async {
                let mut resp = self
                    .send(&target, Some(&scope), Retries::Yes, &url, || {
                        self.http_client().get(url.clone())
                    })
                    .await?;
                match resp.status() {
                    s if s.is_success() => {}
                    StatusCode::NOT_FOUND => {
                        return Err(RegistryError::NotFound {
                            target: target.clone(),
                            what: format!("blob {digest}"),
                        })
                    }
                    s => return Err(self.status_error(target.clone(), s, resp).await),
                }
                let mut hasher = Hasher::new();
                let mut got = 0u64;
                while let Some(chunk) = resp
                    .chunk()
                    .await
                    .map_err(|e| RegistryError::from_body(target.clone(), e))?
                {
                    got += chunk.len() as u64;
                    if got > size {
                        return Err(RegistryError::Protocol {
                            target: target.clone(),
                            detail: format!("the blob is longer than its {size} bytes"),
                        });
                    }
                    hasher.update(&chunk);
                    sink.write(&chunk).map_err(|e| io_error(&target, e))?;
                }
                let actual = hasher.finish();
                if got != size || &actual != digest {
                    return Err(RegistryError::Protocol {
                        target: target.clone(),
                        detail: format!("the blob served has {got} bytes and digest {actual}"),
                    });
                }
                Ok(())
            }
            .await;
            match result {
                Ok(()) => return Ok(()),
                Err(e @ RegistryError::Protocol { .. }) => return Err(e),
                Err(e) => {
                    use crate::retry::Retryable;
                    match retry.next_delay(attempt, e.retry()) {
                        Some(wait) => tokio::time::sleep(wait).await,
                        None => return Err(e),
                    }
                }
            }
        }
    }

    /// A small blob (at most `limit` bytes) in memory, digest checked.
    pub async fn get_blob_bytes(
        &self,
        repo: &str,
        digest: &Digest,
        size: u64,
        limit: u64,
    ) -> Result<Vec<u8>, RegistryError> {
        if size > limit {
            return Err(RegistryError::Protocol {
                target: self.target(format!("{repo}@{digest}")),
                detail: format!("the blob is declared {size} bytes, more than {limit} allowed"),
            });
        }
        let mut buf = MemorySink(Vec::new());
        self.get_blob(repo, digest, size, &mut buf).await?;
        Ok(buf.0)
    }

    /// Every tag of `repo` (`GET /v2/<repo>/tags/list`, following `Link` pages), at most
    /// 100 pages. An unknown repository has no tags.
    pub async fn list_tags(&self, repo: &str) -> Result<Vec<String>, RegistryError> {
        #[derive(serde::Deserialize)]
        struct Page {
            #[serde(default)]
            tags: Option<Vec<String>>,
        }
        let target = self.target(repo.to_string());
        let scope = pull_scope(repo);
        let mut url = self.url(&format!("{repo}/tags/list"));
        let mut tags = Vec::new();
        for _ in 0..MAX_TAG_PAGES {
            let resp = self
                .send(&target, Some(&scope), Retries::Yes, &url, || {
                    self.http_client().get(url.clone())
                })
                .await?;
            match resp.status() {
                s if s.is_success() => {}
                StatusCode::NOT_FOUND => return Ok(tags),
                s => return Err(self.status_error(target, s, resp).await),
            }
            let next = resp
                .headers()
                .get(LINK)
                .and_then(|v| v.to_str().ok())
                .and_then(next_link)
                .and_then(|l| resp.url().join(&l).ok());
            let limit = usize::try_from(MAX_MANIFEST_SIZE).unwrap_or(usize::MAX);
            let bytes = body_prefix(resp, limit + 1)
                .await
                .map_err(|e| RegistryError::from_reqwest(target.clone(), e))?;
            if bytes.len() > limit {
                return Err(RegistryError::Protocol {
                    target,
                    detail: "the tag list page is larger than 4 MiB".into(),
                });
            }
            let page: Page =
                serde_json::from_slice(&bytes).map_err(|e| RegistryError::Protocol {
                    target: target.clone(),
                    detail: format!("the tag list is not JSON: {e}"),
                })?;
            tags.extend(page.tags.unwrap_or_default());
            match next {
                Some(n) if self.same_origin_url(&n) => url = n,
                _ => return Ok(tags),
            }
        }
        Ok(tags)
    }
}

/// `<…>; rel="next"` from a `Link` header.
fn next_link(header: &str) -> Option<String> {
    header.split(',').find_map(|part| {
        let (url, params) = part.split_once(';')?;
        params.contains("rel=\"next\"").then(|| {
            url.trim()
                .trim_start_matches('<')
                .trim_end_matches('>')
                .to_string()
        })
    })
}

fn io_error(target: &crate::error::Target, e: std::io::Error) -> RegistryError {
    RegistryError::Protocol {
        target: target.clone(),
        detail: format!("cannot store the download: {e}"),
    }
}

/// Where a streamed blob goes.
pub trait BlobSink: Send {
    /// Drop what a failed attempt wrote.
    fn reset(&mut self) -> std::io::Result<()>;
    /// Append `bytes`.
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<()>;
}

struct MemorySink(Vec<u8>);

impl BlobSink for MemorySink {
    fn reset(&mut self) -> std::io::Result<()> {
        self.0.clear();
        Ok(())
    }
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.0.extend_from_slice(bytes);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::next_link;

    #[test]
    fn next_pages_come_from_link_headers() {
        assert_eq!(
            next_link("</v2/shop/tags/list?last=1.0.0&n=100>; rel=\"next\"").as_deref(),
            Some("/v2/shop/tags/list?last=1.0.0&n=100")
        );
        assert_eq!(next_link("</x>; rel=\"prev\""), None);
    }
}
