//! What happens after a patch lands: a Kubernetes Event on the object saying why it was
//! refreshed, and, if asked for, following the ExternalSecret until ESO reports the refresh.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, DurationRound, TimeDelta, Utc};
use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::api::{Api, PostParams};

use crate::external_secret::SecretId;
use crate::index::SharedIndex;
use crate::metrics::{Metrics, OutcomeLabels};

pub const EVENT_REASON: &str = "RefreshRequested";
const REPORTER: &str = "eso-refresher";
const EVENT_TIMEOUT: Duration = Duration::from_secs(10);

pub struct FollowUp {
    /// `None` in dry runs: there is no cluster to tell.
    client: Option<kube::Client>,
    /// This pod, named in the Events it records.
    instance: String,
    confirm_timeout: Option<Duration>,
    index: Arc<SharedIndex>,
    metrics: Arc<Metrics>,
    runtime: tokio::runtime::Handle,
}

/// How a followed refresh ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Confirmation {
    /// ESO synced after the patch and the ExternalSecret is Ready.
    Confirmed,
    /// ESO synced after the patch but the ExternalSecret is not Ready: it failed to fetch.
    NotReady,
    /// ESO did not report a sync in time.
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
            client,
            instance: std::env::var("POD_NAME").unwrap_or_else(|_| REPORTER.to_owned()),
            confirm_timeout,
            index,
            metrics,
            runtime: tokio::runtime::Handle::current(),
        }
    }

    /// Records that `object` was patched at `patched_at` because of `why`, in the background.
    pub fn refreshed(&self, object: ObjectReference, why: String, patched_at: DateTime<Utc>) {
        if let Some(client) = self.client.clone() {
            let event = refresh_event(&object, truncate(why, 1024), &self.instance);
            let reference = object.clone();
            // A cluster-scoped object's Events go to the default namespace.
            let namespace = object.namespace.clone().unwrap_or_else(|| "default".into());
            self.runtime.spawn(async move {
                let events: Api<Event> = Api::namespaced(client, &namespace);
                let params = PostParams::default();
                let create = events.create(&params, &event);
                let published =
                    tokio::time::timeout(EVENT_TIMEOUT, async { create.await.map(|_| ()) }).await;
                match published {
                    Ok(Ok(())) => {}
                    Ok(Err(error)) => {
                        tracing::warn!(%error, object = ?reference.name, "could not record the Event")
                    }
                    Err(_) => tracing::warn!(object = ?reference.name, "recording the Event timed out"),
                }
            });
        }
        let (Some(timeout), Some(namespace), Some(name)) =
            (self.confirm_timeout, &object.namespace, &object.name)
        else {
            return;
        };
        if object.kind.as_deref() != Some("ExternalSecret") {
            return;
        }
        let id = SecretId::new(namespace, name);
        let (index, metrics) = (self.index.clone(), self.metrics.clone());
        self.runtime.spawn(async move {
            let outcome = confirm(&index, &id, patched_at, timeout).await;
            metrics
                .confirmations
                .get_or_create(&OutcomeLabels {
                    outcome: outcome.label(),
                })
                .inc();
            match outcome {
                Confirmation::Confirmed => tracing::info!(external_secret = %id, "refresh confirmed"),
                Confirmation::NotReady => tracing::warn!(external_secret = %id, "ESO re-synced but the ExternalSecret is not Ready: the new value was not fetched"),
                Confirmation::TimedOut => tracing::warn!(external_secret = %id, timeout_s = timeout.as_secs(), "ESO did not report a refresh in time"),
            }
        });
    }
}

/// An events.k8s.io/v1 Event about a refresh. Each is created anew (the server names it):
/// their notes name different events, so there is no series to aggregate, and nothing is
/// cached here.
fn refresh_event(object: &ObjectReference, note: String, instance: &str) -> Event {
    Event {
        metadata: ObjectMeta {
            generate_name: Some(format!("{}.", object.name.as_deref().unwrap_or(REPORTER))),
            namespace: object.namespace.clone(),
            ..ObjectMeta::default()
        },
        event_time: Some(MicroTime(k8s_openapi::jiff::Timestamp::now())),
        action: Some("Refresh".into()),
        reason: Some(EVENT_REASON.into()),
        note: Some(note),
        regarding: Some(object.clone()),
        reporting_controller: Some(REPORTER.into()),
        reporting_instance: Some(instance.to_owned()),
        type_: Some("Normal".into()),
        ..Event::default()
    }
}

/// Waits until the index shows ESO synced `id` after `patched_at`. ESO writes `refreshTime`
/// with whole seconds, so a sync in the same second as the patch counts.
pub async fn confirm(
    index: &SharedIndex,
    id: &SecretId,
    patched_at: DateTime<Utc>,
    timeout: Duration,
) -> Confirmation {
    let since = patched_at
        .duration_trunc(TimeDelta::seconds(1))
        .unwrap_or(patched_at);
    let mut changes = index.subscribe();
    let outcome = async {
        loop {
            let secret = index.read(|index| index.get(id));
            if let Some(secret) = secret
                && secret.refreshed_at.is_some_and(|at| at >= since)
            {
                return match secret.ready {
                    Some(true) => Confirmation::Confirmed,
                    _ => Confirmation::NotReady,
                };
            }
            if changes.changed().await.is_err() {
                return Confirmation::TimedOut;
            }
        }
    };
    tokio::time::timeout(timeout, outcome)
        .await
        .unwrap_or(Confirmation::TimedOut)
}

fn truncate(mut text: String, max: usize) -> String {
    if text.len() > max {
        let mut end = max;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::external_secret::IndexedSecret;

    fn secret(refreshed_at: Option<DateTime<Utc>>, ready: Option<bool>) -> IndexedSecret {
        IndexedSecret {
            refreshed_at,
            ready,
            ..IndexedSecret::with_keys("a", "s", &["k"])
        }
    }

    #[tokio::test]
    async fn confirms_when_eso_reports_a_later_sync() {
        let index = Arc::new(SharedIndex::default());
        let patched_at = Utc::now();
        index.write(|i| i.apply(secret(Some(patched_at - TimeDelta::minutes(5)), Some(true))));
        let waiting = {
            let index = index.clone();
            tokio::spawn(async move {
                confirm(
                    &index,
                    &SecretId::new("a", "s"),
                    patched_at,
                    Duration::from_secs(5),
                )
                .await
            })
        };
        tokio::time::sleep(Duration::from_millis(50)).await;
        index.write(|i| i.apply(secret(Some(patched_at + TimeDelta::seconds(1)), Some(true))));
        assert_eq!(waiting.await.unwrap(), Confirmation::Confirmed);
    }

    #[tokio::test]
    async fn a_sync_that_left_it_unready_is_reported() {
        let index = SharedIndex::default();
        let patched_at = Utc::now();
        index.write(|i| {
            i.apply(secret(
                Some(patched_at + TimeDelta::seconds(2)),
                Some(false),
            ))
        });
        let outcome = confirm(
            &index,
            &SecretId::new("a", "s"),
            patched_at,
            Duration::from_secs(1),
        )
        .await;
        assert_eq!(outcome, Confirmation::NotReady);
    }

    #[tokio::test(start_paused = true)]
    async fn no_sync_times_out() {
        let index = SharedIndex::default();
        let patched_at = Utc::now();
        index.write(|i| i.apply(secret(Some(patched_at - TimeDelta::hours(1)), Some(true))));
        let outcome = confirm(
            &index,
            &SecretId::new("a", "s"),
            patched_at,
            Duration::from_secs(30),
        )
        .await;
        assert_eq!(outcome, Confirmation::TimedOut);
    }

    #[test]
    fn notes_are_cut_at_a_character_boundary() {
        assert_eq!(truncate("ééé".into(), 3), "é");
        assert_eq!(truncate("abc".into(), 10), "abc");
    }
}
