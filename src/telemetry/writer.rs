//! Where log lines go: appended, whole and in order, to a queue that a thread of its own
//! writes to stderr, so that logging never waits on stderr (a reader that stalls, a pipe that
//! is full or broken). When lines come faster than they are written, they are written in
//! batches: the thread lingers a moment after each write instead of being woken for every
//! line. Past a bound, new lines are dropped rather than make the caller wait.

use std::io::{self, Write};
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use prometheus_client::metrics::counter::Counter;
use tracing_subscriber::fmt::MakeWriter;

/// Queued bytes at most; a line that would go past it is dropped.
const MAX_QUEUED_BYTES: usize = 4 << 20;
/// How long the writing thread waits after a write for more lines to gather.
const LINGER: Duration = Duration::from_millis(2);
/// How long stopping, or a flush, waits for the queue to be written (stderr may be stuck).
const STOP_TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Default)]
struct Queue {
    lines: Vec<u8>,
    /// Bytes ever queued, and ever taken by the writing thread and written (or lost).
    queued: u64,
    done: u64,
    /// The writing thread waits for the first line: whoever queues it wakes it.
    waiting: bool,
    stopping: bool,
}

struct Shared {
    queue: Mutex<Queue>,
    /// Lines lost: not queued (the queue full, or the writer stopped) or not written.
    dropped: Counter,
    wake: Condvar,
    /// Told whenever a batch has been written.
    written: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Queues log lines for the writing thread; cheap to clone.
#[derive(Clone)]
pub struct QueuedWriter {
    shared: Arc<Shared>,
}

/// Stops the writing thread once every line queued before is written. Hold it until the
/// process is about to exit.
pub struct WriterGuard {
    shared: Arc<Shared>,
    done: mpsc::Receiver<()>,
}

/// A writer queueing to `out`, written by a thread of its own, and the guard that stops it;
/// lines lost are counted in `dropped`. Panics if no thread can be started (at startup, like
/// any other thread the service needs).
pub fn queued(out: impl Write + Send + 'static, dropped: Counter) -> (QueuedWriter, WriterGuard) {
    let shared = Arc::new(Shared {
        queue: Mutex::new(Queue::default()),
        dropped,
        wake: Condvar::new(),
        written: Condvar::new(),
    });
    let (finished, done) = mpsc::channel();
    let thread_shared = shared.clone();
    std::thread::Builder::new()
        .name("log-writer".to_owned())
        .spawn(move || {
            write_queued(&thread_shared, out);
            let _ = finished.send(());
        })
        .expect("a thread to write the logs");
    let writer = QueuedWriter {
        shared: shared.clone(),
    };
    (writer, WriterGuard { shared, done })
}

/// The writing thread: takes everything queued, writes it in one go, lingers, and waits when
/// there is nothing left; ends once stopping and empty.
fn write_queued(shared: &Shared, mut out: impl Write) {
    let mut batch = Vec::new();
    loop {
        {
            let mut queue = shared.lock();
            while queue.lines.is_empty() && !queue.stopping {
                queue.waiting = true;
                queue = shared.wake.wait(queue).unwrap_or_else(|p| p.into_inner());
            }
            queue.waiting = false;
            if queue.lines.is_empty() {
                return;
            }
            std::mem::swap(&mut batch, &mut queue.lines);
        }
        let lost = write_out(&mut out, &batch);
        shared.dropped.inc_by(lost);
        let stopping = {
            let mut queue = shared.lock();
            queue.done += batch.len() as u64;
            queue.stopping
        };
        batch.clear();
        shared.written.notify_all();
        if !stopping {
            std::thread::sleep(LINGER);
        }
    }
}

/// Writes `batch` whole, retrying where a write may be retried (interrupted, or an output
/// that would block); returns how many lines could not be written (a line cut short counted).
fn write_out(out: &mut impl Write, batch: &[u8]) -> u64 {
    let mut written = 0;
    while written < batch.len() {
        match out.write(&batch[written..]) {
            Ok(0) => break,
            Ok(n) => written += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => std::thread::sleep(LINGER),
            Err(_) => break,
        }
    }
    let _ = out.flush();
    batch[written..].iter().filter(|&&b| b == b'\n').count() as u64
}

impl QueuedWriter {
    /// Queues one line (the formatter writes each line whole, in one call).
    fn queue(&self, line: &[u8]) {
        let mut queue = self.shared.lock();
        if queue.stopping || queue.lines.len() + line.len() > MAX_QUEUED_BYTES {
            drop(queue);
            self.shared.dropped.inc();
            return;
        }
        queue.lines.extend_from_slice(line);
        queue.queued += line.len() as u64;
        let wake = std::mem::take(&mut queue.waiting);
        drop(queue);
        if wake {
            self.shared.wake.notify_one();
        }
    }

    /// Waits until every line queued so far is written (lines queued meanwhile are not waited
    /// for), or for the stop timeout at most.
    pub fn wait_written(&self) {
        let deadline = Instant::now() + STOP_TIMEOUT;
        let mut queue = self.shared.lock();
        let target = queue.queued;
        while queue.done < target {
            let Some(left) = deadline.checked_duration_since(Instant::now()) else {
                return;
            };
            queue = match self.shared.written.wait_timeout(queue, left) {
                Ok((queue, _)) => queue,
                Err(poisoned) => poisoned.into_inner().0,
            };
        }
    }

    /// Lines dropped so far: the queue was full, or the writer had stopped.
    #[cfg(test)]
    fn dropped(&self) -> u64 {
        self.shared.dropped.get()
    }
}

impl Write for QueuedWriter {
    fn write(&mut self, line: &[u8]) -> io::Result<usize> {
        self.queue(line);
        Ok(line.len())
    }

    fn write_all(&mut self, line: &[u8]) -> io::Result<()> {
        self.queue(line);
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.wait_written();
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for QueuedWriter {
    type Writer = QueuedWriter;

    fn make_writer(&'a self) -> QueuedWriter {
        self.clone()
    }
}

impl WriterGuard {
    /// Stops the writing thread once every line queued before is written; false when that
    /// takes longer than the stop timeout (the output is stuck).
    pub fn stop(self) -> bool {
        self.finish()
    }

    /// What [`WriterGuard::stop`] does; once only (a drop after a stop waits no more).
    fn finish(&self) -> bool {
        if std::mem::replace(&mut self.shared.lock().stopping, true) {
            return false;
        }
        self.shared.wake.notify_one();
        self.done.recv_timeout(STOP_TIMEOUT).is_ok()
    }
}

impl Drop for WriterGuard {
    fn drop(&mut self) {
        self.finish();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An output that records what reaches it, and can be made to block.
    #[derive(Clone, Default)]
    struct Output {
        written: Arc<Mutex<Vec<u8>>>,
        blocked: Arc<Mutex<()>>,
    }

    impl Write for Output {
        fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
            let _wait = self.blocked.lock().unwrap();
            self.written.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl Output {
        fn text(&self) -> String {
            String::from_utf8(self.written.lock().unwrap().clone()).unwrap()
        }
    }

    #[test]
    fn lines_from_many_threads_arrive_whole_in_queue_order_and_are_flushed_on_stop() {
        let output = Output::default();
        let (writer, guard) = queued(output.clone(), Counter::default());
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let mut writer = writer.clone();
                std::thread::spawn(move || {
                    for i in 0..2000 {
                        writer
                            .write_all(format!("thread {t} line {i}\n").as_bytes())
                            .unwrap();
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
        drop(guard);
        let text = output.text();
        assert_eq!(text.lines().count(), 8000);
        for t in 0..4 {
            let prefix = format!("thread {t} line ");
            let numbers: Vec<usize> = text
                .lines()
                .filter_map(|line| line.strip_prefix(&prefix))
                .map(|n| n.parse().unwrap())
                .collect();
            assert_eq!(numbers, (0..2000).collect::<Vec<_>>(), "thread {t}");
        }
        assert_eq!(writer.dropped(), 0);
    }

    #[test]
    fn a_stuck_output_drops_lines_instead_of_blocking() {
        let output = Output::default();
        let stuck = output.blocked.lock().unwrap();
        let (mut writer, guard) = queued(output.clone(), Counter::default());
        let mut line = vec![b'x'; 1023];
        line.push(b'\n');
        let started = std::time::Instant::now();
        for _ in 0..(3 * MAX_QUEUED_BYTES / line.len()) {
            writer.write_all(&line).unwrap();
        }
        assert!(started.elapsed() < Duration::from_secs(5), "never waits");
        assert!(writer.dropped() > 0, "past the bound, lines are dropped");
        drop(stuck);
        drop(guard);
        assert!(output.text().len() <= 2 * MAX_QUEUED_BYTES);
    }

    #[test]
    fn a_flush_waits_for_the_lines_queued_before() {
        let output = Output::default();
        let (mut writer, _guard) = queued(output.clone(), Counter::default());
        for i in 0..100 {
            writer.write_all(format!("line {i}\n").as_bytes()).unwrap();
        }
        writer.flush().unwrap();
        assert_eq!(output.text().lines().count(), 100);
    }

    #[test]
    fn lines_after_stop_are_dropped() {
        let output = Output::default();
        let (mut writer, guard) = queued(output.clone(), Counter::default());
        writer.write_all(b"before\n").unwrap();
        drop(guard);
        writer.write_all(b"after\n").unwrap();
        assert_eq!(output.text(), "before\n");
        assert_eq!(writer.dropped(), 1);
    }

    /// An output whose reader is gone, as stderr when the pipe is closed.
    struct Broken;

    impl Write for Broken {
        fn write(&mut self, _: &[u8]) -> io::Result<usize> {
            Err(io::ErrorKind::BrokenPipe.into())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn lines_that_cannot_be_written_are_counted() {
        let (mut writer, guard) = queued(Broken, Counter::default());
        for i in 0..10 {
            writer.write_all(format!("line {i}\n").as_bytes()).unwrap();
        }
        writer.flush().unwrap();
        assert_eq!(writer.dropped(), 10);
        drop(guard);
    }

    /// An output that takes `room` bytes, a few at a time and once refusing with WouldBlock,
    /// then fails.
    struct Cramped {
        taken: Vec<u8>,
        room: usize,
        refused_once: bool,
    }

    impl Write for Cramped {
        fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
            if !self.refused_once {
                self.refused_once = true;
                return Err(io::ErrorKind::WouldBlock.into());
            }
            let n = bytes.len().min(3).min(self.room);
            if n == 0 {
                return Err(io::ErrorKind::BrokenPipe.into());
            }
            self.room -= n;
            self.taken.extend_from_slice(&bytes[..n]);
            Ok(n)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn only_the_lines_not_written_whole_are_counted_lost() {
        let mut out = Cramped {
            taken: Vec::new(),
            room: 9,
            refused_once: false,
        };
        // The first two lines fit, the third is cut short, the fourth never starts.
        let lost = write_out(&mut out, b"one\ntwo\nthree\nfour\n");
        assert_eq!(out.taken, b"one\ntwo\nt");
        assert_eq!(lost, 2);
    }

    #[test]
    fn stopping_reports_a_stuck_output() {
        let output = Output::default();
        let stuck = output.blocked.lock().unwrap();
        let (mut writer, guard) = queued(output.clone(), Counter::default());
        writer.write_all(b"never written in time\n").unwrap();
        // The writing thread takes the line and blocks on the output.
        std::thread::sleep(Duration::from_millis(50));
        assert!(!guard.stop(), "stuck");
        drop(stuck);
        let (mut writer, guard) = queued(output.clone(), Counter::default());
        writer.write_all(b"written\n").unwrap();
        assert!(guard.stop(), "written before the timeout");
    }
}
