//! `airlift-install`: verifies a bundle, relocates its images and deploys it. This file stays thin:
//! parsing is in `cli`, each command in `commands/`.

mod cli;
mod cluster_args;
mod commands;
mod configure;
mod confirm;
mod deploy;
mod pushing;
mod relocation;
mod rendering;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    airlift_cli::output::init_colors();
    let cli = cli::Cli::parse();
    match commands::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => airlift_cli::report(&err),
    }
}
