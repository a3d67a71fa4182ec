//! A webhook's work: plan the refresh of every ExternalSecret the changed keys concern,
//! apply it, and account for each one.

use std::sync::Arc;

use serde::Serialize;

use crate::cache_buster::CacheBuster;
use crate::events::SecretChange;
use crate::external_secret::SecretId;
use crate::index::SharedIndex;
use crate::patcher::{Applied, Patcher};
use crate::plan::{Cause, PatchTarget, RefreshPlan};
use crate::stamp::Stamps;

pub struct Refresher {
    pub index: Arc<SharedIndex>,
    pub patcher: Arc<Patcher>,
    pub stamps: Arc<Stamps>,
    pub cache_buster: Option<CacheBuster>,
}

#[derive(Debug, thiserror::Error)]
#[error("the ExternalSecret cache is not in sync with the cluster")]
pub struct NotSynced;

/// What a webhook did, returned to its sender.
#[derive(Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RefreshReport {
    pub events: usize,
    pub refreshed: Vec<TargetReport>,
    pub skipped: Vec<SkipReport>,
    pub failed: Vec<FailureReport>,
    /// Changed keys that no ExternalSecret references.
    pub unmatched: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cache_buster: Option<CacheBusterReport>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub dry_run: bool,
}

#[derive(Debug, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct TargetReport {
    pub kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    pub name: String,
    pub keys: Vec<String>,
    /// For a ClusterExternalSecret: the ExternalSecrets it refreshes.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub via: Vec<String>,
    /// True when the object was deleted before it could be patched.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub gone: bool,
    /// Dry run: the merge patch that would have been sent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub patch: Option<serde_json::Value>,
}

#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct SkipReport {
    pub namespace: String,
    pub name: String,
    pub reason: String,
    pub keys: Vec<String>,
}

#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct FailureReport {
    #[serde(flatten)]
    pub target: TargetReport,
    pub error: String,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CacheBusterReport {
    pub scheduled: usize,
    pub after_ms: u128,
}

impl RefreshReport {
    /// Every intended patch was applied (or its object is gone).
    pub fn all_applied(&self) -> bool {
        self.failed.is_empty()
    }
}

impl Refresher {
    pub async fn refresh(&self, changes: &[SecretChange]) -> Result<RefreshReport, NotSynced> {
        if !self.index.is_ready() {
            return Err(NotSynced);
        }
        let plan = self.index.read(|index| RefreshPlan::new(changes, index));
        let RefreshPlan {
            mut targets,
            skipped,
            unmatched,
        } = plan;

        let results = self
            .patcher
            .patch_all(targets.keys().cloned().collect::<Vec<_>>(), &self.stamps)
            .await;

        let mut report = RefreshReport {
            events: changes.len(),
            unmatched: unmatched.into_iter().collect(),
            dry_run: self.patcher.is_dry_run(),
            skipped: skipped
                .into_iter()
                .map(|(id, skip)| SkipReport {
                    namespace: id.namespace.to_string(),
                    name: id.name.to_string(),
                    reason: skip.reason,
                    keys: skip.keys.into_iter().collect(),
                })
                .collect(),
            ..RefreshReport::default()
        };
        let mut applied = Vec::new();
        for (target, result) in results {
            let cause = targets.remove(&target).unwrap_or_default();
            let mut entry = target_report(&target, cause);
            match result {
                Ok(Applied::Gone) => {
                    entry.gone = true;
                    report.refreshed.push(entry);
                }
                Ok(Applied::Patched) => {
                    report.refreshed.push(entry);
                    applied.push(target);
                }
                Ok(Applied::WouldPatch(body)) => {
                    entry.patch = Some(body);
                    report.refreshed.push(entry);
                    applied.push(target);
                }
                Err(error) => {
                    tracing::warn!(%target, %error, "patch failed");
                    report.failed.push(FailureReport {
                        target: entry,
                        error: error.to_string(),
                    });
                }
            }
        }
        report
            .refreshed
            .sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
        report.failed.sort_by(|a, b| {
            (&a.target.namespace, &a.target.name).cmp(&(&b.target.namespace, &b.target.name))
        });

        if let Some(buster) = &self.cache_buster
            && !applied.is_empty()
        {
            report.cache_buster = Some(CacheBusterReport {
                scheduled: applied.len(),
                after_ms: buster.wait().as_millis(),
            });
            buster.schedule(applied, self.patcher.clone(), self.stamps.clone());
        }
        Ok(report)
    }
}

fn target_report(target: &PatchTarget, cause: Cause) -> TargetReport {
    let (kind, namespace, name) = match target {
        PatchTarget::ExternalSecret(id) => (
            "ExternalSecret",
            Some(id.namespace.to_string()),
            id.name.to_string(),
        ),
        PatchTarget::ClusterExternalSecret(name) => {
            ("ClusterExternalSecret", None, name.to_string())
        }
    };
    let via = match target {
        PatchTarget::ExternalSecret(_) => Vec::new(),
        PatchTarget::ClusterExternalSecret(_) => {
            cause.via.iter().map(SecretId::to_string).collect()
        }
    };
    TargetReport {
        kind,
        namespace,
        name,
        keys: cause.keys.into_iter().collect(),
        via,
        gone: false,
        patch: None,
    }
}
