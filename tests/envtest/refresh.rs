//! A webhook makes the real ESO re-sync exactly what it names, and says what it skipped.

use serde_json::json;

use crate::support::*;

#[tokio::test]
async fn a_generic_webhook_makes_eso_resync_what_it_names_and_nothing_else() {
    let Some(s) = Scenario::new("generic", "base").await else {
        return;
    };
    let ns = s.namespace.as_str();
    let (db_key, other_key) = (s.key("db", "v1"), s.key("other", "v1"));
    s.store_in(ns).await;
    s.synced(&[
        (external_secret(ns, "db", &s.store, &db_key), "v1"),
        (external_secret(ns, "other", &s.store, &other_key), "v1"),
    ])
    .await;
    let service = s.service(&[]).await;
    let other_before = sync_marks(&s.cluster.external_secret(ns, "other").await);

    // Both values change at the secret manager; without a webhook ESO keeps the old ones.
    s.manager.set(&db_key, "v2");
    s.manager.set(&other_key, "v2");
    holds_for(
        "the Secrets stay stale without a webhook",
        QUIET,
        || async { s.cluster.secret_value(ns, "db", "value").await.as_deref() == Some("v1") },
    )
    .await;

    let audit_from = s.cluster.audit_offset();
    let (status, _, answer) = service.generic(&[&db_key]).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(refreshed(&answer), [format!("{ns}/db")], "{answer}");
    s.cluster.wait_for_value(ns, "db", "value", "v2").await;

    // The ExternalSecret reading another key was not re-synced.
    holds_for("the other Secret stays stale", QUIET, || async {
        s.cluster
            .secret_value(ns, "other", "value")
            .await
            .as_deref()
            == Some("v1")
    })
    .await;
    assert_eq!(
        sync_marks(&s.cluster.external_secret(ns, "other").await),
        other_before
    );

    // One Kubernetes Event on the refreshed object, read back from the API server.
    wait_for("the Event about db", || async {
        !s.cluster.events_about(ns, "db").await.is_empty()
    })
    .await;
    let events = s.cluster.events_about(ns, "db").await;
    assert_eq!(events.len(), 1, "{events:#?}");
    let event = &events[0];
    assert_eq!(event["reason"], "RefreshRequested");
    assert_eq!(event["reportingController"], "eso-refresher");
    assert_eq!(event["regarding"]["kind"], "ExternalSecret");
    assert_eq!(
        event["regarding"]["uid"],
        s.cluster.external_secret(ns, "db").await["metadata"]["uid"]
    );
    assert!(
        event["note"].as_str().unwrap_or_default().contains(&db_key),
        "{event:#}"
    );
    assert!(s.cluster.events_about(ns, "other").await.is_empty());
    assert!(
        service.logged("could not record the Event").is_empty(),
        "{}",
        service.log_text()
    );

    // The webhook's requests, from the API server's audit log: no reads, one PATCH of the
    // refreshed object, one Event.
    let requests = s.cluster.audit_since(&s.identity.username, audit_from);
    // (Events about other tests' objects, which every instance watching the whole cluster may
    // record, are not this webhook's.)
    let elsewhere = |r: &Audited| r.resource == "events" && r.namespace.as_deref() != Some(ns);
    let requests: Vec<_> = requests
        .into_iter()
        .filter(|r| r.verb != "watch" && !elsewhere(r))
        .collect();
    assert_eq!(
        tally(&requests),
        [
            (("create".into(), "events".into()), 1),
            (("patch".into(), "externalsecrets".into()), 1),
        ]
        .into(),
        "{requests:#?}"
    );
    let patch = requests.iter().find(|r| r.verb == "patch");
    assert_eq!(
        patch.map(|p| (p.namespace.as_deref(), p.name.as_deref(), p.code)),
        Some((Some(ns), Some("db"), 200))
    );
}

#[tokio::test]
async fn a_cloudevent_makes_eso_resync_what_its_subject_names() {
    let Some(s) = Scenario::new("cloudevents", "base").await else {
        return;
    };
    let ns = s.namespace.as_str();
    let key = s.key("api-token", "v1");
    let other_key = s.key("unrelated", "v1");
    s.store_in(ns).await;
    s.synced(&[
        (external_secret(ns, "api", &s.store, &key), "v1"),
        (external_secret(ns, "unrelated", &s.store, &other_key), "v1"),
    ])
    .await;
    let service = s.service(&[]).await;
    s.manager.set(&key, "v2");
    s.manager.set(&other_key, "v2");

    // Structured mode.
    let event = json!({"specversion": "1.0", "id": s.tag, "source": "/e2e",
        "type": "com.example.secret.updated", "subject": key});
    let (status, _, answer) = service
        .post(
            "/webhook/cloudevents",
            &event,
            &[("content-type", "application/cloudevents+json")],
        )
        .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(refreshed(&answer), [format!("{ns}/api")], "{answer}");
    s.cluster.wait_for_value(ns, "api", "value", "v2").await;

    // Binary mode: the event in ce-* headers.
    s.manager.set(&key, "v3");
    let (status, _, answer) = service
        .post(
            "/webhook/cloudevents",
            &json!({}),
            &[
                ("ce-specversion", "1.0"),
                ("ce-id", &format!("{}-binary", s.tag)),
                ("ce-source", "/e2e"),
                ("ce-type", "com.example.secret.updated"),
                ("ce-subject", &key),
                ("content-type", "application/json"),
            ],
        )
        .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(refreshed(&answer), [format!("{ns}/api")], "{answer}");
    s.cluster.wait_for_value(ns, "api", "value", "v3").await;
    assert_eq!(
        s.cluster
            .secret_value(ns, "unrelated", "value")
            .await
            .as_deref(),
        Some("v1")
    );
}

#[tokio::test]
async fn created_once_and_zero_interval_are_skipped_and_eso_indeed_ignores_their_metadata() {
    let Some(s) = Scenario::new("skipped", "base").await else {
        return;
    };
    let ns = s.namespace.as_str();
    let key = s.key("shared", "v1");
    s.store_in(ns).await;
    let mut once = external_secret(ns, "once", &s.store, &key);
    once["spec"]["refreshPolicy"] = json!("CreatedOnce");
    let mut never = external_secret(ns, "never", &s.store, &key);
    never["spec"]["refreshInterval"] = json!("0s");
    let mut frozen = external_secret(ns, "frozen", &s.store, &key);
    frozen["spec"]["target"]["immutable"] = json!(true);
    s.synced(&[
        (once, "v1"),
        (never, "v1"),
        (frozen, "v1"),
        (external_secret(ns, "live", &s.store, &key), "v1"),
    ])
    .await;
    let service = s.service(&[]).await;
    s.manager.set(&key, "v2");

    let (status, _, answer) = service.generic(&[&key]).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(refreshed(&answer), [format!("{ns}/live")], "{answer}");
    let skipped: Vec<(String, String)> = answer["skipped"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|s| {
            (
                s["name"].as_str().unwrap_or_default().to_owned(),
                s["code"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        sorted(skipped),
        [
            ("frozen".to_owned(), "immutable".to_owned()),
            ("never".to_owned(), "zero_interval".to_owned()),
            ("once".to_owned(), "created_once".to_owned()),
        ],
        "{answer}"
    );
    s.cluster.wait_for_value(ns, "live", "value", "v2").await;

    // Were they patched anyway, ESO would not re-sync them: an annotation change by hand
    // leaves both Secrets stale.
    for name in ["once", "never"] {
        let object = s.cluster.external_secret(ns, name).await;
        s.cluster.annotate(&object, "force-sync", &s.tag).await;
    }
    holds_for("CreatedOnce and 0s stay stale", QUIET, || async {
        s.cluster.secret_value(ns, "once", "value").await.as_deref() == Some("v1")
            && s.cluster
                .secret_value(ns, "never", "value")
                .await
                .as_deref()
                == Some("v1")
    })
    .await;
}
