//! `airlift-install render BUNDLE --registry … --out DIR`: the final manifests, for GitOps sites.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use airlift_cli::outln;

use std::collections::BTreeMap;

use airlift_cli::{progress_for, CommandError, ExitKind, OutputFormat, ResultExt};
use airlift_deploy::render::{planned_relocation, render_bundle, select_components, Rendered};
use airlift_deploy::site::{release_names, resolve_config};
use airlift_deploy::{open_verified, SiteRequest};
use airlift_render::ReleaseInfo;

use crate::args::{ComponentArgs, ConfigArgs, TargetArgs, TrustArgs};
use crate::interact::Terminal;

/// Arguments of `render`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The bundle file.
    pub bundle: PathBuf,
    /// Key flags.
    #[command(flatten)]
    pub trust: TrustArgs,
    /// Where the images are (or will be) in the customer registry.
    #[command(flatten)]
    pub target: TargetArgs,
    /// Configuration.
    #[command(flatten)]
    pub config: ConfigArgs,
    /// Optional components.
    #[command(flatten)]
    pub components: ComponentArgs,
    /// The release namespace [default: the release name].
    #[arg(long, short = 'n', value_name = "NAMESPACE")]
    pub namespace: Option<String>,
    /// The release name [default: the bundle's name].
    #[arg(long, value_name = "NAME")]
    pub release: Option<String>,
    /// The folder to write the manifests to; it must be empty or absent.
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Output format.
    #[arg(long, short = 'o', value_enum, default_value_t = OutputFormat::Text)]
    pub output: OutputFormat,
}

/// Runs `render`.
pub fn run(args: Args, no_progress: bool) -> Result<(), CommandError> {
    let diag = CommandError::diagnosed;
    let trust = args.trust.trust()?;
    let progress = progress_for(no_progress);
    let (bundle, _) =
        open_verified(&args.bundle, &trust, progress.as_ref(), false).map_err(diag)?;
    let m = bundle.manifest();
    let site = SiteRequest {
        release: args.release.clone(),
        namespace: args.namespace.clone(),
        values_files: args.config.values.clone(),
        set: args.config.set.clone(),
        ..SiteRequest::default()
    };
    let (name, namespace) = release_names(&site, &m.metadata.name);
    let release = ReleaseInfo {
        name,
        namespace,
        revision: 1,
    };
    let (config, _) = resolve_config(
        &m.config,
        &site,
        None,
        &BTreeMap::new(),
        &Terminal::new(args.config.yes),
    )
    .map_err(diag)?;
    let relocation = planned_relocation(m, &args.target.destination()?).map_err(diag)?;
    let components = select_components(
        &m.components,
        &args.components.enable,
        &args.components.disable,
    )
    .map_err(diag)?;
    let rendered = render_bundle(
        &bundle,
        &components,
        &config,
        &relocation,
        None,
        &release,
        None,
    )
    .map_err(diag)?;
    let files = write_out(&args.out, &rendered).kind(ExitKind::Failure)?;
    let secrets = rendered
        .iter()
        .filter(|r| r.object.kind() == "Secret")
        .count();
    match args.output {
        f @ (OutputFormat::Json | OutputFormat::Yaml) => airlift_cli::print_as(
            f,
            &serde_json::json!({
                "bundle": args.bundle,
                "out": args.out,
                "objects": rendered.len(),
                "files": files,
                "relocation": relocation,
            }),
        )?,
        OutputFormat::Text => {
            outln!(
                "Rendered {} objects from {} {} into {}",
                rendered.len(),
                m.metadata.name,
                m.metadata.version,
                args.out.display()
            )?;
            if secrets > 0 {
                outln!(
                    "  {secrets} Secret manifests hold configuration values: their files are mode 0600; keep them out of plain Git"
                )?;
            }
        }
    }
    Ok(())
}

/// One file per object: `NN-component/NNN-kind-name.yaml`, in apply order. Secret files are
/// written 0600.
fn write_out(out: &Path, rendered: &[Rendered]) -> anyhow::Result<Vec<String>> {
    if out.exists() && fs_err::read_dir(out)?.next().is_some() {
        anyhow::bail!(
            "output folder `{}` is not empty: render into a new or empty folder",
            out.display()
        );
    }
    let mut orders: Vec<(i32, &str)> = rendered
        .iter()
        .map(|r| (r.order, r.component.as_str()))
        .collect();
    orders.sort();
    orders.dedup();
    let mut files = Vec::new();
    for (i, r) in rendered.iter().enumerate() {
        let pos = orders
            .iter()
            .position(|(o, c)| *o == r.order && *c == r.component)
            .unwrap_or_default();
        let dir = out.join(format!("{:02}-{}", pos + 1, r.component));
        fs_err::create_dir_all(&dir)?;
        let name = format!(
            "{:03}-{}-{}.yaml",
            i + 1,
            r.object.kind().to_ascii_lowercase(),
            sanitize(r.object.name())
        );
        let path = dir.join(&name);
        let mode = if r.object.kind() == "Secret" {
            0o600
        } else {
            0o644
        };
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&path)
            .map_err(|e| {
                anyhow::Error::new(e).context(format!("cannot create `{}`", path.display()))
            })?;
        f.write_all(serde_yaml::to_string(&r.object.value)?.as_bytes())?;
        files.push(
            path.strip_prefix(out)
                .unwrap_or(&path)
                .display()
                .to_string(),
        );
    }
    Ok(files)
}

fn sanitize(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect()
}
