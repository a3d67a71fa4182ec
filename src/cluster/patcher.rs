//! Applies the annotation patches that make ESO re-sync: a JSON merge patch of
//! `metadata.annotations` only, never a full update. Transient API errors are retried with
//! backoff within a time budget, and concurrent requests for one object are coalesced.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use backon::{ExponentialBuilder, Retryable};
use futures::future::{BoxFuture, Shared};
use futures::{FutureExt, StreamExt, stream};
use k8s_openapi::api::core::v1::ObjectReference;
use kube::api::{Api, ApiResource, DynamicObject, Patch, PatchParams};
use serde_json::{Value, json};

use crate::core::plan::PatchTarget;
use crate::core::stamp::Stamps;
use crate::telemetry::metrics::{ErrorLabels, KindLabels, Metrics};

pub use crate::core::stamp::{
    APPLIED_EVENTS, FORCE_SYNC, UPDATED_AT, UPDATED_BY, UPDATED_BY_VALUE,
};
pub const FIELD_MANAGER: &str = "eso-refresher";

/// Patches sent at once; enough to hide API latency without flooding the API server.
const CONCURRENT_PATCHES: usize = 16;
/// One attempt.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(5);
/// All attempts of one patch, so a webhook is answered well within a sender's own timeout.
const RETRY_BUDGET: Duration = Duration::from_secs(15);

fn backoff() -> ExponentialBuilder {
    ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(100))
        .with_max_delay(Duration::from_secs(2))
        .with_factor(2.0)
        .with_jitter()
        .with_max_times(5)
        .with_total_delay(Some(Duration::from_secs(8)))
}

/// Where patches go: the cluster, or nowhere (when running from manifest files).
pub enum Destination {
    Cluster(Box<ClusterPatcher>),
    DryRun,
}

pub struct ClusterPatcher {
    pub client: kube::Client,
    pub external_secrets: ApiResource,
    /// `None` when the API server does not serve ClusterExternalSecrets.
    pub cluster_external_secrets: Option<ApiResource>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Applied {
    /// With a reference to the patched object, for Events about it, and the stamp written,
    /// to recognize ESO's sync of it.
    Patched {
        object: Box<ObjectReference>,
        stamp: String,
    },
    /// The object was deleted after it was indexed: nothing left to refresh.
    Gone,
    /// Dry run: the merge patch that would have been sent.
    WouldPatch(Value),
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum PatchError {
    #[error("API server answered {code}: {message}")]
    Api { code: u16, message: String },
    #[error("request failed: {0}")]
    Request(String),
    #[error("no answer within {}s", ATTEMPT_TIMEOUT.as_secs())]
    Timeout,
    #[error("gave up after {secs}s of retries: {0}", secs = RETRY_BUDGET.as_secs())]
    OutOfTime(String),
    #[error("the API server does not serve ClusterExternalSecrets")]
    NotServed,
}

impl PatchError {
    /// Worth another attempt: throttling, conflicts, server errors, no answer.
    pub fn is_transient(&self) -> bool {
        match self {
            PatchError::Api { code, .. } => matches!(code, 409 | 429 | 500..=599),
            PatchError::Request(_) | PatchError::Timeout => true,
            PatchError::OutOfTime(_) | PatchError::NotServed => false,
        }
    }

    /// A bounded label for metrics.
    fn label(&self) -> String {
        match self {
            PatchError::Api { code, .. } => format!("http_{code}"),
            PatchError::Request(_) => "request".into(),
            PatchError::Timeout | PatchError::OutOfTime(_) => "timeout".into(),
            PatchError::NotServed => "not_served".into(),
        }
    }
}

pub type Outcome = Result<Applied, PatchError>;

/// One target's result.
pub struct Patched {
    pub target: PatchTarget,
    pub outcome: Outcome,
    /// This request started the patch (others that joined it share its outcome): only this one
    /// records Events and follows it up.
    pub started_here: bool,
}
type SharedOutcome = Shared<BoxFuture<'static, Outcome>>;

/// The marks of the events a patch applies, gathered from every request that joins it before
/// it is sent.
type Marks = Arc<Mutex<Vec<String>>>;

/// The patch being sent for one target, and at most one more queued behind it (with the marks
/// of the requests waiting for it).
struct Flight {
    running: SharedOutcome,
    queued: Option<(SharedOutcome, Marks)>,
}

pub struct Patcher {
    destination: Destination,
    metrics: Arc<Metrics>,
    stamps: Arc<Stamps>,
    flights: Mutex<HashMap<PatchTarget, Flight>>,
    /// Patches run here, not on the HTTP worker that asked for them: they must finish (and
    /// clear their flight) even if that request is dropped or the server stops.
    runtime: tokio::runtime::Handle,
}

struct Landing<'a> {
    patcher: &'a Patcher,
    target: &'a PatchTarget,
}

impl Drop for Landing<'_> {
    fn drop(&mut self) {
        self.patcher.land(self.target);
    }
}

/// The merge patch for `target`, with `stamp` as its fresh value and, on an ExternalSecret,
/// the marks of the events it applies (none: the annotation is left as it is).
pub fn patch_body(target: &PatchTarget, stamp: &str, marks: &[String]) -> Value {
    match target {
        PatchTarget::ExternalSecret(_) if !marks.is_empty() => {
            json!({"metadata": {"annotations": {
                UPDATED_BY: UPDATED_BY_VALUE,
                UPDATED_AT: stamp,
                APPLIED_EVENTS: marks.join(" "),
            }}})
        }
        PatchTarget::ExternalSecret(_) => json!({"metadata": {"annotations": {
            UPDATED_BY: UPDATED_BY_VALUE,
            UPDATED_AT: stamp,
        }}}),
        PatchTarget::ClusterExternalSecret(_) => json!({"metadata": {"annotations": {
            FORCE_SYNC: stamp,
            UPDATED_BY: UPDATED_BY_VALUE,
        }}}),
    }
}

impl Patcher {
    /// Must be called on the runtime that outlives the HTTP server.
    pub fn new(destination: Destination, metrics: Arc<Metrics>) -> Arc<Patcher> {
        Arc::new(Patcher {
            destination,
            metrics,
            stamps: Arc::default(),
            flights: Mutex::default(),
            runtime: tokio::runtime::Handle::current(),
        })
    }

    pub fn is_dry_run(&self) -> bool {
        matches!(self.destination, Destination::DryRun)
    }

    /// Patches each target, a few at a time. A target already being patched for another
    /// request gets one more patch after that one (shared by every request that arrives
    /// meanwhile), so a burst of events costs at most two patches per object and a lone
    /// event waits for nothing.
    ///
    /// Targets not patched by `deadline` are reported as failed; their patches go on.
    pub async fn patch_all(
        self: &Arc<Self>,
        targets: impl IntoIterator<Item = PatchTarget>,
        deadline: Option<tokio::time::Instant>,
    ) -> Vec<Patched> {
        let unmarked = targets.into_iter().map(|target| (target, Vec::new()));
        self.patch_all_marked(unmarked, deadline).await
    }

    /// As [`Patcher::patch_all`], recording on each target the marks given with it.
    pub async fn patch_all_marked(
        self: &Arc<Self>,
        targets: impl IntoIterator<Item = (PatchTarget, Vec<String>)>,
        deadline: Option<tokio::time::Instant>,
    ) -> Vec<Patched> {
        stream::iter(targets)
            .map(|(target, marks)| {
                let patcher = self.clone();
                async move {
                    let late = |why: &str| Err(PatchError::OutOfTime(why.to_owned()));
                    if deadline.is_some_and(|d| tokio::time::Instant::now() >= d) {
                        let outcome = late("not started before the webhook's deadline");
                        return Patched {
                            target,
                            outcome,
                            started_here: false,
                        };
                    }
                    let (flight, started_here) = patcher.join(target.clone(), marks);
                    let outcome = match deadline {
                        None => flight.await,
                        Some(deadline) => tokio::time::timeout_at(deadline, flight)
                            .await
                            .unwrap_or_else(|_| late("not done by the webhook's deadline")),
                    };
                    Patched {
                        target,
                        outcome,
                        started_here,
                    }
                }
            })
            .buffer_unordered(CONCURRENT_PATCHES)
            .collect()
            .await
    }

    /// The flight to wait for, and whether this call started it (and so speaks for it).
    fn join(self: &Arc<Self>, target: PatchTarget, marks: Vec<String>) -> (SharedOutcome, bool) {
        let mut flights = self.flights.lock().unwrap_or_else(|p| p.into_inner());
        match flights.get_mut(&target) {
            None => {
                let running = self.spawn(target.clone(), None, Arc::new(Mutex::new(marks)));
                flights.insert(
                    target,
                    Flight {
                        running: running.clone(),
                        queued: None,
                    },
                );
                (running, true)
            }
            Some(flight) => match &flight.queued {
                Some((queued, waiting)) => {
                    // Not sent yet (it waits for the running one): it applies these events too.
                    let mut waiting = waiting.lock().unwrap_or_else(|p| p.into_inner());
                    let merged = crate::core::dedupe::merged_marks(&marks, waiting.iter());
                    *waiting = merged;
                    (queued.clone(), false)
                }
                None => {
                    let waiting = Arc::new(Mutex::new(marks));
                    let queued = self.spawn(target, Some(flight.running.clone()), waiting.clone());
                    flight.queued = Some((queued.clone(), waiting));
                    (queued, true)
                }
            },
        }
    }

    fn spawn(
        self: &Arc<Self>,
        target: PatchTarget,
        after: Option<SharedOutcome>,
        marks: Marks,
    ) -> SharedOutcome {
        let patcher = self.clone();
        let task = self.runtime.spawn(async move {
            if let Some(previous) = after {
                let _ = previous.await;
            }
            // Lands the flight however this task ends, a panic included.
            let _landing = Landing {
                patcher: &patcher,
                target: &target,
            };
            // Read once sent: no request joins a flight that is no longer queued.
            let marks = marks.lock().unwrap_or_else(|p| p.into_inner()).clone();
            patcher.patch_with_retries(&target, &marks).await
        });
        async move {
            task.await
                .unwrap_or_else(|e| Err(PatchError::Request(format!("patch task failed: {e}"))))
        }
        .boxed()
        .shared()
    }

    /// The running patch for `target` is done: the queued one, if any, becomes the running one.
    fn land(&self, target: &PatchTarget) {
        let mut flights = self.flights.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(flight) = flights.get_mut(target) {
            match flight.queued.take() {
                Some((queued, _)) => flight.running = queued,
                None => {
                    flights.remove(target);
                }
            }
        }
    }

    async fn patch_with_retries(&self, target: &PatchTarget, marks: &[String]) -> Outcome {
        let started = Instant::now();
        // One stamp for every attempt: an attempt that timed out may have landed, and
        // writing the same value again changes nothing.
        let stamp = self.stamps.next();
        let attempts = (|| self.patch_once(target, &stamp, marks))
            .retry(backoff())
            .sleep(tokio::time::sleep)
            .when(PatchError::is_transient)
            .notify(|error, wait| {
                self.metrics.patch_retries.inc();
                tracing::warn!(object = %target, %error, retry_in_ms = wait.as_millis() as u64, "patch failed; retrying");
            });
        let outcome = match tokio::time::timeout(RETRY_BUDGET, attempts).await {
            Ok(outcome) => outcome,
            Err(_) => Err(PatchError::OutOfTime(
                "the last attempt did not finish".into(),
            )),
        };
        self.metrics
            .patch_duration
            .observe(started.elapsed().as_secs_f64());
        match &outcome {
            Ok(Applied::Patched { .. } | Applied::WouldPatch(_)) => {
                let kind = match target {
                    PatchTarget::ExternalSecret(_) => "ExternalSecret",
                    PatchTarget::ClusterExternalSecret(_) => "ClusterExternalSecret",
                };
                self.metrics
                    .patched
                    .get_or_create(&KindLabels { kind })
                    .inc();
            }
            Ok(Applied::Gone) => {}
            Err(error) => {
                self.metrics
                    .patch_failures
                    .get_or_create(&ErrorLabels {
                        error: error.label(),
                    })
                    .inc();
            }
        }
        outcome
    }

    async fn patch_once(&self, target: &PatchTarget, stamp: &str, marks: &[String]) -> Outcome {
        let body = patch_body(target, stamp, marks);
        let cluster = match &self.destination {
            Destination::DryRun => {
                tracing::info!(object = %target, patch = %body, "dry run: would patch");
                return Ok(Applied::WouldPatch(body));
            }
            Destination::Cluster(cluster) => cluster,
        };
        let (api, name): (Api<DynamicObject>, &str) = match target {
            PatchTarget::ExternalSecret(id) => (
                Api::namespaced_with(
                    cluster.client.clone(),
                    &id.namespace,
                    &cluster.external_secrets,
                ),
                &id.name,
            ),
            PatchTarget::ClusterExternalSecret(name) => {
                let resource = cluster
                    .cluster_external_secrets
                    .as_ref()
                    .ok_or(PatchError::NotServed)?;
                (Api::all_with(cluster.client.clone(), resource), name)
            }
        };
        let params = PatchParams {
            field_manager: Some(FIELD_MANAGER.to_owned()),
            ..PatchParams::default()
        };
        let patch = Patch::Merge(&body);
        match tokio::time::timeout(ATTEMPT_TIMEOUT, api.patch(name, &params, &patch)).await {
            Err(_) => Err(PatchError::Timeout),
            Ok(Ok(object)) => Ok(Applied::Patched {
                object: Box::new(object_reference(&object, resource_of(cluster, target))),
                stamp: stamp.to_owned(),
            }),
            Ok(Err(kube::Error::Api(status))) if is_object_not_found(&status, name) => {
                Ok(Applied::Gone)
            }
            Ok(Err(kube::Error::Api(status))) => Err(PatchError::Api {
                code: status.code,
                message: status.message,
            }),
            Ok(Err(other)) => Err(PatchError::Request(other.to_string())),
        }
    }
}

fn resource_of<'a>(cluster: &'a ClusterPatcher, target: &PatchTarget) -> Option<&'a ApiResource> {
    match target {
        PatchTarget::ExternalSecret(_) => Some(&cluster.external_secrets),
        PatchTarget::ClusterExternalSecret(_) => cluster.cluster_external_secrets.as_ref(),
    }
}

fn object_reference(object: &DynamicObject, resource: Option<&ApiResource>) -> ObjectReference {
    ObjectReference {
        api_version: resource.map(|r| r.api_version.clone()),
        kind: resource.map(|r| r.kind.clone()),
        name: object.metadata.name.clone(),
        namespace: object.metadata.namespace.clone(),
        uid: object.metadata.uid.clone(),
        resource_version: object.metadata.resource_version.clone(),
        ..ObjectReference::default()
    }
}

/// A 404 naming the object means it was deleted; any other 404 (the resource or version is no
/// longer served) is a failure, not a refresh that happened.
fn is_object_not_found(status: &kube::core::Status, name: &str) -> bool {
    status.code == 404
        && status.reason == "NotFound"
        && status.details.as_ref().is_some_and(|d| d.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::external_secret::SecretId;

    #[test]
    fn bodies_touch_only_annotations() {
        let es = patch_body(
            &PatchTarget::ExternalSecret(SecretId::new("a", "b")),
            "T",
            &[],
        );
        assert_eq!(
            es,
            json!({"metadata": {"annotations": {
                "updated-by": "externalsecret-updater", "updated-at": "T"}}})
        );
        let ces = patch_body(&PatchTarget::ClusterExternalSecret("p".into()), "T", &[]);
        assert_eq!(
            ces["metadata"]["annotations"]["external-secrets.io/force-sync"],
            "T"
        );
        assert_eq!(ces.as_object().map(|o| o.len()), Some(1));
    }

    #[test]
    fn transient_errors_are_the_retryable_ones() {
        let api = |code| PatchError::Api {
            code,
            message: String::new(),
        };
        for code in [409, 429, 500, 502, 503, 504] {
            assert!(api(code).is_transient(), "{code}");
        }
        for code in [400, 403, 404, 415, 422] {
            assert!(!api(code).is_transient(), "{code}");
        }
        assert!(PatchError::Timeout.is_transient());
        assert!(PatchError::Request("reset".into()).is_transient());
        assert!(!PatchError::NotServed.is_transient());
    }

    fn stamp_of(body: &Value) -> &str {
        let annotations = &body["metadata"]["annotations"];
        annotations[UPDATED_AT]
            .as_str()
            .or(annotations[FORCE_SYNC].as_str())
            .unwrap_or_default()
    }

    #[tokio::test]
    async fn dry_run_patches_nothing_and_says_so() {
        let patcher = Patcher::new(Destination::DryRun, Arc::default());
        let targets = vec![
            PatchTarget::ExternalSecret(SecretId::new("a", "b")),
            PatchTarget::ClusterExternalSecret("p".into()),
        ];
        let results = patcher.patch_all(targets, None).await;
        assert_eq!(results.len(), 2);
        for Patched {
            target,
            outcome: result,
            started_here,
        } in results
        {
            assert!(started_here);
            let Ok(Applied::WouldPatch(body)) = result else {
                panic!("{target}: {result:?}")
            };
            assert_eq!(body, patch_body(&target, stamp_of(&body), &[]));
        }
        assert!(
            patcher.flights.lock().unwrap().is_empty(),
            "flights cleared"
        );
    }
}
