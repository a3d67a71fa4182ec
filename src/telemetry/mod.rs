//! Telemetry: logging (`RUST_LOG` picks what is logged, `LOG_FORMAT` how) and metrics.

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

/// Keeps the log writer going. Dropping it writes out every line logged before, then stops it:
/// hold it until the process is about to exit.
#[must_use = "dropping it stops the log writer"]
pub struct LogGuard {
    _writer: writer::WriterGuard,
}

/// Logs to stderr: a line is formatted where it is logged, queued in order, and written by a
/// thread of its own, so that the caller never waits on stderr.
pub fn init(format: LogFormat) -> LogGuard {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let (queued, guard) = writer::queued(std::io::stderr(), dropped_log_lines());
    // A panic's message comes after the lines logged before it, as when they were written at once.
    let flush = queued.clone();
    let report = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |panic| {
        flush.wait_written();
        report(panic);
    }));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(queued)
        .with_ansi(std::io::stderr().is_terminal());
    // A second init (tests start several servers) keeps the first subscriber.
    let _ = match format {
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
        LogFormat::Text => builder.try_init(),
    };
    LogGuard { _writer: guard }
}
