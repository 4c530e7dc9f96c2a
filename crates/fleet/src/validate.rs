//! The checks serde cannot make: no secret in the file, unique names, every stage naming known
//! clusters, each cluster in exactly one stage; and the resolved fleet the engine runs: stages
//! as lists of clusters, each cluster with its connection and its site request.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use airlift_cluster::ConnectOptions;
use airlift_deploy::SiteRequest;
use airlift_registry::{Credentials, RegistryOptions, Secret};

use crate::error::FleetError;
use crate::model::{resolve_path, ClusterEntry, Fleet, Gates, OnFailure};

/// Keys that hold a secret and must never be written in a fleet file.
const SECRET_KEYS: &[&str] = &["password", "pass", "passwd", "token", "secret", "apikey"];

/// Refuses any mapping key that names a secret (`password`, `token`, ...), anywhere.
pub fn refuse_passwords(value: &serde_yaml::Value, source: &Path) -> Result<(), FleetError> {
    fn walk(v: &serde_yaml::Value, at: &str, source: &Path) -> Result<(), FleetError> {
        match v {
            serde_yaml::Value::Mapping(m) => {
                for (k, child) in m {
                    let key = k.as_str().unwrap_or_default();
                    let here = if at.is_empty() {
                        key.to_string()
                    } else {
                        format!("{at}.{key}")
                    };
                    let lower = key.to_ascii_lowercase().replace(['-', '_'], "");
                    if SECRET_KEYS.contains(&lower.as_str()) {
                        return Err(FleetError::PasswordInFile {
                            path: source.to_path_buf(),
                            at: here,
                        });
                    }
                    walk(child, &here, source)?;
                }
                Ok(())
            }
            serde_yaml::Value::Sequence(s) => {
                for (i, child) in s.iter().enumerate() {
                    walk(child, &format!("{at}[{i}]"), source)?;
                }
                Ok(())
            }
            serde_yaml::Value::Tagged(t) => walk(&t.value, at, source),
            _ => Ok(()),
        }
    }
    walk(value, "", source)
}

/// A validated fleet: stages resolved to clusters, paths resolved against the file.
#[derive(Debug, Clone)]
pub struct ResolvedFleet {
    /// The fleet's name.
    pub name: String,
    /// The clusters, in file order.
    pub clusters: Vec<ResolvedCluster>,
    /// The stages, in order.
    pub stages: Vec<ResolvedStage>,
    /// Readiness timeout per cluster.
    pub timeout: Duration,
    /// How often gates are checked while baking.
    pub gate_interval: Duration,
}

/// One cluster, ready to connect to and deploy on.
#[derive(Debug, Clone)]
pub struct ResolvedCluster {
    /// Its name.
    pub name: String,
    /// Its labels.
    pub labels: BTreeMap<String, String>,
    /// How to connect.
    pub connect: ConnectOptions,
    /// The deploy request (release, namespace, registry, values), without the password: that
    /// is read from the environment when the rollout runs ([`ResolvedCluster::site`]).
    site: SiteRequest,
    password_env: Option<(String, String)>,
}

impl ResolvedCluster {
    /// The site request for this cluster, the registry password read from its variable.
    pub fn site(&self) -> Result<SiteRequest, FleetError> {
        let mut site = self.site.clone();
        if let Some((user, variable)) = &self.password_env {
            let password = std::env::var(variable)
                .ok()
                .filter(|p| !p.is_empty())
                .ok_or_else(|| FleetError::MissingPassword {
                    cluster: self.name.clone(),
                    variable: variable.clone(),
                })?;
            let host = registry_host(site.registry.as_deref().unwrap_or_default());
            site.registry_options.credentials.insert(
                host,
                Credentials::basic(user.clone(), Secret::new(password)),
            );
        }
        Ok(site)
    }

    /// The release and namespace this cluster runs the bundle `bundle_name` as.
    pub fn release_names(&self, bundle_name: &str) -> (String, String) {
        airlift_deploy::site::release_names(&self.site, bundle_name)
    }

    /// Whether the fleet file names this cluster's release (else it is the bundle's name).
    pub fn has_release(&self) -> bool {
        self.site.release.is_some()
    }

    /// The registry destination, `HOST[:PORT][/PREFIX]`.
    pub fn registry(&self) -> &str {
        self.site.registry.as_deref().unwrap_or_default()
    }
}

/// One stage with its clusters (indexes into [`ResolvedFleet::clusters`]).
#[derive(Debug, Clone)]
pub struct ResolvedStage {
    /// Its name.
    pub name: String,
    /// Its clusters, in file order.
    pub clusters: Vec<usize>,
    /// At most this many at once.
    pub max_parallel: usize,
    /// How long it must stay healthy before the next stage.
    pub bake_time: Duration,
    /// Its gates.
    pub gates: Gates,
    /// What a failure does.
    pub on_failure: OnFailure,
}

fn registry_host(destination: &str) -> String {
    destination
        .split('/')
        .next()
        .unwrap_or(destination)
        .to_string()
}

fn matches(selector: &BTreeMap<String, String>, labels: &BTreeMap<String, String>) -> bool {
    selector.iter().all(|(k, v)| labels.get(k) == Some(v))
}

impl Fleet {
    /// Validates the fleet read from `file` and resolves it: every error named.
    pub fn resolve(&self, file: &Path) -> Result<ResolvedFleet, FleetError> {
        if self.clusters.is_empty() {
            return Err(FleetError::Empty { what: "clusters" });
        }
        if self.rollout.stages.is_empty() {
            return Err(FleetError::Empty {
                what: "rollout stages",
            });
        }
        let mut index = BTreeMap::new();
        for (i, c) in self.clusters.iter().enumerate() {
            if c.name.is_empty() || c.name.chars().any(|ch| ch.is_control() || ch == '/') {
                return Err(FleetError::Invalid {
                    at: format!("clusters[{i}].name"),
                    problem: "a cluster name must be non-empty, without `/` or control characters"
                        .into(),
                });
            }
            if index.insert(c.name.clone(), i).is_some() {
                return Err(FleetError::Duplicate {
                    what: "clusters",
                    name: c.name.clone(),
                });
            }
        }
        let mut stage_names = BTreeMap::new();
        let mut owner: BTreeMap<usize, String> = BTreeMap::new();
        let mut stages = Vec::new();
        for (s, stage) in self.rollout.stages.iter().enumerate() {
            if stage_names.insert(stage.name.clone(), s).is_some() {
                return Err(FleetError::Duplicate {
                    what: "stages",
                    name: stage.name.clone(),
                });
            }
            if stage.max_parallel == 0 {
                return Err(FleetError::Invalid {
                    at: format!("rollout.stages[{s}].maxParallel"),
                    problem: "must be at least 1".into(),
                });
            }
            for (g, gate) in stage.gates.http.iter().enumerate() {
                if !(gate.url.starts_with("https://") || gate.url.starts_with("http://")) {
                    return Err(FleetError::Invalid {
                        at: format!("rollout.stages[{s}].gates.http[{g}].url"),
                        problem: format!("`{}` is not an http(s) URL", gate.url),
                    });
                }
            }
            let mut members = Vec::new();
            for name in &stage.clusters {
                let i = *index.get(name).ok_or_else(|| FleetError::UnknownCluster {
                    stage: stage.name.clone(),
                    cluster: name.clone(),
                    known: self.clusters.iter().map(|c| c.name.clone()).collect(),
                })?;
                members.push(i);
            }
            if !stage.selector.is_empty() {
                for (i, c) in self.clusters.iter().enumerate() {
                    if matches(&stage.selector, &c.labels) && !members.contains(&i) {
                        members.push(i);
                    }
                }
            }
            if members.is_empty() {
                return Err(FleetError::EmptyStage {
                    stage: stage.name.clone(),
                });
            }
            members.sort_unstable();
            for &i in &members {
                if let Some(first) = owner.insert(i, stage.name.clone()) {
                    return Err(FleetError::OverlappingStages {
                        cluster: self.clusters[i].name.clone(),
                        first,
                        second: stage.name.clone(),
                    });
                }
            }
            stages.push(crate::validate::ResolvedStage {
                name: stage.name.clone(),
                clusters: members,
                max_parallel: stage.max_parallel,
                bake_time: stage.bake_time.map_or(Duration::ZERO, |d| d.0),
                gates: stage.gates.clone(),
                on_failure: stage.on_failure,
            });
        }
        if let Some(c) = self
            .clusters
            .iter()
            .enumerate()
            .find(|(i, _)| !owner.contains_key(i))
        {
            return Err(FleetError::Unstaged {
                cluster: c.1.name.clone(),
            });
        }
        let clusters = self
            .clusters
            .iter()
            .enumerate()
            .map(|(i, c)| self.resolve_cluster(i, c, file))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(ResolvedFleet {
            name: self.metadata.name.clone(),
            clusters,
            stages,
            timeout: self
                .rollout
                .timeout
                .map_or(Duration::from_secs(300), |d| d.0),
            gate_interval: self
                .rollout
                .gate_interval
                .map_or(Duration::from_secs(10), |d| d.0)
                .max(Duration::from_millis(100)),
        })
    }

    fn resolve_cluster(
        &self,
        i: usize,
        c: &ClusterEntry,
        file: &Path,
    ) -> Result<ResolvedCluster, FleetError> {
        let path = |p: &PathBuf| resolve_path(file, p);
        let r = &c.registry;
        if r.destination.is_empty() {
            return Err(FleetError::Invalid {
                at: format!("clusters[{i}].registry.destination"),
                problem: "write HOST[:PORT][/PREFIX]".into(),
            });
        }
        let host = registry_host(&r.destination);
        let mut registry_options = RegistryOptions {
            ca_files: r.ca.iter().map(path).collect(),
            ..RegistryOptions::default()
        };
        if r.insecure {
            registry_options.insecure.insert(host);
        }
        let mut password_env = None;
        if let Some(creds) = &r.credentials {
            registry_options.auth_file = creds.auth_file.as_ref().map(path);
            match (&creds.username, &creds.password_env) {
                (Some(user), Some(var)) => password_env = Some((user.clone(), var.clone())),
                (None, None) => {}
                _ => {
                    return Err(FleetError::Invalid {
                        at: format!("clusters[{i}].registry.credentials"),
                        problem: "`username` and `passwordEnv` go together".into(),
                    })
                }
            }
        }
        let mut values_files = Vec::new();
        let mut set = Vec::new();
        for g in &self.values {
            if matches(&g.selector, &c.labels) {
                values_files.extend(g.files.iter().map(path));
                set.extend(g.set.iter().cloned());
            }
        }
        values_files.extend(c.values.iter().map(path));
        set.extend(c.set.iter().cloned());
        Ok(ResolvedCluster {
            name: c.name.clone(),
            labels: c.labels.clone(),
            connect: ConnectOptions {
                kubeconfig: c.kubeconfig.as_ref().map(path),
                context: c.context.clone(),
            },
            site: SiteRequest {
                release: c.release.clone().or_else(|| self.defaults.release.clone()),
                namespace: c
                    .namespace
                    .clone()
                    .or_else(|| self.defaults.namespace.clone()),
                values_files,
                set,
                registry: Some(r.destination.clone()),
                flatten: r.flatten,
                registry_options,
                ..SiteRequest::default()
            },
            password_env,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fleet(stages: &str) -> Result<ResolvedFleet, FleetError> {
        let text = format!(
            "apiVersion: airlift.dev/v1alpha1\nkind: Fleet\nmetadata: {{name: t}}\nclusters:\n\
             - {{name: a, labels: {{tier: canary}}, registry: {{destination: r.example/x}}}}\n\
             - {{name: b, labels: {{tier: prod}}, registry: {{destination: r.example/x}}}}\n\
             - {{name: c, labels: {{tier: prod}}, registry: {{destination: r.example/x}}}}\n\
             rollout:\n  stages:\n{stages}"
        );
        let path = Path::new("/etc/fleet.yaml");
        Fleet::parse(&text, path)?.resolve(path)
    }

    #[test]
    fn stages_resolve_by_label_and_name() {
        let f = fleet(
            "  - {name: canary, selector: {tier: canary}}\n  - {name: prod, clusters: [b, c], maxParallel: 2}\n",
        )
        .expect("valid");
        assert_eq!(f.stages[0].clusters, vec![0]);
        assert_eq!(f.stages[1].clusters, vec![1, 2]);
        assert_eq!(f.stages[1].max_parallel, 2);
        assert!(f.stages[0].gates.drift, "drift is a gate by default");
    }

    #[test]
    fn every_mistake_has_its_named_error() {
        let unknown = fleet("  - {name: s, clusters: [a, b, c, z]}\n").unwrap_err();
        assert!(
            matches!(&unknown, FleetError::UnknownCluster { cluster, .. } if cluster == "z"),
            "{unknown}"
        );
        let overlap =
            fleet("  - {name: one, clusters: [a, b]}\n  - {name: two, selector: {tier: prod}}\n")
                .unwrap_err();
        assert!(
            matches!(&overlap, FleetError::OverlappingStages { cluster, first, second }
                if cluster == "b" && first == "one" && second == "two"),
            "{overlap}"
        );
        let unstaged = fleet("  - {name: one, selector: {tier: prod}}\n").unwrap_err();
        assert!(
            matches!(&unstaged, FleetError::Unstaged { cluster } if cluster == "a"),
            "{unstaged}"
        );
        let empty =
            fleet("  - {name: all, clusters: [a, b, c]}\n  - {name: none, selector: {tier: x}}\n")
                .unwrap_err();
        assert!(matches!(empty, FleetError::EmptyStage { .. }), "{empty}");
        let zero = fleet("  - {name: all, clusters: [a, b, c], maxParallel: 0}\n").unwrap_err();
        assert!(matches!(zero, FleetError::Invalid { .. }), "{zero}");
    }

    #[test]
    fn a_password_in_the_file_is_refused_naming_where() {
        let text = "apiVersion: airlift.dev/v1alpha1\nkind: Fleet\nmetadata: {name: t}\n\
                    clusters:\n- name: a\n  registry:\n    destination: r.example\n    \
                    credentials: {username: u, password: hunter2}\n\
                    rollout: {stages: [{name: s, clusters: [a]}]}\n";
        let err = Fleet::parse(text, Path::new("f.yaml")).unwrap_err();
        match &err {
            FleetError::PasswordInFile { at, .. } => {
                assert_eq!(at, "clusters[0].registry.credentials.password")
            }
            other => panic!("{other}"),
        }
        assert!(!err.to_string().contains("hunter2"), "{err}");
    }

    #[test]
    fn group_values_come_before_the_clusters_own() {
        let text = "apiVersion: airlift.dev/v1alpha1\nkind: Fleet\nmetadata: {name: t}\n\
                    clusters:\n- {name: a, labels: {provider: aws}, registry: {destination: r.example/p, insecure: true}, values: [a.yaml], set: [web.color=red], kubeconfig: kc/a.yaml}\n\
                    values:\n- {selector: {provider: aws}, files: [aws.yaml], set: [web.replicas=2]}\n\
                    rollout: {stages: [{name: s, clusters: [a]}]}\n";
        let path = Path::new("/srv/fleet/fleet.yaml");
        let f = Fleet::parse(text, path).unwrap().resolve(path).unwrap();
        let site = f.clusters[0].site().unwrap();
        assert_eq!(
            site.values_files,
            vec![
                PathBuf::from("/srv/fleet/aws.yaml"),
                PathBuf::from("/srv/fleet/a.yaml")
            ]
        );
        assert_eq!(site.set, vec!["web.replicas=2", "web.color=red"]);
        assert!(site.registry_options.insecure.contains("r.example"));
        assert_eq!(
            f.clusters[0].connect.kubeconfig,
            Some(PathBuf::from("/srv/fleet/kc/a.yaml"))
        );
    }
}
