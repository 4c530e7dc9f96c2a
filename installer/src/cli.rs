//! Command-line definitions. Each command's arguments live beside its code in `commands/`.

use clap::{Parser, Subcommand};

use crate::commands;

/// Verify an Airlift bundle, relocate its images into your registry and deploy it into your cluster.
#[derive(Debug, Parser)]
#[command(name = "airlift-install", version, propagate_version = true)]
pub struct Cli {
    /// Hide progress: bars on a terminal, plain progress lines (every 5 s, or
    /// AIRLIFT_PROGRESS_INTERVAL seconds) when stderr is a log.
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
    /// Verify a bundle, then relocate its images into your registry (resumable).
    Push(commands::push::Args),
    /// Serve a bundle's images read-only over the OCI distribution API.
    Serve(commands::serve::Args),
    /// Show a bundle's images, platforms, sizes, components, config keys and signature status.
    Inspect(commands::inspect::Args),
    /// Verify, configure, push and deploy a bundle: the whole flow, resumable.
    Install(commands::install::Args),
    /// Show what upgrading to a bundle would change, changing nothing.
    Plan(commands::plan::Args),
    /// Upgrade a release to a bundle; rolls back automatically if it fails.
    Upgrade(commands::upgrade::Args),
    /// List the configuration items, their SaaS defaults and the values in effect.
    Config(commands::config::Args),
    /// Write the final manifests (images by digest in your registry) to a folder, for GitOps.
    Render(commands::render::Args),
    /// Show a release as the cluster runs it now, and its history.
    Status(commands::status::Args),
    /// Compare a release's live objects and values with what it applied and the SaaS defaults (exit 11 when drifted).
    Drift(commands::drift::Args),
    /// Show the cluster's platform (provider, region, storage and ingress classes) and why.
    Platform(commands::platform::Args),
    /// List the releases (every namespace unless -n).
    List(commands::list::Args),
    /// Show the site's values of a release beside the SaaS defaults.
    Values(commands::values::Args),
    /// Return a release to an earlier revision.
    Rollback(commands::rollback::Args),
    /// Delete a release's objects, keeping volumes unless --delete-data.
    Uninstall(commands::uninstall::Args),
    /// Collect a redacted support bundle for a release: records, live status, events, logs.
    SupportBundle(commands::support::Args),
    /// Show the version, git commit, compiler, target and bundle format.
    Version(commands::version::Args),
    /// Write a shell completion script to stdout: bash, zsh or fish.
    Completion(commands::completion::Args),
    /// Write the man pages into a folder.
    #[command(hide = true)]
    Man(airlift_cli::about::ManArgs),
    /// Show or replace the license stored with a release (no reinstall).
    License(commands::license::Args),
    /// Plan, roll out and check one bundle across a fleet of clusters, in stages with gates.
    Fleet(commands::fleet::Args),
    /// Fetch a published bundle from an OCI registry into one file, byte-identical to the original.
    Pull(commands::pull::Args),
    /// List the versions published in a registry that are newer than a release, on its channel.
    Updates(commands::updates::Args),
}

impl Cli {
    /// The `--output` format of the command, which also decides how an error is printed.
    pub fn output(&self) -> airlift_cli::OutputFormat {
        match &self.command {
            Command::Verify(a) => a.output,
            Command::Push(a) => a.output,
            Command::Serve(_) => airlift_cli::OutputFormat::Text,
            Command::Inspect(a) => a.output,
            Command::Install(a) => a.deploy.output,
            Command::Plan(a) => a.deploy.output,
            Command::Upgrade(a) => a.deploy.output,
            Command::Config(a) => a.output,
            Command::Render(a) => a.output,
            Command::Status(a) => a.output,
            Command::List(a) => a.output,
            Command::Values(a) => a.output,
            Command::Rollback(a) => a.output,
            Command::Uninstall(a) => a.output,
            Command::Platform(a) => a.output,
            Command::Drift(a) => a.output,
            Command::Fleet(a) => a.output(),
            Command::Pull(a) => a.output,
            Command::Updates(a) => a.output,
            Command::License(a) => a.output(),
            Command::SupportBundle(a) => a.output,
            Command::Version(a) => a.output,
            Command::Completion(_) | Command::Man(_) => airlift_cli::OutputFormat::Text,
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

    /// Every `airlift-install` example in the guides parses with the real grammar.
    #[test]
    fn every_example_in_the_guides_parses() {
        match airlift_cli::docs::parse_examples::<super::Cli>("airlift-install") {
            Ok(seen) => assert!(seen > 0, "the guides show no `airlift-install` command"),
            Err(e) => panic!("{e}"),
        }
    }
}
