//! Connecting to the customer's cluster: the kubeconfig from `--kubeconfig`, `KUBECONFIG` or
//! `~/.kube/config`, an optional context, and errors that name the context and the server.

use std::fmt;
use std::path::{Path, PathBuf};

use kube::config::{KubeConfigOptions, Kubeconfig, KubeconfigError};
use kube::{Client, Config};

/// Where to find the cluster.
#[derive(Debug, Clone, Default)]
pub struct ConnectOptions {
    /// An explicit kubeconfig file (`--kubeconfig`); otherwise `KUBECONFIG`, then
    /// `~/.kube/config`.
    pub kubeconfig: Option<PathBuf>,
    /// The context to use (`--context`); otherwise the kubeconfig's current context.
    pub context: Option<String>,
}

/// Which cluster a [`Cluster`] talks to, for messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterTarget {
    /// The kubeconfig context.
    pub context: String,
    /// The API server URL.
    pub server: String,
}

impl fmt::Display for ClusterTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "context `{}` (server {})", self.context, self.server)
    }
}

/// Errors from finding, reading or using a kubeconfig.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// No kubeconfig was given and none exists at the default place.
    #[error("no kubeconfig found: neither --kubeconfig, KUBECONFIG nor `{default}` gives one")]
    NoKubeconfig {
        /// The default path that was tried.
        default: String,
    },
    /// The kubeconfig could not be read or parsed.
    #[error("failed to read kubeconfig `{source_desc}`")]
    Read {
        /// The file(s) it came from.
        source_desc: String,
        /// What went wrong.
        #[source]
        source: KubeconfigError,
    },
    /// No context was given and the kubeconfig has no current context.
    #[error("kubeconfig `{source_desc}` has no current-context and no --context was given")]
    NoContext {
        /// The file(s) it came from.
        source_desc: String,
        /// The contexts it has.
        available: Vec<String>,
    },
    /// The requested context is not in the kubeconfig.
    #[error("context `{context}` is not in kubeconfig `{source_desc}`")]
    UnknownContext {
        /// The context asked for.
        context: String,
        /// The file(s) it came from.
        source_desc: String,
        /// The contexts it has.
        available: Vec<String>,
    },
    /// The context's cluster, user or certificates are unusable.
    #[error("cannot use context `{context}` (server {server}) from kubeconfig `{source_desc}`")]
    Config {
        /// The context.
        context: String,
        /// The server URL, when known.
        server: String,
        /// The file(s) it came from.
        source_desc: String,
        /// What went wrong.
        #[source]
        source: KubeconfigError,
    },
    /// The HTTP client could not be built (TLS setup).
    #[error("cannot build a client for {target}")]
    Client {
        /// The cluster.
        target: ClusterTarget,
        /// What went wrong.
        #[source]
        source: crate::status::ServerError,
    },
    /// The API server did not answer `/version`.
    #[error("cannot reach the Kubernetes API server of {target}")]
    Unreachable {
        /// The cluster.
        target: ClusterTarget,
        /// What went wrong.
        #[source]
        source: crate::status::ServerError,
    },
}

impl ConnectError {
    /// How the operator can fix it.
    pub fn hint(&self) -> String {
        match self {
            Self::NoKubeconfig { .. } => {
                "pass --kubeconfig PATH or set KUBECONFIG to the cluster's kubeconfig".into()
            }
            Self::Read { .. } => "check that the file exists, is readable and is a kubeconfig \
                                  (`kubectl config view --kubeconfig FILE`)"
                .into(),
            Self::NoContext { available, .. } | Self::UnknownContext { available, .. } => {
                if available.is_empty() {
                    "the kubeconfig defines no contexts".into()
                } else {
                    format!("pass --context with one of: {}", available.join(", "))
                }
            }
            Self::Config { .. } => "check the context's cluster, user and certificate entries \
                 (`kubectl config view --minify --context CONTEXT`)"
                .into(),
            Self::Client { .. } => "check the certificate authority and client certificate \
                                    files the kubeconfig names"
                .into(),
            Self::Unreachable { source, .. } => api_hint(source.inner()),
        }
    }
}

/// The kind of failure of an API call outside preflight: the cluster refused or was unreachable.
pub fn api_exit_kind(_err: &kube::Error) -> airlift_bundle::ExitKind {
    airlift_bundle::ExitKind::Cluster
}

/// A hint for a failed API call, by HTTP status or transport failure.
pub fn api_hint(err: &kube::Error) -> String {
    match err {
        kube::Error::Api(status) if status.code == 401 => {
            "the cluster rejected the credentials: refresh them (log in again) or pick another \
             --context"
                .into()
        }
        kube::Error::Api(status) if status.code == 403 && namespace_terminating(status) => {
            let ns = terminating_namespace_name(&status.message)
                .map_or_else(|| "NAMESPACE".to_string(), str::to_string);
            format!(
                "the namespace is being deleted and takes no new objects until it is gone: wait \
                 until `kubectl get namespace {ns}` no longer finds it (`-o yaml` shows the \
                 finalizers it waits for), then run the command again"
            )
        }
        kube::Error::Api(status) if status.code == 403 => {
            "the user lacks permission: ask a cluster admin for the RBAC rules the install needs \
             (the preflight report lists each one)"
                .into()
        }
        _ => {
            let chain = error_chain(err);
            if chain.contains("certificate") || chain.contains("tls") || chain.contains("TLS") {
                "TLS failed: check that the kubeconfig's certificate-authority matches the API \
                 server's certificate"
                    .into()
            } else {
                "check that the API server is running and reachable from here \
                 (`kubectl --context CONTEXT version`)"
                    .into()
            }
        }
    }
}

/// True for the API server's refusal of new content in a namespace being deleted: a 403 whose
/// `details.causes` carry the reason `NamespaceTerminating` (the NamespaceLifecycle admission
/// plugin's `v1.NamespaceTerminatingCause`).
fn namespace_terminating(status: &kube::core::Status) -> bool {
    status
        .details
        .as_ref()
        .is_some_and(|d| d.causes.iter().any(|c| c.reason == "NamespaceTerminating"))
}

/// The namespace named in the server's "unable to create new content in namespace NAME because
/// it is being terminated", when it is a valid namespace name (a DNS label, so nothing from the
/// server that is not one is printed).
fn terminating_namespace_name(message: &str) -> Option<&str> {
    let name = message.split("in namespace ").nth(1)?.split(' ').next()?;
    let label = !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-');
    label.then_some(name)
}

fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut out = err.to_string();
    let mut cur = err.source();
    while let Some(e) = cur {
        out.push_str(": ");
        out.push_str(&e.to_string());
        cur = e.source();
    }
    out
}

/// A connection to one cluster: a kube [`Client`] and the context it came from.
#[derive(Clone)]
pub struct Cluster {
    client: Client,
    target: ClusterTarget,
}

impl fmt::Debug for Cluster {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cluster")
            .field("target", &self.target)
            .finish_non_exhaustive()
    }
}

impl Cluster {
    /// Loads the kubeconfig, picks the context and checks the API server answers `/version`.
    pub async fn connect(options: &ConnectOptions) -> Result<Self, ConnectError> {
        let (kubeconfig, source_desc) = load_kubeconfig(options.kubeconfig.as_deref())?;
        let available: Vec<String> = kubeconfig.contexts.iter().map(|c| c.name.clone()).collect();
        let context = match options
            .context
            .clone()
            .or_else(|| kubeconfig.current_context.clone())
        {
            Some(c) => c,
            None => {
                return Err(ConnectError::NoContext {
                    source_desc,
                    available,
                })
            }
        };
        let Some(named) = kubeconfig.contexts.iter().find(|c| c.name == context) else {
            return Err(ConnectError::UnknownContext {
                context,
                source_desc,
                available,
            });
        };
        let cluster_name = named.context.as_ref().map(|c| c.cluster.clone());
        let server = kubeconfig
            .clusters
            .iter()
            .find(|c| Some(&c.name) == cluster_name.as_ref())
            .and_then(|c| c.cluster.as_ref())
            .and_then(|c| c.server.clone())
            .unwrap_or_else(|| "<unknown>".into());
        let kube_options = KubeConfigOptions {
            context: Some(context.clone()),
            cluster: None,
            user: None,
        };
        let config = Config::from_custom_kubeconfig(kubeconfig, &kube_options)
            .await
            .map_err(|source| ConnectError::Config {
                context: context.clone(),
                server: server.clone(),
                source_desc: source_desc.clone(),
                source,
            })?;
        let target = ClusterTarget { context, server };
        let client = Client::try_from(config).map_err(|source| ConnectError::Client {
            target: target.clone(),
            source: source.into(),
        })?;
        let cluster = Self { client, target };
        cluster
            .client
            .apiserver_version()
            .await
            .map_err(|source| ConnectError::Unreachable {
                target: cluster.target.clone(),
                source: source.into(),
            })?;
        Ok(cluster)
    }

    /// The kube client.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The context and server, for messages.
    pub fn target(&self) -> &ClusterTarget {
        &self.target
    }
}

/// Reads the kubeconfig: `explicit`, else `KUBECONFIG` (a list of files, merged), else
/// `~/.kube/config`. Returns it with a description of where it came from.
fn load_kubeconfig(explicit: Option<&Path>) -> Result<(Kubeconfig, String), ConnectError> {
    if let Some(path) = explicit {
        let desc = path.display().to_string();
        return Kubeconfig::read_from(path)
            .map(|k| (k, desc.clone()))
            .map_err(|source| ConnectError::Read {
                source_desc: desc,
                source,
            });
    }
    if let Some(value) = std::env::var_os("KUBECONFIG").filter(|v| !v.is_empty()) {
        let desc = format!("KUBECONFIG={}", value.to_string_lossy());
        return match Kubeconfig::from_env() {
            Ok(Some(k)) => Ok((k, desc)),
            Ok(None) => Err(ConnectError::NoKubeconfig {
                default: "~/.kube/config".into(),
            }),
            Err(source) => Err(ConnectError::Read {
                source_desc: desc,
                source,
            }),
        };
    }
    let home = std::env::var_os("HOME").map(PathBuf::from);
    let Some(path) = home.map(|h| h.join(".kube").join("config")) else {
        return Err(ConnectError::NoKubeconfig {
            default: "~/.kube/config".into(),
        });
    };
    if !path.exists() {
        return Err(ConnectError::NoKubeconfig {
            default: path.display().to_string(),
        });
    }
    let desc = path.display().to_string();
    Kubeconfig::read_from(&path)
        .map(|k| (k, desc.clone()))
        .map_err(|source| ConnectError::Read {
            source_desc: desc,
            source,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn forbidden(body: serde_json::Value) -> kube::Error {
        kube::Error::Api(Box::new(serde_json::from_value(body).unwrap()))
    }

    #[test]
    fn a_namespace_being_deleted_is_not_called_a_permission_problem() {
        // The NamespaceLifecycle admission plugin's answer, as a real API server sends it.
        let terminating = forbidden(serde_json::json!({
            "kind": "Status", "apiVersion": "v1", "status": "Failure", "code": 403,
            "reason": "Forbidden",
            "message": "persistentvolumeclaims \"data\" is forbidden: unable to create new content in namespace shop-1 because it is being terminated",
            "details": {"name": "data", "kind": "persistentvolumeclaims",
                "causes": [{"reason": "NamespaceTerminating",
                    "message": "namespace shop-1 is being terminated",
                    "field": "metadata.namespace"}]}
        }));
        let hint = api_hint(&terminating);
        assert!(hint.contains("being deleted"), "{hint}");
        assert!(hint.contains("kubectl get namespace shop-1"), "{hint}");
        assert!(!hint.contains("permission"), "{hint}");

        // A name that is not a namespace name is not printed.
        let odd = forbidden(serde_json::json!({
            "code": 403, "message": "unable to create new content in namespace \u{1b}[2Jx because it is being terminated",
            "details": {"causes": [{"reason": "NamespaceTerminating"}]}
        }));
        let hint = api_hint(&odd);
        assert!(hint.contains("kubectl get namespace NAMESPACE"), "{hint}");

        // Any other 403 is RBAC.
        let rbac = forbidden(serde_json::json!({
            "code": 403, "reason": "Forbidden",
            "message": "secrets is forbidden: User \"ci\" cannot create resource \"secrets\" in API group \"\" in the namespace \"shop-1\""
        }));
        assert!(api_hint(&rbac).contains("lacks permission"));
    }

    const TWO_CONTEXTS: &str = r#"
apiVersion: v1
kind: Config
clusters:
- name: a
  cluster:
    server: https://127.0.0.1:1
contexts:
- name: one
  context:
    cluster: a
    user: u
- name: two
  context:
    cluster: a
    user: u
users:
- name: u
  user:
    token: abc
"#;

    #[tokio::test]
    async fn unknown_context_lists_the_available_ones() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kubeconfig");
        std::fs::write(&path, TWO_CONTEXTS).unwrap();
        let err = Cluster::connect(&ConnectOptions {
            kubeconfig: Some(path.clone()),
            context: Some("three".into()),
        })
        .await
        .unwrap_err();
        assert!(err.to_string().contains("context `three`"), "{err}");
        assert!(err.hint().contains("one, two"), "{}", err.hint());

        let err = Cluster::connect(&ConnectOptions {
            kubeconfig: Some(path),
            context: None,
        })
        .await
        .unwrap_err();
        assert!(matches!(err, ConnectError::NoContext { .. }), "{err}");
    }

    #[tokio::test]
    async fn missing_file_names_the_path() {
        let err = Cluster::connect(&ConnectOptions {
            kubeconfig: Some("/nonexistent/airlift/kubeconfig".into()),
            context: None,
        })
        .await
        .unwrap_err();
        assert!(
            err.to_string().contains("/nonexistent/airlift/kubeconfig"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn unreachable_server_names_context_and_server() {
        // Port 1 on loopback: nothing listens, the connection is refused at once.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kubeconfig");
        std::fs::write(&path, TWO_CONTEXTS).unwrap();
        let err = Cluster::connect(&ConnectOptions {
            kubeconfig: Some(path),
            context: Some("two".into()),
        })
        .await
        .unwrap_err();
        let text = err.to_string();
        assert!(matches!(err, ConnectError::Unreachable { .. }), "{text}");
        assert!(text.contains("context `two`"), "{text}");
        assert!(text.contains("https://127.0.0.1:1"), "{text}");
        assert!(err.hint().contains("reachable"), "{}", err.hint());
    }
}
