//! The standard process metrics (`process_cpu_seconds_total`, `process_resident_memory_bytes`,
//! `process_open_fds`, `process_start_time_seconds`, ...), read from `/proc/self` at each
//! scrape. On systems without `/proc` none is reported.

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Unit;

#[derive(Debug)]
pub struct ProcessCollector;

/// One scrape's figures; a figure that could not be read is left out.
#[derive(Debug, Default, PartialEq)]
struct Figures {
    cpu_seconds: Option<f64>,
    resident_memory_bytes: Option<u64>,
    virtual_memory_bytes: Option<u64>,
    start_time_seconds: Option<f64>,
    open_fds: Option<u64>,
    max_fds: Option<u64>,
    threads: Option<u64>,
}

#[cfg(target_os = "linux")]
fn read() -> Figures {
    use procfs::process::{LimitValue, Process};
    let Ok(process) = Process::myself() else {
        return Figures::default();
    };
    let mut figures = Figures::default();
    if let Ok(stat) = process.stat() {
        let ticks = procfs::ticks_per_second() as f64;
        figures.cpu_seconds = Some((stat.utime + stat.stime) as f64 / ticks);
        figures.resident_memory_bytes = Some(stat.rss.saturating_mul(procfs::page_size()));
        figures.virtual_memory_bytes = Some(stat.vsize);
        figures.threads = u64::try_from(stat.num_threads).ok();
        figures.start_time_seconds = procfs::boot_time_secs()
            .ok()
            .map(|boot| boot as f64 + stat.starttime as f64 / ticks);
    }
    figures.open_fds = process.fd_count().ok().map(|n| n as u64);
    figures.max_fds =
        process
            .limits()
            .ok()
            .and_then(|limits| match limits.max_open_files.soft_limit {
                LimitValue::Value(n) => Some(n),
                LimitValue::Unlimited => None,
            });
    figures
}

#[cfg(not(target_os = "linux"))]
fn read() -> Figures {
    Figures::default()
}

fn gauge(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    unit: Option<&Unit>,
    value: Option<impl prometheus_client::encoding::EncodeGaugeValue>,
) -> std::fmt::Result {
    let Some(value) = value else {
        return Ok(());
    };
    let gauge = ConstGauge::new(value);
    gauge.encode(encoder.encode_descriptor(name, help, unit, gauge.metric_type())?)
}

impl Collector for ProcessCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> std::fmt::Result {
        let figures = read();
        if let Some(seconds) = figures.cpu_seconds {
            let counter = ConstCounter::new(seconds);
            counter.encode(encoder.encode_descriptor(
                "cpu",
                "Total user and system CPU time spent in seconds",
                Some(&Unit::Seconds),
                counter.metric_type(),
            )?)?;
        }
        let e = &mut encoder;
        let bytes = Some(&Unit::Bytes);
        let seconds = Some(&Unit::Seconds);
        gauge(
            e,
            "resident_memory",
            "Resident memory size in bytes",
            bytes,
            figures.resident_memory_bytes,
        )?;
        gauge(
            e,
            "virtual_memory",
            "Virtual memory size in bytes",
            bytes,
            figures.virtual_memory_bytes,
        )?;
        gauge(
            e,
            "start_time",
            "Start time of the process since the Unix epoch in seconds",
            seconds,
            figures.start_time_seconds,
        )?;
        gauge(
            e,
            "open_fds",
            "Number of open file descriptors",
            None,
            figures.open_fds,
        )?;
        gauge(
            e,
            "max_fds",
            "Maximum number of open file descriptors",
            None,
            figures.max_fds,
        )?;
        gauge(
            e,
            "threads",
            "Number of OS threads in the process",
            None,
            figures.threads,
        )
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    #[test]
    fn reads_this_process() {
        let figures = read();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("after 1970")
            .as_secs_f64();
        let started = figures.start_time_seconds.expect("start time");
        // This test process started moments ago.
        assert!(
            started <= now + 1.0 && started > now - 86_400.0,
            "{started}"
        );
        assert!(figures.resident_memory_bytes.expect("rss") > 1 << 20);
        assert!(figures.open_fds.expect("fds") >= 3);
        assert!(figures.threads.expect("threads") >= 1);
        assert!(figures.cpu_seconds.expect("cpu") >= 0.0);
    }
}
