//! Looking at folders in tests: what a command left in them, and whether it touched a file.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// Every file under `dir` (recursively; `DirEntry::metadata` does not follow symbolic links),
/// with its size and modification time, sorted by path: equal before and after a command when
/// it added, removed and rewrote nothing there.
///
/// # Panics
/// When a folder or file under `dir` cannot be read.
pub fn files_under(dir: &Path) -> Vec<(PathBuf, u64, SystemTime)> {
    let mut out = Vec::new();
    let entries = std::fs::read_dir(dir).unwrap_or_else(|e| panic!("read {}: {e}", dir.display()));
    for e in entries {
        let e = e.unwrap_or_else(|e| panic!("read {}: {e}", dir.display()));
        let meta = e
            .metadata()
            .unwrap_or_else(|err| panic!("stat {}: {err}", e.path().display()));
        if meta.is_dir() {
            out.extend(files_under(&e.path()));
        } else {
            let modified = meta
                .modified()
                .unwrap_or_else(|err| panic!("mtime of {}: {err}", e.path().display()));
            out.push((e.path(), meta.len(), modified));
        }
    }
    out.sort();
    out
}
