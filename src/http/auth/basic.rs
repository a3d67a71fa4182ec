//! `basic`: HTTP basic authentication, with several user/password pairs valid at once.

use actix_web::HttpRequest;
use actix_web::http::header::Header;
use actix_web_httpauth::headers::authorization::{Authorization, Basic};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::{Rejection, any_matches, single_header};
use crate::config::auth::BasicPair;

/// The expected pairs, kept as SHA-256 digests so that comparing them takes the same time
/// whatever the caller sent, its length included. Every pair is compared, whichever matches.
pub struct BasicCredentials {
    pairs: Vec<([u8; 32], [u8; 32])>,
}

fn digest(value: &[u8]) -> [u8; 32] {
    Sha256::digest(value).into()
}

impl BasicCredentials {
    pub fn new(pairs: &[BasicPair]) -> Self {
        BasicCredentials {
            pairs: pairs
                .iter()
                .map(|pair| {
                    (
                        digest(pair.user.as_bytes()),
                        digest(pair.password.expose().as_bytes()),
                    )
                })
                .collect(),
        }
    }

    /// The user, when the request's credentials are one of the pairs.
    pub fn verify(&self, request: &HttpRequest) -> Result<String, Rejection> {
        // Two Authorization headers are ambiguous: single_header refuses rather than pick one.
        let Some(value) = single_header(request, actix_web::http::header::AUTHORIZATION)? else {
            return Err(Rejection::Missing);
        };
        if !value
            .get(..6)
            .is_some_and(|s| s.eq_ignore_ascii_case("basic "))
        {
            return Err(Rejection::Missing);
        }
        let header = Authorization::<Basic>::parse(request).map_err(|_| Rejection::Malformed)?;
        let basic = header.as_ref();
        let user = digest(basic.user_id().as_bytes());
        let password = digest(basic.password().map(|p| p.as_bytes()).unwrap_or_default());
        any_matches(
            self.pairs
                .iter()
                .map(|(u, p)| user.ct_eq(u) & password.ct_eq(p)),
        )?;
        Ok(basic.user_id().to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Secret;
    use actix_web::test::TestRequest;
    use base64::Engine;
    use base64::engine::general_purpose::STANDARD;

    fn request(authorization: &[&str]) -> HttpRequest {
        let mut request = TestRequest::post();
        for value in authorization {
            request = request.append_header(("Authorization", *value));
        }
        request.to_http_request()
    }

    fn basic(user_password: &str) -> String {
        format!("Basic {}", STANDARD.encode(user_password))
    }

    fn credentials() -> BasicCredentials {
        BasicCredentials::new(&[
            BasicPair {
                user: "hook".into(),
                password: Secret::new("p:ss"),
            },
            BasicPair {
                user: "hook".into(),
                password: Secret::new("rotated"),
            },
        ])
    }

    #[test]
    fn accepts_every_configured_pair() {
        let credentials = credentials();
        for valid in ["hook:p:ss", "hook:rotated"] {
            assert_eq!(
                credentials.verify(&request(&[&basic(valid)])),
                Ok("hook".to_owned())
            );
        }
    }

    #[test]
    fn wrong_pairs_are_the_wrong_key() {
        let credentials = credentials();
        for wrong in [
            "hook:wrong",
            "other:p:ss",
            "hook:",
            ":p:ss",
            "hook:p:ssrotated",
        ] {
            assert_eq!(
                credentials.verify(&request(&[&basic(wrong)])),
                Err(Rejection::WrongKey),
                "{wrong}"
            );
        }
    }

    #[test]
    fn missing_and_malformed_credentials() {
        let credentials = credentials();
        assert_eq!(credentials.verify(&request(&[])), Err(Rejection::Missing));
        assert_eq!(
            credentials.verify(&request(&["Bearer abc"])),
            Err(Rejection::Missing)
        );
        for malformed in ["Basic !!!not-base64", "Basic aG9vaw=="] {
            assert_eq!(
                credentials.verify(&request(&[malformed])),
                Err(Rejection::Malformed),
                "{malformed}"
            );
        }
        let valid = basic("hook:p:ss");
        assert_eq!(
            credentials.verify(&request(&[&valid, &valid])),
            Err(Rejection::Malformed),
            "two Authorization headers"
        );
    }
}
