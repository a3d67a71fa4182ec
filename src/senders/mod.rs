//! The senders: each secret manager's webhook bodies, read into "this secret changed".

pub mod akeyless;
pub mod providers;
pub mod scopes;
pub mod sns;

use serde_json::Value;

pub use crate::core::change::{Ignored, Notification, Origin, PayloadError, SecretChange};

/// The senders eso-refresher understands, each at `/webhook/<name>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Provider {
    Akeyless,
    Aws,
    Gcp,
    Azure,
    Vault,
    CloudEvents,
    Generic,
    Doppler,
    Infisical,
}

impl Provider {
    pub const ALL: [Provider; 9] = [
        Provider::Akeyless,
        Provider::Aws,
        Provider::Gcp,
        Provider::Azure,
        Provider::Vault,
        Provider::CloudEvents,
        Provider::Generic,
        Provider::Doppler,
        Provider::Infisical,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Provider::Akeyless => "akeyless",
            Provider::Aws => "aws",
            Provider::Gcp => "gcp",
            Provider::Azure => "azure",
            Provider::Vault => "vault",
            Provider::CloudEvents => "cloudevents",
            Provider::Generic => "generic",
            Provider::Doppler => "doppler",
            Provider::Infisical => "infisical",
        }
    }

    pub fn from_name(name: &str) -> Option<Provider> {
        Provider::ALL.into_iter().find(|p| p.name() == name)
    }

    /// Reads a body of this provider's.
    pub fn parse(self, body: &[u8]) -> Result<Notification, PayloadError> {
        let notification = match self {
            Provider::Akeyless => Notification {
                changes: akeyless::parse(body)?,
                ..Notification::default()
            },
            Provider::Aws => providers::aws(body)?,
            Provider::Gcp => providers::gcp(body)?,
            Provider::Azure => providers::azure(body)?,
            Provider::Vault => providers::vault(body)?,
            Provider::CloudEvents => providers::cloudevents(body)?,
            Provider::Generic => providers::generic(body)?,
            Provider::Doppler => scopes::doppler(body)?,
            Provider::Infisical => scopes::infisical(body)?,
        };
        let says_nothing = notification.changes.is_empty()
            && notification.ignored.is_empty()
            && notification.reply.is_none()
            && notification.confirm_subscription.is_none();
        if says_nothing {
            return Err(PayloadError::Empty);
        }
        Ok(notification)
    }

    /// Which provider sent `body`, from its shape; Akeyless when nothing else fits (so that
    /// its parser explains what it expected).
    pub fn detect(body: &[u8]) -> Provider {
        let Ok(value) = serde_json::from_slice::<Value>(body) else {
            return Provider::Akeyless;
        };
        let first = match &value {
            Value::Array(items) => items.first().cloned().unwrap_or(Value::Null),
            other => other.clone(),
        };
        let has = |field: &str| first.get(field).is_some();
        let text = |field: &str| first.get(field).and_then(Value::as_str).unwrap_or_default();
        if has("item_name") || has("Akeyless_Events") {
            Provider::Akeyless
        } else if text("source") == "aws.secretsmanager" || has("TopicArn") {
            Provider::Aws
        } else if first
            .get("message")
            .is_some_and(|m| m.get("attributes").is_some())
        {
            Provider::Gcp
        } else if text("eventType").starts_with("Microsoft.")
            || text("type").starts_with("Microsoft.KeyVault")
        {
            Provider::Azure
        } else if first
            .get("data")
            .is_some_and(|d| d.get("event_type").is_some())
        {
            Provider::Vault
        } else if text("type").starts_with("config.") && has("config") {
            Provider::Doppler
        } else if first
            .get("project")
            .is_some_and(|p| p.get("workspaceId").is_some())
        {
            Provider::Infisical
        } else if has("specversion") {
            Provider::CloudEvents
        } else if has("keys") {
            Provider::Generic
        } else {
            Provider::Akeyless
        }
    }
}

/// A sample body from tests/fixtures/events, for the parsers' tests.
#[cfg(test)]
pub(crate) fn fixture(name: &str) -> Vec<u8> {
    let path = format!(
        "{}/tests/fixtures/events/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_fixture_is_recognized() {
        let expected = [
            ("akeyless-array.json", Provider::Akeyless),
            ("akeyless-single.json", Provider::Akeyless),
            ("akeyless-grouped.json", Provider::Akeyless),
            ("aws-eventbridge-cloudtrail.json", Provider::Aws),
            ("aws-secret-label-updated.json", Provider::Aws),
            ("aws-sns-notification.json", Provider::Aws),
            ("aws-sns-subscription-confirmation.json", Provider::Aws),
            ("gcp-pubsub-push.json", Provider::Gcp),
            ("azure-eventgrid.json", Provider::Azure),
            ("azure-eventgrid-validation.json", Provider::Azure),
            ("azure-cloudevent.json", Provider::Azure),
            ("vault-kv-v2-event.json", Provider::Vault),
            ("cloudevent-structured.json", Provider::CloudEvents),
            ("doppler.json", Provider::Doppler),
            ("infisical.json", Provider::Infisical),
        ];
        for (file, provider) in expected {
            let body = fixture(file);
            assert_eq!(Provider::detect(&body), provider, "{file}");
            assert!(provider.parse(&body).is_ok(), "{file}");
        }
    }

    #[test]
    fn names_round_trip() {
        for provider in Provider::ALL {
            assert_eq!(Provider::from_name(provider.name()), Some(provider));
        }
        assert_eq!(Provider::from_name("onepassword"), None);
    }
}
