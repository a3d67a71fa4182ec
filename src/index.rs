//! The key → ExternalSecret index. No I/O: the watch feeds it objects, the webhook asks it
//! which ExternalSecrets a changed key concerns.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};

use crate::external_secret::{IndexedSecret, SecretId, normalize_key};

#[derive(Default)]
pub struct RefreshIndex {
    secrets: HashMap<SecretId, Arc<IndexedSecret>>,
    /// Normalized remote key → the ExternalSecrets that name it.
    by_key: HashMap<String, Vec<SecretId>>,
    /// ExternalSecrets with `dataFrom[].find` rules, tried one by one.
    with_finds: HashSet<SecretId>,
}

impl RefreshIndex {
    pub fn len(&self) -> usize {
        self.secrets.len()
    }

    pub fn is_empty(&self) -> bool {
        self.secrets.is_empty()
    }

    /// Adds an ExternalSecret or replaces the one with the same namespace and name.
    pub fn apply(&mut self, secret: IndexedSecret) {
        self.delete(&secret.id);
        let secret = Arc::new(secret);
        for key in &secret.keys {
            self.by_key
                .entry(key.clone())
                .or_default()
                .push(secret.id.clone());
        }
        if !secret.finds.is_empty() {
            self.with_finds.insert(secret.id.clone());
        }
        self.secrets.insert(secret.id.clone(), secret);
    }

    pub fn delete(&mut self, id: &SecretId) {
        let Some(old) = self.secrets.remove(id) else {
            return;
        };
        for key in &old.keys {
            if let Some(ids) = self.by_key.get_mut(key) {
                ids.retain(|other| other != id);
                if ids.is_empty() {
                    self.by_key.remove(key);
                }
            }
        }
        self.with_finds.remove(id);
    }

    /// Replaces every ExternalSecret in `namespace` (all of them for `None`) with `secrets`,
    /// as after a fresh list.
    pub fn reset(
        &mut self,
        namespace: Option<&str>,
        secrets: impl IntoIterator<Item = IndexedSecret>,
    ) {
        let stale: Vec<SecretId> = self
            .secrets
            .keys()
            .filter(|id| namespace.is_none_or(|ns| &*id.namespace == ns))
            .cloned()
            .collect();
        for id in &stale {
            self.delete(id);
        }
        for secret in secrets {
            self.apply(secret);
        }
    }

    /// The ExternalSecrets that reference `key`, each once, in a stable order.
    pub fn lookup(&self, key: &str) -> Vec<Arc<IndexedSecret>> {
        let key = normalize_key(key);
        let mut found: Vec<Arc<IndexedSecret>> = self
            .by_key
            .get(key)
            .into_iter()
            .flatten()
            .filter_map(|id| self.secrets.get(id).cloned())
            .collect();
        for id in &self.with_finds {
            if let Some(secret) = self.secrets.get(id)
                && secret.matches_find(key)
                && !found.iter().any(|f| &f.id == id)
            {
                found.push(secret.clone());
            }
        }
        found.sort_by(|a, b| a.id.cmp(&b.id));
        found
    }
}

/// The index as the watch and the webhook share it, with whether it has been filled yet.
#[derive(Default)]
pub struct SharedIndex {
    index: RwLock<RefreshIndex>,
    synced: AtomicBool,
}

impl SharedIndex {
    pub fn is_synced(&self) -> bool {
        self.synced.load(Ordering::Acquire)
    }

    pub fn mark_synced(&self) {
        self.synced.store(true, Ordering::Release);
    }

    /// Runs `f` on the index under the read lock. The lock is never held across an await.
    pub fn read<T>(&self, f: impl FnOnce(&RefreshIndex) -> T) -> T {
        let guard = self
            .index
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        f(&guard)
    }

    pub fn write<T>(&self, f: impl FnOnce(&mut RefreshIndex) -> T) -> T {
        let mut guard = self
            .index
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        f(&mut guard)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::external_secret::FindRule;

    fn secret(namespace: &str, name: &str, keys: &[&str]) -> IndexedSecret {
        IndexedSecret {
            id: SecretId::new(namespace, name),
            keys: keys.iter().map(|k| normalize_key(k).to_owned()).collect(),
            finds: Vec::new(),
            skip_reason: None,
            parent: None,
            problems: Vec::new(),
        }
    }

    fn names(found: Vec<Arc<IndexedSecret>>) -> Vec<String> {
        found.iter().map(|s| s.id.to_string()).collect()
    }

    #[test]
    fn lookup_ignores_leading_slash_on_either_side() {
        let mut index = RefreshIndex::default();
        index.apply(secret("a", "one", &["/prod/db"]));
        index.apply(secret("b", "two", &["prod/db", "prod/api"]));
        assert_eq!(names(index.lookup("prod/db")), ["a/one", "b/two"]);
        assert_eq!(names(index.lookup("/prod/db")), ["a/one", "b/two"]);
        assert_eq!(names(index.lookup("//prod/api")), ["b/two"]);
        assert!(index.lookup("prod/other").is_empty());
    }

    #[test]
    fn apply_replaces_and_delete_removes_every_key() {
        let mut index = RefreshIndex::default();
        index.apply(secret("a", "one", &["k1", "k2"]));
        index.apply(secret("a", "one", &["k2", "k3"]));
        assert!(index.lookup("k1").is_empty(), "old key is gone");
        assert_eq!(names(index.lookup("k3")), ["a/one"]);
        assert_eq!(index.len(), 1);
        index.delete(&SecretId::new("a", "one"));
        assert!(index.lookup("k2").is_empty());
        assert!(index.is_empty());
        assert!(index.by_key.is_empty(), "no empty key lists left behind");
    }

    #[test]
    fn reset_replaces_only_its_namespace() {
        let mut index = RefreshIndex::default();
        index.apply(secret("a", "old", &["k"]));
        index.apply(secret("b", "kept", &["k"]));
        index.reset(Some("a"), [secret("a", "new", &["k"])]);
        assert_eq!(names(index.lookup("k")), ["a/new", "b/kept"]);
        index.reset(None, [secret("c", "only", &["k"])]);
        assert_eq!(names(index.lookup("k")), ["c/only"]);
        assert_eq!(index.len(), 1);
    }

    #[test]
    fn find_rules_are_matched_once_beside_exact_keys() {
        let mut index = RefreshIndex::default();
        let mut finder = secret("a", "finder", &["prod/db"]);
        finder.finds.push(FindRule {
            path: Some("prod/".into()),
            name: None,
        });
        index.apply(finder);
        assert_eq!(names(index.lookup("/prod/db")), ["a/finder"], "listed once");
        assert_eq!(names(index.lookup("prod/cache")), ["a/finder"]);
        index.delete(&SecretId::new("a", "finder"));
        assert!(index.lookup("prod/cache").is_empty());
    }

    #[test]
    fn shared_index_starts_unsynced() {
        let shared = SharedIndex::default();
        assert!(!shared.is_synced());
        shared.write(|index| index.apply(secret("a", "b", &["k"])));
        shared.mark_synced();
        assert!(shared.is_synced());
        assert_eq!(shared.read(|index| index.len()), 1);
    }
}
