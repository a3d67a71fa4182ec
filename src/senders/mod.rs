//! The senders: one module per secret manager (or protocol), each reading its own webhook
//! bodies into "this secret changed". [`SENDERS`] lists them once; routes, detection on
//! `POST /webhook` and per-route settings all come from that list.
//!
//! Adding a sender: a module here with a type implementing [`Sender`], and one line in
//! [`SENDERS`].

pub mod akeyless;
pub mod aws;
pub mod azure;
pub mod cloudevents;
pub mod doppler;
pub mod gcp;
pub mod generic;
pub mod infisical;
mod read;
pub mod vault;

use std::fmt;

use serde_json::Value;

pub use crate::core::change::{Ignored, Notification, Origin, PayloadError, SecretChange};
pub use aws::sns;

/// A secret manager, or a protocol, that announces changes by webhook.
pub trait Sender: Sync {
    /// Its route, `POST /webhook/<name>`, and its settings' suffix, `WEBHOOK_AUTH_<NAME>`.
    fn name(&self) -> &'static str;

    /// Whether a body (its first event, for an array) has this sender's shape: how
    /// `POST /webhook` tells senders apart.
    fn recognizes(&self, first: &Value) -> bool;

    /// Reads a body of this sender's, parsed once by the caller.
    fn parse(&self, body: &Value) -> Result<Notification, PayloadError>;

    /// A shape other senders' bodies may have too (an Azure or Vault event is also a
    /// CloudEvent): `POST /webhook` tries such senders after all the others.
    fn shared_shape(&self) -> bool {
        false
    }
}

/// Every sender.
pub const SENDERS: [Provider; 9] = [
    Provider(&akeyless::Akeyless),
    Provider(&aws::Aws),
    Provider(&gcp::Gcp),
    Provider(&azure::Azure),
    Provider(&vault::Vault),
    Provider(&cloudevents::CloudEvents),
    Provider(&generic::Generic),
    Provider(&doppler::Doppler),
    Provider(&infisical::Infisical),
];

/// One of [`SENDERS`].
#[derive(Clone, Copy)]
pub struct Provider(&'static dyn Sender);

impl PartialEq for Provider {
    fn eq(&self, other: &Provider) -> bool {
        self.name() == other.name()
    }
}

impl Eq for Provider {}

impl fmt::Debug for Provider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl Provider {
    pub const AKEYLESS: Provider = Provider(&akeyless::Akeyless);
    pub const AWS: Provider = Provider(&aws::Aws);
    pub const CLOUDEVENTS: Provider = Provider(&cloudevents::CloudEvents);
    pub const ALL: [Provider; SENDERS.len()] = SENDERS;

    pub fn name(self) -> &'static str {
        self.0.name()
    }

    pub fn from_name(name: &str) -> Option<Provider> {
        SENDERS.into_iter().find(|p| p.name() == name)
    }

    /// Reads a body of this sender's.
    pub fn parse(self, body: &Value) -> Result<Notification, PayloadError> {
        let notification = self.0.parse(body)?;
        let says_nothing = notification.changes.is_empty()
            && notification.ignored.is_empty()
            && notification.reply.is_none()
            && notification.confirm_subscription.is_none();
        if says_nothing {
            return Err(PayloadError::Empty);
        }
        Ok(notification)
    }

    /// Which sender a body comes from, by its shape; Akeyless when none fits (so that its
    /// parser explains what it expected).
    pub fn detect(body: &Value) -> Provider {
        let first = match body {
            Value::Array(items) => items.first().unwrap_or(&Value::Null),
            other => other,
        };
        let shared = |sender: &Provider| sender.0.shared_shape();
        let mut specific_first = SENDERS
            .into_iter()
            .filter(|s| !shared(s))
            .chain(SENDERS.into_iter().filter(shared));
        specific_first
            .find(|sender| sender.0.recognizes(first))
            .unwrap_or(Provider::AKEYLESS)
    }
}

/// Parses a body as JSON, once for the whole request.
pub fn json(body: &[u8]) -> Result<Value, PayloadError> {
    read::json(body)
}

/// What a delivery says once read.
#[derive(Debug)]
pub enum Reading {
    Notification(Notification),
    /// A handshake to answer as is (Event Grid's validation, an SNS confirmation).
    Reply(Value),
}

/// Why a delivery cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error(transparent)]
    Payload(#[from] PayloadError),
    #[error(transparent)]
    Sns(#[from] sns::SnsError),
}

/// Where deliveries are read: recognized once, parsed once. SNS messages are checked (and
/// subscriptions confirmed) before anything in them is believed.
pub struct Inbox {
    sns: sns::SnsGate,
}

impl Inbox {
    pub fn new(sns: sns::SnsSettings) -> Inbox {
        Inbox {
            sns: sns::SnsGate::new(sns),
        }
    }

    /// Reads a delivery to `route` (`None`: `POST /webhook`, any sender by its shape), whose
    /// request headers `header` looks up by lower-case name.
    pub async fn read(
        &self,
        route: Option<Provider>,
        header: impl Fn(&str) -> Option<String>,
        body: &[u8],
    ) -> Result<Reading, ReadError> {
        let anyone = |provider: Provider| route.is_none_or(|r| r == provider);
        // A CloudEvent in binary mode is in the `ce-*` headers, not the body.
        if anyone(Provider::CLOUDEVENTS) && header("ce-specversion").is_some() {
            let mut event = serde_json::Map::new();
            for name in ["specversion", "type", "source", "id", "subject"] {
                if let Some(value) = header(&format!("ce-{name}")) {
                    event.insert(name.to_owned(), value.into());
                }
            }
            let mut notification = Notification::default();
            notification.push_cloudevent(&event, 0)?;
            return Ok(Reading::Notification(notification));
        }
        let value = json(body);
        let provider = route.unwrap_or_else(|| match &value {
            Ok(value) => Provider::detect(value),
            Err(_) => Provider::AKEYLESS,
        });
        if anyone(Provider::AWS) {
            let announced = header("x-amz-sns-message-type");
            let aws_event = provider == Provider::AWS;
            let screened = self
                .sns
                .screen(value.as_ref().ok(), announced.as_deref(), aws_event)
                .await?;
            if let Some(reply) = screened {
                return Ok(Reading::Reply(reply));
            }
        }
        let notification = provider.parse(&value?)?;
        if let Some(reply) = notification.reply {
            return Ok(Reading::Reply(reply));
        }
        if let Some(url) = &notification.confirm_subscription {
            // Confirming means fetching a URL the body names; an operator does it, from the log.
            tracing::warn!(subscribe_url = %url, "SNS asks to confirm a subscription: open the SubscribeURL (or confirm it in the AWS console)");
            return Ok(Reading::Reply(serde_json::json!({
                "subscriptionConfirmation": "received; confirm it with the SubscribeURL, which is logged"
            })));
        }
        Ok(Reading::Notification(notification))
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
            ("akeyless-array.json", "akeyless"),
            ("akeyless-single.json", "akeyless"),
            ("akeyless-grouped.json", "akeyless"),
            ("aws-eventbridge-cloudtrail.json", "aws"),
            ("aws-secret-label-updated.json", "aws"),
            ("aws-sns-notification.json", "aws"),
            ("aws-sns-subscription-confirmation.json", "aws"),
            ("gcp-pubsub-push.json", "gcp"),
            ("azure-eventgrid.json", "azure"),
            ("azure-eventgrid-validation.json", "azure"),
            ("azure-cloudevent.json", "azure"),
            ("vault-kv-v2-event.json", "vault"),
            ("cloudevent-structured.json", "cloudevents"),
            ("doppler.json", "doppler"),
            ("infisical.json", "infisical"),
        ];
        for (file, name) in expected {
            let provider = Provider::from_name(name).unwrap();
            let body = json(&fixture(file)).unwrap();
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

    proptest::proptest! {
        #[test]
        fn no_parser_panics(body in proptest::collection::vec(proptest::num::u8::ANY, 0..200)) {
            if let Ok(value) = json(&body) {
                for sender in SENDERS {
                    let _ = sender.parse(&value);
                }
            }
        }
    }
}
