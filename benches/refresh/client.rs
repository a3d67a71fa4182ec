//! The client side: webhooks sent one at a time and timed, and the raw HTTP/1.1 client of the
//! saturation phases (keep-alive connections sending hand-written requests in a loop).

use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::fake_api::Arrivals;
use crate::service::{PASSWORD, USER};
use crate::stats::{Latency, one_at_a_time};

/// Where webhooks go: the service's route, and what brings the arrivals up to date once one is
/// answered (nothing on the fake, which records them as they come; envtest reads its audit log).
pub type Target<'a> = (&'a str, &'a dyn Fn());

/// Webhooks in the Akeyless form to `/webhook`, whose writes the fake records as they arrive.
pub const AKEYLESS: Target<'static> = ("/webhook", &|| {});

/// Sends `bodies` to `route` one at a time, each once, and measures each; stops after `cap`.
/// Each body comes with the count of ExternalSecrets it must refresh.
pub async fn measure_webhooks(
    http: &reqwest::Client,
    url: &str,
    (route, catch_up): Target<'_>,
    arrivals: &Arrivals,
    bodies: impl Iterator<Item = (String, usize)>,
    cap: Duration,
) -> Latency {
    one_at_a_time(arrivals, bodies, cap, async |body| {
        let refreshed = post_webhook(http, url, route, body).await;
        catch_up();
        refreshed
    })
    .await
}

/// Sends one webhook with basic auth, asserts a 200 and returns how many objects it refreshed.
pub async fn post_webhook(http: &reqwest::Client, url: &str, route: &str, body: String) -> usize {
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

/// Threads of the saturation client, each with a single-threaded runtime of its own and an
/// equal share of the connections (as `wrk -t2` runs): a connection's requests and answers
/// never cross threads, so the client takes as little as it can of the cores it shares with the
/// service. One thread is not enough: `/healthz` then runs as fast as the client, not the
/// service.
const SATURATION_THREADS: usize = 2;

/// A saturation phase: the requests answered per second of the window, and all the requests
/// answered (the warm-up's included).
pub struct Saturated {
    pub rate: f64,
    pub answered: u64,
}

/// Requests per second at saturation: `connections` keep-alive HTTP/1.1 connections, each
/// sending `request` and reading the whole answer in a loop, counted after a warm-up.
pub async fn saturate(port: u16, request: Vec<u8>, connections: usize, seconds: f64) -> Saturated {
    let warmup = Duration::from_millis(300);
    let window = Duration::from_secs_f64(seconds);
    let started = Instant::now();
    let threads: Vec<_> = (0..SATURATION_THREADS)
        .map(|t| {
            let request = request.clone();
            let share = (t..connections).step_by(SATURATION_THREADS).count();
            std::thread::spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_io()
                    .build()
                    .expect("client runtime");
                runtime.block_on(async move {
                    let tasks: Vec<_> = (0..share)
                        .map(|_| {
                            let request = request.clone();
                            tokio::spawn(connection(port, request, started, warmup, window))
                        })
                        .collect();
                    let (mut counted, mut answered) = (0, 0);
                    for task in tasks {
                        let (c, a) = task.await.expect("client task");
                        counted += c;
                        answered += a;
                    }
                    (counted, answered)
                })
            })
        })
        .collect();
    let (counted, answered) = tokio::task::spawn_blocking(move || {
        threads
            .into_iter()
            .map(|thread| thread.join().expect("client thread"))
            .fold((0, 0), |(c, a), (tc, ta)| (c + tc, a + ta))
    })
    .await
    .expect("client threads");
    Saturated {
        rate: counted as f64 / window.as_secs_f64(),
        answered,
    }
}

/// One connection of the saturation client: the requests answered within the window, and in
/// all.
async fn connection(
    port: u16,
    request: Vec<u8>,
    started: Instant,
    warmup: Duration,
    window: Duration,
) -> (u64, u64) {
    let mut stream = TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    stream.set_nodelay(true).expect("nodelay");
    let mut buffer = vec![0u8; 16 * 1024];
    let (mut counted, mut answered) = (0u64, 0u64);
    loop {
        let now = started.elapsed();
        if now >= warmup + window {
            break;
        }
        stream.write_all(&request).await.expect("write");
        read_response(&mut stream, &mut buffer).await;
        answered += 1;
        if started.elapsed() >= warmup && started.elapsed() < warmup + window {
            counted += 1;
        }
    }
    (counted, answered)
}

/// Reads one HTTP/1.1 response with a Content-Length, asserting a 200.
async fn read_response(stream: &mut TcpStream, buffer: &mut Vec<u8>) {
    let mut filled = 0;
    let end = loop {
        filled += read_more(stream, buffer, filled).await;
        if let Some(end) = buffer[..filled].windows(4).position(|w| w == b"\r\n\r\n") {
            break end;
        }
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
        filled += read_more(stream, buffer, filled).await;
    }
    assert_eq!(filled, total, "one response at a time");
}

/// Reads into `buffer` after its first `filled` bytes, doubling it when it is full; how many
/// bytes came.
async fn read_more(stream: &mut TcpStream, buffer: &mut Vec<u8>, filled: usize) -> usize {
    if filled == buffer.len() {
        buffer.resize(buffer.len() * 2, 0);
    }
    let n = stream.read(&mut buffer[filled..]).await.expect("read");
    assert!(n > 0, "connection closed");
    n
}

/// A request as the saturation phases send it: with basic auth when `auth`, and a JSON body
/// unless `body` is empty.
pub fn raw_request(method: &str, path: &str, port: u16, auth: bool, body: &str) -> Vec<u8> {
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
