//! Runs a command under an outer address-space bound and measures its peak memory: the
//! largest resident set of the process and of every descendant it waited for (GNU time's
//! `%M`, from `wait4`), so a child such as the render worker is counted too.
//!
//! Needs `/usr/bin/time` (package `time`) and `prlimit` (package `util-linux`); both are in
//! `scripts/deps.sh`.

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// GNU time, which reports the peak RSS of a command and its waited-for descendants.
pub const GNU_TIME: &str = "/usr/bin/time";

/// What a measured run did.
#[derive(Debug)]
pub struct Measured {
    /// Exit status, stdout and stderr of the command.
    pub output: Output,
    /// The largest resident set, in KiB, of the command and of any descendant it waited for.
    pub max_rss_kib: u64,
    /// Wall-clock time.
    pub wall: Duration,
}

impl Measured {
    /// The exit code (`None` when a signal ended it).
    pub fn code(&self) -> Option<i32> {
        self.output.status.code()
    }

    /// Standard error, lossily decoded.
    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.output.stderr).into_owned()
    }

    /// Standard output, lossily decoded.
    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.output.stdout).into_owned()
    }
}

impl std::fmt::Display for Measured {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit {:?}, peak RSS {} KiB, {:.2} s\n--- stdout\n{}--- stderr\n{}",
            self.code(),
            self.max_rss_kib,
            self.wall.as_secs_f64(),
            self.stdout(),
            self.stderr()
        )
    }
}

/// Runs `command` (its program, arguments, environment and working directory) with its
/// address space limited to `address_space` bytes (`prlimit --as`; children inherit it), stdin
/// closed, and measures it. `scratch` holds GNU time's report.
pub fn run_bounded(
    command: &Command,
    address_space: u64,
    scratch: &Path,
) -> std::io::Result<Measured> {
    if !Path::new(GNU_TIME).exists() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::NotFound,
            format!("{GNU_TIME} is missing: install the `time` package (scripts/deps.sh)"),
        ));
    }
    let report = scratch.join(format!(
        "time-{}-{}.txt",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default()
    ));
    let mut wrapped = Command::new(GNU_TIME);
    wrapped
        .arg("-f")
        .arg("%M")
        .arg("-o")
        .arg(&report)
        .arg("prlimit")
        .arg(format!("--as={address_space}"))
        .arg("--")
        .arg(command.get_program())
        .args(command.get_args())
        .stdin(Stdio::null());
    for (key, value) in command.get_envs() {
        match value {
            Some(v) => wrapped.env(key, v),
            None => wrapped.env_remove(key),
        };
    }
    if let Some(dir) = command.get_current_dir() {
        wrapped.current_dir(dir);
    }
    let started = Instant::now();
    let output = wrapped.output()?;
    let wall = started.elapsed();
    let text = std::fs::read_to_string(&report)?;
    let _ = std::fs::remove_file(&report);
    // GNU time writes "Command exited with non-zero status N" first when it did; `%M` last.
    let max_rss_kib = text
        .lines()
        .rev()
        .find_map(|l| l.trim().parse().ok())
        .ok_or_else(|| {
            std::io::Error::other(format!("no peak RSS in GNU time's report {text:?}"))
        })?;
    Ok(Measured {
        output,
        max_rss_kib,
        wall,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_child_that_touches_memory_is_counted_and_the_bound_applies() {
        let dir = tempfile::tempdir().unwrap();
        // A shell whose child holds ~64 MiB: the peak counts the waited-for child.
        let mut grows = Command::new("sh");
        grows.args([
            "-c",
            "head -c 67108864 /dev/zero | sh -c 'x=$(cat | tr \"\\0\" x); echo ${#x}'",
        ]);
        let m = run_bounded(&grows, 4 << 30, dir.path()).unwrap();
        assert_eq!(m.code(), Some(0), "{m}");
        assert!(m.max_rss_kib > 60 * 1024, "{m}");
        // Under a 32 MiB address space the same child cannot hold it.
        let m = run_bounded(&grows, 32 << 20, dir.path()).unwrap();
        assert_ne!(m.stdout().trim(), "67108864", "{m}");
        assert!(m.max_rss_kib < 32 * 1024, "{m}");
    }
}
