//! A RE-IMPLEMENTATION (not the original binary) of the original Go tool's per-webhook
//! strategy, run against the same fake API server for comparison.

use std::time::Duration;

use serde_json::{Value, json};

use crate::fake_api::Arrivals;
use crate::stats::{Latency, one_at_a_time};

/// RE-IMPLEMENTATION (not the original binary) of what the original Go tool did for each
/// webhook: list namespaces, list the ExternalSecrets of each namespace, and for every one
/// that references `key`, GET it and PUT it back (a full update) with the annotations set;
/// all sequentially. Returns how many it updated.
pub async fn original_webhook(http: &reqwest::Client, api: &str, key: &str, stamp: &str) -> usize {
    let get = |url: String| async move {
        let response = http.get(url).send().await.expect("GET");
        assert_eq!(response.status(), 200);
        response.json::<Value>().await.expect("JSON")
    };
    let namespaces = get(format!("{api}/api/v1/namespaces")).await;
    let mut updated = 0;
    for namespace in namespaces["items"].as_array().into_iter().flatten() {
        let ns = namespace["metadata"]["name"]
            .as_str()
            .expect("namespace name");
        let list = get(format!(
            "{api}/apis/external-secrets.io/v1/namespaces/{ns}/externalsecrets"
        ))
        .await;
        for item in list["items"].as_array().into_iter().flatten() {
            if !matches_key(item, key) {
                continue;
            }
            let name = item["metadata"]["name"].as_str().expect("name");
            let url =
                format!("{api}/apis/external-secrets.io/v1/namespaces/{ns}/externalsecrets/{name}");
            let mut object = get(url.clone()).await;
            object["metadata"]["annotations"]["updated-by"] = json!("externalsecret-updater");
            object["metadata"]["annotations"]["updated-at"] = json!(stamp);
            let response = http.put(url).json(&object).send().await.expect("PUT");
            assert_eq!(
                response.status(),
                200,
                "{}",
                response.text().await.unwrap_or_default()
            );
            updated += 1;
        }
    }
    updated
}

/// Runs the strategy for each of `keys` (with the count of ExternalSecrets that reference it),
/// one at a time, each once, and measures each; stops after `cap`.
pub async fn measure_original(
    http: &reqwest::Client,
    api: &str,
    arrivals: &Arrivals,
    keys: impl Iterator<Item = (String, usize)>,
    cap: Duration,
) -> Latency {
    let stamped = keys
        .enumerate()
        .map(|(i, (key, expected))| ((key, format!("2026-01-01T00:00:00.{i:09}Z")), expected));
    one_at_a_time(arrivals, stamped, cap, async |(key, stamp)| {
        original_webhook(http, api, &key, &stamp).await
    })
    .await
}

/// Whether `object` reads `key` (leading slashes aside), as the original tool decided it.
fn matches_key(object: &Value, key: &str) -> bool {
    let key = key.trim_start_matches('/');
    let same = |k: &Value| k.as_str().is_some_and(|k| k.trim_start_matches('/') == key);
    let spec = &object["spec"];
    spec["data"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|d| same(&d["remoteRef"]["key"]))
        || spec["dataFrom"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|d| same(&d["extract"]["key"]))
}
