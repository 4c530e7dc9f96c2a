//! `serve` hashes every blob while serving it: a layer modified in place after verification
//! gets a cut response (the client sees an error), never `200` with complete wrong bytes.

#![allow(clippy::unwrap_used)]

mod common;

use std::os::unix::fs::FileExt;
use std::sync::Arc;

use airlift_bundle::{BlobSource, Digest};
use airlift_registry::serve::{serve, Catalog};
use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_layer_changed_in_place_gets_a_cut_response() {
    let tmp = tempfile::tempdir().unwrap();
    let s = sample(tmp.path(), 900, 3 << 20);
    let source: Arc<dyn BlobSource> = s.store.clone();
    let catalog = Catalog::from_images(&*source, &s.images).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let host = listener.local_addr().unwrap().to_string();
    let task = tokio::spawn(serve(listener, source, catalog, std::future::pending()));
    // The largest layer of the `api` image, in the repository that serves it.
    let (repo, _, _) = Catalog::from_images(&*s.store, &s.images)
        .unwrap()
        .tags()
        .into_iter()
        .find(|(_, _, d)| d == &s.set.api.manifest.digest)
        .unwrap();
    let layer: Digest = s
        .set
        .api
        .layers
        .iter()
        .max_by_key(|l| l.blob.size)
        .unwrap()
        .blob
        .digest
        .clone();
    let url = format!("http://{host}/v2/{repo}/blobs/{layer}");
    let http = reqwest::Client::new();
    let intact = http.get(&url).send().await.unwrap();
    assert_eq!(intact.status(), 200);
    assert_eq!(Digest::of_bytes(&intact.bytes().await.unwrap()), layer);
    let ranged = http
        .get(&url)
        .header("Range", "bytes=10-99")
        .send()
        .await
        .unwrap();
    assert_eq!(ranged.status(), 206);
    assert_eq!(ranged.bytes().await.unwrap().len(), 90);

    // Change one byte near the end, in place (same size).
    let path = s.store.path_of(&layer);
    let len = std::fs::metadata(&path).unwrap().len();
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&path)
        .unwrap();
    let mut b = [0u8];
    f.read_exact_at(&mut b, len - 5).unwrap();
    f.write_all_at(&[b[0] ^ 0x40], len - 5).unwrap();

    let cut = http.get(&url).send().await.unwrap();
    let body = cut.bytes().await;
    assert!(
        body.is_err(),
        "a changed layer must not be served complete: {body:?}"
    );
    // A range that does not even cover the changed byte is cut too: the whole blob is hashed.
    let ranged = http
        .get(&url)
        .header("Range", "bytes=0-9")
        .send()
        .await
        .unwrap();
    assert!(ranged.bytes().await.is_err());
    task.abort();
}
