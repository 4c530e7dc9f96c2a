//! The release namespace while it is being deleted: an uninstall (or `kubectl delete
//! namespace`) a moment ago leaves it terminating, and the API server refuses new objects in it
//! (403, cause `NamespaceTerminating`) until the namespace controller has removed it. A deploy
//! waits for that, with a bound, and then creates the namespace again.

use std::future::Future;
use std::time::{Duration, Instant};

/// How long a deploy waits for its namespace to finish being deleted.
pub const DELETION_WAIT: Duration = Duration::from_secs(120);

/// What a read of the namespace found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Found {
    /// No such namespace.
    Absent,
    /// The namespace, not being deleted.
    Live,
    /// The namespace, with a deletion timestamp.
    Deleting,
}

impl Found {
    /// From whether the namespace carries a deletion timestamp (`None`: there is no namespace).
    pub fn of(deleting: Option<bool>) -> Self {
        match deleting {
            None => Self::Absent,
            Some(false) => Self::Live,
            Some(true) => Self::Deleting,
        }
    }
}

/// The namespace was still being deleted when the wait ended.
#[derive(Debug, thiserror::Error)]
#[error("namespace `{namespace}` is being deleted and was still there after {waited_secs} s; new objects cannot be created in it until it is gone")]
pub struct StillDeleting {
    /// The namespace.
    pub namespace: String,
    /// How long we waited.
    pub waited_secs: u64,
}

impl StillDeleting {
    /// How the operator can fix it.
    pub fn hint(&self) -> String {
        let ns = &self.namespace;
        format!(
            "an uninstall or `kubectl delete namespace {ns}` has not finished: `kubectl get \
             namespace {ns} -o yaml` shows the finalizers it waits for; run the command again \
             once the namespace is gone"
        )
    }
}

/// Reads `namespace` with `read` until it is not being deleted, waiting up to `limit` (250 ms
/// between reads at first, doubling to 2 s); returns whether it exists then.
pub async fn settle<E, F, Fut>(namespace: &str, limit: Duration, mut read: F) -> Result<bool, E>
where
    E: From<StillDeleting>,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Found, E>>,
{
    let started = Instant::now();
    let mut pause = Duration::from_millis(250);
    loop {
        match read().await? {
            Found::Absent => return Ok(false),
            Found::Live => return Ok(true),
            Found::Deleting if started.elapsed() >= limit => {
                return Err(StillDeleting {
                    namespace: namespace.to_string(),
                    waited_secs: started.elapsed().as_secs(),
                }
                .into())
            }
            Found::Deleting => {
                tokio::time::sleep(pause.min(limit.saturating_sub(started.elapsed()))).await;
                pause = (pause * 2).min(Duration::from_secs(2));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct E(String);
    impl From<StillDeleting> for E {
        fn from(e: StillDeleting) -> Self {
            E(e.to_string())
        }
    }

    #[tokio::test]
    async fn waits_out_a_deletion_and_gives_up_after_the_limit() {
        let mut reads = vec![Found::Deleting, Found::Deleting, Found::Absent].into_iter();
        let exists = settle::<E, _, _>("acme", Duration::from_secs(5), || {
            let next = reads.next().unwrap_or(Found::Absent);
            async move { Ok(next) }
        })
        .await
        .unwrap();
        assert!(!exists);
        assert_eq!(reads.next(), None, "read until the deletion ended");

        let started = Instant::now();
        let err = settle::<E, _, _>("acme", Duration::from_millis(600), || async {
            Ok(Found::Deleting)
        })
        .await
        .unwrap_err();
        assert!(
            err.0.contains("namespace `acme` is being deleted"),
            "{}",
            err.0
        );
        assert!(started.elapsed() >= Duration::from_millis(600));
        assert!(started.elapsed() < Duration::from_secs(3));

        let live = settle::<E, _, _>("acme", Duration::ZERO, || async { Ok(Found::Live) })
            .await
            .unwrap();
        assert!(live);
    }
}
