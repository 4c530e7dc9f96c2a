//! `airlift-pack build` run as the real binary: offline from `bundles/demo`, and from a real
//! `docker-registry` on loopback seeded with skopeo.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use airlift_testkit::images::sample_set;
use airlift_testkit::registry::TestRegistry;

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn demo_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../bundles/demo")
}

fn pack(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_airlift-pack"))
        .args(args)
        .env("NO_COLOR", "1")
        .env("XDG_CACHE_HOME", dir.join("xdg-cache"))
        .env("DOCKER_CONFIG", dir.join("no-docker-config"))
        .env_remove("REGISTRY_AUTH_FILE")
        .env_remove("SOURCE_DATE_EPOCH")
        .output()
        .unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn keygen(dir: &Path) -> PathBuf {
    let o = pack(dir, &["keygen", "--out", s(&dir.join("vendor"))]);
    assert!(o.status.success(), "{}", text(&o));
    dir.join("vendor.key")
}

/// `airlift-pack build DEF --key KEY --out DIR/OUT --cache-dir DIR/CACHE` plus `extra`.
fn run_build(dir: &Path, def: &Path, key: &Path, out: &str, cache: &str, extra: &[&str]) -> Output {
    let out = dir.join(out);
    let cache = dir.join(cache);
    let mut args = vec![
        "build",
        s(def),
        "--key",
        s(key),
        "--out",
        s(&out),
        "--cache-dir",
        s(&cache),
    ];
    args.extend_from_slice(extra);
    pack(dir, &args)
}

fn json(o: &Output) -> serde_json::Value {
    assert!(o.status.success(), "{}", text(o));
    serde_json::from_slice(&o.stdout).unwrap()
}

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

fn registry_definition(dir: &Path, host: &str, platforms: &[&str]) -> PathBuf {
    let def = dir.join("def");
    std::fs::create_dir_all(def.join("manifests")).unwrap();
    let platforms = platforms
        .iter()
        .map(|p| format!("    - {p}\n"))
        .collect::<String>();
    std::fs::write(
        def.join("airlift.yaml"),
        format!(
            "apiVersion: airlift.dev/v1alpha1
kind: BundleDefinition
metadata:
  name: reg
  version: 1.0.0
  vendor: Acme
requirements:
  kubernetes: \">=1.28.0\"
  platforms:
{platforms}components:
  - name: app
    description: the app
    layer: workload
    manifests: [manifests]
    images:
      - reference: {host}/acme/api:1
      - reference: {host}/acme/multi:1
"
        ),
    )
    .unwrap();
    std::fs::write(
        def.join("manifests/deploy.yaml"),
        format!(
            "apiVersion: apps/v1
kind: Deployment
metadata:
  name: api
spec:
  selector: {{matchLabels: {{app: api}}}}
  template:
    metadata: {{labels: {{app: api}}}}
    spec:
      containers:
        - {{name: api, image: \"{host}/acme/api:1\"}}
        - {{name: multi, image: \"{host}/acme/multi:1\"}}
"
        ),
    )
    .unwrap();
    def
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
        .with_proofs();
    for blob in &bundle.manifest().blobs {
        assert!(
            airlift_bundle::BlobSource::proven_file(&cache, &blob.digest).is_some(),
            "{} has no proof in the cache",
            blob.digest
        );
    }
    let second = build("b");
    assert_eq!(second["downloadedBytes"], 0, "the rebuild downloaded blobs");
    let a = std::fs::read(first["bundle"].as_str().unwrap()).unwrap();
    let b = std::fs::read(second["bundle"].as_str().unwrap()).unwrap();
    assert!(a == b, "a rebuild from the cache differs");
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
    let reg = TestRegistry::plain();
    let set = sample_set(&dir.path().join("layout"), 13, 64 << 10).unwrap();
    reg.seed(&set.dir, "api", "acme/api:1");
    reg.seed(&set.dir, "multi", "acme/multi:1");
    let host = reg.host();
    let def = registry_definition(dir.path(), &host, &["linux/amd64"]);
    let key = keygen(dir.path());
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
    // Flip one byte of the largest cached blob (a layer), as a disk fault or a torn write would.
    let mut blobs: Vec<PathBuf> = std::fs::read_dir(cache.join("sha256"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    blobs.sort_by_key(|p| std::fs::metadata(p).unwrap().len());
    let victim = blobs.last().unwrap().clone();
    let mut bytes = std::fs::read(&victim).unwrap();
    bytes[0] ^= 0x01;
    std::fs::write(&victim, &bytes).unwrap();

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
    let a = std::fs::read(good["bundle"].as_str().unwrap()).unwrap();
    let c = std::fs::read(healed["bundle"].as_str().unwrap()).unwrap();
    assert!(a == c, "the healed build differs");
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

/// The names in `dir`, sorted.
fn names_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn no_cache_writes_layers_into_the_bundle_only() {
    let dir = tempfile::tempdir().unwrap();
    let reg = TestRegistry::plain();
    let set = sample_set(&dir.path().join("layout"), 14, 256 << 10).unwrap();
    reg.seed(&set.dir, "api", "acme/api:1");
    reg.seed(&set.dir, "multi", "acme/multi:1");
    let host = reg.host();
    let def = registry_definition(dir.path(), &host, &["linux/amd64"]);
    let key = keygen(dir.path());
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
    let reg = TestRegistry::plain();
    let set = sample_set(&dir.path().join("layout"), 15, 256 << 10).unwrap();
    reg.seed(&set.dir, "api", "acme/api:1");
    reg.seed(&set.dir, "multi", "acme/multi:1");
    let host = reg.host();
    let def = registry_definition(dir.path(), &host, &["linux/amd64"]);
    let key = keygen(dir.path());
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
