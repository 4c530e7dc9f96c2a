//! Command-line definitions. Each command's arguments live beside its code in `commands/`.

use clap::{Parser, Subcommand};

use crate::commands;

/// Build signed, offline Airlift bundles from bundle definitions.
#[derive(Debug, Parser)]
#[command(name = "airlift-pack", version, propagate_version = true)]
pub struct Cli {
    /// Hide progress bars (they are hidden anyway when stderr is not a terminal).
    #[arg(long, global = true)]
    pub no_progress: bool,
    /// The command to run.
    #[command(subcommand)]
    pub command: Command,
}

/// The packager's commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Build the signed bundle NAME-VERSION.airlift from a bundle definition folder.
    Build(commands::build::Args),
    /// Write a new ECDSA P-256 signing key pair: PREFIX.key (0600) and PREFIX.pub.
    Keygen(commands::keygen::Args),
    /// Check a bundle definition folder without network: schema, config defaults, templates, objects, images.
    Lint(commands::lint::Args),
    /// Write a bundle definition folder from a live SaaS cluster (read-only): templates, airlift.yaml, SNAPSHOT.md.
    Snapshot(commands::snapshot::Args),
}

impl Cli {
    /// The `--output` format of the command, which also decides how an error is printed.
    pub fn output(&self) -> airlift_cli::OutputFormat {
        match &self.command {
            Command::Build(a) => a.output,
            Command::Lint(a) => a.output,
            Command::Snapshot(a) => a.output,
            Command::Keygen(_) => airlift_cli::OutputFormat::Text,
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[test]
    fn command_line_definition_is_consistent() {
        super::Cli::command().debug_assert();
    }
}
