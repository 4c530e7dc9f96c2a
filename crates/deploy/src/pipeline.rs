//! Install, upgrade and plan: prepare (read only) → preflight (cluster, registry, ownership:
//! every failure at once) → push → lock → keep generated and site values → apply → wait →
//! record → unlock.
//!
//! Nothing is written before every check has passed: a refused operation leaves no namespace,
//! no generated secret and no record behind.

use std::collections::BTreeMap;
use std::sync::Arc;

use airlift_bundle::{Bundle, Diagnose, Digest, Progress};
use airlift_cluster::cancel::Cancel;
use airlift_cluster::generated::{GeneratedValues, FINGERPRINT_KEY};
use airlift_cluster::lifecycle::{DeployOptions, DeployRequest, Engine, LifecycleError, Outcome};
use airlift_cluster::lock::ReleaseLock;
use airlift_cluster::ownership::Owner;
use airlift_cluster::plan::Plan;
use airlift_cluster::preflight::{preflight as cluster_preflight, PreflightInput};
use airlift_cluster::release::{BundleInfo, Release, ReleaseStatus};
use airlift_cluster::Cluster;
use airlift_registry::mapping::Destination;
use airlift_registry::push::PushReport;
use airlift_registry::{Credentials, RegistryOptions};
use airlift_render::{Config, ReleaseInfo, Secret};
use serde::Serialize;

use crate::error::{DeployError, PreflightFailure};
use crate::license::{check_nodes, count_nodes, LicenseContext, Licensed, Store};
use crate::registry::{chain, client, preflight as registry_preflight, push_bundle, SharedPushes};
use crate::render::{
    managed, planned_relocation, render_bundle_on, select_components, PullCredentials, RenderTarget,
};
use crate::site::{
    components, release_names, resolve_config, site_inputs, values_diff, DefaultChange,
    Interaction, Remembered, SiteRequest, ValueChange, REGISTRY_PASSWORD_KEY,
};

/// What the operation is for; decides the revision templates see and the checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Intent {
    /// A first install, or a re-install of the same bundle.
    Install,
    /// An upgrade (or a plan for one).
    Upgrade,
}

/// A bundle resolved for one release: configuration, relocation, rendered objects. Building
/// it reads the cluster and changes nothing.
pub struct Prepared {
    /// The verified bundle.
    pub bundle: Arc<Bundle>,
    /// The destination registry.
    pub destination: Destination,
    /// How to reach it (credentials included, remembered ones too).
    pub registry: RegistryOptions,
    /// The resolved configuration.
    pub config: Config,
    /// Original reference → relocated reference by digest.
    pub relocation: BTreeMap<String, String>,
    /// What the cluster engine deploys.
    pub request: DeployRequest,
    /// The release's history before this operation, oldest first.
    pub history: Vec<Release>,
    /// Remembered keys the new bundle no longer has (dropped).
    pub dropped: Vec<String>,
    /// Each value that changes from the deployed revision, old → new, and why.
    pub values: Vec<ValueChange>,
    /// SaaS defaults the vendor changed, and whether the site follows them.
    pub defaults: Vec<DefaultChange>,
    /// The cluster's platform, as detected, with its evidence.
    pub platform: airlift_cluster::platform::PlatformReport,
    /// The bundle's platform needs resolved on it: what templates saw as `platform`.
    pub resolved_platform: airlift_render::platform::ResolvedPlatform,
    /// The license, checked offline (the node count is checked in preflight).
    pub license: Option<Licensed>,
    /// What the license was checked against; stored with it.
    pub license_context: LicenseContext,
    site_secrets: BTreeMap<String, Secret>,
    /// The HMAC key of the record's secret fingerprints (stored with the generated values).
    fingerprint_key: Secret,
}

impl Prepared {
    /// The revision deployed before this operation, if any.
    pub fn deployed(&self) -> Option<&Release> {
        self.history
            .iter()
            .rev()
            .find(|r| r.status == ReleaseStatus::Deployed)
    }
}

/// What `plan` shows.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PlanReport {
    /// The release.
    pub release: String,
    /// The release namespace.
    pub namespace: String,
    /// The bundle running now, if any.
    pub from: Option<BundleInfo>,
    /// The bundle to deploy.
    pub to: BundleInfo,
    /// Objects to create, change and delete; images that change.
    pub objects: Plan,
    /// Values that change, old → new, and why.
    pub values: Vec<ValueChange>,
    /// SaaS defaults the vendor changed, and whether the site follows them.
    pub defaults: Vec<DefaultChange>,
    /// Remembered values the new bundle no longer has.
    pub dropped: Vec<String>,
}

/// What an install or upgrade did.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DeployReport {
    /// The release.
    pub release: String,
    /// The release namespace.
    pub namespace: String,
    /// The bundle deployed.
    pub bundle: BundleInfo,
    /// The registry push.
    pub push: PushReport,
    /// The cluster changes.
    pub outcome: Outcome,
}

/// The pipeline over one cluster.
pub struct Deployer<'a> {
    cluster: &'a Cluster,
    progress: Arc<dyn Progress>,
    interaction: &'a dyn Interaction,
    cancel: Cancel,
    shared_pushes: Option<Arc<SharedPushes>>,
}

impl<'a> Deployer<'a> {
    /// A pipeline over `cluster`, reporting to `progress`, asking through `interaction`, and
    /// stopping at a safe point when `cancel` is set.
    pub fn new(
        cluster: &'a Cluster,
        progress: Arc<dyn Progress>,
        interaction: &'a dyn Interaction,
        cancel: Cancel,
    ) -> Self {
        Self {
            cluster,
            progress,
            interaction,
            cancel,
            shared_pushes: None,
        }
    }

    /// Shares pushes with other deployments of the same bundle (a fleet rollout): a
    /// destination already pushed to is not pushed again.
    pub fn with_shared_pushes(mut self, shared: Arc<SharedPushes>) -> Self {
        self.shared_pushes = Some(shared);
        self
    }

    fn engine(&self) -> Engine<'_> {
        Engine::new(self.cluster, self.progress.as_ref())
    }

    /// Resolves configuration (remembered values, generated secrets kept), relocation and
    /// rendering. Reads the cluster; changes nothing. A user who may not read the release's
    /// records gets a preflight failure naming what is missing.
    pub async fn prepare(
        &self,
        bundle: Arc<Bundle>,
        request: &SiteRequest,
        intent: Intent,
    ) -> Result<Prepared, DeployError> {
        let m = bundle.manifest();
        let (release, namespace) = release_names(request, &m.metadata.name);
        let engine = self.engine();
        let history = match engine.status(&namespace, &release).await {
            Ok(h) => h,
            Err(e) => return Err(explain_forbidden(engine.resolver(), &namespace, e).await),
        };
        let deployed = history
            .iter()
            .rev()
            .find(|r| r.status == ReleaseStatus::Deployed)
            .cloned();
        let client = self.cluster.client().clone();
        let generated: BTreeMap<String, Secret> =
            GeneratedValues::new(client.clone(), &namespace, &release)
                .read()
                .await?;
        let fingerprint_key = generated
            .get(FINGERPRINT_KEY)
            .cloned()
            .unwrap_or_else(Secret::new_fingerprint_key);
        let remembered = match &deployed {
            Some(d) if d.site.is_some() => {
                let secrets = GeneratedValues::site(client, &namespace, &release)
                    .read()
                    .await?;
                Remembered::from_record(d, secrets)
            }
            _ => None,
        };
        let (config, dropped) = resolve_config(
            &m.config,
            request,
            remembered.as_ref(),
            &generated,
            self.interaction,
        )?;

        let registry_text = request
            .registry
            .clone()
            .or_else(|| remembered.as_ref().and_then(|r| r.site.registry.clone()))
            .ok_or_else(|| {
                DeployError::Destination(format!(
                    "no customer registry: pass --registry (release `{release}` remembers none)"
                ))
            })?;
        let flatten = request.flatten
            || (request.registry.is_none() && remembered.as_ref().is_some_and(|r| r.site.flatten));
        let destination = Destination::parse(&registry_text, flatten)
            .map_err(|e| DeployError::Destination(format!("{registry_text}: {e}")))?;
        let mut registry = request.registry_options.clone();
        let pull = match registry.credentials.get(&destination.registry) {
            Some(Credentials::Basic { username, password }) => Some(PullCredentials {
                registry: destination.registry.clone(),
                username: username.clone(),
                password: password.clone(),
            }),
            _ => remembered.as_ref().and_then(|r| {
                let user = r.site.registry_user.clone()?;
                let password = r.secrets.get(REGISTRY_PASSWORD_KEY)?.clone();
                registry.credentials.insert(
                    destination.registry.clone(),
                    Credentials::basic(user.clone(), password.clone()),
                );
                Some(PullCredentials {
                    registry: destination.registry.clone(),
                    username: user,
                    password,
                })
            }),
        };
        let relocation = planned_relocation(m, &destination)?;
        let (enable, disable) = components(
            remembered
                .as_ref()
                .map(|r| &r.site)
                .filter(|_| !request.reset_values),
            &request.enable,
            &request.disable,
        );
        let chosen = select_components(&m.components, &enable, &disable)?;
        let last = history.last().map_or(0, |r| r.revision);
        let revision = match (intent, &deployed) {
            (Intent::Install, Some(d)) => d.revision,
            _ => last + 1,
        };
        let info = ReleaseInfo {
            name: release.clone(),
            namespace: namespace.clone(),
            revision: u64::from(revision),
        };
        let overrides = crate::platform::overrides(request, &m.platform)?;
        let (platform, resolved_platform) =
            crate::platform::resolve_on(self.cluster, &m.platform, &overrides).await;
        let license_context = LicenseContext::new(m, &chosen);
        let license = crate::license::for_deploy(
            self.cluster,
            &namespace,
            &release,
            m,
            &chosen,
            request.license.as_deref(),
            request.vendor_key.as_ref(),
        )
        .await?;
        let rendered = render_bundle_on(
            &bundle,
            &chosen,
            &config,
            &relocation,
            pull.as_ref(),
            &RenderTarget {
                release: &info,
                platform: &resolved_platform,
                license: license.as_ref(),
            },
        )?;
        let (site, site_secrets) = site_inputs(
            &config,
            Some(&registry_text),
            flatten,
            pull.as_ref().map(|p| (p.username.as_str(), &p.password)),
            &enable,
            &disable,
        );
        let saas_defaults: BTreeMap<String, serde_json::Value> = m
            .config
            .groups
            .iter()
            .flat_map(|g| {
                g.items
                    .iter()
                    .filter(|i| i.kind != airlift_bundle::schema::config::ConfigType::Secret)
                    .filter_map(move |i| {
                        i.default
                            .clone()
                            .map(|d| (format!("{}.{}", g.name, i.name), d))
                    })
            })
            .collect();
        let (values, defaults) = match &deployed {
            Some(d) => values_diff(d, &config, &saas_defaults, &fingerprint_key),
            None => (Vec::new(), Vec::new()),
        };
        let request = DeployRequest {
            release,
            namespace,
            bundle: BundleInfo {
                name: m.metadata.name.clone(),
                version: m.metadata.version.clone(),
                digest: Digest::of_bytes(bundle.manifest_bytes()).to_string(),
            },
            config: config.redacted(&fingerprint_key),
            saas_defaults,
            site: Some(site),
            operator: whoami(self.cluster).await,
            objects: managed(&rendered)?,
        };
        Ok(Prepared {
            bundle,
            destination,
            registry,
            config,
            relocation,
            request,
            history,
            dropped,
            values,
            defaults,
            platform,
            resolved_platform,
            license,
            license_context,
            site_secrets,
            fingerprint_key,
        })
    }

    /// Refuses an upgrade that cannot go ahead (the release is not installed, or the version is
    /// older without `force`), reading only: before a plan is shown or a question asked.
    pub async fn check_upgrade(&self, prepared: &Prepared, force: bool) -> Result<(), DeployError> {
        self.engine()
            .check_upgrade(&prepared.request, force)
            .await?;
        Ok(())
    }

    /// What deploying `prepared` would change, changing nothing.
    pub async fn plan(&self, prepared: &Prepared) -> Result<PlanReport, DeployError> {
        let objects = self.engine().plan(&prepared.request).await?;
        Ok(PlanReport {
            release: prepared.request.release.clone(),
            namespace: prepared.request.namespace.clone(),
            from: prepared.deployed().map(|d| d.bundle.clone()),
            to: prepared.request.bundle.clone(),
            objects,
            values: prepared.values.clone(),
            defaults: prepared.defaults.clone(),
            dropped: prepared.dropped.clone(),
        })
    }

    /// Every check before any change, all at once: the upgrade is possible, the cluster
    /// (version, architectures, RBAC, storage classes, CRDs), the registry (reachable, trusted,
    /// may push), and ownership (no object of another release or of nobody's, unless `adopt`).
    pub async fn preflight(
        &self,
        prepared: &Prepared,
        intent: Intent,
        adopt: bool,
    ) -> Result<(), DeployError> {
        let engine = self.engine();
        if intent == Intent::Upgrade {
            // Not installed is not a preflight failure: the operator meant `install`.
            match engine.check_upgrade(&prepared.request, false).await {
                Err(LifecycleError::Downgrade { .. }) | Ok(_) => {}
                Err(e) => return Err(e.into()),
            }
        }
        let mut failures = Vec::new();
        if let Some(licensed) = &prepared.license {
            if let Err(e) = check_nodes(licensed, count_nodes(self.cluster).await?) {
                failures.push(PreflightFailure {
                    area: "license",
                    problem: e.to_string(),
                    fix: e.fix().unwrap_or_default(),
                });
            }
        }
        if let Err(e) = cluster_preflight(
            engine.resolver(),
            &PreflightInput {
                requirements: &prepared.bundle.manifest().requirements,
                objects: &prepared.request.objects,
                namespace: &prepared.request.namespace,
            },
        )
        .await
        {
            failures.extend(failures_of(e));
        }
        failures.extend(
            airlift_cluster::platform::platform_checks(
                &prepared.platform,
                &prepared.resolved_platform,
            )
            .into_iter()
            .filter(|c| !c.ok)
            .map(|c| PreflightFailure {
                area: "platform",
                problem: format!("{}: {}", c.name, c.detail),
                fix: c.fix.unwrap_or_default(),
            }),
        );
        let registry = client(&prepared.destination, &prepared.registry)?;
        if let Some(f) =
            registry_preflight(&registry, prepared.bundle.manifest(), &prepared.destination).await?
        {
            failures.push(f);
        }
        match engine.check(&prepared.request, adopt).await {
            Ok(report) => failures.extend(report.conflicts.iter().map(|c| {
                PreflightFailure {
                    area: "ownership",
                    problem: c.to_string(),
                    fix:
                        "install this release in its own namespace (-n NAME), uninstall the owner, \
                      or pass --adopt to take the objects over"
                            .into(),
                }
            })),
            Err(e) => failures.push(PreflightFailure {
                area: "ownership",
                problem: chain(&e),
                fix: e.hint(),
            }),
        }
        if failures.is_empty() {
            Ok(())
        } else {
            Err(DeployError::Preflight(failures))
        }
    }

    /// Everything up to and including preflight, then the plan: what `--dry-run` shows.
    /// Changes nothing.
    pub async fn dry_run(
        &self,
        prepared: &Prepared,
        intent: Intent,
        options: &DeployOptions,
    ) -> Result<PlanReport, DeployError> {
        if intent == Intent::Upgrade {
            self.check_upgrade(prepared, options.force).await?;
        }
        self.preflight(prepared, intent, options.adopt).await?;
        self.plan(prepared).await
    }

    /// Installs or upgrades `prepared`: preflight, push, lock, keep values, apply, wait, record.
    pub async fn deploy(
        &self,
        prepared: &Prepared,
        intent: Intent,
        options: &DeployOptions,
        force_unlock: bool,
    ) -> Result<DeployReport, DeployError> {
        let engine = self.engine().redacting(&prepared.config);
        if intent == Intent::Upgrade {
            engine
                .check_upgrade(&prepared.request, options.force)
                .await?;
        }
        self.preflight(prepared, intent, options.adopt).await?;
        if self.cancel.is_cancelled() {
            return Err(DeployError::Interrupted);
        }
        let registry = client(&prepared.destination, &prepared.registry)?;
        let pushing = push_bundle(
            &registry,
            prepared.bundle.clone(),
            &prepared.destination,
            &prepared.relocation,
            prepared.registry.concurrency,
            self.progress.clone(),
        );
        let pushing = async {
            match &self.shared_pushes {
                Some(shared) => {
                    shared
                        .push_once(&prepared.destination, &prepared.relocation, pushing)
                        .await
                }
                None => pushing.await,
            }
        };
        let push = tokio::select! {
            r = pushing => r?,
            _ = self.cancel.cancelled() => return Err(DeployError::Interrupted),
        };
        if self.cancel.is_cancelled() {
            return Err(DeployError::Interrupted);
        }
        let r = &prepared.request;
        let owner = Owner::new(&r.namespace, &r.release);
        engine.ensure_namespace(&owner).await?;
        let operation = match intent {
            Intent::Install => "install",
            Intent::Upgrade => "upgrade",
        };
        let lock = ReleaseLock::acquire(
            self.cluster.client().clone(),
            &r.namespace,
            &r.release,
            operation,
            force_unlock,
        )
        .await?;
        let result = self.locked_deploy(&engine, prepared, intent, options).await;
        let unlocked = lock.release().await;
        let outcome = result?;
        unlocked?;
        Ok(DeployReport {
            release: r.release.clone(),
            namespace: r.namespace.clone(),
            bundle: r.bundle.clone(),
            push,
            outcome,
        })
    }

    async fn locked_deploy(
        &self,
        engine: &Engine<'_>,
        prepared: &Prepared,
        intent: Intent,
        options: &DeployOptions,
    ) -> Result<Outcome, DeployError> {
        let r = &prepared.request;
        let client = self.cluster.client().clone();
        // Generated values are stored before anything uses them, so an interrupted install
        // that is run again keeps the same values.
        // The fingerprint key is kept with them whenever a record holds a secret's fingerprint.
        let mut generated = prepared.config.generated_secrets();
        if prepared.config.entries().iter().any(|e| e.is_secret()) {
            generated.insert(
                FINGERPRINT_KEY.to_string(),
                prepared.fingerprint_key.clone(),
            );
        }
        if !generated.is_empty() {
            GeneratedValues::new(client.clone(), &r.namespace, &r.release)
                .write(&generated)
                .await?;
        }
        GeneratedValues::site(client, &r.namespace, &r.release)
            .replace(&prepared.site_secrets)
            .await?;
        if let Some(licensed) = &prepared.license {
            Store::new(self.cluster, &r.namespace, &r.release)
                .write(licensed, &prepared.license_context)
                .await?;
        }
        let mut options = options.clone();
        options.cancel = self.cancel.clone();
        Ok(match intent {
            Intent::Install => engine.install(r, &options).await?,
            Intent::Upgrade => engine.upgrade(r, &options).await?,
        })
    }
}

/// A 403 while reading the release's own state is a preflight failure (exit 7) naming every
/// permission the engine needs there and lacks; anything else stays what it is.
pub(crate) async fn explain_forbidden(
    resolver: &airlift_cluster::resolve::Resolver,
    namespace: &str,
    e: LifecycleError,
) -> DeployError {
    match airlift_cluster::preflight::forbidden_as_preflight(resolver, namespace, &e).await {
        Some(p) => cluster_failures(p),
        None => e.into(),
    }
}

/// The failed checks of a cluster preflight, for the one combined report.
fn cluster_failures(e: airlift_cluster::preflight::PreflightError) -> DeployError {
    DeployError::Preflight(failures_of(e))
}

fn failures_of(e: airlift_cluster::preflight::PreflightError) -> Vec<PreflightFailure> {
    let airlift_cluster::preflight::PreflightError::Failed(report) = e;
    report
        .failures()
        .map(|c| PreflightFailure {
            area: "cluster",
            problem: format!("{}: {}", c.name, c.detail),
            fix: c.fix.clone().unwrap_or_default(),
        })
        .collect()
}

/// The cluster identity the operation runs as (SelfSubjectReview), when the server tells.
pub async fn whoami(cluster: &Cluster) -> Option<String> {
    use k8s_openapi::api::authentication::v1::SelfSubjectReview;
    let api: kube::Api<SelfSubjectReview> = kube::Api::all(cluster.client().clone());
    let review = api
        .create(
            &kube::api::PostParams::default(),
            &SelfSubjectReview::default(),
        )
        .await
        .ok()?;
    review.status?.user_info?.username
}
