//! Doppler project webhooks. They name a project's config, not a secret: every ExternalSecret
//! whose store reads that config is refreshed.

use serde_json::Value;

use super::read::*;
use super::{Notification, Origin, PayloadError, Sender};

pub struct Doppler;

impl Sender for Doppler {
    fn name(&self) -> &'static str {
        "doppler"
    }

    /// `{"type": "config.…", "config": …}`.
    fn recognizes(&self, first: &Value) -> bool {
        text(first, "type").is_some_and(|t| t.starts_with("config."))
            && first.get("config").is_some()
    }

    fn parse(&self, body: &Value) -> Result<Notification, PayloadError> {
        parse(body)
    }
}

/// Doppler: `{"type": "config.secrets.update", "config": {"name", "project"}, "project": {…}}`.
pub fn parse(value: &Value) -> Result<Notification, PayloadError> {
    let event_type = text(value, "type").ok_or_else(|| shape("Doppler webhook without type"))?;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::senders::fixture;

    fn doppler(body: &[u8]) -> Result<Notification, PayloadError> {
        parse(&json(body)?)
    }

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
}
