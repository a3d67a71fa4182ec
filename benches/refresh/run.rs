//! The measured runs: per size, each run starts the service against the loaded fake, times the
//! webhooks, saturates it and reads its memory, then times the original tool's strategy on the
//! same fake; and the idle service against an empty one.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::args::Options;
use crate::client::{AKEYLESS, measure_webhooks, raw_request, saturate};
use crate::original::{measure_original, original_webhook};
use crate::report::median;
use crate::requests::{Phase, verb, with_requests};
use crate::service::Service;
use crate::stats::{Latency, ms};
use crate::workload::{
    FANOUT, akeyless_body, akeyless_body_without_id, group_key, loaded_fake, own_key, spread,
};

/// The figures of one run.
#[derive(Default)]
pub struct Run {
    pub ready_ms: f64,
    pub rss_ready: f64,
    pub rss_after: f64,
    pub hwm_after: f64,
    /// eso-refresher's webhooks with 1 match, 100 matches and none; for the last, the API
    /// requests (other than watches and Events) during all of them.
    pub one: Phase,
    pub fanout: Phase,
    pub no_match: Latency,
    pub api_requests_no_match: usize,
    pub saturation: Saturation,
    /// The same through the re-implementation of the original tool.
    pub original_one: Phase,
    pub original_fanout: Phase,
    pub original_no_match: Phase,
}

/// Saturation phases per run: `/healthz`, then the no-match webhook, this many times.
pub const SATURATION_PAIRS: usize = 3;

/// `/healthz` against the authenticated no-match webhook, each saturated in turn.
#[derive(Default)]
pub struct Saturation {
    /// The median rate of each (requests per second) over the pairs.
    pub healthz_rps: f64,
    pub no_match_rps: f64,
    /// The median, and the lowest, of the pairs' ratios (webhook / healthz): the two phases of
    /// a pair share the machine's load of the moment, which moves the rates of a whole pair.
    pub ratio: f64,
    pub lowest_ratio: f64,
    /// The service's CPU time per request answered (µs, median over the pairs), which the
    /// client's own share of the cores does not move.
    pub healthz_cpu_us: f64,
    pub no_match_cpu_us: f64,
}

/// One saturation phase: requests per second, and the service's CPU time (µs) per request.
struct PhaseFigures {
    rate: f64,
    cpu_us: f64,
}

async fn saturation(service: &Service, options: &Options) -> Saturation {
    let port = service.port;
    let healthz = raw_request("GET", "/healthz", port, false, "");
    let body = akeyless_body_without_id("/bench/none/saturation");
    let webhook = raw_request("POST", "/webhook", port, true, &body);
    // One phase: the rate, and the service's CPU time per request answered.
    let phase = async |request: &Vec<u8>| {
        let cpu = service.cpu_seconds();
        let saturated = saturate(port, request.clone(), options.connections, options.seconds).await;
        let cpu = service.cpu_seconds() - cpu;
        PhaseFigures {
            rate: saturated.rate,
            cpu_us: 1e6 * cpu / saturated.answered as f64,
        }
    };
    let mut healthz_phases = Vec::new();
    let mut webhook_phases = Vec::new();
    for _ in 0..SATURATION_PAIRS {
        healthz_phases.push(phase(&healthz).await);
        webhook_phases.push(phase(&webhook).await);
    }
    let figure = |phases: &[PhaseFigures], f: fn(&PhaseFigures) -> f64| {
        median(&phases.iter().map(f).collect::<Vec<_>>())
    };
    let ratios: Vec<f64> = healthz_phases
        .iter()
        .zip(&webhook_phases)
        .map(|(h, w)| w.rate / h.rate)
        .collect();
    Saturation {
        healthz_rps: figure(&healthz_phases, |p| p.rate),
        no_match_rps: figure(&webhook_phases, |p| p.rate),
        ratio: median(&ratios),
        lowest_ratio: ratios.iter().copied().fold(f64::INFINITY, f64::min),
        healthz_cpu_us: figure(&healthz_phases, |p| p.cpu_us),
        no_match_cpu_us: figure(&webhook_phases, |p| p.cpu_us),
    }
}

/// The service started with `kubeconfig` and ready with `expected` ExternalSecrets indexed; a
/// run with the time from start to ready and the RSS 200 ms after.
async fn ready_service(
    dir: &Path,
    kubeconfig: &Path,
    label: &str,
    http: &reqwest::Client,
    expected: usize,
) -> (Service, Run) {
    let started = Instant::now();
    let mut service = Service::start(dir, kubeconfig, label);
    let mut r = Run {
        ready_ms: ms(service.wait_ready(http, started, Some(expected)).await),
        ..Run::default()
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    r.rss_ready = service.memory().0;
    (service, r)
}

/// The service against an empty cluster: start to ready and memory, once per run.
pub async fn idle(options: &Options, dir: &Path, http: &reqwest::Client) -> Vec<Run> {
    let (_fake, _api, front, _arrivals, kubeconfig) = loaded_fake(0, options.namespaces, dir).await;
    let mut runs = Vec::new();
    for run in 0..options.runs {
        let (service, mut r) =
            ready_service(dir, &kubeconfig, &format!("idle-{run}"), http, 0).await;
        (r.rss_after, r.hwm_after) = (r.rss_ready, service.memory().1);
        service.stop().await;
        runs.push(r);
    }
    front.stop(false).await;
    runs
}

/// The runs with N ExternalSecrets.
pub async fn for_size(options: &Options, n: usize, dir: &Path, http: &reqwest::Client) -> Vec<Run> {
    let (fake, api, front, arrivals, kubeconfig) = loaded_fake(n, options.namespaces, dir).await;
    let groups = n / FANOUT;
    let mut runs = Vec::new();

    for run in 0..options.runs {
        fake.clear_requests();
        let (service, mut r) =
            ready_service(dir, &kubeconfig, &format!("{n}-{run}"), http, n).await;

        if n > 0 {
            // Warm the connections (the service's to the API server, ours to the service).
            let warm = (0..5).map(|k| (akeyless_body(&own_key(spread(k, n))), 1));
            measure_webhooks(
                http,
                &service.url,
                AKEYLESS,
                &arrivals,
                warm,
                Duration::from_secs(10),
            )
            .await;

            let bodies = (0..options.webhooks).map(|k| (akeyless_body(&own_key(spread(k, n))), 1));
            let cap = Duration::from_secs(30);
            r.one = with_requests(
                &fake,
                measure_webhooks(http, &service.url, AKEYLESS, &arrivals, bodies, cap),
            )
            .await;

            let bodies = (0..options.fanout_webhooks)
                .map(|k| (akeyless_body(&group_key(spread(k, groups))), FANOUT));
            let cap = Duration::from_secs(60);
            r.fanout = with_requests(
                &fake,
                measure_webhooks(http, &service.url, AKEYLESS, &arrivals, bodies, cap),
            )
            .await;

            let mark = fake.request_count();
            let bodies =
                (0..options.webhooks).map(|k| (akeyless_body(&format!("/bench/none/{k}")), 0));
            r.no_match = measure_webhooks(
                http,
                &service.url,
                AKEYLESS,
                &arrivals,
                bodies,
                Duration::from_secs(30),
            )
            .await;

            r.saturation = saturation(&service, options).await;
            // Events about the previous phase's refreshes may still trickle in: not counted.
            r.api_requests_no_match = fake
                .request_summaries_since(mark)
                .iter()
                .filter(|(method, path, watch)| !watch && verb(method, path, *watch) != "Event")
                .count();
        }
        (r.rss_after, r.hwm_after) = service.memory();
        service.stop().await;

        if n > 0 {
            // Let the killed process go, and warm the client's connections, before timing.
            tokio::time::sleep(Duration::from_millis(300)).await;
            original_webhook(http, &api, "/bench/none/warm-up", "warm-up").await;
            let cap = Duration::from_secs_f64(options.original_seconds);
            let keys = (0..options.original_webhooks).map(|k| (own_key(spread(k + 1000, n)), 1));
            r.original_one =
                with_requests(&fake, measure_original(http, &api, &arrivals, keys, cap)).await;
            let keys =
                (0..options.original_webhooks).map(|k| (group_key(spread(k + 7, groups)), FANOUT));
            r.original_fanout =
                with_requests(&fake, measure_original(http, &api, &arrivals, keys, cap)).await;
            let keys = (0..options.original_webhooks).map(|k| (format!("/bench/none/{k}"), 0));
            r.original_no_match =
                with_requests(&fake, measure_original(http, &api, &arrivals, keys, cap)).await;
        }
        eprintln!(
            "[N={n} run {}] ready {:.0} ms, RSS {:.1}/{:.1} MiB (peak {:.1}); 1 match p50/p99 {:.2}/{:.2} ms; \
             100 match p99 {:.2} ms; healthz {:.0}/s, no-match {:.0}/s; original 1 match p50 {:.1} ms",
            run + 1,
            r.ready_ms,
            r.rss_ready,
            r.rss_after,
            r.hwm_after,
            r.one.latency.last_write.p50,
            r.one.latency.last_write.p99,
            r.fanout.latency.last_write.p99,
            r.saturation.healthz_rps,
            r.saturation.no_match_rps,
            r.original_one.latency.round_trip.p50,
        );
        runs.push(r);
    }
    front.stop(false).await;
    runs
}
