//! Akeyless Event Center bodies of every form refresh the ExternalSecrets of Akeyless stores on
//! the real API server. ESO here has no Akeyless provider, so it cannot fetch the items: what is
//! checked is the patch the API server stored, and that notices patch nothing.

use serde_json::{Value, json};

use crate::support::*;

fn akeyless_store(namespace: &str) -> Value {
    let credential = |key: &str| json!({"name": "akeyless-credentials", "key": key});
    secret_store(
        namespace,
        "akeyless",
        json!({"akeyless": {
            "akeylessGWApiURL": "https://api.akeyless.io",
            "authSecretRef": {"secretRef": {
                "accessID": credential("access-id"),
                "accessType": credential("access-type"),
                "accessTypeParam": credential("access-type-param"),
            }},
        }}),
    )
}

/// The `updated-at` stamp the service put on an ExternalSecret, if any.
async fn stamp(s: &Scenario, name: &str) -> Option<String> {
    let object = s.cluster.external_secret(&s.namespace, name).await;
    object["metadata"]["annotations"]["updated-at"]
        .as_str()
        .map(str::to_owned)
}

#[tokio::test]
async fn every_akeyless_form_patches_the_external_secrets_of_akeyless_stores() {
    let Some(s) = Scenario::new("akeyless", "base").await else {
        return;
    };
    let ns = s.namespace.as_str();
    s.cluster.apply(akeyless_store(ns)).await;
    // The same path through a store of another provider: an Akeyless event does not concern it.
    s.store_in(ns).await;
    let item = format!("/{}/payments/db-password", s.tag);
    s.cluster
        .apply(external_secret(ns, "db", "akeyless", &item))
        .await;
    s.cluster
        .apply(external_secret(ns, "elsewhere", &s.store, &item))
        .await;
    let service = s.service(&[]).await;

    let forms = [
        (
            "an event",
            json!({"event_id": format!("{}-1", s.tag), "event_type": "static-secret-updated",
                "item_name": item, "item_type": "STATIC_SECRET"}),
        ),
        (
            "an array of events",
            json!([{"event_id": format!("{}-2", s.tag), "event_type": "rotated-secret-success",
                "item_name": item}]),
        ),
        (
            "groups under Akeyless_Events",
            json!({"Akeyless_Events": {"Static_Secret_Updated": [{"name": item}]}}),
        ),
        (
            "groups under the spaced wrapper",
            json!({"Akeyless Events": {"Static Secret Updated": [{"name": item}]}}),
        ),
        (
            "groups without a wrapper",
            json!({"Rotated_Secret_Success": [{"name": item, "item_id": "1"}]}),
        ),
    ];
    let mut last = stamp(&s, "db").await;
    for (i, (form, body)) in forms.iter().enumerate() {
        // Half on the sender's route, half on the shared one, which tells the sender by shape.
        let route = if i % 2 == 0 {
            "/webhook/akeyless"
        } else {
            "/webhook"
        };
        let (status, _, answer) = service.post(route, body, &[]).await;
        assert_eq!(status, 200, "{form}: {answer}");
        assert_eq!(refreshed(&answer), [format!("{ns}/db")], "{form}: {answer}");
        let now = stamp(&s, "db").await;
        assert!(
            now.is_some() && now != last,
            "{form}: {now:?} after {last:?}"
        );
        last = now;
    }
    assert_eq!(
        stamp(&s, "elsewhere").await,
        None,
        "another provider's store"
    );

    // The grouped form as Akeyless's Event Center page shows it: notices only.
    let audit_from = s.cluster.audit_offset();
    let notices = json!({"Akeyless_Events": {
        "Certificate_Expired": [{"name": item}],
        "certificate_pending_expiration": [{"name": item}],
        "Request_Access": [{"name": item}],
    }});
    let (status, _, answer) = service.post("/webhook/akeyless", &notices, &[]).await;
    assert_eq!(status, 200, "{answer}");
    assert!(refreshed(&answer).is_empty(), "{answer}");
    assert_eq!(
        answer["ignored"].as_array().map(Vec::len),
        Some(3),
        "{answer}"
    );
    // (The Events of the earlier refreshes may still be on their way: only patches count.)
    let patches: Vec<_> = s
        .cluster
        .audit_since(&s.identity.username, audit_from)
        .into_iter()
        .filter(|r| r.resource == "externalsecrets" && r.verb != "watch")
        .collect();
    assert!(patches.is_empty(), "{patches:#?}");
    assert_eq!(stamp(&s, "db").await, last);
}
