//! What an ExternalSecret references, and whether a metadata change makes ESO re-sync it.
//! Everything here runs when an object is indexed, never on a webhook's path.

use std::fmt;
use std::sync::Arc;

use kube::api::DynamicObject;
use regex::Regex;
use serde::Deserialize;

use crate::core::duration::{self, DurationError};
use crate::core::store::StoreId;

/// An ExternalSecret with this annotation set to "true" is never refreshed by webhooks.
pub const IGNORE_ANNOTATION: &str = "eso-refresher/ignore";

/// Why a `dataFrom[].find` rule can never match a change event: it selects by tags only, or
/// its regular expression does not compile. The `reason` of the unmatchable-rules metric.
pub const TAGS_ONLY: &str = "tags_only";
pub const INVALID_REGEXP: &str = "invalid_regexp";
pub const UNMATCHABLE: [&str; 2] = [TAGS_ONLY, INVALID_REGEXP];

/// Namespace and name of an ExternalSecret.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SecretId {
    pub namespace: Arc<str>,
    pub name: Arc<str>,
}

impl SecretId {
    pub fn new(namespace: &str, name: &str) -> Self {
        SecretId {
            namespace: namespace.into(),
            name: name.into(),
        }
    }
}

impl fmt::Display for SecretId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// A remote key as the index compares it: provider paths are written with or without a
/// leading slash ("/prod/db" and "prod/db" name the same Akeyless item).
pub fn normalize_key(key: &str) -> &str {
    key.trim_start_matches('/')
}

/// Why a matched ExternalSecret is not patched: a stable code (for metrics) and a sentence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkipReason {
    pub code: &'static str,
    pub text: String,
}

impl SkipReason {
    fn new(code: &'static str, text: String) -> Self {
        SkipReason { code, text }
    }
}

/// A remote key and the store it is read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteKey {
    /// Normalized.
    pub key: String,
    /// As the ExternalSecret writes it: providers build paths from it (an AWS `prefix` is
    /// prepended to it, an Infisical key that starts with `/` names its own folder).
    pub written: String,
    /// `None` when the ExternalSecret names no store (ESO refuses it; any change may concern it).
    pub store: Option<StoreId>,
}

/// A `dataFrom[].find` selector: every secret under `path` whose name matches `regexp`.
#[derive(Debug, Clone)]
pub struct FindRule {
    /// Normalized prefix; `None` matches any path.
    pub path: Option<String>,
    pub name: Option<Regex>,
    pub store: Option<StoreId>,
}

impl FindRule {
    /// `key` is normalized. The pattern is tried on the key with and without its leading slash
    /// and on its last segment, since providers differ in which of these they match: a refresh
    /// too many costs one re-sync, a refresh missed leaves a stale secret.
    pub fn matches(&self, key: &str) -> bool {
        if let Some(path) = &self.path
            && !key.starts_with(path.as_str())
        {
            return false;
        }
        match &self.name {
            None => true,
            Some(pattern) => {
                let last = key.rsplit('/').next().unwrap_or(key);
                pattern.is_match(key)
                    || pattern.is_match(last)
                    || (pattern.as_str().contains('/') && pattern.is_match(&format!("/{key}")))
            }
        }
    }
}

/// The part of an ExternalSecret the index keeps.
#[derive(Debug, Clone)]
pub struct IndexedSecret {
    pub id: SecretId,
    /// `data[].remoteRef.key` and `dataFrom[].extract.key` with their stores, without
    /// duplicates.
    pub keys: Vec<RemoteKey>,
    pub finds: Vec<FindRule>,
    /// Why it is not patched: opted out, or ESO would ignore a metadata change.
    pub skip_reason: Option<SkipReason>,
    /// The ClusterExternalSecret that controls this object and overwrites its annotations.
    pub parent: Option<String>,
    /// What could not be understood in the object (reported, never fatal).
    pub problems: Vec<String>,
    /// One of [`UNMATCHABLE`] for each `dataFrom[].find` rule no change event can match.
    pub unmatchable: Vec<&'static str>,
    /// What ESO last did with the object, for following a refresh until ESO applies it.
    pub sync: SyncState,
}

/// How far ESO has got with an ExternalSecret, read from its metadata and status.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SyncState {
    /// The last refresh stamp the object carries: its `updated-at` annotation, or for a
    /// ClusterExternalSecret's child the `force-sync` annotation copied from its parent.
    pub stamp: Option<String>,
    /// ESO's last sync was of exactly this generation, labels and annotations
    /// (`status.syncedResourceVersion` is what [`eso_resource_version`] gives for them).
    pub synced_this_metadata: bool,
    /// The Ready condition: `None` before ESO's first sync.
    pub ready: Option<bool>,
    /// When the Ready condition last changed.
    pub ready_since: Option<chrono::DateTime<chrono::Utc>>,
    /// `metadata.resourceVersion`, where it is a number (as the API server's are).
    pub resource_version: Option<u64>,
    /// The marks of the events its last refreshes applied (`eso-refresher/applied-events`).
    pub applied_events: Vec<String>,
}

/// A state of an object that a sync must have covered to count as the sync of a refresh.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SyncedAfter {
    /// The object at this resourceVersion (what the patch returned) or later: the watch's own
    /// order, whoever wrote later.
    ResourceVersion(u64),
    /// A state carrying this stamp or a later one (a ClusterExternalSecret's child, which the
    /// service does not patch itself).
    Stamp(String),
}

/// The `status.syncedResourceVersion` ESO writes after syncing an object with this generation,
/// labels and annotations: `<generation>-<hex SHA3-224 of Go's "%+v" of the struct
/// {annotations, labels}>`, where Go prints a map as `map[k:v k2:v2]` with sorted keys.
pub fn eso_resource_version(
    generation: i64,
    annotations: Option<&std::collections::BTreeMap<String, String>>,
    labels: Option<&std::collections::BTreeMap<String, String>>,
) -> String {
    use sha3::{Digest, Sha3_224};
    fn go_map(hasher: &mut Sha3_224, map: Option<&std::collections::BTreeMap<String, String>>) {
        hasher.update(b"map[");
        for (i, (key, value)) in map.into_iter().flatten().enumerate() {
            if i > 0 {
                hasher.update(b" ");
            }
            hasher.update(key.as_bytes());
            hasher.update(b":");
            hasher.update(value.as_bytes());
        }
        hasher.update(b"]");
    }
    let mut hasher = Sha3_224::new();
    hasher.update(b"{annotations:");
    go_map(&mut hasher, annotations);
    hasher.update(b" labels:");
    go_map(&mut hasher, labels);
    hasher.update(b"}");
    let digest = hasher.finalize();
    let mut version = format!("{generation}-");
    for byte in digest {
        version.push_str(&format!("{byte:02x}"));
    }
    version
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct Spec {
    secret_store_ref: Option<StoreRef>,
    data: Option<Vec<DataEntry>>,
    data_from: Option<Vec<DataFromEntry>>,
    refresh_interval: Option<String>,
    refresh_policy: Option<String>,
    target: Option<Target>,
}

#[derive(Deserialize)]
struct Target {
    immutable: Option<bool>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct DataEntry {
    remote_ref: Option<RemoteRef>,
    source_ref: Option<SourceRef>,
}

/// `sourceRef`: another store for this entry, or a generator (which reads no store).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SourceRef {
    store_ref: Option<StoreRef>,
    generator_ref: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct StoreRef {
    name: Option<String>,
    kind: Option<String>,
}

#[derive(Deserialize)]
struct RemoteRef {
    key: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct DataFromEntry {
    extract: Option<RemoteRef>,
    find: Option<Find>,
    source_ref: Option<SourceRef>,
}

#[derive(Deserialize)]
struct Find {
    path: Option<String>,
    name: Option<FindName>,
}

#[derive(Deserialize)]
struct FindName {
    regexp: Option<String>,
}

impl SyncState {
    fn of(object: &DynamicObject, has_parent: bool) -> SyncState {
        let metadata = &object.metadata;
        let status = &object.data["status"];
        let stamp_annotation = if has_parent {
            crate::core::stamp::FORCE_SYNC
        } else {
            crate::core::stamp::UPDATED_AT
        };
        let ready = status["conditions"]
            .as_array()
            .and_then(|conditions| conditions.iter().find(|c| c["type"] == "Ready"));
        let synced_this_metadata = status["syncedResourceVersion"]
            .as_str()
            .is_some_and(|synced| {
                synced
                    == eso_resource_version(
                        metadata.generation.unwrap_or_default(),
                        metadata.annotations.as_ref(),
                        metadata.labels.as_ref(),
                    )
            });
        SyncState {
            stamp: metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(stamp_annotation))
                .cloned(),
            synced_this_metadata,
            ready: ready.map(|c| c["status"] == "True"),
            ready_since: ready
                .and_then(|c| c["lastTransitionTime"].as_str())
                .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
                .map(|t| t.with_timezone(&chrono::Utc)),
            resource_version: metadata
                .resource_version
                .as_deref()
                .and_then(|v| v.parse().ok()),
            applied_events: metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(crate::core::stamp::APPLIED_EVENTS))
                .map(|marks| marks.split_whitespace().map(str::to_owned).collect())
                .unwrap_or_default(),
        }
    }

    /// ESO has synced the object's current metadata, and that state is `after` or later.
    /// Stamps are RFC 3339 UTC times of one fixed width, so they compare as strings.
    pub fn has_synced(&self, after: &SyncedAfter) -> bool {
        self.synced_this_metadata
            && match after {
                SyncedAfter::ResourceVersion(version) => {
                    self.resource_version.is_some_and(|v| v >= *version)
                }
                SyncedAfter::Stamp(stamp) => {
                    self.stamp.as_deref().is_some_and(|s| s >= stamp.as_str())
                }
            }
    }

    /// ESO reports a failure that began at or after `since`.
    pub fn failing_since(&self, since: chrono::DateTime<chrono::Utc>) -> bool {
        self.ready == Some(false) && self.ready_since.is_some_and(|t| t >= since)
    }
}

impl IndexedSecret {
    /// Reads an ExternalSecret. Only a missing name is an error; a spec that does not parse
    /// yields an entry with no keys and a problem saying why.
    pub fn from_object(object: &DynamicObject) -> Option<IndexedSecret> {
        let name = object.metadata.name.as_deref()?;
        let namespace = object.metadata.namespace.as_deref().unwrap_or("default");
        let mut problems = Vec::new();
        let spec = match object.data.get("spec") {
            None => Spec::default(),
            Some(value) => Spec::deserialize(value).unwrap_or_else(|e| {
                problems.push(format!("spec is not a valid ExternalSecret spec: {e}"));
                Spec::default()
            }),
        };
        let parent = object
            .metadata
            .owner_references
            .iter()
            .flatten()
            .find(|owner| {
                owner.controller == Some(true)
                    && owner.kind == "ClusterExternalSecret"
                    && owner.api_version.starts_with("external-secrets.io/")
            })
            .map(|owner| owner.name.clone());
        let mut secret = Self::from_spec(SecretId::new(namespace, name), spec, parent, problems);
        let opted_out = object
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(IGNORE_ANNOTATION))
            .is_some_and(|value| value.trim().eq_ignore_ascii_case("true"));
        secret.sync = SyncState::of(object, secret.parent.is_some());
        if opted_out {
            secret.skip_reason = Some(SkipReason::new(
                "opted_out",
                format!("opted out by annotation {IGNORE_ANNOTATION}"),
            ));
        }
        Some(secret)
    }

    fn from_spec(
        id: SecretId,
        spec: Spec,
        parent: Option<String>,
        mut problems: Vec<String>,
    ) -> IndexedSecret {
        // An entry's own store, else the ExternalSecret's; `Err` for a generator, which ESO
        // reads instead of a store in `dataFrom` (and never in `data`).
        let store_of =
            |source: Option<&SourceRef>, generated: bool| -> Result<Option<StoreId>, ()> {
                if generated && source.is_some_and(|s| s.generator_ref.is_some()) {
                    return Err(());
                }
                let named = source
                    .and_then(|s| s.store_ref.as_ref())
                    .or(spec.secret_store_ref.as_ref());
                Ok(named.and_then(|r| {
                    let name = r.name.as_deref().filter(|n| !n.is_empty())?;
                    Some(StoreId::referenced(&id.namespace, r.kind.as_deref(), name))
                }))
            };
        let mut keys: Vec<RemoteKey> = Vec::new();
        let mut add_key = |key: Option<&str>, store: Option<StoreId>| {
            if let Some(written) = key.filter(|k| !normalize_key(k).is_empty()) {
                let key = RemoteKey {
                    key: normalize_key(written).to_owned(),
                    written: written.to_owned(),
                    store,
                };
                if !keys
                    .iter()
                    .any(|k| k.key == key.key && k.store == key.store)
                {
                    keys.push(key);
                }
            }
        };
        for entry in spec.data.iter().flatten() {
            let Ok(store) = store_of(entry.source_ref.as_ref(), false) else {
                continue;
            };
            add_key(
                entry.remote_ref.as_ref().and_then(|r| r.key.as_deref()),
                store,
            );
        }
        let mut finds = Vec::new();
        let mut unmatchable = Vec::new();
        for (i, entry) in spec.data_from.iter().flatten().enumerate() {
            let Ok(store) = store_of(entry.source_ref.as_ref(), true) else {
                continue;
            };
            add_key(
                entry.extract.as_ref().and_then(|r| r.key.as_deref()),
                store.clone(),
            );
            let Some(find) = &entry.find else { continue };
            let path = find
                .path
                .as_deref()
                .map(normalize_key)
                .filter(|p| !p.is_empty());
            let pattern = find.name.as_ref().and_then(|n| n.regexp.as_deref());
            let name = match pattern.map(Regex::new).transpose() {
                Ok(name) => name,
                Err(e) => {
                    problems.push(format!("dataFrom[{i}].find.name.regexp is invalid: {e}"));
                    unmatchable.push(INVALID_REGEXP);
                    continue;
                }
            };
            if path.is_none() && name.is_none() {
                problems.push(format!(
                    "dataFrom[{i}].find selects by tags only: a change event cannot be matched to it"
                ));
                unmatchable.push(TAGS_ONLY);
                continue;
            }
            finds.push(FindRule {
                path: path.map(str::to_owned),
                name,
                store,
            });
        }
        IndexedSecret {
            id,
            keys,
            finds,
            skip_reason: skip_reason(
                spec.refresh_policy.as_deref(),
                spec.refresh_interval.as_deref(),
                spec.target.and_then(|t| t.immutable).unwrap_or(false),
            ),
            parent,
            problems,
            unmatchable,
            sync: SyncState::default(),
        }
    }

    /// An entry naming `keys` and nothing else, for tests.
    #[cfg(test)]
    pub fn with_keys(namespace: &str, name: &str, keys: &[&str]) -> IndexedSecret {
        IndexedSecret {
            id: SecretId::new(namespace, name),
            keys: keys
                .iter()
                .map(|k| RemoteKey {
                    key: normalize_key(k).to_owned(),
                    written: (*k).to_owned(),
                    store: None,
                })
                .collect(),
            finds: Vec::new(),
            skip_reason: None,
            parent: None,
            problems: Vec::new(),
            unmatchable: Vec::new(),
            sync: SyncState::default(),
        }
    }

    /// [`IndexedSecret::from_object`], logging what could not be understood.
    pub fn read_logged(object: &DynamicObject) -> Option<IndexedSecret> {
        let secret = Self::from_object(object)?;
        for problem in &secret.problems {
            tracing::warn!(external_secret = %secret.id, problem, "ExternalSecret only partly indexed");
        }
        Some(secret)
    }

    /// The stores this ExternalSecret reads from, each once.
    pub fn stores(&self) -> impl Iterator<Item = &StoreId> {
        let mut seen: Vec<&StoreId> = Vec::new();
        let all = self.keys.iter().filter_map(|k| k.store.as_ref());
        all.chain(self.finds.iter().filter_map(|f| f.store.as_ref()))
            .filter(move |store| {
                let new = !seen.contains(store);
                if new {
                    seen.push(store);
                }
                new
            })
    }

    /// Whether any find rule matches `key`, whatever its store; for tests.
    #[cfg(test)]
    pub fn matches_find(&self, key: &str) -> bool {
        self.finds.iter().any(|find| find.matches(key))
    }

    /// The remote keys alone, for tests.
    #[cfg(test)]
    pub fn key_names(&self) -> Vec<&str> {
        self.keys.iter().map(|k| k.key.as_str()).collect()
    }
}

/// ESO re-syncs on a metadata change only when it refreshes at all: never for `CreatedOnce`,
/// and not for a periodic refresh whose interval is zero (ESO treats "0s" as "sync once").
/// An unset interval means ESO's default of one hour.
fn skip_reason(
    policy: Option<&str>,
    interval: Option<&str>,
    immutable: bool,
) -> Option<SkipReason> {
    if immutable {
        return Some(SkipReason::new(
            "immutable",
            "target.immutable is true: ESO does not update the Secret once created".to_owned(),
        ));
    }
    let zero_interval = |text: &str| {
        SkipReason::new(
            "zero_interval",
            format!("refreshInterval is {text}: ESO does not re-sync it"),
        )
    };
    match policy {
        Some("CreatedOnce") => Some(SkipReason::new(
            "created_once",
            "refreshPolicy is CreatedOnce: ESO ignores metadata changes".to_owned(),
        )),
        Some("OnChange") => None,
        _ => match interval.map(duration::parse) {
            Some(Ok(d)) if d.is_zero() => Some(zero_interval(interval.unwrap_or_default())),
            Some(Err(DurationError::Negative(text))) => Some(zero_interval(&text)),
            _ => None,
        },
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use serde_json::json;

    pub fn object(value: serde_json::Value) -> DynamicObject {
        serde_json::from_value(value).expect("a valid object")
    }

    /// Read off the real ESO v2.9 controller: an ExternalSecret created by `kubectl apply`
    /// (hence the last-applied annotation, with its newline) had this syncedResourceVersion.
    #[test]
    fn computes_the_synced_resource_version_eso_writes() {
        let applied = r#"{"apiVersion":"external-secrets.io/v1","kind":"ExternalSecret","metadata":{"annotations":{"aa":"1","zz":"a b:c"},"labels":{"app":"x","team":"a"},"name":"db","namespace":"probe1"},"spec":{"data":[{"remoteRef":{"key":"db-password"},"secretKey":"password"}],"refreshInterval":"1h","secretStoreRef":{"kind":"SecretStore","name":"local-http"},"target":{"name":"db-credentials"}}}"#;
        let annotations = [
            ("aa", "1".to_owned()),
            (
                "kubectl.kubernetes.io/last-applied-configuration",
                format!("{applied}\n"),
            ),
            ("zz", "a b:c".to_owned()),
        ]
        .map(|(k, v)| (k.to_owned(), v))
        .into();
        let labels = [("app", "x"), ("team", "a")]
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .into();
        assert_eq!(
            eso_resource_version(1, Some(&annotations), Some(&labels)),
            "1-cab3d28db0c18f434afa23ee977f5d73004667d1b4cc8bce0d3309a9"
        );
    }

    #[test]
    fn a_sync_counts_only_for_the_metadata_it_synced_and_a_stamp_not_older() {
        let stamped = |stamp: &str, synced: &str| {
            IndexedSecret::from_object(&object(json!({
                "apiVersion": "external-secrets.io/v1",
                "kind": "ExternalSecret",
                "metadata": {"namespace": "a", "name": "s", "generation": 2,
                    "resourceVersion": "7", "annotations": {"updated-at": stamp}},
                "status": {"syncedResourceVersion": synced,
                    "conditions": [{"type": "Ready", "status": "True"}]},
            })))
            .expect("named")
            .sync
        };
        let t1 = "2026-11-30T10:00:00.000000001Z";
        let annotations = [("updated-at".to_owned(), t1.to_owned())].into();
        let current = eso_resource_version(2, Some(&annotations), None);
        let sync = stamped(t1, &current);
        let stamp = |s: &str| SyncedAfter::Stamp(s.to_owned());
        assert!(sync.synced_this_metadata && sync.ready == Some(true));
        assert!(sync.has_synced(&stamp(t1)));
        assert!(sync.has_synced(&stamp("2026-11-30T09:59:59.999999999Z")));
        assert!(!sync.has_synced(&stamp("2026-11-30T10:00:00.000000002Z")));
        assert!(sync.has_synced(&SyncedAfter::ResourceVersion(7)));
        assert!(!sync.has_synced(&SyncedAfter::ResourceVersion(8)));
        // ESO synced the metadata before the stamp: not this refresh.
        let before = eso_resource_version(2, None, None);
        assert!(!stamped(t1, &before).has_synced(&stamp(t1)));
        assert!(!stamped(t1, &before).has_synced(&SyncedAfter::ResourceVersion(7)));
        assert!(!stamped(t1, &format!("1-{}", &current[2..])).has_synced(&stamp(t1)));
    }

    fn indexed(spec: serde_json::Value) -> IndexedSecret {
        IndexedSecret::from_object(&object(json!({
            "apiVersion": "external-secrets.io/v1",
            "kind": "ExternalSecret",
            "metadata": {"namespace": "team-a", "name": "db"},
            "spec": spec,
        })))
        .expect("named")
    }

    proptest::proptest! {
        #[test]
        fn normalizing_drops_only_leading_slashes(key in "/{0,3}[a-z0-9/_.-]{0,20}") {
            let normalized = normalize_key(&key);
            proptest::prop_assert!(!normalized.starts_with('/'));
            proptest::prop_assert!(key.ends_with(normalized));
            proptest::prop_assert_eq!(normalize_key(normalized), normalized, "idempotent");
            let slashed = format!("/{key}");
            proptest::prop_assert_eq!(normalize_key(&slashed), normalized);
        }
    }

    #[test]
    fn collects_remote_and_extract_keys_normalized_once() {
        let secret = indexed(json!({
            "data": [
                {"secretKey": "a", "remoteRef": {"key": "/prod/db", "property": "user"}},
                {"secretKey": "b", "remoteRef": {"key": "prod/db", "property": "password"}},
                {"secretKey": "c", "sourceRef": {"generatorRef": {"kind": "Password", "name": "p"}}},
            ],
            "dataFrom": [{"extract": {"key": "/prod/api"}}],
        }));
        assert_eq!(secret.id, SecretId::new("team-a", "db"));
        assert_eq!(secret.key_names(), ["prod/db", "prod/api"]);
        assert!(secret.problems.is_empty());
        assert!(secret.skip_reason.is_none());
    }

    #[test]
    fn find_rules_match_by_path_prefix_and_name() {
        let secret = indexed(json!({"dataFrom": [
            {"find": {"path": "/prod/payments"}},
            {"find": {"name": {"regexp": "^db-.*"}}},
            {"find": {"path": "staging", "name": {"regexp": "^staging/api"}}},
        ]}));
        assert_eq!(secret.finds.len(), 3);
        assert!(secret.matches_find("prod/payments/key"));
        assert!(
            secret.matches_find("other/db-password"),
            "last segment matches"
        );
        assert!(secret.matches_find("staging/api-key"));
        assert!(!secret.matches_find("staging/web"));
        assert!(!secret.matches_find("prod/other"));
    }

    #[test]
    fn slash_anchored_pattern_matches_slashed_key() {
        let secret = indexed(json!({"dataFrom": [{"find": {"name": {"regexp": "^/prod/.*"}}}]}));
        assert!(secret.matches_find("prod/db"));
        assert!(!secret.matches_find("dev/db"));
    }

    #[test]
    fn invalid_regex_and_tag_only_find_are_problems_not_panics() {
        let secret = indexed(json!({"dataFrom": [
            {"find": {"name": {"regexp": "(unclosed"}}},
            {"find": {"tags": {"team": "a"}}},
            {"extract": {"key": "/still/indexed"}},
        ]}));
        assert!(secret.finds.is_empty());
        assert_eq!(secret.key_names(), ["still/indexed"]);
        assert_eq!(secret.problems.len(), 2, "{:?}", secret.problems);
        assert!(secret.problems[0].contains("dataFrom[0].find.name.regexp is invalid"));
        assert!(secret.problems[1].contains("tags only"));
        assert_eq!(secret.unmatchable, [INVALID_REGEXP, TAGS_ONLY]);
    }

    #[test]
    fn unparseable_spec_is_a_problem() {
        let secret = indexed(json!({"data": "not a list"}));
        assert!(secret.key_names().is_empty());
        assert!(secret.problems[0].starts_with("spec is not a valid"));
    }

    #[test]
    fn refresh_rules_follow_eso() {
        let reason = |spec| indexed(spec).skip_reason.map(|r| r.text);
        assert!(
            reason(json!({"refreshPolicy": "CreatedOnce"}))
                .unwrap()
                .contains("CreatedOnce")
        );
        assert!(
            reason(json!({"refreshInterval": "0s"}))
                .unwrap()
                .contains("0s")
        );
        assert!(reason(json!({"refreshPolicy": "Periodic", "refreshInterval": "0"})).is_some());
        assert!(reason(json!({"refreshInterval": "-1m"})).is_some());
        assert!(reason(json!({"refreshPolicy": "OnChange", "refreshInterval": "0s"})).is_none());
        assert!(
            reason(json!({"refreshPolicy": "Periodic", "refreshInterval": "1h0m0s"})).is_none()
        );
        assert!(
            reason(json!({})).is_none(),
            "unset interval is ESO's default of 1h"
        );
        // Checked on the real ESO: an immutable target is never updated after its first sync.
        let immutable = json!({"refreshPolicy": "OnChange", "target": {"immutable": true}});
        assert!(reason(immutable).unwrap().contains("immutable"));
        assert!(reason(json!({"target": {"immutable": false}})).is_none());
    }

    #[test]
    fn the_ignore_annotation_opts_out() {
        let with = |value: &str| {
            IndexedSecret::from_object(&object(json!({
                "apiVersion": "external-secrets.io/v1",
                "kind": "ExternalSecret",
                "metadata": {"namespace": "a", "name": "b",
                             "annotations": {"eso-refresher/ignore": value}},
                "spec": {"data": [{"secretKey": "k", "remoteRef": {"key": "/k"}}]},
            })))
            .unwrap()
            .skip_reason
        };
        let reason = with("true").unwrap();
        assert_eq!(reason.code, "opted_out");
        assert!(reason.text.contains("eso-refresher/ignore"));
        assert!(with("True").is_some());
        assert_eq!(with("false"), None);
        assert_eq!(with(""), None);
    }

    #[test]
    fn controller_parent_is_a_cluster_external_secret() {
        let owned = |controller: bool, kind: &str| {
            IndexedSecret::from_object(&object(json!({
                "apiVersion": "external-secrets.io/v1",
                "kind": "ExternalSecret",
                "metadata": {"namespace": "a", "name": "b", "ownerReferences": [{
                    "apiVersion": "external-secrets.io/v1", "kind": kind, "name": "parent",
                    "uid": "u-1", "controller": controller}]},
            })))
            .unwrap()
            .parent
        };
        assert_eq!(
            owned(true, "ClusterExternalSecret").as_deref(),
            Some("parent")
        );
        assert_eq!(owned(false, "ClusterExternalSecret"), None);
        assert_eq!(owned(true, "Deployment"), None);
    }

    #[test]
    fn each_key_is_read_from_its_entrys_store_or_the_default_one() {
        let secret = indexed(json!({
            "secretStoreRef": {"name": "default-store"},
            "data": [
                {"secretKey": "a", "remoteRef": {"key": "k1"}},
                {"secretKey": "b", "remoteRef": {"key": "k1"},
                 "sourceRef": {"storeRef": {"name": "shared", "kind": "ClusterSecretStore"}}},
            ],
            "dataFrom": [
                {"extract": {"key": "k2"}, "sourceRef": {"storeRef": {"name": "other"}}},
                {"find": {"path": "p/"}},
                {"sourceRef": {"generatorRef": {"apiVersion": "generators.external-secrets.io/v1alpha1", "kind": "Password", "name": "pw"}}},
            ],
        }));
        let keys: Vec<(&str, Option<String>)> = secret
            .keys
            .iter()
            .map(|k| (k.key.as_str(), k.store.as_ref().map(ToString::to_string)))
            .collect();
        assert_eq!(
            keys,
            [
                ("k1", Some("SecretStore team-a/default-store".into())),
                ("k1", Some("ClusterSecretStore shared".into())),
                ("k2", Some("SecretStore team-a/other".into())),
            ]
        );
        assert_eq!(
            secret.finds[0].store,
            Some(StoreId::namespaced("team-a", "default-store"))
        );
        assert_eq!(secret.stores().count(), 3, "each store once");
        assert!(secret.problems.is_empty());
    }
}
