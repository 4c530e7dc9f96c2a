//! A read-only OCI distribution endpoint served straight from a [`BlobSource`] (the engine of
//! `airlift-install serve`).
//!
//! It answers `GET`/`HEAD` on `/v2/`, `/v2/_catalog`, `/v2/<name>/tags/list`,
//! `/v2/<name>/manifests/<tag-or-digest>` and `/v2/<name>/blobs/<digest>` (with single `Range`
//! requests, `206`), with the exact stored bytes, the manifest's own `Content-Type`, and
//! `Docker-Content-Digest`. Unknown names, tags and blobs get `404` with an OCI error body; any
//! write (`POST`, `PUT`, `PATCH`, `DELETE`) gets `405`. A repository only serves the blobs of its
//! own images. Blob bodies are streamed by positioned reads, never held in memory, and hashed
//! as they go (the whole blob, also for a `Range`): a blob whose bytes changed since the bundle
//! was verified gets its response cut before the last chunk, so a client sees a truncated body,
//! never a complete wrong one.
//!
//! Repository names follow the mapping rule of [`crate::mapping`] with no registry prefix: the
//! original path, so a node mirror configured for `ghcr.io` that asks for `acme/api:1.4` gets
//! what the bundle recorded as `ghcr.io/acme/api:1.4`.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::future::Future;
use std::io;
use std::sync::Arc;

use airlift_bundle::walk::{read_small, walk_image, WalkError, MAX_MANIFEST_SIZE};
use airlift_bundle::{BlobSource, Digest, Hasher};
use bytes::Bytes;
use http::{header, Method, Request, Response, StatusCode};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use crate::mapping::{Destination, MappingError};
use crate::push::PushImage;
use airlift_bundle::reference::ImageRef;

/// Bytes per positioned read of a blob body.
const CHUNK: usize = 256 * 1024;

type Body = UnsyncBoxBody<Bytes, io::Error>;

/// Errors from building the catalog of what to serve.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// An image reference does not parse.
    #[error("cannot name a repository for an image")]
    Mapping(#[source] MappingError),
    /// An image's manifests or blobs in the source are missing, damaged or invalid.
    #[error(transparent)]
    Walk(#[from] WalkError),
}

/// What one repository serves.
#[derive(Debug, Clone, Default)]
struct Repo {
    tags: BTreeMap<String, Digest>,
    manifests: HashMap<Digest, String>,
    blobs: HashSet<Digest>,
}

/// Repositories, tags, manifests (with media types) and blobs that the endpoint serves.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    repos: BTreeMap<String, Repo>,
}

impl Catalog {
    /// Builds the catalog for `images` as recorded in a bundle: each image is served under its
    /// original path (see the module docs), by tag and by digest.
    pub fn from_images(source: &dyn BlobSource, images: &[PushImage]) -> Result<Self, ServeError> {
        let refs = images
            .iter()
            .map(|i| ImageRef::parse(&i.reference).map(|r| (i, r)))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| ServeError::Mapping(e.into()))?;
        let dest = Destination {
            registry: String::new(),
            prefix: None,
            flatten: false,
        };
        let names = dest.map_repositories(refs.iter().map(|(_, r)| r));
        let mut catalog = Self::default();
        for (img, r) in refs {
            let repo_name = names
                .get(&r.name())
                .cloned()
                .unwrap_or(r.repository.clone());
            let repo = catalog.repos.entry(repo_name).or_default();
            let graph = walk_image(source, &img.reference, &img.digest, &img.media_type)?;
            for m in &graph.manifests {
                repo.manifests
                    .insert(m.descriptor.digest.clone(), m.descriptor.media_type.clone());
            }
            repo.blobs.extend(graph.blobs.into_iter().map(|(d, _)| d));
            if let Some(tag) = r.tag {
                repo.tags.insert(tag, img.digest.clone());
            }
        }
        Ok(catalog)
    }

    /// The repository names served.
    pub fn repositories(&self) -> impl Iterator<Item = &str> {
        self.repos.keys().map(String::as_str)
    }

    /// `(repository, tag, digest)` for every tag served.
    pub fn tags(&self) -> Vec<(String, String, Digest)> {
        self.repos
            .iter()
            .flat_map(|(r, repo)| {
                repo.tags
                    .iter()
                    .map(move |(t, d)| (r.clone(), t.clone(), d.clone()))
            })
            .collect()
    }
}

struct State {
    source: Arc<dyn BlobSource>,
    catalog: Catalog,
}

/// Serves `catalog` from `source` on `listener` until `shutdown` completes.
pub async fn serve(
    listener: TcpListener,
    source: Arc<dyn BlobSource>,
    catalog: Catalog,
    shutdown: impl Future<Output = ()> + Send,
) -> io::Result<()> {
    let state = Arc::new(State { source, catalog });
    tokio::pin!(shutdown);
    loop {
        let (stream, _) = tokio::select! {
            _ = &mut shutdown => return Ok(()),
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                // A failed accept (e.g. too many open files) must not end the server.
                Err(_) => continue,
            },
        };
        let state = state.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                let state = state.clone();
                async move { Ok::<_, std::convert::Infallible>(handle(&state, req).await) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

fn full(b: impl Into<Bytes>) -> Body {
    Full::new(b.into())
        .map_err(|never| match never {})
        .boxed_unsync()
}

fn api_response(status: StatusCode) -> http::response::Builder {
    Response::builder()
        .status(status)
        .header("Docker-Distribution-API-Version", "registry/2.0")
}

fn json(status: StatusCode, value: &serde_json::Value, head: bool) -> Response<Body> {
    let bytes = serde_json::to_vec(value).unwrap_or_default();
    let len = bytes.len();
    api_response(status)
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::CONTENT_LENGTH, len)
        .body(if head {
            full(Bytes::new())
        } else {
            full(bytes)
        })
        .unwrap_or_else(|_| Response::new(full(Bytes::new())))
}

fn error(status: StatusCode, code: &str, message: &str, head: bool) -> Response<Body> {
    json(
        status,
        &serde_json::json!({"errors": [{"code": code, "message": message, "detail": {}}]}),
        head,
    )
}

async fn handle(state: &State, req: Request<Incoming>) -> Response<Body> {
    let head = req.method() == Method::HEAD;
    if req.method() != Method::GET && !head {
        let mut r = error(
            StatusCode::METHOD_NOT_ALLOWED,
            "UNSUPPORTED",
            "this registry is read-only: it serves the images of an Airlift bundle",
            false,
        );
        r.headers_mut()
            .insert(header::ALLOW, header::HeaderValue::from_static("GET, HEAD"));
        return r;
    }
    let path = req.uri().path().to_string();
    let Some(rest) = path.strip_prefix("/v2") else {
        return error(
            StatusCode::NOT_FOUND,
            "NOT_FOUND",
            "not an OCI distribution path",
            head,
        );
    };
    let rest = rest.trim_start_matches('/');
    if rest.is_empty() {
        return json(StatusCode::OK, &serde_json::json!({}), head);
    }
    if rest == "_catalog" {
        let repos: Vec<&str> = state.catalog.repositories().collect();
        return json(
            StatusCode::OK,
            &serde_json::json!({ "repositories": repos }),
            head,
        );
    }
    if let Some(name) = rest.strip_suffix("/tags/list") {
        return match state.catalog.repos.get(name) {
            Some(repo) => {
                let tags: Vec<&String> = repo.tags.keys().collect();
                json(
                    StatusCode::OK,
                    &serde_json::json!({"name": name, "tags": tags}),
                    head,
                )
            }
            None => name_unknown(name, head),
        };
    }
    if let Some(i) = rest.rfind("/manifests/") {
        let (name, reference) = (&rest[..i], &rest[i + "/manifests/".len()..]);
        return manifest(state, name, reference, head).await;
    }
    if let Some(i) = rest.rfind("/blobs/") {
        let (name, digest) = (&rest[..i], &rest[i + "/blobs/".len()..]);
        let range = req
            .headers()
            .get(header::RANGE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        return blob(state, name, digest, range.as_deref(), head);
    }
    error(StatusCode::NOT_FOUND, "NOT_FOUND", "unknown path", head)
}

fn name_unknown(name: &str, head: bool) -> Response<Body> {
    error(
        StatusCode::NOT_FOUND,
        "NAME_UNKNOWN",
        &format!("repository `{name}` is not in this bundle"),
        head,
    )
}

async fn manifest(state: &State, name: &str, reference: &str, head: bool) -> Response<Body> {
    let Some(repo) = state.catalog.repos.get(name) else {
        return name_unknown(name, head);
    };
    let found = match reference.parse::<Digest>() {
        Ok(d) => repo.manifests.contains_key(&d).then_some(d),
        Err(_) => repo.tags.get(reference).cloned(),
    };
    let Some(digest) = found else {
        return error(
            StatusCode::NOT_FOUND,
            "MANIFEST_UNKNOWN",
            &format!("manifest `{reference}` is not in repository `{name}`"),
            head,
        );
    };
    let media_type = repo.manifests.get(&digest).cloned().unwrap_or_default();
    let source = state.source.clone();
    let d = digest.clone();
    let read =
        tokio::task::spawn_blocking(move || read_small(&*source, &d, MAX_MANIFEST_SIZE)).await;
    let bytes = match read {
        Ok(Ok(b)) => b,
        _ => {
            return error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "UNKNOWN",
                &format!("cannot read manifest {digest} from the bundle"),
                head,
            )
        }
    };
    api_response(StatusCode::OK)
        .header(header::CONTENT_TYPE, media_type)
        .header(header::CONTENT_LENGTH, bytes.len())
        .header("Docker-Content-Digest", digest.to_string())
        .header(header::ETAG, format!("\"{digest}\""))
        .body(if head {
            full(Bytes::new())
        } else {
            full(bytes)
        })
        .unwrap_or_else(|_| Response::new(full(Bytes::new())))
}

/// Parses a single `bytes=` range against `size`: `Ok(None)` for no (or an unsupported
/// multi-) range, `Err(())` when unsatisfiable.
fn parse_range(value: &str, size: u64) -> Result<Option<(u64, u64)>, ()> {
    let Some(spec) = value.trim().strip_prefix("bytes=") else {
        return Ok(None);
    };
    if spec.contains(',') {
        return Ok(None);
    }
    let (a, b) = spec.split_once('-').ok_or(())?;
    let (a, b) = (a.trim(), b.trim());
    let (start, end) = if a.is_empty() {
        let n: u64 = b.parse().map_err(|_| ())?;
        if n == 0 {
            return Err(());
        }
        (size.saturating_sub(n), size.saturating_sub(1))
    } else {
        let start: u64 = a.parse().map_err(|_| ())?;
        let end = if b.is_empty() {
            size.saturating_sub(1)
        } else {
            b.parse::<u64>()
                .map_err(|_| ())?
                .min(size.saturating_sub(1))
        };
        (start, end)
    };
    if size == 0 || start >= size || start > end {
        return Err(());
    }
    Ok(Some((start, end)))
}

fn blob(
    state: &State,
    name: &str,
    digest: &str,
    range: Option<&str>,
    head: bool,
) -> Response<Body> {
    let Some(repo) = state.catalog.repos.get(name) else {
        return name_unknown(name, head);
    };
    let unknown = || {
        error(
            StatusCode::NOT_FOUND,
            "BLOB_UNKNOWN",
            &format!("blob `{digest}` is not in repository `{name}`"),
            head,
        )
    };
    let Ok(digest) = digest.parse::<Digest>() else {
        return unknown();
    };
    if !repo.blobs.contains(&digest) {
        return unknown();
    }
    let Some(size) = state.source.blob_size(&digest) else {
        return unknown();
    };
    let (status, start, end) = match range.map(|r| parse_range(r, size)) {
        None | Some(Ok(None)) => (StatusCode::OK, 0, size),
        Some(Ok(Some((s, e)))) => (StatusCode::PARTIAL_CONTENT, s, e + 1),
        Some(Err(())) => {
            let mut r = error(
                StatusCode::RANGE_NOT_SATISFIABLE,
                "RANGE_INVALID",
                "the requested range is not satisfiable",
                head,
            );
            if let Ok(v) = header::HeaderValue::from_str(&format!("bytes */{size}")) {
                r.headers_mut().insert(header::CONTENT_RANGE, v);
            }
            return r;
        }
    };
    let mut b = api_response(status)
        .header(header::CONTENT_TYPE, "application/octet-stream")
        .header(header::CONTENT_LENGTH, end - start)
        .header(header::ACCEPT_RANGES, "bytes")
        .header("Docker-Content-Digest", digest.to_string())
        .header(header::ETAG, format!("\"{digest}\""));
    if status == StatusCode::PARTIAL_CONTENT {
        b = b.header(
            header::CONTENT_RANGE,
            format!("bytes {start}-{}/{size}", end - 1),
        );
    }
    let body = if head {
        full(Bytes::new())
    } else {
        stream_blob(state.source.clone(), digest, (start, end, size))
    };
    b.body(body)
        .unwrap_or_else(|_| Response::new(full(Bytes::new())))
}

/// Hashing state of one blob response.
struct Streaming {
    /// The next byte to send.
    offset: u64,
    /// Hashes the whole blob: the bytes before the range (once, first), the range as it is
    /// sent, and the bytes after it (before the last chunk goes out).
    hasher: Hasher,
    /// True once the bytes before the range were hashed.
    prefix_done: bool,
}

/// Feeds bytes `[from, to)` of blob `digest` to `hasher`, reading `CHUNK` bytes at a time.
fn hash_blob_range(
    source: &dyn BlobSource,
    digest: &Digest,
    (from, to): (u64, u64),
    hasher: &mut Hasher,
) -> io::Result<()> {
    let mut buf = vec![0u8; CHUNK];
    let mut pos = from;
    while pos < to {
        let want = usize::try_from(to - pos).unwrap_or(CHUNK).min(CHUNK);
        let n = source.read_blob_at(digest, pos, &mut buf[..want])?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("blob {digest} ended early"),
            ));
        }
        hasher.update(&buf[..n]);
        pos += n as u64;
    }
    Ok(())
}

/// Streams `[start, end)` of a blob of `size` bytes by positioned reads, hashing the whole blob
/// on the way. The last chunk is sent only when the blob still hashes to `digest`: a blob changed
/// in place since the bundle was verified cuts the response short (the client sees a truncated
/// body, never a complete wrong one).
fn stream_blob(
    source: Arc<dyn BlobSource>,
    digest: Digest,
    (start, end, size): (u64, u64, u64),
) -> Body {
    let first = Streaming {
        offset: start,
        hasher: Hasher::new(),
        prefix_done: false,
    };
    let stream = futures::stream::try_unfold(first, move |mut st| {
        let source = source.clone();
        let digest = digest.clone();
        async move {
            if st.offset >= end {
                return Ok(None);
            }
            let want = usize::try_from(end - st.offset).unwrap_or(CHUNK).min(CHUNK);
            let (chunk, st) = tokio::task::spawn_blocking(move || {
                if !st.prefix_done {
                    hash_blob_range(&*source, &digest, (0, start), &mut st.hasher)?;
                    st.prefix_done = true;
                }
                let mut buf = vec![0u8; want];
                let mut filled = 0;
                while filled < want {
                    let n = source.read_blob_at(
                        &digest,
                        st.offset + filled as u64,
                        &mut buf[filled..],
                    )?;
                    if n == 0 {
                        return Err(io::Error::new(
                            io::ErrorKind::UnexpectedEof,
                            format!("blob {digest} ended early"),
                        ));
                    }
                    filled += n;
                }
                st.hasher.update(&buf);
                st.offset += want as u64;
                if st.offset >= end {
                    hash_blob_range(&*source, &digest, (end, size), &mut st.hasher)?;
                    let actual = std::mem::take(&mut st.hasher).finish();
                    if actual != digest {
                        return Err(io::Error::new(
                            io::ErrorKind::InvalidData,
                            format!(
                                "blob {digest} changed since it was verified (it hashes to {actual}): response cut"
                            ),
                        ));
                    }
                }
                Ok((Bytes::from(buf), st))
            })
            .await
            .map_err(io::Error::other)??;
            Ok(Some((Frame::data(chunk), st)))
        }
    });
    StreamBody::new(stream).boxed_unsync()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_parse_like_http() {
        assert_eq!(parse_range("bytes=0-9", 100), Ok(Some((0, 9))));
        assert_eq!(parse_range("bytes=90-", 100), Ok(Some((90, 99))));
        assert_eq!(parse_range("bytes=-10", 100), Ok(Some((90, 99))));
        assert_eq!(parse_range("bytes=50-500", 100), Ok(Some((50, 99))));
        assert_eq!(parse_range("bytes=0-1,5-6", 100), Ok(None));
        assert_eq!(parse_range("items=0-1", 100), Ok(None));
        assert_eq!(parse_range("bytes=100-", 100), Err(()));
        assert_eq!(parse_range("bytes=9-3", 100), Err(()));
        assert_eq!(parse_range("bytes=x-3", 100), Err(()));
    }
}
