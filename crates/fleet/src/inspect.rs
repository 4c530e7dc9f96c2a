//! `fleet plan` and `fleet status`: every cluster contacted in parallel (with a bound), nothing
//! changed. A cluster that cannot be reached is shown as such, never skipped.

use std::sync::Arc;

use airlift_bundle::{Bundle, NoProgress};
use airlift_cluster::cancel::Cancel;
use airlift_cluster::preflight::parse_server_version;
use airlift_cluster::release::BundleInfo;
use airlift_cluster::Cluster;
use airlift_deploy::registry::chain;
use airlift_deploy::{DeployError, Deployer, Intent, NonInteractive, PreflightFailure};
use futures::StreamExt;
use serde::Serialize;

use crate::error::FleetError;
use crate::gates::{not_installed, release_problems};
use crate::validate::{ResolvedCluster, ResolvedFleet};

/// The server's version and whether the bundle's range admits it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ServerVersion {
    /// `gitVersion` as the server says it.
    pub version: String,
    /// Whether the bundle's Kubernetes range admits it (`None` without a bundle).
    pub supported: Option<bool>,
}

/// Counts of what a plan would do.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PlanCounts {
    /// Objects to create.
    pub create: usize,
    /// Objects to change in place.
    pub change: usize,
    /// Objects to delete and create again.
    pub replace: usize,
    /// Objects to delete.
    pub delete: usize,
    /// Values that change.
    pub values: usize,
}

/// One cluster's plan.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ClusterPlan {
    /// The cluster.
    pub cluster: String,
    /// Its stage.
    pub stage: String,
    /// Its server, when reached.
    pub server: Option<ServerVersion>,
    /// The bundle running now.
    pub from: Option<BundleInfo>,
    /// The target.
    pub to: BundleInfo,
    /// What would change.
    pub counts: Option<PlanCounts>,
    /// Whether it is already at the target bundle (same digest).
    pub current: bool,
    /// Preflight failures (cluster, registry, ownership).
    pub preflight: Vec<PreflightFailure>,
    /// Why the plan could not be made, when it could not.
    pub error: Option<String>,
}

/// `fleet plan`: every cluster's plan, stage by stage.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FleetPlan {
    /// The fleet.
    pub fleet: String,
    /// The target.
    pub target: BundleInfo,
    /// The bundle's Kubernetes range.
    pub kubernetes: String,
    /// Every cluster, in stage order.
    pub clusters: Vec<ClusterPlan>,
}

impl FleetPlan {
    /// The error `fleet plan` ends with: a cluster outside the bundle's Kubernetes range first.
    pub fn error(&self) -> Option<FleetError> {
        let outside: Vec<String> = self
            .clusters
            .iter()
            .filter_map(|c| {
                let s = c.server.as_ref()?;
                (s.supported == Some(false)).then(|| format!("{} ({})", c.cluster, s.version))
            })
            .collect();
        (!outside.is_empty()).then(|| FleetError::KubernetesRange {
            range: self.kubernetes.clone(),
            clusters: outside,
        })
    }
}

/// Clusters in stage order, with their stage's name.
fn staged(fleet: &ResolvedFleet) -> Vec<(&ResolvedCluster, &str)> {
    fleet
        .stages
        .iter()
        .flat_map(|s| {
            s.clusters
                .iter()
                .map(move |&i| (&fleet.clusters[i], s.name.as_str()))
        })
        .collect()
}

async fn server(cluster: &Cluster, range: Option<&str>) -> Result<ServerVersion, String> {
    let info = cluster
        .client()
        .apiserver_version()
        .await
        .map_err(|e| format!("cannot read /version: {}", chain(&e)))?;
    let supported = range.map(|r| {
        match (
            parse_server_version(&info.git_version),
            semver::VersionReq::parse(r),
        ) {
            (Some(v), Ok(req)) => req.matches(&v),
            _ => false,
        }
    });
    Ok(ServerVersion {
        version: info.git_version,
        supported,
    })
}

/// Plans `bundle` on every cluster, at most `bound` at once. Changes nothing.
pub async fn plan(fleet: &ResolvedFleet, bundle: Arc<Bundle>, bound: usize) -> FleetPlan {
    let m = bundle.manifest();
    let target = BundleInfo {
        name: m.metadata.name.clone(),
        version: m.metadata.version.clone(),
        digest: airlift_bundle::Digest::of_bytes(bundle.manifest_bytes()).to_string(),
    };
    let range = m.requirements.kubernetes.clone();
    let clusters = futures::stream::iter(staged(fleet))
        .map(|(c, stage)| {
            let bundle = bundle.clone();
            let target = target.clone();
            let range = range.clone();
            async move {
                let mut p = ClusterPlan {
                    cluster: c.name.clone(),
                    stage: stage.to_string(),
                    server: None,
                    from: None,
                    to: target.clone(),
                    counts: None,
                    current: false,
                    preflight: Vec::new(),
                    error: None,
                };
                if let Err(e) = plan_one(c, bundle, &range, &mut p).await {
                    p.error = Some(e);
                }
                p
            }
        })
        .buffered(bound.max(1))
        .collect()
        .await;
    FleetPlan {
        fleet: fleet.name.clone(),
        target,
        kubernetes: range,
        clusters,
    }
}

async fn plan_one(
    c: &ResolvedCluster,
    bundle: Arc<Bundle>,
    range: &str,
    p: &mut ClusterPlan,
) -> Result<(), String> {
    let site = c.site().map_err(|e| e.to_string())?;
    let cluster = Cluster::connect(&c.connect)
        .await
        .map_err(|e| format!("unreachable: {}", chain(&e)))?;
    p.server = Some(server(&cluster, Some(range)).await?);
    let deployer = Deployer::new(
        &cluster,
        Arc::new(NoProgress),
        &NonInteractive,
        Cancel::new(),
    );
    let (release, namespace) = c.release_names(&bundle.manifest().metadata.name);
    let installed =
        match airlift_deploy::releases::status(&cluster, &NoProgress, &namespace, &release).await {
            Ok(s) => s.deployed.is_some(),
            Err(e) if not_installed(&e) => false,
            Err(e) => return Err(chain(&e)),
        };
    let intent = if installed {
        Intent::Upgrade
    } else {
        Intent::Install
    };
    let prepared = deployer
        .prepare(bundle, &site, intent)
        .await
        .map_err(|e| chain(&e))?;
    p.from = prepared.deployed().map(|d| d.bundle.clone());
    p.current = p.from.as_ref().map(|f| &f.digest) == Some(&p.to.digest);
    let plan = deployer.plan(&prepared).await.map_err(|e| chain(&e))?;
    p.counts = Some(PlanCounts {
        create: plan.objects.create.len(),
        change: plan.objects.change.len(),
        replace: plan.objects.replace.len(),
        delete: plan.objects.delete.len(),
        values: plan.values.len(),
    });
    match deployer.preflight(&prepared, intent, false).await {
        Ok(()) => {}
        Err(DeployError::Preflight(failures)) => p.preflight = failures,
        Err(e) => return Err(chain(&e)),
    }
    Ok(())
}

/// One cluster as `fleet status` shows it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ClusterStatus {
    /// The cluster.
    pub cluster: String,
    /// Its stage.
    pub stage: String,
    /// Whether it answered.
    pub reachable: bool,
    /// Its server version.
    pub server: Option<ServerVersion>,
    /// The release.
    pub release: String,
    /// The release namespace.
    pub namespace: String,
    /// The version deployed, if any.
    pub version: Option<String>,
    /// The revision deployed, if any.
    pub revision: Option<u32>,
    /// `healthy`, `not installed`, `unreachable`, or what is wrong.
    pub health: String,
    /// Drift: objects missing or changed since applied (empty when clean).
    pub drift: Vec<String>,
    /// Why it could not be read, when it could not.
    pub error: Option<String>,
}

/// `fleet status`: every cluster and one line, `N of M clusters at VERSION`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FleetStatus {
    /// The fleet.
    pub fleet: String,
    /// Every cluster, in stage order.
    pub clusters: Vec<ClusterStatus>,
    /// The version counted: the bundle's when given, else the newest deployed anywhere.
    pub version: Option<String>,
    /// How many clusters run it, healthy.
    pub at_version: usize,
    /// How many clusters the fleet has.
    pub total: usize,
    /// `N of M clusters at VERSION`.
    pub summary: String,
}

/// Reads every cluster's release, at most `bound` at once. `release` is the bundle name the
/// release defaults to; `bundle`, when given, sets the version counted and the Kubernetes
/// range servers are checked against.
pub async fn status(
    fleet: &ResolvedFleet,
    bundle_name: &str,
    bundle: Option<&Bundle>,
    bound: usize,
) -> FleetStatus {
    let range = bundle.map(|b| b.manifest().requirements.kubernetes.clone());
    let clusters: Vec<ClusterStatus> = futures::stream::iter(staged(fleet))
        .map(|(c, stage)| {
            let range = range.clone();
            async move {
                let (release, namespace) = c.release_names(bundle_name);
                let mut s = ClusterStatus {
                    cluster: c.name.clone(),
                    stage: stage.to_string(),
                    reachable: false,
                    server: None,
                    release,
                    namespace,
                    version: None,
                    revision: None,
                    health: "unreachable".into(),
                    drift: Vec::new(),
                    error: None,
                };
                if let Err(e) = status_one(c, range.as_deref(), &mut s).await {
                    s.error = Some(e);
                }
                s
            }
        })
        .buffered(bound.max(1))
        .collect()
        .await;
    let version = bundle
        .map(|b| b.manifest().metadata.version.clone())
        .or_else(|| {
            clusters
                .iter()
                .filter_map(|c| c.version.as_deref())
                .max_by(
                    |a, b| match (semver::Version::parse(a), semver::Version::parse(b)) {
                        (Ok(a), Ok(b)) => a.cmp(&b),
                        _ => a.cmp(b),
                    },
                )
                .map(str::to_string)
        });
    let at_version = clusters
        .iter()
        .filter(|c| c.version.is_some() && c.version == version && c.health == "healthy")
        .count();
    let total = clusters.len();
    FleetStatus {
        fleet: fleet.name.clone(),
        summary: format!(
            "{at_version} of {total} clusters at {}",
            version.as_deref().unwrap_or("(none)")
        ),
        clusters,
        version,
        at_version,
        total,
    }
}

async fn status_one(
    c: &ResolvedCluster,
    range: Option<&str>,
    s: &mut ClusterStatus,
) -> Result<(), String> {
    let cluster = Cluster::connect(&c.connect).await.map_err(|e| chain(&e))?;
    s.server = Some(server(&cluster, range).await?);
    s.reachable = true;
    match airlift_deploy::releases::status(&cluster, &NoProgress, &s.namespace, &s.release).await {
        Ok(r) => {
            s.version = r.deployed.as_ref().map(|d| d.bundle.version.clone());
            s.revision = r.deployed.as_ref().map(|d| d.revision);
            s.drift = r
                .missing
                .iter()
                .map(|m| format!("{m} missing"))
                .chain(
                    r.changed
                        .iter()
                        .map(|ch| format!("{} changed ({})", ch.object, ch.fields.join(", "))),
                )
                .collect();
            let problems = release_problems(&r, false);
            s.health = if problems.is_empty() {
                "healthy".into()
            } else {
                problems.join("; ")
            };
            Ok(())
        }
        Err(e) if not_installed(&e) => {
            s.health = "not installed".into();
            Ok(())
        }
        Err(e) => {
            s.health = "unreadable".into();
            Err(chain(&e))
        }
    }
}
