//! The command line (`cargo bench --bench refresh -- …`) and the options it comes to: the
//! defaults, and what `--envtest` and `--smoke` change.

use crate::envtest;
use crate::workload::FANOUT;

/// What a run measures, and how much: the command line over the defaults.
pub struct Options {
    pub sizes: Vec<usize>,
    pub runs: usize,
    pub namespaces: usize,
    pub seconds: f64,
    pub connections: usize,
    pub webhooks: usize,
    pub fanout_webhooks: usize,
    pub original_webhooks: usize,
    pub original_seconds: f64,
    pub smoke: bool,
    /// Against envtest (see `envtest`), not the fake alone.
    pub envtest: bool,
    /// Webhooks timed until ESO has put the new value in the Secret (envtest only).
    pub secret_samples: usize,
}

/// The command line (`cargo bench --bench refresh -- …`); BENCHMARKS.md explains each figure.
#[derive(clap::Parser)]
#[command(
    name = "refresh",
    bin_name = "cargo bench --bench refresh --",
    about = "Benchmark eso-refresher against the fake API server (and envtest)"
)]
struct Args {
    /// ExternalSecret counts, comma-separated, multiples of 100 [default: 1000,10000,100000]
    #[arg(long, value_delimiter = ',')]
    sizes: Option<Vec<usize>>,
    /// Runs per size [default: 5]
    #[arg(long)]
    runs: Option<usize>,
    /// Namespaces the ExternalSecrets are spread over [default: 100]
    #[arg(long)]
    namespaces: Option<usize>,
    /// Seconds per saturation phase (3 pairs of phases per run) [default: 2]
    #[arg(long)]
    seconds: Option<f64>,
    /// Connections of the saturation phases [default: 32]
    #[arg(long)]
    connections: Option<usize>,
    /// 1-match and no-match webhooks per run [default: 500]
    #[arg(long)]
    webhooks: Option<usize>,
    /// 100-match webhooks per run [default: 100]
    #[arg(long)]
    fanout_webhooks: Option<usize>,
    /// Webhooks through the re-implementation of the original tool [default: 20]
    #[arg(long)]
    original_webhooks: Option<usize>,
    /// Cap, in seconds, of each phase of the re-implementation [default: 15]
    #[arg(long)]
    original_seconds: Option<f64>,
    /// envtest: webhooks timed until ESO has put the new value in the Secret [default: 40]
    #[arg(long)]
    secret_samples: Option<usize>,
    /// Tiny and untimed: checks that the tool works (overrides the sizes and counts)
    #[arg(long)]
    smoke: bool,
    /// Against a real kube-apiserver and ESO (envtest's variables), beside the fake
    #[arg(long)]
    envtest: bool,
    /// Passed by `cargo bench`.
    #[arg(long, hide = true)]
    bench: bool,
}

impl Options {
    pub fn parse() -> Options {
        let args = <Args as clap::Parser>::parse();
        let mut options = Options {
            sizes: vec![1_000, 10_000, 100_000],
            runs: 5,
            namespaces: 100,
            seconds: 2.0,
            connections: 32,
            webhooks: 500,
            fanout_webhooks: 100,
            original_webhooks: 20,
            original_seconds: 15.0,
            smoke: args.smoke,
            envtest: args.envtest,
            secret_samples: 40,
        };
        if args.envtest {
            // One size, few namespaces, enough sequential samples for a p99 (see envtest.rs).
            options.sizes = vec![envtest::SIZE];
            options.runs = 1;
            options.namespaces = 5;
            options.webhooks = 100;
            options.fanout_webhooks = 40;
        }
        options.sizes = args.sizes.unwrap_or(options.sizes);
        options.runs = args.runs.unwrap_or(options.runs);
        options.namespaces = args.namespaces.unwrap_or(options.namespaces);
        options.seconds = args.seconds.unwrap_or(options.seconds);
        options.connections = args.connections.unwrap_or(options.connections);
        options.webhooks = args.webhooks.unwrap_or(options.webhooks);
        options.fanout_webhooks = args.fanout_webhooks.unwrap_or(options.fanout_webhooks);
        options.original_webhooks = args.original_webhooks.unwrap_or(options.original_webhooks);
        options.original_seconds = args.original_seconds.unwrap_or(options.original_seconds);
        options.secret_samples = args.secret_samples.unwrap_or(options.secret_samples);
        if options.smoke {
            options.sizes = vec![200];
            options.runs = 1;
            options.namespaces = 10;
            options.seconds = 0.5;
            options.connections = 4;
            options.webhooks = 20;
            options.fanout_webhooks = 3;
            options.original_webhooks = 3;
            options.original_seconds = 5.0;
            options.secret_samples = 3;
            if options.envtest {
                options.sizes = vec![envtest::SIZE];
                options.namespaces = 5;
                options.webhooks = 3;
            }
        }
        assert!(options.runs >= 1 && options.namespaces >= 1);
        assert!(
            options
                .sizes
                .iter()
                .all(|n| *n >= FANOUT && n % FANOUT == 0),
            "sizes must be multiples of {FANOUT}"
        );
        options
    }
}
