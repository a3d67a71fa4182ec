//! Akeyless Event Center: the bodies its webhook forwarder sends, and which event types
//! announce a new value.
//!
//! The forms, each kept as a fixture under `tests/fixtures/events/` with its source:
//! - grouped by event type under a wrapper, as Akeyless's Event Center page shows forwarded
//!   events: `{"Akeyless_Events": {"Certificate_Expired": [{"name": "<item>", "item_id": …}]}}`
//!   (earlier versions of that page spell the wrapper and the groups with spaces, `"Akeyless
//!   Events"`, `"Certificate About to Expire"`; group names may be in any case, with `_`, `-` or
//!   spaces);
//! - the same groups without the wrapper (the page's certificate example);
//! - one forwarded event, `{"event_type": "static-secret-updated", "item_name": "<item>", …}`,
//!   or an array of them.
//!
//! An entry names its item's full path with `name` (grouped) or `item_name` (events); either
//! is read in both forms.

use std::sync::Arc;

use serde_json::{Map, Value};

use super::{
    Ignored, Notification, Origin, PayloadError, Place, SecretChange, Sender, StoreBackend,
};
use crate::core::external_secret::normalize_key;

pub struct Akeyless;

impl Sender for Akeyless {
    fn name(&self) -> &'static str {
        "akeyless"
    }

    /// A forwarded event (`item_name`), a wrapper of groups, or groups named after Akeyless
    /// event types.
    fn recognizes(&self, first: &Value) -> bool {
        let Some(object) = first.as_object() else {
            return false;
        };
        object.contains_key("item_name")
            || object.keys().any(|key| is_wrapper(key))
            || object.iter().any(|(key, value)| {
                value.is_array() && Kind::of(&event_type_of_group(key)).is_known()
            })
    }

    fn parse(&self, body: &Value) -> Result<Notification, PayloadError> {
        read(body)
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

/// What an event type says of its item's value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// The item holds a new value: refresh.
    NewValue,
    /// A notice that changes no value (a failure, a reminder, an access request…): ignored,
    /// with this reason.
    Notice(&'static str),
    /// A type Akeyless does not document (or none): refreshed, since a refresh too many costs
    /// one re-sync and a missed one leaves a stale secret.
    Unknown,
}

/// The event types that announce a new value in the item.
const NEW_VALUE: [&str; 4] = [
    "static-secret-updated",
    "rotated-secret-success",
    // The rotation happened in Akeyless; only some of its linked targets failed.
    "rotated-secret-partial-failure",
    // A certificate was issued and delivered: the item holds it.
    "certificate-provisioning-success",
];

/// Every other event type Akeyless's Event Center documents, by why it changes no value.
const NOTICES: [(&str, &[&str]); 12] = [
    (
        "a failed rotation; the value is unchanged",
        &["rotated-secret-failure"],
    ),
    (
        "a dynamic secret failure; no stored value changed",
        &["dynamic-secret-failure"],
    ),
    ("a failed sync to an external target", &["secret-sync"]),
    (
        "a failed certificate issuance or provisioning",
        &["certificate-error", "certificate-provisioning-failure"],
    ),
    (
        "an expiry reminder",
        &[
            "certificate-pending-expiration",
            "kmip-cert-pending-expiration",
            // The group name an earlier Event Center page used for the first.
            "certificate-about-to-expire",
        ],
    ),
    (
        "an expiry notice",
        &["certificate-expired", "kmip-cert-expired"],
    ),
    (
        "a reminder of a rotation to come",
        &["next-automatic-rotation"],
    ),
    (
        "a usage report",
        &[
            "usage",
            "usage-unused",
            "rotation-usage",
            "usage-unrotated",
            "usage-report",
        ],
    ),
    (
        "an access request",
        &[
            "request-access",
            "access-request-approved",
            "access-request-denied",
            "access-request-expired",
            "apply-justification",
        ],
    ),
    (
        "an authentication notice",
        &[
            "auth-method-pending-expiration",
            "auth-method-expired",
            "email-auth-method-approved",
            "uid-rotation-failure",
            "multi-auth-failure",
        ],
    ),
    (
        "an account notice",
        &[
            "rate-limiting",
            "locked-user",
            "unlocked-user",
            "password-reset",
        ],
    ),
    (
        "a gateway notice",
        &[
            "gateway-inactive",
            "gateway-certificate-about-to-expire",
            "gateway-certificate-expired",
        ],
    ),
];

impl Kind {
    fn of(event_type: &str) -> Kind {
        if NEW_VALUE.contains(&event_type) {
            return Kind::NewValue;
        }
        NOTICES
            .iter()
            .find(|(_, types)| types.contains(&event_type))
            .map_or(Kind::Unknown, |(why, _)| Kind::Notice(why))
    }

    fn is_known(self) -> bool {
        self != Kind::Unknown
    }
}

/// An event type as a group name spells it: `Static_Secret_Updated`, `certificate expired`
/// and `usage_unused` are `static-secret-updated`, `certificate-expired`, `usage-unused`.
fn event_type_of_group(group: &str) -> String {
    group.trim().to_ascii_lowercase().replace(['_', ' '], "-")
}

/// The key that holds the groups, in the spellings Akeyless's pages have used
/// (`Akeyless_Events`, `Akeyless Events`, and an early page's `Akeyelss Events`).
fn is_wrapper(key: &str) -> bool {
    matches!(
        event_type_of_group(key).as_str(),
        "akeyless-events" | "akeyelss-events"
    )
}

const UNRECOGNIZED: &str = "unrecognized body: expected an Akeyless event object with \
item_name, an array of them, {\"Akeyless_Events\": {\"<Event_Type>\": [{\"name\": …}]}}, or \
the same groups without the Akeyless_Events wrapper";

/// Reads every event in `body`. One malformed event rejects the whole body, so the sender
/// learns about it instead of having part of its batch silently dropped.
pub fn read(value: &Value) -> Result<Notification, PayloadError> {
    let mut notification = Notification::default();
    match value {
        Value::Array(events) => {
            for (i, event) in events.iter().enumerate() {
                let event = event
                    .as_object()
                    .ok_or_else(|| shape(format!("event [{i}] is not an object")))?;
                let at = |e: String| shape(format!("event [{i}]: {e}"));
                let event = forwarded_event(event, None, ["item_name", "name"]).map_err(at)?;
                notification.add_event(event);
            }
        }
        Value::Object(object) if object.contains_key("item_name") => {
            let event = forwarded_event(object, None, ["item_name", "name"]).map_err(shape)?;
            notification.add_event(event);
        }
        Value::Object(object) => {
            let wrapped = object.iter().find(|(key, _)| is_wrapper(key));
            let (path, groups) = match wrapped {
                Some((wrapper, groups)) => {
                    let groups = groups.as_object().ok_or_else(|| {
                        shape(format!("{wrapper} is not an object of event types"))
                    })?;
                    (format!("{wrapper}."), groups)
                }
                None if !object.is_empty() && object.values().all(Value::is_array) => {
                    (String::new(), object)
                }
                None => return Err(shape(UNRECOGNIZED.to_owned())),
            };
            for (group, events) in groups {
                let events = events
                    .as_array()
                    .ok_or_else(|| shape(format!("{path}{group} is not an array")))?;
                let event_type = event_type_of_group(group);
                for (i, event) in events.iter().enumerate() {
                    let at = |e: String| shape(format!("{path}{group}[{i}]: {e}"));
                    let event = event
                        .as_object()
                        .ok_or_else(|| at("not an object".into()))?;
                    let event = forwarded_event(event, Some(&event_type), ["name", "item_name"])
                        .map_err(at)?;
                    notification.add_event(event);
                }
            }
        }
        _ => return Err(shape(UNRECOGNIZED.to_owned())),
    }
    if notification.changes.is_empty() && notification.ignored.is_empty() {
        return Err(PayloadError::Empty);
    }
    Ok(notification)
}

fn shape(message: String) -> PayloadError {
    PayloadError::Shape(message)
}

/// One event, read: its item, type and id.
struct Event {
    change: SecretChange,
    kind: Kind,
}

/// An event's item (from the first of `names` it has), type (its own `event_type`, else its
/// group's) and id.
fn forwarded_event(
    event: &Map<String, Value>,
    group: Option<&str>,
    names: [&str; 2],
) -> Result<Event, String> {
    let key = match names.iter().find(|name| event.contains_key(**name)) {
        Some(name) => required_name(event, name)?,
        None => return Err(format!("{} is missing", names[0])),
    };
    let event_type = optional_text(event, "event_type")?.or_else(|| group.map(str::to_owned));
    let kind = event_type.as_deref().map_or(Kind::Unknown, Kind::of);
    Ok(Event {
        change: SecretChange {
            key,
            event_type,
            event_id: optional_text(event, "event_id")?,
            origin: Some(Origin::new(AkeylessPlace)),
            ..SecretChange::default()
        },
        kind,
    })
}

impl Notification {
    /// Files an event as a change or, for a notice, as ignored.
    fn add_event(&mut self, event: Event) {
        let Event { change, kind } = event;
        match kind {
            Kind::NewValue => self.changes.push(change),
            Kind::Notice(why) => self.ignored.push(Ignored {
                event_id: change.event_id,
                reason: format!(
                    "{}: {why}",
                    change.event_type.as_deref().unwrap_or_default()
                ),
            }),
            Kind::Unknown => {
                tracing::warn!(
                    event_type = change.event_type.as_deref().unwrap_or("(none)"),
                    item = %change.key,
                    "an Akeyless event type not known to change or keep a value: refreshing"
                );
                self.changes.push(change);
            }
        }
    }
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
        read(&json(body)?).map(|notification| notification.changes)
    }

    fn notification(file: &str) -> Notification {
        read(&json(&fixture(file)).unwrap()).unwrap()
    }

    /// The reasons events were ignored for, sorted.
    fn reasons(notification: &Notification) -> Vec<&str> {
        let mut reasons: Vec<&str> = notification
            .ignored
            .iter()
            .map(|i| i.reason.as_str())
            .collect();
        reasons.sort();
        reasons
    }

    #[test]
    fn the_documented_grouped_form_is_read_and_its_notices_ignored() {
        let docs = notification("akeyless-docs-grouped.json");
        assert!(docs.changes.is_empty());
        assert_eq!(
            reasons(&docs),
            [
                "certificate-expired: an expiry notice",
                "certificate-expired: an expiry notice",
                "certificate-pending-expiration: an expiry reminder",
                "certificate-pending-expiration: an expiry reminder",
                "request-access: an access request",
            ]
        );
        let unwrapped = notification("akeyless-docs-certificate.json");
        assert!(unwrapped.changes.is_empty());
        assert_eq!(
            reasons(&unwrapped),
            ["certificate-expired: an expiry notice"]
        );
    }

    #[test]
    fn earlier_spellings_and_unwrapped_groups_are_read() {
        let spaces = notification("akeyless-docs-spaces.json");
        assert_eq!(keys(&spaces.changes), ["/prod/payments/db-password"]);
        assert_eq!(
            spaces.changes[0].event_type.as_deref(),
            Some("static-secret-updated")
        );
        assert_eq!(spaces.ignored.len(), 2);
        let unwrapped = notification("akeyless-groups-unwrapped.json");
        assert_eq!(keys(&unwrapped.changes), ["/prod/payments/db-password"]);
        assert_eq!(
            reasons(&unwrapped),
            ["rotated-secret-failure: a failed rotation; the value is unchanged"]
        );
        let hyphenated = notification("akeyless-grouped-hyphenated.json");
        assert_eq!(keys(&hyphenated.changes), ["/prod/payments/api-key"]);
        assert_eq!(
            hyphenated.changes[0].event_type.as_deref(),
            Some("rotated-secret-success")
        );
    }

    #[test]
    fn only_types_that_announce_a_new_value_refresh() {
        let event = |event_type: &str| {
            read(&serde_json::json!({"event_id": "1", "event_type": event_type, "item_name": "/a"}))
                .unwrap()
        };
        for refreshing in [
            "static-secret-updated",
            "rotated-secret-success",
            "rotated-secret-partial-failure",
            "certificate-provisioning-success",
        ] {
            let n = event(refreshing);
            assert_eq!(keys(&n.changes), ["/a"], "{refreshing}");
        }
        for notice in [
            "rotated-secret-failure",
            "dynamic-secret-failure",
            "certificate-pending-expiration",
            "certificate-expired",
            "request-access",
            "next-automatic-rotation",
            "usage",
            "gateway-inactive",
        ] {
            let n = event(notice);
            assert!(n.changes.is_empty(), "{notice}");
            assert_eq!(n.ignored[0].event_id.as_deref(), Some("1"));
            assert!(
                n.ignored[0].reason.starts_with(&format!("{notice}: ")),
                "{notice}"
            );
        }
        let unknown = event("secret-teleported");
        assert_eq!(keys(&unknown.changes), ["/a"], "an unknown type refreshes");
        let notices = NOTICES.iter().flat_map(|(_, types)| types.iter());
        let every: Vec<&str> = NEW_VALUE.iter().chain(notices).copied().collect();
        let mut unique = every.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), every.len(), "each type once");
    }

    /// Every type Akeyless's Event Center page and its API reference list, with what it should
    /// do in `payload.expected`.
    #[test]
    fn every_documented_type_refreshes_or_is_ignored_as_the_fixture_says() {
        let body = json(&fixture("akeyless-every-type.json")).unwrap();
        let n = read(&body).unwrap();
        let events = body.as_array().unwrap();
        for event in events {
            let id = event["event_id"].to_string();
            let refreshed = n.changes.iter().any(|c| c.event_id.as_deref() == Some(&id));
            let ignored = n.ignored.iter().any(|i| i.event_id.as_deref() == Some(&id));
            let expected = event["payload"]["expected"].as_str().unwrap();
            let got = match (refreshed, ignored) {
                (true, false) => "refresh",
                (false, true) => "ignored",
                _ => "both or neither",
            };
            assert_eq!(got, expected, "{}", event["event_type"]);
        }
        let listed = NEW_VALUE.len() + NOTICES.iter().map(|(_, t)| t.len()).sum::<usize>();
        assert_eq!(
            listed,
            events.len() + 1,
            "the fixture lists every type but one alias"
        );
    }

    #[test]
    fn groups_are_recognized_by_their_names_on_the_shared_route() {
        let recognized = |body: &str| Akeyless.recognizes(&serde_json::from_str(body).unwrap());
        assert!(recognized(r#"{"Certificate_Expired": [{"name": "/c"}]}"#));
        assert!(recognized(r#"{"Akeyless Events": {}}"#));
        assert!(recognized(r#"{"item_name": "/a"}"#));
        assert!(!recognized(r#"{"records": [{"name": "/c"}]}"#));
        assert!(!recognized(r#"{"static-secret-updated": "not a group"}"#));
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
            (
                br#"{"foo": 1}"#,
                "the same groups without the Akeyless_Events wrapper",
            ),
            (
                br#"{"T": [{"item_name": "/a"}], "x": 1}"#,
                "unrecognized body",
            ),
            (br#"{"T": [{"name": 3}]}"#, "T[0]: name is not a string"),
            (
                br#"{"Akeyless Events": {"T": 1}}"#,
                "Akeyless Events.T is not an array",
            ),
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
