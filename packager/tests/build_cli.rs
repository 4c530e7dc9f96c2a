//! `airlift-pack build` run as the real binary: offline from `bundles/demo`, and from a real
//! `docker-registry` on loopback seeded with skopeo, including a build interrupted mid-download.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use airlift_testkit::fault_proxy::{Fault, FaultProxy, Rule, Schedule};
use airlift_testkit::files::{copy_tree, files_under, names_in};
use airlift_testkit::images::sample_set;
use airlift_testkit::registry::TestRegistry;
use common::*;

#[test]
fn demo_builds_offline_and_reproducibly() {
    let dir = tempfile::tempdir().unwrap();
    let key = keygen(dir.path());
    let build = |out: &str, cache: &str| {
        json(&run_build(
            dir.path(),
            &demo_dir(),
            &key,
            out,
            cache,
            &["--output", "json"],
        ))
    };
    let first = build("a", "cache-a");
    let second = build("b", "cache-b");
    assert_eq!(first["images"].as_array().unwrap().len(), 2);
    assert_eq!(first["signed"], true);
    assert_eq!(first["downloadedBytes"], 0);
    let a = std::fs::read(first["bundle"].as_str().unwrap()).unwrap();
    let b = std::fs::read(second["bundle"].as_str().unwrap()).unwrap();
    assert!(a == b, "two builds of the same inputs differ");
    assert!(first["bundle"]
        .as_str()
        .unwrap()
        .ends_with("demo-0.1.0.airlift"));
}

/// `layerReused` of each image of a build's JSON summary, by reference.
fn layers_reused(summary: &serde_json::Value) -> Vec<(String, serde_json::Value)> {
    summary["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            (
                i["reference"].as_str().unwrap().to_string(),
                i["layerReused"].clone(),
            )
        })
        .collect()
}

#[test]
fn a_rebuild_of_unchanged_local_images_does_not_compress_them_again() {
    let dir = tempfile::tempdir().unwrap();
    let key = keygen(dir.path());
    let def = dir.path().join("demo");
    copy_tree(&demo_dir(), &def);
    // Files changed in the last two seconds are built but not recorded (see local_image_reuse).
    std::thread::sleep(Duration::from_millis(2200));
    let build = |out: &str, extra: &[&str]| {
        let mut args = vec!["--output", "json"];
        args.extend_from_slice(extra);
        let o = run_build(dir.path(), &def, &key, out, "cache", &args);
        (json(&o), text(&o))
    };
    let web = "registry.example.com/airlift-demo/web:0.1.0";
    let worker = "registry.example.com/airlift-demo/worker:0.1.0";
    let (first, _) = build("a", &[]);
    assert_eq!(
        layers_reused(&first),
        [
            (web.to_string(), false.into()),
            (worker.to_string(), false.into())
        ]
    );
    let (second, _) = build("b", &[]);
    assert_eq!(
        layers_reused(&second),
        [
            (web.to_string(), true.into()),
            (worker.to_string(), true.into())
        ]
    );
    let bundle =
        |summary: &serde_json::Value| std::fs::read(summary["bundle"].as_str().unwrap()).unwrap();
    assert!(
        bundle(&first) == bundle(&second),
        "the reused layers gave another bundle"
    );

    // The text summary says so too.
    let o = run_build(dir.path(), &def, &key, "c", "cache", &[]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains("(files unchanged: layer reused)"),
        "{}",
        text(&o)
    );

    // A file of one image changes: that image is built again, the other is not, and the bundle
    // is the one a build without any cache makes.
    let server = def.join("images/web/app/server.sh");
    let mut script = std::fs::read_to_string(&server).unwrap();
    script.push_str("# changed\n");
    std::fs::write(&server, script).unwrap();
    let (changed, _) = build("d", &[]);
    assert_eq!(
        layers_reused(&changed),
        [
            (web.to_string(), false.into()),
            (worker.to_string(), true.into())
        ]
    );
    let (uncached, _) = build("e", &["--no-cache"]);
    assert_eq!(
        layers_reused(&uncached),
        [
            (web.to_string(), false.into()),
            (worker.to_string(), false.into())
        ]
    );
    assert!(
        bundle(&changed) == bundle(&uncached),
        "the partly reused build differs from a build without cache"
    );
    assert!(bundle(&changed) != bundle(&first));
}

#[test]
fn registry_images_are_pinned_and_a_rebuild_hits_the_cache() {
    let dir = tempfile::tempdir().unwrap();
    let reg = TestRegistry::plain();
    let set = sample_set(&dir.path().join("layout"), 11, 64 << 10).unwrap();
    reg.seed(&set.dir, "api", "acme/api:1");
    let multi = reg.seed(&set.dir, "multi", "acme/multi:1");
    let host = reg.host();
    let def = registry_definition(dir.path(), &host, &["linux/amd64", "linux/arm64"]);
    let key = keygen(dir.path());
    let build = |out: &str| {
        json(&run_build(
            dir.path(),
            &def,
            &key,
            out,
            "cache",
            &["--insecure-registry", &host, "--output", "json"],
        ))
    };
    // `api` is linux/amd64 only, so the definition must require amd64 alone for it to build;
    // with both platforms required the build names the image and the missing platform.
    let o = run_build(
        dir.path(),
        &def,
        &key,
        "x",
        "cache",
        &["--insecure-registry", &host],
    );
    let all = text(&o);
    assert_eq!(o.status.code(), Some(4), "{all}");
    assert!(
        all.contains("acme/api:1") && all.contains("linux/arm64"),
        "{all}"
    );
    assert!(
        !dir.path().join("x").join("reg-1.0.0.airlift").exists(),
        "a failed build leaves no bundle"
    );

    registry_definition(dir.path(), &host, &["linux/amd64"]);
    let first = build("a");
    assert!(first["downloadedBytes"].as_u64().unwrap() > 0);
    let images = first["images"].as_array().unwrap();
    let multi_img = images
        .iter()
        .find(|i| i["reference"].as_str().unwrap().ends_with("multi:1"))
        .unwrap();
    // The index had two platforms and one is kept: a new, filtered index; the source stays pinned.
    assert_ne!(multi_img["digest"], multi.to_string());
    assert!(multi_img["source"]
        .as_str()
        .unwrap()
        .ends_with(&multi.to_string()));
    // Every blob the build pulled was proven as it was hashed, so the rebuild copies it from the
    // cache kernel-side without hashing it again.
    let bundle = airlift_bundle::Bundle::open(first["bundle"].as_str().unwrap()).unwrap();
    let cache = airlift_bundle::DirBlobStore::open(dir.path().join("cache"))
        .unwrap()
        .with_proofs()
        .with_held_bundles();
    for blob in &bundle.manifest().blobs {
        assert!(
            airlift_bundle::BlobSource::proven_range(&cache, &blob.digest).is_some(),
            "{} has no proof in the cache",
            blob.digest
        );
    }
    // The downloaded layers were written once: the cache holds the bundle itself (a hard
    // link), not copies of them.
    let cache_dir = dir.path().join("cache");
    let first_path = PathBuf::from(first["bundle"].as_str().unwrap());
    let (_, held, _) = largest_held_blob(&cache_dir);
    assert_same_file(&held, &first_path);
    for layer in &set.api.layers {
        assert!(!cache.path_of(&layer.blob.digest).exists());
    }
    let second = build("b");
    assert_eq!(second["downloadedBytes"], 0, "the rebuild downloaded blobs");
    let a = std::fs::read(&first_path).unwrap();
    let b = std::fs::read(second["bundle"].as_str().unwrap()).unwrap();
    assert!(a == b, "a rebuild from the cache differs");
    // The cache now points at the newer bundle; the first, still in `a`, costs no space.
    let (_, held, _) = largest_held_blob(&cache_dir);
    assert_same_file(&held, Path::new(second["bundle"].as_str().unwrap()));
    assert_eq!(names_in(&cache_dir.join("bundles")).len(), 2);
}

#[test]
fn a_plain_http_registry_is_refused_unless_named_insecure() {
    let dir = tempfile::tempdir().unwrap();
    let reg = TestRegistry::plain();
    let set = sample_set(&dir.path().join("layout"), 12, 16 << 10).unwrap();
    reg.seed(&set.dir, "api", "acme/api:1");
    reg.seed(&set.dir, "multi", "acme/multi:1");
    let def = registry_definition(dir.path(), &reg.host(), &["linux/amd64"]);
    let key = keygen(dir.path());
    let o = run_build(dir.path(), &def, &key, "out", "cache", &[]);
    let all = text(&o);
    assert_eq!(o.status.code(), Some(4), "{all}");
    assert!(all.contains(&reg.host()), "the registry is named: {all}");
    assert!(all.contains("hint:"), "{all}");
}

#[test]
fn a_corrupt_cache_entry_is_refused_removed_and_fetched_again() {
    let dir = tempfile::tempdir().unwrap();
    let RegistrySite {
        reg: _reg,
        set: _,
        host,
        def,
        key,
    } = registry_site(dir.path(), 13, 64 << 10);
    let cache = dir.path().join("cache");
    let build = |out: &str| {
        run_build(
            dir.path(),
            &def,
            &key,
            out,
            "cache",
            &["--insecure-registry", &host, "--output", "json"],
        )
    };
    let good = json(&build("a"));
    let good_bytes = std::fs::read(good["bundle"].as_str().unwrap()).unwrap();
    // Flip one byte of the largest cached blob (a layer, held in the bundle the cache links),
    // as a disk fault or a torn write would.
    let (victim, held, offset) = largest_held_blob(&cache);
    {
        use std::os::unix::fs::FileExt;
        let f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&held)
            .unwrap();
        let mut byte = [0u8; 1];
        f.read_exact_at(&mut byte, offset).unwrap();
        f.write_all_at(&[byte[0] ^ 0x01], offset).unwrap();
    }

    let o = build("b");
    let all = text(&o);
    assert_eq!(o.status.code(), Some(1), "{all}");
    assert!(
        all.contains("corrupt") && all.contains("run the build again"),
        "{all}"
    );
    assert!(!victim.exists(), "the corrupt entry is removed");
    assert!(
        !dir.path().join("b/reg-1.0.0.airlift").exists(),
        "no bundle from a corrupt cache"
    );

    let healed = json(&build("c"));
    assert!(
        healed["downloadedBytes"].as_u64().unwrap() > 0,
        "the blob is fetched again"
    );
    let c = std::fs::read(healed["bundle"].as_str().unwrap()).unwrap();
    assert!(good_bytes == c, "the healed build differs");
}

#[test]
fn a_world_readable_private_key_is_refused_unless_allowed() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let key = keygen(dir.path());
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let o = run_build(dir.path(), &demo_dir(), &key, "out", "cache", &[]);
    let all = text(&o);
    // The key named on the command line is unusable as it is: a wrong command line (exit 2).
    assert_eq!(o.status.code(), Some(2), "{all}");
    assert!(
        all.contains("is readable by other users (mode 0644)"),
        "{all}"
    );
    assert!(all.contains("chmod 600"), "{all}");
    assert!(!dir.path().join("out").exists(), "nothing is built: {all}");
    let o = run_build(
        dir.path(),
        &demo_dir(),
        &key,
        "out",
        "cache",
        &["--allow-insecure-key-permissions"],
    );
    assert!(o.status.success(), "{}", text(&o));
}

#[test]
fn an_endless_key_file_is_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let o = run_build(
        dir.path(),
        &demo_dir(),
        Path::new("/dev/zero"),
        "out",
        "cache",
        &["--allow-insecure-key-permissions"],
    );
    let all = text(&o);
    assert!(!o.status.success(), "{all}");
    assert!(all.contains("larger than the 65536-byte limit"), "{all}");
}

#[test]
fn no_cache_writes_layers_into_the_bundle_only() {
    let dir = tempfile::tempdir().unwrap();
    let RegistrySite {
        reg: _reg,
        set: _,
        host,
        def,
        key,
    } = registry_site(dir.path(), 14, 256 << 10);
    let flags = ["--insecure-registry", &host, "--output", "json"];
    let cached = json(&run_build(dir.path(), &def, &key, "a", "cache", &flags));
    let mut no_cache = flags.to_vec();
    no_cache.push("--no-cache");
    let first = json(&run_build(dir.path(), &def, &key, "b", "unused", &no_cache));
    let again = json(&run_build(dir.path(), &def, &key, "c", "unused", &no_cache));

    // Nothing cached is used and nothing is kept: each build downloads everything, the cache
    // folder named is not even created, and the output folder holds the bundle alone.
    assert_eq!(first["downloadedBytes"], cached["downloadedBytes"]);
    assert_eq!(again["downloadedBytes"], cached["downloadedBytes"]);
    assert!(cached["downloadedBytes"].as_u64().unwrap() > 256 << 10);
    assert!(!dir.path().join("unused").exists());
    assert_eq!(names_in(&dir.path().join("b")), ["reg-1.0.0.airlift"]);
    assert_eq!(names_in(&dir.path().join("c")), ["reg-1.0.0.airlift"]);
    let a = std::fs::read(cached["bundle"].as_str().unwrap()).unwrap();
    for other in [&first, &again] {
        let b = std::fs::read(other["bundle"].as_str().unwrap()).unwrap();
        assert!(a == b, "a --no-cache build differs from a cached one");
    }
}

#[test]
fn a_blob_the_registry_serves_corrupt_is_refused_and_kept_nowhere() {
    let dir = tempfile::tempdir().unwrap();
    let RegistrySite {
        reg,
        set: _,
        host,
        def,
        key,
    } = registry_site(dir.path(), 15, 256 << 10);
    // The largest blob the registry stores (a layer), one byte flipped: same size, other bytes.
    let blobs = reg.storage_dir().join("docker/registry/v2/blobs/sha256");
    let mut data: Vec<PathBuf> = std::fs::read_dir(&blobs)
        .unwrap()
        .flat_map(|prefix| std::fs::read_dir(prefix.unwrap().path()).unwrap())
        .map(|blob| blob.unwrap().path().join("data"))
        .collect();
    data.sort_by_key(|p| std::fs::metadata(p).unwrap().len());
    let victim = data.last().unwrap();
    let hex = victim
        .parent()
        .unwrap()
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    let mut bytes = std::fs::read(victim).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x01;
    std::fs::write(victim, &bytes).unwrap();

    let o = run_build(
        dir.path(),
        &def,
        &key,
        "out",
        "cache",
        &["--insecure-registry", &host],
    );
    let all = text(&o);
    assert_eq!(o.status.code(), Some(4), "{all}");
    assert!(all.contains(&hex), "the blob is named: {all}");
    assert!(all.contains("acme/"), "the image is named: {all}");
    assert!(
        all.contains("the bytes are not that blob")
            && all.contains("hint: the registry's copy of the blob is damaged"),
        "{all}"
    );
    // No bundle, no partial file, and the corrupt bytes are not in the cache.
    assert!(names_in(&dir.path().join("out")).is_empty(), "{all}");
    assert!(!dir.path().join("cache/sha256").join(&hex).exists());
    let kept: Vec<String> = names_in(&dir.path().join("cache/sha256"));
    assert!(
        kept.iter().all(|n| !n.starts_with(".tmp")),
        "temporary cache files left: {kept:?}"
    );
}

/// A definition whose `api` image comes from an OCI layout and `multi` from an OCI archive
/// (written by skopeo), both inside the definition's folder. Returns it and the layout.
fn local_definition(dir: &Path, seed: u64) -> (PathBuf, airlift_testkit::images::SampleSet) {
    let set = sample_set(&dir.join("def/images/layout"), seed, 256 << 10).unwrap();
    airlift_testkit::registry::run_skopeo(&[
        "--insecure-policy".into(),
        "copy".into(),
        "--all".into(),
        "--preserve-digests".into(),
        format!("oci:{}:multi", set.dir.display()),
        format!(
            "oci-archive:{}:multi",
            dir.join("def/images/multi.tar").display()
        ),
    ]);
    let def = definition(
        dir,
        &["linux/amd64"],
        [
            (
                "acme.example/api:1",
                "{ociLayout: {path: images/layout, tag: api}}",
            ),
            (
                "acme.example/multi:1",
                "{ociArchive: {path: images/multi.tar, tag: multi}}",
            ),
        ],
    );
    (def, set)
}

#[test]
fn layout_and_archive_layers_go_straight_into_the_bundle() {
    let dir = tempfile::tempdir().unwrap();
    let (def, set) = local_definition(dir.path(), 15);
    let key = keygen(dir.path());
    let sources = files_under(&def.join("images"));
    let amd64 = set
        .multi
        .images
        .iter()
        .find(|i| i.platform == "linux/amd64")
        .unwrap();
    let layers: Vec<&airlift_testkit::images::LayerInfo> =
        set.api.layers.iter().chain(&amd64.layers).collect();
    assert!(layers.iter().any(|l| l.blob.size > 256 << 10));

    let flags = ["--output", "json"];
    let cached = json(&run_build(dir.path(), &def, &key, "a", "cache", &flags));
    // The layers are read where they are and written into the bundle only: the cache holds the
    // manifests and configs the plan needs, none of the layers; nothing is downloaded.
    let cache = dir.path().join("cache/sha256");
    for l in &layers {
        let hex = l.blob.digest.to_string().replace("sha256:", "");
        assert!(
            !cache.join(&hex).exists(),
            "layer {} was cached",
            l.blob.digest
        );
    }
    assert!(cache
        .join(set.api.manifest.digest.to_string().replace("sha256:", ""))
        .exists());
    assert_eq!(cached["downloadedBytes"], 0);
    // Each layout layer was hashed once and is proven in the cache's proof store (a rebuild
    // copies it without hashing while its file is unchanged); the archive's members are not.
    let proofs = names_in(&dir.path().join("cache/proofs"));
    let proofs = proofs.iter().filter(|n| *n != "proof.key").count();
    assert_eq!(proofs, names_in(&cache).len() + set.api.layers.len());
    let sources_of = |v: &serde_json::Value| -> Vec<String> {
        v["images"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["source"].as_str().unwrap().to_string())
            .collect()
    };
    let pinned = sources_of(&cached);
    assert!(
        pinned[0].starts_with("oci:") && pinned[0].ends_with(&set.api.manifest.digest.to_string()),
        "{pinned:?}"
    );
    assert!(
        pinned[1].starts_with("oci-archive:")
            && pinned[1].ends_with(&set.multi.index.digest.to_string()),
        "{pinned:?}"
    );

    // Every layer is in the bundle, once, whole: its bytes appear in the file.
    let bundle = std::fs::read(cached["bundle"].as_str().unwrap()).unwrap();
    for l in &layers {
        let hex = l.blob.digest.to_string().replace("sha256:", "");
        let layer = std::fs::read(set.dir.join("blobs/sha256").join(&hex)).unwrap();
        let at = bundle.windows(64).position(|w| w == &layer[..64]);
        let at = at.unwrap_or_else(|| panic!("layer {} is not in the bundle", l.blob.digest));
        assert!(
            bundle[at..].starts_with(&layer),
            "layer {} is cut",
            l.blob.digest
        );
    }

    // A rebuild (the layout's layers copied on their proofs, the archive's read and hashed again)
    // gives the same bytes; with --no-cache the output folder holds the bundle alone; the sources
    // are left as they were.
    let again = json(&run_build(dir.path(), &def, &key, "b", "cache", &flags));
    let mut no_cache = flags.to_vec();
    no_cache.push("--no-cache");
    let bare = json(&run_build(dir.path(), &def, &key, "c", "unused", &no_cache));
    assert_eq!(names_in(&dir.path().join("c")), ["reg-1.0.0.airlift"]);
    for other in [&again, &bare] {
        assert_eq!(sources_of(other), pinned);
        let b = std::fs::read(other["bundle"].as_str().unwrap()).unwrap();
        assert!(bundle == b, "the bundles differ");
    }
    assert_eq!(files_under(&def.join("images")), sources);
}

#[test]
fn a_corrupt_layer_in_a_layout_is_refused_by_path_and_left_in_place() {
    let dir = tempfile::tempdir().unwrap();
    let (def, set) = local_definition(dir.path(), 16);
    let key = keygen(dir.path());
    let (layer, victim, bytes) = set.corrupt_largest_api_layer();

    let o = run_build(dir.path(), &def, &key, "a", "cache", &["--output", "json"]);
    let all = text(&o);
    // Exit 4 (a source failure), naming the layout, the blob, and how to check the layout.
    assert_eq!(o.status.code(), Some(4), "{all}");
    assert!(all.contains(&set.dir.display().to_string()), "{all}");
    assert!(all.contains(&layer.blob.digest.to_string()), "{all}");
    assert!(all.contains("does not match its digest"), "{all}");
    assert!(all.contains("skopeo inspect oci:DIR:TAG"), "{all}");
    // No bundle, and the vendor's file is theirs: reported, not removed or repaired.
    assert!(
        names_in(&dir.path().join("a")).is_empty(),
        "{:?}",
        names_in(&dir.path().join("a"))
    );
    assert_eq!(std::fs::read(&victim).unwrap(), bytes);
}

/// Polls `check` every 20 ms for up to `secs` seconds.
fn wait_for(secs: u64, what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Waits for `child` to exit (at most `secs` seconds, else kills it and fails).
fn wait_exit(mut child: Child, secs: u64) -> Output {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("the interrupted build did not stop within {secs} s");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

#[test]
fn an_interrupted_build_removes_its_partial_bundle_and_a_rerun_continues() {
    let dir = tempfile::tempdir().unwrap();
    let registry = TestRegistry::plain();
    let set = sample_set(&dir.path().join("layout"), 31, 8 << 20).unwrap();
    registry.seed(&set.dir, "api", "acme/api:1");
    registry.seed(&set.dir, "multi", "acme/multi:1");
    let base = set.api.layers[0].blob.clone();
    // Every other layer the bundle needs: each image's own layer.
    let multi_amd64 = set
        .multi
        .images
        .iter()
        .find(|i| i.platform == "linux/amd64")
        .unwrap();
    let others: Vec<PathBuf> = [&set.api, multi_amd64]
        .iter()
        .flat_map(|i| &i.layers)
        .filter(|l| l.blob.digest != base.digest)
        .map(|l| dir.path().join("cache/held").join(l.blob.digest.hex()))
        .collect();
    assert_eq!(others.len(), 2);

    // The base layer's first download crawls (100 ms before every body chunk); everything
    // else, and any later download of it, goes at full speed.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let upstream = format!("127.0.0.1:{}", registry.port()).parse().unwrap();
    let proxy = rt.block_on(FaultProxy::start(
        upstream,
        vec![Rule::new(
            Fault::Slow {
                delay: Duration::from_millis(100),
            },
            Schedule::Always,
        )
        .method("GET")
        .path_contains(&base.digest.to_string())
        .max(1)],
    ));
    let host = proxy.host();
    let def = registry_definition(dir.path(), &host, &["linux/amd64"]);
    let key = keygen(dir.path());
    let out = dir.path().join("out");
    let cache = dir.path().join("cache");
    let args = [
        "build",
        s(&def),
        "--key",
        s(&key),
        "--out",
        s(&out),
        "--cache-dir",
        s(&cache),
        "--insecure-registry",
        &host,
        "--output",
        "json",
    ];

    let child = pack_command(dir.path(), &args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The bundle is laid out and being filled; the images' own layers are downloaded and kept.
    wait_for(60, "the partial bundle", || {
        names_in(&out)
            .iter()
            .any(|n| n.starts_with(".airlift-partial-"))
    });
    wait_for(60, "the small layers in the cache", || {
        others.iter().all(|p| p.exists())
    });
    assert_eq!(proxy.injected(), 1, "the base layer is being slowed down");
    let status = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let o = wait_exit(child, 30);
    let all = text(&o);

    assert_eq!(o.status.code(), Some(130), "{all}");
    assert!(
        all.contains("interrupted: stopping the build at its next blob"),
        "{all}"
    );
    // Under `--output json` the error is one JSON object on stderr.
    let line = String::from_utf8_lossy(&o.stderr)
        .lines()
        .find(|l| l.starts_with('{'))
        .map(str::to_string)
        .unwrap_or_default();
    let error: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(error["exitCode"], 130, "{all}");
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .starts_with("build interrupted: no bundle was written to"),
        "{all}"
    );
    assert!(
        error["hint"]
            .as_str()
            .unwrap()
            .starts_with("run the same command again: blobs already in the cache"),
        "{all}"
    );
    assert!(
        error["causes"]
            .to_string()
            .contains("was stopped before it was complete"),
        "{all}"
    );
    // Nothing half-done is left: no bundle, no partial file, no temporary cache file, and not
    // the base layer's partial bytes; what was complete stays in the cache.
    assert!(
        names_in(&out).is_empty(),
        "left in the output folder: {all}"
    );
    let mut cached = names_in(&cache.join("sha256"));
    cached.extend(names_in(&cache.join("held")));
    assert!(
        cached.iter().all(|n| !n.starts_with(".tmp")),
        "temporary cache files left: {cached:?}"
    );
    assert!(!cached.contains(&base.digest.hex().to_string()));
    // The complete layers are held as ranges of the stopped bundle, which the cache still links.
    assert!(others.iter().all(|p| p.exists()));
    assert_eq!(names_in(&cache.join("bundles")).len(), 1);

    // The same command again: only the missing layer is downloaded, and the bundle is written.
    let again = pack_command(dir.path(), &args).output().unwrap();
    assert!(again.status.success(), "{}", text(&again));
    let summary: serde_json::Value = serde_json::from_slice(&again.stdout).unwrap();
    assert_eq!(summary["downloadedBytes"], base.size, "{summary}");
    assert_eq!(names_in(&out), ["reg-1.0.0.airlift"]);
    assert_eq!(proxy.injected(), 1);
    // The cache now holds the new bundle alone (the same file: no second copy of any layer);
    // the stopped one, which nothing points at, is gone.
    let held = names_in(&cache.join("bundles"));
    assert_eq!(held.len(), 1, "{held:?}");
    assert_same_file(
        &cache.join("bundles").join(&held[0]),
        &out.join("reg-1.0.0.airlift"),
    );
}
