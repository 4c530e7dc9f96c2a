//! `airlift-test-cluster`: runs the test cluster (an HTTPS Kubernetes API double on loopback)
//! until killed, for manual testing with kubectl or the installer.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use airlift_testkit::cluster::{ClusterOptions, FailureMode, PlatformPreset, TestCluster};
use anyhow::Context;
use clap::Parser;

/// Runs the Airlift test cluster on loopback and writes a kubeconfig for it.
#[derive(Debug, Parser)]
#[command(name = "airlift-test-cluster", disable_version_flag = true)]
struct Args {
    /// Where to write the kubeconfig.
    #[arg(long, value_name = "FILE")]
    kubeconfig_out: PathBuf,
    /// Address to listen on (loopback only).
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// Kubernetes version to report.
    #[arg(long, default_value = "1.30.2")]
    version: String,
    /// Node architectures, one node each (comma-separated).
    #[arg(long, default_value = "amd64", value_delimiter = ',')]
    nodes: Vec<String>,
    /// Milliseconds before Pods become ready.
    #[arg(long, default_value_t = 300)]
    ready_delay_ms: u64,
    /// Fail Pods whose image contains SUBSTRING: `SUBSTRING=ImagePullBackOff|CrashLoopBackOff|Unschedulable`.
    #[arg(long, value_name = "SUBSTRING=MODE")]
    fail_image: Vec<String>,
    /// Add a user (and kubeconfig context) of this name, allowed only what RBAC objects grant.
    #[arg(long, value_name = "NAME")]
    user: Vec<String>,
    /// Print one line per request to stderr.
    #[arg(long)]
    verbose: bool,
    /// Present the cluster as this platform (version, nodes, storage and ingress classes);
    /// overrides --version and --nodes.
    #[arg(long, value_parser = ["eks", "gke", "aks", "openshift", "datacenter"])]
    platform: Option<String>,
    /// Kubelets resolve each image against its registry before running it (see
    /// docs/test-cluster.md, "Image pulls").
    #[arg(long)]
    pull_images: bool,
    /// Reach this registry host (`127.0.0.1:5000`) over plain HTTP; implies --pull-images.
    #[arg(long, value_name = "HOST")]
    insecure_registry: Vec<String>,
    /// Trust this CA certificate (PEM file) for registries; implies --pull-images.
    #[arg(long, value_name = "FILE")]
    registry_ca: Vec<PathBuf>,
}

fn mode(s: &str) -> anyhow::Result<FailureMode> {
    match s {
        "ImagePullBackOff" => Ok(FailureMode::ImagePullBackOff),
        "CrashLoopBackOff" => Ok(FailureMode::CrashLoopBackOff),
        "Unschedulable" => Ok(FailureMode::Unschedulable),
        other => anyhow::bail!(
            "unknown failure mode `{other}`; use ImagePullBackOff, CrashLoopBackOff or Unschedulable"
        ),
    }
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    anyhow::ensure!(
        args.listen.ip().is_loopback(),
        "--listen {} is not a loopback address; the test cluster only listens on loopback",
        args.listen
    );
    let arches: Vec<&str> = args.nodes.iter().map(String::as_str).collect();
    let opts = ClusterOptions {
        listen: args.listen,
        log_requests: args.verbose,
        users: args.user.clone(),
        ..ClusterOptions::default()
    }
    .with_version(&args.version)
    .with_nodes(&arches)
    .with_ready_delay(Duration::from_millis(args.ready_delay_ms))
    .with_kubeconfig_out(&args.kubeconfig_out);
    let opts = match args.platform.as_deref() {
        Some("eks") => opts.as_platform(PlatformPreset::Eks),
        Some("gke") => opts.as_platform(PlatformPreset::Gke),
        Some("aks") => opts.as_platform(PlatformPreset::Aks),
        Some("openshift") => opts.as_platform(PlatformPreset::OpenShift),
        Some("datacenter") => opts.as_platform(PlatformPreset::Datacenter),
        _ => opts,
    };
    let mut opts = opts;
    if args.pull_images {
        opts = opts.pull_images();
    }
    for host in &args.insecure_registry {
        opts = opts.insecure_registry(host);
    }
    for ca in &args.registry_ca {
        let pem = fs_err::read_to_string(ca)?;
        opts = opts.registry_ca(&pem);
    }
    let cluster = TestCluster::start(opts).with_context(|| {
        format!(
            "failed to start the test cluster (kubeconfig `{}`)",
            args.kubeconfig_out.display()
        )
    })?;
    for f in &args.fail_image {
        let (sub, m) = f
            .split_once('=')
            .with_context(|| format!("--fail-image `{f}` must look like SUBSTRING=MODE"))?;
        cluster.fail_image(sub, mode(m)?);
    }
    println!("{}", cluster.url());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("failed to start a runtime to wait for Ctrl-C")?;
    rt.block_on(async {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::select! {
            r = tokio::signal::ctrl_c() => r,
            _ = term.recv() => Ok(()),
        }
    })
    .context("failed to wait for a signal")?;
    cluster.stop();
    Ok(())
}
