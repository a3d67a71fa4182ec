//! Azure Key Vault events through Event Grid, in the Event Grid or the CloudEvents schema.

use std::sync::Arc;

use serde_json::Value;

use super::read::*;
use super::{Notification, Origin, PayloadError, Place, Sender, StoreBackend};
use crate::core::external_secret::RemoteKey;

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

    fn read_store(&self, provider: &str, settings: &Value) -> Option<Arc<dyn StoreBackend>> {
        (provider == "azurekv").then(|| {
            let vault = setting(settings, "vaultUrl").and_then(|url| vault_name(&url));
            Arc::new(AzureStore { vault }) as _
        })
    }
}

/// The vault of a change, where the event names it.
#[derive(Debug, PartialEq)]
pub struct AzureVault(pub Option<String>);

impl Place for AzureVault {}

/// An `azurekv` store.
#[derive(Debug)]
pub struct AzureStore {
    /// The vault's name: the first label of `vaultUrl`'s host, lower case.
    vault: Option<String>,
}

impl StoreBackend for AzureStore {
    /// ESO reads `secret/<name>` as the secret `<name>`. Key Vault compares names without
    /// regard to case ("object identifiers … should always be compared as case-insensitive
    /// strings"), so a name is spelled in lower case, as changes name it too.
    fn spellings(&self, key: &RemoteKey) -> Vec<String> {
        let name = key.key.strip_prefix("secret/").unwrap_or(&key.key);
        vec![name.to_lowercase()]
    }

    /// Vault names are case-insensitive.
    fn accepts(&self, origin: &Origin) -> bool {
        origin
            .place::<AzureVault>()
            .is_some_and(|AzureVault(from)| match (&self.vault, from) {
                (Some(vault), Some(from)) => vault.eq_ignore_ascii_case(from),
                _ => true,
            })
    }
}

/// `https://my-vault.vault.azure.net/` → `my-vault`.
fn vault_name(url: &str) -> Option<String> {
    let host = url.split("://").nth(1).unwrap_or(url);
    let label = host.split(['.', '/', ':']).next()?;
    (!label.is_empty()).then(|| label.to_ascii_lowercase())
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
        // Names are case-insensitive: stores spell them in lower case.
        let also = vec![format!("secret/{name}"), name.to_lowercase()];
        let vault = text(data, "VaultName")
            .or_else(|| {
                let source = text(event, "topic").or_else(|| text(event, "source"))?;
                source.rsplit_once("/vaults/").map(|(_, vault)| vault)
            })
            .map(str::to_owned);
        let mut change = change(
            name,
            also,
            Some(event_type),
            id,
            Some(Origin::new(AzureVault(vault))),
        );
        // Event Grid ids are unique within their topic (the CloudEvents schema's source).
        change.scope = text(event, "topic")
            .or_else(|| text(event, "source"))
            .map(str::to_owned);
        notification.changes.push(change);
    }
    Ok(notification)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::senders::{fixture, spelled, store};
    use serde_json::json;

    #[test]
    fn reads_its_stores_vault_and_spells_keys() {
        let azure = store(json!({"azurekv": {"vaultUrl": "https://My-Vault.vault.azure.net/"}}));
        assert_eq!(
            format!("{:?}", azure.reading()),
            r#"AzureStore { vault: Some("my-vault") }"#
        );
        assert_eq!(spelled(&azure, "secret/db"), ["db"]);
        assert_eq!(spelled(&azure, "cert/tls"), ["cert/tls"]);
        assert_eq!(spelled(&azure, "DB-Token"), ["db-token"]);
    }

    #[test]
    fn accepts_only_changes_from_its_vault() {
        let vault = |name: &str| Origin::new(AzureVault(Some(name.into())));
        let prod = store(json!({"azurekv": {"vaultUrl": "https://kv-prod.vault.azure.net"}}));
        assert!(prod.accepts(&vault("KV-Prod")));
        assert!(!prod.accepts(&vault("kv-dev")));
    }

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
