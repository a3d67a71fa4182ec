//! HashiCorp Vault KV events, forwarded from Vault's event stream.

use std::sync::Arc;

use serde_json::Value;

use super::read::*;
use super::{Notification, Origin, PayloadError, Place, Sender, StoreBackend};
use crate::core::external_secret::RemoteKey;

pub struct Vault;

impl Sender for Vault {
    fn name(&self) -> &'static str {
        "vault"
    }

    /// A Vault event: `data.event_type`.
    fn recognizes(&self, first: &Value) -> bool {
        first
            .get("data")
            .is_some_and(|d| d.get("event_type").is_some())
    }

    fn parse(&self, body: &Value) -> Result<Notification, PayloadError> {
        parse(body)
    }

    fn read_store(&self, provider: &str, settings: &Value) -> Option<Arc<dyn StoreBackend>> {
        (provider == "vault").then(|| Arc::new(VaultStore::read(settings)) as _)
    }
}

/// The KV mount of a change, without slashes, where the event names it.
#[derive(Debug, PartialEq)]
pub struct VaultMount(pub Option<String>);

impl Place for VaultMount {}

/// A `vault` store.
#[derive(Debug, PartialEq)]
pub struct VaultStore {
    /// The KV mount, without slashes.
    mount: Option<String>,
    kv_v1: bool,
}

impl VaultStore {
    fn read(settings: &Value) -> VaultStore {
        VaultStore {
            mount: setting(settings, "path").map(|p| p.trim_matches('/').to_owned()),
            kv_v1: setting(settings, "version").as_deref() == Some("v1"),
        }
    }
}

impl StoreBackend for VaultStore {
    /// The secret read for a key, as `<mount>/<path>` without KV v2's `data/` segment, the way
    /// ESO builds it: a key that starts with the store's mount has it cut (and, on KV v2, a
    /// `data/` after it); any other key is under the mount as written. Without a mount in the
    /// store the key is the whole path, with `data/` after its mount on KV v2.
    fn spellings(&self, key: &RemoteKey) -> Vec<String> {
        let key = &key.key;
        let path = match self.mount.as_deref().filter(|m| !m.is_empty()) {
            Some(mount) => {
                let rest = match key.strip_prefix(&format!("{mount}/")) {
                    Some(rest) if !self.kv_v1 => rest.strip_prefix("data/").unwrap_or(rest),
                    Some(rest) => rest,
                    None => key,
                };
                format!("{mount}/{rest}")
            }
            None if !self.kv_v1 => key.replacen("/data/", "/", 1),
            None => key.to_owned(),
        };
        vec![path]
    }

    fn accepts(&self, origin: &Origin) -> bool {
        origin.place::<VaultMount>().is_some_and(
            |VaultMount(from)| !matches!((&self.mount, from), (Some(a), Some(b)) if a != b),
        )
    }
}

/// HashiCorp Vault KV events (as Vault's event stream sends them, in a CloudEvents envelope).
/// `secret/data/prod/db` on a KV v2 mount `secret/` is `prod/db` to an ESO Vault store whose
/// path is `secret`, and `secret/prod/db` to one without a path.
pub fn parse(value: &Value) -> Result<Notification, PayloadError> {
    let data = value.get("data").unwrap_or(value);
    let event_type = text(data, "event_type").ok_or_else(|| shape("no data.event_type"))?;
    let event = data.get("event").ok_or_else(|| shape("no data.event"))?;
    let id = id_of(event, "id").or_else(|| id_of(value, "id"));
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
    let origin = Origin::new(VaultMount((!mount.is_empty()).then(|| mount.to_owned())));
    notification
        .changes
        .push(change(relative, also, Some(event_type), id, Some(origin)));
    Ok(notification)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::senders::{fixture, spelled, store};
    use serde_json::json;

    #[test]
    fn reads_its_stores() {
        assert_eq!(
            VaultStore::read(
                &json!({"server": "https://vault:8200", "path": "/secret/", "version": "v2"})
            ),
            VaultStore {
                mount: Some("secret".into()),
                kv_v1: false
            }
        );
    }

    #[test]
    fn keys_are_spelled_as_eso_reads_them() {
        let vault = store(json!({"vault": {"server": "s", "path": "secret"}}));
        assert_eq!(spelled(&vault, "prod/db"), ["secret/prod/db"]);
        assert_eq!(spelled(&vault, "secret/prod/db"), ["secret/prod/db"]);
        assert_eq!(spelled(&vault, "secret/data/prod/db"), ["secret/prod/db"]);
        assert_eq!(
            spelled(&vault, "data/app"),
            ["secret/data/app"],
            "ESO reads secret/data/data/app: the logical secret data/app"
        );
        let no_mount = store(json!({"vault": {"server": "s"}}));
        assert_eq!(spelled(&no_mount, "kv/data/prod/db"), ["kv/prod/db"]);
        assert_eq!(spelled(&no_mount, "kv/prod/db"), ["kv/prod/db"]);
        let v1 = store(json!({"vault": {"server": "s", "path": "kv", "version": "v1"}}));
        assert_eq!(spelled(&v1, "data/x"), ["kv/data/x"]);
        assert_eq!(spelled(&v1, "kv/data/x"), ["kv/data/x"]);
    }

    fn vault(body: &[u8]) -> Result<Notification, PayloadError> {
        parse(&json(body)?)
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
}
