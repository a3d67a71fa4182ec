//! Faults, hostile input, limits, metrics, logs, TLS and shutdown.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};

use crate::support::*;

/// Sends one webhook per ExternalSecret and checks the books: a 200 means its patch is in the
/// API server (the stored object carries a stamp from after the webhook was sent), anything
/// else must be a 5xx that tells the sender to re-deliver. Returns (applied, refused).
async fn send_and_account(api: &FakeApiServer, app: &TestApp, names: &[String]) -> (usize, usize) {
    let (mut applied, mut refused) = (0, 0);
    for name in names {
        let sent_at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true);
        let (status, report) = app.webhook(&akeyless_events(&[&format!("/{name}")])).await;
        let stored = api.get("ExternalSecret", Some("faults"), name).unwrap();
        let stamp = stored["metadata"]["annotations"]["updated-at"]
            .as_str()
            .unwrap_or("");
        match status {
            200 => {
                assert!(
                    stamp > sent_at.as_str(),
                    "{name}: answered 200 but not patched: {report}"
                );
                applied += 1;
            }
            500..=599 => {
                assert!(
                    !report["failed"].as_array().is_none_or(Vec::is_empty),
                    "{report}"
                );
                refused += 1;
            }
            other => panic!("{name}: unexpected {other}: {report}"),
        }
    }
    (applied, refused)
}

async fn faulty_cluster(count: usize) -> (FakeApiServer, TestApp, Vec<String>) {
    let api = FakeApiServer::start().await;
    let names: Vec<String> = (0..count).map(|i| format!("s{i}")).collect();
    for name in &names {
        api.apply(
            external_secret("faults", name)
                .with_key(&format!("/{name}"))
                .build(),
        );
    }
    let app = spawn_ready(&api, config()).await;
    (api, app, names)
}

#[tokio::test]
async fn transient_api_errors_are_retried_until_the_patch_lands() {
    for status in [429, 409, 500, 502, 503, 504] {
        let (api, app, names) = faulty_cluster(4).await;
        // Every other patch attempt fails, for a while.
        api.fail("PATCH", "/externalsecrets/", status, 4);
        let (applied, refused) = send_and_account(&api, &app, &names).await;
        assert_eq!((applied, refused), (4, 0), "HTTP {status}");
        // 429, 503 and 504 are retried inside the Kubernetes client already; the others here.
        if [409, 500, 502].contains(&status) {
            let metrics = app.get("/metrics").await.text().await.unwrap();
            let retries: u64 = metrics
                .lines()
                .find_map(|l| l.strip_prefix("eso_refresher_patch_retries_total "))
                .and_then(|v| v.parse().ok())
                .expect("the retries counter");
            assert!(retries >= 1, "{status}: {metrics}");
        }
    }
}

#[tokio::test]
async fn dropped_connections_are_retried() {
    let (api, app, names) = faulty_cluster(3).await;
    api.drop_connections("PATCH", "/externalsecrets/", 3);
    let (applied, refused) = send_and_account(&api, &app, &names).await;
    assert_eq!((applied, refused), (3, 0));
}

#[tokio::test]
async fn an_api_server_that_does_not_answer_in_time_is_retried() {
    let (api, app, names) = faulty_cluster(1).await;
    // Longer than one attempt may take (5 s): the attempt is abandoned and repeated.
    api.stall("PATCH", "/externalsecrets/", Duration::from_secs(6), 1);
    let (applied, refused) = send_and_account(&api, &app, &names).await;
    assert_eq!((applied, refused), (1, 0));
}

#[tokio::test]
async fn persistent_failures_are_answered_5xx_and_none_is_lost() {
    let (api, app, names) = faulty_cluster(6).await;
    // s0..s2 never succeed; the rest do.
    for name in &names[..3] {
        api.fail("PATCH", &format!("/externalsecrets/{name}"), 500, 1000);
    }
    api.fail("PATCH", "/externalsecrets/s5", 403, 1000);
    let (applied, refused) = send_and_account(&api, &app, &names).await;
    assert_eq!(
        applied + refused,
        names.len(),
        "every refresh accounted for"
    );
    assert_eq!((applied, refused), (2, 4));
    let metrics = app.get("/metrics").await.text().await.unwrap();
    assert!(
        metrics.contains(r#"eso_refresher_patch_failures_total{error="http_500"} 3"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"eso_refresher_patch_failures_total{error="http_403"} 1"#),
        "{metrics}"
    );
}

#[tokio::test]
async fn hostile_input_gets_the_right_4xx_and_the_server_stays_healthy() {
    let api = FakeApiServer::start().await;
    api.apply(external_secret("a", "s").with_key("/k").build());
    let mut config = config();
    config.max_body_bytes = 4 * 1024 * 1024;
    config.max_events = 1000;
    let app = spawn_ready(&api, config).await;

    let hundred_thousand: Vec<Value> = (0..100_000)
        .map(|i| json!({"item_name": format!("/{i}")}))
        .collect();
    let hundred_thousand = serde_json::to_vec(&hundred_thousand).unwrap();
    let bodies: Vec<(&str, Vec<u8>, u16)> = vec![
        ("truncated JSON", br#"[{"item_name": "/k""#.to_vec(), 400),
        (
            "trailing garbage",
            br#"{"item_name": "/k"} xyz"#.to_vec(),
            400,
        ),
        ("wrong types", br#"{"item_name": ["/k"]}"#.to_vec(), 400),
        ("null", b"null".to_vec(), 400),
        (
            "deep nesting",
            format!("{}{}", "[".repeat(100_000), "]".repeat(100_000)).into_bytes(),
            400,
        ),
        (
            "invalid UTF-8",
            b"[{\"item_name\": \"/\xff\xfe\"}]".to_vec(),
            400,
        ),
        ("NUL bytes", b"\0\0\0\0".to_vec(), 400),
        (
            "huge string",
            format!(r#"{{"item_name": "/{}"}}"#, "x".repeat(5 * 1024 * 1024)).into_bytes(),
            413,
        ),
        ("100k events", hundred_thousand, 413),
    ];
    for (what, body, expected) in bodies {
        let response = app.post_webhook(body).await;
        assert_eq!(response.status().as_u16(), expected, "{what}");
        let answer: Value = response.json().await.unwrap_or(Value::Null);
        assert!(answer["error"].is_string(), "{what}: {answer}");
        assert_eq!(app.get("/healthz").await.status(), 200, "after {what}");
    }

    let url = format!("{}/webhook", app.url);
    let good = format!("Basic {}", base64_of(&format!("{USER}:{PASSWORD}")));
    let headers: Vec<(&str, Vec<(&str, String)>)> = vec![
        ("missing", vec![]),
        (
            "duplicated",
            vec![
                ("Authorization", good.clone()),
                ("Authorization", good.clone()),
            ],
        ),
        (
            "garbled base64",
            vec![("Authorization", "Basic @@@".into())],
        ),
        (
            "no colon",
            vec![("Authorization", format!("Basic {}", base64_of("justauser")))],
        ),
        (
            "other scheme",
            vec![("Authorization", "Digest username=hook".into())],
        ),
        ("empty", vec![("Authorization", String::new())]),
        (
            "not UTF-8 when decoded",
            vec![(
                "Authorization",
                format!("Basic {}", base64_of_bytes(&[0xff, b':', 0xfe])),
            )],
        ),
    ];
    for (what, pairs) in headers {
        let mut request = app
            .http
            .post(&url)
            .body(akeyless_events(&["/k"]).to_string());
        for (name, value) in pairs {
            request = request.header(name, value);
        }
        let status = request.send().await.unwrap().status();
        assert_eq!(status, 401, "{what}");
    }
    assert!(api.patches().is_empty(), "nothing was patched");
    let (status, _) = app.webhook(&akeyless_events(&["/k"])).await;
    assert_eq!(status, 200, "still serving");
}

fn base64_of(text: &str) -> String {
    base64_of_bytes(text.as_bytes())
}

fn base64_of_bytes(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

#[tokio::test]
async fn too_many_events_in_one_request_is_413() {
    let api = FakeApiServer::start().await;
    let mut config = config();
    config.max_events = 5;
    let app = spawn_ready(&api, config).await;
    let keys: Vec<String> = (0..6).map(|i| format!("/k{i}")).collect();
    let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
    let response = app.post_webhook(akeyless_events(&keys).to_string()).await;
    assert_eq!(response.status(), 413);
    let answer: Value = response.json().await.unwrap();
    assert_eq!(answer["error"], "too_many_events");
    assert_eq!(app.webhook(&akeyless_events(&keys[..5])).await.0, 200);
}

#[tokio::test]
async fn repeated_failed_authentication_is_throttled_per_client() {
    let api = FakeApiServer::start().await;
    api.apply(external_secret("a", "s").with_key("/k").build());
    let mut config = config();
    config.auth_failures_per_minute = 3;
    config.trust_forwarded_for = true;
    let app = spawn_ready(&api, config).await;
    let url = format!("{}/webhook", app.url);
    let body = akeyless_events(&["/k"]).to_string();
    let attempt = |client: &'static str, password: &'static str| {
        app.http
            .post(&url)
            .header("X-Forwarded-For", client)
            .basic_auth(USER, Some(password))
            .body(body.clone())
            .send()
    };
    // The proxy appends the address it saw last; what the client put before it is ignored.
    for i in 0..4 {
        let spoofed: &'static str = Box::leak(format!("10.9.9.{i}, 203.0.113.7").into_boxed_str());
        assert_eq!(attempt(spoofed, "guess").await.unwrap().status(), 401);
    }
    // Blocked now, even with the right password...
    let blocked = attempt("203.0.113.7", PASSWORD).await.unwrap();
    assert_eq!(blocked.status(), 429);
    let wait: u64 = blocked.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&wait), "{wait}");
    // ...while another client is served.
    assert_eq!(
        attempt("198.51.100.9", PASSWORD).await.unwrap().status(),
        200
    );
    let metrics = app.get("/metrics").await.text().await.unwrap();
    assert!(
        metrics.contains("eso_refresher_auth_failures_total 4\n"),
        "{metrics}"
    );
    assert!(
        metrics.contains("eso_refresher_throttled_requests_total 1\n"),
        "{metrics}"
    );
}

#[tokio::test]
async fn metrics_describe_what_happened() {
    let api = FakeApiServer::start().await;
    api.apply(external_secret("a", "s").with_key("/k").build());
    api.apply(
        external_secret("a", "once")
            .with_key("/k")
            .refresh_policy("CreatedOnce")
            .build(),
    );
    let app = spawn_ready(&api, config()).await;
    let (status, _) = app.webhook(&akeyless_events(&["/k", "/nothing"])).await;
    assert_eq!(status, 200);
    let response = app.get("/metrics").await;
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/openmetrics-text")
    );
    let metrics = response.text().await.unwrap();
    for expected in [
        r#"eso_refresher_http_requests_total{route="/webhook",method="POST",status="200"} 1"#,
        r#"eso_refresher_events_total{sender="akeyless",event_type="static-secret-updated"} 2"#,
        "eso_refresher_external_secrets_matched_total 2",
        r#"eso_refresher_patches_total{kind="ExternalSecret"} 1"#,
        r#"eso_refresher_external_secrets_skipped_total{reason="created_once"} 1"#,
        "eso_refresher_patch_duration_seconds_count 1",
        "eso_refresher_external_secrets_cached 2",
        "eso_refresher_watch_errors_total 0",
        "eso_refresher_cache_buster_pending 0",
    ] {
        assert!(metrics.contains(expected), "missing {expected}:\n{metrics}");
    }
}

#[tokio::test]
async fn metrics_name_the_sender_time_each_route_and_describe_the_process() {
    let api = FakeApiServer::start().await;
    api.apply(external_secret("a", "s").with_key("/k").build());
    let app = spawn_ready(&api, config()).await;
    let cloudevent = |id: &str| {
        json!({"specversion": "1.0", "id": id, "type": "com.example.secret.updated",
               "source": "ci", "subject": "/k"})
    };
    // `POST /webhook` recognizes a CloudEvent by its shape, its own route names it.
    for (path, body) in [
        ("/webhook", cloudevent("c-1")),
        ("/webhook/cloudevents", cloudevent("c-2")),
        ("/webhook/generic", json!({"keys": ["/k"]})),
        ("/webhook", akeyless_events(&["/k"])),
    ] {
        let request = app
            .http
            .post(format!("{}{path}", app.url))
            .basic_auth(USER, Some(PASSWORD))
            .body(body.to_string());
        let (status, report) = send(request).await;
        assert_eq!(status, 200, "{path}: {report}");
    }
    assert_eq!(app.get("/no/such/path").await.status(), 404);

    let metrics = app.get("/metrics").await.text().await.unwrap();
    for expected in [
        r#"eso_refresher_events_total{sender="cloudevents",event_type="com.example.secret.updated"} 2"#,
        r#"eso_refresher_events_total{sender="generic",event_type="generic"} 1"#,
        r#"eso_refresher_events_total{sender="akeyless",event_type="static-secret-updated"} 1"#,
        r#"eso_refresher_http_request_duration_seconds_count{route="/webhook"} 2"#,
        r#"eso_refresher_http_request_duration_seconds_count{route="/webhook/{provider}"} 2"#,
        r#"eso_refresher_http_request_duration_seconds_bucket{le="+Inf",route="/webhook"} 2"#,
        r#"eso_refresher_http_request_duration_seconds_count{route="unmatched"} 1"#,
        concat!(
            r#"eso_refresher_build_info{version=""#,
            env!("CARGO_PKG_VERSION"),
            r#""} 1"#
        ),
    ] {
        assert!(metrics.contains(expected), "missing {expected}:\n{metrics}");
    }
    // Route labels are patterns: no raw path becomes a series.
    for raw in ["/webhook/cloudevents", "/webhook/generic", "/no/such/path"] {
        assert!(!metrics.contains(raw), "{raw} is a label:\n{metrics}");
    }

    let value = |name: &str| -> f64 {
        metrics
            .lines()
            .find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
            .unwrap_or_else(|| panic!("no {name}:\n{metrics}"))
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let started = value("process_start_time_seconds");
    assert!(
        started <= now && started > now - 3600.0,
        "{started} vs {now}"
    );
    assert!(value("process_cpu_seconds_total") > 0.0);
    assert!(value("process_resident_memory_bytes") > f64::from(1 << 20));
    assert!(value("process_open_fds") >= 3.0);
    assert!(value("process_max_fds") >= value("process_open_fds"));
    assert!(value("process_threads") >= 1.0);
}

#[tokio::test]
async fn confirmation_follows_the_refresh_until_eso_reports_it() {
    let api = FakeApiServer::start().await;
    api.apply(external_secret("a", "ok").with_key("/k").build());
    api.apply(external_secret("a", "broken").with_key("/k").build());
    let mut config = config();
    config.confirm_timeout = Some(Duration::from_secs(2));
    let app = spawn_ready(&api, config).await;
    let (status, _) = app.webhook(&akeyless_events(&["/k"])).await;
    assert_eq!(status, 200);

    // ESO syncs the patched "ok" (recording the metadata it synced); "broken" fails to fetch,
    // which ESO records as a Ready condition only.
    let mut ok = api.get("ExternalSecret", Some("a"), "ok").unwrap();
    let annotations: std::collections::BTreeMap<String, String> =
        serde_json::from_value(ok["metadata"]["annotations"].clone()).unwrap();
    let synced = eso_refresher::core::external_secret::eso_resource_version(
        ok["metadata"]["generation"].as_i64().unwrap(),
        Some(&annotations),
        None,
    );
    ok["status"] = json!({"syncedResourceVersion": synced, "conditions": [{
        "type": "Ready", "status": "True", "reason": "SecretSynced", "message": "x",
        "lastTransitionTime": "2026-01-01T00:00:00Z"}]});
    api.apply(ok);
    let mut broken = api.get("ExternalSecret", Some("a"), "broken").unwrap();
    let failed_at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    broken["status"] = json!({"conditions": [{
        "type": "Ready", "status": "False", "reason": "SecretSyncedError", "message": "x",
        "lastTransitionTime": failed_at}]});
    api.apply(broken);
    wait_for("both outcomes", || async {
        let metrics = app.get("/metrics").await.text().await.unwrap();
        metrics.contains(r#"eso_refresher_confirmations_total{outcome="confirmed"} 1"#)
            && metrics.contains(r#"eso_refresher_confirmations_total{outcome="not_ready"} 1"#)
    })
    .await;
}

#[tokio::test]
async fn shutdown_finishes_the_webhook_in_flight() {
    let api = FakeApiServer::start().await;
    api.apply(external_secret("a", "s").with_key("/k").build());
    let app = spawn_ready(&api, config()).await;
    api.delay_patches(Duration::from_millis(800));
    let http = app.http.clone();
    let url = format!("{}/webhook", app.url);
    let in_flight = tokio::spawn(async move {
        http.post(url)
            .basic_auth(USER, Some(PASSWORD))
            .body(akeyless_events(&["/k"]).to_string())
            .send()
            .await
            .map(|r| r.status().as_u16())
    });
    wait_for("the patch to reach the API server", || async {
        !api.patches().is_empty()
    })
    .await;
    app.stop().await;
    assert_eq!(in_flight.await.unwrap().unwrap(), 200);
    assert_eq!(api.patches().len(), 1);
}

#[tokio::test]
async fn serves_https_with_the_given_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let params = rcgen::CertificateParams::new(vec!["localhost".into()]).unwrap();
    let cert = params.self_signed(&key).unwrap();
    let (cert_path, key_path) = (dir.path().join("tls.crt"), dir.path().join("tls.key"));
    std::fs::write(&cert_path, cert.pem()).unwrap();
    std::fs::write(&key_path, key.serialize_pem()).unwrap();

    let mut config = config();
    config.tls = Some(eso_refresher::config::TlsFiles {
        cert: cert_path,
        key: key_path,
    });
    let source = eso_refresher::app::Source::Manifests(
        concat!(env!("CARGO_MANIFEST_DIR"), "/examples/manifests").into(),
    );
    let app = spawn_app(config, source).await;
    let port: u16 = app.url.rsplit(':').next().unwrap().parse().unwrap();

    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert.der().clone()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(tls));
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let mut stream = connector.connect(name, tcp).await.expect("TLS handshake");
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.ok();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");

    // Plain HTTP on the TLS port is not served.
    let plain = reqwest::get(format!("http://127.0.0.1:{port}/healthz")).await;
    assert!(plain.is_err() || plain.unwrap().status() != 200);
}

#[tokio::test]
async fn unreadable_tls_files_stop_the_start() {
    let mut config = config();
    config.tls = Some(eso_refresher::config::TlsFiles {
        cert: "/no/such/tls.crt".into(),
        key: "/no/such/tls.key".into(),
    });
    let source = eso_refresher::app::Source::Manifests(
        concat!(env!("CARGO_MANIFEST_DIR"), "/examples/manifests").into(),
    );
    let error = eso_refresher::app::Application::build(config, source)
        .await
        .err()
        .expect("fails");
    assert!(error.to_string().contains("/no/such/tls.crt"), "{error}");
}

#[tokio::test]
async fn a_client_that_stalls_mid_body_gets_408() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let api = FakeApiServer::start().await;
    let app = spawn_ready(&api, config()).await;
    let port: u16 = app.url.rsplit(':').next().unwrap().parse().unwrap();
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let head = format!(
        "POST /webhook HTTP/1.1\r\nHost: x\r\nAuthorization: Basic {}\r\nContent-Length: 100\r\n\r\n[{{\"item_",
        base64_of(&format!("{USER}:{PASSWORD}"))
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut answer = vec![0; 4096];
    let read = tokio::time::timeout(Duration::from_secs(20), stream.read(&mut answer))
        .await
        .expect("answered before the client gave up")
        .unwrap();
    let answer = String::from_utf8_lossy(&answer[..read]);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert_eq!(app.get("/healthz").await.status(), 200);
}
