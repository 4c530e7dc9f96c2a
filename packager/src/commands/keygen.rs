//! `airlift-pack keygen`.

use std::path::PathBuf;

use airlift_cli::{CommandError, ExitKind};

/// Arguments of `keygen`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Writes PREFIX.key and PREFIX.pub.
    #[arg(long)]
    pub out: PathBuf,
}

/// Runs `keygen`.
pub fn run(args: Args) -> Result<(), CommandError> {
    Err(CommandError::new(
        ExitKind::Failure,
        anyhow::anyhow!("keygen to `{}` is not implemented yet", args.out.display()),
    ))
}
