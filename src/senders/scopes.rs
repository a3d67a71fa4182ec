//! Doppler and Infisical webhooks. They name a scope, not a secret (a project's config, an
//! environment's folder): every ExternalSecret whose store reads that scope is refreshed.

use serde_json::Value;

use super::providers::{change, json, shape, text};
use super::{Notification, Origin, PayloadError};

/// Doppler: `{"type": "config.secrets.update", "config": {"name", "project"}, "project": {…}}`.
pub fn doppler(body: &[u8]) -> Result<Notification, PayloadError> {
    let value = json(body)?;
    let event_type = text(&value, "type").ok_or_else(|| shape("Doppler webhook without type"))?;
    let mut notification = Notification::default();
    if event_type != "config.secrets.update" {
        notification.ignore(
            None,
            format!("{event_type} does not change a secret's value"),
        );
        return Ok(notification);
    }
    let config = value
        .get("config")
        .ok_or_else(|| shape("Doppler webhook without config"))?;
    let config_name = text(config, "name").ok_or_else(|| shape("config.name is missing"))?;
    let project = text(config, "project")
        .or_else(|| value.get("project").and_then(|p| text(p, "name")))
        .ok_or_else(|| shape("config.project is missing"))?;
    let origin = Origin::Doppler {
        project: project.to_owned(),
        config: config_name.to_owned(),
    };
    // Doppler sends no event id; a redelivery is simply refreshed again.
    notification.changes.push(change(
        &format!("doppler:{project}/{config_name}"),
        Vec::new(),
        Some(event_type),
        None,
        Some(origin),
    ));
    Ok(notification)
}

/// Infisical: `{"event": "secrets.modified", "project": {"workspaceId", "environment",
/// "secretPath"}, "timestamp": <unix ms>}`.
pub fn infisical(body: &[u8]) -> Result<Notification, PayloadError> {
    let value = json(body)?;
    let event = text(&value, "event").ok_or_else(|| shape("Infisical webhook without event"))?;
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

    #[test]
    fn doppler_names_a_project_config() {
        let n = doppler(&fixture("doppler.json")).unwrap();
        assert_eq!(n.changes.len(), 1);
        assert_eq!(n.changes[0].key, "doppler:payments/prd");
        assert_eq!(
            n.changes[0].origin,
            Some(Origin::Doppler {
                project: "payments".into(),
                config: "prd".into()
            })
        );
        let other = doppler(br#"{"type": "webhook.test"}"#).unwrap();
        assert!(other.changes.is_empty() && other.ignored.len() == 1);
        assert!(doppler(br#"{"type": "config.secrets.update"}"#).is_err());
        assert!(doppler(br#"{"config": {}}"#).is_err());
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
