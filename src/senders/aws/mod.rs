//! AWS Secrets Manager: EventBridge events, bare (an API destination) or inside SNS messages,
//! whose signatures [`sns`] verifies.

pub mod sns;

use std::borrow::Cow;
use std::sync::Arc;

use serde_json::Value;

use super::read::*;
use super::{Notification, Origin, PayloadError, Place, Sender, StoreBackend};
use crate::core::external_secret::{RemoteKey, normalize_key};

pub struct Aws;

impl Sender for Aws {
    fn name(&self) -> &'static str {
        "aws"
    }

    /// An EventBridge event from Secrets Manager, or an SNS message.
    fn recognizes(&self, first: &Value) -> bool {
        text(first, "source") == Some("aws.secretsmanager") || first.get("TopicArn").is_some()
    }

    fn parse(&self, body: &Value) -> Result<Notification, PayloadError> {
        parse(body)
    }

    fn read_store(&self, provider: &str, settings: &Value) -> Option<Arc<dyn StoreBackend>> {
        (provider == "aws").then(|| Arc::new(AwsStore::read(settings)) as _)
    }
}

/// The region of a Secrets Manager change, where the event names it.
#[derive(Debug, PartialEq)]
pub struct AwsRegion(pub Option<String>);

impl Place for AwsRegion {}

/// An `aws` store: Secrets Manager (Parameter Store sends no such events) in a region.
#[derive(Debug, PartialEq)]
pub struct AwsStore {
    region: Option<String>,
    /// Prepended by ESO to every key.
    prefix: String,
    parameter_store: bool,
}

impl AwsStore {
    fn read(settings: &Value) -> AwsStore {
        AwsStore {
            region: setting(settings, "region"),
            prefix: setting(settings, "prefix").unwrap_or_default(),
            parameter_store: setting(settings, "service").as_deref() == Some("ParameterStore"),
        }
    }
}

impl StoreBackend for AwsStore {
    fn spellings(&self, key: &RemoteKey) -> Vec<String> {
        match arn_name(&key.key) {
            // A full ARN ends in six random characters, a partial one does not; which this
            // is cannot be told from the text, so both names are kept.
            Some(name) => {
                let mut names = vec![aws_secret_name(&key.key)];
                if names[0] != name {
                    names.push(name.to_owned());
                }
                names
            }
            // ESO prepends the prefix to the key exactly as written.
            None => vec![normalize_key(&format!("{}{}", self.prefix, key.written)).to_owned()],
        }
    }

    fn accepts(&self, origin: &Origin) -> bool {
        origin.place::<AwsRegion>().is_some_and(|AwsRegion(from)| {
            let other_region = matches!((&self.region, from), (Some(a), Some(b)) if a != b);
            !self.parameter_store && !other_region
        })
    }
}

/// The name part of an ARN (`arn:aws:secretsmanager:<region>:<account>:secret:<name>`), as
/// written.
fn arn_name(id: &str) -> Option<&str> {
    id.strip_prefix("arn:")?;
    Some(id.splitn(7, ':').nth(6).unwrap_or(id))
}

/// An AWS Secrets Manager name from a name or an ARN. Secrets Manager appends "-" and six
/// random characters to the name in an ARN.
pub fn aws_secret_name(id: &str) -> String {
    let Some(name) = arn_name(id) else {
        return id.to_owned();
    };
    match name.rsplit_once('-') {
        Some((stem, suffix))
            if suffix.len() == 6 && suffix.chars().all(|c| c.is_ascii_alphanumeric()) =>
        {
            stem.to_owned()
        }
        _ => name.to_owned(),
    }
}

/// AWS Secrets Manager via EventBridge (as an API destination sends it: one event, or an
/// array of them), or wrapped in an SNS HTTP notification.
pub fn parse(value: &Value) -> Result<Notification, PayloadError> {
    let mut notification = Notification::default();
    let events: Vec<Cow<Value>> = match value {
        Value::Array(events) => events.iter().map(Cow::Borrowed).collect(),
        Value::Object(object)
            if object.get("Type").and_then(Value::as_str) == Some("SubscriptionConfirmation") =>
        {
            let url = text(value, "SubscribeURL")
                .ok_or_else(|| shape("SubscriptionConfirmation without SubscribeURL"))?;
            notification.confirm_subscription = Some(url.to_owned());
            return Ok(notification);
        }
        Value::Object(object)
            if object.get("Type").and_then(Value::as_str) == Some("Notification") =>
        {
            let message =
                text(value, "Message").ok_or_else(|| shape("SNS Notification without Message"))?;
            let inner: Value = serde_json::from_str(message)
                .map_err(|e| shape(format!("SNS Message is not an EventBridge event: {e}")))?;
            vec![Cow::Owned(inner)]
        }
        other => vec![Cow::Borrowed(other)],
    };
    for (i, event) in events.iter().enumerate() {
        let at = |e: &str| shape(format!("event [{i}]: {e}"));
        if text(event, "source") != Some("aws.secretsmanager") {
            return Err(at("not an aws.secretsmanager EventBridge event"));
        }
        let detail_type = text(event, "detail-type").unwrap_or_default();
        let detail = event.get("detail").ok_or_else(|| at("no detail"))?;
        let id = id_of(event, "id");
        let (event_type, secret) = match detail_type {
            "AWS API Call via CloudTrail" => {
                let name = text(detail, "eventName").unwrap_or_default();
                let secret = detail
                    .get("requestParameters")
                    .and_then(|p| text(p, "secretId"))
                    .or_else(|| detail.get("responseElements").and_then(|r| text(r, "arn")));
                (name.to_owned(), secret)
            }
            "Secret Label Updated" => {
                let label = text(detail, "labelUpdated").unwrap_or_default();
                if label != "AWSCURRENT" {
                    notification.ignore(
                        id,
                        format!("label {label} moved; only AWSCURRENT changes the value ESO reads"),
                    );
                    continue;
                }
                ("SecretLabelUpdated".to_owned(), text(detail, "name"))
            }
            other => {
                notification.ignore(id, format!("{other} does not change a secret's value"));
                continue;
            }
        };
        if !matches!(
            event_type.as_str(),
            "PutSecretValue" | "UpdateSecret" | "RotateSecret" | "SecretLabelUpdated"
        ) {
            notification.ignore(id, format!("{event_type} does not change a secret's value"));
            continue;
        }
        let secret = secret.ok_or_else(|| at("names no secret"))?;
        let name = aws_secret_name(secret);
        let mut also = vec![secret.to_owned()];
        // A partial ARN has no random suffix: what looked like one may be part of the name.
        if let Some(unstripped) = arn_name(secret)
            && unstripped != name
        {
            also.push(unstripped.to_owned());
        }
        // The region is in the ARN as well as the envelope.
        let region = text(event, "region")
            .or_else(|| {
                secret
                    .strip_prefix("arn:")
                    .and_then(|arn| arn.split(':').nth(2))
            })
            .map(str::to_owned);
        notification.changes.push(change(
            &name,
            also,
            Some(&event_type),
            id,
            Some(Origin::new(AwsRegion(region))),
        ));
    }
    Ok(notification)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::senders::{fixture, spelled, store};
    use serde_json::json;

    fn aws(body: &[u8]) -> Result<Notification, PayloadError> {
        parse(&json(body)?)
    }

    #[test]
    fn reads_its_stores() {
        let store = |settings: Value| AwsStore::read(&settings);
        assert_eq!(
            store(json!({"service": "SecretsManager", "region": "eu-west-1", "prefix": "prod/"})),
            AwsStore {
                region: Some("eu-west-1".into()),
                prefix: "prod/".into(),
                parameter_store: false
            }
        );
        assert!(store(json!({"service": "ParameterStore"})).parameter_store);
    }

    #[test]
    fn keys_are_spelled_as_secrets_manager_names_them() {
        let aws =
            store(json!({"aws": {"service": "SecretsManager", "region": "r", "prefix": "prod/"}}));
        assert_eq!(spelled(&aws, "db"), ["prod/db"]);
        let joined =
            store(json!({"aws": {"service": "SecretsManager", "region": "r", "prefix": "team-a"}}));
        assert_eq!(
            spelled(&joined, "/db"),
            ["team-a/db"],
            "the prefix meets the key as written"
        );
        assert_eq!(
            spelled(&aws, "arn:aws:secretsmanager:r:1:secret:other/db-Ab12Cd"),
            ["other/db", "other/db-Ab12Cd"]
        );
        assert_eq!(
            spelled(&aws, "arn:aws:secretsmanager:r:1:secret:app/api-tokens"),
            ["app/api", "app/api-tokens"],
            "a partial ARN keeps its whole name too"
        );
    }

    #[test]
    fn accepts_only_changes_from_its_region() {
        let aws = |region: &str| Origin::new(AwsRegion(Some(region.into())));
        let secrets = store(json!({"aws": {"service": "SecretsManager", "region": "eu-west-1"}}));
        assert!(secrets.accepts(&aws("eu-west-1")));
        assert!(secrets.accepts(&Origin::new(AwsRegion(None))));
        assert!(!secrets.accepts(&aws("us-east-1")));
        assert!(!secrets.accepts(&Origin::new(crate::senders::akeyless::AkeylessPlace)));
        let parameters =
            store(json!({"aws": {"service": "ParameterStore", "region": "eu-west-1"}}));
        assert!(!parameters.accepts(&aws("eu-west-1")));
    }

    #[test]
    fn aws_names_drop_the_arn_and_its_random_suffix() {
        assert_eq!(
            aws_secret_name("arn:aws:secretsmanager:eu-west-1:1:secret:prod/db-Ab12Cd"),
            "prod/db"
        );
        assert_eq!(
            aws_secret_name("arn:aws:secretsmanager:eu-west-1:1:secret:plain"),
            "plain"
        );
        assert_eq!(aws_secret_name("prod/db-password"), "prod/db-password");
    }

    #[test]
    fn aws_eventbridge_and_sns() {
        for file in [
            "aws-eventbridge-cloudtrail.json",
            "aws-sns-notification.json",
        ] {
            let n = aws(&fixture(file)).unwrap();
            assert_eq!(n.changes.len(), 1, "{file}");
            assert_eq!(n.changes[0].key, "prod/payments/db-password");
            assert!(n.changes[0].also[0].starts_with("arn:aws:secretsmanager:"));
            assert_eq!(n.changes[0].event_type.as_deref(), Some("PutSecretValue"));
        }
        let label = aws(&fixture("aws-secret-label-updated.json")).unwrap();
        assert_eq!(label.changes[0].key, "prod/payments/api-key");
        let confirm = aws(&fixture("aws-sns-subscription-confirmation.json")).unwrap();
        assert!(
            confirm
                .confirm_subscription
                .unwrap()
                .contains("ConfirmSubscription")
        );
        let deleted = aws(br#"{"source": "aws.secretsmanager", "detail-type": "AWS API Call via CloudTrail", "detail": {"eventName": "DeleteSecret", "requestParameters": {"secretId": "x"}}}"#).unwrap();
        assert!(deleted.changes.is_empty() && deleted.ignored.len() == 1);
        assert!(aws(br#"{"source": "aws.ec2"}"#).is_err());
    }
}
