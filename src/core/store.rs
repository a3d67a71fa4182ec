//! SecretStores and ClusterSecretStores: which store an ExternalSecret reads from, and what
//! that store reads. How a provider's stores spell keys and which changes concern them is the
//! business of the sender that speaks for the provider (`senders/`): a store's
//! [`StoreBackend`] comes from it, through the [`StoreReader`] the service is built with.
//! Pure: the watch feeds objects in, the index asks whether a change concerns a store.

use std::fmt;
use std::sync::Arc;

use kube::api::DynamicObject;
use serde_json::Value;

use crate::core::change::Origin;
use crate::core::external_secret::RemoteKey;

/// A SecretStore (in a namespace) or a ClusterSecretStore (`namespace: None`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StoreId {
    pub namespace: Option<Arc<str>>,
    pub name: Arc<str>,
}

impl StoreId {
    pub fn namespaced(namespace: &str, name: &str) -> Self {
        StoreId {
            namespace: Some(namespace.into()),
            name: name.into(),
        }
    }

    pub fn cluster(name: &str) -> Self {
        StoreId {
            namespace: None,
            name: name.into(),
        }
    }

    /// The store an ExternalSecret in `namespace` names with `storeRef.kind` and `.name`: a
    /// SecretStore lives in the ExternalSecret's own namespace.
    pub fn referenced(namespace: &str, kind: Option<&str>, name: &str) -> Self {
        match kind {
            Some("ClusterSecretStore") => StoreId::cluster(name),
            _ => StoreId::namespaced(namespace, name),
        }
    }

    /// The id of a SecretStore or ClusterSecretStore object.
    pub fn of(object: &DynamicObject) -> Option<StoreId> {
        let name = object.metadata.name.as_deref()?;
        Some(match object.metadata.namespace.as_deref() {
            Some(namespace) => StoreId::namespaced(namespace, name),
            None => StoreId::cluster(name),
        })
    }
}

impl fmt::Display for StoreId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.namespace {
            Some(namespace) => write!(f, "SecretStore {namespace}/{}", self.name),
            None => write!(f, "ClusterSecretStore {}", self.name),
        }
    }
}

/// How the stores of one provider read keys, and which changes concern them.
pub trait StoreBackend: fmt::Debug + Send + Sync {
    /// How the provider names the secret an ExternalSecret asks for with `key`: the spellings
    /// its change events use, normalized.
    fn spellings(&self, key: &RemoteKey) -> Vec<String> {
        vec![key.key.clone()]
    }

    /// Whether a change from `origin` can concern this store: the same provider, and the same
    /// region, project or vault where both name one.
    fn accepts(&self, origin: &Origin) -> bool;

    /// Whether a change to a whole scope (a Doppler config, an Infisical folder) concerns every
    /// secret this store reads.
    fn in_scope(&self, _origin: &Origin) -> bool {
        false
    }

    /// Whether a key read through this store is in the scope a change names, though the
    /// store's own scope is not.
    fn key_in_scope(&self, _key: &RemoteKey, _origin: &Origin) -> bool {
        false
    }
}

/// Reads the entry of a store's `spec.provider` (the provider's field name, e.g. `gcpsm`, and
/// its settings) into the backend of the sender that speaks for that provider; `None` for a
/// provider no change event comes from.
pub type StoreReader = fn(provider: &str, settings: &Value) -> Option<Arc<dyn StoreBackend>>;

/// What a store reads from: its `spec.provider` and the backend read from it.
#[derive(Debug, Clone)]
pub struct Backend {
    /// `spec.provider` as the store gives it: the same settings read the same backend.
    provider: Value,
    reading: Arc<dyn StoreBackend>,
}

/// The backend of a provider no change event comes from: no change concerns it.
#[derive(Debug)]
struct Silent;

impl StoreBackend for Silent {
    fn accepts(&self, _origin: &Origin) -> bool {
        false
    }
}

impl PartialEq for Backend {
    fn eq(&self, other: &Backend) -> bool {
        self.provider == other.provider
    }
}

impl Backend {
    /// Reads `spec.provider` of a SecretStore or ClusterSecretStore.
    pub fn from_object(object: &DynamicObject, read: StoreReader) -> Backend {
        let provider = object.data["spec"]["provider"].clone();
        let entry = provider.as_object().and_then(|p| p.iter().next());
        let reading = entry.and_then(|(name, settings)| read(name, settings));
        Backend {
            reading: reading.unwrap_or_else(|| Arc::new(Silent)),
            provider,
        }
    }

    /// A backend made directly, for tests of what reads backends.
    pub fn new(provider: Value, reading: Arc<dyn StoreBackend>) -> Backend {
        Backend { provider, reading }
    }

    /// The backend's own reading: for tests of a sender's stores.
    pub fn reading(&self) -> &dyn StoreBackend {
        &*self.reading
    }

    pub fn spellings(&self, key: &RemoteKey) -> Vec<String> {
        self.reading.spellings(key)
    }

    pub fn accepts(&self, origin: &Origin) -> bool {
        self.reading.accepts(origin)
    }

    pub fn in_scope(&self, origin: &Origin) -> bool {
        self.reading.in_scope(origin)
    }

    pub fn key_in_scope(&self, key: &RemoteKey, origin: &Origin) -> bool {
        self.reading.key_in_scope(key, origin)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_references_resolve_to_namespace_or_cluster() {
        assert_eq!(
            StoreId::referenced("team-a", None, "s"),
            StoreId::namespaced("team-a", "s")
        );
        assert_eq!(
            StoreId::referenced("team-a", Some("ClusterSecretStore"), "s"),
            StoreId::cluster("s")
        );
        assert_eq!(StoreId::cluster("s").to_string(), "ClusterSecretStore s");
    }
}
