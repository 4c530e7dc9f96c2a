//! Running the binaries under test: output captured to files, a time limit, and `kill -9` at a
//! chosen moment.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context;
use serde::{Deserialize, Serialize};

/// How a finished (or killed) command ended.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Outcome {
    /// What ran (for messages), e.g. `airlift-install push …`.
    pub label: String,
    /// The exit code; `None` when a signal ended it.
    pub code: Option<i32>,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
    /// True when the suite killed it with SIGKILL.
    pub killed: bool,
}

impl Outcome {
    /// True for exit code 0.
    pub fn success(&self) -> bool {
        self.code == Some(0)
    }

    /// Fails unless the command exited 0.
    pub fn ensure_success(&self) -> anyhow::Result<&Self> {
        anyhow::ensure!(
            self.success(),
            "{} failed:\n{}",
            self.label,
            self.describe()
        );
        Ok(self)
    }

    /// Fails unless the command exited with `code`.
    pub fn ensure_code(&self, code: i32) -> anyhow::Result<&Self> {
        anyhow::ensure!(
            self.code == Some(code),
            "{} should have exited {code}:\n{}",
            self.label,
            self.describe()
        );
        Ok(self)
    }

    /// Fails unless stderr contains every one of `needles` (case-insensitive).
    pub fn ensure_stderr_mentions(&self, needles: &[&str]) -> anyhow::Result<&Self> {
        let lower = self.stderr.to_lowercase();
        for n in needles {
            anyhow::ensure!(
                lower.contains(&n.to_lowercase()),
                "{}: stderr should mention `{n}`:\n{}",
                self.label,
                self.describe()
            );
        }
        Ok(self)
    }

    /// stdout parsed as JSON.
    pub fn json(&self) -> anyhow::Result<serde_json::Value> {
        serde_json::from_str(&self.stdout)
            .with_context(|| format!("{}: stdout is not JSON:\n{}", self.label, self.describe()))
    }

    /// Exit code and both streams, for failure messages.
    pub fn describe(&self) -> String {
        format!(
            "exit: {}{}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.code
                .map_or_else(|| "signal".to_string(), |c| c.to_string()),
            if self.killed {
                " (killed by the suite)"
            } else {
                ""
            },
            self.stdout.trim_end(),
            self.stderr.trim_end()
        )
    }
}

/// A started command whose output goes to files.
#[derive(Debug)]
pub struct Running {
    label: String,
    child: Child,
    stdout: PathBuf,
    stderr: PathBuf,
    started: Instant,
}

/// Starts `cmd` with stdin closed and its output in `log_dir/<n>.stdout|.stderr`.
pub fn spawn(mut cmd: Command, label: &str, log_dir: &Path) -> anyhow::Result<Running> {
    static COUNTER: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    fs_err::create_dir_all(log_dir)?;
    let stdout = log_dir.join(format!("{n:03}.stdout"));
    let stderr = log_dir.join(format!("{n:03}.stderr"));
    let child = cmd
        .stdin(Stdio::null())
        .stdout(fs_err::File::create(&stdout)?.into_parts().0)
        .stderr(fs_err::File::create(&stderr)?.into_parts().0)
        .spawn()
        .with_context(|| format!("cannot start {label}"))?;
    Ok(Running {
        label: label.to_string(),
        child,
        stdout,
        stderr,
        started: Instant::now(),
    })
}

impl Running {
    /// Waits up to `limit`; a command still running then is killed and reported as an error.
    pub fn wait(mut self, limit: Duration) -> anyhow::Result<Outcome> {
        loop {
            if let Some(status) = self.child.try_wait()? {
                return self.finish(status.code(), false);
            }
            if self.started.elapsed() > limit {
                let _ = self.child.kill();
                let _ = self.child.wait();
                let o = self.finish(None, true)?;
                anyhow::bail!(
                    "{} did not finish within {limit:?}:\n{}",
                    o.label,
                    o.describe()
                );
            }
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    /// Polls `ready` until it holds (true), the command exits (false), or `limit` passes (error).
    pub fn wait_for(
        &mut self,
        limit: Duration,
        mut ready: impl FnMut() -> bool,
    ) -> anyhow::Result<bool> {
        loop {
            if ready() {
                return Ok(true);
            }
            if self.child.try_wait()?.is_some() {
                return Ok(false);
            }
            anyhow::ensure!(
                self.started.elapsed() < limit,
                "{}: the awaited moment did not come within {limit:?}",
                self.label
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Sends SIGKILL (`kill -9`) and reaps the process.
    pub fn kill9(mut self) -> anyhow::Result<Outcome> {
        let exited_before = self.child.try_wait()?;
        if let Some(status) = exited_before {
            return self.finish(status.code(), false);
        }
        self.child.kill().context("cannot send SIGKILL")?;
        let status = self.child.wait()?;
        self.finish(status.code(), true)
    }

    fn finish(&mut self, code: Option<i32>, killed: bool) -> anyhow::Result<Outcome> {
        Ok(Outcome {
            label: self.label.clone(),
            code,
            stdout: fs_err::read_to_string(&self.stdout)?,
            stderr: fs_err::read_to_string(&self.stderr)?,
            killed,
        })
    }
}

/// Runs `cmd` to completion within `limit`.
pub fn run(cmd: Command, label: &str, log_dir: &Path, limit: Duration) -> anyhow::Result<Outcome> {
    spawn(cmd, label, log_dir)?.wait(limit)
}

/// A short label for a command line: the program's file name and the arguments.
pub fn label_of(program: &Path, args: &[String]) -> String {
    let name = program.file_name().map_or_else(
        || program.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    );
    format!("`{name} {}`", args.join(" "))
}
