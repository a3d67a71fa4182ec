//! Authentication and bad input: a precise 4xx, nothing patched, the server stays up.

use serde_json::Value;

use crate::support::*;

async fn ready_app() -> (FakeApiServer, TestApp) {
    let api = FakeApiServer::start().await;
    api.apply(external_secret("a", "s").with_key("/k").build());
    let app = spawn_ready(&api, config()).await;
    (api, app)
}

#[tokio::test]
async fn missing_or_wrong_credentials_get_401_with_a_challenge() {
    let (api, app) = ready_app().await;
    let body = akeyless_events(&["/k"]).to_string();
    let url = format!("{}/webhook", app.url);
    let attempts = [
        app.http.post(&url).body(body.clone()),
        app.http
            .post(&url)
            .basic_auth(USER, Some("wrong"))
            .body(body.clone()),
        app.http
            .post(&url)
            .basic_auth("someone", Some(PASSWORD))
            .body(body.clone()),
        app.http
            .post(&url)
            .basic_auth(USER, None::<&str>)
            .body(body.clone()),
        app.http.post(&url).bearer_auth(PASSWORD).body(body.clone()),
        app.http
            .post(&url)
            .header("Authorization", "Basic %%%garbled")
            .body(body.clone()),
    ];
    for attempt in attempts {
        let response = attempt.send().await.unwrap();
        assert_eq!(response.status(), 401);
        let challenge = response.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(challenge.starts_with("Basic realm="), "{challenge}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"], "unauthorized");
    }
    assert!(api.patches().is_empty());
}

#[tokio::test]
async fn bad_bodies_get_400_saying_what_is_wrong() {
    let (api, app) = ready_app().await;
    let cases: [(&str, &str); 6] = [
        ("{not json", "body is not valid JSON"),
        ("", "body is not valid JSON"),
        ("[]", "body holds no events"),
        (r#"{"hello": "world"}"#, "unrecognized body"),
        (
            r#"[{"item_name": "/k"}, {"item_name": ""}]"#,
            "event [1]: item_name is empty",
        ),
        (
            r#"[{"item_name": 42}]"#,
            "event [0]: item_name is not a string",
        ),
    ];
    for (body, expected) in cases {
        let response = app.post_webhook(body).await;
        assert_eq!(response.status(), 400, "{body}");
        let answer: Value = response.json().await.unwrap();
        assert_eq!(answer["error"], "bad_request");
        assert!(
            answer["message"].as_str().unwrap().contains(expected),
            "{body}: {answer}"
        );
    }
    assert!(
        api.patches().is_empty(),
        "a batch with one bad event is not half applied"
    );
    assert_eq!(app.get("/healthz").await.status(), 200);
}

#[tokio::test]
async fn oversized_bodies_get_413_and_the_server_stays_up() {
    let api = FakeApiServer::start().await;
    let mut config = config();
    config.max_body_bytes = 4096;
    let app = spawn_ready(&api, config).await;
    let response = app.post_webhook(vec![b' '; 10_000]).await;
    assert_eq!(response.status(), 413);
    let answer: Value = response.json().await.unwrap();
    assert_eq!(answer["error"], "payload_too_large");
    let (status, _) = app.webhook(&akeyless_events(&["/k"])).await;
    assert_eq!(status, 200, "still serving");
}

#[tokio::test]
async fn no_content_type_is_required() {
    let (api, app) = ready_app().await;
    for content_type in [None, Some("text/plain"), Some("application/json")] {
        let mut request = app
            .http
            .post(format!("{}/webhook", app.url))
            .basic_auth(USER, Some(PASSWORD))
            .body(akeyless_events(&["/k"]).to_string());
        if let Some(content_type) = content_type {
            request = request.header("Content-Type", content_type);
        }
        assert_eq!(
            request.send().await.unwrap().status(),
            200,
            "{content_type:?}"
        );
    }
    assert_eq!(api.patches().len(), 3);
}

#[tokio::test]
async fn other_routes_and_methods() {
    let (_api, app) = ready_app().await;
    assert_eq!(app.get("/healthz").await.status(), 200);
    let ready: Value = app.get("/readyz").await.json().await.unwrap();
    assert_eq!(ready["status"], "ready");
    assert_eq!(ready["externalSecrets"], 1);
    assert_eq!(app.get("/webhook").await.status(), 405);
    let missing = app.get("/nope").await;
    assert_eq!(missing.status(), 404);
    let body: Value = missing.json().await.unwrap();
    assert_eq!(body["error"], "not_found");
}
