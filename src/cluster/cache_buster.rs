//! The cache buster: a second patch, with a fresh stamp, some time after the first, for
//! providers whose own caches may still have served the old value the first time.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::cluster::patcher::{Applied, Patcher};
use crate::core::plan::PatchTarget;

pub struct CacheBuster {
    wait: Duration,
    tracker: TaskTracker,
    shutdown: CancellationToken,
    pending: Arc<AtomicUsize>,
    /// The runtime the service was built on. Webhook handlers run on the HTTP server's worker
    /// runtimes, which end with the server: a wait spawned there would die with them.
    runtime: tokio::runtime::Handle,
}

impl CacheBuster {
    /// `shutdown` cuts the waits short: pending patches are then applied at once. Must be
    /// called on the runtime that outlives the HTTP server.
    pub fn new(wait: Duration, shutdown: CancellationToken) -> Self {
        CacheBuster {
            wait,
            tracker: TaskTracker::new(),
            shutdown,
            pending: Arc::default(),
            runtime: tokio::runtime::Handle::current(),
        }
    }

    pub fn wait(&self) -> Duration {
        self.wait
    }

    /// Second patches scheduled and not yet sent.
    pub fn pending(&self) -> usize {
        self.pending.load(Ordering::Acquire)
    }

    pub fn schedule(&self, targets: Vec<PatchTarget>, patcher: Arc<Patcher>) {
        if targets.is_empty() {
            return;
        }
        let count = targets.len();
        self.pending.fetch_add(count, Ordering::AcqRel);
        let (wait, shutdown, pending) = (self.wait, self.shutdown.clone(), self.pending.clone());
        let task = async move {
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = shutdown.cancelled() => {
                    tracing::info!(count, "shutting down: sending pending cache-buster patches now");
                }
            }
            for patched in patcher.patch_all(targets, None).await {
                let target = patched.target;
                match patched.outcome {
                    Ok(Applied::Gone) => {
                        tracing::info!(object = %target, "cache buster: object is gone")
                    }
                    Ok(_) => tracing::debug!(object = %target, "cache buster: patched"),
                    Err(error) => {
                        tracing::error!(object = %target, %error, "cache-buster patch failed")
                    }
                }
            }
            pending.fetch_sub(count, Ordering::AcqRel);
        };
        self.tracker.spawn_on(task, &self.runtime);
    }

    /// Waits for every scheduled patch, which the cancelled shutdown token sends at once,
    /// up to `deadline`; what is still pending then is reported, not dropped silently.
    pub async fn drain(&self, deadline: Duration) -> usize {
        self.tracker.close();
        if tokio::time::timeout(deadline, self.tracker.wait())
            .await
            .is_err()
        {
            let left = self.pending();
            tracing::error!(
                pending = left,
                "shutdown deadline passed with cache-buster patches not applied"
            );
            return left;
        }
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::external_secret::SecretId;

    fn dry_run() -> Arc<Patcher> {
        Patcher::new(crate::cluster::patcher::Destination::DryRun, Arc::default())
    }

    fn targets(n: usize) -> Vec<PatchTarget> {
        (0..n)
            .map(|i| PatchTarget::ExternalSecret(SecretId::new("ns", &format!("s{i}"))))
            .collect()
    }

    #[tokio::test(start_paused = true)]
    async fn patches_after_the_wait() {
        let buster = CacheBuster::new(Duration::from_secs(2), CancellationToken::new());
        buster.schedule(targets(3), dry_run());
        assert_eq!(buster.pending(), 3);
        tokio::time::sleep(Duration::from_millis(1900)).await;
        assert_eq!(buster.pending(), 3, "still waiting");
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(buster.pending(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn shutdown_sends_pending_patches_at_once() {
        let shutdown = CancellationToken::new();
        let buster = CacheBuster::new(Duration::from_secs(3600), shutdown.clone());
        buster.schedule(targets(2), dry_run());
        shutdown.cancel();
        let started = tokio::time::Instant::now();
        assert_eq!(buster.drain(Duration::from_secs(5)).await, 0);
        assert!(started.elapsed() < Duration::from_secs(1));
        assert_eq!(buster.pending(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn drain_reports_what_it_could_not_send() {
        let buster = CacheBuster::new(Duration::from_secs(3600), CancellationToken::new());
        buster.schedule(targets(4), dry_run());
        assert_eq!(buster.drain(Duration::from_secs(1)).await, 4);
    }
}
