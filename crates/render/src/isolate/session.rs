//! The parent side of the render worker: starts it, sends the context once and each template,
//! waits for each answer at most the time bound, and turns a worker that died or was stopped
//! into a named [`TemplateError`].

use std::io::{self, BufReader, BufWriter, Read};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::wire::{self, Frame, Header, WireLimit};
use super::worker::Bounds;
use super::{WorkerCommand, WORKER_FLAG};
use crate::template::{
    mib, Engine, TemplateCause, TemplateError, TemplateLimit, MAX_TEMPLATE_OUTPUT,
};

/// How much of the worker's stderr is kept (the end of it: the last words of a worker that
/// died).
const STDERR_TAIL: usize = 16 * 1024;
/// What Rust's allocation-failure handler prints before it aborts.
const ALLOCATION_FAILED: &str = "memory allocation of";
/// The signal the kernel sends at the CPU-time soft limit.
const SIGXCPU: i32 = 24;

/// What the reader thread hands over: a frame, the end of the stream, or a broken one.
type Incoming = io::Result<Option<Frame>>;

/// A running render worker.
pub(crate) struct Session {
    child: Child,
    /// The address-space bound the worker set (its `hello`), in bytes.
    memory: u64,
    stdin: BufWriter<ChildStdin>,
    frames: Receiver<Incoming>,
    stderr: Option<JoinHandle<Vec<u8>>>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("pid", &self.child.id())
            .finish_non_exhaustive()
    }
}

/// How an exchange with the worker ended.
enum Outcome {
    /// It answered.
    Answer(Frame),
    /// It did not answer in time.
    Late,
    /// Its output ended or broke, or it stopped reading.
    Gone,
}

impl Session {
    /// Renders `source` as `file` on the worker in `slot`, started first when there is none
    /// (or the last one died).
    pub(crate) fn render(
        slot: &mut Option<Session>,
        command: &WorkerCommand,
        engine: &Engine,
        file: &str,
        source: &str,
    ) -> Result<String, TemplateError> {
        let deadline = Instant::now() + command.time();
        let session = match slot {
            Some(session) => session,
            None => slot.insert(Session::start(command, engine, file, deadline)?),
        };
        let outcome = session.exchange(file, source, deadline);
        match outcome {
            Outcome::Answer(frame) => {
                let answer = answer_to_result(frame, file, session.memory);
                if answer.as_ref().is_err_and(|e| e.source.is_worker_failure()) {
                    // Out of protocol: this worker is not trusted with the next template.
                    *slot = None;
                }
                answer
            }
            Outcome::Late | Outcome::Gone => {
                let late = matches!(outcome, Outcome::Late);
                let err = slot
                    .take()
                    .map(|s| s.fate(file, command, late))
                    .unwrap_or_else(|| worker_failure(file, "it vanished".into()));
                Err(err)
            }
        }
    }

    /// Starts the worker, waits for its `hello` and sends the context.
    fn start(
        command: &WorkerCommand,
        engine: &Engine,
        file: &str,
        deadline: Instant,
    ) -> Result<Session, TemplateError> {
        let program = command.resolve_program().map_err(|source| TemplateError {
            file: file.to_string(),
            line: None,
            undefined: None,
            limit: None,
            source: TemplateCause::Spawn {
                program: "(this executable)".into(),
                source,
            },
        })?;
        let bounds = Bounds {
            memory: command.memory(),
            seconds: command.time().as_secs().max(1),
        };
        let mut child = Command::new(&program)
            .arg(format!("{WORKER_FLAG}={}", bounds.spec()))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // Quiet, short last words; and Ctrl-C on the terminal is the parent's to handle.
            .env_remove("RUST_BACKTRACE")
            .env_remove("RUST_LIB_BACKTRACE")
            .process_group(0)
            .spawn()
            .map_err(|source| TemplateError {
                file: file.to_string(),
                line: None,
                undefined: None,
                limit: None,
                source: TemplateCause::Spawn {
                    program: program.clone(),
                    source,
                },
            })?;
        let (Some(stdin), Some(stdout), Some(stderr)) =
            (child.stdin.take(), child.stdout.take(), child.stderr.take())
        else {
            let _ = child.kill();
            let _ = child.wait();
            return Err(worker_failure(file, "its pipes were not set up".into()));
        };
        let (tx, frames) = mpsc::channel();
        let readers = std::thread::Builder::new()
            .name("render-worker-out".into())
            .spawn(move || {
                let mut stdout = BufReader::new(stdout);
                loop {
                    let next = wire::read_frame(&mut stdout, MAX_TEMPLATE_OUTPUT as u64);
                    let last = !matches!(next, Ok(Some(_)));
                    if tx.send(next).is_err() || last {
                        break;
                    }
                }
            })
            .and_then(|_| {
                std::thread::Builder::new()
                    .name("render-worker-err".into())
                    .spawn(move || tail(stderr))
            });
        let stderr = match readers {
            Ok(handle) => handle,
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(worker_failure(
                    file,
                    format!("cannot start a thread to read it: {e}"),
                ));
            }
        };
        let mut session = Session {
            child,
            memory: command.memory(),
            stdin: BufWriter::new(stdin),
            frames,
            stderr: Some(stderr),
        };
        match session.next_frame(deadline) {
            Outcome::Answer(Frame {
                header:
                    Header::Hello {
                        worker,
                        protocol,
                        memory,
                    },
                ..
            }) if worker == wire::WORKER_NAME && protocol == wire::PROTOCOL => {
                session.memory = memory;
            }
            _ => {
                let program = program.display();
                let mut err = session.fate(file, command, false);
                if err.limit.is_none() {
                    let how = match &err.source {
                        TemplateCause::Worker(how) => how.clone(),
                        other => other.to_string(),
                    };
                    err.source = TemplateCause::Worker(format!(
                        "`{program}` did not answer as an Airlift render worker ({how}): its \
                         main() must call `airlift_render::isolate::serve_if_asked()` first"
                    ));
                }
                return Err(err);
            }
        }
        let context = serde_json::to_vec(engine.json())
            .map_err(|e| worker_failure(file, format!("cannot encode the context: {e}")))?;
        if wire::write_frame(&mut session.stdin, &Header::Context, &context).is_err() {
            return Err(session.fate(file, command, false));
        }
        Ok(session)
    }

    /// Sends one template and waits for its answer until `deadline`.
    fn exchange(&mut self, file: &str, source: &str, deadline: Instant) -> Outcome {
        let header = Header::Render {
            file: file.to_string(),
        };
        if wire::write_frame(&mut self.stdin, &header, source.as_bytes()).is_err() {
            return Outcome::Gone;
        }
        self.next_frame(deadline)
    }

    fn next_frame(&mut self, deadline: Instant) -> Outcome {
        let wait = deadline.saturating_duration_since(Instant::now());
        match self.frames.recv_timeout(wait) {
            Ok(Ok(Some(frame))) => Outcome::Answer(frame),
            Ok(Ok(None) | Err(_)) | Err(RecvTimeoutError::Disconnected) => Outcome::Gone,
            Err(RecvTimeoutError::Timeout) => Outcome::Late,
        }
    }

    /// Stops the worker (when `late`, or when it still runs) and names what happened to it
    /// while it rendered `file`.
    fn fate(mut self, file: &str, command: &WorkerCommand, late: bool) -> TemplateError {
        let _ = self.child.kill();
        let status = self.child.wait();
        let stderr = self
            .stderr
            .take()
            .and_then(|h| h.join().ok())
            .unwrap_or_default();
        let stderr = String::from_utf8_lossy(&stderr);
        let (limit, cause) = classify(late, status.ok(), &stderr, self.memory, command.time());
        TemplateError {
            file: file.to_string(),
            line: None,
            undefined: None,
            limit,
            source: cause,
        }
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        // The worker is idle between templates: stop it and reap it.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What stopped a worker: a bound (memory, time) or a failure of the worker itself.
fn classify(
    late: bool,
    status: Option<ExitStatus>,
    stderr: &str,
    memory: u64,
    limit: Duration,
) -> (Option<TemplateLimit>, TemplateCause) {
    let time = TemplateLimit::Time { limit };
    if late {
        return (
            Some(time),
            TemplateCause::Stopped(format!("no answer within {} s", limit.as_secs_f64())),
        );
    }
    if let Some(line) = stderr.lines().rev().find(|l| l.contains(ALLOCATION_FAILED)) {
        return (
            Some(TemplateLimit::Memory { bytes: memory }),
            TemplateCause::Stopped(format!(
                "{} (its address space is limited to {})",
                line.trim(),
                mib(memory)
            )),
        );
    }
    if status.and_then(|s| s.signal()) == Some(SIGXCPU) {
        return (
            Some(time),
            TemplateCause::Stopped("it reached its CPU-time limit (SIGXCPU)".into()),
        );
    }
    let last = stderr
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .map(|l| format!(": {}", l.trim()))
        .unwrap_or_default();
    let status = status.map_or_else(|| "ended".to_string(), |s| format!("ended with {s}"));
    (None, TemplateCause::Worker(format!("it {status}{last}")))
}

/// The worker's answer as a render result.
fn answer_to_result(frame: Frame, file: &str, memory: u64) -> Result<String, TemplateError> {
    match frame.header {
        Header::Rendered => String::from_utf8(frame.body).map_err(|_| TemplateError {
            file: file.to_string(),
            line: None,
            undefined: None,
            limit: None,
            source: TemplateCause::Engine("the output is not UTF-8".into()),
        }),
        Header::Failed {
            line,
            undefined,
            limit,
            message,
        } => Err(TemplateError {
            file: file.to_string(),
            line,
            undefined,
            limit: limit.map(|l| match l {
                WireLimit::Fuel => TemplateLimit::Fuel,
                WireLimit::Output => TemplateLimit::Output,
                WireLimit::Memory => TemplateLimit::Memory { bytes: memory },
            }),
            source: TemplateCause::Engine(message),
        }),
        other => Err(worker_failure(
            file,
            format!("it answered out of protocol ({other:?})"),
        )),
    }
}

fn worker_failure(file: &str, message: String) -> TemplateError {
    TemplateError {
        file: file.to_string(),
        line: None,
        undefined: None,
        limit: None,
        source: TemplateCause::Worker(message),
    }
}

/// Reads `r` to its end, keeping the last [`STDERR_TAIL`] bytes.
fn tail(mut r: impl Read) -> Vec<u8> {
    let mut kept = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match r.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                kept.extend_from_slice(&buf[..n]);
                if kept.len() > STDERR_TAIL {
                    kept.drain(..kept.len() - STDERR_TAIL);
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
    kept
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn command() -> WorkerCommand {
        WorkerCommand::program("/nonexistent")
            .with_memory(256 << 20)
            .with_time(Duration::from_secs(3))
    }

    #[test]
    fn an_allocation_failure_is_the_memory_bound() {
        let (limit, cause) = classify(
            false,
            Some(ExitStatus::from_raw(6)),
            "memory allocation of 268435456 bytes failed\n",
            256 << 20,
            Duration::from_secs(3),
        );
        assert_eq!(limit, Some(TemplateLimit::Memory { bytes: 256 << 20 }));
        assert_eq!(
            cause.to_string(),
            "the render worker was stopped: memory allocation of 268435456 bytes failed (its \
             address space is limited to 256 MiB)"
        );
    }

    #[test]
    fn late_or_sigxcpu_is_the_time_bound_and_anything_else_a_worker_failure() {
        let time = Some(TemplateLimit::Time {
            limit: Duration::from_secs(3),
        });
        let three = Duration::from_secs(3);
        assert_eq!(classify(true, None, "", 1, three).0, time);
        assert_eq!(
            classify(false, Some(ExitStatus::from_raw(SIGXCPU)), "", 1, three).0,
            time
        );
        let (limit, cause) = classify(
            false,
            Some(ExitStatus::from_raw(11)),
            "thread 'main' has overflowed its stack\n\n",
            1,
            three,
        );
        assert_eq!(limit, None);
        assert!(cause.is_worker_failure());
        let text = cause.to_string();
        assert!(text.contains("overflowed its stack"), "{text}");
        assert!(text.contains("signal: 11"), "{text}");
    }

    #[test]
    fn the_stderr_tail_keeps_the_last_bytes() {
        let mut data = vec![b'x'; STDERR_TAIL * 3];
        data.extend_from_slice(b"\nmemory allocation of 8 bytes failed\n");
        let kept = tail(data.as_slice());
        assert_eq!(kept.len(), STDERR_TAIL);
        assert!(String::from_utf8_lossy(&kept).ends_with("of 8 bytes failed\n"));
    }

    #[test]
    fn a_missing_program_is_a_named_spawn_failure() {
        let engine = Engine::new(serde_json::json!({}));
        let mut slot = None;
        let err = Session::render(&mut slot, &command(), &engine, "a.yaml", "x").unwrap_err();
        assert!(
            matches!(&err.source, TemplateCause::Spawn { program, .. } if program.ends_with("nonexistent")),
            "{err:?}"
        );
        assert!(err.source.is_worker_failure());
        assert!(slot.is_none());
    }
}
