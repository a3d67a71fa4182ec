//! An SNS message as SNS posts it to an HTTP(S) subscription: its envelope fields, and the
//! string its signature covers.

use std::collections::BTreeMap;

use serde_json::Value;

use super::SnsError;

/// The three kinds of message SNS posts to an HTTP(S) endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageType {
    Notification,
    SubscriptionConfirmation,
    UnsubscribeConfirmation,
}

impl MessageType {
    fn from_name(name: &str) -> Option<MessageType> {
        match name {
            "Notification" => Some(MessageType::Notification),
            "SubscriptionConfirmation" => Some(MessageType::SubscriptionConfirmation),
            "UnsubscribeConfirmation" => Some(MessageType::UnsubscribeConfirmation),
            _ => None,
        }
    }

    /// The fields the signature covers, in the order SNS signs them. A Notification's
    /// `Subject` is signed only when the message has one.
    fn signed_fields(self) -> &'static [&'static str] {
        match self {
            MessageType::Notification => &[
                "Message",
                "MessageId",
                "Subject",
                "Timestamp",
                "TopicArn",
                "Type",
            ],
            MessageType::SubscriptionConfirmation | MessageType::UnsubscribeConfirmation => &[
                "Message",
                "MessageId",
                "SubscribeURL",
                "Timestamp",
                "Token",
                "TopicArn",
                "Type",
            ],
        }
    }
}

/// An SNS message's envelope: its type and its text fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnsMessage {
    pub kind: MessageType,
    fields: BTreeMap<String, String>,
}

impl SnsMessage {
    /// Reads `body` as an SNS message if it is one: a JSON object whose `Type` is one of the
    /// three SNS types. `announced` is the `x-amz-sns-message-type` header; a body it announces
    /// must be an SNS message. Anything else is `None`, for the other parsers.
    /// `body` is `None` when it is not JSON.
    pub fn read(
        body: Option<&Value>,
        announced: Option<&str>,
    ) -> Result<Option<SnsMessage>, SnsError> {
        let not_sns = |why: &str| match announced {
            Some(header) => Err(SnsError::Malformed(format!(
                "x-amz-sns-message-type is {header:?} but {why}; raw message delivery carries no \
                 signature, so turn it off on the subscription"
            ))),
            None => Ok(None),
        };
        let Some(Value::Object(object)) = body else {
            return not_sns("the body is not a JSON object");
        };
        let Some(kind) = object
            .get("Type")
            .and_then(Value::as_str)
            .and_then(MessageType::from_name)
        else {
            return not_sns("the body's Type is not an SNS message type");
        };
        let fields = object
            .iter()
            .filter_map(|(name, value)| match value {
                Value::String(text) => Some((name.clone(), text.clone())),
                _ => None,
            })
            .collect();
        Ok(Some(SnsMessage { kind, fields }))
    }

    pub fn field(&self, name: &str) -> Option<&str> {
        self.fields.get(name).map(String::as_str)
    }

    pub fn required(&self, name: &str) -> Result<&str, SnsError> {
        self.field(name).ok_or_else(|| {
            SnsError::Malformed(format!("SNS {:?} message without {name}", self.kind))
        })
    }

    /// The string SNS signed: each signed field as "Name\nvalue\n", in order.
    pub fn canonical(&self) -> Result<String, SnsError> {
        let mut canonical = String::new();
        for &name in self.kind.signed_fields() {
            let value = match (name, self.field(name)) {
                ("Subject", None) => continue,
                (_, Some(value)) => value,
                (_, None) => self.required(name)?,
            };
            canonical.push_str(name);
            canonical.push('\n');
            canonical.push_str(value);
            canonical.push('\n');
        }
        Ok(canonical)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reads `text` as a delivery's body: `None` when it is not JSON.
    pub(crate) fn read_text(
        text: &str,
        announced: Option<&str>,
    ) -> Result<Option<SnsMessage>, SnsError> {
        SnsMessage::read(serde_json::from_str(text).ok().as_ref(), announced)
    }

    fn message(body: &str) -> SnsMessage {
        read_text(body, None)
            .expect("reads")
            .expect("an SNS message")
    }

    #[test]
    fn notification_canonical_string_with_and_without_subject() {
        let body = r#"{"Type": "Notification", "MessageId": "m-1", "TopicArn": "arn:aws:sns:eu-west-1:1:t",
            "Message": "line one\nline two", "Timestamp": "2026-11-20T10:15:01.000Z",
            "SignatureVersion": "2", "Signature": "c2ln", "SigningCertURL": "https://x", "UnsubscribeURL": "https://y"}"#;
        assert_eq!(
            message(body).canonical().unwrap(),
            "Message\nline one\nline two\nMessageId\nm-1\nTimestamp\n2026-11-20T10:15:01.000Z\n\
             TopicArn\narn:aws:sns:eu-west-1:1:t\nType\nNotification\n"
        );
        let with_subject = body.replacen("{", r#"{"Subject": "Hi", "#, 1);
        assert_eq!(
            message(&with_subject).canonical().unwrap(),
            "Message\nline one\nline two\nMessageId\nm-1\nSubject\nHi\nTimestamp\n2026-11-20T10:15:01.000Z\n\
             TopicArn\narn:aws:sns:eu-west-1:1:t\nType\nNotification\n"
        );
    }

    #[test]
    fn confirmation_canonical_strings() {
        for kind in ["SubscriptionConfirmation", "UnsubscribeConfirmation"] {
            let body = format!(
                r#"{{"Type": "{kind}", "MessageId": "m-2", "Token": "tok", "TopicArn": "arn:t",
                "Message": "msg", "SubscribeURL": "https://sns.eu-west-1.amazonaws.com/?a=b",
                "Timestamp": "2026-11-20T10:00:00.000Z", "Subject": "never signed here"}}"#
            );
            assert_eq!(
                message(&body).canonical().unwrap(),
                format!(
                    "Message\nmsg\nMessageId\nm-2\nSubscribeURL\nhttps://sns.eu-west-1.amazonaws.com/?a=b\n\
                     Timestamp\n2026-11-20T10:00:00.000Z\nToken\ntok\nTopicArn\narn:t\nType\n{kind}\n"
                )
            );
        }
    }

    #[test]
    fn a_missing_signed_field_is_named() {
        let err = message(r#"{"Type": "SubscriptionConfirmation", "MessageId": "m", "TopicArn": "t", "Message": "x", "Timestamp": "t"}"#)
            .canonical()
            .unwrap_err();
        assert!(err.to_string().contains("SubscribeURL"), "{err}");
    }

    #[test]
    fn only_sns_bodies_are_read_as_sns() {
        for other in [
            r#"{"source": "aws.secretsmanager"}"#,
            r#"[{"Type": "Notification"}]"#,
            r#"{"Type": "Other"}"#,
            "not json",
        ] {
            assert_eq!(read_text(other, None), Ok(None), "{other}");
            assert!(
                read_text(other, Some("Notification")).is_err(),
                "announced by the header: {other}"
            );
        }
        let unsubscribe = message(r#"{"Type": "UnsubscribeConfirmation"}"#);
        assert_eq!(unsubscribe.kind, MessageType::UnsubscribeConfirmation);
    }
}
