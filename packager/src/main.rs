//! `airlift-pack`: builds a signed, offline bundle from a bundle definition. This file stays thin:
//! parsing is in `cli`, each command in `commands/`.

mod cli;
mod commands;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    // Started again as the render worker (templates run there, bounded in memory and time)?
    // Then this serves and exits before anything else runs.
    airlift_render::isolate::serve_if_asked();
    airlift_cli::output::init_colors();
    let cli = cli::Cli::parse();
    let output = cli.output();
    match commands::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) if output.is_machine() => airlift_cli::report_json(&err),
        Err(err) => airlift_cli::report(&err),
    }
}
