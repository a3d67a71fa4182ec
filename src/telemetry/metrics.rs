//! Prometheus metrics, served in OpenMetrics text at `GET /metrics`: the service's own (prefix
//! `eso_refresher_`) and the standard process metrics (`process_`).

mod process;

use std::collections::HashMap;
use std::sync::Mutex;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub route: String,
    pub method: String,
    pub status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    /// The matched route pattern (`/webhook/{provider}`), never the raw path.
    pub route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EventLabels {
    /// The sender whose parser read the event (`akeyless`, `aws`, ...): one of a fixed list.
    pub sender: &'static str,
    pub event_type: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BuildLabels {
    version: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabels {
    pub kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabels {
    pub reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ErrorLabels {
    pub error: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    pub outcome: &'static str,
}

/// Distinct event types kept as label values per sender; more would let a sender grow the
/// series without bound, so further ones are counted as "other".
const MAX_EVENT_TYPES: usize = 32;

/// Request durations: 1 ms to about 33 s (a webhook patches for 20 s at most).
fn request_duration_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 2.0, 16))
}

type DurationFamily = Family<RouteLabels, Histogram, fn() -> Histogram>;

pub struct Metrics {
    registry: Registry,
    pub http_requests: Family<RequestLabels, Counter>,
    pub http_request_duration: DurationFamily,
    pub auth_failures: Counter,
    pub throttled_requests: Counter,
    pub events: Family<EventLabels, Counter>,
    pub duplicate_events: Counter,
    pub matched: Counter,
    pub patched: Family<KindLabels, Counter>,
    pub skipped: Family<ReasonLabels, Counter>,
    pub patch_failures: Family<ErrorLabels, Counter>,
    pub patch_retries: Counter,
    pub patch_duration: Histogram,
    pub external_secrets: Gauge,
    pub watch_errors: Counter,
    pub cache_buster_pending: Gauge,
    pub confirmations: Family<OutcomeLabels, Counter>,
    pub ready: Gauge,
    pub unmatchable_rules: Family<ReasonLabels, Gauge>,
    /// Each sender's counter per event type seen, up to [`MAX_EVENT_TYPES`] types a sender.
    event_types: Mutex<HashMap<&'static str, HashMap<String, Counter>>>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut metrics = Metrics {
            registry: Registry::default(),
            http_requests: Family::default(),
            http_request_duration: Family::new_with_constructor(request_duration_histogram),
            auth_failures: Counter::default(),
            throttled_requests: Counter::default(),
            events: Family::default(),
            duplicate_events: Counter::default(),
            matched: Counter::default(),
            patched: Family::default(),
            skipped: Family::default(),
            patch_failures: Family::default(),
            patch_retries: Counter::default(),
            // 1 ms to about 16 s.
            patch_duration: Histogram::new(exponential_buckets(0.001, 2.0, 15)),
            external_secrets: Gauge::default(),
            watch_errors: Counter::default(),
            cache_buster_pending: Gauge::default(),
            confirmations: Family::default(),
            ready: Gauge::default(),
            unmatchable_rules: Family::default(),
            event_types: Mutex::default(),
        };
        metrics.register();
        metrics
    }
}

impl Metrics {
    fn register(&mut self) {
        self.registry
            .sub_registry_with_prefix("process")
            .register_collector(Box::new(process::ProcessCollector));
        let r = self.registry.sub_registry_with_prefix("eso_refresher");
        r.register(
            "build",
            "The running version",
            Info::new(BuildLabels {
                version: env!("CARGO_PKG_VERSION"),
            }),
        );
        r.register(
            "http_requests",
            "HTTP requests by route, method and status",
            self.http_requests.clone(),
        );
        r.register(
            "http_request_duration_seconds",
            "Time to answer a request, by route",
            self.http_request_duration.clone(),
        );
        r.register(
            "log_lines_dropped",
            "Log lines lost because stderr was not read in time or could not be written",
            super::dropped_log_lines(),
        );
        r.register(
            "auth_failures",
            "Webhook requests with missing or wrong credentials",
            self.auth_failures.clone(),
        );
        r.register(
            "throttled_requests",
            "Requests refused after repeated authentication failures",
            self.throttled_requests.clone(),
        );
        r.register(
            "events",
            "Change events received, by sender and type",
            self.events.clone(),
        );
        r.register(
            "duplicate_events",
            "Events whose id was already handled within the window",
            self.duplicate_events.clone(),
        );
        r.register(
            "external_secrets_matched",
            "ExternalSecrets matched by change events",
            self.matched.clone(),
        );
        r.register("patches", "Objects patched, by kind", self.patched.clone());
        r.register(
            "external_secrets_skipped",
            "Matched ExternalSecrets not patched, by reason",
            self.skipped.clone(),
        );
        r.register(
            "patch_failures",
            "Patches that failed after retries, by error",
            self.patch_failures.clone(),
        );
        r.register(
            "patch_retries",
            "Patch attempts retried after a transient error",
            self.patch_retries.clone(),
        );
        r.register(
            "patch_duration_seconds",
            "Time to apply one patch, retries included",
            self.patch_duration.clone(),
        );
        r.register(
            "external_secrets_cached",
            "ExternalSecrets in the index",
            self.external_secrets.clone(),
        );
        r.register(
            "watch_errors",
            "Watch errors (each is followed by a retry or a re-list)",
            self.watch_errors.clone(),
        );
        r.register(
            "cache_buster_pending",
            "Second patches scheduled and not yet sent",
            self.cache_buster_pending.clone(),
        );
        r.register(
            "confirmations",
            "Refreshes followed until ESO reported them, by outcome",
            self.confirmations.clone(),
        );
        r.register(
            "ready",
            "1 while the service is ready (GET /readyz answers 200), else 0",
            self.ready.clone(),
        );
        r.register(
            "unmatchable_rules",
            "ExternalSecret dataFrom.find rules no change event can match, by reason",
            self.unmatchable_rules.clone(),
        );
    }

    /// Counts an event of `sender`'s under its type, or "other" once enough distinct types
    /// were seen from that sender.
    pub fn count_event(&self, sender: &'static str, event_type: Option<&str>) {
        let event_type = event_type.unwrap_or("unknown");
        let mut counters = self.event_types.lock().unwrap_or_else(|p| p.into_inner());
        let counters = counters.entry(sender).or_default();
        if let Some(counter) = counters.get(event_type) {
            counter.inc();
            return;
        }
        // Dotted and slashed names are common (`Microsoft.KeyVault.SecretNewVersionCreated`,
        // `kv-v2/data-write`); anything else is not a type name.
        let plausible = event_type.len() <= 64
            && event_type
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_./:".contains(&b));
        let kept = plausible && counters.len() < MAX_EVENT_TYPES;
        let label = if kept { event_type } else { "other" };
        let counter = self
            .events
            .get_or_create(&EventLabels {
                sender,
                event_type: label.to_owned(),
            })
            .clone();
        counter.inc();
        if kept {
            counters.insert(event_type.to_owned(), counter);
        }
    }

    /// The metrics in OpenMetrics text.
    pub fn encode(&self) -> String {
        let mut text = String::new();
        if prometheus_client::encoding::text::encode(&mut text, &self.registry).is_err() {
            text.clear();
        }
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_openmetrics_text() {
        let metrics = Metrics::default();
        metrics.patch_retries.inc();
        metrics.count_event("akeyless", Some("static-secret-updated"));
        metrics
            .http_request_duration
            .get_or_create(&RouteLabels {
                route: "/webhook/{provider}".to_owned(),
            })
            .observe(0.003);
        let text = metrics.encode();
        for expected in [
            "eso_refresher_patch_retries_total 1",
            r#"eso_refresher_events_total{sender="akeyless",event_type="static-secret-updated"} 1"#,
            r#"eso_refresher_http_request_duration_seconds_bucket{le="0.004",route="/webhook/{provider}"} 1"#,
            r#"eso_refresher_http_request_duration_seconds_count{route="/webhook/{provider}"} 1"#,
            concat!(
                r#"eso_refresher_build_info{version=""#,
                env!("CARGO_PKG_VERSION"),
                r#""} 1"#
            ),
        ] {
            assert!(text.contains(expected), "missing {expected}:\n{text}");
        }
        assert!(text.ends_with("# EOF\n"));
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn process_metrics_have_the_standard_names() {
        let text = Metrics::default().encode();
        for name in [
            "process_cpu_seconds_total ",
            "process_resident_memory_bytes ",
            "process_virtual_memory_bytes ",
            "process_start_time_seconds ",
            "process_open_fds ",
            "process_max_fds ",
            "process_threads ",
        ] {
            assert!(
                text.lines().any(|line| line.starts_with(name)),
                "missing {name}:\n{text}"
            );
        }
    }

    #[test]
    fn event_type_labels_are_bounded_per_sender() {
        let metrics = Metrics::default();
        for i in 0..100 {
            metrics.count_event("cloudevents", Some(&format!("com.example.type-{i}")));
        }
        metrics.count_event("cloudevents", Some("bad type with spaces"));
        // Another sender's types are not crowded out.
        metrics.count_event("vault", Some("kv-v2/data-write"));
        metrics.count_event("vault", None);
        let text = metrics.encode();
        let series = |sender: &str| {
            let prefix = format!(r#"eso_refresher_events_total{{sender="{sender}","#);
            text.lines().filter(|l| l.starts_with(&prefix)).count()
        };
        assert_eq!(series("cloudevents"), MAX_EVENT_TYPES + 1, "{text}");
        assert!(
            text.contains(r#"{sender="cloudevents",event_type="other"} 69"#),
            "{text}"
        );
        assert!(
            text.contains(r#"{sender="cloudevents",event_type="com.example.type-0"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(r#"{sender="vault",event_type="kv-v2/data-write"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(r#"{sender="vault",event_type="unknown"} 1"#),
            "{text}"
        );
    }
}
