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

/// The names in `dir` (not recursive), sorted; none when `dir` does not exist.
///
/// # Panics
/// When an entry of `dir` cannot be read.
pub fn names_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = match std::fs::read_dir(dir) {
        Ok(entries) => entries
            .map(|e| {
                let e = e.unwrap_or_else(|e| panic!("read {}: {e}", dir.display()));
                e.file_name().to_string_lossy().into_owned()
            })
            .collect(),
        Err(_) => Vec::new(),
    };
    names.sort();
    names
}

/// Copies the folder `from` into `to` (files, with their permissions, and folders; nothing
/// else), creating `to`.
///
/// # Panics
/// When a folder or file cannot be read or written.
pub fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap_or_else(|e| panic!("create {}: {e}", to.display()));
    let entries =
        std::fs::read_dir(from).unwrap_or_else(|e| panic!("read {}: {e}", from.display()));
    for e in entries {
        let e = e.unwrap_or_else(|e| panic!("read {}: {e}", from.display()));
        let is_dir = e
            .file_type()
            .unwrap_or_else(|err| panic!("stat {}: {err}", e.path().display()))
            .is_dir();
        if is_dir {
            copy_tree(&e.path(), &to.join(e.file_name()));
        } else {
            std::fs::copy(e.path(), to.join(e.file_name()))
                .unwrap_or_else(|err| panic!("copy {}: {err}", e.path().display()));
        }
    }
}
