//! Helpers of the packager's CLI tests: running the real binary in a scratch folder, and
//! reading what its cache holds.
#![allow(dead_code, clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use airlift_testkit::definitions::write_definition;
use airlift_testkit::files::names_in;
use airlift_testkit::images::{sample_set, SampleSet};
use airlift_testkit::registry::TestRegistry;

pub fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

pub fn demo_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../bundles/demo")
}

pub fn pack_command(dir: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_airlift-pack"));
    c.args(args)
        .env("NO_COLOR", "1")
        .env("XDG_CACHE_HOME", dir.join("xdg-cache"))
        .env("DOCKER_CONFIG", dir.join("no-docker-config"))
        .env_remove("REGISTRY_AUTH_FILE")
        .env_remove("SOURCE_DATE_EPOCH");
    c
}

pub fn pack(dir: &Path, args: &[&str]) -> Output {
    pack_command(dir, args).output().unwrap()
}

pub fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

pub fn keygen(dir: &Path) -> PathBuf {
    let o = pack(dir, &["keygen", "--out", s(&dir.join("vendor"))]);
    assert!(o.status.success(), "{}", text(&o));
    dir.join("vendor.key")
}

/// `airlift-pack build DEF --key KEY --out DIR/OUT --cache-dir DIR/CACHE` plus `extra`.
pub fn run_build(
    dir: &Path,
    def: &Path,
    key: &Path,
    out: &str,
    cache: &str,
    extra: &[&str],
) -> Output {
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

pub fn json(o: &Output) -> serde_json::Value {
    assert!(o.status.success(), "{}", text(o));
    serde_json::from_slice(&o.stdout).unwrap()
}

pub fn registry_definition(dir: &Path, host: &str, platforms: &[&str]) -> PathBuf {
    let api = format!("{host}/acme/api:1");
    let multi = format!("{host}/acme/multi:1");
    definition(dir, platforms, [(&api, ""), (&multi, "")])
}

/// A definition `DIR/def` of bundle `reg` with one component deploying two images: each a
/// reference and the YAML of its `source` (empty: pulled by its reference).
pub fn definition(dir: &Path, platforms: &[&str], images: [(&str, &str); 2]) -> PathBuf {
    let def = dir.join("def");
    write_definition(&def, "reg", platforms, &images).unwrap();
    def
}

/// Asserts that `a` and `b` are one file (two links to one inode).
pub fn assert_same_file(a: &Path, b: &Path) {
    use std::os::unix::fs::MetadataExt;
    let (ma, mb) = (std::fs::metadata(a).unwrap(), std::fs::metadata(b).unwrap());
    assert_eq!(
        (ma.dev(), ma.ino()),
        (mb.dev(), mb.ino()),
        "{} and {} are different files",
        a.display(),
        b.display()
    );
}

/// The held bundle and offset of the largest blob the cache at `cache` holds in a bundle, with
/// its entry.
pub fn largest_held_blob(cache: &Path) -> (PathBuf, PathBuf, u64) {
    let mut best: Option<(u64, PathBuf, PathBuf, u64)> = None;
    for name in names_in(&cache.join("held")) {
        let entry = cache.join("held").join(&name);
        let text = std::fs::read_to_string(&entry).unwrap();
        let field = |k: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(k))
                .unwrap()
                .to_string()
        };
        let size: u64 = field("size ").parse().unwrap();
        let offset: u64 = field("offset ").parse().unwrap();
        let bundle = cache.join("bundles").join(field("bundle "));
        if best.as_ref().is_none_or(|b| size > b.0) {
            best = Some((size, entry, bundle, offset));
        }
    }
    let (_, entry, bundle, offset) = best.expect("the cache holds no blob in a bundle");
    (entry, bundle, offset)
}

/// A real docker-registry serving the sample set's `api` and `multi` images as `acme/api:1` and
/// `acme/multi:1`, the definition `DIR/def` of bundle `reg` deploying both for linux/amd64, and a
/// signing key `DIR/vendor.key`.
pub struct RegistrySite {
    /// The registry (stopped on drop).
    pub reg: TestRegistry,
    /// The images seeded into it.
    pub set: SampleSet,
    /// Its `host:port`.
    pub host: String,
    /// The definition folder.
    pub def: PathBuf,
    /// The private key.
    pub key: PathBuf,
}

/// Starts a [`RegistrySite`] in `dir`; `seed` and `size` make the sample set.
pub fn registry_site(dir: &Path, seed: u64, size: u64) -> RegistrySite {
    let reg = TestRegistry::plain();
    let set = sample_set(&dir.join("layout"), seed, size).unwrap();
    reg.seed(&set.dir, "api", "acme/api:1");
    reg.seed(&set.dir, "multi", "acme/multi:1");
    let host = reg.host();
    let def = registry_definition(dir, &host, &["linux/amd64"]);
    let key = keygen(dir);
    RegistrySite {
        reg,
        set,
        host,
        def,
        key,
    }
}
