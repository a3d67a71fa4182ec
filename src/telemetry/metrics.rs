//! Prometheus metrics, served in OpenMetrics text at `GET /metrics`.

use std::collections::HashSet;
use std::sync::Mutex;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub route: String,
    pub method: String,
    pub status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EventLabels {
    pub event_type: String,
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

/// Distinct event types kept as label values; more would let a sender grow the series
/// without bound, so further ones are counted as "other".
const MAX_EVENT_TYPES: usize = 32;

pub struct Metrics {
    registry: Registry,
    pub http_requests: Family<RequestLabels, Counter>,
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
    event_types: Mutex<HashSet<String>>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut metrics = Metrics {
            registry: Registry::with_prefix("eso_refresher"),
            http_requests: Family::default(),
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
        let r = &mut self.registry;
        r.register(
            "http_requests",
            "HTTP requests by route, method and status",
            self.http_requests.clone(),
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
            "Change events received, by type",
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

    /// Counts an event under its type, or "other" once enough distinct types were seen.
    pub fn count_event(&self, event_type: Option<&str>) {
        let event_type = event_type.unwrap_or("unknown");
        let plausible = event_type.len() <= 64
            && event_type
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        let label = {
            let mut seen = self.event_types.lock().unwrap_or_else(|p| p.into_inner());
            if plausible && (seen.contains(event_type) || seen.len() < MAX_EVENT_TYPES) {
                seen.insert(event_type.to_owned());
                event_type
            } else {
                "other"
            }
        };
        self.events
            .get_or_create(&EventLabels {
                event_type: label.to_owned(),
            })
            .inc();
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
        metrics.count_event(Some("static-secret-updated"));
        let text = metrics.encode();
        assert!(
            text.contains("eso_refresher_patch_retries_total 1"),
            "{text}"
        );
        assert!(
            text.contains(r#"eso_refresher_events_total{event_type="static-secret-updated"} 1"#),
            "{text}"
        );
        assert!(text.ends_with("# EOF\n"));
    }

    #[test]
    fn event_type_labels_are_bounded() {
        let metrics = Metrics::default();
        for i in 0..100 {
            metrics.count_event(Some(&format!("type-{i}")));
        }
        metrics.count_event(Some("bad type with spaces"));
        let text = metrics.encode();
        let series = text
            .lines()
            .filter(|l| l.starts_with("eso_refresher_events_total{"))
            .count();
        assert_eq!(series, MAX_EVENT_TYPES + 1, "{text}");
        assert!(text.contains(r#"event_type="other"} 69"#), "{text}");
    }
}
