//! Infisical project webhooks. They name an environment's folder, not a secret: every
//! ExternalSecret whose store reads that folder is refreshed.

use serde_json::Value;

use super::read::*;
use super::{Notification, Origin, PayloadError, Sender};

pub struct Infisical;

impl Sender for Infisical {
    fn name(&self) -> &'static str {
        "infisical"
    }

    /// `{"project": {"workspaceId": …}}`.
    fn recognizes(&self, first: &Value) -> bool {
        first
            .get("project")
            .is_some_and(|p| p.get("workspaceId").is_some())
    }

    fn parse(&self, body: &Value) -> Result<Notification, PayloadError> {
        parse(body)
    }
}

/// Infisical: `{"event": "secrets.modified", "project": {"workspaceId", "environment",
/// "secretPath"}, "timestamp": <unix ms>}`.
pub fn parse(value: &Value) -> Result<Notification, PayloadError> {
    let event = text(value, "event").ok_or_else(|| shape("Infisical webhook without event"))?;
    let project = value
        .get("project")
        .ok_or_else(|| shape("Infisical webhook without project"))?;
    let timestamp = value.get("timestamp").and_then(Value::as_i64);
    let workspace = text(project, "workspaceId").unwrap_or_default();
    let mut notification = Notification::default();
    if !matches!(event, "secrets.modified" | "secret.modified") {
        notification.ignore(None, format!("{event} does not change a secret's value"));
        return Ok(notification);
    }
    let environment =
        text(project, "environment").ok_or_else(|| shape("project.environment is missing"))?;
    let path = text(project, "secretPath").unwrap_or("/");
    // A redelivery repeats the timestamp: together with the scope it identifies the event.
    let event_id = timestamp.map(|t| format!("{workspace}/{environment}{path}@{t}"));
    let origin = Origin::Infisical {
        environment: environment.to_owned(),
        path: path.to_owned(),
    };
    notification.changes.push(change(
        &format!("infisical:{environment}:{path}"),
        Vec::new(),
        Some(event),
        event_id,
        Some(origin),
    ));
    Ok(notification)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::senders::fixture;

    fn infisical(body: &[u8]) -> Result<Notification, PayloadError> {
        parse(&json(body)?)
    }

    #[test]
    fn infisical_names_an_environment_folder() {
        let n = infisical(&fixture("infisical.json")).unwrap();
        let change = &n.changes[0];
        assert_eq!(
            change.origin,
            Some(Origin::Infisical {
                environment: "prod".into(),
                path: "/payments".into()
            })
        );
        assert_eq!(
            change.event_id.as_deref(),
            Some("6520c7a1b2c3d4e5f6a7b8c9/prod/payments@1763633400000")
        );
        let deleted = infisical(br#"{"event": "secrets.deleted", "project": {}}"#).unwrap();
        assert!(deleted.changes.is_empty() && deleted.ignored.len() == 1);
        assert!(infisical(br#"{"event": "secrets.modified", "project": {}}"#).is_err());
        assert!(infisical(br#"{"event": "secrets.modified"}"#).is_err());
    }
}
