//! Akeyless Event Center webhook forwarder bodies, in the three forms it sends:
//! an array of events, a single event, and events grouped by type under `Akeyless_Events`.

use std::sync::Arc;

use serde_json::{Map, Value};

use super::{Notification, Origin, PayloadError, Place, SecretChange, Sender, StoreBackend};
use crate::core::external_secret::normalize_key;

pub struct Akeyless;

impl Sender for Akeyless {
    fn name(&self) -> &'static str {
        "akeyless"
    }

    /// A forwarded event (`item_name`) or grouped events (`Akeyless_Events`).
    fn recognizes(&self, first: &Value) -> bool {
        first.get("item_name").is_some() || first.get("Akeyless_Events").is_some()
    }

    fn parse(&self, body: &Value) -> Result<Notification, PayloadError> {
        Ok(Notification {
            changes: read(body)?,
            ..Notification::default()
        })
    }

    fn read_store(&self, provider: &str, _settings: &Value) -> Option<Arc<dyn StoreBackend>> {
        (provider == "akeyless").then(|| Arc::new(AkeylessStore) as _)
    }
}

/// Akeyless events name an item by its full path in one account: there is no place to tell
/// apart.
#[derive(Debug, PartialEq)]
pub struct AkeylessPlace;

impl Place for AkeylessPlace {}

/// An `akeyless` store reads items by their path, as events name them.
#[derive(Debug)]
pub struct AkeylessStore;

impl StoreBackend for AkeylessStore {
    fn accepts(&self, origin: &Origin) -> bool {
        origin.place::<AkeylessPlace>().is_some()
    }
}

/// Reads every event in `body`; one malformed event rejects the whole body, so the sender
/// learns about it instead of having part of its batch silently dropped.
pub fn read(value: &Value) -> Result<Vec<SecretChange>, PayloadError> {
    let changes = match value {
        Value::Array(events) => events
            .iter()
            .enumerate()
            .map(|(i, event)| {
                let event = event
                    .as_object()
                    .ok_or_else(|| shape(format!("event [{i}] is not an object")))?;
                forwarded_event(event).map_err(|e| shape(format!("event [{i}]: {e}")))
            })
            .collect::<Result<Vec<_>, _>>()?,
        Value::Object(object) => match object.get("Akeyless_Events") {
            Some(groups) => grouped_events(groups)?,
            None if object.contains_key("item_name") => {
                vec![forwarded_event(object).map_err(shape)?]
            }
            None => return Err(shape(UNRECOGNIZED.to_owned())),
        },
        _ => return Err(shape(UNRECOGNIZED.to_owned())),
    };
    if changes.is_empty() {
        return Err(PayloadError::Empty);
    }
    Ok(changes)
}

const UNRECOGNIZED: &str = "unrecognized body: expected an Akeyless event object with item_name, \
an array of them, or {\"Akeyless_Events\": {\"<Type>\": [{\"name\": …}]}}";

fn shape(message: String) -> PayloadError {
    PayloadError::Shape(message)
}

/// `{event_id, event_level, event_type, item_name, item_id, item_type, payload}`
fn forwarded_event(event: &Map<String, Value>) -> Result<SecretChange, String> {
    Ok(SecretChange {
        key: required_name(event, "item_name")?,
        also: Vec::new(),
        event_type: optional_text(event, "event_type")?,
        event_id: optional_text(event, "event_id")?,
        origin: Some(Origin::new(AkeylessPlace)),
    })
}

/// `{"Akeyless_Events": {"Static_Secret_Updated": [{"name": …, "item_id": …}]}}`
fn grouped_events(groups: &Value) -> Result<Vec<SecretChange>, PayloadError> {
    let groups = groups
        .as_object()
        .ok_or_else(|| shape("Akeyless_Events is not an object of event types".into()))?;
    let mut changes = Vec::new();
    for (group, events) in groups {
        let events = events
            .as_array()
            .ok_or_else(|| shape(format!("Akeyless_Events.{group} is not an array")))?;
        let event_type = group.to_ascii_lowercase().replace('_', "-");
        for (i, event) in events.iter().enumerate() {
            let at = |e: String| shape(format!("Akeyless_Events.{group}[{i}]: {e}"));
            let event = event
                .as_object()
                .ok_or_else(|| at("not an object".into()))?;
            changes.push(SecretChange {
                key: required_name(event, "name").map_err(at)?,
                also: Vec::new(),
                event_type: Some(event_type.clone()),
                event_id: optional_text(event, "event_id").map_err(at)?,
                origin: Some(Origin::new(AkeylessPlace)),
            });
        }
    }
    Ok(changes)
}

fn required_name(event: &Map<String, Value>, field: &str) -> Result<String, String> {
    match event.get(field) {
        Some(Value::String(name)) if !normalize_key(name).trim().is_empty() => Ok(name.clone()),
        Some(Value::String(_)) => Err(format!("{field} is empty")),
        Some(_) => Err(format!("{field} is not a string")),
        None => Err(format!("{field} is missing")),
    }
}

/// Ids come as numbers or strings; both are kept as text.
fn optional_text(event: &Map<String, Value>, field: &str) -> Result<Option<String>, String> {
    match event.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) => Ok(Some(text.clone())),
        Some(Value::Number(number)) => Ok(Some(number.to_string())),
        Some(_) => Err(format!("{field} is neither a string nor a number")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::senders::read::json;
    use crate::senders::{fixture, spelled, store};

    #[test]
    fn its_stores_read_items_by_path_and_only_its_changes() {
        let akeyless = store(serde_json::json!({"akeyless": {"akeylessGWApiURL": "https://gw"}}));
        assert_eq!(spelled(&akeyless, "/x/y"), ["x/y"]);
        assert!(akeyless.accepts(&Origin::new(AkeylessPlace)));
        let vault = Origin::new(crate::senders::vault::VaultMount(None));
        assert!(!akeyless.accepts(&vault));
    }

    fn parse(body: &[u8]) -> Result<Vec<SecretChange>, PayloadError> {
        read(&json(body)?)
    }

    fn keys(changes: &[SecretChange]) -> Vec<&str> {
        changes.iter().map(|c| c.key.as_str()).collect()
    }

    #[test]
    fn array_yields_every_event() {
        let changes = parse(&fixture("akeyless-array.json")).unwrap();
        assert_eq!(
            keys(&changes),
            ["/prod/payments/db-password", "/prod/payments/api-key"]
        );
        assert_eq!(
            changes[0].event_type.as_deref(),
            Some("static-secret-updated")
        );
        assert_eq!(changes[0].event_id.as_deref(), Some("48213"));
        assert_eq!(
            changes[1].event_type.as_deref(),
            Some("rotated-secret-success")
        );
    }

    #[test]
    fn single_event_object() {
        let changes = parse(&fixture("akeyless-single.json")).unwrap();
        assert_eq!(keys(&changes), ["prod/payments/db-password"]);
        assert_eq!(changes[0].event_id.as_deref(), Some("48300"));
    }

    #[test]
    fn grouped_events_take_their_type_from_the_group() {
        let changes = parse(&fixture("akeyless-grouped.json")).unwrap();
        assert_eq!(changes.len(), 2);
        let db = changes
            .iter()
            .find(|c| c.key == "/prod/payments/db-password")
            .unwrap();
        assert_eq!(db.event_type.as_deref(), Some("static-secret-updated"));
        let api = changes
            .iter()
            .find(|c| c.key == "/prod/payments/api-key")
            .unwrap();
        assert_eq!(api.event_type.as_deref(), Some("rotated-secret-success"));
    }

    #[test]
    fn string_event_ids_are_kept() {
        let changes = parse(br#"{"event_id": "e-1", "item_name": "/a"}"#).unwrap();
        assert_eq!(changes[0].event_id.as_deref(), Some("e-1"));
        assert_eq!(changes[0].event_type, None);
    }

    #[test]
    fn errors_say_what_is_wrong() {
        let cases: &[(&[u8], &str)] = &[
            (b"{not json", "body is not valid JSON"),
            (b"", "body is not valid JSON"),
            (b"[]", "body holds no events"),
            (b"42", "unrecognized body"),
            (br#"{"foo": 1}"#, "unrecognized body"),
            (br#"[{"item_name": "/a"}, 7]"#, "event [1] is not an object"),
            (br#"[{"item_name": ""}]"#, "event [0]: item_name is empty"),
            (
                br#"[{"item_name": 5}]"#,
                "event [0]: item_name is not a string",
            ),
            (
                br#"[{"event_type": "x"}]"#,
                "event [0]: item_name is missing",
            ),
            (
                br#"[{"item_name": "/a", "event_id": {}}]"#,
                "event_id is neither",
            ),
            (
                br#"{"Akeyless_Events": []}"#,
                "Akeyless_Events is not an object",
            ),
            (
                br#"{"Akeyless_Events": {"T": {}}}"#,
                "Akeyless_Events.T is not an array",
            ),
            (
                br#"{"Akeyless_Events": {"T": [{"name": " "}]}}"#,
                "Akeyless_Events.T[0]: name is empty",
            ),
            (br#"{"Akeyless_Events": {}}"#, "body holds no events"),
            (b"[\"\xff\"]", "body is not valid JSON"),
        ];
        for (body, expected) in cases {
            let err = parse(body).unwrap_err().to_string();
            assert!(
                err.contains(expected),
                "{:?}: {err}",
                String::from_utf8_lossy(body)
            );
        }
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_crash() {
        let body = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
        assert!(matches!(parse(body.as_bytes()), Err(PayloadError::Json(_))));
    }

    proptest::proptest! {
        #[test]
        fn any_bytes_parse_or_fail_cleanly(body in proptest::collection::vec(proptest::num::u8::ANY, 0..256)) {
            let _ = parse(&body);
        }

        #[test]
        fn every_named_event_is_kept(names in proptest::collection::vec("[a-z/]{0,8}[a-z]", 1..20)) {
            let events: Vec<Value> = names.iter().map(|n| serde_json::json!({"item_name": n})).collect();
            let changes = parse(&serde_json::to_vec(&events).unwrap()).unwrap();
            proptest::prop_assert_eq!(keys(&changes), names.iter().map(String::as_str).collect::<Vec<_>>());
        }
    }
}
