//! Authentication and bad input: a precise 4xx, nothing patched, the server stays up.

use serde_json::{Value, json};

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

/// The JSON error body of a response: `{"error": <code>, "message": <text>}`, sent as JSON.
async fn error_body(response: reqwest::Response) -> (String, String) {
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_owned();
    assert_eq!(content_type, "application/json", "{}", response.url());
    let body: Value = response.json().await.unwrap();
    let field = |name: &str| {
        body[name]
            .as_str()
            .unwrap_or_else(|| panic!("{body}"))
            .to_owned()
    };
    (field("error"), field("message"))
}

#[tokio::test]
async fn unknown_paths_and_wrong_methods_get_json_errors() {
    let (_api, app) = ready_app().await;
    for (method, path) in [
        ("GET", "/nope"),
        ("POST", "/nope"),
        ("DELETE", "/webhook/aws/more"),
        ("POST", "/webhook/nonesuch"),
    ] {
        let request = app
            .http
            .request(method.parse().unwrap(), format!("{}{path}", app.url));
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 404, "{method} {path}");
        let (error, _) = error_body(response).await;
        assert_eq!(error, "not_found", "{method} {path}");
    }
    for (method, path, allowed) in [
        ("GET", "/webhook", "POST"),
        ("PUT", "/webhook", "POST"),
        ("GET", "/webhook/aws", "POST, OPTIONS"),
        ("DELETE", "/webhook/generic", "POST, OPTIONS"),
        ("POST", "/healthz", "GET"),
        ("POST", "/readyz", "GET"),
        ("PATCH", "/metrics", "GET"),
        ("POST", "/openapi.json", "GET"),
    ] {
        let request = app
            .http
            .request(method.parse().unwrap(), format!("{}{path}", app.url));
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 405, "{method} {path}");
        let allow = response.headers()["allow"].to_str().unwrap().to_owned();
        assert_eq!(allow, allowed, "{method} {path}");
        let (error, message) = error_body(response).await;
        assert_eq!(error, "method_not_allowed", "{method} {path}");
        assert!(
            message.contains(method) && message.contains(allowed),
            "{message}"
        );
    }
}

#[tokio::test]
async fn gzip_and_deflate_bodies_are_decoded() {
    let (api, app) = ready_app().await;
    let cases = [
        ("gzip", "gzip"),
        ("x-gzip", "gzip"),
        ("GZIP", "gzip"),
        ("deflate", "deflate"),
        ("deflate", "raw-deflate"),
        ("identity", "identity"),
    ];
    for (header, coding) in cases {
        let body = akeyless_events(&["/k"]).to_string().into_bytes();
        let body = if coding == "identity" {
            body
        } else {
            compress(coding, &body)
        };
        let request = app
            .http
            .post(format!("{}/webhook", app.url))
            .basic_auth(USER, Some(PASSWORD))
            .header("Content-Encoding", header)
            .body(body);
        let (status, report) = send(request).await;
        assert_eq!(status, 200, "{header} ({coding}): {report}");
        assert_eq!(refreshed(&report), ["a/s"], "{header} ({coding})");
    }
    assert_eq!(api.patches().len(), cases.len());

    // A body that is not what its header says is a bad request.
    let response = app
        .http
        .post(format!("{}/webhook", app.url))
        .basic_auth(USER, Some(PASSWORD))
        .header("Content-Encoding", "gzip")
        .body(akeyless_events(&["/k"]).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let (error, message) = error_body(response).await;
    assert_eq!(error, "bad_request");
    assert!(message.contains("gzip"), "{message}");
    assert_eq!(api.patches().len(), cases.len());
}

#[tokio::test]
async fn a_gzip_bomb_gets_413_at_once() {
    let (api, app) = ready_app().await;
    // 50 MB of zeros, about 50 KB compressed: well under MAX_BODY_BYTES (1 MiB) as sent.
    let mut bomb = compress("gzip", &vec![0u8; 50 * 1000 * 1000]);
    assert!(bomb.len() < 100_000, "{}", bomb.len());
    // Its trailer (checksum and size) spoiled: inflating it to the end would find it corrupt
    // (400); inflating stops long before, at the limit.
    let trailer = bomb.len() - 8;
    bomb[trailer..].fill(0);
    let started = std::time::Instant::now();
    let response = app
        .http
        .post(format!("{}/webhook", app.url))
        .basic_auth(USER, Some(PASSWORD))
        .header("Content-Encoding", "gzip")
        .body(bomb)
        .send()
        .await
        .unwrap();
    let took = started.elapsed();
    assert_eq!(response.status(), 413);
    let (error, message) = error_body(response).await;
    assert_eq!(error, "payload_too_large");
    assert!(
        message.contains("decompressed body is larger than 1048576 bytes"),
        "{message}"
    );
    assert!(took < std::time::Duration::from_secs(2), "{took:?}");
    assert!(api.patches().is_empty());
    let (status, _) = app.webhook(&akeyless_events(&["/k"])).await;
    assert_eq!(status, 200, "still serving");
}

#[tokio::test]
async fn other_encodings_get_415_after_authentication() {
    let (api, app) = ready_app().await;
    let url = format!("{}/webhook", app.url);
    for coding in ["br", "zstd", "compress", "gzip, gzip"] {
        let request = app
            .http
            .post(&url)
            .basic_auth(USER, Some(PASSWORD))
            .header("Content-Encoding", coding)
            .body(akeyless_events(&["/k"]).to_string());
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 415, "{coding}");
        assert_eq!(response.headers()["accept-encoding"], "gzip, deflate");
        let (error, message) = error_body(response).await;
        assert_eq!(error, "unsupported_encoding");
        assert!(message.contains(coding), "{message}");
    }
    // Without credentials the encoding is not even looked at.
    let (status, _) = send(
        app.http
            .post(&url)
            .header("Content-Encoding", "br")
            .body("{}"),
    )
    .await;
    assert_eq!(status, 401);
    assert!(api.patches().is_empty());
}

#[tokio::test]
async fn the_openapi_description_lists_exactly_the_served_routes() {
    let (_api, app) = ready_app().await;
    let response = app.get("/openapi.json").await;
    assert_eq!(response.status(), 200);
    let description: Value = response.json().await.unwrap();
    assert_eq!(description["openapi"], "3.0.3");
    assert_eq!(description["info"]["version"], env!("CARGO_PKG_VERSION"));

    let mut described: Vec<(String, String)> = Vec::new();
    for (path, operations) in description["paths"].as_object().unwrap() {
        for method in operations.as_object().unwrap().keys() {
            described.push((method.to_uppercase(), path.clone()));
        }
    }
    described.sort();
    let mut served: Vec<(String, String)> = eso_refresher::http::ROUTES
        .iter()
        .map(|(m, p)| (m.to_string(), p.to_string()))
        .collect();
    served.sort();
    assert_eq!(described, served);
    let providers: Vec<&str> = eso_refresher::senders::Provider::ALL
        .iter()
        .map(|p| p.name())
        .collect();
    for method in ["post", "options"] {
        let parameter = &description["paths"]["/webhook/{provider}"][method]["parameters"][0];
        assert_eq!(parameter["schema"]["enum"], json!(providers), "{method}");
    }

    // Each described route answers (not 404/405), with the method it is described with...
    for (method, path) in &served {
        let path = path.replace("{provider}", "aws");
        let request = app
            .http
            .request(method.parse().unwrap(), format!("{}{path}", app.url));
        let status = request.send().await.unwrap().status().as_u16();
        assert!(![404, 405].contains(&status), "{method} {path}: {status}");
    }
    // ...and nothing else does.
    for path in [
        "/",
        "/metrics/",
        "/webhook/aws/more",
        "/debug",
        "/openapi.yaml",
        "/healthz/",
    ] {
        assert_eq!(app.get(path).await.status(), 404, "{path}");
    }
    assert_eq!(
        app.http
            .post(format!("{}/healthz", app.url))
            .send()
            .await
            .unwrap()
            .status(),
        405
    );

    // Every $ref resolves.
    let text = description.to_string();
    for reference in text.split("\"$ref\":\"").skip(1) {
        let pointer = reference.split('"').next().unwrap().trim_start_matches('#');
        assert!(
            description.pointer(pointer).is_some(),
            "dangling $ref {pointer}"
        );
    }
}
