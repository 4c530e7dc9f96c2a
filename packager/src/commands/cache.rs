//! The blob cache `build` and `lint` share: where it is, and opening it.

use std::path::{Path, PathBuf};

use airlift_bundle::DirBlobStore;
use airlift_cli::{CommandError, ExitKind};
use anyhow::Context;

/// The cache folder: `dir` when given (`--cache-dir`, `AIRLIFT_CACHE_DIR`), else
/// `$XDG_CACHE_HOME/airlift/blobs`, else `$HOME/.cache/airlift/blobs`.
pub fn folder(dir: Option<&Path>) -> Result<PathBuf, CommandError> {
    if let Some(dir) = dir {
        return Ok(dir.to_path_buf());
    }
    let base = if let Some(x) = std::env::var_os("XDG_CACHE_HOME").filter(|v| !v.is_empty()) {
        PathBuf::from(x)
    } else if let Some(home) = std::env::var_os("HOME").filter(|v| !v.is_empty()) {
        PathBuf::from(home).join(".cache")
    } else {
        return Err(CommandError::new(
            ExitKind::Config,
            anyhow::anyhow!("cannot find a cache folder: neither XDG_CACHE_HOME nor HOME is set"),
        )
        .with_hint("pass --cache-dir DIR"));
    };
    Ok(base.join("airlift").join("blobs"))
}

/// Opens (creating it) the cache at `dir`, with proofs: a rebuild copies proven blobs
/// kernel-side without hashing them again, and takes the layer of an unchanged local image.
/// It holds the bundles it builds by hard link, so downloaded layers are written once.
pub fn open(dir: &Path) -> Result<DirBlobStore, CommandError> {
    Ok(DirBlobStore::open(dir)
        .with_context(|| format!("cannot open the blob cache `{}`", dir.display()))?
        .with_proofs()
        .with_held_bundles())
}
