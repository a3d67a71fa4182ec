//! The simplest body, for anything else: `{"keys": ["/prod/db", ...]}`.

use serde_json::Value;

use super::read::*;
use super::{Notification, PayloadError, Sender};

pub struct Generic;

impl Sender for Generic {
    fn name(&self) -> &'static str {
        "generic"
    }

    /// `{"keys": [...]}`.
    fn recognizes(&self, first: &Value) -> bool {
        first.get("keys").is_some()
    }

    fn parse(&self, body: &Value) -> Result<Notification, PayloadError> {
        parse(body)
    }

    fn shared_shape(&self) -> bool {
        true
    }
}

/// The simplest body, for everything else: `{"keys": ["/prod/db", ...]}`.
pub fn parse(value: &Value) -> Result<Notification, PayloadError> {
    let keys = value
        .get("keys")
        .and_then(Value::as_array)
        .ok_or_else(|| shape("expected {\"keys\": [\"<secret>\", ...]}"))?;
    let mut notification = Notification::default();
    for (i, key) in keys.iter().enumerate() {
        let key = key
            .as_str()
            .filter(|k| !k.trim_start_matches('/').trim().is_empty())
            .ok_or_else(|| shape(format!("keys[{i}] is not a secret name")))?;
        notification
            .changes
            .push(change(key, Vec::new(), Some("generic"), None, None));
    }
    Ok(notification)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn generic(body: &[u8]) -> Result<Notification, PayloadError> {
        parse(&json(body)?)
    }

    #[test]
    fn generic_keys() {
        let n = generic(br#"{"keys": ["/a", "b"]}"#).unwrap();
        assert_eq!(n.changes.len(), 2);
        assert!(generic(br#"{"keys": [""]}"#).is_err());
        assert!(generic(br#"{"names": []}"#).is_err());
    }
}
