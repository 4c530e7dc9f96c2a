//! Where templates run, and the render worker that bounds their memory and time.
//!
//! minijinja bounds instructions (fuel), and [`crate::template`] bounds output, but nothing
//! in-process bounds memory: one `~`, `+`, `replace`, `join`, `indent` or `format`, or a list
//! repeated and materialised, can double or square a value per instruction, so a few dozen
//! instructions ask for terabytes. A template therefore renders in a **render worker**: the
//! same executable started again as a child (`EXE --airlift-render-worker=MEMORY,SECONDS`),
//! which before reading anything lowers its own address-space limit (`RLIMIT_AS`, soft and
//! hard), sets a CPU-time limit and no core file, and then renders what it is sent over
//! standard input: the context as JSON once, then each template's source. It opens no file —
//! the parent has verified the bundle and sends only what it read. The parent waits at most
//! the time bound per template; a worker that ran out of memory (Rust's allocation failure
//! message, then abort), past its CPU limit (SIGXCPU) or past the wait (killed) becomes a
//! [`TemplateError`](crate::template::TemplateError) with
//! [`TemplateLimit::Memory`](crate::template::TemplateLimit::Memory) or
//! [`TemplateLimit::Time`](crate::template::TemplateLimit::Time) naming the file and the
//! bound. The parent's own memory never holds a value the template grew: it reads at most
//! [`MAX_TEMPLATE_OUTPUT`](crate::template::MAX_TEMPLATE_OUTPUT) bytes per answer.
//!
//! Every executable that renders templates calls [`serve_if_asked`] first thing in `main`.
//! A test harness cannot (libtest owns its `main`): it chooses [`Isolation::InProcess`]
//! explicitly, with [`set_default_isolation`] or [`Renderer::with_isolation`](crate::Renderer::with_isolation);
//! a harness that forgets gets a named error, since it does not answer as a worker.

mod session;
mod wire;
mod worker;

use std::path::PathBuf;
use std::sync::RwLock;
use std::time::Duration;

pub(crate) use session::Session;

use crate::template::{MAX_TEMPLATE_MEMORY, MAX_TEMPLATE_TIME};
use airlift_bundle::error_chain as chain;

/// The argument that starts an executable as a render worker: `FLAG=MEMORY_BYTES,SECONDS`.
/// It starts with `--` so that an executable that is not a worker (a libtest harness) refuses
/// it at once as an unknown option instead of taking it as a filter.
pub const WORKER_FLAG: &str = "--airlift-render-worker";

/// The exit code of a worker that could not start (bad arguments, a limit it could not set)
/// or that broke protocol; its stderr says why.
pub const WORKER_FAILED: i32 = 70;

/// Where a [`Renderer`](crate::Renderer) runs its templates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Isolation {
    /// In a render worker, bounded in memory and time by the OS (the default).
    Worker(WorkerCommand),
    /// In this process: fuel and output are bounded, memory and time are not. For test
    /// harnesses and other executables that cannot serve as a worker; never for a bundle or
    /// values from outside.
    InProcess,
}

impl Isolation {
    /// A render worker started from this executable, with the default bounds.
    pub fn worker() -> Self {
        Isolation::Worker(WorkerCommand::current_exe())
    }
}

/// How to start a render worker, and its bounds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerCommand {
    /// The executable, or `None` for the running one.
    program: Option<PathBuf>,
    memory: u64,
    time: Duration,
}

impl WorkerCommand {
    /// The running executable, with [`MAX_TEMPLATE_MEMORY`] and [`MAX_TEMPLATE_TIME`].
    pub fn current_exe() -> Self {
        Self {
            program: None,
            memory: MAX_TEMPLATE_MEMORY,
            time: MAX_TEMPLATE_TIME,
        }
    }

    /// `program` (whose `main` calls [`serve_if_asked`]), with the default bounds.
    pub fn program(program: impl Into<PathBuf>) -> Self {
        Self {
            program: Some(program.into()),
            ..Self::current_exe()
        }
    }

    /// The same command with an address-space bound of `bytes`.
    pub fn with_memory(mut self, bytes: u64) -> Self {
        self.memory = bytes;
        self
    }

    /// The same command with a time bound of `time` per template (whole seconds, at least
    /// one, for the worker's CPU limit).
    pub fn with_time(mut self, time: Duration) -> Self {
        self.time = time;
        self
    }

    /// The address-space bound, in bytes.
    pub fn memory(&self) -> u64 {
        self.memory
    }

    /// The time bound per template.
    pub fn time(&self) -> Duration {
        self.time
    }

    fn resolve_program(&self) -> std::io::Result<PathBuf> {
        match &self.program {
            Some(p) => Ok(p.clone()),
            None => std::env::current_exe(),
        }
    }
}

static DEFAULT: RwLock<Option<Isolation>> = RwLock::new(None);

/// Sets the isolation of every [`Renderer`](crate::Renderer) created from now on in this
/// process (a test harness chooses [`Isolation::InProcess`] here).
pub fn set_default_isolation(isolation: Isolation) {
    *DEFAULT
        .write()
        .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(isolation);
}

/// The isolation new renderers get: what [`set_default_isolation`] chose, else
/// [`Isolation::worker`].
pub fn default_isolation() -> Isolation {
    DEFAULT
        .read()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone()
        .unwrap_or_else(Isolation::worker)
}

/// When this process was started as a render worker (its first argument is
/// [`WORKER_FLAG`]`=…`), serves as one and exits; otherwise returns at once. Call it first in
/// `main` of every executable that renders templates.
pub fn serve_if_asked() {
    let Some(first) = std::env::args_os().nth(1) else {
        return;
    };
    let Some(spec) = first
        .to_str()
        .and_then(|a| a.strip_prefix(WORKER_FLAG))
        .and_then(|a| a.strip_prefix('='))
    else {
        return;
    };
    let code = match worker::serve(spec) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("airlift render worker: {}", chain(&e));
            WORKER_FAILED
        }
    };
    std::process::exit(code);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_worker_command_carries_its_bounds() {
        let c = WorkerCommand::current_exe();
        assert_eq!(c.memory(), MAX_TEMPLATE_MEMORY);
        assert_eq!(c.time(), MAX_TEMPLATE_TIME);
        let c = WorkerCommand::program("/bin/x")
            .with_memory(1 << 20)
            .with_time(Duration::from_secs(2));
        assert_eq!((c.memory(), c.time()), (1 << 20, Duration::from_secs(2)));
        assert_eq!(
            c.resolve_program().ok(),
            Some(PathBuf::from("/bin/x")),
            "an explicit program is used as given"
        );
    }
}
