//! Doppler project webhooks. They name a project's config, not a secret: every ExternalSecret
//! whose store reads that config is refreshed.

use std::sync::Arc;

use serde_json::Value;

use super::read::*;
use super::{Notification, Origin, PayloadError, Place, Sender, StoreBackend};

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

    fn read_store(&self, provider: &str, settings: &Value) -> Option<Arc<dyn StoreBackend>> {
        (provider == "doppler").then(|| {
            Arc::new(DopplerStore {
                project: setting(settings, "project"),
                config: setting(settings, "config"),
            }) as _
        })
    }

    fn default_auth(&self) -> &'static [&'static str] {
        &["hmac-doppler"]
    }
}

/// The config whose secrets changed: a whole scope.
#[derive(Debug, PartialEq)]
pub struct DopplerConfig {
    pub project: String,
    pub config: String,
}

impl Place for DopplerConfig {
    fn is_scope(&self) -> bool {
        true
    }
}

/// A `doppler` store. One that does not name its project and config reads the ones its token
/// is bound to, which cannot be known here: it counts as concerned.
#[derive(Debug)]
pub struct DopplerStore {
    project: Option<String>,
    config: Option<String>,
}

impl StoreBackend for DopplerStore {
    fn accepts(&self, origin: &Origin) -> bool {
        origin.place::<DopplerConfig>().is_some()
    }

    fn in_scope(&self, origin: &Origin) -> bool {
        let same =
            |ours: &Option<String>, theirs: &str| ours.as_deref().is_none_or(|o| o == theirs);
        origin
            .place::<DopplerConfig>()
            .is_some_and(|c| same(&self.project, &c.project) && same(&self.config, &c.config))
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
    let origin = Origin::new(DopplerConfig {
        project: project.to_owned(),
        config: config_name.to_owned(),
    });
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
    use crate::senders::{fixture, store};
    use serde_json::json;

    #[test]
    fn a_config_concerns_the_stores_reading_it() {
        let doppler = |project: &str, config: &str| {
            Origin::new(DopplerConfig {
                project: project.into(),
                config: config.into(),
            })
        };
        let prd = store(json!({"doppler": {"project": "payments", "config": "prd"}}));
        assert!(prd.in_scope(&doppler("payments", "prd")));
        assert!(!prd.in_scope(&doppler("payments", "stg")));
        assert!(!prd.in_scope(&doppler("web", "prd")));
        let token_bound = store(json!({"doppler": {"auth": {}}}));
        assert!(token_bound.in_scope(&doppler("any", "thing")));
        let akeyless = store(json!({"akeyless": {}}));
        assert!(!akeyless.in_scope(&doppler("p", "c")));
    }

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
            Some(Origin::new(DopplerConfig {
                project: "payments".into(),
                config: "prd".into()
            }))
        );
        let other = doppler(br#"{"type": "webhook.test"}"#).unwrap();
        assert!(other.changes.is_empty() && other.ignored.len() == 1);
        assert!(doppler(br#"{"type": "config.secrets.update"}"#).is_err());
        assert!(doppler(br#"{"config": {}}"#).is_err());
    }
}
