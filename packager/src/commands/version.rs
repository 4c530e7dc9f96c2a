//! `airlift-pack version`: version, git commit, rustc, target and bundle format, as text or JSON.

use airlift_cli::about::{run_version, VersionArgs};
use airlift_cli::CommandError;

/// Arguments of `version`.
pub type Args = VersionArgs;

/// Runs `version`.
pub fn run(args: Args) -> Result<(), CommandError> {
    run_version("airlift-pack", env!("CARGO_PKG_VERSION"), &args)
}
