//! The cluster side: which external-secrets.io version to use, which namespaces to watch,
//! and the watch that keeps the index current: ExternalSecrets, and the SecretStores and
//! ClusterSecretStores that say which provider each reads from.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use futures::{StreamExt, stream};
use kube::api::{Api, ApiResource, DynamicObject, ListParams};
use kube::runtime::utils::ResetTimerBackoff;
use kube::runtime::{WatchStreamExt, watcher};
use tokio_util::sync::CancellationToken;

use k8s_openapi::api::core::v1::ObjectReference;

use crate::Error;
use crate::cluster::events::{EventKind, Recorder};
use crate::core::external_secret::{IndexedSecret, SecretId};
use crate::core::index::SharedIndex;
use crate::core::store::{Backend, StoreId, StoreReader};
use crate::telemetry::metrics::Metrics;

pub const GROUP: &str = "external-secrets.io";
/// For every request but the watch, which is long-lived by design.
const API_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);
/// Preferred first: current ESO serves only v1.
const VERSIONS: [&str; 2] = ["v1", "v1beta1"];

pub struct ClusterApis {
    pub version: String,
    pub external_secrets: ApiResource,
    pub cluster_external_secrets: Option<ApiResource>,
    pub secret_stores: Option<ApiResource>,
    pub cluster_secret_stores: Option<ApiResource>,
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
                secret_stores: find("SecretStore"),
                cluster_secret_stores: find("ClusterSecretStore"),
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

/// What one watch stream keeps in the index.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    ExternalSecrets,
    SecretStores,
    ClusterSecretStores,
}

/// One list-and-watch: a kind in a scope.
#[derive(Debug, Clone)]
pub struct Target {
    pub kind: Kind,
    pub resource: ApiResource,
    pub scope: Scope,
}

/// The ExternalSecrets in `scopes`, and the stores they may read from. A store kind that is
/// not served or may not be listed is left out, with a warning: the ExternalSecrets reading
/// from it are then matched by key alone, whatever the provider.
pub async fn watch_targets(
    client: &kube::Client,
    apis: &ClusterApis,
    scopes: &[Scope],
) -> Result<Vec<Target>, Error> {
    let mut targets: Vec<Target> = scopes
        .iter()
        .map(|scope| Target {
            kind: Kind::ExternalSecrets,
            resource: apis.external_secrets.clone(),
            scope: scope.clone(),
        })
        .collect();
    let mut stores: Vec<Target> = Vec::new();
    if let Some(resource) = &apis.secret_stores {
        stores.extend(scopes.iter().map(|scope| Target {
            kind: Kind::SecretStores,
            resource: resource.clone(),
            scope: scope.clone(),
        }));
    }
    if let Some(resource) = &apis.cluster_secret_stores {
        stores.push(Target {
            kind: Kind::ClusterSecretStores,
            resource: resource.clone(),
            scope: None,
        });
    }
    for target in stores {
        let probe = tokio::time::timeout(
            API_TIMEOUT,
            target.api(client).list(&ListParams::default().limit(1)),
        )
        .await;
        match probe {
            Ok(Err(kube::Error::Api(status))) if status.code == 403 || status.code == 404 => {
                tracing::warn!(
                    kind = target.resource.kind,
                    scope = scope_name(&target.scope),
                    code = status.code,
                    "cannot list these stores; ExternalSecrets reading from them match changes from any provider"
                );
            }
            // Listed, or failing for now: the watch retries with backoff.
            _ => targets.push(target),
        }
    }
    Ok(targets)
}

impl Target {
    fn api(&self, client: &kube::Client) -> Api<DynamicObject> {
        match &self.scope {
            None => Api::all_with(client.clone(), &self.resource),
            Some(ns) => Api::namespaced_with(client.clone(), ns, &self.resource),
        }
    }
}

/// A Warning Event on each ExternalSecret indexed with a rule no change event can match, when
/// it is first seen by this instance or its rules change (not on every re-list).
struct UnmatchableWarnings {
    recorder: Recorder,
    /// The ExternalSecret resource, to refer to the object.
    resource: Option<ApiResource>,
}

impl UnmatchableWarnings {
    fn check(&self, index: &SharedIndex, item: &Item, object: &DynamicObject) {
        let (Item::Secret(secret), Some(resource)) = (item, &self.resource) else {
            return;
        };
        if secret.unmatchable.is_empty() {
            return;
        }
        let known = index.read(|index| index.get(&secret.id));
        if known
            .is_some_and(|k| k.unmatchable == secret.unmatchable && k.problems == secret.problems)
        {
            return;
        }
        let reference = ObjectReference {
            api_version: Some(resource.api_version.clone()),
            kind: Some(resource.kind.clone()),
            name: object.metadata.name.clone(),
            namespace: object.metadata.namespace.clone(),
            uid: object.metadata.uid.clone(),
            resource_version: object.metadata.resource_version.clone(),
            ..ObjectReference::default()
        };
        let note = format!(
            "eso-refresher cannot match change events to every rule of this ExternalSecret; \
             it is refreshed only by ESO's refreshInterval for: {}",
            secret.problems.join("; ")
        );
        let what = format!("{:?}", secret.problems);
        self.recorder
            .record_once(&reference, EventKind::UNMATCHABLE, note, &what);
    }
}

/// An object as the index keeps it.
enum Item {
    Secret(IndexedSecret),
    Store(StoreId, Backend),
}

impl Item {
    fn read(kind: Kind, object: &DynamicObject, stores: StoreReader) -> Option<Item> {
        match kind {
            Kind::ExternalSecrets => IndexedSecret::read_logged(object).map(Item::Secret),
            Kind::SecretStores | Kind::ClusterSecretStores => {
                let id = StoreId::of(object)?;
                Some(Item::Store(id, Backend::from_object(object, stores)))
            }
        }
    }
}

/// How soon a failed watch is tried again: from 0.5 s, doubling, at most every 5 s. Far below
/// the library default's 30 s, since until it is back webhooks are answered 503; a few
/// requests a second at most, as the watches are few.
fn reconnect_backoff() -> ResetTimerBackoff<watcher::ExponentialBackoff> {
    let strategy = backon::ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(500))
        .with_max_delay(RECONNECT_AT_MOST_EVERY)
        .with_factor(2.0)
        .with_jitter()
        .without_max_times();
    ResetTimerBackoff::new(strategy.into(), Duration::from_secs(120))
}

const RECONNECT_AT_MOST_EVERY: Duration = Duration::from_secs(5);

/// Keeps `index` equal to the objects of `targets` (whose stores `stores` reads) until
/// `shutdown`. The index is marked
/// synced once every target has been listed; a re-list after a lost watch replaces that
/// target's entries at once, so deleted objects leave no ghosts.
pub async fn watch(
    client: kube::Client,
    targets: Vec<Target>,
    stores: StoreReader,
    index: Arc<SharedIndex>,
    metrics: Arc<Metrics>,
    shutdown: CancellationToken,
) {
    let streams = targets.iter().map(|target| {
        let key = (target.kind, target.scope.clone());
        watcher(target.api(&client), watcher::Config::default())
            .backoff(reconnect_backoff())
            .map(move |event| (key.clone(), event))
            .boxed()
    });
    let mut events = stream::select_all(streams);
    let warnings = UnmatchableWarnings {
        recorder: Recorder::new(client.clone()),
        resource: targets
            .iter()
            .find(|t| t.kind == Kind::ExternalSecrets)
            .map(|t| t.resource.clone()),
    };
    let mut buffers: HashMap<(Kind, Scope), Vec<Item>> = HashMap::new();
    let mut listed: HashSet<(Kind, Scope)> = HashSet::new();
    let mut errors_in_a_row: HashMap<(Kind, Scope), u32> = HashMap::new();

    loop {
        let next = tokio::select! {
            _ = shutdown.cancelled() => break,
            next = events.next() => next,
        };
        let Some((key, event)) = next else { break };
        let failed = event.is_err();
        if failed {
            metrics.watch_errors.inc();
            *errors_in_a_row.entry(key.clone()).or_default() += 1;
        } else {
            errors_in_a_row.remove(&key);
        }
        let worst = errors_in_a_row.values().copied().max().unwrap_or(0);
        index.record_watch_errors(worst, failed);
        let (kind, scope) = &key;
        let event = match event {
            Ok(event) => event,
            Err(error) => {
                tracing::warn!(?kind, scope = scope_name(scope), %error, "watch failed; retrying");
                continue;
            }
        };
        match event {
            watcher::Event::Init => {
                buffers.insert(key, Vec::new());
            }
            watcher::Event::InitApply(object) => {
                if let Some(item) = Item::read(*kind, &object, stores) {
                    warnings.check(&index, &item, &object);
                    buffers.entry(key).or_default().push(item);
                }
            }
            watcher::Event::InitDone => {
                let items = buffers.remove(&key).unwrap_or_default();
                let count = items.len();
                reset(&index, *kind, scope.as_deref(), items);
                tracing::info!(?kind, scope = scope_name(scope), count, "listed");
                listed.insert(key);
                if listed.len() == targets.len() && !index.is_synced() {
                    index.mark_synced();
                    let (total, stores) = index.read(|i| (i.len(), i.store_count()));
                    tracing::info!(total, stores, "cache synced; ready");
                }
            }
            watcher::Event::Apply(object) => match Item::read(*kind, &object, stores) {
                Some(Item::Secret(secret)) => {
                    warnings.check(&index, &Item::Secret(secret.clone()), &object);
                    index.write(|index| index.apply(secret));
                }
                Some(Item::Store(id, backend)) => {
                    index.write(|index| index.apply_store(id, backend));
                }
                None => {}
            },
            watcher::Event::Delete(object) => {
                let name = object.metadata.name.as_deref();
                match (kind, object.metadata.namespace.as_deref(), name) {
                    (Kind::ExternalSecrets, Some(namespace), Some(name)) => {
                        index.write(|index| index.delete(&SecretId::new(namespace, name)));
                    }
                    (Kind::SecretStores | Kind::ClusterSecretStores, _, Some(_)) => {
                        if let Some(id) = StoreId::of(&object) {
                            index.write(|index| index.delete_store(&id));
                        }
                    }
                    _ => {}
                }
            }
        }
    }
    tracing::debug!("watch stopped");
}

/// Replaces what a target listed before with what it lists now.
fn reset(index: &SharedIndex, kind: Kind, scope: Option<&str>, items: Vec<Item>) {
    match kind {
        Kind::ExternalSecrets => {
            let secrets = items.into_iter().filter_map(|item| match item {
                Item::Secret(secret) => Some(secret),
                Item::Store(..) => None,
            });
            index.write(|index| index.reset(scope, secrets));
        }
        Kind::SecretStores | Kind::ClusterSecretStores => {
            let stores = items.into_iter().filter_map(|item| match item {
                Item::Store(id, backend) => Some((id, backend)),
                Item::Secret(_) => None,
            });
            let cluster = kind == Kind::ClusterSecretStores;
            index.write(|index| index.reset_stores(cluster, scope, stores));
        }
    }
}

fn scope_name(scope: &Scope) -> &str {
    scope.as_deref().unwrap_or("<all namespaces>")
}
