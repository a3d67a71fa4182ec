//! Benchmark: eso-refresher (the release binary, as a subprocess) against the fake Kubernetes
//! API server of the integration tests, with N ExternalSecrets over M namespaces; and the same
//! workload through a re-implementation of the original Go tool's per-webhook strategy.
//!
//! ```sh
//! nice -n 10 cargo bench --bench refresh -- --sizes 1000,10000,100000 --runs 5
//! cargo bench --bench refresh -- --smoke        # tiny, untimed: checks that it all works
//! ```
//!
//! Options: `cargo bench --bench refresh -- --help` lists them. BENCHMARKS.md explains each
//! figure. All traffic stays on 127.0.0.1; every loop is bounded in count and in time.
//!
//! `--envtest` measures instead against a real kube-apiserver and the real ESO controller
//! (`refresh/envtest.rs`), beside the same workload on the fake.
//!
//! The parts, in `refresh/`: `args` (the options), `workload` (the ExternalSecrets, the fake
//! loaded with them, the webhook bodies), `service` (the service as a subprocess),
//! `client` (webhooks, and the raw client of the saturation phases), `stats` (latency
//! percentiles), `requests` (API requests by verb), `original` (the original tool's
//! strategy), `run` (the measured runs), `report` (the tables), `envtest`.

#[path = "../tests/integration/support/fake_api.rs"]
#[allow(dead_code)] // the benchmark uses only part of the fake
mod fake_api;

#[path = "refresh/args.rs"]
mod args;
#[path = "refresh/client.rs"]
mod client;
#[path = "refresh/envtest.rs"]
mod envtest;
#[path = "refresh/original.rs"]
mod original;
#[path = "refresh/report.rs"]
mod report;
#[path = "refresh/requests.rs"]
mod requests;
#[path = "refresh/run.rs"]
mod run;
#[path = "refresh/service.rs"]
mod service;
#[path = "refresh/stats.rs"]
mod stats;
#[path = "refresh/workload.rs"]
mod workload;

use std::time::{Duration, Instant};

use args::Options;

fn main() {
    let options = Options::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let dir = tempfile::tempdir().expect("temp dir");
        eso_refresher::install_crypto_provider();
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(120))
            .build()
            .expect("client");
        let started = Instant::now();
        if options.envtest {
            if let Some(figures) = envtest::run(&options, dir.path(), &http).await {
                envtest::report(&options, &figures);
            }
            eprintln!("\ntotal {:.0}s", started.elapsed().as_secs_f64());
            return;
        }

        let idle = run::idle(&options, dir.path(), &http).await;
        let mut results = Vec::new();
        for &n in &options.sizes {
            let runs = run::for_size(&options, n, dir.path(), &http).await;
            results.push((n, runs));
        }
        report::report(&options, &results, &idle);
        eprintln!("\ntotal {:.0}s", started.elapsed().as_secs_f64());
        if options.smoke {
            let runs = &results[0].1;
            assert!(
                runs.iter().all(|r| requests::reads(&r.one.verbs) == 0.0
                    && requests::reads(&r.fanout.verbs) == 0.0)
            );
            // A tiny pass on envtest too when it is there (skipped, visibly, when not).
            if let Some(figures) = envtest::run(&options, dir.path(), &http).await {
                envtest::report(&options, &figures);
            }
            println!("\nsmoke run passed");
        }
    });
}
