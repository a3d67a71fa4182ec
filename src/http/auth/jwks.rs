//! `jwks`: JWTs signed with RS256 or ES256 by a key published in a JWKS document (for example
//! Google's, which signs Pub/Sub push OIDC tokens), with the issuer and audience checked.
//!
//! The keys are cached. They are fetched again when the cache is older than its TTL, or when
//! a token names a key the cache does not hold (the issuer rotated), but at most once per
//! `MIN_REFETCH_INTERVAL`, so that tokens with made-up key ids cannot hammer the endpoint.
//!
//! Everything that can be checked without the keys (the token's shape, its times, issuer,
//! audience and subject) is checked before they are looked up, so that a token refused on
//! those grounds is refused (401) even while the key set cannot be fetched.

use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use actix_web::HttpRequest;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, JwkSet, KeyAlgorithm};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::Value;

use super::jwt::{self, Claims};
use super::{Rejection, bearer_token};
use crate::config::auth::JwksSettings;

/// The least time between two fetches of the key set.
pub const MIN_REFETCH_INTERVAL: Duration = Duration::from_secs(10);
/// How long one fetch may take.
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);
/// A key set larger than this is not a key set.
const MAX_JWKS_BYTES: usize = 256 * 1024;

const ALGORITHMS: [Algorithm; 2] = [Algorithm::RS256, Algorithm::ES256];

#[derive(Clone)]
struct Key {
    id: Option<String>,
    algorithm: Algorithm,
    key: DecodingKey,
}

#[derive(Default)]
struct Cache {
    keys: Vec<Key>,
    fetched: Option<Instant>,
}

pub struct JwksTokens {
    url: String,
    issuer: String,
    audience: String,
    /// `email` (when verified) or `sub` values allowed to call; empty allows any.
    subjects: Vec<String>,
    client: Option<reqwest::Client>,
    validation: Validation,
    ttl: Duration,
    min_refetch: Duration,
    cache: RwLock<Arc<Cache>>,
    /// When the last fetch was tried; held while fetching, so that one fetch serves all.
    last_attempt: tokio::sync::Mutex<Option<Instant>>,
}

fn http_client() -> Option<reqwest::Client> {
    crate::install_crypto_provider();
    reqwest::Client::builder()
        .timeout(FETCH_TIMEOUT)
        .redirect(reqwest::redirect::Policy::limited(3))
        .build()
        .inspect_err(|error| tracing::error!(%error, "cannot build the JWKS client"))
        .ok()
}

/// The algorithm a published key is for: as the key says, or as its type implies.
fn algorithm(jwk: &Jwk) -> Option<Algorithm> {
    let algorithm = match (&jwk.common.key_algorithm, &jwk.algorithm) {
        (Some(KeyAlgorithm::RS256), AlgorithmParameters::RSA(_)) => Algorithm::RS256,
        (Some(KeyAlgorithm::ES256), AlgorithmParameters::EllipticCurve(ec))
            if ec.curve == EllipticCurve::P256 =>
        {
            Algorithm::ES256
        }
        (None, AlgorithmParameters::RSA(_)) => Algorithm::RS256,
        (None, AlgorithmParameters::EllipticCurve(ec)) if ec.curve == EllipticCurve::P256 => {
            Algorithm::ES256
        }
        _ => return None,
    };
    Some(algorithm)
}

/// The usable keys of a JWKS document; others (encryption keys, other algorithms) are left out.
fn read_keys(document: &[u8]) -> Result<Vec<Key>, String> {
    let set: JwkSet = serde_json::from_slice(document).map_err(|e| e.to_string())?;
    Ok(set
        .keys
        .iter()
        .filter(|jwk| {
            !matches!(
                jwk.common.public_key_use,
                Some(jsonwebtoken::jwk::PublicKeyUse::Encryption)
            )
        })
        .filter_map(|jwk| {
            Some(Key {
                id: jwk.common.key_id.clone(),
                algorithm: algorithm(jwk)?,
                key: DecodingKey::from_jwk(jwk).ok()?,
            })
        })
        .collect())
}

impl JwksTokens {
    pub fn new(settings: &JwksSettings) -> Self {
        JwksTokens {
            url: settings.url.clone(),
            issuer: settings.issuer.clone(),
            audience: settings.audience.clone(),
            subjects: settings.subjects.clone(),
            client: http_client(),
            validation: jwt::validation(&ALGORITHMS, &settings.audience, Some(&settings.issuer)),
            ttl: settings.cache_ttl,
            min_refetch: MIN_REFETCH_INTERVAL,
            cache: RwLock::default(),
            last_attempt: tokio::sync::Mutex::default(),
        }
    }

    pub async fn verify(&self, request: &HttpRequest) -> Result<(), Rejection> {
        let token = bearer_token(request)?;
        let header = jsonwebtoken::decode_header(token).map_err(|_| Rejection::Malformed)?;
        if !ALGORITHMS.contains(&header.alg) {
            return Err(Rejection::Malformed);
        }
        let claims: Claims = jsonwebtoken::dangerous::insecure_decode_claims(token)
            .map_err(|_| Rejection::Malformed)?;
        self.check_unsigned(&claims, jsonwebtoken::get_current_timestamp())?;
        let keys = self.keys_for(header.kid.as_deref(), header.alg).await?;
        let mut validation = self.validation.clone();
        validation.algorithms = vec![header.alg];
        let mut outcome = Err(Rejection::UnknownKey);
        for key in keys {
            match jsonwebtoken::decode::<Claims>(token, &key.key, &validation) {
                Ok(data) => return self.check_subject(&data.claims),
                Err(error) => outcome = Err(jwt::rejection(&error)),
            }
        }
        outcome
    }

    /// The checks that need no key, made on the claims before the signature is: a token they
    /// refuse is refused whether or not the key set can be fetched. The signed claims are
    /// checked again, in full, once the signature is.
    fn check_unsigned(&self, claims: &Claims, now: u64) -> Result<(), Rejection> {
        let time = |name: &str| match claims.get(name) {
            None => Ok(None),
            Some(value) => value.as_u64().map(Some).ok_or(Rejection::Malformed),
        };
        let expires = time("exp")?.ok_or(Rejection::Malformed)?;
        // As jsonwebtoken counts it.
        if expires.saturating_add(jwt::LEEWAY_SECONDS) < now {
            return Err(Rejection::Expired);
        }
        if time("nbf")?.is_some_and(|nbf| nbf > now.saturating_add(jwt::LEEWAY_SECONDS)) {
            return Err(Rejection::NotYetValid);
        }
        let audience_matches = match claims.get("aud") {
            Some(Value::String(aud)) => *aud == self.audience,
            Some(Value::Array(auds)) => auds.iter().any(|a| a.as_str() == Some(&self.audience)),
            Some(_) => return Err(Rejection::Malformed),
            None => return Err(Rejection::Malformed),
        };
        if !audience_matches {
            return Err(Rejection::WrongAudience);
        }
        match claims.get("iss") {
            Some(Value::String(iss)) if *iss == self.issuer => {}
            Some(Value::String(_)) => return Err(Rejection::WrongIssuer),
            _ => return Err(Rejection::Malformed),
        }
        self.check_subject(claims)
    }

    /// With `JWKS_SUBJECTS`, the token must be one of theirs: its `email` if Google (or
    /// another issuer) says it is verified, or its `sub`. An issuer like Google signs tokens
    /// for any audience anyone asks for, so the audience alone does not say who calls.
    fn check_subject(&self, claims: &Claims) -> Result<(), Rejection> {
        if self.subjects.is_empty() {
            return Ok(());
        }
        let verified = claims.get("email_verified") == Some(&Value::Bool(true));
        let email = claims
            .get("email")
            .and_then(Value::as_str)
            .filter(|_| verified);
        let subject = claims.get("sub").and_then(Value::as_str);
        let allowed = |id: Option<&str>| id.is_some_and(|id| self.subjects.iter().any(|s| s == id));
        if allowed(email) || allowed(subject) {
            Ok(())
        } else {
            Err(Rejection::WrongSubject)
        }
    }

    fn cached(&self) -> Arc<Cache> {
        self.cache.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The cached keys that may have signed a token with this key id and algorithm, fetching
    /// the set again when it is stale or lacks the key.
    async fn keys_for(
        &self,
        id: Option<&str>,
        algorithm: Algorithm,
    ) -> Result<Vec<Key>, Rejection> {
        let matching = |cache: &Cache| -> Vec<Key> {
            cache
                .keys
                .iter()
                .filter(|k| k.algorithm == algorithm && (id.is_none() || k.id.as_deref() == id))
                .cloned()
                .collect()
        };
        let fresh = |cache: &Cache| cache.fetched.is_some_and(|at| at.elapsed() < self.ttl);
        let cache = self.cached();
        let found = matching(&cache);
        if fresh(&cache) && !found.is_empty() {
            return Ok(found);
        }
        {
            let mut last_attempt = self.last_attempt.lock().await;
            // Another request may have fetched while this one waited.
            let cache = self.cached();
            let refetched = cache
                .fetched
                .is_some_and(|at| last_attempt.is_some_and(|t| at >= t));
            let allowed = last_attempt.is_none_or(|at| at.elapsed() >= self.min_refetch);
            if !(refetched && fresh(&cache) && !matching(&cache).is_empty()) && allowed {
                *last_attempt = Some(Instant::now());
                match self.fetch().await {
                    Ok(keys) => {
                        tracing::info!(url = %self.url, keys = keys.len(), "JWKS fetched");
                        let fetched = Arc::new(Cache {
                            keys,
                            fetched: Some(Instant::now()),
                        });
                        *self.cache.write().unwrap_or_else(|p| p.into_inner()) = fetched;
                    }
                    Err(error) => tracing::warn!(url = %self.url, %error, "JWKS fetch failed"),
                }
            }
        }
        // A stale set is still used when it cannot be renewed: the issuer's keys outlive it.
        let cache = self.cached();
        if cache.fetched.is_none() {
            return Err(Rejection::KeysUnavailable);
        }
        let found = matching(&cache);
        if found.is_empty() {
            Err(Rejection::UnknownKey)
        } else {
            Ok(found)
        }
    }

    async fn fetch(&self) -> Result<Vec<Key>, String> {
        let client = self.client.as_ref().ok_or("no HTTP client")?;
        let response = client
            .get(&self.url)
            .send()
            .await
            .and_then(|r| r.error_for_status())
            .map_err(|e| e.to_string())?;
        if response
            .content_length()
            .is_some_and(|n| n > MAX_JWKS_BYTES as u64)
        {
            return Err("the key set is too large".into());
        }
        let body = response.bytes().await.map_err(|e| e.to_string())?;
        if body.len() > MAX_JWKS_BYTES {
            return Err("the key set is too large".into());
        }
        read_keys(&body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test::TestRequest;
    use jsonwebtoken::{EncodingKey, Header, encode, get_current_timestamp};
    use serde_json::{Value, json};
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    const ISSUER: &str = "https://accounts.google.com";
    const AUDIENCE: &str = "https://hooks.example.com/webhook/gcp";

    /// A signing key and its public JWK.
    struct Signer {
        key: EncodingKey,
        algorithm: Algorithm,
        kid: String,
    }

    impl Signer {
        fn rsa(fixture: &str, kid: &str) -> Signer {
            let path = format!(
                "{}/tests/fixtures/auth/{fixture}",
                env!("CARGO_MANIFEST_DIR")
            );
            let pem = std::fs::read(path).expect("fixture");
            Signer {
                key: EncodingKey::from_rsa_pem(&pem).expect("RSA key"),
                algorithm: Algorithm::RS256,
                kid: kid.into(),
            }
        }

        fn ec(kid: &str) -> Signer {
            let pair =
                rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("EC key");
            Signer {
                key: EncodingKey::from_ec_pem(pair.serialize_pem().as_bytes()).expect("EC key"),
                algorithm: Algorithm::ES256,
                kid: kid.into(),
            }
        }

        fn jwk(&self) -> Value {
            let mut jwk = serde_json::to_value(
                Jwk::from_encoding_key(&self.key, self.algorithm).expect("public key"),
            )
            .expect("JSON");
            jwk["kid"] = json!(self.kid);
            jwk["use"] = json!("sig");
            jwk
        }

        fn token(&self, claims: Value) -> String {
            let mut header = Header::new(self.algorithm);
            header.kid = Some(self.kid.clone());
            encode(&header, &claims, &self.key).expect("signs")
        }
    }

    fn claims(extra: Value) -> Value {
        let mut claims = json!({"iss": ISSUER, "aud": AUDIENCE, "exp": get_current_timestamp() + 300,
            "email": "pubsub@project.iam.gserviceaccount.com"});
        if let (Some(claims), Some(extra)) = (claims.as_object_mut(), extra.as_object()) {
            claims.extend(extra.clone());
        }
        claims
    }

    /// Serves `keys` as a JWKS document on a local port, counting the fetches.
    struct KeyServer {
        url: String,
        keys: Arc<std::sync::Mutex<Value>>,
        fetches: Arc<AtomicUsize>,
    }

    impl KeyServer {
        async fn start(keys: Value) -> KeyServer {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind");
            let url = format!("http://{}/certs", listener.local_addr().expect("address"));
            let keys = Arc::new(std::sync::Mutex::new(keys));
            let fetches = Arc::new(AtomicUsize::new(0));
            let (served, counted) = (keys.clone(), fetches.clone());
            tokio::spawn(async move {
                while let Ok((mut stream, _)) = listener.accept().await {
                    let mut request = vec![0; 4096];
                    let _ = stream.read(&mut request).await;
                    counted.fetch_add(1, Ordering::SeqCst);
                    let body = json!({"keys": *served.lock().expect("keys")}).to_string();
                    let response = format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = stream.write_all(response.as_bytes()).await;
                }
            });
            KeyServer { url, keys, fetches }
        }

        fn fetches(&self) -> usize {
            self.fetches.load(Ordering::SeqCst)
        }
    }

    /// Refetches may happen every 200 ms, so that the tests wait for real, briefly.
    /// Long enough for the checks made within one interval, on a loaded machine.
    const REFETCH: Duration = Duration::from_secs(1);

    fn tokens(url: &str, ttl: Duration) -> JwksTokens {
        let mut tokens = JwksTokens::new(&JwksSettings {
            url: url.into(),
            issuer: ISSUER.into(),
            audience: AUDIENCE.into(),
            cache_ttl: ttl,
            subjects: Vec::new(),
        });
        tokens.min_refetch = REFETCH;
        tokens
    }

    async fn verify(tokens: &JwksTokens, token: &str) -> Result<(), Rejection> {
        let request = TestRequest::post()
            .insert_header(("Authorization", format!("Bearer {token}")))
            .to_http_request();
        tokens.verify(&request).await
    }

    #[tokio::test]
    async fn rs256_and_es256_tokens_from_the_key_set() {
        let rsa = Signer::rsa("rsa-signing.pem", "rsa-1");
        let ec = Signer::ec("ec-1");
        let server = KeyServer::start(json!([rsa.jwk(), ec.jwk()])).await;
        let tokens = tokens(&server.url, Duration::from_secs(3600));
        assert_eq!(verify(&tokens, &rsa.token(claims(json!({})))).await, Ok(()));
        assert_eq!(verify(&tokens, &ec.token(claims(json!({})))).await, Ok(()));
        assert_eq!(server.fetches(), 1, "the keys are cached");
    }

    #[tokio::test]
    async fn expired_wrong_key_wrong_claims_and_malformed() {
        let rsa = Signer::rsa("rsa-signing.pem", "rsa-1");
        let server = KeyServer::start(json!([rsa.jwk()])).await;
        let tokens = tokens(&server.url, Duration::from_secs(3600));
        let now = get_current_timestamp();
        let cases = [
            (
                rsa.token(claims(json!({"exp": now - 120}))),
                Rejection::Expired,
            ),
            (
                rsa.token(claims(json!({"nbf": now + 600}))),
                Rejection::NotYetValid,
            ),
            (
                rsa.token(claims(json!({"aud": "https://elsewhere"}))),
                Rejection::WrongAudience,
            ),
            (
                rsa.token(claims(json!({"iss": "https://evil.example"}))),
                Rejection::WrongIssuer,
            ),
            // The right key id, signed by another key.
            (
                Signer::rsa("rsa-other.pem", "rsa-1").token(claims(json!({}))),
                Rejection::WrongKey,
            ),
            ("a.b.c".to_owned(), Rejection::Malformed),
        ];
        for (token, expected) in cases {
            assert_eq!(verify(&tokens, &token).await, Err(expected));
        }
        // An HS256 token whose secret is the public key: never accepted.
        let hs = encode(
            &Header::new(Algorithm::HS256),
            &claims(json!({})),
            &EncodingKey::from_secret(b"public"),
        )
        .expect("signs");
        assert_eq!(verify(&tokens, &hs).await, Err(Rejection::Malformed));
        let none = TestRequest::post().to_http_request();
        assert_eq!(tokens.verify(&none).await, Err(Rejection::Missing));
    }

    #[tokio::test]
    async fn an_unknown_key_id_refetches_at_most_once_per_interval() {
        let old = Signer::rsa("rsa-signing.pem", "old");
        let server = KeyServer::start(json!([old.jwk()])).await;
        let tokens = tokens(&server.url, Duration::from_secs(3600));
        assert_eq!(verify(&tokens, &old.token(claims(json!({})))).await, Ok(()));
        assert_eq!(server.fetches(), 1);

        // The issuer rotates: a token with the new key id makes the set be fetched again.
        let new = Signer::ec("new");
        *server.keys.lock().expect("keys") = json!([old.jwk(), new.jwk()]);
        tokio::time::sleep(REFETCH).await;
        assert_eq!(verify(&tokens, &new.token(claims(json!({})))).await, Ok(()));
        assert_eq!(server.fetches(), 2);

        // Made-up key ids do not hammer the endpoint: within the interval of the last fetch
        // none is made, after it one.
        let stranger = Signer::ec("made-up");
        for expected in [2, 3] {
            for _ in 0..5 {
                assert_eq!(
                    verify(&tokens, &stranger.token(claims(json!({})))).await,
                    Err(Rejection::UnknownKey)
                );
            }
            assert_eq!(server.fetches(), expected);
            tokio::time::sleep(REFETCH).await;
        }
    }

    #[tokio::test]
    async fn the_cache_expires_after_its_ttl() {
        let signer = Signer::rsa("rsa-signing.pem", "k");
        let server = KeyServer::start(json!([signer.jwk()])).await;
        let tokens = tokens(&server.url, REFETCH + Duration::from_millis(500));
        let token = signer.token(claims(json!({})));
        assert_eq!(verify(&tokens, &token).await, Ok(()));
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(verify(&tokens, &token).await, Ok(()));
        assert_eq!(server.fetches(), 1);
        tokio::time::sleep(REFETCH + Duration::from_millis(300)).await;
        assert_eq!(verify(&tokens, &token).await, Ok(()));
        assert_eq!(server.fetches(), 2);
    }

    #[tokio::test]
    async fn an_unreachable_key_set_is_not_the_callers_fault() {
        let signer = Signer::rsa("rsa-signing.pem", "k");
        // A port nothing listens on.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let url = format!("http://{}/certs", listener.local_addr().expect("address"));
        drop(listener);
        let tokens = tokens(&url, Duration::from_secs(60));
        assert_eq!(
            verify(&tokens, &signer.token(claims(json!({})))).await,
            Err(Rejection::KeysUnavailable)
        );
    }

    #[tokio::test]
    async fn only_the_listed_subjects_may_call() {
        let signer = Signer::rsa("rsa-signing.pem", "k");
        let server = KeyServer::start(json!([signer.jwk()])).await;
        let mut tokens = tokens(&server.url, Duration::from_secs(3600));
        tokens.subjects = vec![
            "pubsub@project.iam.gserviceaccount.com".into(),
            "112233".into(),
        ];
        let cases = [
            (json!({"email_verified": true}), Ok(())),
            (json!({"email_verified": true, "sub": "999"}), Ok(())),
            (json!({"sub": "112233"}), Ok(())),
            // Anyone can get a Google token for this audience: the caller must be listed.
            (
                json!({"email_verified": true, "email": "me@attacker.iam.gserviceaccount.com", "sub": "1"}),
                Err(Rejection::WrongSubject),
            ),
            // An unverified email is not an identity.
            (json!({}), Err(Rejection::WrongSubject)),
            (
                json!({"email_verified": "true"}),
                Err(Rejection::WrongSubject),
            ),
            (
                json!({"email_verified": false, "sub": "1"}),
                Err(Rejection::WrongSubject),
            ),
        ];
        for (extra, expected) in cases {
            let token = signer.token(claims(extra.clone()));
            assert_eq!(verify(&tokens, &token).await, expected, "{extra}");
        }
    }

    #[tokio::test]
    async fn what_needs_no_keys_is_refused_while_they_cannot_be_fetched() {
        let signer = Signer::rsa("rsa-signing.pem", "k");
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let url = format!("http://{}/certs", listener.local_addr().expect("address"));
        drop(listener);
        let mut tokens = tokens(&url, Duration::from_secs(60));
        tokens.subjects = vec!["pubsub@project.iam.gserviceaccount.com".into()];
        let now = get_current_timestamp();
        let header = r#"{"alg":"RS256","kid":"k"}"#;
        let b64 = |text: &str| {
            use base64::Engine;
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(text)
        };
        let cases = [
            ("a.b.c".to_owned(), Rejection::Malformed),
            (
                format!("{}.{}.c2ln", b64(header), b64("not json")),
                Rejection::Malformed,
            ),
            (
                format!("{}.{}.c2ln", b64(header), b64(r#"{"iss": 1}"#)),
                Rejection::Malformed,
            ),
            (
                signer.token(claims(json!({"exp": now - 120, "email_verified": true}))),
                Rejection::Expired,
            ),
            (
                signer.token(claims(json!({"nbf": now + 600, "email_verified": true}))),
                Rejection::NotYetValid,
            ),
            (
                signer.token(claims(
                    json!({"aud": "https://elsewhere", "email_verified": true}),
                )),
                Rejection::WrongAudience,
            ),
            (
                signer.token(claims(
                    json!({"iss": "https://evil.example", "email_verified": true}),
                )),
                Rejection::WrongIssuer,
            ),
            (signer.token(claims(json!({}))), Rejection::WrongSubject),
            // Only a token that passes everything else needs the keys.
            (
                signer.token(claims(json!({"email_verified": true}))),
                Rejection::KeysUnavailable,
            ),
        ];
        for (token, expected) in cases {
            assert_eq!(verify(&tokens, &token).await, Err(expected), "{token}");
        }
    }

    #[test]
    fn unusable_keys_are_left_out() {
        let document = json!({"keys": [
            {"kty": "oct", "k": "c2VjcmV0", "kid": "hmac"},
            {"kty": "RSA", "use": "enc", "n": "AQAB", "e": "AQAB", "kid": "encryption"},
            {"kty": "EC", "crv": "P-384", "x": "AA", "y": "AA", "kid": "p384"},
        ]});
        assert!(
            read_keys(document.to_string().as_bytes())
                .expect("parses")
                .is_empty()
        );
        assert!(read_keys(b"not json").is_err());
    }
}
