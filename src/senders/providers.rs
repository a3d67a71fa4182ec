//! Change notifications of the secret managers other than Akeyless, read into the same
//! "secret X changed" as Akeyless events. Each provider names its secrets its own way; the
//! spellings an ExternalSecret may use for the same secret go into `SecretChange::also`.
//!
//! Events that carry no new value (deletions, rotation failures, reminders) are acknowledged
//! and listed as ignored, never refreshed.

use base64::Engine;
use serde_json::{Map, Value};

use super::{Notification, Origin, PayloadError, SecretChange};
use crate::core::store::aws_secret_name;

pub(super) fn shape(message: impl Into<String>) -> PayloadError {
    PayloadError::Shape(message.into())
}

pub(super) fn text<'a>(value: &'a Value, field: &str) -> Option<&'a str> {
    value
        .get(field)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}

fn id_of(value: &Value, field: &str) -> Option<String> {
    match value.get(field)? {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

pub(super) fn change(
    key: &str,
    also: Vec<String>,
    event_type: Option<&str>,
    event_id: Option<String>,
    origin: Option<Origin>,
) -> SecretChange {
    let mut also = also;
    also.retain(|k| k != key);
    also.dedup();
    SecretChange {
        key: key.to_owned(),
        also,
        event_type: event_type.map(str::to_owned),
        event_id,
        origin,
    }
}

/// The events of a body that holds one event or an array of them.
fn one_or_many(value: Value) -> Vec<Value> {
    match value {
        Value::Array(events) => events,
        other => vec![other],
    }
}

pub(super) fn json(body: &[u8]) -> Result<Value, PayloadError> {
    serde_json::from_slice(body).map_err(|e| PayloadError::Json(e.to_string()))
}

/// AWS Secrets Manager via EventBridge (as an API destination sends it: one event, or an
/// array of them), or wrapped in an SNS HTTP notification.
pub fn aws(body: &[u8]) -> Result<Notification, PayloadError> {
    let value = json(body)?;
    let mut notification = Notification::default();
    let events: Vec<Value> = match value {
        Value::Array(events) => events,
        Value::Object(ref object)
            if object.get("Type").and_then(Value::as_str) == Some("SubscriptionConfirmation") =>
        {
            let url = text(&value, "SubscribeURL")
                .ok_or_else(|| shape("SubscriptionConfirmation without SubscribeURL"))?;
            notification.confirm_subscription = Some(url.to_owned());
            return Ok(notification);
        }
        Value::Object(ref object)
            if object.get("Type").and_then(Value::as_str) == Some("Notification") =>
        {
            let message =
                text(&value, "Message").ok_or_else(|| shape("SNS Notification without Message"))?;
            let inner: Value = serde_json::from_str(message)
                .map_err(|e| shape(format!("SNS Message is not an EventBridge event: {e}")))?;
            vec![inner]
        }
        other => vec![other],
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
pub fn gcp(body: &[u8]) -> Result<Notification, PayloadError> {
    let value = json(body)?;
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
    notification.changes.push(change(
        &short,
        vec![full],
        Some(event_type),
        id,
        Some(Origin::Gcp { project }),
    ));
    Ok(notification)
}

const AZURE_CHANGED: [&str; 2] = [
    "Microsoft.KeyVault.SecretNewVersionCreated",
    "Microsoft.KeyVault.SecretNearExpiry",
];

/// Azure Key Vault through Event Grid, in the Event Grid schema (an array, with its
/// subscription-validation handshake) or the CloudEvents schema.
pub fn azure(body: &[u8]) -> Result<Notification, PayloadError> {
    let events = one_or_many(json(body)?);
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

/// HashiCorp Vault KV events (as Vault's event stream sends them, in a CloudEvents envelope).
/// `secret/data/prod/db` on a KV v2 mount `secret/` is `prod/db` to an ESO Vault store whose
/// path is `secret`, and `secret/prod/db` to one without a path.
pub fn vault(body: &[u8]) -> Result<Notification, PayloadError> {
    let value = json(body)?;
    let data = value.get("data").unwrap_or(&value);
    let event_type = text(data, "event_type").ok_or_else(|| shape("no data.event_type"))?;
    let event = data.get("event").ok_or_else(|| shape("no data.event"))?;
    let id = id_of(event, "id").or_else(|| id_of(&value, "id"));
    let mut notification = Notification::default();
    if !matches!(
        event_type,
        "kv-v2/data-write"
            | "kv-v2/data-patch"
            | "kv-v2/data-undelete"
            | "kv-v2/data-rollback"
            | "kv-v1/write"
    ) {
        notification.ignore(id, format!("{event_type} does not write a new value"));
        return Ok(notification);
    }
    let metadata = event
        .get("metadata")
        .ok_or_else(|| shape("no data.event.metadata"))?;
    let path = text(metadata, "data_path")
        .or_else(|| text(metadata, "path"))
        .ok_or_else(|| shape("names no path"))?;
    let mount = data
        .get("plugin_info")
        .and_then(|p| text(p, "mount_path"))
        .unwrap_or_default()
        .trim_end_matches('/');
    let relative = path
        .strip_prefix(mount)
        .filter(|_| !mount.is_empty())
        .map(|rest| rest.trim_start_matches('/'))
        .map(|rest| match event_type.starts_with("kv-v2/") {
            true => rest.strip_prefix("data/").unwrap_or(rest),
            false => rest,
        })
        .unwrap_or(path);
    // With the mount known, `<mount>/<path>` is the secret; the raw `<mount>/data/<path>` of
    // KV v2 would name another one (`data/<path>`) to a store on that mount.
    let also = match mount.is_empty() {
        true => vec![path.to_owned()],
        false => vec![format!("{mount}/{relative}")],
    };
    let origin = Origin::Vault {
        mount: (!mount.is_empty()).then(|| mount.to_owned()),
    };
    notification
        .changes
        .push(change(relative, also, Some(event_type), id, Some(origin)));
    Ok(notification)
}

/// CloudEvents 1.0 in structured mode (one event or a batch array); the secret is the
/// event's `subject`. Binary mode is read by the HTTP layer from the `ce-*` headers.
pub fn cloudevents(body: &[u8]) -> Result<Notification, PayloadError> {
    let events = one_or_many(json(body)?);
    let mut notification = Notification::default();
    for (i, event) in events.iter().enumerate() {
        let object = event
            .as_object()
            .ok_or_else(|| shape(format!("event [{i}] is not an object")))?;
        if object.get("specversion").and_then(Value::as_str) != Some("1.0") {
            return Err(shape(format!("event [{i}]: specversion is not 1.0")));
        }
        notification.push_cloudevent(object, i)?;
    }
    Ok(notification)
}

impl Notification {
    pub(super) fn ignore(&mut self, id: Option<String>, reason: String) {
        self.ignored.push(super::Ignored {
            event_id: id,
            reason,
        });
    }

    /// One CloudEvent whose `subject` names the secret; types that say "deleted" or "failed"
    /// carry no new value.
    pub fn push_cloudevent(
        &mut self,
        event: &Map<String, Value>,
        i: usize,
    ) -> Result<(), PayloadError> {
        let event_type = event
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let id = event.get("id").and_then(Value::as_str).map(str::to_owned);
        let lowered = event_type.to_ascii_lowercase();
        if ["delete", "destroy", "fail", "expir"]
            .iter()
            .any(|word| lowered.contains(word))
        {
            self.ignore(id, format!("{event_type} carries no new value"));
            return Ok(());
        }
        let subject = event
            .get("subject")
            .and_then(Value::as_str)
            .filter(|s| !s.trim_start_matches('/').is_empty())
            .ok_or_else(|| shape(format!("event [{i}]: subject (the secret) is missing")))?;
        self.changes
            .push(change(subject, Vec::new(), Some(event_type), id, None));
        Ok(())
    }
}

/// The simplest body, for everything else: `{"keys": ["/prod/db", ...]}`.
pub fn generic(body: &[u8]) -> Result<Notification, PayloadError> {
    let value = json(body)?;
    let keys = value
        .get("keys")
        .and_then(Value::as_array)
        .ok_or_else(|| shape("expected {\"keys\": [\"<secret>\", ...]}"))?;
    let mut notification = Notification::default();
    for (i, key) in keys.iter().enumerate() {
        let key = key
            .as_str()
            .filter(|k| !k.trim_start_matches('/').trim().is_empty())
            .ok_or_else(|| shape(format!("keys[{i}] is not a secret name")))?;
        notification
            .changes
            .push(change(key, Vec::new(), Some("generic"), None, None));
    }
    Ok(notification)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::senders::fixture;

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

    #[test]
    fn vault_kv_paths() {
        let n = vault(&fixture("vault-kv-v2-event.json")).unwrap();
        assert_eq!(n.changes[0].key, "prod/payments/db-password");
        assert_eq!(n.changes[0].also, ["secret/prod/payments/db-password"]);
        let v1 = vault(br#"{"data": {"event_type": "kv-v1/write", "event": {"id": "2", "metadata": {"path": "kv/data/x"}}, "plugin_info": {"mount_path": "kv/"}}}"#).unwrap();
        assert_eq!(v1.changes[0].key, "data/x", "KV v1 has no data/ segment");
        assert_eq!(v1.changes[0].also, ["kv/data/x"]);
        let deleted = vault(br#"{"data": {"event_type": "kv-v2/delete", "event": {"id": "1", "metadata": {"path": "secret/data/x"}}}}"#).unwrap();
        assert!(deleted.changes.is_empty() && deleted.ignored.len() == 1);
    }

    #[test]
    fn cloudevents_structured_and_batch() {
        let one = cloudevents(&fixture("cloudevent-structured.json")).unwrap();
        assert_eq!(one.changes[0].key, "prod/payments/db-password");
        let batch = cloudevents(br#"[{"specversion": "1.0", "id": "1", "type": "a.updated", "source": "s", "subject": "/a"},
                                   {"specversion": "1.0", "id": "2", "type": "b.deleted", "source": "s", "subject": "/b"}]"#).unwrap();
        assert_eq!(batch.changes.len(), 1);
        assert_eq!(batch.ignored.len(), 1);
        assert!(cloudevents(br#"{"specversion": "0.3", "subject": "x"}"#).is_err());
        assert!(
            cloudevents(br#"{"specversion": "1.0", "type": "t"}"#)
                .unwrap_err()
                .to_string()
                .contains("subject")
        );
    }

    #[test]
    fn generic_keys() {
        let n = generic(br#"{"keys": ["/a", "b"]}"#).unwrap();
        assert_eq!(n.changes.len(), 2);
        assert!(generic(br#"{"keys": [""]}"#).is_err());
        assert!(generic(br#"{"names": []}"#).is_err());
    }

    proptest::proptest! {
        #[test]
        fn no_parser_panics(body in proptest::collection::vec(proptest::num::u8::ANY, 0..200)) {
            let _ = aws(&body);
            let _ = gcp(&body);
            let _ = azure(&body);
            let _ = vault(&body);
            let _ = cloudevents(&body);
            let _ = generic(&body);
        }
    }
}
