//! `airlift-install serve BUNDLE --listen 127.0.0.1:5000`: a read-only OCI registry served
//! straight from the verified bundle file, for sites without a registry of their own (point the
//! nodes' registry mirrors at it). Images are served under their original paths, by tag and by
//! digest; nothing is extracted.

use airlift_cli::outln;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use airlift_bundle::BlobSource;
use airlift_cli::{CommandError, ExitKind};
use airlift_registry::serve::{serve, Catalog};

use crate::args::runtime;
use crate::args::TrustArgs;
use crate::bundle::open_verified;
use airlift_deploy::render::push_images;

/// Arguments of `serve`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The bundle file.
    pub bundle: PathBuf,
    /// Key flags.
    #[command(flatten)]
    pub trust: TrustArgs,
    /// The address to listen on (plain HTTP). Use a loopback or cluster-internal address.
    #[arg(long, value_name = "ADDR:PORT", default_value = "127.0.0.1:5000")]
    pub listen: SocketAddr,
    /// Hash the whole bundle even if this exact file was verified before.
    #[arg(long)]
    pub no_cache: bool,
}

/// Runs `serve` until interrupted.
pub fn run(args: Args, no_progress: bool) -> Result<(), CommandError> {
    let trust = args.trust.trust()?;
    let (bundle, _verified) = open_verified(&args.bundle, &trust, no_progress, args.no_cache)?;
    let images = push_images(bundle.manifest());
    let source: Arc<dyn BlobSource> = Arc::new(bundle);
    let catalog = Catalog::from_images(&*source, &images).map_err(|e| {
        CommandError::new(
            ExitKind::Trust,
            anyhow::Error::new(e).context(format!(
                "cannot serve the images of bundle `{}`",
                args.bundle.display()
            )),
        )
        .with_hint("the bundle's images are incomplete: ask the vendor for a new copy")
    })?;
    let rt = runtime()?;
    rt.block_on(async {
        let listener = tokio::net::TcpListener::bind(args.listen)
            .await
            .map_err(|e| {
                CommandError::new(
                    ExitKind::Failure,
                    anyhow::Error::new(e).context(format!("cannot listen on {}", args.listen)),
                )
                .with_hint("pick a free port with --listen ADDR:PORT")
            })?;
        let addr = listener.local_addr().unwrap_or(args.listen);
        outln!(
            "serving {} images of {} read-only on http://{addr} (Ctrl-C to stop)",
            images.len(),
            args.bundle.display()
        )?;
        for (repo, tag, digest) in catalog.tags() {
            outln!("  {addr}/{repo}:{tag}  {digest}")?;
        }
        let shutdown = async {
            let _ = tokio::signal::ctrl_c().await;
        };
        serve(listener, source, catalog, shutdown)
            .await
            .map_err(|e| {
                CommandError::new(
                    ExitKind::Failure,
                    anyhow::Error::new(e).context("the endpoint stopped"),
                )
            })
    })
}
