//! A fault-injecting HTTP/1.1 proxy on `127.0.0.1:0`, put in front of a real registry to prove
//! that clients survive connection resets mid-body, 500s and slow bodies.
//!
//! ```no_run
//! # async fn demo(upstream: std::net::SocketAddr) {
//! use airlift_testkit::fault_proxy::{Fault, FaultProxy, Rule, Schedule};
//!
//! let proxy = FaultProxy::start(upstream, vec![
//!     // Every 3rd blob upload is cut after 64 KiB of its body, at most 4 times.
//!     Rule::new(Fault::ResetRequestBody { after: 64 << 10 }, Schedule::EveryNth(3))
//!         .method("PUT").path_contains("/blobs/uploads/").max(4),
//!     // The first two requests of any kind get a 500.
//!     Rule::new(Fault::Status(500), Schedule::FirstN(2)),
//! ]).await;
//! let host = proxy.host(); // push to this instead of the registry
//! # let _ = (host, proxy.injected());
//! # }
//! ```
//!
//! Each rule counts the requests it matches and fires on its schedule, never more than its
//! `max` (so a test always finishes). The proxy forwards the `Host` header unchanged, so the
//! registry's `Location` headers point back at the proxy. [`FaultProxy::injected`] tells a test
//! that faults really happened (a fault test that injected nothing proves nothing).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use futures::StreamExt;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, BodyStream, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

type BoxError = Box<dyn std::error::Error + Send + Sync>;
type Body = UnsyncBoxBody<Bytes, BoxError>;

/// What to do to a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// Answer with this status (and an OCI error body) without forwarding.
    Status(u16),
    /// Answer with this status and an OCI error body carrying these error codes, in order,
    /// without forwarding: a registry's refusal, e.g. `400` with `DIGEST_INVALID` and
    /// `MANIFEST_BLOB_UNKNOWN` as CNCF distribution 2.8 answers a manifest whose blob link it
    /// read while another push rewrote it.
    Refuse {
        /// The HTTP status.
        status: u16,
        /// The error codes of the body.
        codes: Vec<&'static str>,
    },
    /// Forward the request, but cut the connection once `after` bytes of the request body have
    /// gone through (an upload dies mid-body).
    ResetRequestBody {
        /// Request body bytes forwarded before the cut.
        after: u64,
    },
    /// Forward the request, but cut the connection once `after` bytes of the response body have
    /// gone back (a download dies mid-body).
    ResetResponseBody {
        /// Response body bytes forwarded before the cut.
        after: u64,
    },
    /// Forward, pausing `delay` before every body chunk in both directions.
    Slow {
        /// The pause per chunk.
        delay: Duration,
    },
}

/// When a rule fires, counting the requests it matches from 1.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Schedule {
    /// Requests number n, 2n, 3n, …
    EveryNth(u64),
    /// Requests number 1 to n.
    FirstN(u64),
    /// Exactly these request numbers.
    Nth(Vec<u64>),
    /// Every matching request (bounded by the rule's `max`).
    Always,
}

impl Schedule {
    fn fires(&self, n: u64) -> bool {
        match self {
            Schedule::EveryNth(k) => *k > 0 && n % k == 0,
            Schedule::FirstN(k) => n <= *k,
            Schedule::Nth(list) => list.contains(&n),
            Schedule::Always => true,
        }
    }
}

/// A fault, when it fires, and which requests it applies to.
#[derive(Debug)]
pub struct Rule {
    fault: Fault,
    schedule: Schedule,
    method: Option<String>,
    path_contains: Option<String>,
    max: u64,
    seen: AtomicU64,
    fired: AtomicU64,
}

impl Rule {
    /// A rule for every request, firing at most 1000 times.
    pub fn new(fault: Fault, schedule: Schedule) -> Self {
        Self {
            fault,
            schedule,
            method: None,
            path_contains: None,
            max: 1000,
            seen: AtomicU64::new(0),
            fired: AtomicU64::new(0),
        }
    }

    /// Only requests with this method (`PUT`, `GET`, …).
    pub fn method(mut self, method: &str) -> Self {
        self.method = Some(method.to_ascii_uppercase());
        self
    }

    /// Only requests whose path contains `s`.
    pub fn path_contains(mut self, s: &str) -> Self {
        self.path_contains = Some(s.to_string());
        self
    }

    /// Fire at most `n` times.
    pub fn max(mut self, n: u64) -> Self {
        self.max = n;
        self
    }

    fn matches(&self, method: &str, path: &str) -> bool {
        self.method.as_deref().is_none_or(|m| m == method)
            && self
                .path_contains
                .as_deref()
                .is_none_or(|p| path.contains(p))
    }

    /// Counts a matching request; returns the fault when it fires.
    fn check(&self) -> Option<Fault> {
        let n = self.seen.fetch_add(1, Ordering::SeqCst) + 1;
        if !self.schedule.fires(n) {
            return None;
        }
        let fired = self.fired.fetch_add(1, Ordering::SeqCst);
        if fired >= self.max {
            self.fired.fetch_sub(1, Ordering::SeqCst);
            return None;
        }
        Some(self.fault.clone())
    }
}

struct Shared {
    upstream: SocketAddr,
    rules: Vec<Rule>,
    gate: Option<TokenGate>,
    requests: AtomicU64,
    injected: AtomicU64,
    log: Mutex<Vec<String>>,
}

/// A running fault proxy; stopped on drop.
pub struct FaultProxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
    task: JoinHandle<()>,
}

impl std::fmt::Debug for FaultProxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FaultProxy")
            .field("addr", &self.addr)
            .field("upstream", &self.shared.upstream)
            .field("injected", &self.injected())
            .finish()
    }
}

impl FaultProxy {
    /// Starts a proxy on `127.0.0.1:0` forwarding to `upstream` (a plain-HTTP server), applying
    /// `rules` in order (the first that fires wins). Must run inside a tokio runtime.
    pub async fn start(upstream: SocketAddr, rules: Vec<Rule>) -> Self {
        Self::launch(upstream, rules, None).await
    }

    /// Like [`FaultProxy::start`], and also puts the registry behind bearer-token auth, the way
    /// Harbor, GHCR or Docker Hub do: every `/v2/` request needs `Authorization: Bearer` with a
    /// token whose scope covers the repository and action (pull for GET/HEAD, push otherwise),
    /// else it gets `401` with `WWW-Authenticate: Bearer realm="http://PROXY/token",
    /// service="airlift-test",scope="repository:NAME:pull,push"`. `GET /token` hands out tokens
    /// for the requested `scope`s to `user`/`password` (HTTP basic); wrong credentials get `401`.
    pub async fn start_with_token_auth(
        upstream: SocketAddr,
        rules: Vec<Rule>,
        user: &str,
        password: &str,
    ) -> Self {
        let gate = TokenGate {
            basic: format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
            ),
            tokens: Mutex::new(HashMap::new()),
            issued: AtomicU64::new(0),
        };
        Self::launch(upstream, rules, Some(gate)).await
    }

    /// How many tokens the token endpoint issued (0 without token auth).
    pub fn tokens_issued(&self) -> u64 {
        self.shared
            .gate
            .as_ref()
            .map_or(0, |g| g.issued.load(Ordering::SeqCst))
    }

    async fn launch(upstream: SocketAddr, rules: Vec<Rule>, gate: Option<TokenGate>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the fault proxy on loopback");
        let addr = listener.local_addr().expect("fault proxy address");
        let shared = Arc::new(Shared {
            upstream,
            rules,
            gate,
            requests: AtomicU64::new(0),
            injected: AtomicU64::new(0),
            log: Mutex::new(Vec::new()),
        });
        let accept_shared = shared.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let shared = accept_shared.clone();
                tokio::spawn(async move {
                    let service =
                        hyper::service::service_fn(move |req| handle(shared.clone(), req));
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Self { addr, shared, task }
    }

    /// `127.0.0.1:PORT`, to use as the registry host.
    pub fn host(&self) -> String {
        self.addr.to_string()
    }

    /// The proxy's address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// How many faults were injected so far.
    pub fn injected(&self) -> u64 {
        self.shared.injected.load(Ordering::SeqCst)
    }

    /// How many requests arrived so far.
    pub fn requests(&self) -> u64 {
        self.shared.requests.load(Ordering::SeqCst)
    }

    /// One line per injected fault: `METHOD PATH -> fault`, for failure messages.
    pub fn fault_log(&self) -> Vec<String> {
        self.shared
            .log
            .lock()
            .map(|l| l.clone())
            .unwrap_or_default()
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn io_error(msg: &str) -> BoxError {
    Box::new(std::io::Error::new(
        std::io::ErrorKind::ConnectionReset,
        msg.to_string(),
    ))
}

/// Wraps a body: an optional pause before each frame, and an optional cut (an error frame, which
/// aborts the connection) once `cut_after` data bytes have passed.
fn wrap<B>(body: B, delay: Option<Duration>, cut_after: Option<u64>) -> Body
where
    B: hyper::body::Body<Data = Bytes> + Send + Unpin + 'static,
    B::Error: Into<BoxError> + Send,
{
    struct State<S> {
        frames: S,
        passed: u64,
        cut_next: bool,
        done: bool,
    }
    let init = State {
        frames: BodyStream::new(body),
        passed: 0,
        cut_next: false,
        done: false,
    };
    let stream = futures::stream::unfold(init, move |mut st| async move {
        if st.done {
            return None;
        }
        if st.cut_next {
            st.done = true;
            return Some((Err(io_error("fault proxy: connection reset mid-body")), st));
        }
        let next = st.frames.next().await?;
        if let Some(d) = delay {
            tokio::time::sleep(d).await;
        }
        let frame = match next {
            Ok(f) => f,
            Err(e) => {
                st.done = true;
                return Some((Err(e.into()), st));
            }
        };
        let (Some(limit), Some(data)) = (cut_after, frame.data_ref()) else {
            return Some((Ok(frame), st));
        };
        let len = data.len() as u64;
        if st.passed + len < limit {
            st.passed += len;
            return Some((Ok(frame), st));
        }
        let keep = usize::try_from(limit.saturating_sub(st.passed)).unwrap_or(0);
        st.passed = limit;
        if keep == 0 {
            st.done = true;
            return Some((Err(io_error("fault proxy: connection reset mid-body")), st));
        }
        st.cut_next = true;
        let part = data.slice(..keep);
        Some((Ok(Frame::data(part)), st))
    });
    UnsyncBoxBody::new(StreamBody::new(stream))
}

fn full(b: Bytes) -> Body {
    Full::new(b).map_err(|never| match never {}).boxed_unsync()
}

fn status_response(status: u16) -> Response<Body> {
    refusal(status, &["UNKNOWN"])
}

fn refusal(status: u16, codes: &[&str]) -> Response<Body> {
    let errors: Vec<String> = codes
        .iter()
        .map(|c| format!(r#"{{"code":"{c}","message":"fault proxy: injected {status} {c}"}}"#))
        .collect();
    let body = format!(r#"{{"errors":[{}]}}"#, errors.join(","));
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .header("connection", "close")
        .body(full(Bytes::from(body)))
        .unwrap_or_else(|_| Response::new(full(Bytes::new())))
}

async fn handle(shared: Arc<Shared>, req: Request<Incoming>) -> Result<Response<Body>, BoxError> {
    shared.requests.fetch_add(1, Ordering::SeqCst);
    let method = req.method().as_str().to_string();
    let path = req.uri().path().to_string();
    if let Some(gate) = &shared.gate {
        if path == "/token" {
            return Ok(gate.issue(&req));
        }
        if let Some(denied) = gate.check(&req) {
            return Ok(denied);
        }
    }
    let fault = shared
        .rules
        .iter()
        .filter(|r| r.matches(&method, &path))
        .find_map(Rule::check);
    if let Some(f) = &fault {
        shared.injected.fetch_add(1, Ordering::SeqCst);
        if let Ok(mut log) = shared.log.lock() {
            log.push(format!("{method} {path} -> {f:?}"));
        }
    }
    let (req_delay, req_cut, resp_cut) = match &fault {
        Some(Fault::Status(s)) => return Ok(status_response(*s)),
        Some(Fault::Refuse { status, codes }) => return Ok(refusal(*status, codes)),
        Some(Fault::ResetRequestBody { after }) => (None, Some(*after), None),
        Some(Fault::ResetResponseBody { after }) => (None, None, Some(*after)),
        Some(Fault::Slow { delay }) => (Some(*delay), None, None),
        None => (None, None, None),
    };
    // A body shorter than the cut point is still cut: one byte before its end.
    let req_cut = req_cut.map(|after| cut_point(after, content_length(req.headers())));
    let (parts, body) = req.into_parts();
    let upstream_req = Request::from_parts(parts, wrap(body, req_delay, req_cut));

    let stream = TcpStream::connect(shared.upstream).await?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    let resp = sender.send_request(upstream_req).await?;
    let resp_cut = resp_cut.map(|after| cut_point(after, content_length(resp.headers())));
    let (parts, body) = resp.into_parts();
    Ok(Response::from_parts(parts, wrap(body, req_delay, resp_cut)))
}

/// Bearer-token auth in front of the registry (see [`FaultProxy::start_with_token_auth`]).
struct TokenGate {
    /// The `Authorization` value the token endpoint accepts.
    basic: String,
    /// Issued tokens and the scopes each grants.
    tokens: Mutex<HashMap<String, Vec<String>>>,
    issued: AtomicU64,
}

impl TokenGate {
    /// `GET /token?service=…&scope=…`: a token for the scopes asked for, to the right user.
    fn issue(&self, req: &Request<Incoming>) -> Response<Body> {
        let authorized = req
            .headers()
            .get(http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            == Some(self.basic.as_str());
        if !authorized {
            return status_response(401);
        }
        let query = req.uri().query().unwrap_or("");
        let scopes: Vec<String> = url::form_urlencoded::parse(query.as_bytes())
            .filter(|(k, _)| k == "scope")
            .flat_map(|(_, v)| v.split(' ').map(str::to_string).collect::<Vec<_>>())
            .collect();
        let n = self.issued.fetch_add(1, Ordering::SeqCst);
        let token = format!("tok-{n}-{}", rand::random::<u64>());
        if let Ok(mut t) = self.tokens.lock() {
            t.insert(token.clone(), scopes);
        }
        let body = serde_json::json!({ "token": token, "expires_in": 300 }).to_string();
        Response::builder()
            .status(200)
            .header("content-type", "application/json")
            .body(full(Bytes::from(body)))
            .unwrap_or_else(|_| Response::new(full(Bytes::new())))
    }

    /// `None` when the request carries a token that covers it; otherwise the 401 challenge.
    fn check(&self, req: &Request<Incoming>) -> Option<Response<Body>> {
        let path = req.uri().path();
        let rest = path.strip_prefix("/v2/").unwrap_or("");
        let name = ["/blobs/", "/manifests/", "/tags/"]
            .iter()
            .filter_map(|m| rest.find(m).map(|i| &rest[..i]))
            .next();
        let action = match req.method().as_str() {
            "GET" | "HEAD" => "pull",
            _ => "push",
        };
        let token = req
            .headers()
            .get(http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        let granted = token.and_then(|t| self.tokens.lock().ok()?.get(t).cloned());
        let ok = match (&granted, name) {
            (Some(_), None) => true,
            (Some(scopes), Some(name)) => scopes.iter().any(|s| {
                let mut parts = s.splitn(3, ':');
                parts.next() == Some("repository")
                    && parts.next() == Some(name)
                    && parts
                        .next()
                        .is_some_and(|a| a.split(',').any(|x| x == action || x == "*"))
            }),
            (None, _) => false,
        };
        if ok {
            return None;
        }
        let host = req
            .headers()
            .get(http::header::HOST)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("127.0.0.1");
        let mut challenge = format!(r#"Bearer realm="http://{host}/token",service="airlift-test""#);
        if let Some(name) = name {
            challenge.push_str(&format!(r#",scope="repository:{name}:pull,push""#));
        }
        let mut resp = status_response(401);
        if let Ok(v) = http::HeaderValue::from_str(&challenge) {
            resp.headers_mut().insert(http::header::WWW_AUTHENTICATE, v);
        }
        resp.headers_mut().remove(http::header::CONNECTION);
        Some(resp)
    }
}

fn content_length(headers: &http::HeaderMap) -> Option<u64> {
    headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
}

/// Where to cut a body of `len` bytes (when known) for a fault asking for `after`.
fn cut_point(after: u64, len: Option<u64>) -> u64 {
    match len {
        Some(n) if n > 0 => after.min(n - 1),
        _ => after,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedules_fire_on_the_right_requests_and_stay_bounded() {
        let every3 = Rule::new(Fault::Status(500), Schedule::EveryNth(3)).max(2);
        let fired: Vec<bool> = (0..12).map(|_| every3.check().is_some()).collect();
        assert_eq!(
            fired,
            [false, false, true, false, false, true, false, false, false, false, false, false],
            "3rd and 6th fire, then the bound of 2 holds"
        );
        let first2 = Rule::new(Fault::Status(500), Schedule::FirstN(2));
        let fired: Vec<bool> = (0..4).map(|_| first2.check().is_some()).collect();
        assert_eq!(fired, [true, true, false, false]);
        let nth = Rule::new(Fault::Status(500), Schedule::Nth(vec![2, 4]));
        let fired: Vec<bool> = (0..5).map(|_| nth.check().is_some()).collect();
        assert_eq!(fired, [false, true, false, true, false]);
    }

    #[test]
    fn rules_match_method_and_path() {
        let r = Rule::new(Fault::Status(500), Schedule::Always)
            .method("put")
            .path_contains("/blobs/uploads/");
        assert!(r.matches("PUT", "/v2/a/blobs/uploads/123"));
        assert!(!r.matches("POST", "/v2/a/blobs/uploads/"));
        assert!(!r.matches("PUT", "/v2/a/manifests/1"));
    }

    #[test]
    fn cuts_land_inside_the_body() {
        assert_eq!(cut_point(1 << 20, Some(500)), 499);
        assert_eq!(cut_point(100, Some(500)), 100);
        assert_eq!(cut_point(100, None), 100);
        assert_eq!(cut_point(100, Some(0)), 100);
    }
}
