//! Infisical project webhooks. They name an environment's folder, not a secret: every
//! ExternalSecret whose store reads that folder is refreshed.

use std::sync::Arc;

use serde_json::Value;

use super::read::*;
use super::{Notification, Origin, PayloadError, Place, Sender, StoreBackend};
use crate::core::external_secret::RemoteKey;

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

    fn read_store(&self, provider: &str, settings: &Value) -> Option<Arc<dyn StoreBackend>> {
        (provider == "infisical").then(|| Arc::new(InfisicalStore::read(settings)) as _)
    }

    fn default_auth(&self) -> &'static [&'static str] {
        &["hmac-infisical"]
    }
}

/// The folder of an environment whose secrets changed: a whole scope.
#[derive(Debug, PartialEq)]
pub struct InfisicalFolder {
    pub environment: String,
    pub path: String,
}

impl Place for InfisicalFolder {
    fn is_scope(&self) -> bool {
        true
    }
}

/// An `infisical` store: an environment's folder, and its subfolders when recursive.
#[derive(Debug, PartialEq)]
pub struct InfisicalStore {
    environment: Option<String>,
    /// As `/a/b`.
    path: String,
    recursive: bool,
}

impl StoreBackend for InfisicalStore {
    fn accepts(&self, origin: &Origin) -> bool {
        origin.place::<InfisicalFolder>().is_some()
    }

    fn in_scope(&self, origin: &Origin) -> bool {
        origin.place::<InfisicalFolder>().is_some_and(|changed| {
            let path = &self.path;
            let folder = folder(&changed.path);
            let under = path == "/" || folder.starts_with(&format!("{path}/"));
            self.same_environment(changed) && (*path == folder || (self.recursive && under))
        })
    }

    /// A key with slashes names its own folder, absolute or under the store's path.
    fn key_in_scope(&self, key: &RemoteKey, origin: &Origin) -> bool {
        origin.place::<InfisicalFolder>().is_some_and(|changed| {
            let key_folder = key.written.rsplit_once('/').map(|(folder, _)| {
                if key.written.starts_with('/') {
                    self::folder(folder)
                } else {
                    self::folder(&format!("{}/{folder}", self.path))
                }
            });
            self.same_environment(changed) && key_folder == Some(self::folder(&changed.path))
        })
    }
}

impl InfisicalStore {
    fn read(settings: &Value) -> InfisicalStore {
        let scope = &settings["secretsScope"];
        InfisicalStore {
            environment: setting(scope, "environmentSlug"),
            path: folder(&setting(scope, "secretsPath").unwrap_or_default()),
            recursive: scope["recursive"].as_bool().unwrap_or(false),
        }
    }

    /// A store that does not name its environment reads the one its token is bound to, which
    /// cannot be known here: it counts as concerned.
    fn same_environment(&self, changed: &InfisicalFolder) -> bool {
        self.environment
            .as_deref()
            .is_none_or(|ours| ours == changed.environment)
    }
}

/// A folder path as `/a/b`: one leading slash, none trailing, no empty segments.
fn folder(path: &str) -> String {
    let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
    format!("/{}", parts.join("/"))
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
    let origin = Origin::new(InfisicalFolder {
        environment: environment.to_owned(),
        path: path.to_owned(),
    });
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
    use crate::senders::{fixture, remote_key, store};
    use serde_json::json;

    fn changed(environment: &str, path: &str) -> Origin {
        Origin::new(InfisicalFolder {
            environment: environment.into(),
            path: path.into(),
        })
    }

    #[test]
    fn reads_its_stores() {
        assert_eq!(
            InfisicalStore::read(
                &json!({"secretsScope": {"projectSlug": "p", "environmentSlug": "prod", "secretsPath": "payments/"}})
            ),
            InfisicalStore {
                environment: Some("prod".into()),
                path: "/payments".into(),
                recursive: false
            }
        );
    }

    #[test]
    fn keys_with_slashes_name_their_folder() {
        let root = store(
            json!({"infisical": {"secretsScope": {"projectSlug": "p", "environmentSlug": "prod", "secretsPath": "/"}}}),
        );
        assert!(!root.in_scope(&changed("prod", "/app")));
        assert!(root.key_in_scope(&remote_key("/app/DB_PASS"), &changed("prod", "/app")));
        assert!(root.key_in_scope(&remote_key("app/DB_PASS"), &changed("prod", "app/")));
        assert!(!root.key_in_scope(&remote_key("DB_PASS"), &changed("prod", "/app")));
        let nested = store(
            json!({"infisical": {"secretsScope": {"projectSlug": "p", "environmentSlug": "prod", "secretsPath": "/payments"}}}),
        );
        let cards = remote_key("cards/KEY");
        assert!(nested.key_in_scope(&cards, &changed("prod", "/payments/cards")));
        assert!(!nested.key_in_scope(&cards, &changed("dev", "/payments/cards")));
    }

    #[test]
    fn a_folder_concerns_the_stores_reading_it() {
        let store_at = |path: &str, recursive: bool| {
            store(
                json!({"infisical": {"secretsScope": {"projectSlug": "p", "environmentSlug": "prod", "secretsPath": path, "recursive": recursive}}}),
            )
        };
        let payments = store_at("/payments", false);
        assert!(payments.in_scope(&changed("prod", "/payments")));
        assert!(payments.in_scope(&changed("prod", "payments/")));
        assert!(!payments.in_scope(&changed("prod", "/payments/sub")));
        assert!(!payments.in_scope(&changed("dev", "/payments")));
        assert!(store_at("/", true).in_scope(&changed("prod", "/payments/sub")));
    }

    fn infisical(body: &[u8]) -> Result<Notification, PayloadError> {
        parse(&json(body)?)
    }

    #[test]
    fn infisical_names_an_environment_folder() {
        let n = infisical(&fixture("infisical.json")).unwrap();
        let change = &n.changes[0];
        assert_eq!(
            change.origin,
            Some(Origin::new(InfisicalFolder {
                environment: "prod".into(),
                path: "/payments".into()
            }))
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
