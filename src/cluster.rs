//! The cluster side: which external-secrets.io version to use, which namespaces to watch,
//! and the watch that keeps the index current.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use futures::{StreamExt, stream};
use kube::api::{Api, ApiResource, DynamicObject, ListParams};
use kube::runtime::{WatchStreamExt, watcher};
use tokio_util::sync::CancellationToken;

use crate::Error;
use crate::external_secret::{IndexedSecret, SecretId};
use crate::index::SharedIndex;
use crate::metrics::Metrics;

pub const GROUP: &str = "external-secrets.io";
/// For every request but the watch, which is long-lived by design.
const API_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);
/// Preferred first: current ESO serves only v1.
const VERSIONS: [&str; 2] = ["v1", "v1beta1"];

pub struct ClusterApis {
    pub version: String,
    pub external_secrets: ApiResource,
    pub cluster_external_secrets: Option<ApiResource>,
}

/// Asks the API server which versions of external-secrets.io it serves.
pub async fn discover(client: &kube::Client) -> Result<ClusterApis, Error> {
    let group = tokio::time::timeout(API_TIMEOUT, kube::discovery::group(client, GROUP))
        .await
        .map_err(|_| Error::Timeout("discovery of external-secrets.io"))?
        .map_err(|e| match e {
            kube::Error::Discovery(_) => Error::NotServed,
            other => Error::Kube(other),
        })?;
    for version in VERSIONS {
        if !group.versions().any(|served| served == version) {
            continue;
        }
        let resources = group.versioned_resources(version);
        let find = |kind: &str| {
            resources
                .iter()
                .find(|(resource, _)| resource.kind == kind)
                .map(|(resource, _)| resource.clone())
        };
        if let Some(external_secrets) = find("ExternalSecret") {
            return Ok(ClusterApis {
                version: version.to_owned(),
                external_secrets,
                cluster_external_secrets: find("ClusterExternalSecret"),
            });
        }
    }
    Err(Error::NotServed)
}

/// Where to watch: `None` is the whole cluster, `Some(ns)` one namespace.
pub type Scope = Option<String>;

/// The configured namespaces; else the whole cluster if this service may list it, else its
/// own namespace.
pub async fn watch_scopes(
    client: &kube::Client,
    resource: &ApiResource,
    namespaces: &[String],
    own_namespace: Option<&str>,
) -> Result<Vec<Scope>, Error> {
    if !namespaces.is_empty() {
        return Ok(namespaces.iter().cloned().map(Some).collect());
    }
    let everywhere: Api<DynamicObject> = Api::all_with(client.clone(), resource);
    let probe = tokio::time::timeout(
        API_TIMEOUT,
        everywhere.list(&ListParams::default().limit(1)),
    )
    .await
    .map_err(|_| Error::Timeout("listing ExternalSecrets"))?;
    match probe {
        Ok(_) => Ok(vec![None]),
        Err(kube::Error::Api(status)) if status.code == 403 => {
            let namespace = own_namespace.unwrap_or_else(|| client.default_namespace());
            tracing::warn!(
                namespace,
                "listing ExternalSecrets in all namespaces is forbidden; watching only this namespace"
            );
            Ok(vec![Some(namespace.to_owned())])
        }
        Err(other) => Err(Error::Kube(other)),
    }
}

/// Keeps `index` equal to the ExternalSecrets in `scopes` until `shutdown`. The index is marked
/// synced once every scope has been listed; a re-list after a lost watch replaces that
/// scope's entries at once, so deleted objects leave no ghosts.
pub async fn watch(
    client: kube::Client,
    resource: ApiResource,
    scopes: Vec<Scope>,
    index: Arc<SharedIndex>,
    metrics: Arc<Metrics>,
    shutdown: CancellationToken,
) {
    let streams = scopes.iter().map(|scope| {
        let api: Api<DynamicObject> = match scope {
            None => Api::all_with(client.clone(), &resource),
            Some(ns) => Api::namespaced_with(client.clone(), ns, &resource),
        };
        let scope = scope.clone();
        watcher(api, watcher::Config::default())
            .default_backoff()
            .map(move |event| (scope.clone(), event))
            .boxed()
    });
    let mut events = stream::select_all(streams);
    let mut buffers: HashMap<Scope, Vec<IndexedSecret>> = HashMap::new();
    let mut listed: HashSet<Scope> = HashSet::new();
    let mut errors_in_a_row: HashMap<Scope, u32> = HashMap::new();

    loop {
        let next = tokio::select! {
            _ = shutdown.cancelled() => break,
            next = events.next() => next,
        };
        let Some((scope, event)) = next else { break };
        let failed = event.is_err();
        if failed {
            metrics.watch_errors.inc();
            *errors_in_a_row.entry(scope.clone()).or_default() += 1;
        } else {
            errors_in_a_row.remove(&scope);
        }
        let worst = errors_in_a_row.values().copied().max().unwrap_or(0);
        index.record_watch_errors(worst, failed);
        let event = match event {
            Ok(event) => event,
            Err(error) => {
                tracing::warn!(scope = scope_name(&scope), %error, "watch failed; retrying");
                continue;
            }
        };
        match event {
            watcher::Event::Init => {
                buffers.insert(scope, Vec::new());
            }
            watcher::Event::InitApply(object) => {
                if let Some(secret) = IndexedSecret::read_logged(&object) {
                    buffers.entry(scope).or_default().push(secret);
                }
            }
            watcher::Event::InitDone => {
                let secrets = buffers.remove(&scope).unwrap_or_default();
                let count = secrets.len();
                index.write(|index| index.reset(scope.as_deref(), secrets));
                tracing::info!(scope = scope_name(&scope), count, "ExternalSecrets listed");
                listed.insert(scope);
                if listed.len() == scopes.len() && !index.is_synced() {
                    index.mark_synced();
                    tracing::info!(total = index.read(|i| i.len()), "cache synced; ready");
                }
            }
            watcher::Event::Apply(object) => {
                if let Some(secret) = IndexedSecret::read_logged(&object) {
                    index.write(|index| index.apply(secret));
                }
            }
            watcher::Event::Delete(object) => {
                if let (Some(namespace), Some(name)) = (
                    object.metadata.namespace.as_deref(),
                    object.metadata.name.as_deref(),
                ) {
                    index.write(|index| index.delete(&SecretId::new(namespace, name)));
                }
            }
        }
    }
    tracing::debug!("watch stopped");
}

fn scope_name(scope: &Scope) -> &str {
    scope.as_deref().unwrap_or("<all namespaces>")
}
