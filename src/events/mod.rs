//! Webhook bodies from secret managers, read into "this secret changed".

pub mod akeyless;
pub mod providers;
pub mod scopes;

use serde::Serialize;
use serde_json::Value;

/// One secret that changed, as a provider named it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretChange {
    /// The secret's name or path, exactly as the event gave it.
    pub key: String,
    /// Other spellings ExternalSecrets may use for the same secret (an AWS ARN, a GCP resource
    /// name, a Vault path with its mount).
    pub also: Vec<String>,
    pub event_type: Option<String>,
    pub event_id: Option<String>,
    /// Which provider announced it, and where; `None` when the sender does not say (generic
    /// bodies, CloudEvents), which matches every store.
    pub origin: Option<Origin>,
}

/// Where a change happened, as far as its event tells: only ExternalSecrets whose store reads
/// from there are refreshed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    Akeyless,
    Aws {
        region: Option<String>,
    },
    /// `project` as the event names it: a number or an id.
    Gcp {
        project: Option<String>,
    },
    Azure {
        vault: Option<String>,
    },
    Vault {
        mount: Option<String>,
    },
    /// Doppler names a project's config, not a secret: every store reading it is concerned.
    Doppler {
        project: String,
        config: String,
    },
    /// Infisical names an environment's folder.
    Infisical {
        environment: String,
        path: String,
    },
}

impl Origin {
    /// Whether the change concerns a whole scope rather than one key.
    pub fn is_scope(&self) -> bool {
        matches!(self, Origin::Doppler { .. } | Origin::Infisical { .. })
    }
}

/// An event acknowledged but not acted on, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Ignored {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event_id: Option<String>,
    pub reason: String,
}

/// What one webhook body says.
#[derive(Debug, Default)]
pub struct Notification {
    pub changes: Vec<SecretChange>,
    pub ignored: Vec<Ignored>,
    /// A handshake to answer instead of a report (Event Grid's subscription validation).
    pub reply: Option<Value>,
    /// An SNS subscription asks to be confirmed at this URL.
    pub confirm_subscription: Option<String>,
}

/// Why a body could not be read; each becomes a 400 that says so.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PayloadError {
    #[error("body is not valid JSON: {0}")]
    Json(String),
    #[error("{0}")]
    Shape(String),
    #[error("body holds no events")]
    Empty,
}

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
