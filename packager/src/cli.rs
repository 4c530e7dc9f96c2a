//! Command-line definitions. Each command's arguments live beside its code in `commands/`.

use clap::{Parser, Subcommand};

use crate::commands;

/// Build signed, offline Airlift bundles from bundle definitions.
#[derive(Debug, Parser)]
#[command(name = "airlift-pack", version, propagate_version = true)]
pub struct Cli {
    /// Hide progress: bars on a terminal, plain progress lines (every 5 s, or
    /// AIRLIFT_PROGRESS_INTERVAL seconds) when stderr is a log.
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
    /// Show the version, git commit, compiler, target and bundle format.
    Version(commands::version::Args),
    /// Write a shell completion script to stdout: bash, zsh or fish.
    Completion(commands::completion::Args),
    /// Write the man pages into a folder.
    #[command(hide = true)]
    Man(airlift_cli::about::ManArgs),
    /// Write a bundle definition folder from a live SaaS cluster (read-only): templates, airlift.yaml, SNAPSHOT.md.
    Snapshot(commands::snapshot::Args),
    /// Publish a bundle to an OCI registry: its images, then the bundle as an artifact, tagged last.
    Publish(commands::publish::Args),
    /// Issue licenses signed with the vendor key: `license issue --customer … --out FILE`.
    License(commands::license::Args),
}

impl Cli {
    /// The `--output` format of the command, which also decides how an error is printed.
    pub fn output(&self) -> airlift_cli::OutputFormat {
        match &self.command {
            Command::Build(a) => a.output,
            Command::Lint(a) => a.output,
            Command::Version(a) => a.output,
            Command::Snapshot(a) => a.output,
            Command::Keygen(a) => a.output,
            Command::Publish(a) => a.output,
            Command::License(_) | Command::Completion(_) | Command::Man(_) => {
                airlift_cli::OutputFormat::Text
            }
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

    /// Every `airlift-pack` example in the guides parses with the real grammar.
    #[test]
    fn every_example_in_the_guides_parses() {
        match airlift_cli::docs::parse_examples::<super::Cli>("airlift-pack") {
            Ok(seen) => assert!(seen > 0, "the guides show no `airlift-pack` command"),
            Err(e) => panic!("{e}"),
        }
    }
}
