//! Azure Key Vault events through Event Grid, in the Event Grid or the CloudEvents schema.

use serde_json::Value;

use super::read::*;
use super::{Notification, Origin, PayloadError, Sender};

pub struct Azure;

impl Sender for Azure {
    fn name(&self) -> &'static str {
        "azure"
    }

    /// An Event Grid event, or a Key Vault CloudEvent.
    fn recognizes(&self, first: &Value) -> bool {
        text(first, "eventType").is_some_and(|t| t.starts_with("Microsoft."))
            || text(first, "type").is_some_and(|t| t.starts_with("Microsoft.KeyVault"))
    }

    fn parse(&self, body: &Value) -> Result<Notification, PayloadError> {
        parse(body)
    }
}

const AZURE_CHANGED: [&str; 2] = [
    "Microsoft.KeyVault.SecretNewVersionCreated",
    "Microsoft.KeyVault.SecretNearExpiry",
];

/// Azure Key Vault through Event Grid, in the Event Grid schema (an array, with its
/// subscription-validation handshake) or the CloudEvents schema.
pub fn parse(value: &Value) -> Result<Notification, PayloadError> {
    let events = one_or_many(value);
    let mut notification = Notification::default();
    for (i, event) in events.iter().enumerate() {
        let at = |e: &str| shape(format!("event [{i}]: {e}"));
        let event_type = text(event, "eventType")
            .or_else(|| text(event, "type"))
            .ok_or_else(|| at("no eventType or type"))?;
        let id = id_of(event, "id");
        if event_type == "Microsoft.EventGrid.SubscriptionValidationEvent" {
            let code = event
                .get("data")
                .and_then(|d| text(d, "validationCode"))
                .ok_or_else(|| at("validation event without data.validationCode"))?;
            notification.reply = Some(serde_json::json!({"validationResponse": code}));
            continue;
        }
        // Only the new version changes the value; SecretNearExpiry and the like are reminders.
        if event_type != AZURE_CHANGED[0] {
            notification.ignore(id, format!("{event_type} does not change a secret's value"));
            continue;
        }
        let data = event.get("data").ok_or_else(|| at("no data"))?;
        let name = text(data, "ObjectName")
            .or_else(|| text(event, "subject"))
            .ok_or_else(|| at("names no secret"))?;
        let also = vec![format!("secret/{name}")];
        let vault = text(data, "VaultName")
            .or_else(|| {
                let source = text(event, "topic").or_else(|| text(event, "source"))?;
                source.rsplit_once("/vaults/").map(|(_, vault)| vault)
            })
            .map(str::to_owned);
        notification.changes.push(change(
            name,
            also,
            Some(event_type),
            id,
            Some(Origin::Azure { vault }),
        ));
    }
    Ok(notification)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::senders::fixture;

    fn azure(body: &[u8]) -> Result<Notification, PayloadError> {
        parse(&json(body)?)
    }

    #[test]
    fn azure_event_grid_and_cloudevents() {
        let n = azure(&fixture("azure-eventgrid.json")).unwrap();
        assert_eq!(n.changes[0].key, "db-password");
        assert_eq!(n.changes[0].also, ["secret/db-password"]);
        let ce = azure(&fixture("azure-cloudevent.json")).unwrap();
        assert_eq!(ce.changes[0].key, "db-password");
        let validation = azure(&fixture("azure-eventgrid-validation.json")).unwrap();
        assert_eq!(
            validation.reply.unwrap()["validationResponse"],
            "512d38b6-c7b8-40c8-89fe-f46f9e9622b6"
        );
        let expiring = azure(br#"[{"id": "1", "eventType": "Microsoft.KeyVault.SecretNearExpiry", "data": {"ObjectName": "x"}}]"#).unwrap();
        assert!(expiring.changes.is_empty() && expiring.ignored.len() == 1);
    }
}
