//! The workload: N ExternalSecrets over M namespaces, loaded into the fake API server, and the
//! webhook bodies that name their keys.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use serde_json::{Value, json};

use crate::fake_api::{Arrivals, FakeApiServer};
use crate::service::write_kubeconfig;

/// ExternalSecrets that share a group key: a webhook for it matches this many.
pub const FANOUT: usize = 100;
/// One ExternalSecret in this many also has a `dataFrom[].find` rule.
const FIND_EVERY: usize = 100;

fn namespace_of(i: usize, namespaces: usize) -> String {
    format!("bench-{:03}", i % namespaces)
}

pub fn own_key(i: usize) -> String {
    format!("/bench/own/{i}")
}

pub fn group_key(group: usize) -> String {
    format!("/bench/group/{group}")
}

/// ExternalSecret `i`: its own key (a webhook for it matches 1), a key shared with the 99
/// others of its group, spread over every namespace (a webhook for it matches 100), and, for
/// one in FIND_EVERY, a `dataFrom[].find` rule the index must try on every lookup.
fn external_secret(i: usize, namespaces: usize) -> Value {
    let name = format!("es-{i:06}");
    let mut object = json!({
        "apiVersion": "external-secrets.io/v1",
        "kind": "ExternalSecret",
        "metadata": {"namespace": namespace_of(i, namespaces), "name": name,
                     "labels": {"app.kubernetes.io/part-of": "bench"}},
        "spec": {
            "refreshInterval": "1h",
            "secretStoreRef": {"kind": "ClusterSecretStore", "name": "akeyless"},
            "target": {"name": name, "creationPolicy": "Owner"},
            "data": [
                {"secretKey": "password", "remoteRef": {"key": own_key(i)}},
                {"secretKey": "host", "remoteRef": {"key": group_key(i / FANOUT)}},
            ],
        },
    });
    if i % FIND_EVERY == FIND_EVERY / 2 {
        object["spec"]["dataFrom"] = json!([{"find": {"path": format!("/bench/find/{i}/"), "name": {"regexp": "^cfg-.*$"}}}]);
    }
    object
}

/// Stores N ExternalSecrets: the first of each shape through `apply`, which validates it
/// against ESO's CRD schema, the rest unvalidated (validating 100k takes minutes).
fn load(fake: &FakeApiServer, n: usize, namespaces: usize) {
    fake.apply(external_secret(0, namespaces));
    fake.apply(external_secret(FIND_EVERY / 2, namespaces));
    let rest = (1..n)
        .filter(|i| *i != FIND_EVERY / 2)
        .map(|i| external_secret(i, namespaces));
    fake.load_unvalidated(rest);
}

static NEXT_EVENT_ID: AtomicU64 = AtomicU64::new(1);

/// An Akeyless forwarder body announcing one changed item, with an event id of its own (a
/// repeated id is answered as a duplicate without a lookup).
pub fn akeyless_body(key: &str) -> String {
    let id = NEXT_EVENT_ID.fetch_add(1, Ordering::Relaxed);
    json!([{"event_id": id, "event_level": "info", "event_type": "static-secret-updated",
            "item_name": key, "item_id": 1, "item_type": "STATIC_SECRET", "payload": {}}])
    .to_string()
}

/// The generic form, `{"keys": [..]}`, for `POST /webhook/generic`: concerns a store of any
/// provider (ESO's `webhook` provider, on envtest).
pub fn generic_body(key: &str) -> String {
    json!({"keys": [key]}).to_string()
}

/// The same without an event id, for the saturation phase, which sends one request over and
/// over: every one is looked up, none is taken for a re-delivery.
pub fn akeyless_body_without_id(key: &str) -> String {
    json!([{"event_level": "info", "event_type": "static-secret-updated",
            "item_name": key, "item_id": 1, "item_type": "STATIC_SECRET", "payload": {}}])
    .to_string()
}

/// Spreads the k-th of `count` picks over 0..n.
pub fn spread(k: usize, n: usize) -> usize {
    (k * 7919 + 13) % n
}

/// The fake loaded with N ExternalSecrets over M namespaces; its benchmark front's URL, handle
/// and PATCH/PUT arrivals; a kubeconfig for it.
pub async fn loaded_fake(
    n: usize,
    namespaces: usize,
    dir: &Path,
) -> (
    FakeApiServer,
    String,
    actix_web::dev::ServerHandle,
    Arrivals,
    PathBuf,
) {
    let fake = FakeApiServer::start().await;
    if n > 0 {
        let loading = Instant::now();
        load(&fake, n, namespaces);
        eprintln!(
            "[N={n}] fake loaded in {:.1}s",
            loading.elapsed().as_secs_f64()
        );
    }
    let (api, front, arrivals) = fake.start_bench_front();
    let kubeconfig = write_kubeconfig(dir, &api, None);
    (fake, api, front, arrivals, kubeconfig)
}
