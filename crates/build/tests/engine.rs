//! The build engine driven in-process, as `airlift-pack` and any other caller drive it: a bundle
//! that verifies, a stop that leaves nothing, and failures typed so each caller can tell a
//! registry problem from a definition problem without parsing messages.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use airlift_build::local_image::LocalImageError;
use airlift_build::{build, BuildError, BuildRequest, BuildSummary, ImageError, KeepLayers};
use airlift_bundle::{Diagnose, DirBlobStore, ExitKind, NoProgress, PrivateKey, Trust};
use airlift_registry::pull::PullError;
use airlift_registry::RegistryOptions;
use airlift_testkit::definitions::write_definition;
use airlift_testkit::files::names_in;
use airlift_testkit::images::{sample_set, SampleSet};

/// A definition of two images: `api` from an OCI layout, `web` built from a local folder.
fn definition(dir: &Path, seed: u64) -> (PathBuf, SampleSet) {
    let def = dir.join("def");
    let set = sample_set(&def.join("images/layout"), seed, 256 << 10).unwrap();
    write_definition(
        &def,
        "engine",
        &["linux/amd64"],
        &[
            (
                "acme.example/api:1",
                "{ociLayout: {path: images/layout, tag: api}}",
            ),
            (
                "acme.example/web:1",
                "{build: {context: web, entrypoint: [/app/web]}}",
            ),
        ],
    )
    .unwrap();
    std::fs::create_dir_all(def.join("web/static")).unwrap();
    std::fs::write(def.join("web/static/index.html"), "<h1>hello</h1>\n").unwrap();
    std::fs::write(def.join("web/web"), "not really a program\n").unwrap();
    (def, set)
}

/// Registry options that read no credentials of this machine and never retry.
fn registry() -> RegistryOptions {
    RegistryOptions {
        use_auth_files: false,
        retry: airlift_registry::RetryPolicy::none(),
        ..RegistryOptions::default()
    }
}

fn request(def: &Path, out: &Path, cache: &Path, key: &PrivateKey) -> BuildRequest {
    BuildRequest {
        definition: airlift_render::load_definition(def).unwrap(),
        key: Some(key.clone()),
        out_dir: out.to_path_buf(),
        cache: DirBlobStore::open(cache)
            .unwrap()
            .with_proofs()
            .with_held_bundles(),
        keep_layers: KeepLayers::InCache,
        registry: registry(),
        image_concurrency: 2,
        source_date_epoch: None,
        stop: Arc::new(AtomicBool::new(false)),
    }
}

/// A request writing into `out`, with a fresh cache beside it and a new key.
fn fresh_request(def: &Path, out: &Path) -> BuildRequest {
    let cache = out.with_file_name("cache");
    request(def, out, &cache, &PrivateKey::generate())
}

async fn run(req: BuildRequest) -> Result<BuildSummary, BuildError> {
    build(req, Arc::new(NoProgress)).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_definition_builds_in_process_into_a_bundle_that_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let (def, set) = definition(dir.path(), 41);
    let key = PrivateKey::generate();
    let out = dir.path().join("out");
    let cache = dir.path().join("cache");

    let summary = run(request(&def, &out, &cache, &key)).await.unwrap();
    assert_eq!(names_in(&out), ["engine-1.0.0.airlift"]);
    assert_eq!(summary.bundle, out.join("engine-1.0.0.airlift"));
    assert_eq!(
        summary.size,
        std::fs::metadata(&summary.bundle).unwrap().len()
    );
    assert!(summary.signed);
    assert_eq!(summary.downloaded_bytes, 0);
    let refs: Vec<&str> = summary
        .images
        .iter()
        .map(|i| i.reference.as_str())
        .collect();
    assert_eq!(refs, ["acme.example/api:1", "acme.example/web:1"]);
    assert_eq!(
        summary.images[0].digest,
        set.api.manifest.digest.to_string()
    );
    assert_eq!(summary.images[0].layer_reused, None);
    assert_eq!(summary.images[1].layer_reused, Some(false));

    // The bundle verifies against the key's public half, and holds every layer of the layout.
    let trust = Trust::Key(key.public_key());
    let bundle = airlift_bundle::Bundle::open_trusted(&summary.bundle, &trust).unwrap();
    bundle.verify(&trust, &NoProgress).unwrap();
    let held: Vec<String> = bundle
        .manifest()
        .blobs
        .iter()
        .map(|b| b.digest.to_string())
        .collect();
    for layer in &set.api.layers {
        assert!(held.contains(&layer.blob.digest.to_string()), "{held:?}");
    }
    assert_eq!(summary.unique_blobs, held.len());

    // The same inputs give the same bytes, from the warm cache.
    let again_out = dir.path().join("again");
    let again = run(request(&def, &again_out, &cache, &key)).await.unwrap();
    assert!(
        std::fs::read(&summary.bundle).unwrap() == std::fs::read(&again.bundle).unwrap(),
        "the rebuild differs"
    );
    // Nothing was downloaded and no layer of the layout is kept, so the cache holds neither
    // bundle (a link would keep a deleted one's space until the next build).
    assert!(
        names_in(&cache.join("bundles")).is_empty(),
        "{:?}",
        names_in(&cache.join("bundles"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_build_asked_to_stop_writes_no_file() {
    let dir = tempfile::tempdir().unwrap();
    let (def, _) = definition(dir.path(), 42);
    let key = PrivateKey::generate();
    let out = dir.path().join("out");
    let req = request(&def, &out, &dir.path().join("cache"), &key);
    req.stop.store(true, std::sync::atomic::Ordering::Relaxed);

    let err = run(req).await.unwrap_err();
    assert!(
        matches!(&err, BuildError::Write { source, .. }
            if matches!(**source, airlift_bundle::WriteError::Stopped { .. })),
        "{err:?}"
    );
    assert!(names_in(&out).is_empty(), "{:?}", names_in(&out));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_layout_layer_is_a_source_failure_naming_the_layout() {
    let dir = tempfile::tempdir().unwrap();
    let (def, set) = definition(dir.path(), 43);
    let (layer, victim, bytes) = set.corrupt_largest_api_layer();
    let out = dir.path().join("out");

    let req = fresh_request(&def, &out);
    let err = run(req).await.unwrap_err();
    match &err {
        BuildError::Source { source, .. } => match source.as_ref() {
            PullError::Layout { path, detail } => {
                assert_eq!(path, &set.dir, "{err:?}");
                assert!(detail.contains(&layer.blob.digest.to_string()), "{detail}");
            }
            other => panic!("expected a layout error, got {other:?}"),
        },
        other => panic!("expected a source failure, got {other:?}"),
    }
    assert_eq!(err.exit_kind(), ExitKind::Registry);
    assert!(err.fix().is_some());
    assert!(names_in(&out).is_empty(), "{:?}", names_in(&out));
    assert_eq!(
        std::fs::read(&victim).unwrap(),
        bytes,
        "the source was changed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_context_symlink_leaving_the_folder_is_a_definition_problem() {
    let dir = tempfile::tempdir().unwrap();
    let (def, _) = definition(dir.path(), 44);
    std::os::unix::fs::symlink("/etc/passwd", def.join("web/passwd")).unwrap();
    let out = dir.path().join("out");

    let req = fresh_request(&def, &out);
    let err = run(req).await.unwrap_err();
    assert!(
        matches!(
            &err,
            BuildError::Image { image, source: ImageError::Local(LocalImageError::SymlinkEscapes { path, .. }) }
                if image == "acme.example/web:1" && path == "passwd"
        ),
        "{err:?}"
    );
    assert_eq!(err.exit_kind(), ExitKind::Config);
    assert!(names_in(&out).is_empty(), "{:?}", names_in(&out));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_registry_is_a_registry_failure_naming_the_image() {
    let dir = tempfile::tempdir().unwrap();
    // A port nothing listens on: bound, then released.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let host = format!("127.0.0.1:{port}");
    let reference = format!("{host}/acme/api:1");
    let def = dir.path().join("def");
    write_definition(&def, "engine", &["linux/amd64"], &[(&reference, "")]).unwrap();
    let out = dir.path().join("out");

    let mut req = fresh_request(&def, &out);
    req.registry.insecure.insert(host);
    let err = run(req).await.unwrap_err();
    assert!(
        matches!(&err, BuildError::Image { image, source: ImageError::Pull(_) } if *image == reference),
        "{err:?}"
    );
    assert_eq!(err.exit_kind(), ExitKind::Registry);
    assert!(names_in(&out).is_empty(), "{:?}", names_in(&out));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_output_folder_that_cannot_be_made_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let (def, _) = definition(dir.path(), 45);
    let file = dir.path().join("a-file");
    std::fs::write(&file, "").unwrap();
    let out = file.join("out");

    let req = request(
        &def,
        &out,
        &dir.path().join("cache"),
        &PrivateKey::generate(),
    );
    let err = run(req).await.unwrap_err();
    assert!(
        matches!(&err, BuildError::OutDir { path, .. } if *path == out),
        "{err:?}"
    );
    assert_eq!(err.exit_kind(), ExitKind::Failure);
    assert!(
        err.to_string().contains(&out.display().to_string()),
        "{err}"
    );
}

#[test]
fn lint_reports_every_problem_of_a_definition_in_process() {
    // A test harness cannot serve as the render worker: templates render in this process.
    airlift_render::isolate::set_default_isolation(airlift_render::isolate::Isolation::InProcess);
    let dir = tempfile::tempdir().unwrap();
    let (def, _) = definition(dir.path(), 46);
    let clean = airlift_build::lint::lint(&def, None, airlift_build::lint::LocalBuilds::Scratch);
    assert!(clean.ok, "{:?}", clean.problems);
    assert_eq!(clean.images, ["acme.example/api:1", "acme.example/web:1"]);
    assert!(clean.built.contains_key("acme.example/web:1"), "{clean:?}");

    // Two problems in two checks: a template that does not render, and a layout tag that is
    // not there. Both are reported, each under its check.
    std::fs::write(def.join("manifests/broken.yaml"), "{{ nope( }}\n").unwrap();
    let yaml = std::fs::read_to_string(def.join("airlift.yaml")).unwrap();
    std::fs::write(
        def.join("airlift.yaml"),
        yaml.replace("tag: api}", "tag: absent}"),
    )
    .unwrap();
    let report = airlift_build::lint::lint(&def, None, airlift_build::lint::LocalBuilds::Scratch);
    assert!(!report.ok);
    let checks: Vec<&str> = report.problems.iter().map(|p| p.check).collect();
    assert!(checks.contains(&"templates"), "{:?}", report.problems);
    assert!(checks.contains(&"images"), "{:?}", report.problems);
    let images = report
        .problems
        .iter()
        .find(|p| p.check == "images")
        .unwrap();
    assert!(images.message.contains("absent"), "{}", images.message);
}

#[test]
fn lint_into_the_cache_leaves_the_layer_the_next_build_takes() {
    use airlift_build::lint::{lint, LocalBuilds};
    airlift_render::isolate::set_default_isolation(airlift_render::isolate::Isolation::InProcess);
    let dir = tempfile::tempdir().unwrap();
    let (def, _) = definition(dir.path(), 47);
    // Files changed within `SETTLED` of a build are built but not recorded for reuse.
    std::thread::sleep(
        airlift_build::local_image_reuse::SETTLED + std::time::Duration::from_millis(200),
    );
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let key = PrivateKey::generate();
    let build_into = |out: &str, cache: &Path| {
        let req = request(&def, &dir.path().join(out), cache, &key);
        runtime.block_on(run(req)).unwrap()
    };
    let web = "acme.example/web:1";
    let web_of = |s: &BuildSummary| {
        s.images
            .iter()
            .find(|i| i.reference == web)
            .cloned()
            .unwrap()
    };

    // Lint in scratch keeps nothing: the build after it compresses the layer itself.
    let scratch_cache = dir.path().join("cache-a");
    let report = lint(&def, None, LocalBuilds::Scratch);
    assert!(report.ok, "{:?}", report.problems);
    assert!(!scratch_cache.exists());
    let after_scratch = build_into("out-a", &scratch_cache);
    assert_eq!(web_of(&after_scratch).layer_reused, Some(false));

    // Lint into the cache: the build takes the layer lint made, and the image is the one lint
    // reported.
    let cache_dir = dir.path().join("cache-b");
    let cache = DirBlobStore::open(&cache_dir).unwrap().with_proofs();
    let report = lint(&def, None, LocalBuilds::Cache(&cache));
    assert!(report.ok, "{:?}", report.problems);
    let linted = report.built.get(web).cloned().unwrap();
    let built = build_into("out-b", &cache_dir);
    let image = web_of(&built);
    assert_eq!(image.layer_reused, Some(true), "{image:?}");
    assert_eq!(image.digest, linted);
    assert_eq!(image.digest, web_of(&after_scratch).digest);
}
