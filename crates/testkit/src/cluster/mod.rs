//! The test cluster: a small HTTPS server on loopback that speaks the real Kubernetes API for
//! what Airlift's installer uses, with its own CA, a real kubeconfig, and a test controller that
//! marks workloads ready (or failed, on demand) the way kubelets and controllers would.
//!
//! ```no_run
//! use airlift_testkit::cluster::{ClusterOptions, FailureMode, TestCluster};
//! let cluster = TestCluster::start(ClusterOptions::default().with_nodes(&["amd64", "arm64"]))?;
//! cluster.fail_image("broken", FailureMode::ImagePullBackOff);
//! println!("KUBECONFIG={}", cluster.kubeconfig_path().display());
//! # Ok::<(), airlift_testkit::cluster::ClusterError>(())
//! ```
//!
//! See `docs/test-cluster.md` for where it differs from a real apiserver.

mod apply;
mod controller;
mod defaults;
mod immutable;
mod kubeconfig;
mod kubelet;
mod logs;
mod meta;
mod openapi;
mod platforms;
mod puller;
mod rbac;
mod resolve;
mod resources;
mod scale;
mod server;
mod state;
mod store;
mod table;
mod tls;
mod watch;
mod workloads;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use serde_json::Value;

pub use kubeconfig::CONTEXT_NAME;
pub use platforms::PlatformPreset;
use state::{FailTarget, State};

/// Errors starting the test cluster.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// Generating the CA or serving certificate failed.
    #[error("failed to generate the test cluster's certificates: {0}")]
    Certificate(String),
    /// Rendering the kubeconfig failed.
    #[error("failed to render the kubeconfig: {0}")]
    Kubeconfig(String),
    /// A file could not be written or read.
    #[error("failed to access `{}`", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The listen address could not be bound.
    #[error("failed to listen on {addr}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The server thread could not be started.
    #[error("failed to start the test cluster's server thread")]
    Runtime(#[source] std::io::Error),
    /// A registry CA given to [`ClusterOptions::registry_ca`] is not a PEM certificate, or the
    /// kubelet's HTTP client could not be built.
    #[error("failed to set up the test kubelet's registry client: {0}")]
    RegistryClient(String),
    /// The server thread exited before it was ready.
    #[error("the test cluster's server thread exited before it was ready")]
    ThreadExited,
}

/// A node of the test cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeSpec {
    /// Node name.
    pub name: String,
    /// `kubernetes.io/arch` and `status.nodeInfo.architecture`, e.g. `amd64`.
    pub arch: String,
    /// Extra labels (provider, topology), over the standard `kubernetes.io/*` ones.
    pub labels: std::collections::BTreeMap<String, String>,
    /// `spec.providerID`, e.g. `aws:///us-west-2a/i-0a1b2c3d4e5f60718`.
    pub provider_id: Option<String>,
}

/// How the test controller fails a workload's Pods.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureMode {
    /// Containers wait with reason `ImagePullBackOff` (Events `Failed` and `BackOff`).
    ImagePullBackOff,
    /// Containers restart with reason `CrashLoopBackOff` (Event `BackOff`).
    CrashLoopBackOff,
    /// Pods stay Pending with `PodScheduled=False`, reason `Unschedulable` (Event `FailedScheduling`).
    Unschedulable,
}

/// A rule that denies requests (and SelfSubjectAccessReviews) for RBAC-forbidden tests.
/// `None` fields match anything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DenyRule {
    /// Verb, e.g. `create`, `patch`, `get`, `list`, `delete`.
    pub verb: Option<String>,
    /// API group (`""` for core).
    pub group: Option<String>,
    /// Resource (plural), e.g. `clusterroles`.
    pub resource: Option<String>,
    /// Namespace (`""` for cluster scope).
    pub namespace: Option<String>,
}

impl DenyRule {
    /// Denies `verb` on `group/resource` in every namespace.
    pub fn new(verb: &str, group: &str, resource: &str) -> Self {
        DenyRule {
            verb: Some(verb.into()),
            group: Some(group.into()),
            resource: Some(resource.into()),
            namespace: None,
        }
    }

    fn matches(&self, verb: &str, group: &str, resource: &str, ns: &str) -> bool {
        let m = |want: &Option<String>, got: &str| want.as_deref().is_none_or(|w| w == got);
        m(&self.verb, verb)
            && m(&self.group, group)
            && m(&self.resource, resource)
            && m(&self.namespace, ns)
    }
}

/// One request the server received (for assertions such as "nothing was deleted").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestRecord {
    /// HTTP method.
    pub method: String,
    /// Path without the query.
    pub path: String,
    /// The raw query string.
    pub query: String,
    /// Response status code.
    pub status: u16,
}

/// Options for [`TestCluster::start`].
#[derive(Debug, Clone)]
pub struct ClusterOptions {
    /// Listen address; the default `127.0.0.1:0` picks a free port.
    pub listen: SocketAddr,
    /// Kubernetes version reported by `/version`, e.g. `1.30.2`.
    pub version: String,
    /// Nodes; the default is one `amd64` node.
    pub nodes: Vec<NodeSpec>,
    /// How long Pods take to become ready.
    pub ready_delay: Duration,
    /// Where to write the kubeconfig; the default is a file in a temporary directory.
    pub kubeconfig_out: Option<PathBuf>,
    /// Print one line per request (`METHOD path?query -> status`) to stderr.
    pub log_requests: bool,
    /// Extra users (besides the all-powerful default one), each with its own token and a
    /// kubeconfig context of the same name; what they may do comes from RBAC objects.
    pub users: Vec<String>,
    /// The StorageClasses seeded at start (bodies without apiVersion/kind); `None` seeds one
    /// default class `standard` (`rancher.io/local-path`), like kind.
    pub storage_classes: Option<Vec<Value>>,
    /// The IngressClasses seeded at start (bodies without apiVersion/kind).
    pub ingress_classes: Vec<Value>,
    /// The kubelet resolves every container image against its registry before the container
    /// runs (see [`ClusterOptions::pull_images`]); off by default.
    pub pull_images: bool,
    /// Registry hosts (`127.0.0.1:5000`) the nodes reach over plain HTTP, like containerd's
    /// insecure registries.
    pub insecure_registries: Vec<String>,
    /// Extra CA certificates (PEM) the nodes trust for registries, besides the system roots.
    pub registry_cas: Vec<String>,
}

impl Default for ClusterOptions {
    fn default() -> Self {
        ClusterOptions {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            version: "1.30.2".into(),
            nodes: vec![NodeSpec {
                name: "node-1".into(),
                arch: "amd64".into(),
                labels: Default::default(),
                provider_id: None,
            }],
            ready_delay: Duration::from_millis(300),
            kubeconfig_out: None,
            log_requests: false,
            users: Vec::new(),
            storage_classes: None,
            ingress_classes: Vec::new(),
            pull_images: false,
            insecure_registries: Vec::new(),
            registry_cas: Vec::new(),
        }
    }
}

impl ClusterOptions {
    /// Sets the reported Kubernetes version (`1.30.2` or `v1.30.2`).
    pub fn with_version(mut self, version: &str) -> Self {
        self.version = version.trim_start_matches('v').to_string();
        self
    }

    /// One node per architecture, named `node-1`, `node-2`, ...
    pub fn with_nodes(mut self, arches: &[&str]) -> Self {
        self.nodes = arches
            .iter()
            .enumerate()
            .map(|(i, a)| NodeSpec {
                name: format!("node-{}", i + 1),
                arch: a.to_string(),
                labels: Default::default(),
                provider_id: None,
            })
            .collect();
        self
    }

    /// Sets how long Pods take to become ready.
    pub fn with_ready_delay(mut self, delay: Duration) -> Self {
        self.ready_delay = delay;
        self
    }

    /// Adds a user with its own bearer token and a kubeconfig context named `name`. It may do
    /// nothing until Roles/ClusterRoles are bound to it (see [`TestCluster::grant`]), exactly as
    /// the RBAC authorizer decides on a real cluster.
    pub fn with_user(mut self, name: &str) -> Self {
        self.users.push(name.to_string());
        self
    }

    /// Makes the kubelet pull images, as a real one does, up to the manifests: each container
    /// image is resolved against its registry at `https://HOST/v2/` with the Pod's
    /// `imagePullSecrets` (basic auth or the Docker token flow), an index gives the entry for
    /// the node's architecture, and the config and layer blobs must exist (layers are not
    /// downloaded; nothing runs). A container runs only once its image resolved, and reports
    /// `imageID` `repo@<resolved digest>`; a failure (not found, 401/403, connection or TLS
    /// error, no platform match) leaves the Pod in `ImagePullBackOff` with the kubelet's
    /// Events, retried every second. The failure knobs and [`TestCluster::pull_digest`] still
    /// win.
    pub fn pull_images(mut self) -> Self {
        self.pull_images = true;
        self
    }

    /// Lets the nodes reach the registry `host` (`127.0.0.1:PORT`) over plain HTTP, as a
    /// containerd configured with it as an insecure registry does. Implies
    /// [`ClusterOptions::pull_images`].
    pub fn insecure_registry(mut self, host: &str) -> Self {
        self.pull_images = true;
        self.insecure_registries.push(host.to_string());
        self
    }

    /// Makes the nodes trust `pem` (a CA certificate) for registries, as a containerd with the
    /// CA in its `certs.d` does. Implies [`ClusterOptions::pull_images`].
    pub fn registry_ca(mut self, pem: &str) -> Self {
        self.pull_images = true;
        self.registry_cas.push(pem.to_string());
        self
    }

    /// Writes the kubeconfig to `path` instead of a temporary directory.
    pub fn with_kubeconfig_out(mut self, path: impl Into<PathBuf>) -> Self {
        self.kubeconfig_out = Some(path.into());
        self
    }
}

/// A running test cluster; it stops when dropped.
pub struct TestCluster {
    url: String,
    addr: SocketAddr,
    kubeconfig: PathBuf,
    ca_pem: String,
    token: String,
    users: Vec<(String, String)>,
    state: Arc<Mutex<State>>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
    _dir: Option<tempfile::TempDir>,
}

impl std::fmt::Debug for TestCluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestCluster")
            .field("url", &self.url)
            .field("kubeconfig", &self.kubeconfig)
            .field("token", &"<redacted>")
            .finish()
    }
}

impl TestCluster {
    /// Generates a CA, starts the server on its own thread, seeds the default namespaces, nodes
    /// and storage class, and writes the kubeconfig.
    pub fn start(opts: ClusterOptions) -> Result<TestCluster, ClusterError> {
        let tls = tls::generate()?;
        let token: String = meta::random_suffix(40);
        let std_listener =
            std::net::TcpListener::bind(opts.listen).map_err(|source| ClusterError::Bind {
                addr: opts.listen,
                source,
            })?;
        std_listener
            .set_nonblocking(true)
            .map_err(|source| ClusterError::Bind {
                addr: opts.listen,
                source,
            })?;
        let addr = std_listener
            .local_addr()
            .map_err(|source| ClusterError::Bind {
                addr: opts.listen,
                source,
            })?;
        let url = format!("https://{addr}");

        let state = Arc::new(Mutex::new(State::new(
            opts.version.clone(),
            opts.nodes.clone(),
            opts.ready_delay,
        )));
        let resolver = if opts.pull_images {
            Some(registry_resolver(&opts)?)
        } else {
            None
        };
        {
            let mut st = lock(&state);
            st.root_ca = tls.ca_pem.clone();
            st.pull_images = opts.pull_images;
            controller::seed(&mut st, opts.storage_classes.clone(), &opts.ingress_classes);
        }

        let (dir, kubeconfig) = match &opts.kubeconfig_out {
            Some(p) => (None, p.clone()),
            None => {
                let d = tempfile::tempdir().map_err(|source| ClusterError::Io {
                    path: std::env::temp_dir(),
                    source,
                })?;
                let p = d.path().join("kubeconfig");
                (Some(d), p)
            }
        };
        let users: Vec<(String, String)> = opts
            .users
            .iter()
            .map(|name| (meta::random_suffix(40), name.clone()))
            .collect();
        kubeconfig::write(
            &kubeconfig,
            &kubeconfig::render(&url, &tls.ca_pem, &token, &users)?,
        )?;

        let (tx, rx) = tokio::sync::oneshot::channel();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let server = server::Server {
            state: state.clone(),
            token: token.clone(),
            users: users.clone(),
            address: addr.to_string(),
            log: opts.log_requests,
        };
        let config = tls.config.clone();
        let thread = std::thread::Builder::new()
            .name("airlift-test-cluster".into())
            .spawn(move || {
                let rt = match tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(_) => return,
                };
                rt.block_on(async move {
                    let Ok(listener) = tokio::net::TcpListener::from_std(std_listener) else {
                        return;
                    };
                    let _ = ready_tx.send(());
                    let ctl = tokio::spawn(controller::run(server.state.clone()));
                    let pull = resolver.map(|r| tokio::spawn(puller::run(server.state.clone(), r)));
                    server.serve(listener, config, rx).await;
                    ctl.abort();
                    if let Some(p) = pull {
                        p.abort();
                    }
                });
            })
            .map_err(ClusterError::Runtime)?;
        ready_rx.recv().map_err(|_| ClusterError::ThreadExited)?;
        Ok(TestCluster {
            url,
            addr,
            kubeconfig,
            ca_pem: tls.ca_pem,
            token,
            users,
            state,
            shutdown: Some(tx),
            thread: Some(thread),
            _dir: dir,
        })
    }

    /// `https://127.0.0.1:PORT`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The kubeconfig (cluster CA data, server URL, bearer-token user), mode 0600.
    pub fn kubeconfig_path(&self) -> &Path {
        &self.kubeconfig
    }

    /// The cluster CA certificate (PEM).
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// The bearer token the server accepts (a test credential; never printed by `Debug`).
    pub fn token(&self) -> &str {
        &self.token
    }

    /// The bearer token of an extra user (see [`ClusterOptions::with_user`]).
    pub fn user_token(&self, user: &str) -> Option<&str> {
        self.users
            .iter()
            .find(|(_, n)| n == user)
            .map(|(t, _)| t.as_str())
    }

    /// Grants `user` the RBAC `rules` (a JSON array of PolicyRules) in `namespace`, or
    /// cluster-wide when `None`, by storing a Role (ClusterRole) and a RoleBinding
    /// (ClusterRoleBinding) named `grant-USER-N`, as a cluster admin would.
    pub fn grant(&self, user: &str, namespace: Option<&str>, rules: Value) {
        let mut st = lock(&self.state);
        let n = st.store.current_rv();
        let name = format!("grant-{user}-{n}");
        let (role, binding, kind, ns) = match namespace {
            Some(ns) => ("roles", "rolebindings", "Role", ns),
            None => ("clusterroles", "clusterrolebindings", "ClusterRole", ""),
        };
        let g = "rbac.authorization.k8s.io";
        let mut md = serde_json::json!({"name": name});
        if !ns.is_empty() {
            md["namespace"] = ns.into();
        }
        controller::create(
            &mut st,
            g,
            role,
            ns,
            serde_json::json!({"metadata": md, "rules": rules}),
        );
        controller::create(
            &mut st,
            g,
            binding,
            ns,
            serde_json::json!({"metadata": md,
                "roleRef": {"apiGroup": g, "kind": kind, "name": name},
                "subjects": [{"kind": "User", "apiGroup": g, "name": user}]}),
        );
    }

    /// Fails the workload called `name` (in any namespace) in the given way.
    pub fn fail_workload(&self, name: &str, mode: FailureMode) {
        lock(&self.state)
            .failures
            .push((FailTarget::Workload(None, name.into()), mode));
    }

    /// Fails the workload `namespace/name` in the given way.
    pub fn fail_workload_in(&self, namespace: &str, name: &str, mode: FailureMode) {
        lock(&self.state).failures.push((
            FailTarget::Workload(Some(namespace.into()), name.into()),
            mode,
        ));
    }

    /// Fails every Pod with a container image containing `substring`.
    pub fn fail_image(&self, substring: &str, mode: FailureMode) {
        lock(&self.state)
            .failures
            .push((FailTarget::Image(substring.into()), mode));
    }

    /// Removes every failure knob: failing Pods recover.
    pub fn clear_failures(&self) {
        lock(&self.state).failures.clear();
    }

    /// Makes the test kubelet report `digest` as the `imageID` of containers running `image`
    /// (what a real kubelet reports after pulling it). Without it, the imageID holds a digest
    /// made from the image string.
    pub fn pull_digest(&self, image: &str, digest: &str) {
        lock(&self.state)
            .image_digests
            .insert(image.to_string(), digest.to_string());
    }

    /// Denies requests (and access reviews) matching `rule` with 403 Forbidden.
    pub fn deny(&self, rule: DenyRule) {
        lock(&self.state).denials.push(rule);
    }

    /// Removes every deny rule.
    pub fn clear_denials(&self) {
        lock(&self.state).denials.clear();
    }

    /// Changes the version `/version` reports.
    pub fn set_version(&self, version: &str) {
        lock(&self.state).version = version.trim_start_matches('v').to_string();
    }

    /// Every request received so far.
    pub fn requests(&self) -> Vec<RequestRecord> {
        lock(&self.state).requests.clone()
    }

    /// A stored object, read directly (no HTTP), e.g. `object("apps", "deployments", "ns", "web")`.
    pub fn object(&self, group: &str, plural: &str, namespace: &str, name: &str) -> Option<Value> {
        lock(&self.state)
            .store
            .get(group, plural, namespace, name)
            .cloned()
    }

    /// Stops the server and waits for its thread.
    pub fn stop(mut self) {
        self.shutdown_now();
    }

    fn shutdown_now(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for TestCluster {
    fn drop(&mut self) {
        self.shutdown_now();
    }
}

/// The nodes' registry client: system roots plus the configured CAs, short timeouts.
fn registry_resolver(opts: &ClusterOptions) -> Result<resolve::Resolver, ClusterError> {
    let mut builder = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(2))
        .timeout(puller::REQUEST_TIMEOUT);
    for pem in &opts.registry_cas {
        let cert = reqwest::Certificate::from_pem(pem.as_bytes())
            .map_err(|e| ClusterError::RegistryClient(e.to_string()))?;
        builder = builder.add_root_certificate(cert);
    }
    let client = builder
        .build()
        .map_err(|e| ClusterError::RegistryClient(e.to_string()))?;
    Ok(resolve::Resolver {
        client,
        insecure: opts.insecure_registries.clone(),
    })
}

/// Locks the state, recovering from a poisoned lock (a panicked handler leaves consistent data).
pub(crate) fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    state.lock().unwrap_or_else(|e| e.into_inner())
}
