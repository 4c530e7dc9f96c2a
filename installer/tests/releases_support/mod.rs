//! A customer site for release tests: the test cluster, a real docker-registry on loopback,
//! signed shop bundles, and the real `airlift-install` run against them.
#![allow(dead_code, clippy::unwrap_used)]

use std::fmt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use airlift_testkit::bundles::ShopBundles;
pub use airlift_testkit::bundles::ShopVersion;
use airlift_testkit::cluster::{ClusterOptions, TestCluster};
use airlift_testkit::registry::TestRegistry;

/// What a command did.
pub struct Run {
    /// The exit code (-1 when killed by a signal).
    pub code: i32,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

impl Run {
    /// Exit 0.
    pub fn ok(&self) -> bool {
        self.code == 0
    }
}

impl fmt::Display for Run {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "exit {}\n--- stdout\n{}--- stderr\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

/// The site.
pub struct Site {
    /// `test-cluster`, or `real-cluster` when `AIRLIFT_E2E_KUBECONFIG` names one.
    pub tier: &'static str,
    test: Option<TestCluster>,
    kubeconfig: PathBuf,
    test_registry: Option<TestRegistry>,
    /// `HOST[:PORT][/PREFIX]` of the customer registry.
    registry_host: String,
    /// The registry speaks plain HTTP.
    insecure: bool,
    /// Scratch space (bundles, state).
    pub dir: tempfile::TempDir,
    bundles: ShopBundles,
    key: PathBuf,
    /// Holds the real cluster for this test alone (scenarios there use fixed names).
    _lock: Option<std::fs::File>,
}

/// The namespaces the scenarios use, deleted on the real cluster before each one.
const SCENARIO_NAMESPACES: &[&str] = &[
    "shop",
    "shared",
    "staging-copy",
    "copy",
    "other",
    "k0",
    "k1",
    "k2",
    "k3",
    "k4",
    "k5",
    "k6",
    "k7",
    "k8",
    "k9",
];

impl Site {
    /// Starts the cluster and the registry.
    pub fn start() -> Self {
        Self::start_with(ClusterOptions::default())
    }

    /// Starts the cluster with `options`, and the registry.
    pub fn start_with(options: ClusterOptions) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let bundles = ShopBundles::new(dir.path()).unwrap();
        let key = bundles.public_key().unwrap();
        // The kubelet really resolves the relocated images in the registry (plain HTTP, as a
        // node's containerd with an insecure-registry entry reaches it).
        let registry = TestRegistry::plain();
        let cluster = TestCluster::start(options.insecure_registry(&registry.host())).unwrap();
        Self {
            tier: "test-cluster",
            kubeconfig: cluster.kubeconfig_path().to_path_buf(),
            test: Some(cluster),
            registry_host: registry.host(),
            insecure: true,
            test_registry: Some(registry),
            dir,
            bundles,
            key,
            _lock: None,
        }
    }

    /// The places a scenario runs: the test cluster (with `options`), and a real cluster when
    /// `AIRLIFT_E2E_KUBECONFIG` is set, with a registry its nodes pull from
    /// (`AIRLIFT_E2E_REGISTRY`, plain HTTP when `AIRLIFT_E2E_REGISTRY_INSECURE=1`). On the
    /// real cluster, scenarios run one at a time (a lock file) and the namespaces they use are
    /// deleted first: give them a disposable cluster.
    pub fn tiers(options: ClusterOptions) -> Vec<Self> {
        let mut out = vec![Self::start_with(options)];
        match std::env::var_os("AIRLIFT_E2E_KUBECONFIG").filter(|v| !v.is_empty()) {
            Some(kc) => out.push(Self::real(PathBuf::from(kc))),
            None => eprintln!(
                "note: AIRLIFT_E2E_KUBECONFIG is not set: the real-cluster tier is skipped; the \
                 test-cluster tier runs"
            ),
        }
        out
    }

    fn real(kubeconfig: PathBuf) -> Self {
        let registry = std::env::var("AIRLIFT_E2E_REGISTRY").unwrap_or_else(|_| {
            panic!(
                "AIRLIFT_E2E_KUBECONFIG is set: also set AIRLIFT_E2E_REGISTRY to a registry both \
                 this machine and the cluster's nodes reach (HOST[:PORT][/PREFIX])"
            )
        });
        let lock = airlift_testkit::e2e::real_cluster_lock().unwrap();
        let out = Command::new("kubectl")
            .args([
                "delete",
                "namespace",
                "--ignore-not-found",
                "--wait=true",
                "--timeout=300s",
            ])
            .args(SCENARIO_NAMESPACES)
            .env("KUBECONFIG", &kubeconfig)
            .output()
            .expect("kubectl runs");
        assert!(
            out.status.success(),
            "cleaning the real cluster: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let dir = tempfile::tempdir().unwrap();
        let bundles = ShopBundles::new(dir.path()).unwrap();
        let key = bundles.public_key().unwrap();
        // A fresh path per run, so "nothing was pushed" can be checked in a shared registry.
        let run = dir
            .path()
            .file_name()
            .map(|n| n.to_string_lossy().trim_start_matches('.').to_lowercase())
            .unwrap_or_default();
        Self {
            tier: "real-cluster",
            test: None,
            kubeconfig,
            test_registry: None,
            registry_host: format!("{}/airlift-e2e-{run}", registry.trim_end_matches('/')),
            insecure: std::env::var("AIRLIFT_E2E_REGISTRY_INSECURE").as_deref() == Ok("1"),
            dir,
            bundles,
            key,
            _lock: Some(lock),
        }
    }

    /// The test cluster, for its knobs and request log (test tier only).
    pub fn cluster(&self) -> &TestCluster {
        self.test
            .as_ref()
            .expect("this scenario uses the test cluster's knobs: it runs on the test tier only")
    }

    /// The loopback registry (test tier only).
    pub fn registry(&self) -> &TestRegistry {
        self.test_registry
            .as_ref()
            .expect("this scenario uses the loopback registry: it runs on the test tier only")
    }

    /// `HOST[:PORT][/PREFIX]` of the customer registry.
    pub fn registry_host(&self) -> String {
        self.registry_host.clone()
    }

    /// The registry's `host[:port]`, without the path prefix.
    fn registry_hostport(&self) -> String {
        self.registry_host
            .split('/')
            .next()
            .unwrap_or_default()
            .to_string()
    }

    /// True when any image reached the customer registry under this site's path.
    pub fn pushed_anything(&self) -> bool {
        match &self.test_registry {
            Some(r) => r.storage_dir().join("docker/registry/v2/blobs").exists(),
            None => {
                let mut c = Command::new("skopeo");
                c.arg("list-tags");
                if self.insecure {
                    c.arg("--tls-verify=false");
                }
                c.arg(format!("docker://{}/acme/api", self.registry_host))
                    .output()
                    .map(|o| o.status.success())
                    .unwrap_or(false)
            }
        }
    }

    /// The vendor's public key.
    pub fn key(&self) -> &Path {
        &self.key
    }

    /// The vendor's signing key (bundles and licenses).
    pub fn vendor_key(&self) -> &airlift_bundle::PrivateKey {
        self.bundles.private_key()
    }

    /// Writes the bundle for `v`.
    pub fn bundle(&self, v: &ShopVersion) -> PathBuf {
        self.bundles.write(v).unwrap()
    }

    /// The binary with the site's environment.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_airlift-install"));
        c.args(args)
            .env("NO_COLOR", "1")
            .env("KUBECONFIG", &self.kubeconfig)
            .env("AIRLIFT_STATE_DIR", self.dir.path().join("state"))
            .env_remove("AIRLIFT_REGISTRY_PASSWORD")
            .stdin(Stdio::null());
        c
    }

    /// Runs the binary.
    pub fn run(&self, args: &[&str]) -> Run {
        let out = self.command(args).output().unwrap();
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// The arguments of `install`/`upgrade`/`plan` for `bundle`, plus `extra`; with
    /// `--registry` (plain HTTP) when `with_registry`.
    pub fn deploy_args(
        &self,
        cmd: &str,
        bundle: &Path,
        extra: &[&str],
        with_registry: bool,
    ) -> Vec<String> {
        let mut args: Vec<String> = vec![
            cmd.into(),
            bundle.to_str().unwrap().into(),
            "--key".into(),
            self.key.to_str().unwrap().into(),
            "--timeout".into(),
            "1m".into(),
        ];
        if with_registry {
            args.extend(["--registry".into(), self.registry_host()]);
        }
        if self.insecure {
            args.extend(["--insecure-registry".into(), self.registry_hostport()]);
        }
        args.extend(extra.iter().map(|s| s.to_string()));
        args
    }

    /// Runs `cmd` (install, upgrade, plan) on `bundle`.
    pub fn run_deploy(&self, cmd: &str, bundle: &Path, extra: &[&str], with_registry: bool) -> Run {
        let args = self.deploy_args(cmd, bundle, extra, with_registry);
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        self.run(&refs)
    }

    /// `install BUNDLE --registry … extra…`.
    pub fn install(&self, bundle: &Path, extra: &[&str]) -> Run {
        self.run_deploy("install", bundle, extra, true)
    }

    /// Starts `install BUNDLE` without waiting.
    pub fn spawn_install(&self, bundle: &Path) -> Child {
        let args = self.deploy_args("install", bundle, &[], true);
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        self.command(&refs)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    }

    /// A stored object (it must exist).
    pub fn object(&self, group: &str, plural: &str, ns: &str, name: &str) -> serde_json::Value {
        self.try_object(group, plural, ns, name)
            .unwrap_or_else(|| panic!("[{}] {plural} {ns}/{name} exists", self.tier))
    }

    /// A stored object, or `None`: read from the test cluster's store, or with `kubectl get`.
    pub fn try_object(
        &self,
        group: &str,
        plural: &str,
        ns: &str,
        name: &str,
    ) -> Option<serde_json::Value> {
        if let Some(test) = &self.test {
            return test.object(group, plural, ns, name);
        }
        let resource = if group.is_empty() {
            plural.to_string()
        } else {
            format!("{plural}.{group}")
        };
        let mut c = Command::new("kubectl");
        c.args(["get", &resource, name, "-o", "json", "--ignore-not-found"])
            .env("KUBECONFIG", &self.kubeconfig);
        if !ns.is_empty() {
            c.args(["-n", ns]);
        }
        let out = c.output().expect("kubectl runs");
        assert!(
            out.status.success(),
            "kubectl get {resource} {name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        if out.stdout.iter().all(u8::is_ascii_whitespace) {
            return None;
        }
        Some(serde_json::from_slice(&out.stdout).unwrap())
    }

    /// An object's resourceVersion.
    pub fn resource_version(&self, plural: &str, ns: &str, name: &str) -> String {
        self.object("", plural, ns, name)["metadata"]["resourceVersion"]
            .as_str()
            .unwrap()
            .to_string()
    }
}
