//! Latency figures: durations kept in HdrHistograms (nanoseconds, 3 significant digits) and
//! read as nearest-rank p50 / p99 and the max, in ms; and the loop that sends requests one at a
//! time and times each, with the writes it caused at the API server.

use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use crate::fake_api::Arrivals;

/// What the histograms keep of each duration: a percentile is within 0.1% of the sample's value.
const SIGNIFICANT_DIGITS: u8 = 3;
/// The longest duration they hold, in ns: an hour (a longer one counts as an hour).
const LONGEST: u64 = 3_600_000_000_000;

/// p50, p99 and max of some durations, in ms.
#[derive(Clone, Copy, Default)]
pub struct Stats {
    pub p50: f64,
    pub p99: f64,
    pub max: f64,
}

/// Durations, in a histogram of nanoseconds.
pub struct Timings(Histogram<u64>);

impl Default for Timings {
    fn default() -> Timings {
        Timings(Histogram::new_with_bounds(1, LONGEST, SIGNIFICANT_DIGITS).expect("histogram"))
    }
}

impl FromIterator<Duration> for Timings {
    fn from_iter<I: IntoIterator<Item = Duration>>(durations: I) -> Timings {
        let mut timings = Timings::default();
        for duration in durations {
            timings.record(duration);
        }
        timings
    }
}

impl Timings {
    pub fn record(&mut self, duration: Duration) {
        let nanos = u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX);
        self.0.saturating_record(nanos);
    }

    pub fn count(&self) -> usize {
        self.0.len() as usize
    }

    /// Nearest-rank p50 and p99, and the max (each the highest value of its bucket); zeros
    /// when there are none.
    pub fn stats(&self) -> Stats {
        if self.0.is_empty() {
            return Stats::default();
        }
        let ms = |nanos: u64| nanos as f64 / 1e6;
        Stats {
            p50: ms(self.0.value_at_quantile(0.50)),
            p99: ms(self.0.value_at_quantile(0.99)),
            max: ms(self.0.max()),
        }
    }
}

/// p50, p99 and max of `durations`.
pub fn stats(durations: impl IntoIterator<Item = Duration>) -> Stats {
    durations.into_iter().collect::<Timings>().stats()
}

pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Latency of one kind of webhook: round trip, and from sending it to the first and the last
/// PATCH (or PUT) arriving at the API server.
#[derive(Default, Clone, Copy)]
pub struct Latency {
    pub count: usize,
    pub round_trip: Stats,
    pub first_write: Stats,
    pub last_write: Stats,
}

/// The timings of sequential requests, as `one_at_a_time` collects them.
#[derive(Default)]
struct Samples {
    round_trip: Timings,
    first: Timings,
    last: Timings,
}

impl Samples {
    /// A request sent at `sent` has just been answered; the writes it caused are the
    /// arrivals from `before` on. Returns how many there were.
    fn record(&mut self, sent: Instant, arrivals: &Arrivals, before: usize) -> usize {
        self.round_trip.record(sent.elapsed());
        let writes: Vec<Instant> = arrivals.lock().expect("arrivals")[before..]
            .iter()
            .map(|(at, _)| *at)
            .collect();
        if let (Some(a), Some(b)) = (writes.iter().min(), writes.iter().max()) {
            self.first.record(a.duration_since(sent));
            self.last.record(b.duration_since(sent));
        }
        writes.len()
    }

    fn latency(&self) -> Latency {
        Latency {
            count: self.round_trip.count(),
            round_trip: self.round_trip.stats(),
            first_write: self.first.stats(),
            last_write: self.last.stats(),
        }
    }
}

/// Sends each of `requests` with `send`, one at a time, each once, and measures each; stops
/// after `cap`. A request comes with the count of objects it must write: `send` returns the
/// count it reports, and as many writes must have arrived in `arrivals` once it has returned.
pub async fn one_at_a_time<T>(
    arrivals: &Arrivals,
    requests: impl Iterator<Item = (T, usize)>,
    cap: Duration,
    mut send: impl AsyncFnMut(T) -> usize,
) -> Latency {
    let started = Instant::now();
    let mut samples = Samples::default();
    for (request, expected) in requests {
        if started.elapsed() > cap {
            break;
        }
        let before = arrivals.lock().expect("arrivals").len();
        let sent = Instant::now();
        let reported = send(request).await;
        let writes = samples.record(sent, arrivals, before);
        assert_eq!(reported, expected, "objects written, as reported");
        assert_eq!(writes, expected, "writes that arrived");
    }
    samples.latency()
}
