//! Shared helpers of the pull integration tests: options for a test registry, and a loopback
//! TCP proxy that counts blob downloads and can cut the first download of one blob.
#![allow(dead_code, missing_docs, clippy::unwrap_used)]

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use airlift_bundle::schema::common::Platform;
use airlift_bundle::DirBlobStore;
use airlift_registry::auth::{Credentials, Secret};
use airlift_registry::options::{RegistryOptions, RetryPolicy};
use airlift_testkit::registry::TestRegistry;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

pub fn platforms(list: &[&str]) -> Vec<Platform> {
    list.iter().map(|p| p.parse().unwrap()).collect()
}

/// Options that reach `reg` (and `extra_hosts`, e.g. a proxy in front of it) with its CA and
/// credentials, never reading the user's auth files, with fast retries.
pub fn options_for(reg: &TestRegistry, extra_hosts: &[String]) -> RegistryOptions {
    let mut o = RegistryOptions::default()
        .without_auth_files()
        .with_retry(fast_retry());
    let mut hosts = vec![reg.host()];
    hosts.extend(extra_hosts.iter().cloned());
    for h in hosts {
        if !reg.is_tls() {
            o = o.with_insecure(h.clone());
        }
        if let Some((u, p)) = reg.credentials() {
            o = o.with_credentials(h, Credentials::basic(u, Secret::new(p)));
        }
    }
    if let Some(ca) = reg.ca_pem() {
        o = o.with_ca_file(ca);
    }
    o
}

pub fn fast_retry() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 4,
        initial_backoff: std::time::Duration::from_millis(20),
        max_backoff: std::time::Duration::from_millis(200),
        max_retry_after: std::time::Duration::from_millis(200),
        ..RetryPolicy::default()
    }
}

pub fn store(dir: &std::path::Path) -> DirBlobStore {
    DirBlobStore::open(dir.join("cache")).unwrap()
}

/// What the proxy saw.
#[derive(Debug, Default)]
pub struct ProxyStats {
    /// Request lines of every `GET …/blobs/…`, with the value of their `Range` header.
    pub blob_gets: Mutex<Vec<(String, Option<String>)>>,
    /// Response bytes forwarded to clients.
    pub bytes_down: AtomicU64,
    /// Connections cut.
    pub cuts: AtomicU64,
}

impl ProxyStats {
    pub fn blob_get_count(&self) -> usize {
        self.blob_gets.lock().unwrap().len()
    }
}

/// A plain TCP proxy on 127.0.0.1 in front of `upstream` (`127.0.0.1:PORT`). When `cut` is
/// `Some((digest_hex, n))`, the response to the first GET of that blob is cut after `n` bytes.
pub struct Proxy {
    pub host: String,
    pub stats: Arc<ProxyStats>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

pub async fn start_proxy(upstream: String, cut: Option<(String, u64)>) -> Proxy {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let host = listener.local_addr().unwrap().to_string();
    let stats = Arc::new(ProxyStats::default());
    let armed = Arc::new(AtomicBool::new(cut.is_some()));
    let st = stats.clone();
    let task = tokio::spawn(async move {
        loop {
            let Ok((client, _)) = listener.accept().await else {
                return;
            };
            let up = upstream.clone();
            let st = st.clone();
            let armed = armed.clone();
            let cut = cut.clone();
            tokio::spawn(async move {
                let _ = handle(client, up, st, armed, cut).await;
            });
        }
    });
    Proxy { host, stats, task }
}

async fn handle(
    client: TcpStream,
    upstream: String,
    stats: Arc<ProxyStats>,
    armed: Arc<AtomicBool>,
    cut: Option<(String, u64)>,
) -> std::io::Result<()> {
    let server = TcpStream::connect(&upstream).await?;
    let (mut cr, mut cw) = client.into_split();
    let (mut sr, mut sw) = server.into_split();
    // Bytes still allowed downstream before the cut; u64::MAX = unlimited.
    let budget = Arc::new(AtomicU64::new(u64::MAX));
    let b2 = budget.clone();
    let st2 = stats.clone();
    let up = tokio::spawn(async move {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = cr.read(&mut buf).await?;
            if n == 0 {
                return sw.shutdown().await;
            }
            let text = String::from_utf8_lossy(&buf[..n]).to_string();
            for (i, line) in text.lines().enumerate() {
                if line.starts_with("GET ") && line.contains("/blobs/sha256:") {
                    let range = text
                        .lines()
                        .skip(i + 1)
                        .take_while(|l| !l.is_empty())
                        .find(|l| l.to_ascii_lowercase().starts_with("range:"))
                        .map(|l| l["range:".len()..].trim().to_string());
                    st2.blob_gets
                        .lock()
                        .unwrap()
                        .push((line.to_string(), range));
                    if let Some((hex, n)) = &cut {
                        if line.contains(hex.as_str()) && armed.swap(false, Ordering::SeqCst) {
                            b2.store(*n, Ordering::SeqCst);
                        }
                    }
                }
            }
            sw.write_all(&buf[..n]).await?;
        }
    });
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = sr.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        let left = budget.load(Ordering::SeqCst);
        if left != u64::MAX && (n as u64) >= left {
            cw.write_all(&buf[..left as usize]).await?;
            stats.bytes_down.fetch_add(left, Ordering::SeqCst);
            stats.cuts.fetch_add(1, Ordering::SeqCst);
            up.abort();
            // Dropping both halves resets the client's connection mid-body.
            return Ok(());
        }
        if left != u64::MAX {
            budget.store(left - n as u64, Ordering::SeqCst);
        }
        cw.write_all(&buf[..n]).await?;
        stats.bytes_down.fetch_add(n as u64, Ordering::SeqCst);
    }
    cw.shutdown().await?;
    let _ = up.await;
    Ok(())
}
