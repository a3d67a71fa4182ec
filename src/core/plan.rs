//! From changed keys and the index to what must be patched, and what must not and why.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::Arc;

use crate::core::change::SecretChange;
use crate::core::external_secret::{SecretId, SkipReason};
use crate::core::index::RefreshIndex;

/// An object whose annotations are patched to make ESO re-sync.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PatchTarget {
    ExternalSecret(SecretId),
    /// Patched instead of the ExternalSecrets it controls, which it would overwrite.
    ClusterExternalSecret(Arc<str>),
}

impl fmt::Display for PatchTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PatchTarget::ExternalSecret(id) => write!(f, "ExternalSecret {id}"),
            PatchTarget::ClusterExternalSecret(name) => write!(f, "ClusterExternalSecret {name}"),
        }
    }
}

/// Why a target is patched: the keys that changed and the ExternalSecrets that use them.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Cause {
    pub keys: BTreeSet<String>,
    pub via: BTreeSet<SecretId>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skip {
    pub reason: SkipReason,
    pub keys: BTreeSet<String>,
}

#[derive(Debug, Default, PartialEq, Eq)]
pub struct RefreshPlan {
    /// Each target once, however many events name it.
    pub targets: BTreeMap<PatchTarget, Cause>,
    pub skipped: BTreeMap<SecretId, Skip>,
    /// Changed keys that no ExternalSecret references.
    pub unmatched: BTreeSet<String>,
}

impl RefreshPlan {
    pub fn new(changes: &[SecretChange], index: &RefreshIndex) -> RefreshPlan {
        let mut plan = RefreshPlan::default();
        for change in changes {
            let found = index.lookup_change(change);
            if found.is_empty() {
                plan.unmatched.insert(change.key.clone());
            }
            for secret in found {
                if let Some(reason) = &secret.skip_reason {
                    plan.skipped
                        .entry(secret.id.clone())
                        .or_insert_with(|| Skip {
                            reason: reason.clone(),
                            keys: BTreeSet::new(),
                        })
                        .keys
                        .insert(change.key.clone());
                    continue;
                }
                let target = match &secret.parent {
                    Some(parent) => PatchTarget::ClusterExternalSecret(parent.as_str().into()),
                    None => PatchTarget::ExternalSecret(secret.id.clone()),
                };
                let cause = plan.targets.entry(target).or_default();
                cause.keys.insert(change.key.clone());
                cause.via.insert(secret.id.clone());
            }
        }
        plan
    }
}

/// A plan limited to the namespaces a caller may refresh (a JWT's namespaces claim): what lies
/// outside is not patched but reported as skipped, so the caller sees why.
/// The skip reason code for targets outside the caller's namespaces.
pub const NOT_PERMITTED: &str = "not_permitted";

impl RefreshPlan {
    /// Drops every target outside `namespaces` into `skipped`. A ClusterExternalSecret is
    /// cluster-scoped and fans out to namespaces the caller may not name, so a limited caller
    /// never patches one; each ExternalSecret it would have refreshed is reported instead.
    pub fn limit_to_namespaces(&mut self, namespaces: &BTreeSet<String>) {
        let targets = std::mem::take(&mut self.targets);
        for (target, cause) in targets {
            let text = match &target {
                PatchTarget::ExternalSecret(id) if namespaces.contains(&*id.namespace) => {
                    self.targets.insert(target, cause);
                    continue;
                }
                PatchTarget::ExternalSecret(id) => format!(
                    "namespace {} is not among the caller's permitted namespaces",
                    id.namespace
                ),
                PatchTarget::ClusterExternalSecret(parent) => format!(
                    "controlled by ClusterExternalSecret {parent}, which a caller limited to namespaces may not refresh"
                ),
            };
            for id in cause.via {
                self.skipped.entry(id).or_insert_with(|| Skip {
                    reason: SkipReason {
                        code: NOT_PERMITTED,
                        text: text.clone(),
                    },
                    keys: cause.keys.clone(),
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::external_secret::IndexedSecret;

    fn change(key: &str) -> SecretChange {
        SecretChange::named(key, None)
    }

    fn secret(ns: &str, name: &str, key: &str) -> IndexedSecret {
        IndexedSecret::with_keys(ns, name, &[key])
    }

    #[test]
    fn each_external_secret_is_patched_once_with_every_cause() {
        let mut index = RefreshIndex::default();
        let mut both = secret("a", "both", "k1");
        both.keys.push(crate::core::external_secret::RemoteKey {
            key: "k2".into(),
            written: "k2".into(),
            store: None,
        });
        index.apply(both);
        index.apply(secret("b", "one", "k2"));
        let plan = RefreshPlan::new(&[change("/k1"), change("k2"), change("nothing")], &index);
        let both = &plan.targets[&PatchTarget::ExternalSecret(SecretId::new("a", "both"))];
        assert_eq!(
            both.keys,
            BTreeSet::from(["/k1".to_string(), "k2".to_string()])
        );
        assert_eq!(plan.targets.len(), 2);
        assert_eq!(plan.unmatched, BTreeSet::from(["nothing".to_string()]));
        assert!(plan.skipped.is_empty());
    }

    #[test]
    fn children_of_a_cluster_external_secret_patch_the_parent_once() {
        let mut index = RefreshIndex::default();
        for ns in ["a", "b", "c"] {
            let mut child = secret(ns, "shared", "k");
            child.parent = Some("fanout".into());
            index.apply(child);
        }
        let plan = RefreshPlan::new(&[change("k")], &index);
        assert_eq!(plan.targets.len(), 1);
        let cause = &plan.targets[&PatchTarget::ClusterExternalSecret("fanout".into())];
        assert_eq!(cause.via.len(), 3);
    }

    #[test]
    fn secrets_eso_would_not_resync_are_skipped_with_reason() {
        let mut index = RefreshIndex::default();
        let mut once = secret("a", "once", "k");
        once.skip_reason = Some(SkipReason {
            code: "created_once",
            text: "refreshPolicy is CreatedOnce".into(),
        });
        once.parent = Some("parent".into());
        index.apply(once);
        let plan = RefreshPlan::new(&[change("k")], &index);
        assert!(plan.targets.is_empty());
        let skip = &plan.skipped[&SecretId::new("a", "once")];
        assert_eq!(skip.reason.text, "refreshPolicy is CreatedOnce");
    }

    fn plan(secrets: Vec<IndexedSecret>) -> RefreshPlan {
        let mut index = RefreshIndex::default();
        for secret in secrets {
            index.apply(secret);
        }
        let change = SecretChange::named("k", None);
        RefreshPlan::new(&[change], &index)
    }

    fn permitted(namespaces: &[&str]) -> BTreeSet<String> {
        namespaces.iter().map(|ns| ns.to_string()).collect()
    }

    #[test]
    fn only_permitted_namespaces_are_patched() {
        let mut plan = plan(vec![
            IndexedSecret::with_keys("team-a", "db", &["k"]),
            IndexedSecret::with_keys("team-b", "db", &["k"]),
        ]);
        plan.limit_to_namespaces(&permitted(&["team-a"]));
        let targets: Vec<&PatchTarget> = plan.targets.keys().collect();
        assert_eq!(
            targets,
            [&PatchTarget::ExternalSecret(SecretId::new("team-a", "db"))]
        );
        let skip = &plan.skipped[&SecretId::new("team-b", "db")];
        assert_eq!(skip.reason.code, NOT_PERMITTED);
        assert!(skip.reason.text.contains("team-b"), "{}", skip.reason.text);
        assert_eq!(skip.keys, BTreeSet::from(["k".to_string()]));
    }

    #[test]
    fn a_cluster_external_secret_is_never_patched_for_a_limited_caller() {
        let children = ["team-a", "team-b"]
            .into_iter()
            .map(|ns| {
                let mut child = IndexedSecret::with_keys(ns, "shared", &["k"]);
                child.parent = Some("fanout".into());
                child
            })
            .collect();
        let mut plan = plan(children);
        plan.limit_to_namespaces(&permitted(&["team-a", "team-b"]));
        assert!(plan.targets.is_empty());
        assert_eq!(plan.skipped.len(), 2);
        for skip in plan.skipped.values() {
            assert_eq!(skip.reason.code, NOT_PERMITTED);
            assert!(skip.reason.text.contains("fanout"));
        }
    }

    #[test]
    fn an_empty_list_permits_nothing_and_keeps_other_skips() {
        let mut once = IndexedSecret::with_keys("team-a", "once", &["k"]);
        once.skip_reason = Some(SkipReason {
            code: "created_once",
            text: "refreshPolicy is CreatedOnce".into(),
        });
        let mut plan = plan(vec![once, IndexedSecret::with_keys("team-a", "db", &["k"])]);
        plan.limit_to_namespaces(&BTreeSet::new());
        assert!(plan.targets.is_empty());
        assert_eq!(
            plan.skipped[&SecretId::new("team-a", "once")].reason.code,
            "created_once"
        );
        assert_eq!(
            plan.skipped[&SecretId::new("team-a", "db")].reason.code,
            NOT_PERMITTED
        );
    }
}
