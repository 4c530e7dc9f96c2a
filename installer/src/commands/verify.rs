//! `airlift-install verify`.

use std::path::PathBuf;

use airlift_cli::{CommandError, ExitKind};

/// Arguments of `verify`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The bundle file.
    pub bundle: PathBuf,
}

/// Runs `verify`.
pub fn run(args: Args, _no_progress: bool) -> Result<(), CommandError> {
    Err(CommandError::new(
        ExitKind::Failure,
        anyhow::anyhow!("verify of `{}` is not implemented yet", args.bundle.display()),
    ))
}
