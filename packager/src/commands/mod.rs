//! One module per command.

pub mod build;
pub mod cache;
pub mod completion;
pub mod keygen;
pub mod license;
pub mod lint;
pub mod publish;
pub mod snapshot;
pub mod version;

use airlift_cli::CommandError;

use crate::cli::{Cli, Command};

/// Runs the parsed command.
pub fn run(cli: Cli) -> Result<(), CommandError> {
    match cli.command {
        Command::Build(args) => build::run(args, cli.no_progress),
        Command::Keygen(args) => keygen::run(args),
        Command::Lint(args) => lint::run(args),
        Command::Version(args) => version::run(args),
        Command::Completion(args) => completion::run(args),
        Command::Man(args) => completion::run_man_pages(args),
        Command::Snapshot(args) => snapshot::run(args),
        Command::Publish(args) => publish::run(args, cli.no_progress),
        Command::License(args) => license::run(args),
    }
}
