//! Shared setup for the deploy pipeline's in-process tests: the test cluster and a real
//! `docker-registry` on loopback, or, when `AIRLIFT_E2E_KUBECONFIG` is set, also a real cluster
//! with a registry its nodes can pull from (`AIRLIFT_E2E_REGISTRY`, plain HTTP when
//! `AIRLIFT_E2E_REGISTRY_INSECURE=1`). Each scenario prints which tier it runs on.

#![allow(dead_code, clippy::unwrap_used)]

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use airlift_bundle::{NoProgress, Progress, PublicKey, Trust};
use airlift_cluster::cancel::Cancel;
use airlift_cluster::lifecycle::DeployOptions;
use airlift_cluster::readiness::WaitOptions;
use airlift_cluster::{Cluster, ConnectOptions};
use airlift_deploy::{
    open_verified, DeployError, DeployReport, Deployer, Intent, NonInteractive, PlanReport,
    SiteRequest,
};
use airlift_registry::RegistryOptions;
use airlift_testkit::bundles::{ShopBundles, ShopVersion};
use airlift_testkit::cluster::{ClusterOptions, TestCluster};
use airlift_testkit::registry::TestRegistry;

/// One place to run: a cluster and a registry its nodes pull from.
pub struct Env {
    /// `test-cluster` or `real-cluster`.
    pub tier: &'static str,
    /// The kubeconfig.
    pub kubeconfig: PathBuf,
    /// The test cluster, on the test tier (knobs, request log).
    pub test: Option<TestCluster>,
    /// `HOST[:PORT][/PREFIX]` of the registry.
    pub registry: String,
    /// Registry options (plain HTTP on loopback).
    pub registry_options: RegistryOptions,
    /// Keeps the loopback registry running.
    _registry: Option<TestRegistry>,
    /// Bundles for this run.
    pub bundles: ShopBundles,
    /// Scratch space.
    pub dir: tempfile::TempDir,
}

/// Templates render in this process: a test harness cannot serve as the render worker (the
/// bounded worker is tested in `airlift-render`'s `bounded_worker` test and through the
/// binaries).
pub fn in_process_templates() {
    airlift_render::isolate::set_default_isolation(airlift_render::isolate::Isolation::InProcess);
}

/// The test tier alone, its nodes also trusting the CA `ca_pem` (the PEM file of a TLS test
/// registry the scenario pushes to), as a real cluster's nodes are configured for a private CA.
pub fn test_env_trusting(ca_pem: &std::path::Path) -> Env {
    let pem = std::fs::read_to_string(ca_pem).expect("the registry's CA is readable");
    test_env(ClusterOptions::default().registry_ca(&pem))
}

/// The test tier with `options`; its kubelet resolves every image against the registries, the
/// loopback one over plain HTTP, as a real one pulls it.
fn test_env(options: ClusterOptions) -> Env {
    in_process_templates();
    let registry = TestRegistry::plain();
    let test = TestCluster::start(options.insecure_registry(&registry.host()))
        .expect("the test cluster starts");
    env(
        "test-cluster",
        test.kubeconfig_path().to_path_buf(),
        Some(test),
        registry.host(),
        Some(registry),
        true,
    )
}

/// The tiers: the test cluster always; a real cluster when configured.
pub fn envs() -> Vec<Env> {
    let mut out = vec![test_env(ClusterOptions::default())];
    match std::env::var_os("AIRLIFT_E2E_KUBECONFIG").filter(|v| !v.is_empty()) {
        Some(kc) => {
            let registry = std::env::var("AIRLIFT_E2E_REGISTRY").unwrap_or_else(|_| {
                panic!(
                    "AIRLIFT_E2E_KUBECONFIG is set: also set AIRLIFT_E2E_REGISTRY to a registry \
                     both this machine and the cluster's nodes reach (HOST[:PORT][/PREFIX])"
                )
            });
            let insecure = std::env::var("AIRLIFT_E2E_REGISTRY_INSECURE").as_deref() == Ok("1");
            out.push(env(
                "real-cluster",
                PathBuf::from(kc),
                None,
                registry,
                None,
                insecure,
            ));
        }
        None => eprintln!(
            "note: AIRLIFT_E2E_KUBECONFIG is not set: the real-cluster tier is skipped; the \
             test-cluster tier runs"
        ),
    }
    out
}

fn env(
    tier: &'static str,
    kubeconfig: PathBuf,
    test: Option<TestCluster>,
    registry: String,
    loopback: Option<TestRegistry>,
    insecure: bool,
) -> Env {
    let dir = tempfile::tempdir().unwrap();
    let bundles = ShopBundles::new(dir.path()).unwrap();
    let mut registry_options = RegistryOptions::default();
    if insecure {
        registry_options
            .insecure
            .insert(registry.split('/').next().unwrap_or(&registry).to_string());
    }
    eprintln!(
        "[{tier}] kubeconfig {} registry {registry}",
        kubeconfig.display()
    );
    Env {
        tier,
        kubeconfig,
        test,
        registry,
        registry_options,
        _registry: loopback,
        bundles,
        dir,
    }
}

/// A unique lowercase name, so real-cluster runs never collide.
pub fn unique(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("{prefix}-{:x}", (nanos ^ std::process::id()) % 0xffffff)
}

impl Env {
    /// Connects.
    pub async fn connect(&self) -> Cluster {
        Cluster::connect(&ConnectOptions {
            kubeconfig: Some(self.kubeconfig.clone()),
            context: None,
        })
        .await
        .unwrap_or_else(|e| panic!("[{}] connect failed: {e}", self.tier))
    }

    /// A request for `release` in `namespace` (`None`: the default rule) with this registry.
    pub fn site(&self, release: &str, namespace: Option<&str>) -> SiteRequest {
        SiteRequest {
            release: Some(release.to_string()),
            namespace: namespace.map(str::to_string),
            registry: Some(self.registry.clone()),
            registry_options: self.registry_options.clone(),
            ..SiteRequest::default()
        }
    }

    /// Writes the bundle for `v`.
    pub fn bundle(&self, v: &ShopVersion) -> PathBuf {
        self.bundles.write(v).unwrap()
    }

    /// The trust policy for this run's vendor key.
    pub fn trust(&self) -> Trust {
        Trust::Key(PublicKey::load(&self.bundles.public_key().unwrap()).unwrap())
    }
}

/// Fast readiness waits.
pub fn options() -> DeployOptions {
    DeployOptions {
        wait: WaitOptions {
            timeout: Duration::from_secs(60),
            poll: Duration::from_millis(200),
            ..WaitOptions::default()
        },
        ..DeployOptions::default()
    }
}

/// Verifies `bundle`, prepares and deploys it with `cancel`.
pub async fn deploy_with(
    env: &Env,
    bundle: &std::path::Path,
    site: &SiteRequest,
    intent: Intent,
    options: &DeployOptions,
    progress: Arc<dyn Progress>,
    cancel: Cancel,
) -> Result<DeployReport, DeployError> {
    let cluster = env.connect().await;
    let (b, _) = open_verified(bundle, &env.trust(), &NoProgress, true)?;
    let deployer = Deployer::new(&cluster, progress, &NonInteractive, cancel);
    let prepared = deployer.prepare(Arc::new(b), site, intent).await?;
    deployer.deploy(&prepared, intent, options, false).await
}

/// Verifies `bundle`, prepares and deploys it.
pub async fn deploy(
    env: &Env,
    bundle: &std::path::Path,
    site: &SiteRequest,
    intent: Intent,
) -> Result<DeployReport, DeployError> {
    deploy_with(
        env,
        bundle,
        site,
        intent,
        &options(),
        Arc::new(NoProgress),
        Cancel::new(),
    )
    .await
}

/// Verifies `bundle` and plans it.
pub async fn plan(
    env: &Env,
    bundle: &std::path::Path,
    site: &SiteRequest,
) -> Result<PlanReport, DeployError> {
    let cluster = env.connect().await;
    let (b, _) = open_verified(bundle, &env.trust(), &NoProgress, true)?;
    let deployer = Deployer::new(
        &cluster,
        Arc::new(NoProgress),
        &NonInteractive,
        Cancel::new(),
    );
    let prepared = deployer.prepare(Arc::new(b), site, Intent::Upgrade).await?;
    deployer.plan(&prepared).await
}

/// A live object as JSON, or `None`.
pub async fn live(
    cluster: &Cluster,
    api_version: &str,
    kind: &str,
    namespace: Option<&str>,
    name: &str,
) -> Option<serde_json::Value> {
    let (group, version) = match api_version.split_once('/') {
        Some((g, v)) => (g.to_string(), v.to_string()),
        None => (String::new(), api_version.to_string()),
    };
    let id = airlift_cluster::ObjectRef {
        group,
        version,
        kind: kind.into(),
        namespace: namespace.map(str::to_string),
        name: name.into(),
    };
    let resolver = airlift_cluster::resolve::Resolver::new(cluster.client().clone());
    airlift_cluster::apply::get_live(&resolver, &id)
        .await
        .unwrap()
}

/// Uninstalls `release` with its data, at the end of a scenario.
pub async fn cleanup(
    cluster: &Cluster,
    namespace: &str,
    release: &str,
) -> airlift_cluster::lifecycle::Outcome {
    airlift_deploy::releases::uninstall(
        cluster,
        &NoProgress,
        namespace,
        release,
        true,
        false,
        Cancel::new(),
    )
    .await
    .unwrap_or_else(|e| panic!("uninstall {release} in {namespace}: {e}"))
}
