//! Caller authentication, scheme by scheme, on the real server: what is accepted is patched,
//! what is refused (expired, wrong key, replayed, missing) is answered 401 and patches nothing.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use eso_refresher::config::auth::{BasicPair, BearerSettings, JwksSettings, JwtSettings};
use eso_refresher::config::{AuthSettings, Config, Scheme, Secret};
use hmac::{Hmac, KeyInit, Mac};
use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, EncodingKey, Header, encode, get_current_timestamp};
use serde_json::{Value, json};
use sha2::Sha256;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::*;

const GENERIC: &str = "/webhook/generic";

/// The server with `generic` set to `schemes` (every other route keeps basic), and room for
/// more failed attempts than the tests make.
fn config_with(schemes: &[Scheme], settings: impl FnOnce(&mut AuthSettings)) -> Config {
    let mut config = config();
    config
        .auth
        .routes
        .insert("generic".into(), schemes.to_vec());
    settings(&mut config.auth);
    config.auth_failures_per_minute = 1000;
    config
}

async fn start(config: Config) -> (FakeApiServer, TestApp) {
    let api = FakeApiServer::start().await;
    api.apply(external_secret("team-a", "db").with_key("/prod/db").build());
    let app = spawn_ready(&api, config).await;
    (api, app)
}

fn keys_body() -> String {
    json!({"keys": ["/prod/db"]}).to_string()
}

/// Sends a request and checks its status, and that it patched exactly when it was accepted.
async fn expect(
    api: &FakeApiServer,
    request: reqwest::RequestBuilder,
    status: u16,
    what: &str,
) -> reqwest::Response {
    let before = api.patches().len();
    let response = request.send().await.expect("request");
    assert_eq!(response.status().as_u16(), status, "{what}");
    let patched = api.patches().len() - before;
    assert_eq!(patched, usize::from(status == 200), "{what}: patches");
    response
}

pub(crate) fn unix_seconds() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_secs()
}

pub(crate) fn hex_hmac(secret: &str, message: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(message);
    mac.finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[tokio::test]
async fn basic_accepts_every_configured_pair() {
    let (api, app) = start(config_with(&[Scheme::Basic], |auth| {
        auth.basic.push(BasicPair {
            user: "hook".into(),
            password: Secret::new("rotated-Pa55"),
        });
    }))
    .await;
    let url = format!("{}{GENERIC}", app.url);
    for password in [PASSWORD, "rotated-Pa55"] {
        let request = app.http.post(&url).basic_auth(USER, Some(password));
        expect(&api, request.body(keys_body()), 200, password).await;
    }
    for (request, what) in [
        (app.http.post(&url).basic_auth(USER, Some("old")), "wrong"),
        (app.http.post(&url), "missing"),
        (
            app.http.post(&url).header("Authorization", "Basic %%%"),
            "malformed",
        ),
    ] {
        let response = expect(&api, request.body(keys_body()), 401, what).await;
        let challenge = response.headers()["www-authenticate"].to_str().unwrap();
        assert!(challenge.starts_with("Basic realm="), "{challenge}");
    }
}

#[tokio::test]
async fn bearer_tokens_in_a_configured_header() {
    let (api, app) = start(config_with(&[Scheme::Bearer], |auth| {
        auth.bearer = BearerSettings {
            tokens: vec![Secret::new("key-current"), Secret::new("key-next")],
            header: Some("x-api-key".into()),
        };
    }))
    .await;
    let url = format!("{}{GENERIC}", app.url);
    for token in ["key-current", "key-next"] {
        let request = app.http.post(&url).header("X-Api-Key", token);
        expect(&api, request.body(keys_body()), 200, token).await;
    }
    for (request, what) in [
        (app.http.post(&url).header("X-Api-Key", "key-old"), "wrong"),
        (app.http.post(&url), "missing"),
        (
            app.http.post(&url).bearer_auth("key-current"),
            "in Authorization instead",
        ),
        (
            app.http
                .post(&url)
                .header("X-Api-Key", "key-current")
                .header("X-Api-Key", "key-next"),
            "twice",
        ),
    ] {
        let response = expect(&api, request.body(keys_body()), 401, what).await;
        assert_eq!(
            response.headers()["www-authenticate"],
            r#"Bearer realm="eso-refresher""#
        );
    }
    // The token is good for its route only: /webhook keeps basic.
    let elsewhere = app
        .http
        .post(format!("{}/webhook", app.url))
        .header("X-Api-Key", "key-current");
    expect(&api, elsewhere.body(keys_body()), 401, "/webhook").await;
}

fn jwt_settings() -> JwtSettings {
    JwtSettings {
        secrets: vec![Secret::new("jwt-old"), Secret::new("jwt-new")],
        audience: "eso-refresher".into(),
        issuer: Some("ci.example.com".into()),
        namespaces_claim: "namespaces".into(),
    }
}

fn hs256(secret: &str, claims: Value) -> String {
    let mut all = json!({"aud": "eso-refresher", "iss": "ci.example.com",
        "exp": get_current_timestamp() + 300});
    if let (Some(all), Some(claims)) = (all.as_object_mut(), claims.as_object()) {
        all.extend(claims.clone());
    }
    encode(
        &Header::new(Algorithm::HS256),
        &all,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .expect("signs")
}

#[tokio::test]
async fn jwt_tokens_signed_with_any_configured_secret() {
    let (api, app) = start(config_with(&[Scheme::Jwt], |auth| {
        auth.jwt = Some(jwt_settings());
    }))
    .await;
    let url = format!("{}{GENERIC}", app.url);
    for secret in ["jwt-old", "jwt-new"] {
        let request = app.http.post(&url).bearer_auth(hs256(secret, json!({})));
        expect(&api, request.body(keys_body()), 200, secret).await;
    }
    let now = get_current_timestamp();
    for (token, what) in [
        (hs256("jwt-new", json!({"exp": now - 300})), "expired"),
        (hs256("jwt-new", json!({"nbf": now + 600})), "not yet valid"),
        (hs256("guess", json!({})), "wrong key"),
        (hs256("jwt-new", json!({"aud": "other"})), "wrong audience"),
        (hs256("jwt-new", json!({"iss": "evil"})), "wrong issuer"),
        ("not.a.jwt".to_owned(), "malformed"),
    ] {
        let request = app.http.post(&url).bearer_auth(token);
        expect(&api, request.body(keys_body()), 401, what).await;
    }
    expect(&api, app.http.post(&url).body(keys_body()), 401, "missing").await;
}

#[tokio::test]
async fn a_jwt_limited_to_namespaces_patches_only_there() {
    let api = FakeApiServer::start().await;
    api.apply(external_secret("team-a", "db").with_key("/prod/db").build());
    api.apply(external_secret("team-b", "db").with_key("/prod/db").build());
    api.apply(cluster_external_secret("fanout"));
    api.apply(
        external_secret("team-a", "fanout")
            .with_key("/prod/db")
            .owned_by_cluster_external_secret("fanout")
            .build(),
    );
    let config = config_with(&[Scheme::Jwt], |auth| auth.jwt = Some(jwt_settings()));
    let app = spawn_ready(&api, config).await;
    let token = hs256("jwt-new", json!({"namespaces": ["team-a"]}));
    let response = app
        .http
        .post(format!("{}{GENERIC}", app.url))
        .bearer_auth(token)
        .body(keys_body())
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 200);
    let report: Value = response.json().await.expect("JSON");

    let patched: Vec<String> = api.patches().iter().map(|p| p.path.clone()).collect();
    assert_eq!(patched.len(), 1, "{patched:?}");
    assert!(
        patched[0].ends_with("/namespaces/team-a/externalsecrets/db"),
        "{patched:?}"
    );
    assert_eq!(report["refreshed"][0]["namespace"], "team-a");
    let mut skipped: Vec<(String, String)> = report["skipped"]
        .as_array()
        .expect("skipped")
        .iter()
        .map(|s| {
            assert_eq!(s["code"], "not_permitted", "{s}");
            (
                s["namespace"].as_str().unwrap_or_default().to_owned(),
                s["name"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    skipped.sort();
    assert_eq!(
        skipped,
        [
            ("team-a".to_owned(), "fanout".to_owned()),
            ("team-b".to_owned(), "db".to_owned())
        ]
    );

    // Without the claim, the same caller refreshes everything, the ClusterExternalSecret too.
    let unrestricted = app
        .http
        .post(format!("{}{GENERIC}", app.url))
        .bearer_auth(hs256("jwt-new", json!({})))
        .body(keys_body());
    let response = unrestricted.send().await.expect("request");
    assert_eq!(response.status(), 200);
    assert_eq!(api.patches().len(), 1 + 3);
}

/// A request signed as the generic `hmac` scheme wants, at `timestamp`.
fn hmac_signed(
    request: reqwest::RequestBuilder,
    secret: &str,
    timestamp: u64,
    body: &(impl AsRef<[u8]> + ?Sized),
) -> reqwest::RequestBuilder {
    let mut message = format!("{timestamp}.").into_bytes();
    message.extend_from_slice(body.as_ref());
    let signature = hex_hmac(secret, &message);
    request
        .header("X-Signature", format!("sha256={signature}"))
        .header("X-Signature-Timestamp", timestamp.to_string())
        .body(body.as_ref().to_vec())
}

#[tokio::test]
async fn hmac_signatures_within_the_replay_window() {
    let (api, app) = start(config_with(&[Scheme::Hmac], |auth| {
        auth.hmac_secrets = vec![Secret::new("hmac-old"), Secret::new("hmac-new")];
        auth.replay_window = Duration::from_secs(60);
    }))
    .await;
    let url = format!("{}{GENERIC}", app.url);
    let now = unix_seconds();
    let body = keys_body();
    for secret in ["hmac-old", "hmac-new"] {
        let request = hmac_signed(app.http.post(&url), secret, now, &body);
        expect(&api, request, 200, secret).await;
    }
    // A compressed body is signed as sent: the signature is of the compressed bytes, checked
    // before anything is decoded.
    let gzipped = compress("gzip", body.as_bytes());
    let gzip_signed_over = |signed: &[u8]| {
        hmac_signed(app.http.post(&url), "hmac-new", now, signed)
            .header("Content-Encoding", "gzip")
            .body(gzipped.clone())
    };
    expect(&api, gzip_signed_over(&gzipped), 200, "gzip, as sent").await;
    expect(
        &api,
        gzip_signed_over(body.as_bytes()),
        401,
        "gzip, decoded",
    )
    .await;
    let tampered = hmac_signed(app.http.post(&url), "hmac-new", now, &body)
        .body(json!({"keys": ["/prod/db", "/prod/other"]}).to_string());
    for (request, what) in [
        (
            hmac_signed(app.http.post(&url), "hmac-new", now - 120, &body),
            "replayed two minutes later",
        ),
        (
            hmac_signed(app.http.post(&url), "hmac-guess", now, &body),
            "wrong key",
        ),
        (tampered, "tampered body"),
        (app.http.post(&url).body(body.clone()), "missing"),
        (
            app.http
                .post(&url)
                .header("X-Signature", "sha256=beef")
                .header("X-Signature-Timestamp", now.to_string())
                .body(body.clone()),
            "malformed",
        ),
    ] {
        let response = expect(&api, request, 401, what).await;
        assert_eq!(
            response.headers()["www-authenticate"],
            r#"Signature realm="eso-refresher", scheme="hmac""#
        );
    }
}

#[tokio::test]
async fn doppler_signatures() {
    let (api, app) = start(config_with(&[Scheme::HmacDoppler], |auth| {
        auth.doppler_secrets = vec![Secret::new("dp-old"), Secret::new("dp-new")];
    }))
    .await;
    let url = format!("{}{GENERIC}", app.url);
    let body = keys_body();
    let signed = |secret: &str| {
        app.http
            .post(&url)
            .header(
                "X-Doppler-Signature",
                format!("sha256={}", hex_hmac(secret, body.as_bytes())),
            )
            .body(body.clone())
    };
    for secret in ["dp-old", "dp-new"] {
        expect(&api, signed(secret), 200, secret).await;
    }
    expect(&api, signed("dp-guess"), 401, "wrong key").await;
    expect(&api, app.http.post(&url).body(body.clone()), 401, "missing").await;
    let unprefixed = app
        .http
        .post(&url)
        .header("X-Doppler-Signature", hex_hmac("dp-new", body.as_bytes()))
        .body(body.clone());
    expect(&api, unprefixed, 401, "malformed").await;
}

#[tokio::test]
async fn infisical_signatures_within_the_replay_window() {
    let (api, app) = start(config_with(&[Scheme::HmacInfisical], |auth| {
        auth.infisical_secrets = vec![Secret::new("inf-key")];
    }))
    .await;
    let url = format!("{}{GENERIC}", app.url);
    // Infisical puts its time in the body it signs, and repeats it in the header.
    let signed = |secret: &str, millis: u64| {
        let body = json!({"keys": ["/prod/db"], "timestamp": millis}).to_string();
        let signature = hex_hmac(secret, body.as_bytes());
        app.http
            .post(&url)
            .header("x-infisical-signature", format!("t={millis};{signature}"))
            .body(body)
    };
    let now_ms = unix_seconds() * 1000;
    expect(&api, signed("inf-key", now_ms), 200, "valid").await;
    expect(
        &api,
        signed("inf-key", now_ms - 120_000),
        401,
        "replayed two minutes later",
    )
    .await;
    expect(&api, signed("inf-guess", now_ms), 401, "wrong key").await;
    expect(&api, app.http.post(&url).body(keys_body()), 401, "missing").await;
}

#[tokio::test]
async fn any_scheme_of_the_route_lets_a_request_in() {
    let (api, app) = start(config_with(&[Scheme::Basic, Scheme::Hmac], |auth| {
        auth.hmac_secrets = vec![Secret::new("hmac-key")];
    }))
    .await;
    let url = format!("{}{GENERIC}", app.url);
    let basic = app.http.post(&url).basic_auth(USER, Some(PASSWORD));
    expect(&api, basic.body(keys_body()), 200, "basic").await;
    let signed = hmac_signed(
        app.http.post(&url),
        "hmac-key",
        unix_seconds(),
        &keys_body(),
    );
    expect(&api, signed, 200, "hmac").await;
    let wrong_both = hmac_signed(
        app.http.post(&url).basic_auth(USER, Some("wrong")),
        "guess",
        unix_seconds(),
        &keys_body(),
    );
    let response = expect(&api, wrong_both, 401, "neither").await;
    assert_eq!(
        response.headers()["www-authenticate"],
        r#"Basic realm="eso-refresher", charset="UTF-8", Signature realm="eso-refresher", scheme="hmac""#
    );
}

#[tokio::test]
async fn failed_signatures_count_toward_the_throttle() {
    let mut config = config_with(&[Scheme::Hmac], |auth| {
        auth.hmac_secrets = vec![Secret::new("hmac-key")];
    });
    config.auth_failures_per_minute = 2;
    let (api, app) = start(config).await;
    let url = format!("{}{GENERIC}", app.url);
    let mut statuses = Vec::new();
    for _ in 0..4 {
        let request = hmac_signed(app.http.post(&url), "guess", unix_seconds(), &keys_body());
        statuses.push(request.send().await.expect("request").status().as_u16());
    }
    assert_eq!(statuses, [401, 401, 401, 429]);
    let metrics = app.get("/metrics").await.text().await.expect("text");
    assert!(
        metrics.contains("eso_refresher_auth_failures_total 3"),
        "{metrics}"
    );
    assert!(api.patches().is_empty());
}

/// A signing key and its public JWK.
struct Signer {
    key: EncodingKey,
    algorithm: Algorithm,
    kid: &'static str,
}

impl Signer {
    fn rsa(fixture: &str, kid: &'static str) -> Signer {
        let path = format!(
            "{}/tests/fixtures/auth/{fixture}",
            env!("CARGO_MANIFEST_DIR")
        );
        let pem = std::fs::read(path).expect("fixture");
        Signer {
            key: EncodingKey::from_rsa_pem(&pem).expect("RSA key"),
            algorithm: Algorithm::RS256,
            kid,
        }
    }

    fn ec(kid: &'static str) -> Signer {
        let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("EC key");
        Signer {
            key: EncodingKey::from_ec_pem(pair.serialize_pem().as_bytes()).expect("EC key"),
            algorithm: Algorithm::ES256,
            kid,
        }
    }

    fn jwk(&self) -> Value {
        let jwk = Jwk::from_encoding_key(&self.key, self.algorithm).expect("public key");
        let mut jwk = serde_json::to_value(jwk).expect("JSON");
        jwk["kid"] = json!(self.kid);
        jwk
    }

    /// A token as Pub/Sub push sends it, with `claims` changed.
    fn token(&self, claims: Value) -> String {
        let mut all = json!({"iss": "https://accounts.google.com", "aud": PUSH_AUDIENCE,
            "exp": get_current_timestamp() + 300, "email_verified": true,
            "email": "push@my-project.iam.gserviceaccount.com"});
        if let (Some(all), Some(claims)) = (all.as_object_mut(), claims.as_object()) {
            all.extend(claims.clone());
        }
        let mut header = Header::new(self.algorithm);
        header.kid = Some(self.kid.to_owned());
        encode(&header, &all, &self.key).expect("signs")
    }
}

const PUSH_AUDIENCE: &str = "https://hooks.example.com/webhook/gcp";

/// Serves a JWKS document on a local port, counting fetches.
async fn serve_keys(keys: Value) -> (String, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}/oauth2/v3/certs", listener.local_addr().unwrap());
    let fetches = Arc::new(AtomicUsize::new(0));
    let counted = fetches.clone();
    let body = json!({ "keys": keys }).to_string();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let mut request = vec![0; 4096];
            let _ = stream.read(&mut request).await;
            counted.fetch_add(1, Ordering::SeqCst);
            let response = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = stream.write_all(response.as_bytes()).await;
        }
    });
    (url, fetches)
}

/// Google's issuer, our push audience, and the push subscription's service account as the
/// only caller, with keys at `url`.
fn google_push(url: String) -> JwksSettings {
    JwksSettings {
        url,
        issuer: "https://accounts.google.com".into(),
        audience: PUSH_AUDIENCE.into(),
        cache_ttl: Duration::from_secs(3600),
        subjects: vec!["push@my-project.iam.gserviceaccount.com".into()],
    }
}

/// The Pub/Sub push fixture, with a message id of its own (ids are de-duplicated).
fn push_delivery(message_id: u32) -> String {
    let path = format!(
        "{}/tests/fixtures/events/gcp-pubsub-push.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let mut delivery: Value =
        serde_json::from_str(&std::fs::read_to_string(path).expect("fixture")).expect("JSON");
    delivery["message"]["messageId"] = json!(message_id.to_string());
    delivery.to_string()
}

#[tokio::test]
async fn pubsub_push_oidc_tokens_checked_against_a_key_set() {
    let rsa = Signer::rsa("rsa-signing.pem", "google-rsa");
    let ec = Signer::ec("google-ec");
    let (jwks_url, fetches) = serve_keys(json!([rsa.jwk(), ec.jwk()])).await;
    let api = FakeApiServer::start().await;
    api.apply(external_secret("gcp", "db").with_key("db-password").build());
    let mut config = config();
    config.auth.routes.insert("gcp".into(), vec![Scheme::Jwks]);
    config.auth.jwks = Some(google_push(jwks_url));
    config.auth_failures_per_minute = 1000;
    let app = spawn_ready(&api, config).await;
    let url = format!("{}/webhook/gcp", app.url);

    let push = |token: String, id: u32| {
        app.http
            .post(&url)
            .bearer_auth(token)
            .body(push_delivery(id))
    };
    expect(&api, push(rsa.token(json!({})), 1), 200, "RS256").await;
    expect(&api, push(ec.token(json!({})), 2), 200, "ES256").await;
    let now = get_current_timestamp();
    let other = Signer::rsa("rsa-other.pem", "google-rsa");
    for (token, what) in [
        (rsa.token(json!({"exp": now - 300})), "expired"),
        (other.token(json!({})), "wrong key"),
        (
            rsa.token(json!({"aud": "https://elsewhere"})),
            "wrong audience",
        ),
        (
            rsa.token(json!({"iss": "https://evil.example"})),
            "wrong issuer",
        ),
    ] {
        let response = expect(&api, push(token, 3), 401, what).await;
        assert_eq!(
            response.headers()["www-authenticate"],
            r#"Bearer realm="eso-refresher""#
        );
    }
    let missing = app.http.post(&url).body(push_delivery(4));
    expect(&api, missing, 401, "missing").await;
    assert_eq!(fetches.load(Ordering::SeqCst), 1, "the keys are cached");
    // Basic credentials are not accepted on this route any more.
    let basic = app
        .http
        .post(&url)
        .basic_auth(USER, Some(PASSWORD))
        .body(push_delivery(5));
    expect(&api, basic, 401, "basic on a jwks route").await;
}

#[tokio::test]
async fn an_unreachable_key_set_answers_503_only_when_the_keys_would_decide() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let jwks_url = format!("http://{}/certs", listener.local_addr().unwrap());
    drop(listener);
    let config = config_with(&[Scheme::Jwks], |auth| {
        auth.jwks = Some(google_push(jwks_url));
    });
    let (api, app) = start(config).await;
    let signer = Signer::rsa("rsa-signing.pem", "k");
    let post = |token: String| {
        app.http
            .post(format!("{}{GENERIC}", app.url))
            .bearer_auth(token)
            .body(keys_body())
    };
    let response = expect(&api, post(signer.token(json!({}))), 503, "keys needed").await;
    assert!(response.headers().contains_key("retry-after"));
    let now = get_current_timestamp();
    // What needs no keys to refuse is the caller's fault, keys or not: no endless retries.
    for (token, what) in [
        ("junk".to_owned(), "not a JWT"),
        ("a.b.c".to_owned(), "malformed"),
        (signer.token(json!({"exp": now - 300})), "expired"),
        (
            signer.token(json!({"aud": "https://elsewhere"})),
            "wrong audience",
        ),
        (
            signer.token(json!({"email": "me@attacker.iam.gserviceaccount.com"})),
            "not a listed subject",
        ),
    ] {
        let response = expect(&api, post(token), 401, what).await;
        assert_eq!(
            response.headers()["www-authenticate"],
            r#"Bearer realm="eso-refresher""#
        );
    }
    let metrics = app.get("/metrics").await.text().await.expect("text");
    assert!(
        metrics.contains("eso_refresher_auth_failures_total 5"),
        "{metrics}"
    );
}

#[tokio::test]
async fn tokens_that_need_an_unreachable_key_set_still_count_toward_the_throttle() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let jwks_url = format!("http://{}/certs", listener.local_addr().unwrap());
    drop(listener);
    let mut config = config_with(&[Scheme::Jwks], |auth| {
        auth.jwks = Some(JwksSettings {
            url: jwks_url,
            issuer: "https://issuer.example".into(),
            audience: PUSH_AUDIENCE.into(),
            cache_ttl: Duration::from_secs(3600),
            subjects: Vec::new(),
        });
    });
    config.auth_failures_per_minute = 2;
    let (api, app) = start(config).await;
    let token = Signer::rsa("rsa-signing.pem", "k").token(json!({"iss": "https://issuer.example"}));
    let mut statuses = Vec::new();
    for _ in 0..4 {
        let request = app
            .http
            .post(format!("{}{GENERIC}", app.url))
            .bearer_auth(&token)
            .body(keys_body());
        statuses.push(request.send().await.expect("request").status().as_u16());
    }
    assert_eq!(statuses, [503, 503, 503, 429]);
    assert!(api.patches().is_empty());
}

#[tokio::test]
async fn a_google_token_for_our_audience_from_another_account_is_refused() {
    let rsa = Signer::rsa("rsa-signing.pem", "google-rsa");
    let (jwks_url, _) = serve_keys(json!([rsa.jwk()])).await;
    let (api, app) = start(config_with(&[Scheme::Jwks], |auth| {
        auth.jwks = Some(google_push(jwks_url));
    }))
    .await;
    let url = format!("{}{GENERIC}", app.url);
    let post = |token: String| app.http.post(&url).bearer_auth(token).body(keys_body());
    expect(
        &api,
        post(rsa.token(json!({}))),
        200,
        "the push subscription's account",
    )
    .await;
    for (claims, what) in [
        (
            json!({"email": "me@attacker-project.iam.gserviceaccount.com"}),
            "another service account",
        ),
        (json!({"email_verified": false}), "an unverified email"),
    ] {
        expect(&api, post(rsa.token(claims)), 401, what).await;
    }
}
