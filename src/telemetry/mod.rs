//! Telemetry: logging (`RUST_LOG` picks what is logged, `LOG_FORMAT` how) and metrics.

mod json;
pub mod metrics;
mod writer;

use std::io::IsTerminal;
use std::sync::LazyLock;

use prometheus_client::metrics::counter::Counter;

use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

/// Log lines lost since the process started: the writer's queue was full (stderr not read) or
/// stderr could not be written (closed). One process, one log writer.
static DROPPED_LOG_LINES: LazyLock<Counter> = LazyLock::new(Counter::default);

/// The counter of log lines lost, for the metrics.
pub fn dropped_log_lines() -> Counter {
    DROPPED_LOG_LINES.clone()
}

/// Keeps the log writer going until [`LogGuard::stop`] or a drop, which write out every line
/// logged before (waiting a little at most): hold it until the process is about to exit.
#[must_use = "dropping it stops the log writer"]
pub struct LogGuard {
    writer: writer::WriterGuard,
}

impl LogGuard {
    /// Stops the writer once every line logged before is written; false when stderr did not
    /// take them in time (it is stuck: better not write to it directly either).
    pub fn stop(self) -> bool {
        self.writer.stop()
    }
}

/// Logs to stderr: a line is formatted where it is logged, queued in order, and written by a
/// thread of its own, so that the caller never waits on stderr. A panic is logged the same way,
/// as an error line, instead of written to stderr by the panicking thread.
pub fn init(format: LogFormat) -> LogGuard {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let (queued, guard) = writer::queued(std::io::stderr(), dropped_log_lines());
    std::panic::set_hook(Box::new(log_panic));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(queued)
        .with_ansi(std::io::stderr().is_terminal());
    // A second init (tests start several servers) keeps the first subscriber.
    let _ = match format {
        LogFormat::Json => builder
            .json()
            .event_format(json::JsonLines::new())
            .try_init(),
        LogFormat::Text => builder.try_init(),
    };
    LogGuard { writer: guard }
}

/// A panic as one error line (with its backtrace when `RUST_BACKTRACE` asks for one).
fn log_panic(panic: &std::panic::PanicHookInfo<'_>) {
    let payload = panic.payload();
    let message = payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("(not a string)");
    let location = panic.location().map(tracing::field::display);
    let thread = std::thread::current();
    let backtrace = std::backtrace::Backtrace::capture();
    let backtrace = (backtrace.status() == std::backtrace::BacktraceStatus::Captured)
        .then(|| tracing::field::display(&backtrace));
    tracing::error!(
        panic = message,
        location,
        thread = thread.name().unwrap_or("unnamed"),
        backtrace,
        "panicked"
    );
}
