//! A webhook's work: plan the refresh of every ExternalSecret the changed keys concern,
//! apply it, and account for each one.

use std::sync::Arc;

use serde::Serialize;

use std::collections::{BTreeSet, HashSet};

use crate::cluster::cache_buster::CacheBuster;
use crate::cluster::follow_up::FollowUp;
use crate::cluster::patcher::{Applied, Patched, Patcher};
use crate::core::change::SecretChange;
use crate::core::dedupe::{SeenEvents, event_mark, merged_marks, recorded};
use crate::core::external_secret::SecretId;
use crate::core::index::{RefreshIndex, SharedIndex};
use crate::core::plan::{Cause, PatchTarget, RefreshPlan};
use crate::telemetry::metrics::{Metrics, ReasonLabels};

/// How long a webhook may spend patching: senders give up on a request after about 30 s.
pub const WEBHOOK_DEADLINE: std::time::Duration = std::time::Duration::from_secs(20);

pub struct Refresher {
    pub index: Arc<SharedIndex>,
    pub seen: SeenEvents,
    pub patcher: Arc<Patcher>,
    pub cache_buster: Option<CacheBuster>,
    pub follow_up: FollowUp,
    pub metrics: Arc<Metrics>,
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
    /// Ids of events already applied within the de-duplication window: not applied again.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub duplicates: Vec<String>,
    /// Events acknowledged without a refresh (deletions, failures, reminders).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub ignored: Vec<crate::core::change::Ignored>,
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
    /// Stable, for programs: `created_once`, `not_permitted`, ...
    pub code: &'static str,
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
    /// Refreshes what `changes` concern; a caller limited to `permitted` namespaces gets the
    /// rest reported as skipped.
    pub async fn refresh(
        &self,
        changes: &[SecretChange],
        permitted: Option<&BTreeSet<String>>,
    ) -> Result<RefreshReport, NotSynced> {
        if !self.index.is_ready() {
            return Err(NotSynced);
        }
        let (mut fresh, mut repeated): (Vec<SecretChange>, Vec<SecretChange>) =
            changes.iter().cloned().partition(|change| {
                !change
                    .event_key()
                    .is_some_and(|key| self.seen.contains(&key))
            });
        let window = self.seen.window();
        let (mut plan, marks) = self.index.read(|index| {
            let plan = RefreshPlan::new(&fresh, index);
            if window.is_zero() {
                return (plan, Default::default());
            }
            // Applied by another replica (or before a restart): every object the event
            // refreshes records it.
            let now = chrono::Utc::now();
            let elsewhere: Vec<bool> = fresh
                .iter()
                .map(|change| applied_before(change, &plan, index, window, now))
                .collect();
            let plan = match elsewhere.contains(&true) {
                true => {
                    let mut flags = elsewhere.into_iter();
                    let (again, kept) = std::mem::take(&mut fresh)
                        .into_iter()
                        .partition(|_| flags.next().unwrap_or(false));
                    fresh = kept;
                    repeated.extend::<Vec<SecretChange>>(again);
                    RefreshPlan::new(&fresh, index)
                }
                false => plan,
            };
            let marks = marks_to_record(&fresh, &plan, index);
            (plan, marks)
        });
        self.metrics.duplicate_events.inc_by(repeated.len() as u64);
        let changes = fresh.as_slice();
        if let Some(namespaces) = permitted {
            plan.limit_to_namespaces(namespaces);
        }
        let RefreshPlan {
            mut targets,
            skipped,
            unmatched,
        } = plan;
        let matched: usize = targets.values().map(|cause| cause.via.len()).sum();
        self.metrics
            .matched
            .inc_by((matched + skipped.len()) as u64);
        for skip in skipped.values() {
            self.metrics
                .skipped
                .get_or_create(&ReasonLabels {
                    reason: skip.reason.code,
                })
                .inc();
        }

        let mut marks = marks;
        let marked: Vec<(PatchTarget, Vec<String>)> = targets
            .keys()
            .map(|target| (target.clone(), marks.remove(target).unwrap_or_default()))
            .collect();
        let results = if marked.is_empty() {
            Vec::new()
        } else {
            let deadline = tokio::time::Instant::now() + WEBHOOK_DEADLINE;
            self.patcher.patch_all_marked(marked, Some(deadline)).await
        };

        let mut report = RefreshReport {
            events: changes.len() + repeated.len(),
            duplicates: repeated.into_iter().filter_map(|c| c.event_id).collect(),
            unmatched: unmatched.into_iter().collect(),
            dry_run: self.patcher.is_dry_run(),
            skipped: skipped
                .into_iter()
                .map(|(id, skip)| SkipReport {
                    namespace: id.namespace.to_string(),
                    name: id.name.to_string(),
                    code: skip.reason.code,
                    reason: skip.reason.text,
                    keys: skip.keys.into_iter().collect(),
                })
                .collect(),
            ..RefreshReport::default()
        };
        let mut applied = Vec::new();
        for Patched {
            target,
            outcome: result,
            started_here,
        } in results
        {
            let cause = targets.remove(&target).unwrap_or_default();
            let followed = cause.via.clone();
            let mut entry = target_report(&target, cause);
            match result {
                Ok(Applied::Gone) => {
                    entry.gone = true;
                    report.refreshed.push(entry);
                }
                Ok(Applied::Patched { object, stamp }) => {
                    if started_here {
                        self.follow_up.refreshed(
                            *object,
                            why(&entry.keys, changes),
                            &stamp,
                            followed,
                        );
                    }
                    report.refreshed.push(entry);
                    applied.push(target);
                }
                Ok(Applied::WouldPatch(body)) => {
                    entry.patch = Some(body);
                    report.refreshed.push(entry);
                    applied.push(target);
                }
                Err(error) => {
                    tracing::warn!(object = %target, %error, "patch failed");
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

        // An event is done when none of the patches it asked for failed, and none was left to
        // a caller that may refresh other namespaces.
        let not_permitted = report
            .skipped
            .iter()
            .filter(|s| s.code == crate::core::plan::NOT_PERMITTED)
            .flat_map(|s| s.keys.iter().map(String::as_str));
        let failed_keys: HashSet<&str> = report
            .failed
            .iter()
            .flat_map(|f| f.target.keys.iter().map(String::as_str))
            .chain(not_permitted)
            .collect();
        for change in changes {
            if let Some(key) = change.event_key()
                && !failed_keys.contains(change.key.as_str())
            {
                self.seen.remember(&key);
            }
        }

        if let Some(buster) = &self.cache_buster
            && !applied.is_empty()
        {
            report.cache_buster = Some(CacheBusterReport {
                scheduled: applied.len(),
                after_ms: buster.wait().as_millis(),
            });
            buster.schedule(applied, self.patcher.clone());
        }
        Ok(report)
    }
}

/// Whether every object `change` refreshes is an ExternalSecret that records it as applied
/// within `window` (a ClusterExternalSecret's children carry no record of it).
fn applied_before(
    change: &SecretChange,
    plan: &RefreshPlan,
    index: &RefreshIndex,
    window: std::time::Duration,
    now: chrono::DateTime<chrono::Utc>,
) -> bool {
    let Some(key) = change.event_key() else {
        return false;
    };
    let mark = event_mark(&key);
    let mut targets = plan
        .targets
        .iter()
        .filter(|(_, cause)| cause.keys.contains(&change.key))
        .peekable();
    targets.peek().is_some()
        && targets.all(|(target, _)| match target {
            PatchTarget::ExternalSecret(id) => index
                .get(id)
                .is_some_and(|secret| recorded(&secret.sync, &mark, window, now)),
            PatchTarget::ClusterExternalSecret(_) => false,
        })
}

/// For each ExternalSecret to patch, the marks of the events that refresh it, before those it
/// already records.
fn marks_to_record(
    changes: &[SecretChange],
    plan: &RefreshPlan,
    index: &RefreshIndex,
) -> std::collections::HashMap<PatchTarget, Vec<String>> {
    let mut marks = std::collections::HashMap::new();
    for (target, cause) in &plan.targets {
        let PatchTarget::ExternalSecret(id) = target else {
            continue;
        };
        let new: Vec<String> = changes
            .iter()
            .filter(|change| cause.keys.contains(&change.key))
            .filter_map(SecretChange::event_key)
            .map(|key| event_mark(&key))
            .collect();
        if new.is_empty() {
            continue;
        }
        let previous = index.get(id).map(|s| s.sync.applied_events.clone());
        marks.insert(
            target.clone(),
            merged_marks(&new, previous.iter().flatten()),
        );
    }
    marks
}

/// The Event note: which changes of which secrets asked for the refresh.
fn why(keys: &[String], changes: &[SecretChange]) -> String {
    let causes: Vec<String> = changes
        .iter()
        .filter(|change| keys.contains(&change.key))
        .map(|change| {
            let kind = change.event_type.as_deref().unwrap_or("change");
            match &change.event_id {
                Some(id) => format!("{kind} of {} (event {id})", change.key),
                None => format!("{kind} of {}", change.key),
            }
        })
        .collect();
    format!("Refresh requested by eso-refresher: {}", causes.join(", "))
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
