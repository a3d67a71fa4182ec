//! One read of the cluster, for a preview: the ExternalSecrets and the stores, each listed
//! once. No get, no watch, no write.

use std::time::Duration;

use kube::api::{Api, ApiResource, DynamicObject, ListParams};

use crate::Error;
use crate::cluster::manifests::Objects;
use crate::cluster::watch;

/// A list of every ExternalSecret of a large cluster comes in one answer: more time than the
/// service's other requests get.
const LIST_TIMEOUT: Duration = Duration::from_secs(120);

/// What one read of the cluster found, and what it could not read.
#[derive(Debug, Default)]
pub struct Snapshot {
    pub objects: Objects,
    /// The external-secrets.io version read.
    pub version: String,
    /// Store kinds that could not be listed (not served, or forbidden): ExternalSecrets
    /// reading from them match changes from any provider, as in the service.
    pub unread: Vec<String>,
}

/// Lists the ExternalSecrets of `namespace` (every namespace for `None`) in one request, then
/// the SecretStores of the same scope and the ClusterSecretStores in one request each, after
/// asking the API server which version of external-secrets.io it serves.
pub async fn read(client: &kube::Client, namespace: Option<&str>) -> Result<Snapshot, Error> {
    let apis = watch::discover(client).await?;
    let list = |resource: &ApiResource, scope: Option<&str>| {
        let api: Api<DynamicObject> = match scope {
            Some(namespace) => Api::namespaced_with(client.clone(), namespace, resource),
            None => Api::all_with(client.clone(), resource),
        };
        async move {
            tokio::time::timeout(LIST_TIMEOUT, api.list(&ListParams::default()))
                .await
                .map_err(|_| Error::Timeout("listing for the preview"))
        }
    };
    let mut snapshot = Snapshot {
        version: apis.version.clone(),
        ..Snapshot::default()
    };
    let listed = list(&apis.external_secrets, namespace).await??;
    snapshot.objects.external_secrets = listed.items;
    let stores = [
        (&apis.secret_stores, namespace, "SecretStore"),
        (&apis.cluster_secret_stores, None, "ClusterSecretStore"),
    ];
    for (resource, scope, kind) in stores {
        let Some(resource) = resource else {
            snapshot
                .unread
                .push(format!("{kind}: not served by the API server"));
            continue;
        };
        match list(resource, scope).await? {
            Ok(listed) => snapshot.objects.stores.extend(listed.items),
            Err(kube::Error::Api(status)) if status.code == 403 || status.code == 404 => {
                snapshot
                    .unread
                    .push(format!("{kind}: {} ({})", status.message, status.code));
            }
            Err(other) => return Err(Error::Kube(other)),
        }
    }
    Ok(snapshot)
}
