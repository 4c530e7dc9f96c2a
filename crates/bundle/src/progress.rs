//! Progress reporting. Libraries report through [`Progress`]; only the binaries draw bars.

/// Receives progress events from long operations. Implementations must be cheap and thread-safe.
pub trait Progress: Send + Sync {
    /// A unit of work named `label` starts, with `total` bytes when known.
    fn start(&self, label: &str, total: Option<u64>);
    /// `bytes` more bytes of `label` are done.
    fn advance(&self, label: &str, bytes: u64);
    /// `label` is finished.
    fn finish(&self, label: &str);
    /// A human-readable status line (no secrets).
    fn message(&self, _msg: &str) {}
}

/// A [`Progress`] that ignores everything, for tests and `--no-progress`.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoProgress;

impl Progress for NoProgress {
    fn start(&self, _label: &str, _total: Option<u64>) {}
    fn advance(&self, _label: &str, _bytes: u64) {}
    fn finish(&self, _label: &str) {}
}
