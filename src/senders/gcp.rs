//! GCP Secret Manager event notifications, pushed by a Pub/Sub subscription.

use std::sync::Arc;

use base64::Engine;
use serde_json::Value;

use super::read::*;
use super::{Notification, Origin, PayloadError, Place, Sender, StoreBackend};
use crate::core::external_secret::RemoteKey;

pub struct Gcp;

impl Sender for Gcp {
    fn name(&self) -> &'static str {
        "gcp"
    }

    /// A Pub/Sub push body: `message.attributes`.
    fn recognizes(&self, first: &Value) -> bool {
        first
            .get("message")
            .is_some_and(|m| m.get("attributes").is_some())
    }

    fn parse(&self, body: &Value) -> Result<Notification, PayloadError> {
        parse(body)
    }

    fn read_store(&self, provider: &str, settings: &Value) -> Option<Arc<dyn StoreBackend>> {
        (provider == "gcpsm").then(|| {
            Arc::new(GcpStore {
                project: setting(settings, "projectID"),
            }) as _
        })
    }
}

/// The project of a change, as the event names it: a number or an id.
#[derive(Debug, PartialEq)]
pub struct GcpProject(pub Option<String>);

impl Place for GcpProject {}

/// A `gcpsm` store, reading from a project named by its id.
#[derive(Debug)]
pub struct GcpStore {
    project: Option<String>,
}

impl StoreBackend for GcpStore {
    /// A key may be a full resource name; events name the secret.
    fn spellings(&self, key: &RemoteKey) -> Vec<String> {
        vec![gcp_names(&key.key).0]
    }

    fn accepts(&self, origin: &Origin) -> bool {
        origin
            .place::<GcpProject>()
            .is_some_and(|GcpProject(from)| match (&self.project, from) {
                (Some(id), Some(from)) if id != from => {
                    // Events may name the project by number, stores by id: only two ids or
                    // two numbers can be told apart.
                    let numeric = |s: &str| s.chars().all(|c| c.is_ascii_digit());
                    numeric(id) != numeric(from)
                }
                _ => true,
            })
    }
}

/// The short name, full resource name and project of a GCP secret from
/// `projects/P/secrets/S[/versions/V]` (or a regional `projects/P/locations/L/secrets/S`).
fn gcp_names(secret: &str) -> (String, String, Option<String>) {
    let parts: Vec<&str> = secret.split('/').collect();
    match parts.as_slice() {
        ["projects", project, "secrets", name, ..] => (
            name.to_string(),
            format!("projects/{project}/secrets/{name}"),
            Some(project.to_string()),
        ),
        [
            "projects",
            project,
            "locations",
            location,
            "secrets",
            name,
            ..,
        ] => (
            name.to_string(),
            format!("projects/{project}/locations/{location}/secrets/{name}"),
            Some(project.to_string()),
        ),
        _ => (secret.to_owned(), secret.to_owned(), None),
    }
}

/// GCP Secret Manager event notifications through a Pub/Sub push subscription.
pub fn parse(value: &Value) -> Result<Notification, PayloadError> {
    let message = value
        .get("message")
        .ok_or_else(|| shape("not a Pub/Sub push body: no message"))?;
    let attributes = message
        .get("attributes")
        .ok_or_else(|| shape("message has no attributes"))?;
    let event_type = text(attributes, "eventType")
        .ok_or_else(|| shape("message.attributes.eventType is missing"))?;
    let id = id_of(message, "messageId");
    let mut notification = Notification::default();
    if !matches!(
        event_type,
        "SECRET_VERSION_ADD" | "SECRET_VERSION_ENABLE" | "SECRET_UPDATE" | "SECRET_ROTATE"
    ) {
        notification.ignore(
            id,
            format!("{event_type} does not change the value ESO reads"),
        );
        return Ok(notification);
    }
    let secret = text(attributes, "secretId")
        .ok_or_else(|| shape("message.attributes.secretId is missing"))?;
    if let Some(data) = text(message, "data") {
        base64::engine::general_purpose::STANDARD
            .decode(data)
            .map_err(|e| shape(format!("message.data is not base64: {e}")))?;
    }
    let (short, full, project) = gcp_names(secret);
    let mut change = change(
        &short,
        vec![full],
        Some(event_type),
        id,
        Some(Origin::new(GcpProject(project))),
    );
    // Pub/Sub message ids are unique within their topic; the push names its subscription.
    change.scope = text(value, "subscription").map(str::to_owned);
    notification.changes.push(change);
    Ok(notification)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::senders::{fixture, spelled, store};
    use serde_json::json;

    #[test]
    fn keys_are_spelled_by_their_secret_name() {
        let gcp = store(json!({"gcpsm": {"projectID": "p"}}));
        assert_eq!(
            spelled(&gcp, "projects/p/secrets/db/versions/latest"),
            ["db"]
        );
        assert_eq!(spelled(&gcp, "projects/p/locations/eu/secrets/db"), ["db"]);
        assert_eq!(spelled(&gcp, "db"), ["db"]);
    }

    #[test]
    fn accepts_only_changes_from_its_project() {
        let gcp = |project: &str| Origin::new(GcpProject(Some(project.into())));
        let shop = store(json!({"gcpsm": {"projectID": "shop-prod"}}));
        assert!(shop.accepts(&gcp("shop-prod")));
        assert!(
            shop.accepts(&gcp("123456")),
            "a number cannot be compared to an id"
        );
        assert!(!shop.accepts(&gcp("shop-dev")));
    }

    fn gcp(body: &[u8]) -> Result<Notification, PayloadError> {
        parse(&json(body)?)
    }

    #[test]
    fn gcp_pubsub_push() {
        let n = gcp(&fixture("gcp-pubsub-push.json")).unwrap();
        assert_eq!(n.changes[0].key, "db-password");
        assert_eq!(
            n.changes[0].also,
            ["projects/123456789/secrets/db-password"]
        );
        assert_eq!(n.changes[0].event_id.as_deref(), Some("9876543210"));
        let destroyed = gcp(br#"{"message": {"attributes": {"eventType": "SECRET_VERSION_DESTROY", "secretId": "projects/1/secrets/x"}, "messageId": "1"}}"#).unwrap();
        assert!(destroyed.changes.is_empty() && destroyed.ignored.len() == 1);
        assert!(gcp(br#"{"message": {"attributes": {"eventType": "SECRET_VERSION_ADD", "secretId": "x"}, "data": "%%%"}}"#).is_err());
    }
}
