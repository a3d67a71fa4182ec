//! The report: the tables BENCHMARKS.md shows, each figure the median over the runs.

use std::collections::{BTreeMap, BTreeSet};

use crate::args::Options;
use crate::requests::show_verbs;
use crate::run::{Run, SATURATION_PAIRS};
use crate::stats::Latency;

/// The median of `values` (the mean of the middle two for an even count).
pub fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    match sorted.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => sorted[n / 2],
        n => (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0,
    }
}

fn med(runs: &[Run], f: impl Fn(&Run) -> f64) -> f64 {
    median(&runs.iter().map(f).collect::<Vec<_>>())
}

fn med_verbs(runs: &[Run], f: impl Fn(&Run) -> &BTreeMap<String, f64>) -> BTreeMap<String, f64> {
    let verbs: BTreeSet<String> = runs.iter().flat_map(|run| f(run).keys().cloned()).collect();
    verbs
        .into_iter()
        .map(|verb| {
            let values: Vec<f64> = runs
                .iter()
                .map(|r| f(r).get(&verb).copied().unwrap_or(0.0))
                .collect();
            (verb, median(&values))
        })
        .collect()
}

fn latency_cells(runs: &[Run], f: impl Fn(&Run) -> Latency) -> String {
    let p = |g: &dyn Fn(&Latency) -> f64| med(runs, |r| g(&f(r)));
    format!(
        "{:.2} | {:.2} / {:.2} / {:.2} | {:.2} / {:.2} / {:.2} | {:.0}",
        p(&|l| l.first_write.p50),
        p(&|l| l.last_write.p50),
        p(&|l| l.last_write.p99),
        p(&|l| l.last_write.max),
        p(&|l| l.round_trip.p50),
        p(&|l| l.round_trip.p99),
        p(&|l| l.round_trip.max),
        p(&|l| l.count as f64),
    )
}

/// `latency_cells` without the two write columns, for webhooks that write nothing.
fn skip_cells(cells: String) -> String {
    cells.splitn(3, " | ").nth(2).unwrap_or_default().to_owned()
}

pub fn report(options: &Options, results: &[(usize, Vec<Run>)], idle: &[Run]) {
    println!(
        "\n## Results (median of {} run(s); M = {} namespaces)\n",
        options.runs, options.namespaces
    );
    println!("### Start to ready, memory\n");
    println!(
        "| N | start → /readyz 200 (ms) | RSS at ready (MiB) | RSS after the workload (MiB) | peak RSS, VmHWM (MiB) |"
    );
    println!("|---|---|---|---|---|");
    let idle_row = |label: &str, runs: &[Run]| {
        println!(
            "| {label} | {:.0} | {:.1} | {:.1} | {:.1} |",
            med(runs, |r| r.ready_ms),
            med(runs, |r| r.rss_ready),
            med(runs, |r| r.rss_after),
            med(runs, |r| r.hwm_after)
        );
    };
    idle_row("0 (idle)", idle);
    for (n, runs) in results {
        idle_row(&n.to_string(), runs);
    }

    println!("\n### API requests per webhook, by verb (eso-refresher)\n");
    println!(
        "| N | 1 match | 100 matches | no match (requests other than watches and Events during all no-match webhooks) |"
    );
    println!("|---|---|---|---|");
    for (n, runs) in results {
        println!(
            "| {n} | {} | {} | {:.0} |",
            show_verbs(&med_verbs(runs, |r| &r.one.verbs)),
            show_verbs(&med_verbs(runs, |r| &r.fanout.verbs)),
            med(runs, |r| r.api_requests_no_match as f64),
        );
    }

    println!("\n### Latency, eso-refresher (ms; sequential webhooks)\n");
    println!(
        "| N | matches | sent → first PATCH arrived p50 | sent → last PATCH arrived p50 / p99 / max | round trip p50 / p99 / max | webhooks |"
    );
    println!("|---|---|---|---|---|---|");
    for (n, runs) in results {
        println!("| {n} | 1 | {} |", latency_cells(runs, |r| r.one.latency));
        println!(
            "| {n} | 100 | {} |",
            latency_cells(runs, |r| r.fanout.latency)
        );
        println!(
            "| {n} | 0 | – | – | {} |",
            skip_cells(latency_cells(runs, |r| r.no_match))
        );
    }

    println!(
        "\n### Saturation, eso-refresher ({} keep-alive connections, {} pairs of {} s phases per run, in-tree client, JSON logs at info)\n",
        options.connections, SATURATION_PAIRS, options.seconds
    );
    println!(
        "| N | GET /healthz (req/s) | authenticated no-match POST /webhook (req/s) | ratio (median of the pairs') | lowest pair ratio | service CPU per request, healthz / no-match (µs) |"
    );
    println!("|---|---|---|---|---|---|");
    for (n, runs) in results {
        let healthz = med(runs, |r| r.saturation.healthz_rps);
        let hooks = med(runs, |r| r.saturation.no_match_rps);
        let ratio = med(runs, |r| r.saturation.ratio);
        let lowest = runs
            .iter()
            .map(|r| r.saturation.lowest_ratio)
            .fold(f64::INFINITY, f64::min);
        println!(
            "| {n} | {healthz:.0} | {hooks:.0} | {:.0}% | {:.0}% | {:.1} / {:.1} |",
            100.0 * ratio,
            100.0 * lowest,
            med(runs, |r| r.saturation.healthz_cpu_us),
            med(runs, |r| r.saturation.no_match_cpu_us),
        );
    }

    println!(
        "\n### RE-IMPLEMENTATION of the original tool's strategy (same fake API server; sequential)\n"
    );
    println!(
        "| N | matches | requests per webhook | sent → first PUT arrived p50 | sent → last PUT arrived p50 / p99 / max | round trip p50 / p99 / max | webhooks | vs eso-refresher (p50 round trip) |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for (n, runs) in results {
        let ratio = |orig: &dyn Fn(&Run) -> Latency, ours: &dyn Fn(&Run) -> Latency| {
            med(runs, |r| orig(r).round_trip.p50) / med(runs, |r| ours(r).round_trip.p50)
        };
        println!(
            "| {n} | 1 | {} | {} | {:.0}× slower |",
            show_verbs(&med_verbs(runs, |r| &r.original_one.verbs)),
            latency_cells(runs, |r| r.original_one.latency),
            ratio(&|r| r.original_one.latency, &|r| r.one.latency)
        );
        println!(
            "| {n} | 100 | {} | {} | {:.0}× slower |",
            show_verbs(&med_verbs(runs, |r| &r.original_fanout.verbs)),
            latency_cells(runs, |r| r.original_fanout.latency),
            ratio(&|r| r.original_fanout.latency, &|r| r.fanout.latency)
        );
        let cells = latency_cells(runs, |r| r.original_no_match.latency);
        println!(
            "| {n} | 0 | {} | – | – | {} | {:.0}× slower; {:.1} webhooks/s sequentially |",
            show_verbs(&med_verbs(runs, |r| &r.original_no_match.verbs)),
            skip_cells(cells),
            ratio(&|r| r.original_no_match.latency, &|r| r.no_match),
            1000.0 / med(runs, |r| r.original_no_match.latency.round_trip.p50),
        );
    }
}
