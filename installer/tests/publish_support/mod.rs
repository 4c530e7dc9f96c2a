//! Delivery through registries, shared by `publish_cli.rs` and `relocate_cli.rs`: a vendor
//! with a real `docker-registry` (TLS and htpasswd, credentials in a docker `config.json`, the
//! CA through `--registry-ca`), bundles published with the library `airlift-pack publish`
//! calls, the real `airlift-install` run against them, and a probe of the files it holds open.
#![allow(dead_code, clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;

use airlift_bundle::{Digest, DirBlobStore, NoProgress, Trust};
use airlift_registry::artifact::{ArtifactManifest, OciReference, MEDIA_TYPE_OCI_MANIFEST};
use airlift_registry::client::RegistryClient;
use airlift_registry::RegistryOptions;
use airlift_testkit::bundles::{ShopBundles, ShopVersion};
use airlift_testkit::cluster::{ClusterOptions, TestCluster};
use airlift_testkit::registry::{RegistryConfig, TestRegistry};

pub const USER: &str = "vendor";
pub const PASSWORD: &str = "pub-s3cret";

/// The vendor side: signed shop bundles and the TLS + htpasswd registry they are published to.
pub struct Vendor {
    pub dir: tempfile::TempDir,
    pub bundles: ShopBundles,
    pub key: PathBuf,
    pub registry: TestRegistry,
    pub authfile: PathBuf,
}

impl Vendor {
    /// Small images (a 64 KiB base layer), no access log.
    pub fn start() -> Self {
        Self::start_with(64 << 10, false)
    }

    /// `base_size` bytes of content in the shop image's base layer; with `access_log`, the
    /// registry logs every request ([`TestRegistry::log`]).
    pub fn start_with(base_size: u64, access_log: bool) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let bundles = ShopBundles::with_base_layer(dir.path(), base_size).unwrap();
        let key = bundles.public_key().unwrap();
        let registry = TestRegistry::start(RegistryConfig {
            tls: true,
            auth: Some((USER.into(), PASSWORD.into())),
            access_log,
        });
        let authfile = dir.path().join("config.json");
        let auth = base64_encode(format!("{USER}:{PASSWORD}").as_bytes());
        std::fs::write(
            &authfile,
            serde_json::json!({"auths": {registry.host(): {"auth": auth}}}).to_string(),
        )
        .unwrap();
        Self {
            dir,
            bundles,
            key,
            registry,
            authfile,
        }
    }

    pub fn options(&self) -> RegistryOptions {
        RegistryOptions {
            ca_files: vec![self.registry.ca_pem().unwrap().to_path_buf()],
            auth_file: Some(self.authfile.clone()),
            ..RegistryOptions::default()
        }
    }

    pub fn oci(&self, rest: &str) -> String {
        format!("oci://{}/acme/shop{rest}", self.registry.host())
    }

    /// Builds and publishes `v`; returns the bundle file.
    pub fn publish(&self, v: &ShopVersion) -> PathBuf {
        let path = self.bundles.write(v).unwrap();
        let trust = Trust::from_flags(Some(&self.key), false).unwrap();
        let (bundle, report) =
            airlift_deploy::open_verified(&path, &trust, &NoProgress, true).unwrap();
        let oci = OciReference::parse(&self.oci("")).unwrap();
        runtime()
            .block_on(airlift_deploy::publish::publish(
                Arc::new(bundle),
                &report.sha256,
                &oci,
                false,
                &self.options(),
                Arc::new(NoProgress),
            ))
            .unwrap();
        path
    }

    /// `airlift-install ARGS… --registry-ca CA --authfile config.json`.
    pub fn run(&self, kubeconfig: Option<&Path>, args: &[&str]) -> Run {
        let out = self.command(kubeconfig, args).output().unwrap();
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// [`Vendor::run`] with `TMPDIR` set to `tmpdir`, sampling every regular file the process
    /// holds open (wherever it is, deleted or not) and the size of `tmpdir` until it exits.
    pub fn run_probed(
        &self,
        kubeconfig: Option<&Path>,
        args: &[&str],
        tmpdir: &Path,
    ) -> (Run, FileProbe) {
        let mut c = self.command(kubeconfig, args);
        c.env("TMPDIR", tmpdir)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let child = c.spawn().unwrap();
        let (out, probe) = FileProbe::watch(child, tmpdir);
        let run = Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        };
        (run, probe)
    }

    fn command(&self, kubeconfig: Option<&Path>, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_airlift-install"));
        c.args(args)
            .args([
                "--registry-ca",
                self.registry.ca_pem().unwrap().to_str().unwrap(),
                "--authfile",
                self.authfile.to_str().unwrap(),
            ])
            .env("NO_COLOR", "1")
            .env("AIRLIFT_STATE_DIR", self.dir.path().join("state"))
            .env_remove("AIRLIFT_REGISTRY_PASSWORD")
            .env_remove("DOCKER_CONFIG")
            .env_remove("REGISTRY_AUTH_FILE")
            .stdin(Stdio::null());
        match kubeconfig {
            Some(k) => c.env("KUBECONFIG", k),
            None => c.env("KUBECONFIG", self.dir.path().join("no-kubeconfig")),
        };
        c
    }

    /// skopeo inspect with this registry's CA and credentials.
    pub fn skopeo_inspect(&self, raw: bool, reference: &str) -> Result<serde_json::Value, String> {
        let tls = self.registry.tls_files().unwrap();
        let mut c = Command::new("skopeo");
        c.arg("inspect");
        if raw {
            c.arg("--raw");
        }
        let out = c
            .arg(format!("--cert-dir={}", tls.cert_dir.display()))
            .arg(format!("--creds={USER}:{PASSWORD}"))
            .arg(format!("docker://{reference}"))
            .output()
            .unwrap();
        if !out.status.success() {
            return Err(String::from_utf8_lossy(&out.stderr).into_owned());
        }
        Ok(serde_json::from_slice(&out.stdout).unwrap())
    }

    pub fn artifact(&self, tag: &str) -> ArtifactManifest {
        let raw = self
            .skopeo_inspect(true, &format!("{}/acme/shop:{tag}", self.registry.host()))
            .unwrap();
        serde_json::from_value(raw).unwrap()
    }

    /// Pushes `artifact` (and the extra blobs it needs) under `tag`, bypassing Airlift's checks:
    /// what an attacker with push rights could do.
    pub fn push_raw(&self, artifact: &ArtifactManifest, extra: &[&[u8]], tag: &str) {
        let store_dir = self.dir.path().join(format!("evil-{tag}"));
        let store = Arc::new(DirBlobStore::open(&store_dir).unwrap());
        let client = RegistryClient::new(&self.registry.host(), &self.options()).unwrap();
        let rt = runtime();
        for data in extra {
            let d = Digest::of_bytes(data);
            store.put(&d, &mut &data[..]).unwrap();
            rt.block_on(client.push_blob(
                "acme/shop",
                &d,
                data.len() as u64,
                store.clone(),
                None,
                false,
                Arc::new(|_| {}),
            ))
            .unwrap();
        }
        let bytes = serde_json::to_vec(artifact).unwrap();
        rt.block_on(client.put_manifest("acme/shop", tag, MEDIA_TYPE_OCI_MANIFEST, bytes.into()))
            .unwrap();
    }
}

/// What one run of `airlift-install` printed and returned.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl std::fmt::Display for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit {}\n--- stdout\n{}--- stderr\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap()
}

pub fn base64_encode(data: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(T[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

pub fn sha256_file(path: &Path) -> Digest {
    let mut f = std::fs::File::open(path).unwrap();
    let mut h = airlift_bundle::HashingReader::new(&mut f);
    std::io::copy(&mut h, &mut std::io::sink()).unwrap();
    h.finish().0
}

/// The cluster tiers: the test cluster, and a real one when `AIRLIFT_E2E_KUBECONFIG` is set
/// (then `AIRLIFT_E2E_REGISTRY` is where its nodes pull from).
pub fn tiers() -> Vec<(&'static str, PathBuf, Option<TestCluster>, Option<String>)> {
    let test = TestCluster::start(ClusterOptions::default()).unwrap();
    let mut out = vec![(
        "test-cluster",
        test.kubeconfig_path().to_path_buf(),
        Some(test),
        None,
    )];
    match std::env::var_os("AIRLIFT_E2E_KUBECONFIG").filter(|v| !v.is_empty()) {
        Some(kc) => out.push((
            "real-cluster",
            PathBuf::from(kc),
            None,
            Some(std::env::var("AIRLIFT_E2E_REGISTRY").expect(
                "AIRLIFT_E2E_KUBECONFIG is set: also set AIRLIFT_E2E_REGISTRY (HOST[:PORT][/PREFIX])",
            )),
        )),
        None => eprintln!(
            "note: AIRLIFT_E2E_KUBECONFIG is not set: the real-cluster tier is skipped; the \
             test-cluster tier runs"
        ),
    }
    out
}

/// What a [`Vendor::run_probed`] process held open and left in its `TMPDIR`, sampled every
/// 2 ms from `/proc/PID/fd` (which also shows files that are deleted or were never named, such
/// as `O_TMPFILE` files) until it exited.
#[derive(Debug, Default)]
pub struct FileProbe {
    /// Every regular file the process held open for writing, by the path `/proc` showed for it (a deleted
    /// or unnamed file ends in ` (deleted)`), with the largest size it was seen at.
    pub open: std::collections::BTreeMap<String, u64>,
    /// The largest total size of the files under `TMPDIR` seen while it ran.
    pub largest_tmpdir: u64,
    /// The process's peak resident memory (`VmHWM`), in KiB, at the last sample.
    pub peak_rss_kib: u64,
    /// Samples taken.
    pub samples: u64,
}

impl FileProbe {
    fn watch(mut child: std::process::Child, tmpdir: &Path) -> (std::process::Output, Self) {
        use std::io::Read;
        let pid = child.id();
        let mut stdout = child.stdout.take().unwrap();
        let mut stderr = child.stderr.take().unwrap();
        let out_thread = std::thread::spawn(move || {
            let mut b = Vec::new();
            stdout.read_to_end(&mut b).unwrap();
            b
        });
        let err_thread = std::thread::spawn(move || {
            let mut b = Vec::new();
            stderr.read_to_end(&mut b).unwrap();
            b
        });
        let mut probe = Self::default();
        let status = loop {
            probe.sample(pid, tmpdir);
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            std::thread::sleep(std::time::Duration::from_millis(2));
        };
        let out = std::process::Output {
            status,
            stdout: out_thread.join().unwrap(),
            stderr: err_thread.join().unwrap(),
        };
        (out, probe)
    }

    /// The largest size any open file reached, and its path.
    pub fn largest_open(&self) -> (u64, &str) {
        self.open
            .iter()
            .map(|(p, s)| (*s, p.as_str()))
            .max()
            .unwrap_or((0, ""))
    }

    /// The open files whose path is under `dir` (deleted or not), with their largest sizes.
    pub fn open_under(&self, dir: &Path) -> Vec<(&str, u64)> {
        let dir = dir.display().to_string();
        self.open
            .iter()
            .filter(|(p, _)| p.starts_with(&dir))
            .map(|(p, s)| (p.as_str(), *s))
            .collect()
    }

    fn sample(&mut self, pid: u32, tmpdir: &Path) {
        self.samples += 1;
        if let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) {
            for fd in fds.flatten() {
                // `metadata` follows the magic link to the open file itself, deleted or not.
                let Ok(meta) = std::fs::metadata(fd.path()) else {
                    continue;
                };
                // Only files open for writing: what the process could be filling (the dynamic
                // loader briefly holds shared libraries open read-only at start).
                let writable = std::fs::read_to_string(format!(
                    "/proc/{pid}/fdinfo/{}",
                    fd.file_name().to_string_lossy()
                ))
                .ok()
                .and_then(|info| {
                    info.lines()
                        .find_map(|l| l.strip_prefix("flags:"))
                        .and_then(|f| u32::from_str_radix(f.trim(), 8).ok())
                })
                .is_some_and(|flags| flags & 0o3 != 0);
                if meta.is_file() && writable {
                    let path = std::fs::read_link(fd.path())
                        .map(|p| p.display().to_string())
                        .unwrap_or_default();
                    let seen = self.open.entry(path).or_default();
                    *seen = (*seen).max(meta.len());
                }
            }
        }
        self.largest_tmpdir = self.largest_tmpdir.max(tree_size(tmpdir));
        if let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) {
            let hwm = status
                .lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok());
            if let Some(hwm) = hwm {
                self.peak_rss_kib = self.peak_rss_kib.max(hwm);
            }
        }
    }
}

/// The total size of the regular files under `dir`.
pub fn tree_size(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => tree_size(&e.path()),
            Ok(t) if t.is_file() => e.metadata().map_or(0, |m| m.len()),
            _ => 0,
        })
        .sum()
}
