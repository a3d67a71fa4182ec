//! HashiCorp Vault KV events, forwarded from Vault's event stream.

use serde_json::Value;

use super::read::*;
use super::{Notification, Origin, PayloadError, Sender};

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
    let origin = Origin::Vault {
        mount: (!mount.is_empty()).then(|| mount.to_owned()),
    };
    notification
        .changes
        .push(change(relative, also, Some(event_type), id, Some(origin)));
    Ok(notification)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::senders::fixture;

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
