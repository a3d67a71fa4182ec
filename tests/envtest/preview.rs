//! `eso-refresher preview` against the real API server, as the shipped ServiceAccount: it says
//! what a change would refresh, and reads the cluster with one list of each kind, writing
//! nothing (the audit log says so).

use serde_json::{Value, json};

use crate::support::*;

#[tokio::test]
async fn preview_reads_one_list_of_each_kind_and_writes_nothing() {
    let Some(s) = Scenario::new("preview", "base").await else {
        return;
    };
    let ns = s.namespace.as_str();
    let store = format!("SecretStore {ns}/{}", s.store);
    s.store_in(ns).await;
    let (key, other) = (s.key("db", "v1"), s.key("other", "v1"));
    let mut once = external_secret(ns, "once", &s.store, &key);
    once["spec"]["refreshPolicy"] = json!("CreatedOnce");
    for object in [
        external_secret(ns, "db", &s.store, &key),
        external_secret(ns, "other", &s.store, &other),
        once,
    ] {
        s.cluster.apply(object).await;
    }

    let audit_from = s.cluster.audit_offset();
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_eso-refresher"))
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("KUBECONFIG", &s.identity.kubeconfig)
        .args(["preview", "--output", "json", "--key", &key])
        .output()
        .await
        .expect("the preview runs");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let answer: Value = serde_json::from_slice(&output.stdout).expect("JSON");
    assert_eq!(answer["source"], "cluster");
    let ours: Vec<String> = answer["matches"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|m| m["namespace"] == ns)
        .map(|m| {
            let outcome = m["target"].as_str().or(m["code"].as_str()).unwrap_or("?");
            format!(
                "{} | {} | {} ({}) | {outcome}",
                m["name"].as_str().unwrap_or("?"),
                m["rule"].as_str().unwrap_or("?"),
                m["store"].as_str().unwrap_or("?"),
                m["provider"].as_str().unwrap_or("?"),
            )
        })
        .collect();
    assert_eq!(
        ours,
        [
            format!("db | key {key} | {store} (webhook) | ExternalSecret {ns}/db"),
            format!("once | key {key} | {store} (webhook) | created_once"),
        ],
        "{answer:#}"
    );

    // From the audit log: a list of ExternalSecrets, of SecretStores and of
    // ClusterSecretStores, once each, and discovery; no get of an object, no watch, no write.
    let requests = s.cluster.audit_since(&s.identity.username, audit_from);
    let lists: Vec<(String, String)> = tally(&requests)
        .into_iter()
        .filter(|((verb, _), _)| verb == "list")
        .map(|((_, resource), count)| (resource, count.to_string()))
        .collect();
    assert_eq!(
        lists,
        [
            ("clustersecretstores".to_owned(), "1".to_owned()),
            ("externalsecrets".to_owned(), "1".to_owned()),
            ("secretstores".to_owned(), "1".to_owned()),
        ],
        "{requests:#?}"
    );
    for request in &requests {
        let discovery = request.verb == "get" && request.resource.is_empty();
        assert!(
            request.verb == "list" || discovery,
            "not a list or discovery: {request:?}"
        );
        assert_eq!(request.code, 200, "{request:?}");
    }
}
