//! `LOG_FORMAT=json`: one JSON object per line, as tracing-subscriber's flattened JSON format
//! writes it (`timestamp`, `level`, the event's fields with `message` first, `target`), at a
//! fraction of its cost.
//!
//! tracing-subscriber serializes through an adaptor from `io::Write` to `fmt::Write` that checks
//! every piece serde_json hands it for UTF-8 (each quote, key and value apart): the webhook's
//! audit line was the largest single cost of a webhook that matches nothing (BENCHMARKS.md,
//! "The no-match rate as deployed"). Here serde_json writes the line into a byte buffer of the
//! thread's own, handed over whole. An event inside a span, or one that came from the `log`
//! crate, is left to tracing-subscriber's formatter, which writes the span list and the log
//! record's own target: the service logs neither on its request path.

use std::cell::RefCell;
use std::fmt;

use serde::ser::{SerializeMap, Serializer as _};
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_log::NormalizeEvent;
use tracing_subscriber::fmt::format::{self, Format, Writer};
use tracing_subscriber::fmt::time::{FormatTime, SystemTime};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

/// The event format of `LOG_FORMAT=json`.
pub struct JsonLines {
    /// For events inside a span or from the `log` crate.
    general: Format<format::Json>,
}

impl JsonLines {
    pub fn new() -> Self {
        JsonLines {
            general: format::json().flatten_event(true),
        }
    }
}

thread_local! {
    /// The line being serialized; kept between lines so that its capacity is reused.
    static LINE: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

impl<S, N> FormatEvent<S, N> for JsonLines
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let in_span = event
            .parent()
            .and_then(|id| ctx.span(id))
            .or_else(|| ctx.lookup_current())
            .is_some();
        if in_span || event.is_log() {
            return self.general.format_event(ctx, writer, event);
        }
        let mut timestamp = String::with_capacity(32);
        SystemTime.format_time(&mut Writer::new(&mut timestamp))?;
        LINE.with(|line| {
            // A line logged while this one is formatted (by a field's Debug) takes the general
            // path rather than this buffer.
            let Ok(mut line) = line.try_borrow_mut() else {
                return self.general.format_event(ctx, writer.by_ref(), event);
            };
            line.clear();
            serialize(&mut line, &timestamp, event).map_err(|_| fmt::Error)?;
            line.push(b'\n');
            // serde_json writes UTF-8 only.
            writer.write_str(std::str::from_utf8(&line).map_err(|_| fmt::Error)?)
        })
    }
}

fn serialize(line: &mut Vec<u8>, timestamp: &str, event: &Event<'_>) -> serde_json::Result<()> {
    let metadata = event.metadata();
    let mut serializer = serde_json::Serializer::new(line);
    let mut map = serializer.serialize_map(None)?;
    map.serialize_entry("timestamp", timestamp)?;
    map.serialize_entry("level", metadata.level().as_str())?;
    let mut fields = Fields {
        map: &mut map,
        result: Ok(()),
    };
    event.record(&mut fields);
    fields.result?;
    map.serialize_entry("target", metadata.target())?;
    map.end()
}

/// Writes each field as an entry, as tracing-serde's visitor does (values the visitor has no
/// method of its own for are written with their `Debug`).
struct Fields<'a, M: SerializeMap> {
    map: &'a mut M,
    result: Result<(), M::Error>,
}

impl<M: SerializeMap> Fields<'_, M> {
    fn entry(&mut self, field: &Field, value: &(impl serde::Serialize + ?Sized)) {
        if self.result.is_ok() {
            self.result = self.map.serialize_entry(field.name(), value);
        }
    }
}

impl<M: SerializeMap> Visit for Fields<'_, M> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.entry(field, value);
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.entry(field, &value);
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.entry(field, &value);
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.entry(field, &value);
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        self.entry(field, &value);
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.entry(field, &format_args!("{value:?}"));
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use tracing_subscriber::fmt::MakeWriter;

    use super::*;

    #[derive(Clone, Default)]
    struct Lines(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Lines {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().expect("lines").extend_from_slice(bytes);
            Ok(bytes.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'a> MakeWriter<'a> for Lines {
        type Writer = Lines;

        fn make_writer(&'a self) -> Lines {
            self.clone()
        }
    }

    /// Every kind of field the service logs, with characters JSON must escape.
    fn log_some() {
        let client: std::net::IpAddr = [127, 0, 0, 1].into();
        tracing::info!(
            status = 200u16,
            client = tracing::field::display(client),
            principal = "a \"quoted\" name\twith a tab, a \\ and é",
            sender = ?Some("akeyless"),
            delta = -3i64,
            ratio = 0.25f64,
            dry_run = true,
            big = 1u128 << 100,
            error = &std::io::Error::other("broken") as &(dyn std::error::Error + 'static),
            "webhook handled"
        );
        tracing::warn!("no fields but the message: \u{1}");
        let span = tracing::info_span!("request", route = "webhook");
        let _entered = span.enter();
        tracing::error!(attempt = 2u64, "inside a span");
    }

    /// The lines `log_some` logs with `format`, their timestamps taken out.
    fn logged<E>(format: E) -> Vec<String>
    where
        E: for<'w> FormatEvent<tracing_subscriber::Registry, format::JsonFields>
            + Send
            + Sync
            + 'static,
    {
        let lines = Lines::default();
        let subscriber = tracing_subscriber::fmt()
            .json()
            .event_format(format)
            .with_writer(lines.clone())
            .finish();
        tracing::subscriber::with_default(subscriber, log_some);
        let bytes = lines.0.lock().expect("lines").clone();
        String::from_utf8(bytes)
            .expect("UTF-8")
            .lines()
            .map(|line| {
                let (stamp, rest) = line.split_once(",\"level\":").expect("a level");
                assert!(stamp.starts_with("{\"timestamp\":\"") && stamp.ends_with("Z\""));
                rest.to_owned()
            })
            .collect()
    }

    #[test]
    fn lines_are_tracing_subscribers_flattened_json_byte_for_byte() {
        let ours = logged(JsonLines::new());
        let theirs = logged(format::json().flatten_event(true));
        assert_eq!(ours.len(), 3);
        assert_eq!(ours, theirs);
        assert!(ours[2].contains("\"spans\":["), "{}", ours[2]);
        for line in &ours {
            let _: serde_json::Value = serde_json::from_str(&format!("{{\"level\":{line}"))
                .unwrap_or_else(|e| panic!("{line}: {e}"));
        }
    }
}
