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
    /// The test cluster.
    pub cluster: TestCluster,
    /// The customer registry.
    pub registry: TestRegistry,
    /// Scratch space (bundles, state).
    pub dir: tempfile::TempDir,
    bundles: ShopBundles,
    key: PathBuf,
}

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
        Self {
            cluster: TestCluster::start(options).unwrap(),
            registry: TestRegistry::plain(),
            dir,
            bundles,
            key,
        }
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
            .env("KUBECONFIG", self.cluster.kubeconfig_path())
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
            args.extend([
                "--registry".into(),
                self.registry.host(),
                "--insecure".into(),
            ]);
        } else {
            args.extend(["--insecure-registry".into(), self.registry.host()]);
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

    /// A stored object, read directly from the test cluster.
    pub fn object(&self, group: &str, plural: &str, ns: &str, name: &str) -> serde_json::Value {
        self.cluster
            .object(group, plural, ns, name)
            .unwrap_or_else(|| panic!("{plural} {ns}/{name} exists"))
    }

    /// An object's resourceVersion.
    pub fn resource_version(&self, plural: &str, ns: &str, name: &str) -> String {
        self.object("", plural, ns, name)["metadata"]["resourceVersion"]
            .as_str()
            .unwrap()
            .to_string()
    }
}
