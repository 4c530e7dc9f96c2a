//! `airlift-pack lint DIR`: checks a bundle definition with no network. The checks are
//! [`airlift_build::lint`]'s; this prints their report and turns problems into exit 6. Images
//! built from local files are built into the blob cache `build` uses, so `lint` then `build`
//! compresses each unchanged one once.

use std::path::PathBuf;

use airlift_build::lint::{lint, LocalBuilds, Report};
use airlift_cli::outln;
use airlift_cli::{CommandError, ExitKind, OutputFormat};

use crate::commands::cache;

/// Arguments of `lint`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The bundle definition folder (holding `airlift.yaml`).
    pub dir: PathBuf,
    /// How to print the result.
    #[arg(long, short = 'o', value_enum, default_value_t = OutputFormat::Text)]
    pub output: OutputFormat,
    /// Check the APIs against this one Kubernetes release (e.g. `1.33`) instead of the bundle's
    /// supported range.
    #[arg(long, value_name = "VERSION")]
    pub kubernetes: Option<String>,
    /// The blob cache images built from local files are kept in, for the next `build` to reuse
    /// while their files are unchanged [default: $XDG_CACHE_HOME/airlift/blobs].
    #[arg(long, value_name = "DIR", env = "AIRLIFT_CACHE_DIR")]
    pub cache_dir: Option<PathBuf>,
    /// Build images from local files into a scratch folder removed afterwards, not into the
    /// blob cache (--cache-dir is then ignored).
    #[arg(long)]
    pub no_cache: bool,
}

/// Runs `lint`.
pub fn run(args: Args) -> Result<(), CommandError> {
    require_folder(&args.dir)?;
    let cache = if args.no_cache {
        None
    } else if let Some(dir) = &args.cache_dir {
        Some(cache::open(dir)?)
    } else {
        // A check must not fail for want of the default cache: lint builds in scratch then.
        match cache::folder(None).and_then(|dir| cache::open(&dir)) {
            Ok(cache) => Some(cache),
            Err(e) => {
                scratch_warning(&format!("{:#}", e.error));
                None
            }
        }
    };
    let local = cache
        .as_ref()
        .map_or(LocalBuilds::Scratch, LocalBuilds::Cache);
    let report = lint(&args.dir, args.kubernetes.as_deref(), local);
    if args.output == OutputFormat::Text {
        for w in &report.warnings {
            eprintln!("warning: {}", airlift_cli::output::escape_control(w));
        }
    }
    match args.output {
        f @ (OutputFormat::Json | OutputFormat::Yaml) => airlift_cli::print_as(f, &report)?,
        OutputFormat::Text if report.ok => {
            outln!(
                "ok: `{}` passes lint: {} components, {} manifests, {} objects, {} images",
                report.definition,
                report.components,
                report.manifests,
                report.objects,
                report.images.len()
            )?;
            if !report.placeholders.is_empty() {
                outln!(
                    "note: required items without a SaaS default were rendered with placeholders: {}",
                    report.placeholders.join(", ")
                )?;
            }
        }
        OutputFormat::Text => {}
    }
    verdict(&report)
}

/// Lint goes on without the default cache: local images are built in a scratch folder.
fn scratch_warning(why: &str) {
    eprintln!(
        "warning: {}; images built from local files are built in a scratch folder, and the next \
         build compresses them again (pass --cache-dir DIR to keep them)",
        airlift_cli::output::escape_control(why)
    );
}

/// The checks `build` runs before it fetches anything: `Err` lists every problem. Images built
/// from local files are not built here: the build builds them next (once, not twice).
pub fn check(dir: &std::path::Path) -> Result<(), CommandError> {
    require_folder(dir)?;
    verdict(&lint(dir, None, LocalBuilds::Skip))
}

/// A definition folder named on the command line that does not exist is a wrong command line
/// (exit 2), not a lint problem.
fn require_folder(dir: &std::path::Path) -> Result<(), CommandError> {
    if dir.is_dir() {
        return Ok(());
    }
    Err(CommandError::new(
        ExitKind::Usage,
        anyhow::anyhow!(
            "the definition folder `{}` does not exist",
            airlift_cli::output::escape_control(&dir.display().to_string())
        ),
    )
    .with_hint("pass the folder that holds airlift.yaml, e.g. `airlift-pack lint bundles/demo`"))
}

fn verdict(report: &Report) -> Result<(), CommandError> {
    if report.ok {
        return Ok(());
    }
    let list = report
        .problems
        .iter()
        .map(|p| format!("  - [{}] {}", p.check, p.message.replace('\n', "\n    ")))
        .collect::<Vec<_>>()
        .join("\n");
    Err(CommandError::new(
        ExitKind::Config,
        anyhow::anyhow!(
            "`{}` failed lint with {} problem(s):\n{list}",
            report.definition,
            report.problems.len()
        ),
    )
    .with_hint("fix each problem above, then run `airlift-pack lint` again"))
}
