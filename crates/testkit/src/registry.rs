//! A real `docker-registry` (distribution 2.8) on loopback, for integration tests and benchmarks.
//!
//! ```no_run
//! use airlift_testkit::registry::TestRegistry;
//!
//! let plain = TestRegistry::plain();                       // http://127.0.0.1:PORT
//! let secure = TestRegistry::tls_with_auth("alice", "pw"); // https + htpasswd, own CA
//! let ca = secure.ca_pem().unwrap();                       // for `--registry-ca`
//! # let _ = (plain.host(), ca);
//! ```
//!
//! Each instance has its own temporary storage (deletes enabled) and is killed on drop. A missing
//! `/usr/bin/docker-registry` or `skopeo` is a test failure (panic), never a skip.
//!
//! The skopeo helpers seed images from an OCI layout folder (see [`crate::images`]) into the
//! registry and read back manifest digests, so tests check our results with an independent tool.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use airlift_bundle::Digest;

/// The registry binary every test uses.
pub const REGISTRY_BIN: &str = "/usr/bin/docker-registry";
/// The skopeo binary the helpers use.
pub const SKOPEO_BIN: &str = "skopeo";

/// How a [`TestRegistry`] is set up.
#[derive(Debug, Clone, Default)]
pub struct RegistryConfig {
    /// Serve HTTPS with a certificate for `127.0.0.1` / `localhost` signed by a fresh CA.
    pub tls: bool,
    /// Require HTTP basic auth (htpasswd, bcrypt) with this user and password.
    pub auth: Option<(String, String)>,
    /// Log every request (combined log format, in [`TestRegistry::log`]), so a test can count
    /// what reached the registry.
    pub access_log: bool,
}

/// The CA and server certificate of a TLS [`TestRegistry`].
#[derive(Debug, Clone)]
pub struct TlsFiles {
    /// The CA certificate (PEM): what `--registry-ca` takes.
    pub ca_pem: PathBuf,
    /// A folder holding only `ca.crt` (the CA): what skopeo's `--*-cert-dir` takes.
    pub cert_dir: PathBuf,
    /// The server certificate (PEM).
    pub server_cert: PathBuf,
    /// The server key (PEM).
    pub server_key: PathBuf,
}

/// A running `docker-registry` on `127.0.0.1`; killed on drop.
pub struct TestRegistry {
    child: Option<Child>,
    dir: tempfile::TempDir,
    port: u16,
    config: RegistryConfig,
    tls: Option<TlsFiles>,
}

impl std::fmt::Debug for TestRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestRegistry")
            .field("host", &self.host())
            .field("tls", &self.config.tls)
            .field("auth", &self.config.auth.as_ref().map(|(u, _)| u))
            .finish()
    }
}

impl TestRegistry {
    /// A plain-HTTP registry without auth.
    pub fn plain() -> Self {
        Self::start(RegistryConfig::default())
    }

    /// An HTTPS registry with its own CA and htpasswd auth for `user` / `password`.
    pub fn tls_with_auth(user: &str, password: &str) -> Self {
        Self::start(RegistryConfig {
            tls: true,
            auth: Some((user.to_string(), password.to_string())),
            access_log: false,
        })
    }

    /// An HTTPS registry with its own CA and no auth.
    pub fn tls() -> Self {
        Self::start(RegistryConfig {
            tls: true,
            auth: None,
            access_log: false,
        })
    }

    /// A plain-HTTP registry without auth that logs every request ([`TestRegistry::log`]).
    pub fn plain_logged() -> Self {
        Self::start(RegistryConfig {
            access_log: true,
            ..RegistryConfig::default()
        })
    }

    /// Starts a registry; panics with a clear message when it cannot.
    pub fn start(config: RegistryConfig) -> Self {
        assert!(
            Path::new(REGISTRY_BIN).is_file(),
            "{REGISTRY_BIN} is missing: install it with `apt-get install docker-registry` \
             (registry integration tests need a real registry)"
        );
        let dir = tempfile::Builder::new()
            .prefix("airlift-registry-")
            .tempdir()
            .expect("create a temp dir for the test registry");
        let tls = config.tls.then(|| write_tls_files(dir.path()));
        if let Some((user, password)) = &config.auth {
            let hash = bcrypt::hash(password, 4).expect("bcrypt-hash the test password");
            std::fs::write(dir.path().join("htpasswd"), format!("{user}:{hash}\n"))
                .expect("write htpasswd");
        }
        std::fs::create_dir_all(dir.path().join("storage")).expect("create storage dir");
        let mut reg = Self {
            child: None,
            dir,
            port: 0,
            config,
            tls,
        };
        reg.launch(None);
        reg
    }

    fn launch(&mut self, port: Option<u16>) {
        let mut last_log = String::new();
        for _attempt in 0..5 {
            let port = port.unwrap_or_else(free_port);
            let cfg = self.dir.path().join("config.yml");
            std::fs::write(&cfg, self.config_yaml(port)).expect("write registry config");
            let log_path = self.dir.path().join("registry.log");
            let log = std::fs::File::create(&log_path).expect("create registry log");
            let child = Command::new(REGISTRY_BIN)
                .arg("serve")
                .arg(&cfg)
                .stdin(Stdio::null())
                .stdout(log.try_clone().expect("clone log handle"))
                .stderr(log)
                .spawn()
                .unwrap_or_else(|e| panic!("cannot start {REGISTRY_BIN}: {e}"));
            self.child = Some(child);
            self.port = port;
            if self.wait_ready(Duration::from_secs(20)) {
                return;
            }
            self.kill();
            last_log = std::fs::read_to_string(&log_path).unwrap_or_default();
            if port_is_fixed(port, &last_log) {
                continue;
            }
        }
        panic!("docker-registry did not come up on 127.0.0.1; its log:\n{last_log}");
    }

    fn config_yaml(&self, port: u16) -> String {
        let storage = self.dir.path().join("storage");
        let mut y = format!(
            "version: 0.1\nlog:\n  level: warn\n  accesslog:\n    disabled: {}\n\
             storage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\n\
             http:\n  addr: 127.0.0.1:{port}\n  secret: airlift-test-secret\n",
            !self.config.access_log,
            storage.display()
        );
        if let Some(t) = &self.tls {
            y.push_str(&format!(
                "  tls:\n    certificate: {}\n    key: {}\n",
                t.server_cert.display(),
                t.server_key.display()
            ));
        }
        if self.config.auth.is_some() {
            y.push_str(&format!(
                "auth:\n  htpasswd:\n    realm: airlift-test\n    path: {}\n",
                self.dir.path().join("htpasswd").display()
            ));
        }
        y
    }

    /// Polls `GET /v2/` (over TLS with the test CA for a TLS registry) until the registry answers.
    fn wait_ready(&mut self, timeout: Duration) -> bool {
        let start = Instant::now();
        let addr: SocketAddr = ([127, 0, 0, 1], self.port).into();
        while start.elapsed() < timeout {
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(_)) = child.try_wait() {
                    return false;
                }
            }
            if let Ok(s) = TcpStream::connect_timeout(&addr, Duration::from_millis(200)) {
                let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
                let answered = match &self.tls {
                    Some(t) => match tls_stream(s, &t.ca_pem) {
                        Some(mut tls) => get_v2(&mut tls, self.port),
                        None => false,
                    },
                    None => {
                        let mut s = s;
                        get_v2(&mut s, self.port)
                    }
                };
                if answered {
                    return true;
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }

    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Stops the registry, deletes everything it stored, and starts it again on the same port.
    pub fn wipe(&mut self) {
        self.kill();
        let storage = self.dir.path().join("storage");
        std::fs::remove_dir_all(&storage).expect("wipe registry storage");
        std::fs::create_dir_all(&storage).expect("recreate registry storage");
        let port = self.port;
        self.launch(Some(port));
    }

    /// Stops the registry process (it stays stopped; drop cleans up).
    pub fn stop(&mut self) {
        self.kill();
    }

    /// `127.0.0.1:PORT`, as used in image references.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `http://127.0.0.1:PORT` or `https://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        format!("{scheme}://{}", self.host())
    }

    /// True for an HTTPS registry.
    pub fn is_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// The CA certificate (PEM) of a TLS registry.
    pub fn ca_pem(&self) -> Option<&Path> {
        self.tls.as_ref().map(|t| t.ca_pem.as_path())
    }

    /// The certificate files of a TLS registry.
    pub fn tls_files(&self) -> Option<&TlsFiles> {
        self.tls.as_ref()
    }

    /// The user and password, when auth is on.
    pub fn credentials(&self) -> Option<(&str, &str)> {
        self.config
            .auth
            .as_ref()
            .map(|(u, p)| (u.as_str(), p.as_str()))
    }

    /// The registry's storage folder.
    pub fn storage_dir(&self) -> PathBuf {
        self.dir.path().join("storage")
    }

    /// The registry's log so far (for failure messages).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("registry.log")).unwrap_or_default()
    }

    /// skopeo's TLS and credential flags for this registry as a source (`src`) or destination
    /// (`dest`).
    pub fn skopeo_flags(&self, side: &str) -> Vec<String> {
        let mut f = Vec::new();
        match &self.tls {
            Some(t) => {
                f.push(format!("--{side}-tls-verify=true"));
                f.push(format!("--{side}-cert-dir={}", t.cert_dir.display()));
            }
            None => f.push(format!("--{side}-tls-verify=false")),
        }
        if let Some((u, p)) = &self.config.auth {
            f.push(format!("--{side}-creds={u}:{p}"));
        } else {
            f.push(format!("--{side}-no-creds"));
        }
        f
    }

    /// Copies the image tagged `layout_tag` in the OCI layout folder `layout` to
    /// `REGISTRY/repo_tag` (e.g. `acme/api:1.0`) with skopeo, keeping digests (`--all` keeps a
    /// whole index). Returns the pushed top-level manifest digest, read back from the registry.
    pub fn seed(&self, layout: &Path, layout_tag: &str, repo_tag: &str) -> Digest {
        let src = format!("oci:{}:{layout_tag}", layout.display());
        let dest = format!("docker://{}/{repo_tag}", self.host());
        let mut args = vec![
            "--insecure-policy".to_string(),
            "copy".to_string(),
            "--all".to_string(),
            "--preserve-digests".to_string(),
            "--retry-times=0".to_string(),
        ];
        args.extend(self.skopeo_flags("dest"));
        args.push(src);
        args.push(dest);
        run_skopeo(&args);
        self.manifest_digest(repo_tag)
    }

    /// The raw manifest at `REGISTRY/reference` (tag or `@sha256:…`), read with skopeo.
    pub fn raw_manifest(&self, reference: &str) -> Vec<u8> {
        let mut args = vec![
            "--insecure-policy".to_string(),
            "inspect".to_string(),
            "--raw".to_string(),
            "--retry-times=0".to_string(),
        ];
        for f in self.skopeo_flags("src") {
            // `inspect` spells the flags without the side prefix.
            args.push(f.replacen("--src-", "--", 1));
        }
        args.push(format!("docker://{}/{reference}", self.host()));
        run_skopeo(&args)
    }

    /// The digest of the manifest at `REGISTRY/reference`, as skopeo sees it.
    pub fn manifest_digest(&self, reference: &str) -> Digest {
        Digest::of_bytes(&self.raw_manifest(reference))
    }

    /// Copies `REGISTRY/reference` to an OCI layout folder with skopeo (`--all`), as an
    /// independent check that the registry serves a complete, valid image.
    pub fn skopeo_pull_to_layout(&self, reference: &str, layout: &Path, tag: &str) {
        let mut args = vec![
            "--insecure-policy".to_string(),
            "copy".to_string(),
            "--all".to_string(),
            "--preserve-digests".to_string(),
            "--retry-times=0".to_string(),
        ];
        args.extend(self.skopeo_flags("src"));
        args.push(format!("docker://{}/{reference}", self.host()));
        args.push(format!("oci:{}:{tag}", layout.display()));
        run_skopeo(&args);
    }
}

impl Drop for TestRegistry {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Runs skopeo with `args` and returns its stdout; panics with its stderr when it fails or is
/// missing.
pub fn run_skopeo(args: &[String]) -> Vec<u8> {
    let out = Command::new(SKOPEO_BIN)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run {SKOPEO_BIN} (install it with `apt-get install skopeo`): {e}")
        });
    assert!(
        out.status.success(),
        "skopeo {} failed ({}):\n{}",
        args.iter()
            .map(|a| if a.contains("-creds=") {
                "--…-creds=***"
            } else {
                a
            })
            .collect::<Vec<_>>()
            .join(" "),
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// Sends `GET /v2/` and checks that an HTTP response starts.
fn get_v2(s: &mut impl ReadWrite, port: u16) -> bool {
    let req = format!("GET /v2/ HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n");
    if s.write_all(req.as_bytes()).is_err() || s.flush().is_err() {
        return false;
    }
    let mut buf = [0u8; 12];
    s.read_exact(&mut buf).is_ok() && buf.starts_with(b"HTTP/1.")
}

trait ReadWrite: Read + Write {}
impl<T: Read + Write> ReadWrite for T {}

/// A TLS client stream to 127.0.0.1 trusting only `ca_pem`.
fn tls_stream(
    tcp: TcpStream,
    ca_pem: &Path,
) -> Option<rustls::StreamOwned<rustls::ClientConnection, TcpStream>> {
    let pem = std::fs::read(ca_pem).ok()?;
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pemfile::certs(&mut &pem[..]) {
        roots.add(cert.ok()?).ok()?;
    }
    let config = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .ok()?
    .with_root_certificates(roots)
    .with_no_client_auth();
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").ok()?;
    let conn = rustls::ClientConnection::new(std::sync::Arc::new(config), name).ok()?;
    Some(rustls::StreamOwned::new(conn, tcp))
}

/// A port that was free a moment ago on 127.0.0.1.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind an ephemeral loopback port")
}

/// True when a start failure looks like a lost port race (worth another port).
fn port_is_fixed(_port: u16, log: &str) -> bool {
    log.contains("address already in use") || log.is_empty()
}

/// Generates a CA and a server certificate for `127.0.0.1` / `localhost` into `dir`.
pub fn write_tls_files(dir: &Path) -> TlsFiles {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose};

    let ca_key = KeyPair::generate().expect("generate CA key");
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "Airlift Test CA");
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca = ca_params.self_signed(&ca_key).expect("self-sign CA");

    let key = KeyPair::generate().expect("generate server key");
    let mut params = CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()])
        .expect("server params");
    params
        .distinguished_name
        .push(DnType::CommonName, "127.0.0.1");
    let cert = params
        .signed_by(&key, &ca, &ca_key)
        .expect("sign server cert");

    let tls_dir = dir.join("tls");
    let cert_dir = dir.join("certs.d");
    std::fs::create_dir_all(&tls_dir).expect("create tls dir");
    std::fs::create_dir_all(&cert_dir).expect("create cert dir");
    let files = TlsFiles {
        ca_pem: tls_dir.join("ca.pem"),
        cert_dir: cert_dir.clone(),
        server_cert: tls_dir.join("server.pem"),
        server_key: tls_dir.join("server-key.pem"),
    };
    std::fs::write(&files.ca_pem, ca.pem()).expect("write ca.pem");
    std::fs::write(cert_dir.join("ca.crt"), ca.pem()).expect("write ca.crt");
    // The registry presents the chain: server certificate, then the CA.
    std::fs::write(&files.server_cert, cert.pem()).expect("write server cert");
    std::fs::write(&files.server_key, key.serialize_pem()).expect("write server key");
    files
}
