//! One module per command.

pub mod completion;
pub mod config;
pub mod drift;
pub mod fleet;
pub mod inspect;
pub mod install;
pub mod license;
pub mod list;
pub mod plan;
pub mod platform;
pub mod pull;
pub mod push;
pub mod render;
pub mod rollback;
pub mod serve;
pub mod status;
pub mod support;
pub mod uninstall;
pub mod updates;
pub mod upgrade;
pub mod values;
pub mod verify;
pub mod version;

use airlift_cli::CommandError;

use crate::cli::{Cli, Command};

/// Runs the parsed command.
pub fn run(cli: Cli) -> Result<(), CommandError> {
    match cli.command {
        Command::Verify(args) => verify::run(args, cli.no_progress),
        Command::Push(args) => push::run(args, cli.no_progress),
        Command::Serve(args) => serve::run(args, cli.no_progress),
        Command::Inspect(args) => inspect::run(args, cli.no_progress),
        Command::Install(args) => install::run(args, cli.no_progress),
        Command::Plan(args) => plan::run(args, cli.no_progress),
        Command::Upgrade(args) => upgrade::run(args, cli.no_progress),
        Command::Config(args) => config::run(args, cli.no_progress),
        Command::Render(args) => render::run(args, cli.no_progress),
        Command::Status(args) => status::run(args, cli.no_progress),
        Command::Drift(args) => drift::run(args, cli.no_progress),
        Command::Platform(args) => platform::run(args, cli.no_progress),
        Command::List(args) => list::run(args, cli.no_progress),
        Command::Values(args) => values::run(args, cli.no_progress),
        Command::Rollback(args) => rollback::run(args, cli.no_progress),
        Command::Uninstall(args) => uninstall::run(args, cli.no_progress),
        Command::SupportBundle(args) => support::run(args, cli.no_progress),
        Command::Version(args) => version::run(args),
        Command::Completion(args) => completion::run(args),
        Command::Man(args) => completion::run_man_pages(args),
        Command::Fleet(args) => fleet::run(args, cli.no_progress),
        Command::Pull(args) => pull::run(args, cli.no_progress),
        Command::Updates(args) => updates::run(args, cli.no_progress),
        Command::License(args) => license::run(args, cli.no_progress),
    }
}
