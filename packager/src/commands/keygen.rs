//! `airlift-pack keygen`: writes a new ECDSA P-256 signing key pair.

use airlift_cli::outln;
use std::path::PathBuf;

use airlift_cli::{CommandError, ExitKind, OutputFormat};

/// Arguments of `keygen`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Writes PREFIX.key (PKCS#8 PEM, mode 0600) and PREFIX.pub (SPKI PEM). Existing files are
    /// never overwritten.
    #[arg(long, value_name = "PREFIX")]
    pub out: PathBuf,
    /// Output format.
    #[arg(long, short = 'o', value_enum, default_value_t = OutputFormat::Text)]
    pub output: OutputFormat,
}

/// Runs `keygen`.
pub fn run(args: Args) -> Result<(), CommandError> {
    let files = airlift_bundle::keygen(&args.out).map_err(|e| {
        let hint = e.hint();
        CommandError::new(
            ExitKind::Failure,
            anyhow::Error::new(e).context(format!(
                "failed to write a key pair with prefix `{}`",
                args.out.display()
            )),
        )
        .with_hint(hint)
    })?;
    if args.output.is_machine() {
        return Ok(airlift_cli::print_as(
            args.output,
            &serde_json::json!({
                "privateKey": files.private_key,
                "publicKey": files.public_key,
                "fingerprint": files.fingerprint.to_string(),
            }),
        )?);
    }
    outln!(
        "wrote private key {} (mode 0600: keep it secret, it signs your bundles)",
        files.private_key.display()
    )?;
    outln!(
        "wrote public key  {} (give it to customers: `airlift-install verify BUNDLE --key {}`)",
        files.public_key.display(),
        files.public_key.file_name().map_or_else(
            || files.public_key.display().to_string(),
            |n| n.to_string_lossy().into_owned()
        )
    )?;
    outln!("fingerprint       {}", files.fingerprint)?;
    Ok(())
}
