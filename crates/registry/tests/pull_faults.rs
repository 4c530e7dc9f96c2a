//! Pulling through a loopback proxy: a connection reset mid-blob is retried and resumed, and a
//! rebuild downloads no blob at all.
#![allow(clippy::unwrap_used)]

mod pull_support;

use std::sync::atomic::Ordering;

use airlift_bundle::NoProgress;
use airlift_registry::pull::RegistryPuller;
use airlift_testkit::images::sample_set;
use airlift_testkit::registry::TestRegistry;
use pull_support::{options_for, platforms, start_proxy, store};

#[tokio::test]
async fn reset_mid_blob_is_retried_and_resumed_with_a_range() {
    let tmp = tempfile::tempdir().unwrap();
    let set = sample_set(&tmp.path().join("layout"), 71, 3 << 20).unwrap();
    let reg = TestRegistry::plain();
    reg.seed(&set.dir, "api", "acme/api:1.0");
    let base = set.api.layers[0].blob.clone();
    assert!(base.size > 1 << 20);
    let proxy = start_proxy(
        reg.host(),
        Some((base.digest.hex().to_string(), 256 * 1024)),
    )
    .await;

    let store = store(tmp.path());
    let puller = RegistryPuller::new(
        store.clone(),
        options_for(&reg, std::slice::from_ref(&proxy.host)),
    )
    .unwrap();
    let img = puller
        .pull(
            &format!("{}/acme/api:1.0", proxy.host),
            &platforms(&["linux/amd64"]),
            &NoProgress,
        )
        .await
        .unwrap();
    assert_eq!(img.top.digest, set.api.manifest.digest);
    assert_eq!(
        proxy.stats.cuts.load(Ordering::SeqCst),
        1,
        "the proxy never cut"
    );
    assert!(store.contains(&base.digest));
    let gets = proxy.stats.blob_gets.lock().unwrap().clone();
    let base_gets: Vec<&(String, Option<String>)> = gets
        .iter()
        .filter(|(l, _)| l.contains(base.digest.hex()))
        .collect();
    assert_eq!(base_gets.len(), 2, "{gets:?}");
    // Every blob is asked for by range, from byte 0 at first (so the client leaves hashing to
    // the store), and the retry resumes where the cut left it.
    assert_eq!(base_gets[0].1.as_deref(), Some("bytes=0-"), "{gets:?}");
    let resumed_at: u64 = base_gets[1]
        .1
        .as_deref()
        .and_then(|r| r.strip_prefix("bytes="))
        .and_then(|r| r.strip_suffix('-'))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("the retry should resume with a Range: {gets:?}"));
    assert!(resumed_at > 0, "{gets:?}");
    // The resumed download did not send the whole blob twice.
    assert!(img.bytes_transferred < base.size + 512 * 1024);
}

#[tokio::test]
async fn rebuild_hits_the_cache_and_downloads_no_blob() {
    let tmp = tempfile::tempdir().unwrap();
    let set = sample_set(&tmp.path().join("layout"), 81, 500_000).unwrap();
    let reg = TestRegistry::plain();
    reg.seed(&set.dir, "multi", "acme/multi:2.0");
    reg.seed(&set.dir, "api", "acme/api:1.0");
    let proxy = start_proxy(reg.host(), None).await;
    let store = store(tmp.path());
    let p = platforms(&["linux/amd64", "linux/arm64"]);
    let refs = [
        format!("{}/acme/multi:2.0", proxy.host),
        format!("{}/acme/api:1.0", proxy.host),
    ];

    let first = RegistryPuller::new(
        store.clone(),
        options_for(&reg, std::slice::from_ref(&proxy.host)),
    )
    .unwrap();
    for r in &refs {
        let plats = if r.contains("api") { &p[..1] } else { &p[..] };
        first.pull(r, plats, &NoProgress).await.unwrap();
    }
    let gets_first = proxy.stats.blob_get_count();
    assert!(gets_first > 0);
    let bytes_first = proxy.stats.bytes_down.load(Ordering::SeqCst);

    // A new puller over the same cache: the tags are resolved again, no blob is fetched.
    let second = RegistryPuller::new(
        store.clone(),
        options_for(&reg, std::slice::from_ref(&proxy.host)),
    )
    .unwrap();
    for r in &refs {
        let plats = if r.contains("api") { &p[..1] } else { &p[..] };
        let img = second.pull(r, plats, &NoProgress).await.unwrap();
        assert_eq!(img.bytes_transferred, 0);
        assert_eq!(img.blobs_cached, img.blobs.len());
    }
    assert_eq!(
        proxy.stats.blob_get_count(),
        gets_first,
        "the rebuild fetched blobs"
    );
    let bytes_second = proxy.stats.bytes_down.load(Ordering::SeqCst) - bytes_first;
    assert!(
        bytes_second < 64 * 1024,
        "the rebuild moved {bytes_second} bytes (first build: {bytes_first})"
    );
}

#[tokio::test]
async fn concurrent_pulls_download_a_shared_layer_once() {
    let tmp = tempfile::tempdir().unwrap();
    let set = sample_set(&tmp.path().join("layout"), 111, 1 << 20).unwrap();
    let reg = TestRegistry::plain();
    reg.seed(&set.dir, "api", "acme/api:1.0");
    reg.seed(&set.dir, "worker", "acme/worker:1.0");
    let proxy = start_proxy(reg.host(), None).await;
    let store = store(tmp.path());
    let puller = RegistryPuller::new(
        store.clone(),
        options_for(&reg, std::slice::from_ref(&proxy.host)),
    )
    .unwrap();
    let p = platforms(&["linux/amd64"]);
    let (ra, rw) = (
        format!("{}/acme/api:1.0", proxy.host),
        format!("{}/acme/worker:1.0", proxy.host),
    );
    let (a, w) = tokio::join!(
        puller.pull(&ra, &p, &NoProgress),
        puller.pull(&rw, &p, &NoProgress),
    );
    let (a, w) = (a.unwrap(), w.unwrap());
    let base = &set.api.layers[0].blob;
    assert!(a.blobs.iter().any(|b| b.digest == base.digest));
    assert!(w.blobs.iter().any(|b| b.digest == base.digest));
    let gets = proxy.stats.blob_gets.lock().unwrap().clone();
    let base_gets = gets
        .iter()
        .filter(|(l, _)| l.contains(base.digest.hex()))
        .count();
    assert_eq!(
        base_gets, 1,
        "the shared layer was downloaded {base_gets} times"
    );
    assert_eq!(a.bytes_transferred + w.bytes_transferred, {
        let own: u64 = set.api.layers[1].blob.size + set.worker.layers[1].blob.size;
        own + base.size
    });
}
