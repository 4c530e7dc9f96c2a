//! One module per command.

pub mod verify;

use airlift_cli::CommandError;

use crate::cli::{Cli, Command};

/// Runs the parsed command.
pub fn run(cli: Cli) -> Result<(), CommandError> {
    match cli.command {
        Command::Verify(args) => verify::run(args, cli.no_progress),
    }
}
