//! `airlift-pack completion bash|zsh|fish` and the hidden `airlift-pack man --out DIR`: shell
//! completions and man pages, generated from the clap definitions.

use airlift_cli::about::{run_completion, run_man, CompletionArgs, ManArgs};
use airlift_cli::CommandError;
use clap::CommandFactory;

use crate::cli::Cli;

/// Arguments of `completion`.
pub type Args = CompletionArgs;

/// Runs `completion SHELL`.
pub fn run(args: Args) -> Result<(), CommandError> {
    run_completion(Cli::command(), &args)
}

/// Runs `man --out DIR`.
pub fn run_man_pages(args: ManArgs) -> Result<(), CommandError> {
    run_man(&Cli::command(), &args)
}
