//! A published bundle opened in place (`artifact_source`): its blobs are read from the
//! artifact's repository while the verifying push streams them into another registry. Real
//! `docker-registry` instances; the vendor's behind the fault proxy, so downloads are cut
//! mid-body (resumed with a `Range` request at the byte they stopped) or refused (named as the
//! vendor registry's failure, exit 4, not as a damaged bundle).

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;

use airlift_bundle::{BlobSource, Bundle, Diagnose, ExitKind, NoProgress, Trust};
use airlift_registry::artifact::{artifact_manifest, members, ArtifactError, OciReference};
use airlift_registry::artifact_push::{push_artifact, ArtifactUpload};
use airlift_registry::artifact_source::{open_published, source_failure};
use airlift_registry::client::RegistryClient;
use airlift_registry::mapping::Destination;
use airlift_registry::push::{push_verifying, PushImage, PushReport};
use airlift_testkit::bundles::{ShopBundles, ShopVersion};
use airlift_testkit::fault_proxy::{Fault, FaultProxy, Rule, Schedule};
use airlift_testkit::registry::TestRegistry;
use common::*;

struct Published {
    _dir: tempfile::TempDir,
    bundles: ShopBundles,
    trust: Trust,
    vendor: TestRegistry,
}

/// A shop bundle (a 2 MiB base layer) published as an artifact at `acme/shop:1.0.0`.
async fn published() -> Published {
    let dir = tempfile::tempdir().unwrap();
    let bundles = ShopBundles::with_base_layer(dir.path(), 2 << 20).unwrap();
    let key = bundles.public_key().unwrap();
    let trust = Trust::from_flags(Some(&key), false).unwrap();
    let path = bundles.write(&ShopVersion::new("1.0.0")).unwrap();
    let bundle = Arc::new(Bundle::open_trusted(&path, &trust).unwrap());
    let report = bundle.verify(&trust, &NoProgress).unwrap();
    let vendor = TestRegistry::plain();
    let client = RegistryClient::new(&vendor.host(), &options_for(&vendor)).unwrap();
    let list = members(
        bundle.manifest(),
        bundle.manifest_bytes(),
        bundle.signature(),
    );
    let artifact = artifact_manifest(bundle.manifest(), &list, &BTreeMap::new(), &report.sha256);
    let upload = ArtifactUpload {
        members: &list,
        artifact: &artifact,
        repo: "acme/shop",
        tag: "1.0.0",
        mount_from: &BTreeMap::new(),
    };
    push_artifact(&client, bundle, upload, 4, Arc::new(NoProgress))
        .await
        .unwrap();
    Published {
        _dir: dir,
        bundles,
        trust,
        vendor,
    }
}

/// Opens `oci://HOST/acme/shop:1.0.0` through `host` and pushes its images to `site`.
async fn relocate(
    p: &Published,
    host: &str,
    site: &TestRegistry,
) -> Result<PushReport, airlift_registry::push::PushError> {
    let options = RegistryOptions::default()
        .without_auth_files()
        .with_insecure(host)
        .with_retry(fast_retry());
    let oci = OciReference::parse(&format!("oci://{host}/acme/shop:1.0.0")).unwrap();
    let client = Arc::new(RegistryClient::new(host, &options).unwrap());
    let bundle = open_published(client, &oci, &p.trust, &NoProgress)
        .await
        .unwrap();
    assert_eq!(bundle.blobs_origin(), Some(oci_text(host).as_str()));
    let images: Vec<PushImage> = bundle
        .manifest()
        .components
        .iter()
        .flat_map(|c| c.images.iter().map(PushImage::from))
        .collect();
    let dest = Destination::parse(&format!("{}/corp", site.host()), false).unwrap();
    let site_client = RegistryClient::new(&dest.registry, &options_for(site)).unwrap();
    let source: Arc<dyn BlobSource> = Arc::new(bundle);
    push_verifying(
        &site_client,
        source,
        &images,
        &dest,
        4,
        Arc::new(NoProgress),
    )
    .await
}

fn oci_text(host: &str) -> String {
    format!("oci://{host}/acme/shop:1.0.0")
}

use airlift_registry::RegistryOptions;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cut_downloads_resume_where_they_stopped_and_the_image_arrives_whole() {
    let p = published().await;
    let base = p.bundles.images().api.layers[0].blob.clone();
    let upstream = format!("127.0.0.1:{}", p.vendor.port()).parse().unwrap();
    let proxy = FaultProxy::start(
        upstream,
        vec![Rule::new(
            Fault::ResetResponseBody { after: 300 << 10 },
            Schedule::FirstN(3),
        )
        .method("GET")
        .path_contains(&format!("/acme/shop/blobs/{}", base.digest))],
    )
    .await;
    let site = TestRegistry::plain();
    let report = relocate(&p, &proxy.host(), &site).await.unwrap();
    assert_eq!(proxy.injected(), 3, "{:?}", proxy.fault_log());
    assert!(report.bytes_pushed >= base.size, "{report:?}");
    let scratch = tempfile::tempdir().unwrap();
    verify_with_skopeo(&site, &report, scratch.path());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vendor_registry_that_fails_is_named_as_such_not_as_a_damaged_bundle() {
    let p = published().await;
    let base = p.bundles.images().api.layers[0].blob.clone();
    let upstream = format!("127.0.0.1:{}", p.vendor.port()).parse().unwrap();
    let proxy = FaultProxy::start(
        upstream,
        vec![Rule::new(Fault::Status(503), Schedule::FirstN(1000))
            .method("GET")
            .path_contains(&format!("/acme/shop/blobs/{}", base.digest))],
    )
    .await;
    let site = TestRegistry::plain();
    let e = relocate(&p, &proxy.host(), &site).await.unwrap_err();
    assert!(proxy.injected() > 1, "retried: {:?}", proxy.fault_log());
    assert_eq!(e.exit_kind(), ExitKind::Registry, "{e:?}");
    let source = e.source_registry_error().unwrap();
    assert_eq!(source.target().registry, proxy.host(), "{source}");
    match source_failure(&oci_text(&proxy.host()), e).unwrap() {
        ArtifactError::Registry(r) => assert_eq!(r.target().registry, proxy.host()),
        other => panic!("{other}"),
    }
    assert!(
        !site.storage_dir().join("docker/registry/v2/blobs").exists(),
        "nothing committed in the customer's registry"
    );
}
