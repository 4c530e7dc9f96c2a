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
    /// Compare a release's live objects and values with what it applied and the SaaS defaults (exit 10 when drifted).
    Drift(commands::drift::Args),
    /// List the releases (every namespace unless -n).
    List(commands::list::Args),
    /// Show the site's values of a release beside the SaaS defaults.
    Values(commands::values::Args),
    /// Return a release to an earlier revision.
    Rollback(commands::rollback::Args),
    /// Delete a release's objects, keeping volumes unless --delete-data.
    Uninstall(commands::uninstall::Args),
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[test]
    fn command_line_definition_is_consistent() {
        super::Cli::command().debug_assert();
    }
}
