//! Shared pieces of the real-cluster tier (`AIRLIFT_E2E_KUBECONFIG`): scenarios of every test
//! binary reuse namespace names, so on a real cluster they run one at a time.

use std::fs::File;
use std::io;

/// Takes the lock every real-cluster scenario holds while it runs: an exclusive `flock` on one
/// file in the temp folder, shared by all test binaries. Released when the file is dropped.
pub fn real_cluster_lock() -> io::Result<File> {
    let lock = File::create(std::env::temp_dir().join("airlift-e2e-releases.lock"))?;
    rustix::fs::flock(&lock, rustix::fs::FlockOperation::LockExclusive)?;
    Ok(lock)
}
