//! What every sender's parser needs: reading fields, building changes, and the errors that say
//! what a body lacks.

use serde_json::Value;

use super::{Ignored, Notification, Origin, PayloadError, SecretChange};

pub fn shape(message: impl Into<String>) -> PayloadError {
    PayloadError::Shape(message.into())
}

/// A non-empty text field.
pub fn text<'a>(value: &'a Value, field: &str) -> Option<&'a str> {
    value
        .get(field)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}

/// A store setting: a text field, trimmed, if not blank.
pub fn setting(value: &Value, field: &str) -> Option<String> {
    value
        .get(field)
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

/// An id given as a string or a number.
pub fn id_of(value: &Value, field: &str) -> Option<String> {
    match value.get(field)? {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

pub fn change(
    key: &str,
    also: Vec<String>,
    event_type: Option<&str>,
    event_id: Option<String>,
    origin: Option<Origin>,
) -> SecretChange {
    let mut also = also;
    also.retain(|k| k != key);
    also.dedup();
    SecretChange {
        key: key.to_owned(),
        also,
        event_type: event_type.map(str::to_owned),
        event_id,
        origin,
        ..SecretChange::default()
    }
}

/// The events of a body that holds one event or an array of them.
pub fn one_or_many(value: &Value) -> Vec<&Value> {
    match value {
        Value::Array(events) => events.iter().collect(),
        other => vec![other],
    }
}

pub fn json(body: &[u8]) -> Result<Value, PayloadError> {
    serde_json::from_slice(body).map_err(|e| PayloadError::Json(e.to_string()))
}

impl Notification {
    pub(super) fn ignore(&mut self, id: Option<String>, reason: String) {
        self.ignored.push(Ignored {
            event_id: id,
            reason,
        });
    }
}
