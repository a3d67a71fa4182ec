//! The key → ExternalSecret index. No I/O: the watch feeds it objects, the webhook asks it
//! which ExternalSecrets a changed key concerns.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use crate::core::change::{Origin, SecretChange};
use crate::core::external_secret::{IndexedSecret, RemoteKey, SecretId, normalize_key};
use crate::core::store::{Backend, StoreId};

#[derive(Default)]
pub struct RefreshIndex {
    secrets: HashMap<SecretId, Arc<IndexedSecret>>,
    /// Remote key → the ExternalSecrets that name it, under the key as written and as its
    /// store's provider spells it (an AWS store's prefix, a Vault mount).
    by_key: HashMap<String, Vec<SecretId>>,
    /// For each ExternalSecret, each of its keys as its store's provider spells it (none for
    /// a store not known): computed when it is filed, since they depend on its stores, which
    /// may change after it was filed. `by_key` holds it under these and the keys as written.
    spelled: HashMap<SecretId, Vec<Vec<String>>>,
    /// Normalized `dataFrom[].find.path` → the ExternalSecrets with a find rule under it. A
    /// rule with a path can only match keys that start with it, so a lookup tries just the
    /// ExternalSecrets filed under a prefix of the key, not every rule in the cluster.
    finds_by_path: HashMap<String, Vec<SecretId>>,
    /// The lengths of the paths in `finds_by_path`, each with how many paths have it: the
    /// prefixes of a key worth looking up.
    find_path_lengths: BTreeMap<usize, usize>,
    /// ExternalSecrets with a find rule that has no path (a name pattern only), tried one by
    /// one.
    finds_anywhere: HashSet<SecretId>,
    stores: HashMap<StoreId, Backend>,
    /// Store → the ExternalSecrets that read from it.
    readers: HashMap<StoreId, HashSet<SecretId>>,
    /// How many `dataFrom[].find` rules no change event can match, by reason.
    unmatchable: BTreeMap<&'static str, usize>,
    /// The ExternalSecrets with such rules.
    with_unmatchable: BTreeSet<SecretId>,
}

impl RefreshIndex {
    pub fn len(&self) -> usize {
        self.secrets.len()
    }

    pub fn is_empty(&self) -> bool {
        self.secrets.is_empty()
    }

    pub fn store_count(&self) -> usize {
        self.stores.len()
    }

    /// How many `dataFrom[].find` rules of the indexed ExternalSecrets no change event can
    /// match, for one of [`crate::core::external_secret::UNMATCHABLE`].
    pub fn unmatchable_rules(&self, reason: &str) -> usize {
        self.unmatchable.get(reason).copied().unwrap_or(0)
    }

    /// The first `limit` ExternalSecrets (by namespace and name) with a rule no change event
    /// can match, and how many there are.
    pub fn with_unmatchable_rules(&self, limit: usize) -> (Vec<Arc<IndexedSecret>>, usize) {
        let listed = self
            .with_unmatchable
            .iter()
            .take(limit)
            .filter_map(|id| self.secrets.get(id).cloned())
            .collect();
        (listed, self.with_unmatchable.len())
    }

    /// Adds an ExternalSecret or replaces the one with the same namespace and name.
    pub fn apply(&mut self, secret: IndexedSecret) {
        self.file(Arc::new(secret));
    }

    fn file(&mut self, secret: Arc<IndexedSecret>) {
        self.delete(&secret.id);
        let spelled: Vec<Vec<String>> = secret
            .keys
            .iter()
            .map(|remote| {
                let backend = self.backend(remote);
                backend.map(|b| b.spellings(remote)).unwrap_or_default()
            })
            .collect();
        for key in filed_keys(&secret, &spelled) {
            self.by_key
                .entry(key.to_owned())
                .or_default()
                .push(secret.id.clone());
        }
        self.spelled.insert(secret.id.clone(), spelled);
        for find in &secret.finds {
            let Some(path) = &find.path else {
                self.finds_anywhere.insert(secret.id.clone());
                continue;
            };
            let ids = self.finds_by_path.entry(path.clone()).or_default();
            if ids.is_empty() {
                *self.find_path_lengths.entry(path.len()).or_default() += 1;
            }
            if !ids.contains(&secret.id) {
                ids.push(secret.id.clone());
            }
        }
        for store in secret.stores() {
            self.readers
                .entry(store.clone())
                .or_default()
                .insert(secret.id.clone());
        }
        for reason in &secret.unmatchable {
            *self.unmatchable.entry(reason).or_default() += 1;
        }
        if !secret.unmatchable.is_empty() {
            self.with_unmatchable.insert(secret.id.clone());
        }
        self.secrets.insert(secret.id.clone(), secret);
    }

    pub fn delete(&mut self, id: &SecretId) {
        let Some(old) = self.secrets.remove(id) else {
            return;
        };
        self.with_unmatchable.remove(id);
        for reason in &old.unmatchable {
            if let Some(count) = self.unmatchable.get_mut(reason) {
                *count -= 1;
                if *count == 0 {
                    self.unmatchable.remove(reason);
                }
            }
        }
        let spelled = self.spelled.remove(id).unwrap_or_default();
        for key in filed_keys(&old, &spelled) {
            if let Some(ids) = self.by_key.get_mut(key) {
                ids.retain(|other| other != id);
                if ids.is_empty() {
                    self.by_key.remove(key);
                }
            }
        }
        for store in old.stores() {
            if let Some(readers) = self.readers.get_mut(store) {
                readers.remove(id);
                if readers.is_empty() {
                    self.readers.remove(store);
                }
            }
        }
        for find in &old.finds {
            let Some(path) = &find.path else {
                self.finds_anywhere.remove(id);
                continue;
            };
            let Some(ids) = self.finds_by_path.get_mut(path) else {
                continue;
            };
            ids.retain(|other| other != id);
            if ids.is_empty() {
                self.finds_by_path.remove(path);
                if let Some(count) = self.find_path_lengths.get_mut(&path.len()) {
                    *count -= 1;
                    if *count == 0 {
                        self.find_path_lengths.remove(&path.len());
                    }
                }
            }
        }
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

    /// Adds or replaces a store; the ExternalSecrets reading it are filed anew if what it
    /// reads from changed.
    pub fn apply_store(&mut self, id: StoreId, backend: Backend) {
        if self.stores.get(&id) == Some(&backend) {
            return;
        }
        self.stores.insert(id.clone(), backend);
        self.refile_readers(&id);
    }

    pub fn delete_store(&mut self, id: &StoreId) {
        if self.stores.remove(id).is_some() {
            self.refile_readers(id);
        }
    }

    /// Replaces the stores in a scope, as after a fresh list: the ClusterSecretStores when
    /// `cluster`, else the SecretStores of `namespace` (of every namespace for `None`).
    pub fn reset_stores(
        &mut self,
        cluster: bool,
        namespace: Option<&str>,
        stores: impl IntoIterator<Item = (StoreId, Backend)>,
    ) {
        let in_scope = |id: &StoreId| match &id.namespace {
            None => cluster,
            Some(ns) => !cluster && namespace.is_none_or(|wanted| wanted == &**ns),
        };
        let mut fresh: HashMap<StoreId, Backend> = stores.into_iter().collect();
        let stale: Vec<StoreId> = self
            .stores
            .keys()
            .filter(|id| in_scope(id) && !fresh.contains_key(*id))
            .cloned()
            .collect();
        for id in &stale {
            self.delete_store(id);
        }
        for (id, backend) in fresh.drain() {
            self.apply_store(id, backend);
        }
    }

    fn refile_readers(&mut self, store: &StoreId) {
        let readers: Vec<SecretId> = self
            .readers
            .get(store)
            .into_iter()
            .flatten()
            .cloned()
            .collect();
        for id in readers {
            if let Some(secret) = self.secrets.get(&id).cloned() {
                self.file(secret);
            }
        }
    }

    fn backend(&self, remote: &RemoteKey) -> Option<&Backend> {
        self.stores.get(remote.store.as_ref()?)
    }

    pub fn get(&self, id: &SecretId) -> Option<Arc<IndexedSecret>> {
        self.secrets.get(id).cloned()
    }

    /// The ExternalSecrets that reference `key`, from whatever provider, each once, in a
    /// stable order.
    pub fn lookup(&self, key: &str) -> Vec<Arc<IndexedSecret>> {
        self.find(&[normalize_key(key)], None)
    }

    /// The ExternalSecrets a change concerns: those reading the changed key (in any of its
    /// spellings) from a store of the provider and place the event names, or, for a change
    /// to a whole scope, every ExternalSecret reading from a store in that scope.
    pub fn lookup_change(&self, change: &SecretChange) -> Vec<Arc<IndexedSecret>> {
        if let Some(origin) = change.origin.as_ref().filter(|o| o.is_scope()) {
            return self.lookup_scope(origin);
        }
        let mut spellings: Vec<&str> = vec![normalize_key(&change.key)];
        for other in &change.also {
            let other = normalize_key(other);
            if !spellings.contains(&other) {
                spellings.push(other);
            }
        }
        self.find(&spellings, change.origin.as_ref())
    }

    fn find(&self, spellings: &[&str], origin: Option<&Origin>) -> Vec<Arc<IndexedSecret>> {
        let mut candidates: Vec<&SecretId> = Vec::new();
        for key in spellings {
            candidates.extend(self.by_key.get(*key).into_iter().flatten());
            // Only ExternalSecrets with a find rule whose path is a prefix of the key can
            // match it (FindRule::matches), besides those with a rule without path.
            let under_prefix = self
                .find_path_lengths
                .keys()
                .take_while(|len| **len <= key.len())
                .filter_map(|len| key.get(..*len))
                .filter_map(|prefix| self.finds_by_path.get(prefix))
                .flatten();
            candidates.extend(under_prefix);
        }
        candidates.extend(&self.finds_anywhere);
        candidates.sort();
        candidates.dedup();
        candidates
            .into_iter()
            .filter_map(|id| self.secrets.get(id))
            .filter(|secret| self.concerns(secret, spellings, origin))
            .cloned()
            .collect()
    }

    /// Whether one of the ExternalSecret's keys or find rules names a spelling of the changed
    /// key, read from a store the change can concern. A store not (yet) known is trusted to
    /// be the right one: a refresh too many costs one re-sync, one missed leaves a stale secret.
    fn concerns(
        &self,
        secret: &IndexedSecret,
        spellings: &[&str],
        origin: Option<&Origin>,
    ) -> bool {
        let spelled = self.spelled.get(&secret.id);
        let by_key = secret.keys.iter().enumerate().any(|(i, remote)| {
            let written = spellings.contains(&remote.key.as_str());
            let names = spelled.and_then(|s| s.get(i)).into_iter().flatten();
            let mut provider = names.map(|name| spellings.contains(&name.as_str()));
            match (self.backend(remote), origin) {
                (None, _) => written,
                (Some(_), None) => written || provider.any(|found| found),
                (Some(backend), Some(origin)) => {
                    backend.accepts(origin) && provider.any(|found| found)
                }
            }
        });
        by_key
            || secret.finds.iter().any(|find| {
                let store = find.store.as_ref().and_then(|s| self.stores.get(s));
                let accepted = match (store, origin) {
                    (Some(backend), Some(origin)) => backend.accepts(origin),
                    _ => true,
                };
                accepted && spellings.iter().any(|key| find.matches(key))
            })
    }

    /// Every ExternalSecret reading from a store in the scope a change names, or a key in
    /// it; and, as for keys, those reading from a store not (yet) known.
    fn lookup_scope(&self, origin: &Origin) -> Vec<Arc<IndexedSecret>> {
        let mut found: Vec<Arc<IndexedSecret>> = Vec::new();
        for (store, readers) in &self.readers {
            let backend = self.stores.get(store);
            let whole = backend.is_none_or(|b| b.in_scope(origin));
            for secret in readers.iter().filter_map(|id| self.secrets.get(id)) {
                let concerned = whole
                    || backend.is_some_and(|b| {
                        let via_store = secret
                            .keys
                            .iter()
                            .filter(|k| k.store.as_ref() == Some(store));
                        via_store.into_iter().any(|key| b.key_in_scope(key, origin))
                    });
                if concerned {
                    found.push(secret.clone());
                }
            }
        }
        found.sort_by(|a, b| a.id.cmp(&b.id));
        found.dedup_by(|a, b| a.id == b.id);
        found
    }
}

/// The keys an ExternalSecret is filed under: each as written and as its provider spells it,
/// each once.
fn filed_keys<'a>(secret: &'a IndexedSecret, spelled: &'a [Vec<String>]) -> Vec<&'a str> {
    let written = secret.keys.iter().map(|remote| remote.key.as_str());
    let mut keys: Vec<&str> = Vec::new();
    for key in written.chain(spelled.iter().flatten().map(String::as_str)) {
        if !keys.contains(&key) {
            keys.push(key);
        }
    }
    keys
}

/// Watch errors in a row, with none since, after which the index counts as out of date.
/// Kubernetes' client retries with backoff (0.8 s, 1.6 s, 3.2 s, …), so this is a few seconds
/// of failure, not one dropped connection.
pub const FAILING_AFTER_ERRORS: u32 = 3;
/// A watch that resumes without news yields no event; one whose last error is this old has
/// recovered (the client's longest backoff is 30 s).
pub const ERRORS_FORGOTTEN_AFTER: Duration = Duration::from_secs(90);

/// The index as the watch and the webhook share it, with whether it can be trusted: filled by
/// a first full list, and its watch not failing.
pub struct SharedIndex {
    index: RwLock<RefreshIndex>,
    /// Bumped on every write, for those waiting for an object to change.
    changes: tokio::sync::watch::Sender<u64>,
    synced: AtomicBool,
    errors_in_a_row: AtomicU32,
    last_error_ms: AtomicU64,
    started: Instant,
}

impl Default for SharedIndex {
    fn default() -> Self {
        SharedIndex {
            index: RwLock::default(),
            changes: tokio::sync::watch::Sender::new(0),
            synced: AtomicBool::new(false),
            errors_in_a_row: AtomicU32::new(0),
            last_error_ms: AtomicU64::new(0),
            started: Instant::now(),
        }
    }
}

impl SharedIndex {
    /// Synced, and its watch is not failing.
    pub fn is_ready(&self) -> bool {
        self.synced.load(Ordering::Acquire) && !self.is_failing()
    }

    pub fn is_synced(&self) -> bool {
        self.synced.load(Ordering::Acquire)
    }

    pub fn mark_synced(&self) {
        self.synced.store(true, Ordering::Release);
    }

    /// The watch is gone: the index can no longer be trusted.
    pub fn mark_unsynced(&self) {
        self.synced.store(false, Ordering::Release);
    }

    /// The watch's longest current run of errors (over all its scopes), and that one just
    /// happened if `now_failed`.
    pub fn record_watch_errors(&self, in_a_row: u32, now_failed: bool) {
        if now_failed {
            let since_start = self.started.elapsed().as_millis();
            self.last_error_ms.store(
                u64::try_from(since_start).unwrap_or(u64::MAX),
                Ordering::Release,
            );
        }
        self.errors_in_a_row.store(in_a_row, Ordering::Release);
    }

    fn is_failing(&self) -> bool {
        if self.errors_in_a_row.load(Ordering::Acquire) < FAILING_AFTER_ERRORS {
            return false;
        }
        let last = Duration::from_millis(self.last_error_ms.load(Ordering::Acquire));
        self.started.elapsed().saturating_sub(last) < ERRORS_FORGOTTEN_AFTER
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
        let result = {
            let mut guard = self
                .index
                .write()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            f(&mut guard)
        };
        self.changes.send_modify(|generation| *generation += 1);
        result
    }

    /// Wakes on every write after this call.
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<u64> {
        self.changes.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::external_secret::FindRule;

    fn secret(namespace: &str, name: &str, keys: &[&str]) -> IndexedSecret {
        IndexedSecret::with_keys(namespace, name, keys)
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
            store: None,
        });
        index.apply(finder);
        assert_eq!(names(index.lookup("/prod/db")), ["a/finder"], "listed once");
        assert_eq!(names(index.lookup("prod/cache")), ["a/finder"]);
        index.delete(&SecretId::new("a", "finder"));
        assert!(index.lookup("prod/cache").is_empty());
    }

    fn finder(
        namespace: &str,
        name: &str,
        path: Option<&str>,
        regexp: Option<&str>,
    ) -> IndexedSecret {
        let mut finder = secret(namespace, name, &[]);
        finder.finds.push(FindRule {
            path: path.map(str::to_owned),
            name: regexp.map(|r| regex::Regex::new(r).expect("regexp")),
            store: None,
        });
        finder
    }

    #[test]
    fn find_rules_match_by_path_prefix_and_pattern() {
        let mut index = RefreshIndex::default();
        index.apply(finder("a", "prod", Some("prod/"), None));
        index.apply(finder("a", "prod-db", Some("prod/db"), Some("^db")));
        index.apply(finder("b", "cfg", None, Some("^cfg-")));
        let mut both = finder("b", "both", Some("stage/"), None);
        both.finds.push(FindRule {
            path: Some("prod/".into()),
            name: None,
            store: None,
        });
        index.apply(both);
        assert_eq!(
            names(index.lookup("/prod/db-main")),
            ["a/prod", "a/prod-db", "b/both"]
        );
        assert_eq!(
            names(index.lookup("prod/dbx/other")),
            ["a/prod", "b/both"],
            "pattern"
        );
        assert_eq!(names(index.lookup("stage/cfg-x")), ["b/both", "b/cfg"]);
        assert!(index.lookup("pro").is_empty(), "shorter than every path");
        assert!(index.lookup("production/x").is_empty(), "not under prod/");
        assert_eq!(
            names(index.lookup("prod/é")),
            ["a/prod", "b/both"],
            "not a char boundary"
        );
    }

    #[test]
    fn unmatchable_rules_are_counted_while_indexed() {
        use crate::core::external_secret::{INVALID_REGEXP, TAGS_ONLY};
        let with = |name: &str, reasons: &[&'static str]| {
            let mut secret = secret("a", name, &["k"]);
            secret.unmatchable = reasons.to_vec();
            secret
        };
        let mut index = RefreshIndex::default();
        index.apply(with("one", &[TAGS_ONLY, TAGS_ONLY]));
        index.apply(with("two", &[TAGS_ONLY, INVALID_REGEXP]));
        assert_eq!(index.unmatchable_rules(TAGS_ONLY), 3);
        assert_eq!(index.unmatchable_rules(INVALID_REGEXP), 1);
        assert_eq!(index.with_unmatchable_rules(1).0.len(), 1);
        assert_eq!(index.with_unmatchable_rules(1).1, 2);
        index.apply(with("one", &[]));
        assert_eq!(index.unmatchable_rules(TAGS_ONLY), 1, "replaced");
        let (listed, count) = index.with_unmatchable_rules(10);
        assert_eq!((names(listed), count), (vec!["a/two".to_owned()], 1));
        index.reset(None, []);
        assert_eq!(index.unmatchable_rules(TAGS_ONLY), 0);
        assert!(index.unmatchable.is_empty(), "nothing left behind");
        assert!(index.with_unmatchable.is_empty(), "nothing left behind");
    }

    #[test]
    fn deleting_find_rules_leaves_nothing_behind() {
        let mut index = RefreshIndex::default();
        index.apply(finder("a", "one", Some("prod/"), None));
        index.apply(finder("a", "two", Some("prod/"), None));
        index.apply(finder("a", "three", None, Some("x")));
        index.apply(finder("a", "one", Some("stage/"), None));
        assert_eq!(
            names(index.lookup("prod/k")),
            ["a/two"],
            "replaced rule is gone"
        );
        for name in ["one", "two", "three"] {
            index.delete(&SecretId::new("a", name));
        }
        assert!(index.finds_by_path.is_empty());
        assert!(index.find_path_lengths.is_empty());
        assert!(index.finds_anywhere.is_empty());
    }

    fn reading(namespace: &str, name: &str, key: &str, store: &StoreId) -> IndexedSecret {
        let mut secret = secret(namespace, name, &[key]);
        secret.keys[0].store = Some(store.clone());
        secret
    }

    /// Where the test store's changes happen.
    #[derive(Debug, PartialEq)]
    struct Here;

    impl crate::core::change::Place for Here {}

    /// A store that spells each key with a prefix and accepts changes from [`Here`]: what the
    /// index sees of a provider. (The senders' tests run the index with their real stores.)
    #[derive(Debug)]
    struct Prefixed(&'static str);

    impl crate::core::store::StoreBackend for Prefixed {
        fn spellings(&self, key: &RemoteKey) -> Vec<String> {
            vec![format!("{}{}", self.0, key.key)]
        }

        fn accepts(&self, origin: &Origin) -> bool {
            origin.place::<Here>().is_some()
        }
    }

    fn prefixed(prefix: &'static str) -> Backend {
        Backend::new(
            serde_json::json!({"test": {"prefix": prefix}}),
            Arc::new(Prefixed(prefix)),
        )
    }

    #[test]
    fn stores_arriving_or_leaving_refile_their_readers() {
        let mut index = RefreshIndex::default();
        let store = StoreId::namespaced("a", "ie");
        index.apply(reading("a", "prefixed", "db", &store));
        let here = || Some(Origin::new(Here));
        assert!(
            index
                .lookup_change(&SecretChange::named("prod/db", here()))
                .is_empty(),
            "without its store only the key as written is known"
        );
        index.apply_store(store.clone(), prefixed("prod/"));
        assert_eq!(
            names(index.lookup_change(&SecretChange::named("prod/db", here()))),
            ["a/prefixed"]
        );
        index.apply_store(store.clone(), prefixed("stage/"));
        assert!(
            index
                .lookup_change(&SecretChange::named("prod/db", here()))
                .is_empty()
        );
        assert_eq!(
            names(index.lookup_change(&SecretChange::named("stage/db", here()))),
            ["a/prefixed"]
        );
        index.reset_stores(false, Some("a"), []);
        assert_eq!(index.store_count(), 0);
        assert_eq!(
            names(index.lookup_change(&SecretChange::named("db", here()))),
            ["a/prefixed"]
        );
        index.delete(&SecretId::new("a", "prefixed"));
        assert!(index.by_key.is_empty() && index.readers.is_empty() && index.spelled.is_empty());
    }

    #[test]
    fn resetting_stores_keeps_other_scopes() {
        let mut index = RefreshIndex::default();
        index.apply_store(StoreId::namespaced("a", "s"), prefixed(""));
        index.apply_store(StoreId::namespaced("b", "s"), prefixed(""));
        index.apply_store(StoreId::cluster("c"), prefixed(""));
        index.reset_stores(false, Some("a"), []);
        assert_eq!(index.store_count(), 2);
        index.reset_stores(true, None, [(StoreId::cluster("d"), prefixed(""))]);
        let mut left: Vec<String> = index.stores.keys().map(ToString::to_string).collect();
        left.sort();
        assert_eq!(left, ["ClusterSecretStore d", "SecretStore b/s"]);
    }

    #[test]
    fn shared_index_starts_unready() {
        let shared = SharedIndex::default();
        assert!(!shared.is_ready());
        shared.write(|index| index.apply(secret("a", "b", &["k"])));
        shared.mark_synced();
        assert!(shared.is_ready());
        assert_eq!(shared.read(|index| index.len()), 1);
    }

    #[test]
    fn a_failing_watch_makes_it_unready_until_it_recovers() {
        let shared = SharedIndex::default();
        shared.mark_synced();
        shared.record_watch_errors(FAILING_AFTER_ERRORS - 1, true);
        assert!(shared.is_ready(), "a blip is tolerated");
        shared.record_watch_errors(FAILING_AFTER_ERRORS, true);
        assert!(!shared.is_ready());
        shared.record_watch_errors(0, false);
        assert!(shared.is_ready(), "an event arrived");
    }

    #[test]
    fn old_errors_are_forgotten() {
        let shared = SharedIndex::default();
        shared.mark_synced();
        shared.record_watch_errors(FAILING_AFTER_ERRORS, false);
        // The last error is at time 0, as if long ago: no error has been recorded since.
        shared.last_error_ms.store(0, Ordering::Release);
        let aged = Instant::now() - ERRORS_FORGOTTEN_AFTER - Duration::from_secs(1);
        let shared = SharedIndex {
            started: aged,
            ..shared
        };
        assert!(shared.is_ready());
    }
}
