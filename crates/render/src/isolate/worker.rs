//! The render worker: the child side. It bounds itself (address space, CPU time, no core
//! file) before it reads anything, then renders each template it is sent with an in-process
//! [`Engine`] and answers over standard output. It opens no file: the parent sends the
//! context and each template's source.

use std::io::{self, BufReader, BufWriter, Write};
use std::panic::{self, AssertUnwindSafe};

use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
use rustix::time::{clock_gettime, ClockId};

use super::wire::{self, Frame, Header, WireLimit};
use crate::template::{Engine, TemplateError, TemplateLimit};

/// Why the worker stopped without answering (printed on its stderr for the parent).
#[derive(Debug, thiserror::Error)]
pub(crate) enum WorkerError {
    /// The `--airlift-render-worker=` value is not `MEMORY,SECONDS`.
    #[error("bad worker arguments `{0}` (expected MEMORY_BYTES,SECONDS)")]
    Arguments(String),
    /// A limit could not be set: the worker refuses to render unbounded.
    #[error("cannot set its {what} limit")]
    Limit {
        /// Which limit.
        what: &'static str,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// Standard input or output failed, or the parent spoke out of protocol.
    #[error("protocol: {0}")]
    Protocol(#[from] io::Error),
}

/// The bounds the parent asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Bounds {
    /// Address space, bytes.
    pub memory: u64,
    /// CPU seconds per template.
    pub seconds: u64,
}

impl Bounds {
    /// Parses `MEMORY,SECONDS`.
    pub(crate) fn parse(spec: &str) -> Result<Self, WorkerError> {
        let bad = || WorkerError::Arguments(spec.to_string());
        let (memory, seconds) = spec.split_once(',').ok_or_else(bad)?;
        Ok(Self {
            memory: memory.parse().map_err(|_| bad())?,
            seconds: seconds.parse().map_err(|_| bad())?,
        })
    }

    /// `MEMORY,SECONDS`.
    pub(crate) fn spec(&self) -> String {
        format!("{},{}", self.memory, self.seconds)
    }
}

/// Lowers the address space (soft and hard: a template cannot raise it) to `memory`, and
/// the core file size to 0 (a worker that dies writes no core).
fn bound_memory(memory: u64) -> Result<u64, WorkerError> {
    let old = getrlimit(Resource::Core);
    setrlimit(
        Resource::Core,
        Rlimit {
            current: Some(0),
            maximum: old.maximum,
        },
    )
    .map_err(|e| WorkerError::Limit {
        what: "core file",
        source: e.into(),
    })?;
    let old = getrlimit(Resource::As);
    let bytes = old.maximum.map_or(memory, |max| max.min(memory));
    setrlimit(
        Resource::As,
        Rlimit {
            current: Some(bytes),
            maximum: Some(bytes),
        },
    )
    .map_err(|e| WorkerError::Limit {
        what: "address space",
        source: e.into(),
    })?;
    Ok(bytes)
}

/// Sets the CPU-time soft limit `seconds` (and a second for rounding) past what the worker
/// has used: the kernel ends it with SIGXCPU there. A backstop: the parent stops a worker at
/// the same bound in wall-clock time, which CPU time never exceeds.
fn bound_cpu(seconds: u64) -> Result<(), WorkerError> {
    let used = clock_gettime(ClockId::ProcessCPUTime);
    let used = u64::try_from(used.tv_sec).unwrap_or(0) + 1;
    let old = getrlimit(Resource::Cpu);
    let want = used.saturating_add(seconds).saturating_add(1);
    setrlimit(
        Resource::Cpu,
        Rlimit {
            current: Some(old.maximum.map_or(want, |max| max.min(want))),
            maximum: old.maximum,
        },
    )
    .map_err(|e| WorkerError::Limit {
        what: "CPU time",
        source: e.into(),
    })
}

/// Runs the worker until its standard input ends.
pub(crate) fn serve(spec: &str) -> Result<(), WorkerError> {
    let bounds = Bounds::parse(spec)?;
    let memory = bound_memory(bounds.memory)?;
    // A panic in the engine becomes a `failed` answer; its message need not reach stderr.
    panic::set_hook(Box::new(|_| {}));
    let mut input = BufReader::new(io::stdin().lock());
    let mut output = BufWriter::new(io::stdout().lock());
    wire::write_frame(
        &mut output,
        &Header::Hello {
            worker: wire::WORKER_NAME.into(),
            protocol: wire::PROTOCOL,
            memory,
        },
        b"",
    )?;
    let mut engine: Option<Result<Engine, String>> = None;
    while let Some(Frame { header, body }) = wire::read_frame(&mut input, bounds.memory)? {
        match header {
            Header::Context => {
                engine = Some(
                    serde_json::from_slice(&body)
                        .map(Engine::new)
                        .map_err(|e| format!("the template context is not JSON: {e}")),
                );
            }
            Header::Render { file } => {
                let source = body_to_text(&body)?;
                bound_cpu(bounds.seconds)?;
                let reply = render_one(engine.as_ref(), &file, source);
                answer(&mut output, reply)?;
            }
            other => {
                return Err(WorkerError::Protocol(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("unexpected frame {other:?}"),
                )))
            }
        }
    }
    Ok(())
}

fn body_to_text(body: &[u8]) -> Result<&str, WorkerError> {
    std::str::from_utf8(body).map_err(|_| {
        WorkerError::Protocol(io::Error::new(
            io::ErrorKind::InvalidData,
            "a template source that is not UTF-8",
        ))
    })
}

/// Renders `source` with the engine, a panic caught and answered.
fn render_one(
    engine: Option<&Result<Engine, String>>,
    file: &str,
    source: &str,
) -> Result<String, Header> {
    let engine = match engine {
        Some(Ok(engine)) => engine,
        Some(Err(message)) => return Err(failed(message.clone(), None)),
        None => return Err(failed("no template context was sent".into(), None)),
    };
    match panic::catch_unwind(AssertUnwindSafe(|| engine.render(file, source))) {
        Ok(Ok(text)) => Ok(text),
        Ok(Err(err)) => Err(from_error(err)),
        Err(payload) => {
            let message = payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            // A size past what can ever be allocated is the memory bound, hit early.
            let limit = message
                .contains("capacity overflow")
                .then_some(WireLimit::Memory);
            Err(failed(
                format!("the template engine panicked: {message}"),
                limit,
            ))
        }
    }
}

fn failed(message: String, limit: Option<WireLimit>) -> Header {
    Header::Failed {
        line: None,
        undefined: None,
        limit,
        message: wire::cut_message(message),
    }
}

fn from_error(err: TemplateError) -> Header {
    Header::Failed {
        line: err.line,
        undefined: err.undefined,
        limit: err.limit.and_then(|l| match l {
            TemplateLimit::Fuel => Some(WireLimit::Fuel),
            TemplateLimit::Output => Some(WireLimit::Output),
            TemplateLimit::Memory { .. } => Some(WireLimit::Memory),
            TemplateLimit::Time { .. } => None,
        }),
        message: wire::cut_message(err.source.to_string()),
    }
}

fn answer(output: &mut impl Write, reply: Result<String, Header>) -> Result<(), WorkerError> {
    match reply {
        Ok(text) => wire::write_frame(output, &Header::Rendered, text.as_bytes())?,
        Err(header) => wire::write_frame(output, &header, b"")?,
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn bounds_parse_and_print() {
        let b = Bounds::parse("536870912,10").unwrap();
        assert_eq!(
            b,
            Bounds {
                memory: 512 << 20,
                seconds: 10
            }
        );
        assert_eq!(b.spec(), "536870912,10");
        for bad in ["", "1", "x,1", "1,", "1,2,3"] {
            assert!(Bounds::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_render_without_context_is_answered_not_crashed() {
        let reply = render_one(None, "a.yaml", "x").unwrap_err();
        assert!(
            matches!(&reply, Header::Failed { message, .. } if message.contains("no template context")),
            "{reply:?}"
        );
    }
}
