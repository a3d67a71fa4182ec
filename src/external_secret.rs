//! What an ExternalSecret references, and whether a metadata change makes ESO re-sync it.
//! Everything here runs when an object is indexed, never on a webhook's path.

use std::fmt;
use std::sync::Arc;

use kube::api::DynamicObject;
use regex::Regex;
use serde::Deserialize;

use crate::duration::{self, DurationError};
use crate::store::StoreId;

/// An ExternalSecret with this annotation set to "true" is never refreshed by webhooks.
pub const IGNORE_ANNOTATION: &str = "eso-refresher/ignore";

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
    /// ESO's last sync (`status.refreshTime`) and whether it left the object Ready.
    pub refreshed_at: Option<chrono::DateTime<chrono::Utc>>,
    pub ready: Option<bool>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct Spec {
    secret_store_ref: Option<StoreRef>,
    data: Option<Vec<DataEntry>>,
    data_from: Option<Vec<DataFromEntry>>,
    refresh_interval: Option<String>,
    refresh_policy: Option<String>,
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
        let status = &object.data["status"];
        secret.refreshed_at = status["refreshTime"]
            .as_str()
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
            .map(|t| t.with_timezone(&chrono::Utc));
        secret.ready = status["conditions"].as_array().and_then(|conditions| {
            conditions
                .iter()
                .find(|c| c["type"] == "Ready")
                .map(|c| c["status"] == "True")
        });
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
                    continue;
                }
            };
            if path.is_none() && name.is_none() {
                problems.push(format!(
                    "dataFrom[{i}].find selects by tags only: a change event cannot be matched to it"
                ));
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
            ),
            parent,
            problems,
            refreshed_at: None,
            ready: None,
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
            refreshed_at: None,
            ready: None,
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
fn skip_reason(policy: Option<&str>, interval: Option<&str>) -> Option<SkipReason> {
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
    fn eso_example_manifests_are_indexed() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/eso/examples");
        let read = |file: &str| {
            let text = std::fs::read_to_string(format!("{dir}/{file}")).expect(file);
            let objects = crate::manifests::parse_documents(&text).expect(file);
            IndexedSecret::from_object(&objects[0]).expect("named")
        };
        assert_eq!(
            read("akeyless-external-secret.yaml").key_names(),
            ["db-username", "db-password"]
        );
        assert_eq!(
            read("akeyless-external-secret-json.yaml").key_names(),
            ["database-credentials"]
        );
        let finder = read("getallsecrets-find-by-name.yaml");
        assert!(finder.matches_find("team/api-key"));
        assert!(!finder.matches_find("team/password"));
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

    #[test]
    fn every_field_of_the_v1_schema_is_understood() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/eso/skeletons/externalsecret-v1.yaml"
        );
        let text = std::fs::read_to_string(path).expect("skeleton");
        let mut objects = crate::manifests::parse_documents(&text).expect("parses");
        objects[0].metadata.name = Some("skeleton".into());
        let secret = IndexedSecret::from_object(&objects[0]).expect("named");
        assert!(secret.problems.is_empty(), "{:?}", secret.problems);
        assert_eq!(secret.key_names(), ["string"]);
        assert_eq!(
            secret.keys[0].store,
            Some(StoreId::namespaced("default", "string"))
        );
        // Its dataFrom entry names a generator, which ESO reads instead of the store.
        assert!(secret.finds.is_empty());
        assert!(
            secret.skip_reason.is_some(),
            "the skeleton says CreatedOnce"
        );
    }
}
