//! A refresh plan limited to the namespaces a caller may refresh (a JWT's namespaces claim).
//! What lies outside is not patched but reported as skipped, so the caller sees why.

use std::collections::BTreeSet;

use crate::external_secret::SkipReason;
use crate::plan::{PatchTarget, RefreshPlan, Skip};

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
    use crate::events::SecretChange;
    use crate::external_secret::{IndexedSecret, SecretId};
    use crate::index::RefreshIndex;

    fn plan(secrets: Vec<IndexedSecret>) -> RefreshPlan {
        let mut index = RefreshIndex::default();
        for secret in secrets {
            index.apply(secret);
        }
        let change = SecretChange {
            key: "k".into(),
            also: Vec::new(),
            event_type: None,
            event_id: None,
            origin: None,
        };
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
