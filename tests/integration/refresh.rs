//! What a webhook patches, and what it reports.

use serde_json::{Value, json};

use crate::support::*;

fn patched_paths(api: &FakeApiServer) -> Vec<String> {
    let mut paths: Vec<String> = api.patches().into_iter().map(|p| p.path).collect();
    paths.sort();
    paths
}

fn es_path(namespace: &str, name: &str) -> String {
    format!("/apis/external-secrets.io/v1/namespaces/{namespace}/externalsecrets/{name}")
}

#[tokio::test]
async fn every_event_refreshes_its_external_secrets_with_one_merge_patch_each() {
    let api = FakeApiServer::start().await;
    api.apply(
        external_secret("payments", "db")
            .with_key("/prod/payments/db-password")
            .build(),
    );
    api.apply(
        external_secret("payments", "api")
            .with_extract("prod/payments/api-key")
            .build(),
    );
    api.apply(
        external_secret("web", "both")
            .with_key("prod/payments/db-password")
            .with_key("/prod/payments/api-key")
            .build(),
    );
    api.apply(
        external_secret("web", "unrelated")
            .with_key("/prod/other")
            .build(),
    );
    let app = spawn_ready(&api, config()).await;
    api.clear_requests();

    let body = std::fs::read(format!(
        "{}/tests/fixtures/events/akeyless-array.json",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap();
    let response = app.post_webhook(body).await;
    assert_eq!(response.status(), 200);
    let report: Value = response.json().await.unwrap();

    assert_eq!(report["events"], 2);
    let refreshed: Vec<String> = report["refreshed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            format!(
                "{}/{}",
                r["namespace"].as_str().unwrap(),
                r["name"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(refreshed, ["payments/api", "payments/db", "web/both"]);
    assert_eq!(report["failed"], json!([]));
    assert_eq!(report["skipped"], json!([]));

    // Exactly one merge patch per ExternalSecret, touching only annotations; no reads at all.
    // (The only other requests are the Events about the refreshes.)
    let requests = api.requests();
    assert!(
        requests.iter().all(|r| r.method == "PATCH"
            || (r.method == "POST" && r.path.starts_with("/apis/events.k8s.io/v1/"))),
        "{requests:#?}"
    );
    assert_eq!(
        patched_paths(&api),
        [
            es_path("payments", "api"),
            es_path("payments", "db"),
            es_path("web", "both")
        ]
    );
    let mut stamps = Vec::new();
    for patch in api.patches() {
        assert_eq!(
            patch.content_type.as_deref(),
            Some("application/merge-patch+json")
        );
        assert_eq!(
            patch.query.get("fieldManager").map(String::as_str),
            Some("eso-refresher")
        );
        let body = patch.body.unwrap();
        let annotations = body["metadata"]["annotations"].as_object().unwrap();
        assert_eq!(body.as_object().unwrap().len(), 1, "only metadata: {body}");
        assert_eq!(
            body["metadata"].as_object().unwrap().len(),
            1,
            "only annotations: {body}"
        );
        assert_eq!(annotations["updated-by"], "externalsecret-updater");
        let at = annotations["updated-at"].as_str().unwrap();
        chrono::DateTime::parse_from_rfc3339(at).expect("RFC 3339");
        assert!(at.contains('.'), "sub-second precision: {at}");
        stamps.push(at.to_owned());
    }
    stamps.sort();
    stamps.dedup();
    assert_eq!(stamps.len(), 3, "every patch writes a value of its own");

    // The stored object really changed, and its resourceVersion moved on.
    let stored = api.get("ExternalSecret", Some("payments"), "db").unwrap();
    assert_eq!(
        stored["metadata"]["annotations"]["updated-by"],
        "externalsecret-updater"
    );
    assert_eq!(
        stored["spec"]["data"][0]["remoteRef"]["key"],
        "/prod/payments/db-password"
    );
    app.stop().await;
}

#[tokio::test]
async fn back_to_back_webhooks_always_change_the_annotation() {
    let api = FakeApiServer::start().await;
    api.apply(external_secret("a", "db").with_key("/k").build());
    let app = spawn_ready(&api, config()).await;
    for _ in 0..5 {
        let (status, _) = app.webhook(&akeyless_events(&["/k"])).await;
        assert_eq!(status, 200);
    }
    let stamps = stamps(&api);
    assert_eq!(stamps.len(), 5);
    assert!(
        stamps.windows(2).all(|w| w[0] < w[1]),
        "strictly increasing: {stamps:?}"
    );
}

#[tokio::test]
async fn leading_slashes_do_not_matter_on_either_side() {
    let api = FakeApiServer::start().await;
    api.apply(external_secret("a", "slashed").with_key("/prod/db").build());
    api.apply(external_secret("a", "bare").with_key("prod/db").build());
    let app = spawn_ready(&api, config()).await;
    for key in ["prod/db", "/prod/db"] {
        api.clear_requests();
        let (status, report) = app
            .webhook(&json!({"item_name": key, "event_type": "static-secret-updated"}))
            .await;
        assert_eq!(status, 200, "{report}");
        assert_eq!(
            patched_paths(&api),
            [es_path("a", "bare"), es_path("a", "slashed")],
            "{key}"
        );
    }
}

#[tokio::test]
async fn many_events_for_one_external_secret_patch_it_once() {
    let api = FakeApiServer::start().await;
    api.apply(
        external_secret("a", "db")
            .with_key("/k1")
            .with_key("/k2")
            .build(),
    );
    let app = spawn_ready(&api, config()).await;
    let (status, report) = app
        .webhook(&akeyless_events(&["/k1", "/k2", "k1", "/k2"]))
        .await;
    assert_eq!(status, 200);
    assert_eq!(api.patches().len(), 1);
    assert_eq!(report["refreshed"][0]["keys"], json!(["/k1", "/k2", "k1"]));
}

#[tokio::test]
async fn find_rules_match_by_path_and_name() {
    let api = FakeApiServer::start().await;
    api.apply(
        external_secret("a", "by-path")
            .with_find(Some("/prod/shared"), None)
            .build(),
    );
    api.apply(
        external_secret("a", "by-name")
            .with_find(None, Some("-token$"))
            .build(),
    );
    api.apply(
        external_secret("a", "bad-regex")
            .with_find(None, Some("(unclosed"))
            .with_key("/x")
            .build(),
    );
    let app = spawn_ready(&api, config()).await;
    let (status, _) = app
        .webhook(&akeyless_events(&["/prod/shared/registry-token"]))
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        patched_paths(&api),
        [es_path("a", "by-name"), es_path("a", "by-path")]
    );
    api.clear_requests();
    // The object with the invalid pattern is still indexed by its other keys.
    let (status, _) = app.webhook(&akeyless_events(&["/x"])).await;
    assert_eq!(status, 200);
    assert_eq!(patched_paths(&api), [es_path("a", "bad-regex")]);
}

#[tokio::test]
async fn external_secrets_eso_would_not_resync_are_reported_not_patched() {
    let api = FakeApiServer::start().await;
    api.apply(
        external_secret("a", "once")
            .with_key("/k")
            .refresh_policy("CreatedOnce")
            .build(),
    );
    api.apply(
        external_secret("a", "zero")
            .with_key("/k")
            .refresh_interval("0s")
            .build(),
    );
    api.apply(
        external_secret("a", "periodic-zero")
            .with_key("/k")
            .refresh_policy("Periodic")
            .refresh_interval("0")
            .build(),
    );
    api.apply(
        external_secret("a", "on-change")
            .with_key("/k")
            .refresh_policy("OnChange")
            .refresh_interval("0s")
            .build(),
    );
    let app = spawn_ready(&api, config()).await;
    let (status, report) = app.webhook(&akeyless_events(&["/k"])).await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(patched_paths(&api), [es_path("a", "on-change")]);
    let skipped = report["skipped"].as_array().unwrap();
    let reasons: Vec<(&str, &str)> = skipped
        .iter()
        .map(|s| (s["name"].as_str().unwrap(), s["reason"].as_str().unwrap()))
        .collect();
    assert_eq!(reasons.len(), 3, "{report}");
    assert!(reasons.contains(&(
        "once",
        "refreshPolicy is CreatedOnce: ESO ignores metadata changes"
    )));
    assert!(
        reasons
            .iter()
            .any(|(n, r)| *n == "zero" && r.contains("refreshInterval is 0s"))
    );
    assert!(
        reasons
            .iter()
            .any(|(n, r)| *n == "periodic-zero" && r.contains("refreshInterval is 0"))
    );
}

#[tokio::test]
async fn children_of_a_cluster_external_secret_refresh_through_the_parent_once() {
    let api = FakeApiServer::start().await;
    api.apply(cluster_external_secret("registry"));
    for ns in ["team-a", "team-b"] {
        api.apply(
            external_secret(ns, "registry")
                .with_key("/shared/token")
                .with_key("/shared/user")
                .owned_by_cluster_external_secret("registry")
                .build(),
        );
    }
    let app = spawn_ready(&api, config()).await;
    let (status, report) = app
        .webhook(&akeyless_events(&["/shared/token", "/shared/user"]))
        .await;
    assert_eq!(status, 200, "{report}");

    let patches = api.patches();
    assert_eq!(patches.len(), 1, "{patches:#?}");
    assert_eq!(
        patches[0].path,
        "/apis/external-secrets.io/v1/clusterexternalsecrets/registry"
    );
    let annotations = &patches[0].body.as_ref().unwrap()["metadata"]["annotations"];
    assert!(
        annotations["external-secrets.io/force-sync"]
            .as_str()
            .is_some()
    );
    let stored = api.get("ClusterExternalSecret", None, "registry").unwrap();
    assert_eq!(
        stored["metadata"]["annotations"]["external-secrets.io/force-sync"],
        annotations["external-secrets.io/force-sync"]
    );

    assert_eq!(report["refreshed"][0]["kind"], "ClusterExternalSecret");
    assert_eq!(
        report["refreshed"][0]["via"],
        json!(["team-a/registry", "team-b/registry"])
    );
}

#[tokio::test]
async fn eso_documentation_examples_are_matched() {
    let api = FakeApiServer::start().await;
    api.apply(eso_example("akeyless-external-secret.yaml", "apps"));
    api.apply(eso_example("getallsecrets-find-by-name.yaml", "search"));
    let app = spawn_ready(&api, config()).await;
    let (status, _) = app
        .webhook(&akeyless_events(&["/db-password", "team/api-key"]))
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        patched_paths(&api),
        [
            es_path("apps", "database-credentials"),
            es_path("search", "find-by-tags")
        ]
    );
}

#[tokio::test]
async fn a_failed_patch_answers_503_so_the_sender_redelivers() {
    let api = FakeApiServer::start().await;
    api.apply(external_secret("a", "ok").with_key("/k").build());
    api.apply(external_secret("a", "broken").with_key("/k").build());
    let app = spawn_ready(&api, config()).await;
    api.fail("PATCH", "/externalsecrets/broken", 500, 1000);
    let response = app.post_webhook(akeyless_events(&["/k"]).to_string()).await;
    assert_eq!(response.status(), 503);
    assert_eq!(response.headers()["retry-after"], "5");
    let report: Value = response.json().await.unwrap();
    assert_eq!(report["refreshed"][0]["name"], "ok");
    assert_eq!(report["failed"][0]["name"], "broken");
    // The report carries the fields of every error answer.
    assert_eq!(report["error"], "patch_failed", "{report}");
    assert_eq!(report["message"], "1 of the patches failed; retry later");
    assert!(
        report["failed"][0]["error"]
            .as_str()
            .unwrap()
            .contains("500"),
        "{report}"
    );

    // Re-delivered once the API server recovers, it succeeds.
    api.heal();
    let (status, _) = app.webhook(&akeyless_events(&["/k"])).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn an_external_secret_deleted_before_its_patch_is_not_a_failure() {
    let api = FakeApiServer::start().await;
    api.apply(external_secret("a", "doomed").with_key("/k").build());
    let app = spawn_ready(&api, config()).await;
    api.delete_unannounced("ExternalSecret", Some("a"), "doomed");
    let (status, report) = app.webhook(&akeyless_events(&["/k"])).await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["refreshed"][0]["gone"], true);
}

#[tokio::test]
async fn a_404_for_a_resource_no_longer_served_is_a_failure() {
    let api = FakeApiServer::start().await;
    api.apply(external_secret("a", "s").with_key("/k").build());
    let app = spawn_ready(&api, config()).await;
    api.stop_serving();
    let (status, report) = app.webhook(&akeyless_events(&["/k"])).await;
    assert_eq!(status, 503, "{report}");
    assert_eq!(report["failed"][0]["name"], "s");
    assert!(
        report["failed"][0]["error"]
            .as_str()
            .unwrap()
            .contains("404"),
        "{report}"
    );
}

#[tokio::test]
async fn unmatched_keys_are_reported_and_answered_200() {
    let api = FakeApiServer::start().await;
    api.apply(external_secret("a", "db").with_key("/k").build());
    let app = spawn_ready(&api, config()).await;
    let (status, report) = app.webhook(&akeyless_events(&["/nobody/uses/this"])).await;
    assert_eq!(status, 200);
    assert_eq!(report["unmatched"], json!(["/nobody/uses/this"]));
    assert!(api.patches().is_empty());
}

#[tokio::test]
async fn the_ignore_annotation_opts_an_external_secret_out() {
    let api = FakeApiServer::start().await;
    api.apply(
        external_secret("a", "quiet")
            .with_key("/k")
            .annotate("eso-refresher/ignore", "true")
            .build(),
    );
    api.apply(external_secret("a", "normal").with_key("/k").build());
    let app = spawn_ready(&api, config()).await;
    let (status, report) = app.webhook(&akeyless_events(&["/k"])).await;
    assert_eq!(status, 200);
    assert_eq!(patched_paths(&api), [es_path("a", "normal")]);
    assert_eq!(report["skipped"][0]["name"], "quiet");
    assert_eq!(
        report["skipped"][0]["reason"],
        "opted out by annotation eso-refresher/ignore"
    );

    // Removing the annotation opts it back in.
    api.apply(external_secret("a", "quiet").with_key("/k").build());
    wait_for("the annotation change to be indexed", || async {
        app.webhook(&akeyless_events(&["/k"])).await.1["skipped"] == json!([])
    })
    .await;
}

#[tokio::test]
async fn each_refresh_is_recorded_as_a_kubernetes_event_naming_its_cause() {
    let api = FakeApiServer::start().await;
    api.apply(
        external_secret("payments", "db")
            .with_key("/prod/db")
            .build(),
    );
    let app = spawn_ready(&api, config()).await;
    let body = json!([{"event_id": 777001, "event_type": "static-secret-updated", "item_name": "/prod/db"}]);
    let (status, _) = app.webhook(&body).await;
    assert_eq!(status, 200);
    wait_for("the Event", || async { !api.events().is_empty() }).await;
    let events = api.events();
    assert_eq!(events.len(), 1, "{events:#?}");
    let event = &events[0];
    assert_eq!(event["apiVersion"], "events.k8s.io/v1");
    assert_eq!(event["metadata"]["namespace"], "payments");
    assert_eq!(event["reason"], "RefreshRequested");
    assert_eq!(event["type"], "Normal");
    assert_eq!(event["reportingController"], "eso-refresher");
    let regarding = &event["regarding"];
    assert_eq!(regarding["kind"], "ExternalSecret");
    assert_eq!(regarding["apiVersion"], "external-secrets.io/v1");
    assert_eq!(regarding["name"], "db");
    let stored = api.get("ExternalSecret", Some("payments"), "db").unwrap();
    assert_eq!(regarding["uid"], stored["metadata"]["uid"]);
    let note = event["note"].as_str().unwrap();
    assert!(
        note.contains("static-secret-updated of /prod/db (event 777001)"),
        "{note}"
    );
}

#[tokio::test]
async fn a_redelivered_event_is_answered_as_a_duplicate_without_patching() {
    let api = FakeApiServer::start().await;
    api.apply(external_secret("a", "db").with_key("/k").build());
    let app = spawn_ready(&api, config()).await;
    let body =
        json!([{"event_id": 5150, "event_type": "static-secret-updated", "item_name": "/k"}]);
    let (status, first) = app.webhook(&body).await;
    assert_eq!(status, 200, "{first}");
    let (status, again) = app.webhook(&body).await;
    assert_eq!(status, 200);
    assert_eq!(again["duplicates"], json!(["5150"]));
    assert_eq!(again["refreshed"], json!([]));
    assert_eq!(api.patches().len(), 1);
}

#[tokio::test]
async fn ids_are_unique_only_per_sender_and_per_cloudevents_source() {
    let api = FakeApiServer::start().await;
    api.apply(external_secret("a", "db").with_key("/k").build());
    let app = spawn_ready(&api, config()).await;
    let cloudevent = |source: &str| {
        json!({"specversion": "1.0", "id": "42", "source": source,
            "type": "com.example.secret.updated", "subject": "/k"})
    };
    let mut patches = 0;
    for (body, what) in [
        (cloudevent("/a"), "the first event"),
        (cloudevent("/b"), "id 42 from another source"),
        (
            json!({"event_id": "42", "event_type": "static-secret-updated", "item_name": "/k"}),
            "id 42 from another sender",
        ),
    ] {
        let (status, report) = app.webhook(&body).await;
        assert_eq!(status, 200, "{what}: {report}");
        assert_eq!(report["refreshed"][0]["name"], "db", "{what}: {report}");
        patches += 1;
        assert_eq!(api.patches().len(), patches, "{what}");
    }
    let (_, again) = app.webhook(&cloudevent("/b")).await;
    assert_eq!(again["duplicates"], json!(["42"]), "a true re-delivery");
    assert_eq!(api.patches().len(), patches);
}

#[tokio::test]
async fn an_event_whose_patch_failed_is_applied_again_when_redelivered() {
    let api = FakeApiServer::start().await;
    api.apply(external_secret("a", "db").with_key("/k").build());
    let app = spawn_ready(&api, config()).await;
    api.fail("PATCH", "/externalsecrets/db", 500, 1000);
    let body = json!({"event_id": "e-77", "item_name": "/k"});
    let (status, _) = app.webhook(&body).await;
    assert_eq!(status, 503);
    api.heal();
    let (status, report) = app.webhook(&body).await;
    assert_eq!(status, 200);
    assert_eq!(report["refreshed"][0]["name"], "db", "{report}");
    assert!(report.get("duplicates").is_none());
}

#[tokio::test]
async fn concurrent_webhooks_for_one_external_secret_coalesce() {
    let api = FakeApiServer::start().await;
    api.apply(external_secret("a", "db").with_key("/k").build());
    let app = std::sync::Arc::new(spawn_ready(&api, config()).await);
    // The first patch is held at the API server until all 20 webhooks have arrived.
    api.hold_patches();
    let webhooks: Vec<_> = (0..20)
        .map(|_| {
            let app = app.clone();
            tokio::spawn(async move { app.webhook(&akeyless_events(&["/k"])).await })
        })
        .collect();
    wait_for("all 20 events to arrive", || async {
        let metrics = app.get("/metrics").await.text().await.unwrap();
        metrics.contains(r#"eso_refresher_events_total{sender="akeyless",event_type="static-secret-updated"} 20"#)
    })
    .await;
    assert_eq!(api.patches().len(), 1, "one patch in flight, the rest wait");
    api.release_patches();
    for webhook in webhooks {
        let (status, report) = webhook.await.unwrap();
        assert_eq!(status, 200);
        assert_eq!(report["refreshed"][0]["name"], "db");
    }
    assert_eq!(
        api.patches().len(),
        2,
        "the one in flight, and one for all who came later"
    );
    wait_for("the Events", || async { api.events().len() >= 2 }).await;
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert_eq!(
        api.events().len(),
        2,
        "one Event per patch, not per request"
    );
}
