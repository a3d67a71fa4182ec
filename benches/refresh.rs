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
//! figure. All traffic stays on 127.0.0.1; every loop
//! is bounded in count and in time.
//!
//! `--envtest` measures instead against a real kube-apiserver and the real ESO controller
//! (`refresh/envtest.rs`), beside the same workload on the fake.

#[path = "../tests/integration/support/fake_api.rs"]
#[allow(dead_code)] // the benchmark uses only part of the fake
mod fake_api;

#[path = "refresh/envtest.rs"]
mod envtest;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use base64::Engine;
use fake_api::{Arrivals, FakeApiServer};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const USER: &str = "bench";
const PASSWORD: &str = "bench-Pa55";
/// ExternalSecrets that share a group key: a webhook for it matches this many.
const FANOUT: usize = 100;
/// One ExternalSecret in this many also has a `dataFrom[].find` rule.
const FIND_EVERY: usize = 100;
const READY_TIMEOUT: Duration = Duration::from_secs(600);

struct Options {
    sizes: Vec<usize>,
    runs: usize,
    namespaces: usize,
    seconds: f64,
    connections: usize,
    webhooks: usize,
    fanout_webhooks: usize,
    original_webhooks: usize,
    original_seconds: f64,
    smoke: bool,
    /// Against envtest (see `envtest`), not the fake alone.
    envtest: bool,
    /// Webhooks timed until ESO has put the new value in the Secret (envtest only).
    secret_samples: usize,
}

/// The command line (`cargo bench --bench refresh -- …`); BENCHMARKS.md explains each figure.
#[derive(clap::Parser)]
#[command(about = "Benchmark eso-refresher against the fake API server (and envtest)")]
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
    /// Seconds per saturation phase [default: 3]
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
    fn parse() -> Options {
        let args = <Args as clap::Parser>::parse();
        let mut options = Options {
            sizes: vec![1_000, 10_000, 100_000],
            runs: 5,
            namespaces: 100,
            seconds: 3.0,
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

// ---------------------------------------------------------------------------------------------
// The workload
// ---------------------------------------------------------------------------------------------

fn namespace_of(i: usize, namespaces: usize) -> String {
    format!("bench-{:03}", i % namespaces)
}

fn own_key(i: usize) -> String {
    format!("/bench/own/{i}")
}

fn group_key(group: usize) -> String {
    format!("/bench/group/{group}")
}

/// ExternalSecret `i`: its own key (a webhook for it matches 1), a key shared with the 99
/// others of its group, spread over every namespace (a webhook for it matches 100), and, for
/// one in FIND_EVERY, a `dataFrom[].find` rule the index must try on every lookup.
fn external_secret(i: usize, namespaces: usize) -> Value {
    let name = format!("es-{i:06}");
    let mut object = json!({
        "apiVersion": "external-secrets.io/v1",
        "kind": "ExternalSecret",
        "metadata": {"namespace": namespace_of(i, namespaces), "name": name,
                     "labels": {"app.kubernetes.io/part-of": "bench"}},
        "spec": {
            "refreshInterval": "1h",
            "secretStoreRef": {"kind": "ClusterSecretStore", "name": "akeyless"},
            "target": {"name": name, "creationPolicy": "Owner"},
            "data": [
                {"secretKey": "password", "remoteRef": {"key": own_key(i)}},
                {"secretKey": "host", "remoteRef": {"key": group_key(i / FANOUT)}},
            ],
        },
    });
    if i % FIND_EVERY == FIND_EVERY / 2 {
        object["spec"]["dataFrom"] = json!([{"find": {"path": format!("/bench/find/{i}/"), "name": {"regexp": "^cfg-.*$"}}}]);
    }
    object
}

/// Stores N ExternalSecrets: the first of each shape through `apply`, which validates it
/// against ESO's CRD schema, the rest unvalidated (validating 100k takes minutes).
fn load(fake: &FakeApiServer, n: usize, namespaces: usize) {
    fake.apply(external_secret(0, namespaces));
    fake.apply(external_secret(FIND_EVERY / 2, namespaces));
    let rest = (1..n)
        .filter(|i| *i != FIND_EVERY / 2)
        .map(|i| external_secret(i, namespaces));
    fake.load_unvalidated(rest);
}

static NEXT_EVENT_ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

/// An Akeyless forwarder body announcing one changed item, with an event id of its own (a
/// repeated id is answered as a duplicate without a lookup).
fn akeyless_body(key: &str) -> String {
    let id = NEXT_EVENT_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    json!([{"event_id": id, "event_level": "info", "event_type": "static-secret-updated",
            "item_name": key, "item_id": 1, "item_type": "STATIC_SECRET", "payload": {}}])
    .to_string()
}

/// Webhooks in the Akeyless form to `/webhook`, whose writes the fake records as they arrive.
const AKEYLESS: (&str, &dyn Fn()) = ("/webhook", &|| {});

/// The generic form, `{"keys": [..]}`, for `POST /webhook/generic`: concerns a store of any
/// provider (ESO's `webhook` provider, on envtest).
fn generic_body(key: &str) -> String {
    json!({"keys": [key]}).to_string()
}

/// The same without an event id, for the saturation phase, which sends one request over and
/// over: every one is looked up, none is taken for a re-delivery.
fn akeyless_body_without_id(key: &str) -> String {
    json!([{"event_level": "info", "event_type": "static-secret-updated",
            "item_name": key, "item_id": 1, "item_type": "STATIC_SECRET", "payload": {}}])
    .to_string()
}

fn matches_key(object: &Value, key: &str) -> bool {
    let key = key.trim_start_matches('/');
    let same = |k: &Value| k.as_str().is_some_and(|k| k.trim_start_matches('/') == key);
    let spec = &object["spec"];
    spec["data"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|d| same(&d["remoteRef"]["key"]))
        || spec["dataFrom"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|d| same(&d["extract"]["key"]))
}

// ---------------------------------------------------------------------------------------------
// Figures
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Copy, Default)]
struct Stats {
    p50: f64,
    p99: f64,
    max: f64,
}

/// Nearest-rank percentiles of `samples` (milliseconds).
fn stats(samples: &[f64]) -> Stats {
    if samples.is_empty() {
        return Stats::default();
    }
    let mut sorted = samples.to_vec();
    sorted.sort_by(f64::total_cmp);
    let rank =
        |p: f64| sorted[((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len()) - 1];
    Stats {
        p50: rank(0.50),
        p99: rank(0.99),
        max: sorted[sorted.len() - 1],
    }
}

fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    match sorted.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => sorted[n / 2],
        n => (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0,
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Latency of one kind of webhook: round trip, and from sending it to the first and the last
/// PATCH (or PUT) arriving at the API server.
#[derive(Default, Clone, Copy)]
struct Latency {
    count: usize,
    round_trip: Stats,
    first_write: Stats,
    last_write: Stats,
}

/// A request as the fake recorded it, by verb: LIST, GET, WATCH, PATCH, PUT, discovery, and
/// the writes of Kubernetes Events about refreshes (in the background, not on a webhook's path).
fn verb(method: &str, path: &str, is_watch: bool) -> &'static str {
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

/// Runs a measured phase and counts the API requests made meanwhile, per webhook, by verb.
async fn with_requests(
    log: &dyn RequestLog,
    phase: impl std::future::Future<Output = Latency>,
) -> (Latency, BTreeMap<String, f64>) {
    let mark = log.mark();
    let latency = phase.await;
    let verbs = log.verbs_since(mark, latency.count);
    (latency, verbs)
}

/// Where the API requests of a phase are counted: the fake's request log, or (envtest) the
/// API server's audit log.
trait RequestLog {
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
fn per_webhook(verbs: impl Iterator<Item = String>, webhooks: usize) -> BTreeMap<String, f64> {
    let mut counts: BTreeMap<String, f64> = BTreeMap::new();
    for verb in verbs {
        *counts.entry(verb).or_default() += 1.0;
    }
    for count in counts.values_mut() {
        *count /= webhooks.max(1) as f64;
    }
    counts
}

fn reads(counts: &BTreeMap<String, f64>) -> f64 {
    ["LIST", "GET"].iter().filter_map(|v| counts.get(*v)).sum()
}

fn show_verbs(counts: &BTreeMap<String, f64>) -> String {
    if counts.is_empty() {
        return "none".into();
    }
    counts
        .iter()
        .map(|(verb, n)| format!("{verb} {n:.2}"))
        .collect::<Vec<_>>()
        .join(", ")
}

// ---------------------------------------------------------------------------------------------
// The service under test, as a subprocess
// ---------------------------------------------------------------------------------------------

struct Service {
    child: tokio::process::Child,
    pid: u32,
    url: String,
    log: PathBuf,
}

fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr").port()
}

/// A kubeconfig for the service: `api_url`, and for a real API server (`tls`) the file of the
/// CA that signed its certificate and a bearer token.
fn write_kubeconfig(dir: &Path, api_url: &str, tls: Option<(&Path, &str)>) -> PathBuf {
    let path = dir.join("kubeconfig");
    let quoted = |s: &str| Value::from(s).to_string();
    let (ca, user) = match tls {
        Some((ca, token)) => (
            format!(
                "    certificate-authority: {}\n",
                quoted(&ca.to_string_lossy())
            ),
            format!("\n    token: {}", quoted(token)),
        ),
        None => (String::new(), " {}".to_owned()),
    };
    let text = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: bench\n  cluster:\n    server: {}\n{ca}\
         contexts:\n- name: bench\n  context:\n    cluster: bench\n    user: bench\n    namespace: default\n\
         current-context: bench\nusers:\n- name: bench\n  user:{user}\n",
        quoted(api_url)
    );
    std::fs::write(&path, text).expect("kubeconfig");
    path
}

impl Service {
    fn start(dir: &Path, kubeconfig: &Path, run: &str) -> Service {
        let port = free_port();
        let log = dir.join(format!("service-{run}.log"));
        let out = std::fs::File::create(&log).expect("log file");
        let err = out.try_clone().expect("log file");
        let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_eso-refresher"))
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", dir)
            .env("KUBECONFIG", kubeconfig)
            .env("BASIC_AUTH_USER", USER)
            .env("BASIC_AUTH_PASSWORD", PASSWORD)
            .env("HTTP_PORT", port.to_string())
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .kill_on_drop(true)
            .spawn()
            .expect("start eso-refresher");
        let pid = child.id().expect("pid");
        Service {
            child,
            pid,
            url: format!("http://127.0.0.1:{port}"),
            log,
        }
    }

    /// Polls /readyz every 5 ms; the time from `started` to the first 200. Checks the count of
    /// indexed ExternalSecrets when it is `expected` (a shared cluster holds others' too).
    async fn wait_ready(
        &mut self,
        http: &reqwest::Client,
        started: Instant,
        expected: Option<usize>,
    ) -> Duration {
        while started.elapsed() < READY_TIMEOUT {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "eso-refresher exited ({status}); see {}",
                    self.log.display()
                );
            }
            if let Ok(response) = http.get(format!("{}/readyz", self.url)).send().await
                && response.status() == 200
            {
                let ready = started.elapsed();
                let body: Value = response.json().await.expect("readyz JSON");
                if let Some(expected) = expected {
                    assert_eq!(body["externalSecrets"], json!(expected), "indexed count");
                }
                return ready;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        panic!(
            "not ready within {READY_TIMEOUT:?}; see {}",
            self.log.display()
        );
    }

    /// (VmRSS, VmHWM) in MiB.
    fn memory(&self) -> (f64, f64) {
        let status =
            std::fs::read_to_string(format!("/proc/{}/status", self.pid)).unwrap_or_default();
        let field = |name: &str| {
            status
                .lines()
                .find(|l| l.starts_with(name))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
                .map_or(f64::NAN, |kb| kb / 1024.0)
        };
        (field("VmRSS:"), field("VmHWM:"))
    }

    async fn stop(mut self) {
        let _ = self.child.kill().await;
    }
}

/// Sends `bodies` to `route` (`/webhook`: the Akeyless form) one at a time, each once, and
/// measures each; stops after `cap`. `catch_up` brings `arrivals` up to date once a webhook is
/// answered (the fake records them as they come; envtest's audit log is read then).
async fn measure_webhooks(
    http: &reqwest::Client,
    url: &str,
    (route, catch_up): (&str, &dyn Fn()),
    arrivals: &Arrivals,
    bodies: impl Iterator<Item = (String, usize)>,
    cap: Duration,
) -> Latency {
    let started = Instant::now();
    let mut samples = Samples::default();
    for (body, expected) in bodies {
        if started.elapsed() > cap {
            break;
        }
        let before = arrivals.lock().expect("arrivals").len();
        let sent = Instant::now();
        let refreshed = post_webhook(http, url, route, body).await;
        catch_up();
        let writes = samples.record(sent, arrivals, before);
        assert_eq!(refreshed, expected, "refreshed");
        assert_eq!(writes, expected, "writes that arrived");
    }
    samples.latency()
}

/// Sends one webhook with basic auth, asserts a 200 and returns how many objects it refreshed.
async fn post_webhook(http: &reqwest::Client, url: &str, route: &str, body: String) -> usize {
    let response = http
        .post(format!("{url}{route}"))
        .basic_auth(USER, Some(PASSWORD))
        .header("Content-Type", "application/json")
        .body(body)
        .send()
        .await
        .expect("webhook");
    let status = response.status();
    let report: Value = response.json().await.expect("webhook JSON");
    assert_eq!(status, 200, "{report}");
    report["refreshed"].as_array().map_or(0, Vec::len)
}

/// The timings of sequential requests, as a measuring loop collects them.
#[derive(Default)]
struct Samples {
    round_trip: Vec<f64>,
    first: Vec<f64>,
    last: Vec<f64>,
}

impl Samples {
    /// A request sent at `sent` has just been answered; the writes it caused are the
    /// arrivals from `before` on. Returns how many there were.
    fn record(&mut self, sent: Instant, arrivals: &Arrivals, before: usize) -> usize {
        self.round_trip.push(ms(sent.elapsed()));
        let writes: Vec<Instant> = arrivals.lock().expect("arrivals")[before..]
            .iter()
            .map(|(at, _)| *at)
            .collect();
        if let (Some(a), Some(b)) = (writes.iter().min(), writes.iter().max()) {
            self.first.push(ms(a.duration_since(sent)));
            self.last.push(ms(b.duration_since(sent)));
        }
        writes.len()
    }

    fn latency(&self) -> Latency {
        Latency {
            count: self.round_trip.len(),
            round_trip: stats(&self.round_trip),
            first_write: stats(&self.first),
            last_write: stats(&self.last),
        }
    }
}

/// Requests per second at saturation: `connections` keep-alive HTTP/1.1 connections, each
/// sending `request` and reading the whole answer in a loop, counted after a warm-up.
async fn saturate(port: u16, request: Vec<u8>, connections: usize, seconds: f64) -> f64 {
    let warmup = Duration::from_millis(300);
    let window = Duration::from_secs_f64(seconds);
    let started = Instant::now();
    let tasks: Vec<_> = (0..connections)
        .map(|_| {
            let request = request.clone();
            tokio::spawn(async move {
                let mut stream = TcpStream::connect(("127.0.0.1", port))
                    .await
                    .expect("connect");
                stream.set_nodelay(true).expect("nodelay");
                let mut buffer = vec![0u8; 16 * 1024];
                let mut counted = 0u64;
                loop {
                    let now = started.elapsed();
                    if now >= warmup + window {
                        break;
                    }
                    stream.write_all(&request).await.expect("write");
                    read_response(&mut stream, &mut buffer).await;
                    if started.elapsed() >= warmup && started.elapsed() < warmup + window {
                        counted += 1;
                    }
                }
                counted
            })
        })
        .collect();
    let mut total = 0;
    for task in tasks {
        total += task.await.expect("client task");
    }
    total as f64 / window.as_secs_f64()
}

/// Reads one HTTP/1.1 response with a Content-Length, asserting a 200.
async fn read_response(stream: &mut TcpStream, buffer: &mut Vec<u8>) {
    let mut filled = 0;
    loop {
        if filled == buffer.len() {
            buffer.resize(buffer.len() * 2, 0);
        }
        let n = stream.read(&mut buffer[filled..]).await.expect("read");
        assert!(n > 0, "connection closed");
        filled += n;
        let Some(end) = buffer[..filled].windows(4).position(|w| w == b"\r\n\r\n") else {
            continue;
        };
        let head = std::str::from_utf8(&buffer[..end]).expect("head");
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        let length: usize = head
            .lines()
            .find_map(|l| {
                let (name, value) = l.split_once(':')?;
                name.eq_ignore_ascii_case("content-length")
                    .then(|| value.trim().parse().ok())?
            })
            .expect("content-length");
        let total = end + 4 + length;
        while filled < total {
            if filled == buffer.len() {
                buffer.resize(buffer.len() * 2, 0);
            }
            let n = stream.read(&mut buffer[filled..]).await.expect("read");
            assert!(n > 0, "connection closed");
            filled += n;
        }
        assert_eq!(filled, total, "one response at a time");
        return;
    }
}

fn raw_request(method: &str, path: &str, port: u16, auth: bool, body: &str) -> Vec<u8> {
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n");
    if auth {
        let token = base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{PASSWORD}"));
        head.push_str(&format!("Authorization: Basic {token}\r\n"));
    }
    if !body.is_empty() {
        head.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            body.len()
        ));
    }
    head.push_str("\r\n");
    head.push_str(body);
    head.into_bytes()
}

// ---------------------------------------------------------------------------------------------
// The original tool's strategy, re-implemented
// ---------------------------------------------------------------------------------------------

/// RE-IMPLEMENTATION (not the original binary) of what the original Go tool did for each
/// webhook: list namespaces, list the ExternalSecrets of each namespace, and for every one
/// that references `key`, GET it and PUT it back (a full update) with the annotations set;
/// all sequentially. Returns how many it updated.
async fn original_webhook(http: &reqwest::Client, api: &str, key: &str, stamp: &str) -> usize {
    let get = |url: String| async move {
        let response = http.get(url).send().await.expect("GET");
        assert_eq!(response.status(), 200);
        response.json::<Value>().await.expect("JSON")
    };
    let namespaces = get(format!("{api}/api/v1/namespaces")).await;
    let mut updated = 0;
    for namespace in namespaces["items"].as_array().into_iter().flatten() {
        let ns = namespace["metadata"]["name"]
            .as_str()
            .expect("namespace name");
        let list = get(format!(
            "{api}/apis/external-secrets.io/v1/namespaces/{ns}/externalsecrets"
        ))
        .await;
        for item in list["items"].as_array().into_iter().flatten() {
            if !matches_key(item, key) {
                continue;
            }
            let name = item["metadata"]["name"].as_str().expect("name");
            let url =
                format!("{api}/apis/external-secrets.io/v1/namespaces/{ns}/externalsecrets/{name}");
            let mut object = get(url.clone()).await;
            object["metadata"]["annotations"]["updated-by"] = json!("externalsecret-updater");
            object["metadata"]["annotations"]["updated-at"] = json!(stamp);
            let response = http.put(url).json(&object).send().await.expect("PUT");
            assert_eq!(
                response.status(),
                200,
                "{}",
                response.text().await.unwrap_or_default()
            );
            updated += 1;
        }
    }
    updated
}

async fn measure_original(
    http: &reqwest::Client,
    api: &str,
    arrivals: &Arrivals,
    keys: impl Iterator<Item = (String, usize)>,
    cap: Duration,
) -> Latency {
    let started = Instant::now();
    let mut samples = Samples::default();
    for (i, (key, expected)) in keys.enumerate() {
        if started.elapsed() > cap {
            break;
        }
        let before = arrivals.lock().expect("arrivals").len();
        let sent = Instant::now();
        let stamp = format!("2026-01-01T00:00:00.{i:09}Z");
        let updated = original_webhook(http, api, &key, &stamp).await;
        samples.record(sent, arrivals, before);
        assert_eq!(updated, expected, "{key}");
    }
    samples.latency()
}

// ---------------------------------------------------------------------------------------------
// One size
// ---------------------------------------------------------------------------------------------

#[derive(Default)]
struct Run {
    ready_ms: f64,
    rss_ready: f64,
    rss_after: f64,
    hwm_after: f64,
    one: Latency,
    fanout: Latency,
    no_match: Latency,
    verbs_one: BTreeMap<String, f64>,
    verbs_fanout: BTreeMap<String, f64>,
    api_requests_no_match: usize,
    healthz_rps: f64,
    no_match_rps: f64,
    original_one: Latency,
    original_fanout: Latency,
    original_no_match: Latency,
    original_verbs_one: BTreeMap<String, f64>,
    original_verbs_fanout: BTreeMap<String, f64>,
    original_verbs_no_match: BTreeMap<String, f64>,
}

/// Spreads the k-th of `count` picks over 0..n.
fn spread(k: usize, n: usize) -> usize {
    (k * 7919 + 13) % n
}

/// The fake loaded with N ExternalSecrets over M namespaces; its benchmark front's URL, handle
/// and PATCH/PUT arrivals; a kubeconfig for it.
async fn loaded_fake(
    n: usize,
    namespaces: usize,
    dir: &Path,
) -> (
    FakeApiServer,
    String,
    actix_web::dev::ServerHandle,
    Arrivals,
    PathBuf,
) {
    let fake = FakeApiServer::start().await;
    let loading = Instant::now();
    if n > 0 {
        load(&fake, n, namespaces);
    }
    eprintln!(
        "[N={n}] fake loaded in {:.1}s",
        loading.elapsed().as_secs_f64()
    );
    let (api, front, arrivals) = fake.start_bench_front();
    let kubeconfig = write_kubeconfig(dir, &api, None);
    (fake, api, front, arrivals, kubeconfig)
}

async fn run_size(options: &Options, n: usize, dir: &Path, http: &reqwest::Client) -> Vec<Run> {
    let (fake, api, front, arrivals, kubeconfig) = loaded_fake(n, options.namespaces, dir).await;
    let groups = n / FANOUT;
    let mut runs = Vec::new();

    for run in 0..options.runs {
        let mut r = Run::default();
        fake.clear_requests();
        let started = Instant::now();
        let mut service = Service::start(dir, &kubeconfig, &format!("{n}-{run}"));
        r.ready_ms = ms(service.wait_ready(http, started, Some(n)).await);
        tokio::time::sleep(Duration::from_millis(200)).await;
        r.rss_ready = service.memory().0;

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
            (r.one, r.verbs_one) = with_requests(
                &fake,
                measure_webhooks(http, &service.url, AKEYLESS, &arrivals, bodies, cap),
            )
            .await;

            let bodies = (0..options.fanout_webhooks)
                .map(|k| (akeyless_body(&group_key(spread(k, groups))), FANOUT));
            let cap = Duration::from_secs(60);
            (r.fanout, r.verbs_fanout) = with_requests(
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

            let port: u16 = service
                .url
                .rsplit(':')
                .next()
                .and_then(|p| p.parse().ok())
                .expect("port");
            r.healthz_rps = saturate(
                port,
                raw_request("GET", "/healthz", port, false, ""),
                options.connections,
                options.seconds,
            )
            .await;
            let body = akeyless_body_without_id("/bench/none/saturation");
            r.no_match_rps = saturate(
                port,
                raw_request("POST", "/webhook", port, true, &body),
                options.connections,
                options.seconds,
            )
            .await;
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
            (r.original_one, r.original_verbs_one) =
                with_requests(&fake, measure_original(http, &api, &arrivals, keys, cap)).await;
            let keys =
                (0..options.original_webhooks).map(|k| (group_key(spread(k + 7, groups)), FANOUT));
            (r.original_fanout, r.original_verbs_fanout) =
                with_requests(&fake, measure_original(http, &api, &arrivals, keys, cap)).await;
            let keys = (0..options.original_webhooks).map(|k| (format!("/bench/none/{k}"), 0));
            (r.original_no_match, r.original_verbs_no_match) =
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
            r.one.last_write.p50,
            r.one.last_write.p99,
            r.fanout.last_write.p99,
            r.healthz_rps,
            r.no_match_rps,
            r.original_one.round_trip.p50,
        );
        runs.push(r);
    }
    front.stop(false).await;
    runs
}

// ---------------------------------------------------------------------------------------------
// Report
// ---------------------------------------------------------------------------------------------

fn med(runs: &[Run], f: impl Fn(&Run) -> f64) -> f64 {
    median(&runs.iter().map(f).collect::<Vec<_>>())
}

fn med_verbs(runs: &[Run], f: impl Fn(&Run) -> &BTreeMap<String, f64>) -> BTreeMap<String, f64> {
    let verbs: std::collections::BTreeSet<String> =
        runs.iter().flat_map(|run| f(run).keys().cloned()).collect();
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

fn report(options: &Options, results: &[(usize, Vec<Run>)], idle: &[Run]) {
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
            show_verbs(&med_verbs(runs, |r| &r.verbs_one)),
            show_verbs(&med_verbs(runs, |r| &r.verbs_fanout)),
            med(runs, |r| r.api_requests_no_match as f64),
        );
    }

    println!("\n### Latency, eso-refresher (ms; sequential webhooks)\n");
    println!(
        "| N | matches | sent → first PATCH arrived p50 | sent → last PATCH arrived p50 / p99 / max | round trip p50 / p99 / max | webhooks |"
    );
    println!("|---|---|---|---|---|---|");
    for (n, runs) in results {
        println!("| {n} | 1 | {} |", latency_cells(runs, |r| r.one));
        println!("| {n} | 100 | {} |", latency_cells(runs, |r| r.fanout));
        println!(
            "| {n} | 0 | – | – | {} |",
            skip_cells(latency_cells(runs, |r| r.no_match))
        );
    }

    println!(
        "\n### Saturation, eso-refresher ({} keep-alive connections, {} s per phase, in-tree client)\n",
        options.connections, options.seconds
    );
    println!("| N | GET /healthz (req/s) | authenticated no-match POST /webhook (req/s) | ratio |");
    println!("|---|---|---|---|");
    for (n, runs) in results {
        let healthz = med(runs, |r| r.healthz_rps);
        let hooks = med(runs, |r| r.no_match_rps);
        println!(
            "| {n} | {healthz:.0} | {hooks:.0} | {:.0}% |",
            100.0 * hooks / healthz
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
            show_verbs(&med_verbs(runs, |r| &r.original_verbs_one)),
            latency_cells(runs, |r| r.original_one),
            ratio(&|r| r.original_one, &|r| r.one)
        );
        println!(
            "| {n} | 100 | {} | {} | {:.0}× slower |",
            show_verbs(&med_verbs(runs, |r| &r.original_verbs_fanout)),
            latency_cells(runs, |r| r.original_fanout),
            ratio(&|r| r.original_fanout, &|r| r.fanout)
        );
        let cells = latency_cells(runs, |r| r.original_no_match);
        println!(
            "| {n} | 0 | {} | – | – | {} | {:.0}× slower; {:.1} webhooks/s sequentially |",
            show_verbs(&med_verbs(runs, |r| &r.original_verbs_no_match)),
            skip_cells(cells),
            ratio(&|r| r.original_no_match, &|r| r.no_match),
            1000.0 / med(runs, |r| r.original_no_match.round_trip.p50),
        );
    }
}

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

        let mut idle = Vec::new();
        {
            let fake = FakeApiServer::start().await;
            let (api, front, _) = fake.start_bench_front();
            let kubeconfig = write_kubeconfig(dir.path(), &api, None);
            for run in 0..options.runs {
                let t0 = Instant::now();
                let mut service = Service::start(dir.path(), &kubeconfig, &format!("idle-{run}"));
                let ready_ms = ms(service.wait_ready(&http, t0, Some(0)).await);
                tokio::time::sleep(Duration::from_millis(200)).await;
                let (rss, hwm) = service.memory();
                idle.push(Run {
                    ready_ms,
                    rss_ready: rss,
                    rss_after: rss,
                    hwm_after: hwm,
                    ..Run::default()
                });
                service.stop().await;
            }
            front.stop(false).await;
        }

        let mut results = Vec::new();
        for &n in &options.sizes {
            let runs = run_size(&options, n, dir.path(), &http).await;
            results.push((n, runs));
        }
        report(&options, &results, &idle);
        eprintln!("\ntotal {:.0}s", started.elapsed().as_secs_f64());
        if options.smoke {
            let runs = &results[0].1;
            assert!(
                runs.iter()
                    .all(|r| reads(&r.verbs_one) == 0.0 && reads(&r.verbs_fanout) == 0.0)
            );
            // A tiny pass on envtest too when it is there (skipped, visibly, when not).
            if let Some(figures) = envtest::run(&options, dir.path(), &http).await {
                envtest::report(&options, &figures);
            }
            println!("\nsmoke run passed");
        }
    });
}
