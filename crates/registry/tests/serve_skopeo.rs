//! The read-only endpoint over a blob source: skopeo pulls every image out of it, by tag and by
//! digest, and raw HTTP checks HEAD, ranges, 404s and 405s.

#![allow(clippy::unwrap_used)]

mod common;

use std::io::Read;
use std::sync::Arc;

use airlift_bundle::{BlobSource, Digest};
use airlift_registry::serve::{serve, Catalog};
use airlift_testkit::registry::run_skopeo;
use common::*;
use tokio::net::TcpListener;

struct Running {
    host: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

async fn start(s: &Sample) -> Running {
    let source: Arc<dyn BlobSource> = s.store.clone();
    let catalog = Catalog::from_images(&*source, &s.images).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let host = listener.local_addr().unwrap().to_string();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(serve(listener, source, catalog, async {
        let _ = rx.await;
    }));
    Running {
        host,
        stop: Some(tx),
        task,
    }
}

fn skopeo_copy(src: &str, dest_dir: &std::path::Path) -> Digest {
    let args: Vec<String> = [
        "--insecure-policy",
        "copy",
        "--all",
        "--preserve-digests",
        "--retry-times=0",
        "--src-tls-verify=false",
        "--src-no-creds",
        src,
    ]
    .iter()
    .map(|s| s.to_string())
    .chain([format!("oci:{}:x", dest_dir.display())])
    .collect();
    run_skopeo(&args);
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dest_dir.join("index.json")).unwrap()).unwrap();
    index["manifests"][0]["digest"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn skopeo_pulls_every_image_by_tag_and_by_digest() {
    let tmp = tempfile::tempdir().unwrap();
    let s = sample(tmp.path(), 700, 1 << 20);
    let mut srv = start(&s).await;
    let h = srv.host.clone();
    let cases = [
        (
            format!("docker://{h}/acme/api:1.0"),
            s.set.api.manifest.digest.clone(),
        ),
        (
            format!("docker://{h}/acme/worker:1.0"),
            s.set.worker.manifest.digest.clone(),
        ),
        (
            format!("docker://{h}/acme/multi:2.0"),
            s.set.multi.index.digest.clone(),
        ),
        (
            format!("docker://{h}/acme/multi@{}", s.set.multi.index.digest),
            s.set.multi.index.digest.clone(),
        ),
        (
            format!(
                "docker://{h}/acme/arm-only@{}",
                s.set.arm_only.manifest.digest
            ),
            s.set.arm_only.manifest.digest.clone(),
        ),
    ];
    for (i, (src, want)) in cases.iter().enumerate() {
        let got =
            tokio::task::block_in_place(|| skopeo_copy(src, &tmp.path().join(format!("out-{i}"))));
        assert_eq!(&got, want, "{src}");
    }
    // The listing endpoints.
    let cat: serde_json::Value = reqwest::get(format!("http://{h}/v2/_catalog"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(cat["repositories"].as_array().unwrap().len(), 4, "{cat}");
    let tags = tokio::task::block_in_place(|| {
        run_skopeo(&[
            "list-tags".into(),
            "--tls-verify=false".into(),
            format!("docker://{h}/acme/api"),
        ])
    });
    assert!(String::from_utf8_lossy(&tags).contains("\"1.0\""));
    srv.stop.take().unwrap().send(()).unwrap();
    srv.task.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_semantics_head_range_404_405() {
    let tmp = tempfile::tempdir().unwrap();
    let s = sample(tmp.path(), 710, 512 << 10);
    let srv = start(&s).await;
    let h = &srv.host;
    let http = reqwest::Client::new();

    let v2 = http.get(format!("http://{h}/v2/")).send().await.unwrap();
    assert_eq!(v2.status(), 200);
    assert_eq!(
        v2.headers()["docker-distribution-api-version"],
        "registry/2.0"
    );

    // Manifest HEAD by tag: the right type, digest and length, no body.
    let m = http
        .head(format!("http://{h}/v2/acme/multi/manifests/2.0"))
        .send()
        .await
        .unwrap();
    assert_eq!(m.status(), 200);
    assert_eq!(
        m.headers()["content-type"],
        "application/vnd.oci.image.index.v1+json"
    );
    assert_eq!(
        m.headers()["docker-content-digest"],
        s.set.multi.index.digest.to_string().as_str()
    );
    assert_eq!(
        m.headers()["content-length"],
        s.set.multi.index.size.to_string().as_str()
    );

    // A child manifest of the index, by digest, with its own media type.
    let child = &s.set.multi.images[0].manifest;
    let c = http
        .get(format!(
            "http://{h}/v2/acme/multi/manifests/{}",
            child.digest
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(
        c.headers()["content-type"],
        "application/vnd.oci.image.manifest.v1+json"
    );
    assert_eq!(Digest::of_bytes(&c.bytes().await.unwrap()), child.digest);

    // A range of the base layer.
    let layer = &s.set.api.layers[0].blob;
    let r = http
        .get(format!("http://{h}/v2/acme/api/blobs/{}", layer.digest))
        .header("range", "bytes=1000-200999")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 206);
    assert_eq!(
        r.headers()["content-range"],
        format!("bytes 1000-200999/{}", layer.size).as_str()
    );
    let got = r.bytes().await.unwrap();
    let mut want = vec![0u8; 200_000];
    let mut reader =
        airlift_bundle::BlobSourceReader::range(&*s.store, layer.digest.clone(), 1000, 201_000);
    reader.read_exact(&mut want).unwrap();
    assert_eq!(&got[..], &want[..]);
    // The whole blob hashes to its digest.
    let whole = http
        .get(format!("http://{h}/v2/acme/api/blobs/{}", layer.digest))
        .send()
        .await
        .unwrap();
    assert_eq!(whole.status(), 200);
    assert_eq!(
        Digest::of_bytes(&whole.bytes().await.unwrap()),
        layer.digest
    );
    // Unsatisfiable range.
    let bad = http
        .get(format!("http://{h}/v2/acme/api/blobs/{}", layer.digest))
        .header("range", format!("bytes={}-", layer.size))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 416);

    // 404s with OCI error codes; a repository only serves its own blobs.
    for (url, code) in [
        (format!("http://{h}/v2/nope/manifests/1.0"), "NAME_UNKNOWN"),
        (
            format!("http://{h}/v2/acme/api/manifests/9.9"),
            "MANIFEST_UNKNOWN",
        ),
        (
            format!(
                "http://{h}/v2/acme/api/blobs/{}",
                s.set.arm_only.config.digest
            ),
            "BLOB_UNKNOWN",
        ),
    ] {
        let r = http.get(&url).send().await.unwrap();
        assert_eq!(r.status(), 404, "{url}");
        let body: serde_json::Value = r.json().await.unwrap();
        assert_eq!(body["errors"][0]["code"], code, "{url}");
    }

    // Writes are refused.
    for method in [
        reqwest::Method::POST,
        reqwest::Method::PUT,
        reqwest::Method::PATCH,
        reqwest::Method::DELETE,
    ] {
        let r = http
            .request(
                method.clone(),
                format!("http://{h}/v2/acme/api/blobs/uploads/"),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 405, "{method}");
        assert_eq!(r.headers()["allow"], "GET, HEAD");
    }
}
