//! De-duplication across replicas and restarts: an event applied by one instance is recorded on
//! the objects it refreshed, and another instance (or the same one restarted) reads that record
//! from its watch cache.

use serde_json::json;

use crate::support::*;

/// What the API server's audit log shows of patches to ExternalSecrets since `from`.
fn patches(s: &Scenario, from: u64) -> usize {
    s.cluster
        .audit_since(&s.identity.username, from)
        .iter()
        .filter(|r| r.verb == "patch" && r.resource == "externalsecrets")
        .count()
}

#[tokio::test]
async fn a_redelivery_to_another_replica_or_after_a_restart_patches_nothing() {
    let Some(s) = Scenario::new("dedupe", "base").await else {
        return;
    };
    let ns = s.namespace.as_str();
    let key = s.one_synced("db").await;
    let first = s.service(&[]).await;
    let second = s.service(&[]).await;
    let event = |source: &str| {
        json!({"specversion": "1.0", "id": format!("{}-1", s.tag), "source": source,
            "type": "com.example.secret.updated", "subject": key})
    };
    let cloudevents = "/webhook/cloudevents";

    let from = s.cluster.audit_offset();
    s.manager.set(&key, "v2");
    let (status, _, answer) = first.post(cloudevents, &event("/vault-a"), &[]).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(refreshed(&answer), [format!("{ns}/db")], "{answer}");
    s.cluster.wait_for_value(ns, "db", "value", "v2").await;
    let object = s.cluster.external_secret(ns, "db").await;
    assert!(
        object["metadata"]["annotations"]["eso-refresher/applied-events"].is_string(),
        "{object:#}"
    );

    // The same event, re-delivered to the other replica once its watch has the patched object
    // (the ESO sync above took longer than the watch).
    let (status, _, answer) = second.post(cloudevents, &event("/vault-a"), &[]).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        answer["duplicates"],
        json!([format!("{}-1", s.tag)]),
        "{answer}"
    );
    assert!(refreshed(&answer).is_empty(), "{answer}");

    // And to an instance started afresh, which has only its first list to go by.
    drop(first);
    let restarted = s.service(&[]).await;
    let (status, _, answer) = restarted.post(cloudevents, &event("/vault-a"), &[]).await;
    assert_eq!(status, 200, "{answer}");
    assert!(refreshed(&answer).is_empty(), "{answer}");
    assert_eq!(
        patches(&s, from),
        1,
        "one patch for one event, across three instances"
    );

    // The same id from another source is another event.
    let (status, _, answer) = second.post(cloudevents, &event("/vault-b"), &[]).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(refreshed(&answer), [format!("{ns}/db")], "{answer}");
    assert_eq!(patches(&s, from), 2);
}
