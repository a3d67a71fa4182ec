//! What happens after a patch lands: a Kubernetes Event on the object saying why it was
//! refreshed, and, if asked for, following the ExternalSecret until ESO reports the refresh.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::ObjectReference;

use chrono::DurationRound;

use crate::cluster::events::{EventKind, Recorder};
use crate::core::external_secret::{SecretId, SyncedAfter};
use crate::core::index::SharedIndex;
use crate::telemetry::metrics::{Metrics, OutcomeLabels};

pub use crate::cluster::events::EVENT_REASON;

pub struct FollowUp {
    /// `None` in dry runs: there is no cluster to tell.
    recorder: Option<Recorder>,
    confirm_timeout: Option<Duration>,
    index: Arc<SharedIndex>,
    metrics: Arc<Metrics>,
    runtime: tokio::runtime::Handle,
}

/// How a followed refresh ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Confirmation {
    /// ESO synced the patched object (it records a sync only when it succeeded).
    Confirmed,
    /// No sync in time, and the ExternalSecret is not Ready: ESO tried and failed to fetch.
    NotReady,
    /// No sync in time.
    TimedOut,
}

impl Confirmation {
    fn label(self) -> &'static str {
        match self {
            Confirmation::Confirmed => "confirmed",
            Confirmation::NotReady => "not_ready",
            Confirmation::TimedOut => "timeout",
        }
    }
}

impl FollowUp {
    /// Must be called on the runtime that outlives the HTTP server.
    pub fn new(
        client: Option<kube::Client>,
        confirm_timeout: Option<Duration>,
        index: Arc<SharedIndex>,
        metrics: Arc<Metrics>,
    ) -> FollowUp {
        FollowUp {
            recorder: client.map(Recorder::new),
            confirm_timeout,
            index,
            metrics,
            runtime: tokio::runtime::Handle::current(),
        }
    }

    /// Records that `object` was patched with `stamp` because of `why`, in the background,
    /// and follows the ExternalSecrets the patch refreshes (the object itself, or a
    /// ClusterExternalSecret's children in `followed`) until ESO syncs them.
    pub fn refreshed(
        &self,
        object: ObjectReference,
        why: String,
        stamp: &str,
        followed: impl IntoIterator<Item = SecretId>,
    ) {
        if let Some(recorder) = &self.recorder {
            recorder.record(&object, EventKind::REFRESH, why);
        }
        let Some(timeout) = self.confirm_timeout else {
            return;
        };
        let patched_at = chrono::DateTime::parse_from_rfc3339(stamp)
            .map(|t| t.with_timezone(&chrono::Utc))
            .unwrap_or_else(|_| chrono::Utc::now());
        // The patched ExternalSecret itself is followed by the watch's order (another replica
        // may write a later patch with an earlier clock); a ClusterExternalSecret's children,
        // which ESO writes, by the stamp it copies to them.
        let patched_version = object
            .resource_version
            .as_deref()
            .and_then(|v| v.parse().ok())
            .filter(|_| object.kind.as_deref() == Some("ExternalSecret"));
        let after = match patched_version {
            Some(version) => SyncedAfter::ResourceVersion(version),
            None => SyncedAfter::Stamp(stamp.to_owned()),
        };
        for id in followed {
            let (index, metrics, stamp, after) = (
                self.index.clone(),
                self.metrics.clone(),
                stamp.to_owned(),
                after.clone(),
            );
            self.runtime.spawn(async move {
                let outcome = confirm(&index, &id, &after, patched_at, timeout).await;
                metrics
                    .confirmations
                    .get_or_create(&OutcomeLabels {
                        outcome: outcome.label(),
                    })
                    .inc();
                match outcome {
                    Confirmation::Confirmed => {
                        tracing::info!(external_secret = %id, %stamp, "refresh confirmed: ESO synced the patched object")
                    }
                    Confirmation::NotReady => tracing::warn!(external_secret = %id, %stamp, timeout_s = timeout.as_secs(), "ESO did not sync the refresh in time and the ExternalSecret is not Ready: it cannot fetch the value"),
                    Confirmation::TimedOut => tracing::warn!(external_secret = %id, %stamp, timeout_s = timeout.as_secs(), "ESO did not sync the refresh in time"),
                }
            });
        }
    }
}

/// Waits until the index shows that ESO synced `id` in a state at or after the patch (`after`):
/// its `status.syncedResourceVersion` names the very generation, labels and annotations the
/// object then has. `status.refreshTime` cannot say that: it has whole seconds and marks the
/// start of a reconcile, which may have read the object before the patch. Not Ready counts
/// only when ESO reported the failure after `patched_at` (a failure older than the patch says
/// nothing about this refresh).
pub async fn confirm(
    index: &SharedIndex,
    id: &SecretId,
    after: &SyncedAfter,
    patched_at: chrono::DateTime<chrono::Utc>,
    timeout: Duration,
) -> Confirmation {
    let mut changes = index.subscribe();
    let synced = async {
        loop {
            if index
                .read(|index| index.get(id))
                .is_some_and(|secret| secret.sync.has_synced(after))
            {
                return;
            }
            if changes.changed().await.is_err() {
                std::future::pending::<()>().await;
            }
        }
    };
    match tokio::time::timeout(timeout, synced).await {
        Ok(()) => Confirmation::Confirmed,
        Err(_) => {
            // refreshTime and lastTransitionTime have whole seconds.
            let since = patched_at
                .duration_trunc(chrono::TimeDelta::seconds(1))
                .unwrap_or(patched_at);
            match index.read(|index| index.get(id)) {
                Some(secret) if secret.sync.failing_since(since) => Confirmation::NotReady,
                _ => Confirmation::TimedOut,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::external_secret::{IndexedSecret, SyncState};

    const STAMP: &str = "2026-11-30T10:00:00.000000002Z";
    const EARLIER: &str = "2026-11-30T10:00:00.000000001Z";

    fn after() -> SyncedAfter {
        SyncedAfter::Stamp(STAMP.to_owned())
    }

    fn patched_at() -> chrono::DateTime<chrono::Utc> {
        chrono::DateTime::parse_from_rfc3339(STAMP)
            .unwrap()
            .with_timezone(&chrono::Utc)
    }

    fn secret(stamp: &str, synced_this_metadata: bool, ready: Option<bool>) -> IndexedSecret {
        IndexedSecret {
            sync: SyncState {
                stamp: Some(stamp.to_owned()),
                synced_this_metadata,
                ready,
                ready_since: Some(patched_at() + chrono::TimeDelta::seconds(1)),
                ..SyncState::default()
            },
            ..IndexedSecret::with_keys("a", "s", &["k"])
        }
    }

    #[tokio::test]
    async fn confirms_once_eso_synced_the_patched_metadata() {
        let index = Arc::new(SharedIndex::default());
        index.write(|i| i.apply(secret(EARLIER, true, Some(true))));
        let waiting = {
            let index = index.clone();
            tokio::spawn(async move {
                confirm(
                    &index,
                    &SecretId::new("a", "s"),
                    &after(),
                    patched_at(),
                    Duration::from_secs(5),
                )
                .await
            })
        };
        // The patch lands: the stamp is there, ESO has not synced it yet.
        tokio::time::sleep(Duration::from_millis(50)).await;
        index.write(|i| i.apply(secret(STAMP, false, Some(true))));
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!waiting.is_finished(), "confirmed before ESO synced");
        index.write(|i| i.apply(secret(STAMP, true, Some(true))));
        assert_eq!(waiting.await.unwrap(), Confirmation::Confirmed);
    }

    /// How a refresh ends when the index shows `state` and nothing changes any more.
    async fn outcome_with(state: IndexedSecret) -> Confirmation {
        let index = SharedIndex::default();
        index.write(|i| i.apply(state));
        let id = SecretId::new("a", "s");
        confirm(&index, &id, &after(), patched_at(), Duration::from_secs(30)).await
    }

    #[tokio::test(start_paused = true)]
    async fn a_sync_of_the_metadata_before_the_patch_does_not_count() {
        let outcome = outcome_with(secret(EARLIER, true, Some(true))).await;
        assert_eq!(outcome, Confirmation::TimedOut);
    }

    #[tokio::test(start_paused = true)]
    async fn no_sync_with_a_failing_fetch_is_not_ready() {
        let outcome = outcome_with(secret(STAMP, false, Some(false))).await;
        assert_eq!(outcome, Confirmation::NotReady);
    }

    #[tokio::test(start_paused = true)]
    async fn a_failure_older_than_the_patch_is_a_timeout() {
        let mut failed_before = secret(STAMP, false, Some(false));
        failed_before.sync.ready_since = Some(patched_at() - chrono::TimeDelta::minutes(5));
        assert_eq!(outcome_with(failed_before).await, Confirmation::TimedOut);
    }
}
