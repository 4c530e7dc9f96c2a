//! The customer side, run inside the network namespace by `airgap-customer`: the customer
//! registry (TLS + htpasswd, its own CA) and the test cluster, the installer runs against them,
//! and independent checks with skopeo, kubectl and the registry's storage.

pub mod checks;
pub mod scenarios;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use airlift_testkit::cluster::{ClusterOptions, TestCluster};
use airlift_testkit::registry::TestRegistry;

use crate::process::{label_of, run, spawn, Outcome, Running};
use crate::protocol::{BundleFile, CustomerInput, Step};

/// The customer registry's user.
pub const REGISTRY_USER: &str = "customer";
/// The customer registry's password (a test credential).
pub const REGISTRY_PASSWORD: &str = "airgap-Secret-42";
/// The path prefix the vendor's images get in the customer registry.
pub const PREFIX: &str = "vendor";
/// The namespace releases are installed into.
pub const NAMESPACE: &str = "acme";
/// How long one installer command may take.
pub const COMMAND_LIMIT: Duration = Duration::from_secs(240);
/// The readiness timeout given to the installer, in seconds.
pub const READY_TIMEOUT: &str = "60";

/// The customer site: registry, cluster, and the steps done so far.
pub struct Site {
    /// What the test handed over.
    pub input: CustomerInput,
    /// The customer registry: HTTPS with its own CA, htpasswd auth.
    pub registry: TestRegistry,
    /// The test cluster.
    pub cluster: TestCluster,
    /// Completed steps, reported back to the test.
    pub steps: Vec<Step>,
    home: PathBuf,
}

impl std::fmt::Debug for Site {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Site")
            .field("registry", &self.registry)
            .field("cluster", &self.cluster)
            .finish_non_exhaustive()
    }
}

impl Site {
    /// Starts the customer registry and the test cluster (both on this namespace's loopback).
    pub fn start(input: CustomerInput) -> anyhow::Result<Site> {
        let registry = TestRegistry::tls_with_auth(REGISTRY_USER, REGISTRY_PASSWORD);
        let cluster = TestCluster::start(
            ClusterOptions::default()
                .with_nodes(&["amd64", "arm64"])
                .with_ready_delay(Duration::from_millis(200))
                .with_kubeconfig_out(input.workdir.join("kubeconfig")),
        )?;
        let home = input.workdir.join("home");
        fs_err::create_dir_all(home.join(".docker"))?;
        Ok(Site {
            input,
            registry,
            cluster,
            steps: Vec::new(),
            home,
        })
    }

    /// Records a completed step.
    pub fn step(&mut self, name: &str, detail: serde_json::Value) {
        eprintln!("airgap-customer: step done: {name}");
        self.steps.push(Step {
            name: name.to_string(),
            detail,
        });
    }

    /// A bundle from the vendor side by role.
    pub fn bundle(&self, role: &str) -> anyhow::Result<BundleFile> {
        self.input
            .bundles
            .get(role)
            .cloned()
            .ok_or_else(|| anyhow::anyhow!("the vendor side built no `{role}` bundle"))
    }

    /// `--registry HOST:PORT/PREFIX` plus CA and user (the password goes by environment).
    pub fn registry_args(&self) -> Vec<String> {
        let ca = self.registry.ca_pem().map(|p| p.display().to_string());
        let mut args = vec!["--registry".to_string(), self.target()];
        if let Some(ca) = ca {
            args.extend(["--registry-ca".to_string(), ca]);
        }
        args.extend(["--registry-user".to_string(), REGISTRY_USER.to_string()]);
        args
    }

    /// `HOST:PORT/PREFIX`.
    pub fn target(&self) -> String {
        format!("{}/{PREFIX}", self.registry.host())
    }

    /// `--kubeconfig FILE --namespace NS`.
    pub fn cluster_args(&self) -> Vec<String> {
        vec![
            "--kubeconfig".to_string(),
            self.cluster.kubeconfig_path().display().to_string(),
            "--namespace".to_string(),
            NAMESPACE.to_string(),
        ]
    }

    /// `--key vendor.pub`.
    pub fn key_args(&self) -> Vec<String> {
        vec![
            "--key".to_string(),
            self.input.vendor_pub.display().to_string(),
        ]
    }

    /// The installer command with `args`, an isolated home, the registry password in its
    /// environment variable, and no colour or progress bars.
    pub fn installer(&self, args: &[String]) -> (Command, String) {
        let bin = &self.input.install_bin;
        let mut cmd = Command::new(bin);
        cmd.args(args)
            .arg("--no-progress")
            .env("HOME", &self.home)
            .env("XDG_CACHE_HOME", self.home.join(".cache"))
            .env("XDG_CONFIG_HOME", self.home.join(".config"))
            .env("DOCKER_CONFIG", self.home.join(".docker"))
            .env("KUBECONFIG", self.cluster.kubeconfig_path())
            .env("AIRLIFT_REGISTRY_PASSWORD", REGISTRY_PASSWORD)
            .env("NO_COLOR", "1")
            .env_remove("REGISTRY_AUTH_FILE");
        (cmd, label_of(bin, args))
    }

    /// Runs the installer with `args` to completion.
    pub fn run_installer(&self, args: &[String]) -> anyhow::Result<Outcome> {
        let (cmd, label) = self.installer(args);
        run(cmd, &label, &self.logs(), COMMAND_LIMIT)
    }

    /// Starts the installer with `args` (for killing it midway).
    pub fn spawn_installer(&self, args: &[String]) -> anyhow::Result<Running> {
        let (cmd, label) = self.installer(args);
        spawn(cmd, &label, &self.logs())
    }

    /// `push BUNDLE` with the site's key and registry flags, JSON output.
    pub fn push_args(&self, bundle: &Path) -> Vec<String> {
        let mut a = vec!["push".to_string(), bundle.display().to_string()];
        a.extend(self.key_args());
        a.extend(self.registry_args());
        a.extend(["--output".to_string(), "json".to_string()]);
        a
    }

    /// `install BUNDLE` (or another bundle command such as `upgrade`, `plan`) with key,
    /// registry and cluster flags, non-interactive.
    pub fn bundle_command_args(&self, command: &str, bundle: &Path) -> Vec<String> {
        let mut a = vec![command.to_string(), bundle.display().to_string()];
        a.extend(self.key_args());
        a.extend(self.registry_args());
        a.extend(self.cluster_args());
        if command != "plan" {
            a.extend([
                "--yes".to_string(),
                "--timeout".to_string(),
                READY_TIMEOUT.to_string(),
            ]);
        }
        a
    }

    /// Where the installer's output is kept.
    pub fn logs(&self) -> PathBuf {
        self.input.workdir.join("logs")
    }

    /// A scratch folder under the workdir.
    pub fn scratch(&self, name: &str) -> anyhow::Result<PathBuf> {
        let p = self.input.workdir.join(name);
        if p.exists() {
            fs_err::remove_dir_all(&p)?;
        }
        fs_err::create_dir_all(&p)?;
        Ok(p)
    }
}
