//! `airlift-pack build`.

use airlift_cli::outln;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use airlift_bundle::sign::PrivateKey;
use airlift_bundle::writer::Reuse;
use airlift_cli::output::human_bytes;
use airlift_cli::{
    progress_with_total, CommandError, ExitKind, OutputFormat, RegistryFlags, ResultExt,
};
use anyhow::Context;

use airlift_build::{build, BuildError, BuildRequest, BuildSummary, KeepLayers};

use crate::commands::cache;

/// Arguments of `build`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The bundle definition folder (holding airlift.yaml).
    pub dir: PathBuf,
    /// The vendor's private signing key (PEM, from `airlift-pack keygen`).
    #[arg(long, value_name = "FILE", required_unless_present = "unsigned")]
    pub key: Option<PathBuf>,
    /// Sign with a private key file that other users can read (refused by default, as ssh does).
    #[arg(long, requires = "key")]
    pub allow_insecure_key_permissions: bool,
    /// Build an unsigned bundle. Installers refuse it unless told --insecure-skip-verify.
    #[arg(long, conflicts_with = "key")]
    pub unsigned: bool,
    /// The folder the bundle is written to, as NAME-VERSION.airlift.
    #[arg(long, value_name = "DIR", default_value = "dist")]
    pub out: PathBuf,
    /// The blob cache [default: $XDG_CACHE_HOME/airlift/blobs].
    #[arg(long, value_name = "DIR", env = "AIRLIFT_CACHE_DIR")]
    pub cache_dir: Option<PathBuf>,
    /// Use no blob cache: nothing cached is reused, and downloaded layers are written into the
    /// bundle only, so the build needs the bundle's size on disk, not twice that (--cache-dir
    /// is then ignored).
    #[arg(long)]
    pub no_cache: bool,
    /// Apply --registry-user to this registry (`host[:port]`).
    #[arg(long, value_name = "HOST", requires = "registry_user")]
    pub registry_login: Option<String>,
    /// Registry access.
    #[command(flatten)]
    pub registry: RegistryFlags,
    /// How many images are fetched at the same time.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u16).range(1..=16))]
    pub image_concurrency: u16,
    /// Output format.
    #[arg(long, short = 'o', value_enum, default_value_t = OutputFormat::Text)]
    pub output: OutputFormat,
}

/// Runs `build`.
pub fn run(args: Args, no_progress: bool) -> Result<(), CommandError> {
    crate::commands::lint::check(&args.dir)?;
    let definition = airlift_render::load_definition(&args.dir).map_err(CommandError::diagnosed)?;
    let key = match &args.key {
        Some(path) => Some(
            PrivateKey::load_private(path, args.allow_insecure_key_permissions)
                .map_err(CommandError::diagnosed)?,
        ),
        None => None,
    };
    // With --no-cache, manifests, configs and locally built layers go through a throwaway
    // cache next to the bundle, removed when the build ends.
    let throwaway = if args.no_cache {
        fs_err::create_dir_all(&args.out)?;
        let t = tempfile::Builder::new()
            .prefix(".airlift-no-cache-")
            .tempdir_in(&args.out)
            .with_context(|| format!("cannot create a folder in `{}`", args.out.display()))?;
        Some(t)
    } else {
        None
    };
    let cache_dir = match &throwaway {
        Some(t) => t.path().to_path_buf(),
        None => cache::folder(args.cache_dir.as_deref())?,
    };
    let cache = cache::open(&cache_dir)?;
    let registry = args
        .registry
        .options(args.registry_login.as_deref())
        .kind(ExitKind::Usage)?;
    let source_date_epoch = match std::env::var("SOURCE_DATE_EPOCH") {
        Ok(s) => Some(s.trim().parse::<u64>().map_err(|_| {
            CommandError::new(
                ExitKind::Config,
                anyhow::anyhow!("SOURCE_DATE_EPOCH `{s}` is not a whole number of seconds"),
            )
        })?),
        Err(_) => None,
    };
    let stop = Arc::new(AtomicBool::new(false));
    let req = BuildRequest {
        definition,
        key,
        out_dir: args.out.clone(),
        cache,
        keep_layers: if args.no_cache {
            KeepLayers::No
        } else {
            KeepLayers::InCache
        },
        registry,
        image_concurrency: usize::from(args.image_concurrency),
        source_date_epoch,
        stop: stop.clone(),
    };
    let progress: Arc<dyn airlift_bundle::Progress> = Arc::from(progress_with_total(
        no_progress || args.output.is_machine(),
        "all images",
        &["write"],
    ));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let out_dir = args.out.clone();
    let result = runtime.block_on(stop_on_signals(build(req, progress), &stop, &out_dir));
    // Waits for the bundle writer's copies, which stop at their next blob once `stop` is set,
    // so the partial file and the throwaway cache are gone when the command returns.
    drop(runtime);
    drop(throwaway);
    let summary = match result {
        Ok(summary) => summary,
        Err(err) if stop.load(Ordering::Relaxed) => {
            return Err(interrupted(err, &out_dir, args.no_cache, &cache_dir))
        }
        Err(err) => return Err(CommandError::diagnosed(err)),
    };
    match args.output {
        f @ (OutputFormat::Json | OutputFormat::Yaml) => airlift_cli::print_as(f, &summary)?,
        OutputFormat::Text => print_summary(&summary)?,
    }
    Ok(())
}

/// Runs `work`; on SIGINT or SIGTERM sets `stop` (the build stops at its next blob or chunk and
/// removes its partial file) and waits for it to end; a second signal exits at once with 130.
async fn stop_on_signals<T>(
    work: impl std::future::Future<Output = Result<T, BuildError>>,
    stop: &AtomicBool,
    out_dir: &std::path::Path,
) -> Result<T, BuildError> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut work = std::pin::pin!(work);
    let (Ok(mut int), Ok(mut term)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) else {
        return work.await;
    };
    tokio::select! {
        r = &mut work => return r,
        _ = int.recv() => {}
        _ = term.recv() => {}
    }
    stop.store(true, Ordering::Relaxed);
    eprintln!(
        "interrupted: stopping the build at its next blob and removing the partial bundle (send \
         it again to stop at once, leaving a `.airlift-partial-*` file in `{}`)",
        airlift_cli::output::escape_control(&out_dir.display().to_string())
    );
    tokio::select! {
        r = &mut work => r,
        _ = int.recv() => stopped_at_once(),
        _ = term.recv() => stopped_at_once(),
    }
}

fn stopped_at_once() -> ! {
    eprintln!("interrupted again: stopping now");
    std::process::exit(i32::from(ExitKind::Interrupted.code()))
}

/// The error of a build the operator stopped: what was kept and how to go on.
fn interrupted(
    err: BuildError,
    out_dir: &std::path::Path,
    no_cache: bool,
    cache_dir: &std::path::Path,
) -> CommandError {
    let hint = if no_cache {
        "run the same command again: with --no-cache it starts over".to_string()
    } else {
        format!(
            "run the same command again: blobs already in the cache `{}` are reused",
            cache_dir.display()
        )
    };
    let err = anyhow::Error::new(err).context(format!(
        "build interrupted: no bundle was written to `{}` and its partial file is removed",
        out_dir.display()
    ));
    CommandError::new(ExitKind::Interrupted, err).with_hint(hint)
}

fn print_summary(s: &BuildSummary) -> std::io::Result<()> {
    outln!("Built {}", s.bundle.display())?;
    outln!(
        "  {} images, {} unique blobs, {} stored ({} referenced, {} saved by deduplication)",
        s.images.len(),
        s.unique_blobs,
        human_bytes(s.unique_bytes),
        human_bytes(s.referenced_bytes),
        human_bytes(s.dedup_saved_bytes)
    )?;
    outln!(
        "  bundle {}, {} downloaded, {:.1}s, {}",
        human_bytes(s.size),
        human_bytes(s.downloaded_bytes),
        s.seconds,
        if s.signed { "signed" } else { "UNSIGNED" }
    )?;
    match s.reused {
        Some(Reuse::Unchanged) => outln!(
            "  unchanged: the file there already has exactly these bytes; nothing was written"
        )?,
        Some(Reuse::Linked) => {
            outln!("  the cache held exactly this bundle: linked into place, nothing was written")?
        }
        None => {}
    }
    for img in &s.images {
        outln!(
            "  {:<50} {} [{}]{}",
            img.reference,
            &img.digest[..19.min(img.digest.len())],
            img.platforms.join(", "),
            match img.layer_reused {
                Some(true) => " (files unchanged: layer reused)",
                Some(false) => " (layer built)",
                None => "",
            }
        )?;
    }
    Ok(())
}
