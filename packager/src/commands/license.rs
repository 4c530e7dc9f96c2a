//! `airlift-pack license issue`: writes a license signed with the vendor's bundle key, which
//! installers check offline (and `openssl dgst -verify` checks too).

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;

use airlift_bundle::license::{issue, parse_date, LicenseRequest};
use airlift_bundle::PrivateKey;
use airlift_cli::{outln, CommandError, ExitKind};

/// Arguments of `license`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// What to do.
    #[command(subcommand)]
    pub action: Action,
}

/// The `license` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum Action {
    /// Write a signed license for one customer.
    Issue(IssueArgs),
}

/// Arguments of `license issue`.
#[derive(Debug, clap::Args)]
pub struct IssueArgs {
    /// The vendor's private signing key: the one that signs the bundles.
    #[arg(long, value_name = "FILE")]
    pub key: PathBuf,
    /// Sign with a private key file that other users can read (refused by default, as ssh does).
    #[arg(long)]
    pub allow_insecure_key_permissions: bool,
    /// The customer's name.
    #[arg(long, value_name = "NAME")]
    pub customer: String,
    /// Your id for the customer.
    #[arg(long, value_name = "ID")]
    pub customer_id: String,
    /// The release channel the customer may install from.
    #[arg(long, value_name = "CHANNEL")]
    pub channel: String,
    /// The last day the license is valid (`YYYY-MM-DD`: through 23:59:59 UTC that day), or an
    /// exact time `YYYY-MM-DDTHH:MM:SSZ` [default: never expires].
    #[arg(long, value_name = "DATE")]
    pub expires: Option<String>,
    /// The first day the license is valid (`YYYY-MM-DD`: from 00:00:00 UTC), or an exact time.
    #[arg(long, value_name = "DATE")]
    pub valid_from: Option<String>,
    /// The most nodes the customer's cluster may have [default: no limit].
    #[arg(long, value_name = "N")]
    pub max_nodes: Option<u32>,
    /// An entitlement, `KEY=VALUE` (typed by the bundle's entitlement schema). Repeatable.
    #[arg(long = "entitlement", value_name = "KEY=VALUE")]
    pub entitlements: Vec<String>,
    /// The license file to write (never overwritten).
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
}

fn usage(message: String, hint: &str) -> CommandError {
    CommandError::new(ExitKind::Usage, anyhow::anyhow!(message)).with_hint(hint)
}

fn date(flag: &str, text: &Option<String>, end_of_day: bool) -> Result<Option<u64>, CommandError> {
    text.as_deref()
        .map(|t| {
            parse_date(t, end_of_day).ok_or_else(|| {
                usage(
                    format!("--{flag} `{t}` is not a date"),
                    "write YYYY-MM-DD (UTC) or YYYY-MM-DDTHH:MM:SSZ",
                )
            })
        })
        .transpose()
}

/// Runs `license`.
pub fn run(args: Args) -> Result<(), CommandError> {
    match args.action {
        Action::Issue(a) => run_issue(a),
    }
}

fn run_issue(a: IssueArgs) -> Result<(), CommandError> {
    let mut entitlements = BTreeMap::new();
    for e in &a.entitlements {
        let (k, v) = e.split_once('=').ok_or_else(|| {
            usage(
                format!("--entitlement `{e}` is not KEY=VALUE"),
                "write e.g. --entitlement reports=true",
            )
        })?;
        if entitlements.insert(k.to_string(), v.to_string()).is_some() {
            return Err(usage(
                format!("--entitlement `{k}` is given twice"),
                "give each entitlement once",
            ));
        }
    }
    let request = LicenseRequest {
        customer: a.customer.clone(),
        customer_id: a.customer_id.clone(),
        channel: a.channel.clone(),
        valid_from: date("valid-from", &a.valid_from, false)?,
        expires: date("expires", &a.expires, true)?,
        max_nodes: a.max_nodes,
        entitlements,
    };
    let key = PrivateKey::load_private(&a.key, a.allow_insecure_key_permissions).map_err(|e| {
        let hint = e.hint();
        CommandError::new(ExitKind::Trust, e).with_hint(hint)
    })?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let (license, bytes) = issue(&request, &key, now).map_err(|e| {
        let hint = e.hint();
        CommandError::new(ExitKind::Usage, e).with_hint(hint)
    })?;
    if request.expires.is_some_and(|t| t <= now) {
        eprintln!("warning: this license has already expired");
    }
    let write = || -> std::io::Result<()> {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&a.out)?;
        f.write_all(&bytes)?;
        f.sync_all()
    };
    write().map_err(|e| {
        CommandError::new(
            ExitKind::Failure,
            anyhow::Error::new(e).context(format!("cannot write license `{}`", a.out.display())),
        )
        .with_hint("choose a new --out file (licenses are never overwritten)")
    })?;
    outln!("wrote license {} to {}", license, a.out.display())?;
    outln!(
        "  expires: {}; max nodes: {}; signed by {}",
        license.expires.as_deref().unwrap_or("never"),
        license
            .max_nodes
            .map_or_else(|| "no limit".to_string(), |n| n.to_string()),
        license.signer
    )?;
    Ok(())
}
