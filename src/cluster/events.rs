//! Kubernetes Events (events.k8s.io/v1) about the objects the service acts on: a refresh
//! requested, or a rule no change event can match. Recorded in the background; a failure is
//! logged, never in the way of a webhook.

use std::time::Duration;

use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::api::{Api, PostParams};

/// The reason of the Event on a refreshed object.
pub const EVENT_REASON: &str = "RefreshRequested";
/// The reason of the Event on an ExternalSecret indexed with a rule no event can match.
pub const UNMATCHABLE_REASON: &str = "UnmatchableRule";
const REPORTER: &str = "eso-refresher";
const EVENT_TIMEOUT: Duration = Duration::from_secs(10);
const MAX_NOTE: usize = 1024;

/// What an Event says: its reason, the action taken, and its type.
#[derive(Debug, Clone, Copy)]
pub struct EventKind {
    pub reason: &'static str,
    pub action: &'static str,
    pub warning: bool,
}

impl EventKind {
    pub const REFRESH: EventKind = EventKind {
        reason: EVENT_REASON,
        action: "Refresh",
        warning: false,
    };
    pub const UNMATCHABLE: EventKind = EventKind {
        reason: UNMATCHABLE_REASON,
        action: "Index",
        warning: true,
    };
}

/// Records Events with a client, on the runtime it was made on.
#[derive(Clone)]
pub struct Recorder {
    client: kube::Client,
    /// This pod, named in the Events it records.
    instance: String,
    runtime: tokio::runtime::Handle,
}

impl Recorder {
    /// Must be made on the runtime that outlives the HTTP server.
    pub fn new(client: kube::Client) -> Recorder {
        Recorder {
            client,
            instance: std::env::var("POD_NAME").unwrap_or_else(|_| REPORTER.to_owned()),
            runtime: tokio::runtime::Handle::current(),
        }
    }

    /// Records an Event about `object`, in the background.
    pub fn record(&self, object: &ObjectReference, kind: EventKind, note: String) {
        let event = event(object, kind, truncate(note, MAX_NOTE), &self.instance);
        self.publish(object, event);
    }

    /// Records an Event about `object` once for `what` (whatever replica, however often it
    /// is asked): its name is made of the object's uid and `what`, so a second create is
    /// refused by the API server as a conflict, which is taken as done.
    pub fn record_once(&self, object: &ObjectReference, kind: EventKind, note: String, what: &str) {
        use sha2::{Digest, Sha256};
        let mut event = event(object, kind, truncate(note, MAX_NOTE), &self.instance);
        let uid = object.uid.as_deref().unwrap_or_default();
        let digest = Sha256::digest(format!("{uid}\u{1f}{what}").as_bytes());
        let hex: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
        let object_name = object.name.as_deref().unwrap_or(REPORTER);
        event.metadata.name = Some(name_with_suffix(object_name, &hex));
        self.publish(object, event);
    }

    fn publish(&self, object: &ObjectReference, event: Event) {
        let reference = object.name.clone();
        // A cluster-scoped object's Events go to the default namespace.
        let namespace = object.namespace.clone().unwrap_or_else(|| "default".into());
        let client = self.client.clone();
        self.runtime.spawn(async move {
            let events: Api<Event> = Api::namespaced(client, &namespace);
            let params = PostParams::default();
            let create = events.create(&params, &event);
            let published =
                tokio::time::timeout(EVENT_TIMEOUT, async { create.await.map(|_| ()) }).await;
            match published {
                Ok(Ok(())) => {}
                // Recorded already, by this replica or another.
                Ok(Err(kube::Error::Api(status))) if status.code == 409 => {}
                Ok(Err(error)) => {
                    tracing::warn!(%error, object = ?reference, "could not record the Event")
                }
                Err(_) => tracing::warn!(object = ?reference, "recording the Event timed out"),
            }
        });
    }
}

/// An Event about `object`. Each is created anew, their notes differ, so there is no series
/// to aggregate. Named as Kubernetes' own recorders name them, `<object>.<time in hex
/// nanoseconds>`: unique, sorted by time, and a valid name (a `generateName` may not end in a
/// dot).
fn event(object: &ObjectReference, kind: EventKind, note: String, instance: &str) -> Event {
    let now = k8s_openapi::jiff::Timestamp::now();
    Event {
        metadata: ObjectMeta {
            name: Some(event_name(
                object.name.as_deref().unwrap_or(REPORTER),
                now.as_nanosecond(),
            )),
            namespace: object.namespace.clone(),
            ..ObjectMeta::default()
        },
        event_time: Some(MicroTime(now)),
        action: Some(kind.action.into()),
        reason: Some(kind.reason.into()),
        note: Some(note),
        regarding: Some(object.clone()),
        reporting_controller: Some(REPORTER.into()),
        reporting_instance: Some(truncate(instance.to_owned(), 128)),
        type_: Some(if kind.warning { "Warning" } else { "Normal" }.into()),
        ..Event::default()
    }
}

/// `<object>.<hex nanoseconds>`, within the 253 characters of a DNS subdomain name: a long
/// object name is cut, and not left ending in a dot or dash.
fn event_name(object: &str, nanos: i128) -> String {
    name_with_suffix(object, &format!("{:x}", nanos.max(0)))
}

/// `<object>.<suffix>`, cut as [`event_name`] is.
fn name_with_suffix(object: &str, suffix: &str) -> String {
    let suffix = format!(".{suffix}");
    let mut prefix = truncate(object.to_owned(), 253 - suffix.len());
    while prefix.ends_with(['.', '-']) {
        prefix.pop();
    }
    format!("{prefix}{suffix}")
}

/// `text` cut to at most `max` bytes, at a character boundary.
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

    #[test]
    fn event_names_are_valid_names() {
        assert_eq!(event_name("db", 255), "db.ff");
        let long = format!("{}-{}", "a".repeat(240), "b".repeat(12));
        let name = event_name(&long, i128::from(i64::MAX));
        assert!(name.len() <= 253, "{}", name.len());
        assert!(name.ends_with(".7fffffffffffffff"), "{name}");
        // Cut right after a dash: the dash goes too.
        let dashed = format!("{}-zzz", "a".repeat(250));
        assert_eq!(event_name(&dashed, 1), format!("{}.1", "a".repeat(250)));
    }

    #[test]
    fn notes_are_cut_at_a_character_boundary() {
        assert_eq!(truncate("ééé".into(), 3), "é");
        assert_eq!(truncate("abc".into(), 10), "abc");
    }

    #[test]
    fn unmatchable_rules_are_warnings() {
        let object = ObjectReference {
            name: Some("db".into()),
            namespace: Some("a".into()),
            ..ObjectReference::default()
        };
        let warning = event(&object, EventKind::UNMATCHABLE, "why".into(), "pod");
        assert_eq!(warning.type_.as_deref(), Some("Warning"));
        assert_eq!(warning.reason.as_deref(), Some(UNMATCHABLE_REASON));
        let refresh = event(&object, EventKind::REFRESH, "why".into(), "pod");
        assert_eq!(refresh.type_.as_deref(), Some("Normal"));
        assert_eq!(refresh.reason.as_deref(), Some(EVENT_REASON));
    }
}
