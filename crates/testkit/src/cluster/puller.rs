//! The kubelet's image pulls (with `ClusterOptions::pull_images`): a task next to the controller
//! that, each tick, collects under the state lock the images scheduled Pods need (with their
//! node's architecture and pull-secret credential), releases the lock, resolves them against
//! their registries with bounded concurrency (see `resolve.rs`), and records the results. The
//! kubelet (`kubelet::sync_pod`) then reads them: not yet resolved → `ContainerCreating`,
//! failed → `ImagePullBackOff`, resolved → running with the real `imageID`. Failures are
//! retried every [`PULL_RETRY`], so an image pushed later eventually runs.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use airlift_bundle::reference::ImageRef;
use base64::Engine;
use futures::StreamExt;
use serde_json::Value;
use sha2::Digest as _;

use super::kubelet::failure_for;
use super::lock;
use super::resolve::{self, Credential, Resolver};
use super::state::State;

/// How often the puller looks for work.
const TICK: Duration = Duration::from_millis(100);
/// How long after a failed pull the kubelet tries again (a real one backs off up to 5 minutes).
pub(crate) const PULL_RETRY: Duration = Duration::from_secs(1);
/// The longest one registry request may take.
pub(crate) const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// How many images are resolved at once.
const CONCURRENCY: usize = 4;

/// What a pull result is recorded under: the image as written, the node's architecture, and a
/// hash of the credential used (so a fixed pull secret pulls again).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct PullKey {
    image: String,
    arch: String,
    auth: Option<String>,
}

/// The outcome of the last pull of one [`PullKey`].
#[derive(Debug, Clone)]
pub(crate) struct PullRecord {
    /// The digest containerd would report, or the kubelet's `Failed` Event message.
    pub result: Result<String, String>,
    /// When it was recorded.
    pub at: Instant,
}

/// What the kubelet knows about a Pod's images.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Some image is not resolved yet.
    Waiting,
    /// An image failed to pull: the image and the Event message.
    Failed(String, String),
    /// Every image resolved: image → digest.
    Pulled(BTreeMap<String, String>),
}

struct Job {
    key: PullKey,
    cred: Option<Credential>,
}

fn images(pod: &Value) -> Vec<String> {
    pod["spec"]["containers"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c["image"].as_str().map(String::from))
        .collect()
}

/// The credential a Pod's `imagePullSecrets` give for `registry`: the first
/// `kubernetes.io/dockerconfigjson` (or legacy `dockercfg`) Secret in its namespace with an
/// entry for that host.
fn credential(state: &State, pod: &Value, registry: &str) -> Option<Credential> {
    let ns = pod["metadata"]["namespace"].as_str().unwrap_or_default();
    let b64 = base64::engine::general_purpose::STANDARD;
    for r in pod["spec"]["imagePullSecrets"]
        .as_array()
        .into_iter()
        .flatten()
    {
        let Some(secret) =
            state
                .store
                .get("", "secrets", ns, r["name"].as_str().unwrap_or_default())
        else {
            continue;
        };
        let (field, nested) = match secret["type"].as_str() {
            Some("kubernetes.io/dockerconfigjson") => (".dockerconfigjson", true),
            Some("kubernetes.io/dockercfg") => (".dockercfg", false),
            _ => continue,
        };
        let Some(doc) = secret["data"][field]
            .as_str()
            .and_then(|d| b64.decode(d).ok())
            .and_then(|d| serde_json::from_slice::<Value>(&d).ok())
        else {
            continue;
        };
        let auths = if nested { &doc["auths"] } else { &doc };
        for (host, entry) in auths.as_object().into_iter().flatten() {
            let bare = host
                .trim_start_matches("https://")
                .trim_start_matches("http://");
            let bare = bare.split('/').next().unwrap_or_default();
            let matches = bare == registry
                || (registry == "docker.io"
                    && matches!(bare, "index.docker.io" | "registry-1.docker.io"));
            if !matches {
                continue;
            }
            let (user, password) = match (entry["username"].as_str(), entry["password"].as_str()) {
                (Some(u), Some(p)) => (u.to_string(), p.to_string()),
                _ => {
                    let decoded = entry["auth"]
                        .as_str()
                        .and_then(|a| b64.decode(a).ok())
                        .and_then(|a| String::from_utf8(a).ok())?;
                    let (u, p) = decoded.split_once(':')?;
                    (u.to_string(), p.to_string())
                }
            };
            return Some(Credential { user, password });
        }
    }
    None
}

/// The key (and credential) for pulling `image` for `pod`, once the Pod is on a node.
fn key_for(state: &State, pod: &Value, image: &str) -> Option<(PullKey, Option<Credential>)> {
    let node = pod["spec"]["nodeName"].as_str()?;
    let arch = state.store.get("", "nodes", "", node)?["metadata"]["labels"]["kubernetes.io/arch"]
        .as_str()?
        .to_string();
    let cred = ImageRef::parse(image)
        .ok()
        .and_then(|r| credential(state, pod, &r.registry));
    let auth = cred
        .as_ref()
        .map(|c| hex::encode(sha2::Sha256::digest(format!("{}:{}", c.user, c.password))));
    let key = PullKey {
        image: image.to_string(),
        arch,
        auth,
    };
    Some((key, cred))
}

/// What the kubelet knows about `pod`'s images now. `TestCluster::pull_digest` wins over the
/// registry.
pub(crate) fn outcome(state: &State, pod: &Value) -> Outcome {
    let mut digests = BTreeMap::new();
    let mut waiting = false;
    for image in images(pod) {
        if let Some(d) = state.image_digests.get(&image) {
            digests.insert(image, d.clone());
            continue;
        }
        let record = key_for(state, pod, &image).and_then(|(k, _)| state.pulls.get(&k));
        match record.map(|r| &r.result) {
            Some(Ok(d)) => {
                digests.insert(image, d.clone());
            }
            Some(Err(message)) => return Outcome::Failed(image, message.clone()),
            None => waiting = true,
        }
    }
    if waiting {
        Outcome::Waiting
    } else {
        Outcome::Pulled(digests)
    }
}

/// The pulls the kubelets need now: images of scheduled, live Pods that no failure knob or
/// `pull_digest` covers, never resolved or failed more than [`PULL_RETRY`] ago.
fn wanted(state: &State) -> Vec<Job> {
    let mut jobs: HashMap<PullKey, Option<Credential>> = HashMap::new();
    for pod in state.store.list("", "pods", None) {
        if pod["status"]["phase"] == "Succeeded" || !pod["metadata"]["deletionTimestamp"].is_null()
        {
            continue;
        }
        let ns = pod["metadata"]["namespace"].as_str().unwrap_or_default();
        let workload = super::workloads::workload_name(state, pod);
        if failure_for(state, ns, &workload, pod).is_some() {
            continue;
        }
        for image in images(pod) {
            if state.image_digests.contains_key(&image) {
                continue;
            }
            let Some((key, cred)) = key_for(state, pod, &image) else {
                continue;
            };
            let due = state
                .pulls
                .get(&key)
                .is_none_or(|r| r.result.is_err() && r.at.elapsed() >= PULL_RETRY);
            if due {
                jobs.insert(key, cred);
            }
        }
    }
    jobs.into_iter()
        .map(|(key, cred)| Job { key, cred })
        .collect()
}

/// Runs the puller until the task is aborted. The state lock is never held across I/O.
pub(crate) async fn run(state: Arc<Mutex<State>>, resolver: Resolver) {
    let mut tick = tokio::time::interval(TICK);
    loop {
        tick.tick().await;
        let jobs = wanted(&lock(&state));
        if jobs.is_empty() {
            continue;
        }
        let resolver = &resolver;
        let results: Vec<(PullKey, Result<String, String>)> = futures::stream::iter(jobs)
            .map(|job| async move {
                let r =
                    resolve::pull(resolver, &job.key.image, &job.key.arch, job.cred.as_ref()).await;
                (job.key, r)
            })
            .buffer_unordered(CONCURRENCY)
            .collect()
            .await;
        let mut st = lock(&state);
        for (key, result) in results {
            st.pulls.insert(
                key,
                PullRecord {
                    result,
                    at: Instant::now(),
                },
            );
        }
    }
}
