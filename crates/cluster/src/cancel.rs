//! Cooperative cancellation: the binary turns SIGINT/SIGTERM into [`Cancel::cancel`]; the
//! engine checks it at safe points (between phases, while waiting) and stops there, recording
//! what it had done.

use std::sync::Arc;

use tokio::sync::watch;

/// A cancellation flag shared by clones. Cheap to check; awaitable.
#[derive(Debug, Clone)]
pub struct Cancel {
    tx: Arc<watch::Sender<bool>>,
}

impl Default for Cancel {
    fn default() -> Self {
        Self::new()
    }
}

impl Cancel {
    /// A flag that is not set.
    pub fn new() -> Self {
        Self {
            tx: Arc::new(watch::channel(false).0),
        }
    }

    /// Sets the flag and wakes every waiter.
    pub fn cancel(&self) {
        self.tx.send_replace(true);
    }

    /// Whether the flag is set.
    pub fn is_cancelled(&self) -> bool {
        *self.tx.borrow()
    }

    /// Resolves once the flag is set (at once if it already is).
    pub async fn cancelled(&self) {
        let mut rx = self.tx.subscribe();
        // The sender lives in `self`, so the channel cannot close while we wait.
        let _ = rx.wait_for(|set| *set).await;
    }
}

#[cfg(test)]
mod tests {
    use super::Cancel;

    #[tokio::test]
    async fn waiters_wake_and_late_waiters_return_at_once() {
        let c = Cancel::new();
        assert!(!c.is_cancelled());
        let waiter = tokio::spawn({
            let c = c.clone();
            async move { c.cancelled().await }
        });
        c.cancel();
        waiter.await.expect("the waiter wakes");
        assert!(c.is_cancelled());
        c.cancelled().await;
    }
}
