//! AWS Secrets Manager: EventBridge events, bare (an API destination) or inside SNS messages,
//! whose signatures [`sns`] verifies.

pub mod sns;

use std::borrow::Cow;

use serde_json::Value;

use super::read::*;
use super::{Notification, Origin, PayloadError, Sender};
use crate::core::store::aws_secret_name;

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
        if let Some(unstripped) = secret
            .strip_prefix("arn:")
            .and_then(|_| secret.splitn(7, ':').nth(6))
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
            Some(Origin::Aws { region }),
        ));
    }
    Ok(notification)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::senders::fixture;

    fn aws(body: &[u8]) -> Result<Notification, PayloadError> {
        parse(&json(body)?)
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
