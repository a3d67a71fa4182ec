//! HTTP basic authentication of webhook callers.

use actix_web::HttpRequest;
use actix_web::http::header::Header;
use actix_web_httpauth::headers::authorization::{Authorization, Basic};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::error::ApiError;

/// The expected user and password, kept as SHA-256 digests so that comparing them takes the
/// same time whatever the caller sent, its length included.
pub struct BasicCredentials {
    user: Vec<u8>,
    password: Vec<u8>,
}

impl BasicCredentials {
    pub fn new(user: &str, password: &str) -> Self {
        BasicCredentials {
            user: Sha256::digest(user.as_bytes()).to_vec(),
            password: Sha256::digest(password.as_bytes()).to_vec(),
        }
    }

    pub fn verify(&self, request: &HttpRequest) -> Result<(), ApiError> {
        // Two Authorization headers are ambiguous: refuse rather than pick one.
        let headers = request
            .headers()
            .get_all(actix_web::http::header::AUTHORIZATION);
        if headers.count() != 1 {
            return Err(ApiError::Unauthorized);
        }
        let header = Authorization::<Basic>::parse(request).map_err(|_| ApiError::Unauthorized)?;
        let basic = header.as_ref();
        let password = basic.password().map(|p| p.as_bytes()).unwrap_or_default();
        let user_ok = Sha256::digest(basic.user_id().as_bytes()).ct_eq(&self.user);
        let password_ok = Sha256::digest(password).ct_eq(&self.password);
        if bool::from(user_ok & password_ok) {
            Ok(())
        } else {
            Err(ApiError::Unauthorized)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test::TestRequest;
    use base64::Engine;
    use base64::engine::general_purpose::STANDARD;

    fn request(authorization: Option<&str>) -> HttpRequest {
        let mut request = TestRequest::post();
        if let Some(value) = authorization {
            request = request.insert_header(("Authorization", value));
        }
        request.to_http_request()
    }

    fn basic(user_password: &str) -> String {
        format!("Basic {}", STANDARD.encode(user_password))
    }

    #[test]
    fn accepts_only_the_right_pair() {
        let credentials = BasicCredentials::new("hook", "p:ss");
        assert!(
            credentials
                .verify(&request(Some(&basic("hook:p:ss"))))
                .is_ok()
        );
        for wrong in [
            Some(basic("hook:wrong")),
            Some(basic("other:p:ss")),
            Some(basic("hook")),
            Some(basic(":p:ss")),
            Some("Bearer abc".to_owned()),
            Some("Basic !!!not-base64".to_owned()),
            Some("Basic".to_owned()),
            None,
        ] {
            assert!(
                matches!(
                    credentials.verify(&request(wrong.as_deref())),
                    Err(ApiError::Unauthorized)
                ),
                "{wrong:?}"
            );
        }
    }
}
