//! CloudEvents 1.0, from anything that speaks it: structured mode (one event or a batch) in
//! the body, or binary mode in `ce-*` headers.

use serde_json::{Map, Value};

use super::read::*;
use super::{Notification, PayloadError, Sender};

pub struct CloudEvents;

impl Sender for CloudEvents {
    fn name(&self) -> &'static str {
        "cloudevents"
    }

    /// A structured CloudEvent: `specversion`.
    fn recognizes(&self, first: &Value) -> bool {
        first.get("specversion").is_some()
    }

    fn parse(&self, body: &Value) -> Result<Notification, PayloadError> {
        parse(body)
    }

    fn shared_shape(&self) -> bool {
        true
    }
}

/// CloudEvents 1.0 in structured mode (one event or a batch array); the secret is the
/// event's `subject`. Binary mode is read by the HTTP layer from the `ce-*` headers.
pub fn parse(value: &Value) -> Result<Notification, PayloadError> {
    let events = one_or_many(value);
    let mut notification = Notification::default();
    for (i, event) in events.iter().enumerate() {
        let object = event
            .as_object()
            .ok_or_else(|| shape(format!("event [{i}] is not an object")))?;
        if object.get("specversion").and_then(Value::as_str) != Some("1.0") {
            return Err(shape(format!("event [{i}]: specversion is not 1.0")));
        }
        notification.push_cloudevent(object, i)?;
    }
    Ok(notification)
}

impl Notification {
    /// One CloudEvent whose `subject` names the secret; types that say "deleted" or "failed"
    /// carry no new value.
    pub fn push_cloudevent(
        &mut self,
        event: &Map<String, Value>,
        i: usize,
    ) -> Result<(), PayloadError> {
        let event_type = event
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let id = event.get("id").and_then(Value::as_str).map(str::to_owned);
        let lowered = event_type.to_ascii_lowercase();
        if ["delete", "destroy", "fail", "expir"]
            .iter()
            .any(|word| lowered.contains(word))
        {
            self.ignore(id, format!("{event_type} carries no new value"));
            return Ok(());
        }
        let subject = event
            .get("subject")
            .and_then(Value::as_str)
            .filter(|s| !s.trim_start_matches('/').is_empty())
            .ok_or_else(|| shape(format!("event [{i}]: subject (the secret) is missing")))?;
        let mut change = change(subject, Vec::new(), Some(event_type), id, None);
        // CloudEvents makes an id unique only within its source.
        change.scope = event
            .get("source")
            .and_then(Value::as_str)
            .map(str::to_owned);
        self.changes.push(change);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::senders::fixture;

    fn cloudevents(body: &[u8]) -> Result<Notification, PayloadError> {
        parse(&json(body)?)
    }

    #[test]
    fn cloudevents_structured_and_batch() {
        let one = cloudevents(&fixture("cloudevent-structured.json")).unwrap();
        assert_eq!(one.changes[0].key, "prod/payments/db-password");
        let batch = cloudevents(br#"[{"specversion": "1.0", "id": "1", "type": "a.updated", "source": "s", "subject": "/a"},
                                   {"specversion": "1.0", "id": "2", "type": "b.deleted", "source": "s", "subject": "/b"}]"#).unwrap();
        assert_eq!(batch.changes.len(), 1);
        assert_eq!(batch.ignored.len(), 1);
        assert!(cloudevents(br#"{"specversion": "0.3", "subject": "x"}"#).is_err());
        assert!(
            cloudevents(br#"{"specversion": "1.0", "type": "t"}"#)
                .unwrap_err()
                .to_string()
                .contains("subject")
        );
    }
}
