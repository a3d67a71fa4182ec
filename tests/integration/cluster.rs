//! Discovery, scope, and the watch that keeps the index current.

use eso_refresher::app::{Application, Source};
use serde_json::json;

use crate::support::*;

#[tokio::test]
async fn uses_v1beta1_only_when_v1_is_not_served() {
    let api = FakeApiServer::serving(&["v1beta1"]).await;
    api.apply(external_secret("a", "old").with_key("/k").build());
    let app = spawn_ready(&api, config()).await;
    let (status, _) = app.webhook(&akeyless_events(&["/k"])).await;
    assert_eq!(status, 200);
    let requests = api.requests();
    assert!(
        requests
            .iter()
            .any(|r| r.path == "/apis/external-secrets.io/v1beta1/externalsecrets" && r.is_watch())
    );
    assert_eq!(
        api.patches()[0].path,
        "/apis/external-secrets.io/v1beta1/namespaces/a/externalsecrets/old"
    );
    assert!(
        requests
            .iter()
            .all(|r| !r.path.starts_with("/apis/external-secrets.io/v1/")),
        "no v1 request"
    );
}

#[tokio::test]
async fn prefers_v1_when_both_are_served() {
    let api = FakeApiServer::serving(&["v1", "v1beta1"]).await;
    api.apply(external_secret("a", "s").with_key("/k").build());
    let app = spawn_ready(&api, config()).await;
    app.webhook(&akeyless_events(&["/k"])).await;
    assert_eq!(
        api.patches()[0].path,
        "/apis/external-secrets.io/v1/namespaces/a/externalsecrets/s"
    );
    assert!(api.requests().iter().all(|r| !r.path.contains("v1beta1/")));
}

#[tokio::test]
async fn refuses_to_start_without_external_secrets() {
    let api = FakeApiServer::serving(&[]).await;
    let error = Application::build(config(), Source::Cluster(api.client()))
        .await
        .err()
        .expect("fails");
    assert!(
        error
            .to_string()
            .contains("is External Secrets Operator installed?"),
        "{error}"
    );
}

#[tokio::test]
async fn watches_the_whole_cluster_and_never_lists_per_webhook() {
    let api = FakeApiServer::start().await;
    api.apply(external_secret("a", "s").with_key("/k").build());
    let app = spawn_ready(&api, config()).await;
    let lists_before = api.requests().iter().filter(|r| r.is_object_read()).count();
    for _ in 0..3 {
        app.webhook(&akeyless_events(&["/k", "/nothing"])).await;
    }
    let requests = api.requests();
    assert_eq!(
        requests.iter().filter(|r| r.is_object_read()).count(),
        lists_before
    );
    assert!(
        requests
            .iter()
            .any(|r| r.path == "/apis/external-secrets.io/v1/externalsecrets" && r.is_watch())
    );
    assert_eq!(api.patches().len(), 3);
}

#[tokio::test]
async fn falls_back_to_its_own_namespace_when_cluster_list_is_forbidden() {
    let api = FakeApiServer::start().await;
    api.forbid_cluster_list();
    api.apply(
        external_secret("eso-refresher", "mine")
            .with_key("/k")
            .build(),
    );
    api.apply(
        external_secret("elsewhere", "theirs")
            .with_key("/k")
            .build(),
    );
    let mut config = config();
    config.pod_namespace = Some("eso-refresher".into());
    let app = spawn_ready(&api, config).await;
    let (status, report) = app.webhook(&akeyless_events(&["/k"])).await;
    assert_eq!(status, 200, "{report}");
    let patches = api.patches();
    assert_eq!(patches.len(), 1);
    assert_eq!(
        patches[0].path,
        "/apis/external-secrets.io/v1/namespaces/eso-refresher/externalsecrets/mine"
    );
    assert!(api.requests().iter().any(|r| r.is_watch()
        && r.path == "/apis/external-secrets.io/v1/namespaces/eso-refresher/externalsecrets"));
    // ClusterSecretStores cannot be read with Roles: left out, and readiness does not wait.
    assert!(api.requests().iter().any(|r| r.is_watch()
        && r.path == "/apis/external-secrets.io/v1/namespaces/eso-refresher/secretstores"));
    assert_eq!(api.open_watches_of("clustersecretstores"), 0);
}

#[tokio::test]
async fn watches_only_the_configured_namespaces() {
    let api = FakeApiServer::start().await;
    for ns in ["team-a", "team-b", "team-c"] {
        api.apply(external_secret(ns, "s").with_key("/k").build());
    }
    let mut config = config();
    config.watch_namespaces = vec!["team-a".into(), "team-c".into()];
    let app = spawn_ready(&api, config).await;
    app.webhook(&akeyless_events(&["/k"])).await;
    let mut paths: Vec<String> = api.patches().into_iter().map(|p| p.path).collect();
    paths.sort();
    assert_eq!(
        paths,
        [
            "/apis/external-secrets.io/v1/namespaces/team-a/externalsecrets/s",
            "/apis/external-secrets.io/v1/namespaces/team-c/externalsecrets/s",
        ]
    );
    assert!(
        api.requests()
            .iter()
            .all(|r| r.path != "/apis/external-secrets.io/v1/externalsecrets"),
        "no cluster-wide request"
    );
}

#[tokio::test]
async fn follows_additions_changes_and_deletions() {
    let api = FakeApiServer::start().await;
    let app = spawn_ready(&api, config()).await;

    api.apply(external_secret("a", "late").with_key("/old").build());
    wait_for("the new object to be indexed", || async {
        app.webhook(&akeyless_events(&["/old"])).await.1["refreshed"]
            .as_array()
            .is_some_and(|r| !r.is_empty())
    })
    .await;

    api.apply(external_secret("a", "late").with_key("/new").build());
    wait_for("the change to be indexed", || async {
        app.webhook(&akeyless_events(&["/new"])).await.1["refreshed"]
            .as_array()
            .is_some_and(|r| !r.is_empty())
    })
    .await;
    let (_, report) = app.webhook(&akeyless_events(&["/old"])).await;
    assert_eq!(
        report["refreshed"],
        json!([]),
        "the old key no longer matches"
    );

    api.delete("ExternalSecret", Some("a"), "late");
    wait_for("the deletion to be indexed", || async {
        app.webhook(&akeyless_events(&["/new"])).await.1["unmatched"] == json!(["/new"])
    })
    .await;
}

#[tokio::test]
async fn not_ready_until_the_first_list_succeeds() {
    let api = FakeApiServer::start().await;
    api.apply(external_secret("a", "s").with_key("/k").build());
    // The watcher's first two lists fail; it retries with backoff.
    api.fail(
        "GET",
        "/apis/external-secrets.io/v1/namespaces/a/externalsecrets",
        500,
        2,
    );
    let mut config = config();
    config.watch_namespaces = vec!["a".into()];
    let app = spawn_app(config, Source::Cluster(api.client())).await;

    let readiness = app.get("/readyz").await;
    assert_eq!(readiness.status(), 503);
    let body: serde_json::Value = readiness.json().await.unwrap();
    assert_eq!(body["status"], "syncing", "{body}");
    assert_eq!(body["error"], "not_ready", "{body}");
    assert!(body["message"].is_string(), "{body}");
    let response = app.post_webhook(akeyless_events(&["/k"]).to_string()).await;
    assert_eq!(response.status(), 503);
    assert_eq!(response.headers()["retry-after"], "5");
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["error"], "not_ready");
    assert_eq!(
        app.get("/healthz").await.status(),
        200,
        "liveness does not depend on the cache"
    );
    assert!(api.patches().is_empty());

    app.wait_ready().await;
    let (status, _) = app.webhook(&akeyless_events(&["/k"])).await;
    assert_eq!(status, 200);
    assert_eq!(api.patches().len(), 1);
}

#[tokio::test]
async fn resumes_after_the_watch_ends_and_relists_after_410_gone() {
    let api = FakeApiServer::start().await;
    api.apply(external_secret("a", "kept").with_key("/k").build());
    api.apply(
        external_secret("a", "deleted-while-away")
            .with_key("/k")
            .build(),
    );
    let app = spawn_ready(&api, config()).await;

    // The watch is cut and its first reconnect fails, so the changes below happen while it is
    // away (the client backs off for most of a second) and history is compacted past them.
    api.clear_requests();
    api.fail(
        "GET",
        "/apis/external-secrets.io/v1/externalsecrets",
        500,
        1,
    );
    api.close_watches();
    api.delete("ExternalSecret", Some("a"), "deleted-while-away");
    api.apply(
        external_secret("a", "added-while-away")
            .with_key("/k")
            .build(),
    );
    api.compact();

    wait_for("the index to catch up", || async {
        let (_, report) = app.webhook(&akeyless_events(&["/k"])).await;
        let names: Vec<&str> = report["refreshed"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["name"].as_str().unwrap())
            .collect();
        names == ["added-while-away", "kept"]
    })
    .await;
    assert_eq!(api.open_watches_of("externalsecrets"), 1, "watching again");
    let requests = api.requests();
    let relists = requests
        .iter()
        .filter(|r| r.is_object_read() && r.path == "/apis/external-secrets.io/v1/externalsecrets")
        .count();
    assert!(relists >= 1, "the 410 made it list again: {requests:#?}");
}

#[tokio::test]
async fn lists_in_pages() {
    let api = FakeApiServer::start().await;
    for i in 0..1203 {
        api.apply(
            external_secret(&format!("ns-{}", i % 7), &format!("s-{i}"))
                .with_key(&format!("/k/{i}"))
                .build(),
        );
    }
    let app = spawn_ready(&api, config()).await;
    let ready: serde_json::Value = app.get("/readyz").await.json().await.unwrap();
    assert_eq!(ready["externalSecrets"], 1203);
    let pages: Vec<_> = api
        .requests()
        .into_iter()
        .filter(|r| {
            r.is_object_read()
                && r.path.ends_with("/externalsecrets")
                && r.query.get("limit").is_some_and(|l| l == "500")
        })
        .collect();
    assert_eq!(pages.len(), 3, "{pages:#?}");
    assert!(pages[1].query.contains_key("continue") && pages[2].query.contains_key("continue"));
    let (status, report) = app.webhook(&akeyless_events(&["/k/1202", "/k/0"])).await;
    assert_eq!(status, 200);
    assert_eq!(report["refreshed"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn a_failing_watch_makes_it_unready_until_it_recovers() {
    let api = FakeApiServer::start().await;
    api.apply(external_secret("a", "s").with_key("/k").build());
    let app = spawn_ready(&api, config()).await;

    // The API server goes away: the watch ends and three reconnects fail.
    api.fail(
        "GET",
        "/apis/external-secrets.io/v1/externalsecrets",
        500,
        3,
    );
    api.close_watches();
    wait_for("readiness to drop", || async {
        app.get("/readyz").await.status() == 503
    })
    .await;
    let response = app.post_webhook(akeyless_events(&["/k"]).to_string()).await;
    assert_eq!(
        response.status(),
        503,
        "no refresh decision from a stale index"
    );
    assert_eq!(response.headers()["retry-after"], "5");

    // It comes back; the next event proves the watch works again.
    api.apply(external_secret("a", "new").with_key("/k").build());
    app.wait_ready().await;
    let (status, report) = app.webhook(&akeyless_events(&["/k"])).await;
    assert_eq!(status, 200);
    assert_eq!(report["refreshed"].as_array().unwrap().len(), 2, "{report}");
}

#[tokio::test]
async fn a_namespace_named_twice_is_watched_once() {
    let api = FakeApiServer::start().await;
    api.apply(external_secret("a", "s").with_key("/k").build());
    let mut config = config();
    config.watch_namespaces = eso_refresher::config::parse_namespaces("a, a,a").unwrap();
    let app = spawn_ready(&api, config).await;
    let (status, _) = app.webhook(&akeyless_events(&["/k"])).await;
    assert_eq!(status, 200);
    assert_eq!(api.open_watches_of("externalsecrets"), 1);
    assert_eq!(api.open_watches_of("secretstores"), 1);
}

#[tokio::test]
#[should_panic(expected = "invalid test object")]
async fn the_fake_api_rejects_objects_its_crd_forbids() {
    let api = FakeApiServer::start().await;
    api.apply(
        external_secret("a", "s")
            .with_key("/k")
            .refresh_policy("Sometimes")
            .build(),
    );
}

#[tokio::test]
async fn the_fake_api_rejects_patches_that_break_the_schema() {
    let api = FakeApiServer::start().await;
    api.apply(external_secret("a", "s").with_key("/k").build());
    let response = http_client()
        .patch(format!(
            "{}/apis/external-secrets.io/v1/namespaces/a/externalsecrets/s",
            api.url
        ))
        .header("Content-Type", "application/merge-patch+json")
        .body(json!({"spec": {"refreshPolicy": "Sometimes"}}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 422);
}
