//! What both binaries say about themselves: `version` (text and JSON), shell completions and man
//! pages, all generated from the clap definitions so they never drift from the real flags.

use std::io::{self, Write};
use std::path::{Path, PathBuf};

use clap::ValueEnum;
use serde::Serialize;

use crate::output::Printer;
use crate::{CommandError, ExitKind, OutputFormat};

/// Arguments of `version`.
#[derive(Debug, Clone, clap::Args)]
pub struct VersionArgs {
    /// Output format.
    #[arg(long, short = 'o', value_enum, default_value_t = OutputFormat::Text)]
    pub output: OutputFormat,
}

/// Arguments of `completion`.
#[derive(Debug, Clone, clap::Args)]
pub struct CompletionArgs {
    /// The shell to write a completion script for.
    #[arg(value_enum)]
    pub shell: Shell,
}

/// Arguments of the hidden `man` command (for packagers and `scripts/`).
#[derive(Debug, Clone, clap::Args)]
pub struct ManArgs {
    /// The folder to write the pages into (created if missing).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
}

/// Runs `version`: the build facts of binary `name` at `version`, as text, JSON or YAML.
pub fn run_version(name: &str, version: &str, args: &VersionArgs) -> Result<(), CommandError> {
    let info = VersionInfo::new(name, version);
    if args.output.is_machine() {
        return Ok(Printer::stdout().document(args.output, &info)?);
    }
    let text = info.text();
    Ok(Printer::stdout().line(format_args!("{}", text.trim_end()))?)
}

/// Runs `completion SHELL`: the script for `command` on stdout.
pub fn run_completion(
    mut command: clap::Command,
    args: &CompletionArgs,
) -> Result<(), CommandError> {
    // Generated in memory first: clap_complete panics on a failed write, and a closed stdout
    // must stay a quiet exit.
    let mut script = Vec::new();
    write_completion(&mut command, args.shell, &mut script);
    let mut out = io::stdout().lock();
    out.write_all(&script)?;
    Ok(out.flush()?)
}

/// Runs `man --out DIR`: one page per command, and the list of files on stdout.
pub fn run_man(command: &clap::Command, args: &ManArgs) -> Result<(), CommandError> {
    for path in write_man_pages(command, &args.out)? {
        Printer::stdout().line(format_args!("{}", path.display()))?;
    }
    Ok(())
}

/// Where and how a binary was built.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct VersionInfo {
    /// The binary's name, e.g. `airlift-install`.
    pub name: String,
    /// Its version (semver).
    pub version: String,
    /// The git commit it was built from, when the build knew it.
    pub git_commit: Option<String>,
    /// The compiler, as `rustc --version` printed it.
    pub rustc: Option<String>,
    /// The target triple.
    pub target: String,
    /// The bundle format it reads or writes (`apiVersion` of `airlift.yaml`).
    pub bundle_format: String,
}

fn known(value: &str) -> Option<String> {
    (!value.is_empty()).then(|| value.to_string())
}

impl VersionInfo {
    /// The build facts of binary `name` at `version` (pass `env!("CARGO_PKG_VERSION")`).
    pub fn new(name: &str, version: &str) -> Self {
        Self {
            name: name.to_string(),
            version: version.to_string(),
            git_commit: known(env!("AIRLIFT_BUILD_COMMIT")),
            rustc: known(env!("AIRLIFT_BUILD_RUSTC")),
            target: env!("AIRLIFT_BUILD_TARGET").to_string(),
            bundle_format: airlift_bundle::schema::API_VERSION.to_string(),
        }
    }

    /// The text form: one `key: value` line each, the first line like `--version`'s.
    pub fn text(&self) -> String {
        let unknown = || "unknown".to_string();
        format!(
            "{} {}\ngit commit: {}\nrustc: {}\ntarget: {}\nbundle format: {}\n",
            self.name,
            self.version,
            self.git_commit.clone().unwrap_or_else(unknown),
            self.rustc.clone().unwrap_or_else(unknown),
            self.target,
            self.bundle_format
        )
    }
}

/// The shells `completion` writes scripts for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Shell {
    /// bash (bash-completion).
    Bash,
    /// zsh.
    Zsh,
    /// fish.
    Fish,
}

/// Writes the completion script of `command` for `shell` to `out`.
pub fn write_completion(command: &mut clap::Command, shell: Shell, out: &mut dyn Write) {
    let name = command.get_name().to_string();
    match shell {
        Shell::Bash => clap_complete::generate(clap_complete::Shell::Bash, command, name, out),
        Shell::Zsh => clap_complete::generate(clap_complete::Shell::Zsh, command, name, out),
        Shell::Fish => clap_complete::generate(clap_complete::Shell::Fish, command, name, out),
    }
}

/// Writes one man page per command into `dir` (created if missing): `NAME.1` for the binary and
/// `NAME-SUB.1` for each visible subcommand, recursively. Returns the files written.
pub fn write_man_pages(command: &clap::Command, dir: &Path) -> Result<Vec<PathBuf>, CommandError> {
    let io_error = |path: &Path, e: io::Error| {
        CommandError::new(
            ExitKind::Failure,
            anyhow::Error::new(e).context(format!("cannot write `{}`", path.display())),
        )
    };
    std::fs::create_dir_all(dir).map_err(|e| io_error(dir, e))?;
    let mut command = command.clone();
    command.build();
    let mut written = Vec::new();
    write_page(&command, dir, &mut written).map_err(|(p, e)| io_error(&p, e))?;
    Ok(written)
}

fn write_page(
    command: &clap::Command,
    dir: &Path,
    written: &mut Vec<PathBuf>,
) -> Result<(), (PathBuf, io::Error)> {
    let name = command
        .get_display_name()
        .unwrap_or_else(|| command.get_name())
        .to_string();
    let path = dir.join(format!("{name}.1"));
    let page = clap_mangen::Man::new(command.clone()).title(name.to_uppercase());
    let mut text = Vec::new();
    page.render(&mut text).map_err(|e| (path.clone(), e))?;
    std::fs::write(&path, text).map_err(|e| (path.clone(), e))?;
    written.push(path);
    // clap's own `help` subcommand gets no page: `-h` is on every page.
    for sub in command
        .get_subcommands()
        .filter(|s| !s.is_hide_set() && s.get_name() != "help")
    {
        write_page(sub, dir, written)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_names_the_bundle_format_and_target() {
        let v = VersionInfo::new("airlift-test", "1.2.3");
        assert_eq!(v.bundle_format, "airlift.dev/v1alpha1");
        assert!(!v.target.is_empty());
        assert!(v.text().starts_with("airlift-test 1.2.3\n"));
        let json = serde_json::to_value(&v).unwrap_or_default();
        assert_eq!(json["bundleFormat"], "airlift.dev/v1alpha1");
        assert!(json.get("gitCommit").is_some());
    }
}
