//! `bearer`: static tokens, in `Authorization: Bearer <token>` or, for senders that can only
//! set a header of their own (an EventBridge API destination's API key, a forwarder's
//! custom header), the whole value of a configured header.
//!
//! Akeyless's webhook forwarder (`--auth-type bearer-token`) is given its token base64-encoded
//! (`--auth-token`, "Base64-encoded Token string"); its documentation does not say whether the
//! gateway sends it decoded or as given. Either way it gets in: a configured token is also
//! accepted in its base64 form (which tells no more than the token itself).

use actix_web::HttpRequest;
use base64::Engine;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::{Rejection, any_matches, bearer_token, single_header};
use crate::config::auth::BearerSettings;

pub struct BearerTokens {
    /// SHA-256 digests of each token and of its base64 form, so that a comparison takes the
    /// same time whatever its length.
    tokens: Vec<[u8; 32]>,
    header: Option<String>,
}

impl BearerTokens {
    pub fn new(settings: &BearerSettings) -> Self {
        BearerTokens {
            tokens: settings
                .tokens
                .iter()
                .flat_map(|t| {
                    let encoded = base64::engine::general_purpose::STANDARD.encode(t.expose());
                    [t.expose().to_owned(), encoded]
                })
                .map(|t| Sha256::digest(t.as_bytes()).into())
                .collect(),
            header: settings.header.clone(),
        }
    }

    pub fn verify(&self, request: &HttpRequest) -> Result<(), Rejection> {
        let token = match &self.header {
            None => bearer_token(request)?,
            Some(name) => single_header(request, name.as_str())?
                .map(str::trim)
                .filter(|t| !t.is_empty())
                .ok_or(Rejection::Missing)?,
        };
        let given: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        any_matches(self.tokens.iter().map(|expected| given.ct_eq(expected)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Secret;
    use actix_web::test::TestRequest;

    fn tokens(header: Option<&str>) -> BearerTokens {
        BearerTokens::new(&BearerSettings {
            tokens: vec![Secret::new("current"), Secret::new("next")],
            header: header.map(str::to_owned),
        })
    }

    fn request(headers: &[(&str, &str)]) -> HttpRequest {
        let mut request = TestRequest::post();
        for header in headers {
            request = request.append_header(*header);
        }
        request.to_http_request()
    }

    #[test]
    fn every_configured_token_is_valid() {
        let tokens = tokens(None);
        for valid in ["Bearer current", "bearer next", "Bearer  next "] {
            assert_eq!(
                tokens.verify(&request(&[("Authorization", valid)])),
                Ok(()),
                "{valid}"
            );
        }
    }

    #[test]
    fn a_token_is_also_accepted_base64_encoded_as_akeyless_is_given_it() {
        let tokens = tokens(None);
        // "current", base64-encoded, as `akeyless event-forwarder create webhook --auth-token`
        // takes it.
        let encoded = request(&[("Authorization", "Bearer Y3VycmVudA==")]);
        assert_eq!(tokens.verify(&encoded), Ok(()));
        let encoded_twice = request(&[("Authorization", "Bearer WTNWeWNtVnVkQT09")]);
        assert_eq!(tokens.verify(&encoded_twice), Err(Rejection::WrongKey));
    }

    #[test]
    fn wrong_missing_and_malformed_tokens() {
        let tokens = tokens(None);
        let cases = [
            (vec![("Authorization", "Bearer wrong")], Rejection::WrongKey),
            (
                vec![("Authorization", "Bearer currentnext")],
                Rejection::WrongKey,
            ),
            (
                vec![("Authorization", "Basic Y3VycmVudA==")],
                Rejection::Missing,
            ),
            (vec![("X-Api-Key", "current")], Rejection::Missing),
            (vec![], Rejection::Missing),
            (vec![("Authorization", "Bearer ")], Rejection::Malformed),
            (
                vec![
                    ("Authorization", "Bearer current"),
                    ("Authorization", "Bearer current"),
                ],
                Rejection::Malformed,
            ),
        ];
        for (headers, expected) in cases {
            assert_eq!(
                tokens.verify(&request(&headers)),
                Err(expected),
                "{headers:?}"
            );
        }
    }

    #[test]
    fn a_configured_header_carries_the_whole_token() {
        let tokens = tokens(Some("x-api-key"));
        assert_eq!(tokens.verify(&request(&[("X-Api-Key", "next")])), Ok(()));
        assert_eq!(
            tokens.verify(&request(&[("X-Api-Key", "Bearer next")])),
            Err(Rejection::WrongKey)
        );
        assert_eq!(
            tokens.verify(&request(&[("Authorization", "Bearer next")])),
            Err(Rejection::Missing)
        );
    }
}
