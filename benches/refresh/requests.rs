//! The API requests a phase made, per webhook, by verb: counted from the fake's request log,
//! or (envtest) from the API server's audit log.

use std::collections::BTreeMap;

use crate::fake_api::FakeApiServer;
use crate::stats::Latency;

/// A request as the fake recorded it, by verb: LIST, GET, WATCH, PATCH, PUT, discovery, and
/// the writes of Kubernetes Events about refreshes (in the background, not on a webhook's path).
pub fn verb(method: &str, path: &str, is_watch: bool) -> &'static str {
    let last = path.rsplit('/').next().unwrap_or_default();
    match method {
        "GET" if is_watch => "WATCH",
        "GET" if ["externalsecrets", "clusterexternalsecrets", "namespaces"].contains(&last) => {
            "LIST"
        }
        "GET" if path == "/api" || path == "/apis" || path.split('/').count() <= 4 => "discovery",
        "GET" => "GET",
        "PATCH" if path.starts_with("/apis/events.k8s.io/") => "Event",
        "POST" if path.starts_with("/apis/events.k8s.io/") => "Event",
        "PATCH" => "PATCH",
        "PUT" => "PUT",
        _ => "other",
    }
}

/// A measured phase: the latency of its webhooks, and the API requests made meanwhile, per
/// webhook, by verb.
#[derive(Default)]
pub struct Phase {
    pub latency: Latency,
    pub verbs: BTreeMap<String, f64>,
}

/// Runs a measured phase and counts the API requests made meanwhile, per webhook, by verb.
pub async fn with_requests(log: &dyn RequestLog, phase: impl Future<Output = Latency>) -> Phase {
    let mark = log.mark();
    let latency = phase.await;
    let verbs = log.verbs_since(mark, latency.count);
    Phase { latency, verbs }
}

/// Where the API requests of a phase are counted: the fake's request log, or (envtest) the
/// API server's audit log.
pub trait RequestLog {
    /// A mark for `verbs_since`: the requests so far.
    fn mark(&self) -> usize;
    /// Requests since `from`, per webhook, by verb.
    fn verbs_since(&self, from: usize, webhooks: usize) -> BTreeMap<String, f64>;
}

impl RequestLog for FakeApiServer {
    fn mark(&self) -> usize {
        self.request_count()
    }

    fn verbs_since(&self, from: usize, webhooks: usize) -> BTreeMap<String, f64> {
        requests_by_verb(self, from, webhooks)
    }
}

fn requests_by_verb(fake: &FakeApiServer, from: usize, webhooks: usize) -> BTreeMap<String, f64> {
    let verbs = fake
        .request_summaries_since(from)
        .into_iter()
        .map(|(method, path, is_watch)| verb(&method, &path, is_watch).to_owned());
    per_webhook(verbs, webhooks)
}

/// How many of each verb there were per webhook.
pub fn per_webhook(verbs: impl Iterator<Item = String>, webhooks: usize) -> BTreeMap<String, f64> {
    let mut counts: BTreeMap<String, f64> = BTreeMap::new();
    for verb in verbs {
        *counts.entry(verb).or_default() += 1.0;
    }
    for count in counts.values_mut() {
        *count /= webhooks.max(1) as f64;
    }
    counts
}

pub fn reads(counts: &BTreeMap<String, f64>) -> f64 {
    ["LIST", "GET"].iter().filter_map(|v| counts.get(*v)).sum()
}

pub fn show_verbs(counts: &BTreeMap<String, f64>) -> String {
    if counts.is_empty() {
        return "none".into();
    }
    counts
        .iter()
        .map(|(verb, n)| format!("{verb} {n:.2}"))
        .collect::<Vec<_>>()
        .join(", ")
}
