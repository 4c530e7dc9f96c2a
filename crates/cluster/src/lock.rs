//! One operation at a time per release: a `coordination.k8s.io/v1` Lease
//! `airlift-lock-<release>` in the release namespace.
//!
//! The holder identity names who runs what (`user@host pid N: install`), `acquireTime` says since
//! when. While the operation runs a background task renews `renewTime` every third of the lease
//! duration. A second operation finds the Lease held and fails at once with
//! [`LockError::Held`], naming the holder and since when. A Lease whose `renewTime` is older
//! than its duration belonged to a process that died: it is taken over, with the
//! `resourceVersion` of the stale Lease as a precondition, so two processes cannot both take it.
//! `force` takes over a live Lease too (`--force-unlock`). A Lease whose holder is a process of
//! this same machine that no longer runs (killed with SIGKILL) is taken over at once.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::api::{Api, DeleteParams, PostParams};
use kube::Client;
use serde_json::json;
use tokio::sync::Notify;

use crate::object::{LABEL_MANAGED_BY, LABEL_RELEASE, MANAGED_BY};

/// How long a Lease stays valid without renewal.
pub const LEASE_SECONDS: i32 = 30;

/// Errors taking or giving back the release lock.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// Another operation holds the lock.
    #[error("release `{release}` in namespace `{namespace}` is locked by {holder} since {since}")]
    Held {
        /// The release.
        release: String,
        /// The release namespace.
        namespace: String,
        /// Who holds it.
        holder: String,
        /// Since when (RFC 3339).
        since: String,
    },
    /// The API call failed.
    #[error(
        "failed to {action} the lock `{lease}` of release `{release}` in namespace `{namespace}`"
    )]
    Api {
        /// What we tried.
        action: &'static str,
        /// The Lease.
        lease: String,
        /// The release.
        release: String,
        /// The namespace.
        namespace: String,
        /// The server's answer.
        #[source]
        source: crate::status::ServerError,
    },
}

impl airlift_bundle::Diagnose for LockError {
    fn exit_kind(&self) -> airlift_bundle::ExitKind {
        match self {
            Self::Held { .. } => airlift_bundle::ExitKind::Locked,
            Self::Api { source, .. } => crate::kubeconfig::api_exit_kind(source.inner()),
        }
    }

    fn fix(&self) -> Option<String> {
        Some(match self {
            Self::Held {
                release, namespace, ..
            } => format!(
                "wait for that operation to finish; if its process is gone, the lock expires \
                 {LEASE_SECONDS} s after its last renewal, or run the command again with \
                 --force-unlock (`airlift-install status {release} -n {namespace}` shows the release)"
            ),
            Self::Api { source, .. } => crate::kubeconfig::api_hint(source.inner()),
        })
    }
}

/// The lock's name for `release`.
pub fn lease_name(release: &str) -> String {
    format!("airlift-lock-{release}")
}

fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "unknown-host".into())
}

/// Who we are, for the holder identity: `user@host pid N: operation`.
pub fn holder_identity(operation: &str) -> String {
    let user = std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .unwrap_or_else(|_| "unknown".into());
    format!(
        "{user}@{} pid {}: {operation}",
        host_name(),
        std::process::id()
    )
}

/// Whether `holder` names a process on this machine that no longer runs (killed, crashed): its
/// lock can be taken over at once instead of after the lease expires.
fn holder_is_gone(holder: &str) -> bool {
    let Some((who, rest)) = holder.split_once(" pid ") else {
        return false;
    };
    let Some(host) = who.split_once('@').map(|(_, h)| h) else {
        return false;
    };
    let Some(pid) = rest
        .split(':')
        .next()
        .and_then(|p| p.trim().parse::<u32>().ok())
    else {
        return false;
    };
    host == host_name() && pid != std::process::id() && !Path::new(&format!("/proc/{pid}")).exists()
}

/// A held lock. Renewed in the background until [`ReleaseLock::release`] (or drop, which stops
/// renewing and lets it expire).
pub struct ReleaseLock {
    api: Api<Lease>,
    name: String,
    release: String,
    namespace: String,
    stop: Arc<Notify>,
    renewer: Option<tokio::task::JoinHandle<()>>,
}

impl std::fmt::Debug for ReleaseLock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReleaseLock")
            .field("lease", &self.name)
            .field("namespace", &self.namespace)
            .finish_non_exhaustive()
    }
}

fn now() -> MicroTime {
    MicroTime(k8s_openapi::jiff::Timestamp::now())
}

impl ReleaseLock {
    /// Takes the lock of `release` in `namespace` for `operation`, or fails at once naming the
    /// holder. A stale lock is taken over; a live one only with `force`.
    pub async fn acquire(
        client: Client,
        namespace: &str,
        release: &str,
        operation: &str,
        force: bool,
    ) -> Result<Self, LockError> {
        let api: Api<Lease> = Api::namespaced(client, namespace);
        let name = lease_name(release);
        let err = |action: &'static str| {
            let (name, release, namespace) =
                (name.clone(), release.to_string(), namespace.to_string());
            move |source: kube::Error| LockError::Api {
                action,
                lease: name,
                release,
                namespace,
                source: source.into(),
            }
        };
        let identity = holder_identity(operation);
        let body = |rv: Option<String>| Lease {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                namespace: Some(namespace.to_string()),
                labels: Some(
                    [
                        (LABEL_MANAGED_BY.to_string(), MANAGED_BY.to_string()),
                        (LABEL_RELEASE.to_string(), release.to_string()),
                    ]
                    .into(),
                ),
                resource_version: rv,
                ..ObjectMeta::default()
            },
            spec: Some(LeaseSpec {
                holder_identity: Some(identity.clone()),
                lease_duration_seconds: Some(LEASE_SECONDS),
                acquire_time: Some(now()),
                renew_time: Some(now()),
                ..LeaseSpec::default()
            }),
        };
        let held = |lease: &Lease| LockError::Held {
            release: release.to_string(),
            namespace: namespace.to_string(),
            holder: lease
                .spec
                .as_ref()
                .and_then(|s| s.holder_identity.clone())
                .unwrap_or_else(|| "an unknown holder".into()),
            since: lease
                .spec
                .as_ref()
                .and_then(|s| s.acquire_time.as_ref())
                .map(|t| t.0.to_string())
                .unwrap_or_else(|| "an unknown time".into()),
        };
        match api.create(&PostParams::default(), &body(None)).await {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 409 => {
                let current = api.get(&name).await.map_err(err("read"))?;
                if !force && is_held(&current) {
                    return Err(held(&current));
                }
                let rv = current.metadata.resource_version.clone();
                match api.replace(&name, &PostParams::default(), &body(rv)).await {
                    Ok(_) => {}
                    // Someone else took it over between our read and our write.
                    Err(kube::Error::Api(s)) if s.code == 409 => {
                        let now = api.get(&name).await.map_err(err("read"))?;
                        return Err(held(&now));
                    }
                    Err(e) => return Err(err("take over")(e)),
                }
            }
            Err(e) => return Err(err("create")(e)),
        }
        let stop = Arc::new(Notify::new());
        let renewer = tokio::spawn(renew(api.clone(), name.clone(), stop.clone()));
        Ok(Self {
            api,
            name,
            release: release.to_string(),
            namespace: namespace.to_string(),
            stop,
            renewer: Some(renewer),
        })
    }

    /// Stops renewing and deletes the Lease.
    pub async fn release(mut self) -> Result<(), LockError> {
        self.stop_renewing().await;
        match self.api.delete(&self.name, &DeleteParams::default()).await {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
            Err(source) => Err(LockError::Api {
                action: "release",
                lease: self.name.clone(),
                release: self.release.clone(),
                namespace: self.namespace.clone(),
                source: source.into(),
            }),
        }
    }

    async fn stop_renewing(&mut self) {
        self.stop.notify_one();
        if let Some(task) = self.renewer.take() {
            let _ = task.await;
        }
    }
}

impl Drop for ReleaseLock {
    fn drop(&mut self) {
        if let Some(task) = self.renewer.take() {
            task.abort();
        }
    }
}

/// Renews `renewTime` every third of the lease duration until `stop`.
async fn renew(api: Api<Lease>, name: String, stop: Arc<Notify>) {
    let period = Duration::from_secs(u64::from(LEASE_SECONDS.unsigned_abs() / 3).max(1));
    loop {
        tokio::select! {
            _ = stop.notified() => return,
            _ = tokio::time::sleep(period) => {}
        }
        let patch = json!({"spec": {"renewTime": now()}});
        // A failed renewal is retried at the next period; the lease outlives two misses.
        let _ = api
            .patch(
                &name,
                &kube::api::PatchParams::default(),
                &kube::api::Patch::Merge(&patch),
            )
            .await;
    }
}

/// Whether a live process holds `lease`: renewed within its duration, and not a process of this
/// machine that is gone.
pub fn is_held(lease: &Lease) -> bool {
    let gone = lease
        .spec
        .as_ref()
        .and_then(|s| s.holder_identity.as_deref())
        .is_some_and(holder_is_gone);
    !gone && !is_stale(lease)
}

/// Whether `lease` has not been renewed within its duration.
pub fn is_stale(lease: &Lease) -> bool {
    let Some(spec) = &lease.spec else {
        return true;
    };
    let duration = i64::from(spec.lease_duration_seconds.unwrap_or(LEASE_SECONDS));
    match spec.renew_time.as_ref().or(spec.acquire_time.as_ref()) {
        Some(last) => now().0.as_second() - last.0.as_second() > duration,
        None => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_dead_process_on_this_host_is_gone() {
        let me = holder_identity("install");
        assert!(!holder_is_gone(&me), "we run");
        let dead = format!("root@{} pid 4194304: install", host_name());
        assert!(holder_is_gone(&dead), "no such pid");
        assert!(!holder_is_gone("root@another-host pid 4194304: install"));
        assert!(!holder_is_gone("garbage"));
    }
}
