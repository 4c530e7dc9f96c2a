//! `airlift-install fleet plan|rollout|status`: one bundle to every cluster of a fleet file, in
//! stages with gates and bake times, resumable from each cluster's release records. The logic
//! is `airlift-fleet`; this file holds flags, progress lines and printing.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use airlift_cli::output::escape_control;
use airlift_cli::{outln, progress_for, CommandError, ExitKind, OutputFormat};
use airlift_fleet::inspect::{self, FleetPlan, FleetStatus};
use airlift_fleet::rollout::Event;
use airlift_fleet::{Fleet, ResolvedFleet, Rollout, RolloutReport};

use crate::args::{runtime, TrustArgs};
use crate::signals::cancel_on_signals;

/// Arguments of `fleet`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// What to do with the fleet.
    #[command(subcommand)]
    pub command: FleetCommand,
}

impl Args {
    /// The `--output` format of the subcommand (which also decides how an error is printed).
    pub fn output(&self) -> OutputFormat {
        match &self.command {
            FleetCommand::Plan(a) => a.output,
            FleetCommand::Rollout(a) => a.target.output,
            FleetCommand::Status(a) => a.output,
        }
    }
}

/// The fleet subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum FleetCommand {
    /// Per cluster: the running version and the target, what would change, preflight.
    /// Changes nothing.
    Plan(BundleArgs),
    /// Roll the bundle out stage by stage, with gates and bake times; resumable.
    Rollout(RolloutArgs),
    /// Every cluster's release, version, health, drift and server version.
    Status(StatusArgs),
}

/// A fleet file and a bundle.
#[derive(Debug, clap::Args)]
pub struct BundleArgs {
    /// The fleet file (`kind: Fleet`).
    pub fleet: PathBuf,
    /// The bundle file.
    pub bundle: PathBuf,
    /// Key flags.
    #[command(flatten)]
    pub trust: TrustArgs,
    /// How many clusters are contacted at once.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub parallel: u16,
    /// Output format.
    #[arg(long, short = 'o', value_enum, default_value_t = OutputFormat::Text)]
    pub output: OutputFormat,
}

/// Arguments of `fleet rollout`.
#[derive(Debug, clap::Args)]
pub struct RolloutArgs {
    /// The fleet file and the bundle.
    #[command(flatten)]
    pub target: BundleArgs,
    /// Take a release's lock even if another operation holds it (only when that one is gone).
    #[arg(long)]
    pub force_unlock: bool,
}

/// Arguments of `fleet status`.
#[derive(Debug, clap::Args)]
pub struct StatusArgs {
    /// The fleet file (`kind: Fleet`).
    pub fleet: PathBuf,
    /// A bundle: count clusters at its version and check servers against its Kubernetes range.
    #[arg(long, value_name = "FILE")]
    pub bundle: Option<PathBuf>,
    /// Key flags (for --bundle).
    #[command(flatten)]
    pub trust: TrustArgs,
    /// The release name, when the fleet file names none and no --bundle is given.
    #[arg(long, value_name = "NAME")]
    pub release: Option<String>,
    /// How many clusters are contacted at once.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub parallel: u16,
    /// Output format.
    #[arg(long, short = 'o', value_enum, default_value_t = OutputFormat::Text)]
    pub output: OutputFormat,
}

/// Runs `fleet`.
pub fn run(args: Args, no_progress: bool) -> Result<(), CommandError> {
    match args.command {
        FleetCommand::Plan(a) => plan(a, no_progress),
        FleetCommand::Rollout(a) => rollout(a, no_progress),
        FleetCommand::Status(a) => status(a, no_progress),
    }
}

fn load(path: &Path) -> Result<ResolvedFleet, CommandError> {
    Fleet::load(path)
        .and_then(|f| f.resolve(path))
        .map_err(CommandError::diagnosed)
}

fn open(
    path: &Path,
    trust: &TrustArgs,
    quiet: bool,
) -> Result<Arc<airlift_bundle::Bundle>, CommandError> {
    let trust = trust.trust()?;
    let progress = progress_for(quiet);
    let (bundle, _) = airlift_deploy::open_verified(path, &trust, progress.as_ref(), false)
        .map_err(CommandError::diagnosed)?;
    Ok(Arc::new(bundle))
}

fn plan(a: BundleArgs, no_progress: bool) -> Result<(), CommandError> {
    let fleet = load(&a.fleet)?;
    let bundle = open(&a.bundle, &a.trust, no_progress || a.output.is_machine())?;
    let report = runtime()?.block_on(inspect::plan(&fleet, bundle, usize::from(a.parallel)));
    match a.output {
        f @ (OutputFormat::Json | OutputFormat::Yaml) => airlift_cli::print_as(f, &report)?,
        OutputFormat::Text => print_plan(&report)?,
    }
    match report.error() {
        Some(e) => Err(CommandError::diagnosed(e)),
        None => Ok(()),
    }
}

fn print_plan(p: &FleetPlan) -> std::io::Result<()> {
    outln!(
        "Fleet {}: plan for {} {} (Kubernetes {})",
        p.fleet,
        p.target.name,
        p.target.version,
        p.kubernetes
    )?;
    outln!(
        "{:<12} {:<20} {:<16} {:<18} {:<28} PREFLIGHT",
        "STAGE",
        "CLUSTER",
        "SERVER",
        "VERSION",
        "CHANGES"
    )?;
    for c in &p.clusters {
        let server = c.server.as_ref().map_or("-".to_string(), |s| {
            let flag = if s.supported == Some(false) {
                " (unsupported)"
            } else {
                ""
            };
            format!("{}{flag}", s.version)
        });
        let version = match (&c.from, c.current) {
            (_, true) => format!("{} (current)", p.target.version),
            (Some(f), _) => format!("{} -> {}", f.version, p.target.version),
            (None, _) => format!("new -> {}", p.target.version),
        };
        let changes = c.counts.as_ref().map_or("-".to_string(), |n| {
            format!(
                "+{} ~{} ±{} -{}, {} values",
                n.create, n.change, n.replace, n.delete, n.values
            )
        });
        let preflight = match (&c.error, c.preflight.is_empty()) {
            (Some(e), _) => format!("error: {}", escape_control(e)),
            (None, true) => "passed".to_string(),
            (None, false) => c
                .preflight
                .iter()
                .map(|f| format!("{}: {}", f.area, escape_control(&f.problem)))
                .collect::<Vec<_>>()
                .join("; "),
        };
        outln!(
            "{:<12} {:<20} {:<16} {:<18} {:<28} {}",
            c.stage,
            c.cluster,
            escape_control(&server),
            version,
            changes,
            preflight
        )?;
    }
    outln!("Nothing was changed.")
}

/// Prints one line per cluster state change and the bake timer, to stderr.
struct Lines {
    start: Instant,
    last_bake: std::sync::Mutex<Option<Instant>>,
}

impl airlift_fleet::Reporter for Lines {
    fn event(&self, event: &Event<'_>) {
        let t = self.start.elapsed().as_secs_f64();
        match event {
            Event::Stage { stage, clusters } => {
                eprintln!("[{t:7.1}s] stage {stage}: {clusters} cluster(s)");
            }
            Event::Cluster {
                stage,
                cluster,
                state,
                elapsed,
            } => eprintln!(
                "[{t:7.1}s] {stage:<10} {cluster:<20} {:<60} {:.1}s",
                escape_control(state),
                elapsed.as_secs_f64()
            ),
            Event::Baking {
                stage,
                remaining,
                total,
            } => {
                // One bake line every 30 s at most, plus the first.
                let mut last = self.last_bake.lock().unwrap_or_else(|e| e.into_inner());
                if last.is_none_or(|l| l.elapsed() >= Duration::from_secs(30)) {
                    *last = Some(Instant::now());
                    eprintln!(
                        "[{t:7.1}s] stage {stage}: baking, {}s of {}s left, gates healthy",
                        remaining.as_secs(),
                        total.as_secs()
                    );
                }
            }
        }
    }
}

fn rollout(a: RolloutArgs, no_progress: bool) -> Result<(), CommandError> {
    let t = &a.target;
    let fleet = load(&t.fleet)?;
    let bundle = open(&t.bundle, &t.trust, no_progress || t.output.is_machine())?;
    let rt = runtime()?;
    let cancel = cancel_on_signals(&rt);
    let reporter: Arc<dyn airlift_fleet::Reporter> = if t.output.is_machine() {
        Arc::new(airlift_fleet::Silent)
    } else {
        Arc::new(Lines {
            start: Instant::now(),
            last_bake: std::sync::Mutex::new(None),
        })
    };
    let report = rt.block_on(async {
        let mut r = Rollout::new(&fleet, &t.fleet, bundle, reporter, cancel);
        r.force_unlock = a.force_unlock;
        r.run().await
    });
    let report = report.map_err(CommandError::diagnosed)?;
    match t.output {
        f @ (OutputFormat::Json | OutputFormat::Yaml) => airlift_cli::print_as(f, &report)?,
        OutputFormat::Text => print_rollout(&report)?,
    }
    match report.error() {
        Some(e) => Err(CommandError::diagnosed(e)),
        None => Ok(()),
    }
}

fn print_rollout(r: &RolloutReport) -> std::io::Result<()> {
    outln!(
        "Fleet {}: rollout of {} {}",
        r.fleet,
        r.target.name,
        r.target.version
    )?;
    outln!(
        "{:<12} {:<20} {:<12} {:<10} {:>8} {:>8}  REASON",
        "STAGE",
        "CLUSTER",
        "RESULT",
        "VERSION",
        "REVISION",
        "TIME"
    )?;
    for c in &r.clusters {
        outln!(
            "{:<12} {:<20} {:<12} {:<10} {:>8} {:>7.1}s  {}",
            c.stage,
            c.cluster,
            c.result.word(),
            c.version.as_deref().unwrap_or("-"),
            c.revision.map_or("-".to_string(), |n| n.to_string()),
            c.elapsed_ms as f64 / 1000.0,
            escape_control(c.reason.as_deref().unwrap_or(""))
        )?;
    }
    outln!("{}", r.summary)
}

fn status(a: StatusArgs, no_progress: bool) -> Result<(), CommandError> {
    let fleet = load(&a.fleet)?;
    let bundle = match &a.bundle {
        Some(p) => Some(open(p, &a.trust, no_progress || a.output.is_machine())?),
        None => None,
    };
    let name = match (&bundle, &a.release) {
        (Some(b), _) => b.manifest().metadata.name.clone(),
        (None, Some(r)) => r.clone(),
        (None, None) if fleet.clusters.iter().all(|c| c.has_release()) => String::new(),
        (None, None) => {
            return Err(CommandError::new(
                ExitKind::Usage,
                anyhow::anyhow!("the fleet file names no release for some clusters"),
            )
            .with_hint("pass --release NAME or --bundle FILE, or set `defaults.release`"))
        }
    };
    let report = runtime()?.block_on(inspect::status(
        &fleet,
        &name,
        bundle.as_deref(),
        usize::from(a.parallel),
    ));
    match a.output {
        f @ (OutputFormat::Json | OutputFormat::Yaml) => airlift_cli::print_as(f, &report)?,
        OutputFormat::Text => print_status(&report)?,
    }
    Ok(())
}

fn print_status(s: &FleetStatus) -> std::io::Result<()> {
    outln!("Fleet {}", s.fleet)?;
    outln!(
        "{:<12} {:<20} {:<22} {:<10} {:>8}  {:<12} HEALTH",
        "STAGE",
        "CLUSTER",
        "SERVER",
        "VERSION",
        "REVISION",
        "DRIFT"
    )?;
    for c in &s.clusters {
        let server = c.server.as_ref().map_or("unreachable".to_string(), |v| {
            let flag = if v.supported == Some(false) {
                " UNSUPPORTED"
            } else {
                ""
            };
            format!("{}{flag}", v.version)
        });
        let drift = if !c.reachable || c.version.is_none() {
            "-".to_string()
        } else if c.drift.is_empty() {
            "clean".to_string()
        } else {
            format!("{} object(s)", c.drift.len())
        };
        let health = match &c.error {
            Some(e) => format!("{}: {}", c.health, e),
            None => c.health.clone(),
        };
        outln!(
            "{:<12} {:<20} {:<22} {:<10} {:>8}  {:<12} {}",
            c.stage,
            c.cluster,
            escape_control(&server),
            c.version.as_deref().unwrap_or("-"),
            c.revision.map_or("-".to_string(), |n| n.to_string()),
            drift,
            escape_control(&health)
        )?;
        for d in &c.drift {
            outln!("{:<33} drift: {}", "", escape_control(d))?;
        }
    }
    outln!("{}", s.summary)
}
