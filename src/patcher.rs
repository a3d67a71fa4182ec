//! Applies the annotation patches that make ESO re-sync: a JSON merge patch of
//! `metadata.annotations` only, never a full update.

use std::time::Duration;

use futures::{StreamExt, stream};
use kube::api::{Api, ApiResource, DynamicObject, Patch, PatchParams};
use serde_json::{Value, json};

use crate::plan::PatchTarget;
use crate::stamp::Stamps;

pub const UPDATED_BY: &str = "updated-by";
pub const UPDATED_AT: &str = "updated-at";
pub const UPDATED_BY_VALUE: &str = "externalsecret-updater";
pub const FORCE_SYNC: &str = "external-secrets.io/force-sync";
pub const FIELD_MANAGER: &str = "eso-refresher";

/// Patches sent at once; enough to hide API latency without flooding the API server.
const CONCURRENT_PATCHES: usize = 16;
const PATCH_TIMEOUT: Duration = Duration::from_secs(10);

/// Where patches go: the cluster, or nowhere (when running from manifest files).
pub enum Patcher {
    Cluster(Box<ClusterPatcher>),
    DryRun,
}

pub struct ClusterPatcher {
    pub client: kube::Client,
    pub external_secrets: ApiResource,
    /// `None` when the API server does not serve ClusterExternalSecrets.
    pub cluster_external_secrets: Option<ApiResource>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Applied {
    Patched,
    /// The object was deleted after it was indexed: nothing left to refresh.
    Gone,
    /// Dry run: the merge patch that would have been sent.
    WouldPatch(Value),
}

#[derive(Debug, thiserror::Error)]
pub enum PatchError {
    #[error("API server answered {code}: {message}")]
    Api { code: u16, message: String },
    #[error("request failed: {0}")]
    Request(String),
    #[error("no answer within {}s", PATCH_TIMEOUT.as_secs())]
    Timeout,
    #[error("the API server does not serve ClusterExternalSecrets")]
    NotServed,
}

/// The merge patch for `target`, with `stamp` as its fresh value.
pub fn patch_body(target: &PatchTarget, stamp: &str) -> Value {
    match target {
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
    pub fn is_dry_run(&self) -> bool {
        matches!(self, Patcher::DryRun)
    }

    /// Patches each target with a stamp of its own, a few at a time.
    pub async fn patch_all(
        &self,
        targets: impl IntoIterator<Item = PatchTarget>,
        stamps: &Stamps,
    ) -> Vec<(PatchTarget, Result<Applied, PatchError>)> {
        stream::iter(targets)
            .map(|target| async move {
                let result = self.patch(&target, &stamps.next()).await;
                (target, result)
            })
            .buffer_unordered(CONCURRENT_PATCHES)
            .collect()
            .await
    }

    pub async fn patch(&self, target: &PatchTarget, stamp: &str) -> Result<Applied, PatchError> {
        let body = patch_body(target, stamp);
        let cluster = match self {
            Patcher::DryRun => {
                tracing::info!(%target, patch = %body, "dry run: would patch");
                return Ok(Applied::WouldPatch(body));
            }
            Patcher::Cluster(cluster) => cluster,
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
        match tokio::time::timeout(PATCH_TIMEOUT, api.patch(name, &params, &patch)).await {
            Err(_) => Err(PatchError::Timeout),
            Ok(Ok(_)) => Ok(Applied::Patched),
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
    use crate::external_secret::SecretId;

    #[test]
    fn bodies_touch_only_annotations() {
        let es = patch_body(&PatchTarget::ExternalSecret(SecretId::new("a", "b")), "T");
        assert_eq!(
            es,
            json!({"metadata": {"annotations": {
                "updated-by": "externalsecret-updater", "updated-at": "T"}}})
        );
        let ces = patch_body(&PatchTarget::ClusterExternalSecret("p".into()), "T");
        assert_eq!(
            ces["metadata"]["annotations"]["external-secrets.io/force-sync"],
            "T"
        );
        assert_eq!(ces.as_object().map(|o| o.len()), Some(1));
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
        let stamps = Stamps::default();
        let targets = vec![
            PatchTarget::ExternalSecret(SecretId::new("a", "b")),
            PatchTarget::ClusterExternalSecret("p".into()),
        ];
        let results = Patcher::DryRun.patch_all(targets, &stamps).await;
        assert_eq!(results.len(), 2);
        for (target, result) in results {
            let Ok(Applied::WouldPatch(body)) = result else {
                panic!("{target}: {result:?}")
            };
            assert_eq!(body, patch_body(&target, stamp_of(&body)));
        }
    }
}
