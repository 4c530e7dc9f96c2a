//! Command-line definitions. Each command's arguments live beside its code in `commands/`.

use clap::{Parser, Subcommand};

use crate::commands;

/// Verify an Airlift bundle, relocate its images into your registry and deploy it into your cluster.
#[derive(Debug, Parser)]
#[command(name = "airlift-install", version, propagate_version = true)]
pub struct Cli {
    /// Hide progress bars (they are hidden anyway when stderr is not a terminal).
    #[arg(long, global = true)]
    pub no_progress: bool,
    /// The command to run.
    #[command(subcommand)]
    pub command: Command,
}

/// The installer's commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check a bundle's signature and every digest, without side effects.
    Verify(commands::verify::Args),
}
