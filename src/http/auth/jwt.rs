//! `jwt`: HS256-signed JWTs in `Authorization: Bearer`, with `exp` and `aud` required, `nbf`
//! checked when present, and `iss` when configured. Several secrets may be valid at once. An
//! optional claim (`namespaces` unless configured otherwise) limits the namespaces whose
//! ExternalSecrets the caller may refresh.

use std::collections::BTreeSet;

use actix_web::HttpRequest;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{Map, Value};

use super::{Rejection, bearer_token};
use crate::config::auth::JwtSettings;

/// Clock skew tolerated on `exp` and `nbf`, in seconds.
pub const LEEWAY_SECONDS: u64 = 30;

pub type Claims = Map<String, Value>;

/// What a failed decode means for the caller.
pub fn rejection(error: &jsonwebtoken::errors::Error) -> Rejection {
    match error.kind() {
        ErrorKind::InvalidSignature => Rejection::WrongKey,
        ErrorKind::ExpiredSignature => Rejection::Expired,
        ErrorKind::ImmatureSignature => Rejection::NotYetValid,
        ErrorKind::InvalidAudience => Rejection::WrongAudience,
        ErrorKind::InvalidIssuer => Rejection::WrongIssuer,
        _ => Rejection::Malformed,
    }
}

/// Checks shared by `jwt` and `jwks`.
pub fn validation(algorithms: &[Algorithm], audience: &str, issuer: Option<&str>) -> Validation {
    let mut validation = Validation::new(algorithms[0]);
    validation.algorithms = algorithms.to_vec();
    validation.leeway = LEEWAY_SECONDS;
    validation.validate_nbf = true;
    validation.set_audience(&[audience]);
    let mut required = vec!["exp", "aud"];
    if let Some(issuer) = issuer {
        validation.set_issuer(&[issuer]);
        required.push("iss");
    }
    validation.set_required_spec_claims(&required);
    validation
}

pub struct Hs256Tokens {
    keys: Vec<DecodingKey>,
    validation: Validation,
    namespaces_claim: String,
}

impl Hs256Tokens {
    pub fn new(settings: &JwtSettings) -> Self {
        Hs256Tokens {
            keys: settings
                .secrets
                .iter()
                .map(|s| DecodingKey::from_secret(s.expose().as_bytes()))
                .collect(),
            validation: validation(
                &[Algorithm::HS256],
                &settings.audience,
                settings.issuer.as_deref(),
            ),
            namespaces_claim: settings.namespaces_claim.clone(),
        }
    }

    /// The namespaces the caller is limited to, if its token says.
    pub fn verify(&self, request: &HttpRequest) -> Result<Option<BTreeSet<String>>, Rejection> {
        let token = bearer_token(request)?;
        for key in &self.keys {
            match jsonwebtoken::decode::<Claims>(token, key, &self.validation) {
                Ok(data) => return namespaces(&data.claims, &self.namespaces_claim),
                // The signature is checked first: any other failure is this key's token's.
                Err(error) if *error.kind() == ErrorKind::InvalidSignature => {}
                Err(error) => return Err(rejection(&error)),
            }
        }
        Err(Rejection::WrongKey)
    }
}

/// The claim's namespaces: absent means unrestricted; anything but an array of strings is
/// refused rather than guessed at.
pub fn namespaces(claims: &Claims, claim: &str) -> Result<Option<BTreeSet<String>>, Rejection> {
    match claims.get(claim) {
        None => Ok(None),
        Some(Value::Array(items)) => items
            .iter()
            .map(|item| item.as_str().map(str::to_owned).ok_or(Rejection::Malformed))
            .collect::<Result<BTreeSet<String>, _>>()
            .map(Some),
        Some(_) => Err(Rejection::Malformed),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Secret;
    use actix_web::test::TestRequest;
    use jsonwebtoken::{EncodingKey, Header, encode, get_current_timestamp};
    use serde_json::json;

    fn tokens(issuer: Option<&str>) -> Hs256Tokens {
        Hs256Tokens::new(&JwtSettings {
            secrets: vec![Secret::new("old-secret"), Secret::new("new-secret")],
            audience: "eso-refresher".into(),
            issuer: issuer.map(str::to_owned),
            namespaces_claim: "namespaces".into(),
        })
    }

    fn token(secret: &str, claims: Value) -> String {
        encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(secret.as_bytes()),
        )
        .expect("signs")
    }

    fn claims(extra: Value) -> Value {
        let mut claims = json!({"aud": "eso-refresher", "exp": get_current_timestamp() + 300});
        if let (Some(claims), Some(extra)) = (claims.as_object_mut(), extra.as_object()) {
            claims.extend(extra.clone());
        }
        claims
    }

    fn verify(tokens: &Hs256Tokens, token: &str) -> Result<Option<BTreeSet<String>>, Rejection> {
        let request = TestRequest::post()
            .insert_header(("Authorization", format!("Bearer {token}")))
            .to_http_request();
        tokens.verify(&request)
    }

    #[test]
    fn valid_with_every_secret() {
        let tokens = tokens(None);
        for secret in ["old-secret", "new-secret"] {
            assert_eq!(verify(&tokens, &token(secret, claims(json!({})))), Ok(None));
        }
    }

    #[test]
    fn expired_not_yet_valid_and_wrong_claims() {
        let tokens = tokens(Some("https://issuer.example"));
        let now = get_current_timestamp();
        let iss = json!({"iss": "https://issuer.example"});
        assert_eq!(
            verify(&tokens, &token("new-secret", claims(iss.clone()))),
            Ok(None)
        );
        let cases = [
            (
                json!({"iss": "https://issuer.example", "exp": now - 120}),
                Rejection::Expired,
            ),
            (
                json!({"iss": "https://issuer.example", "nbf": now + 600}),
                Rejection::NotYetValid,
            ),
            (
                json!({"iss": "https://issuer.example", "aud": "someone-else"}),
                Rejection::WrongAudience,
            ),
            (
                json!({"iss": "https://other.example"}),
                Rejection::WrongIssuer,
            ),
            (json!({}), Rejection::Malformed),
        ];
        for (extra, expected) in cases {
            let token = token("new-secret", claims(extra.clone()));
            assert_eq!(verify(&tokens, &token), Err(expected), "{extra}");
        }
        let no_exp = token(
            "new-secret",
            json!({"aud": "eso-refresher", "iss": "https://issuer.example"}),
        );
        assert_eq!(verify(&tokens, &no_exp), Err(Rejection::Malformed));
    }

    #[test]
    fn wrong_key_malformed_and_missing() {
        let tokens = tokens(None);
        assert_eq!(
            verify(&tokens, &token("guess", claims(json!({})))),
            Err(Rejection::WrongKey)
        );
        // Expired and signed with an unknown key: the key is what is wrong.
        let stale = token("guess", claims(json!({"exp": 1})));
        assert_eq!(verify(&tokens, &stale), Err(Rejection::WrongKey));
        for garbled in ["not-a-jwt", "a.b.c", "eyJhbGciOiJub25lIn0.e30."] {
            assert_eq!(
                verify(&tokens, garbled),
                Err(Rejection::Malformed),
                "{garbled}"
            );
        }
        let none = TestRequest::post().to_http_request();
        assert_eq!(tokens.verify(&none), Err(Rejection::Missing));
    }

    #[test]
    fn the_namespaces_claim_limits_the_caller() {
        let tokens = tokens(None);
        let limited = token(
            "new-secret",
            claims(json!({"namespaces": ["team-a", "team-b"]})),
        );
        assert_eq!(
            verify(&tokens, &limited),
            Ok(Some(BTreeSet::from([
                "team-a".to_owned(),
                "team-b".to_owned()
            ])))
        );
        let nothing = token("new-secret", claims(json!({"namespaces": []})));
        assert_eq!(verify(&tokens, &nothing), Ok(Some(BTreeSet::new())));
        for bad in [json!({"namespaces": "team-a"}), json!({"namespaces": [1]})] {
            let token = token("new-secret", claims(bad.clone()));
            assert_eq!(verify(&tokens, &token), Err(Rejection::Malformed), "{bad}");
        }
    }
}
