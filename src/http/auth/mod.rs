//! Authentication of webhook callers. Each route accepts the schemes configured for it
//! (`WEBHOOK_AUTH`, `WEBHOOK_AUTH_<ROUTE>`); a request passes when any of them accepts it.
//! Schemes that only look at headers decide before the body is read; schemes that sign the
//! body decide once it is read, before it is parsed.

mod basic;
mod bearer;
pub mod client_cert;
mod hmac;
mod jwks;
mod jwt;

use std::collections::BTreeSet;
use std::fmt;
use std::sync::Arc;

use actix_web::HttpRequest;
use actix_web::http::header::HeaderName;

use crate::config::{AuthSettings, Scheme};

pub use basic::BasicCredentials;
pub use bearer::BearerTokens;
pub use client_cert::ClientCertificates;
pub use hmac::{DopplerSignature, InfisicalSignature, TimestampSignature};
pub use jwks::JwksTokens;
pub use jwt::Hs256Tokens;

/// Why one scheme refused a request. Logged by code; never carries the credential.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejection {
    /// The scheme's header is absent.
    Missing,
    /// Present but unreadable: bad syntax, bad encoding, two of a header that must be one.
    Malformed,
    /// No configured key or credential matches.
    WrongKey,
    Expired,
    NotYetValid,
    /// A signed timestamp outside the replay window.
    Replayed,
    WrongAudience,
    WrongIssuer,
    /// A well-signed token from someone not allowed to call (`JWKS_SUBJECTS`).
    WrongSubject,
    /// A token signed by a key the key set does not hold.
    UnknownKey,
    /// The keys to check the token against could not be fetched: not the caller's fault.
    KeysUnavailable,
    /// A certificate not issued by a trusted CA (or otherwise not valid for a client).
    Untrusted,
}

impl Rejection {
    pub fn code(self) -> &'static str {
        match self {
            Rejection::Missing => "missing",
            Rejection::Malformed => "malformed",
            Rejection::WrongKey => "wrong_key",
            Rejection::Expired => "expired",
            Rejection::NotYetValid => "not_yet_valid",
            Rejection::Replayed => "replayed",
            Rejection::WrongAudience => "wrong_audience",
            Rejection::WrongIssuer => "wrong_issuer",
            Rejection::WrongSubject => "wrong_subject",
            Rejection::UnknownKey => "unknown_key",
            Rejection::KeysUnavailable => "keys_unavailable",
            Rejection::Untrusted => "untrusted",
        }
    }
}

/// Who was let in, and what it may refresh.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub scheme: Scheme,
    /// `Some`: only ExternalSecrets in these namespaces (a JWT's namespaces claim).
    pub namespaces: Option<BTreeSet<String>>,
    /// Who the scheme names: the basic-auth user, or the client certificate's subject. Never a
    /// password, token or signature.
    pub principal: Option<String>,
}

impl Caller {
    fn unrestricted(scheme: Scheme) -> Self {
        Caller {
            scheme,
            namespaces: None,
            principal: None,
        }
    }
}

/// Every scheme of a route refused the request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub rejections: Vec<(Scheme, Rejection)>,
    /// The `WWW-Authenticate` value naming the route's schemes.
    pub challenge: String,
}

impl Refusal {
    /// The refusal is the server's, not the caller's: the keys were needed to decide and could
    /// not be fetched, and no other scheme found credentials it refused. A token refused on
    /// grounds that need no keys never gets here (see `jwks`), so junk is still a 401.
    pub fn is_unavailable(&self) -> bool {
        let mut needed_keys = false;
        for (_, rejection) in &self.rejections {
            match rejection {
                Rejection::KeysUnavailable => needed_keys = true,
                Rejection::Missing => {}
                _ => return false,
            }
        }
        needed_keys
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self
            .rejections
            .iter()
            .map(|(scheme, rejection)| format!("{scheme}: {}", rejection.code()))
            .collect();
        f.write_str(&parts.join(", "))
    }
}

/// The outcome of the checks made before the body is read.
pub enum BeforeBody {
    Accepted(Caller),
    /// A body-signing scheme's header is present: read the body, then call `with_body`.
    NeedsBody(Vec<(Scheme, Rejection)>),
}

pub struct Authenticator {
    settings: AuthSettings,
    basic: BasicCredentials,
    bearer: BearerTokens,
    jwt: Option<Hs256Tokens>,
    jwks: Option<JwksTokens>,
    doppler: DopplerSignature,
    infisical: InfisicalSignature,
    hmac: TimestampSignature,
    client_cert: ClientCertificates,
}

impl Authenticator {
    /// `client_cas`: the verifier of `TLS_CLIENT_CA_FILE`'s CAs, when the listener asks for
    /// client certificates.
    pub fn new(
        settings: &AuthSettings,
        client_cas: Option<Arc<dyn rustls::server::danger::ClientCertVerifier>>,
    ) -> Self {
        Authenticator {
            client_cert: ClientCertificates::new(settings.client_cert.as_ref(), client_cas),
            basic: BasicCredentials::new(&settings.basic),
            bearer: BearerTokens::new(&settings.bearer),
            jwt: settings.jwt.as_ref().map(Hs256Tokens::new),
            jwks: settings.jwks.as_ref().map(JwksTokens::new),
            doppler: DopplerSignature::new(&settings.doppler_secrets),
            infisical: InfisicalSignature::new(&settings.infisical_secrets, settings.replay_window),
            hmac: TimestampSignature::new(&settings.hmac_secrets, settings.replay_window),
            settings: settings.clone(),
        }
    }

    /// The schemes of a route: a provider's name, or `None` for `/webhook`.
    pub fn schemes(&self, route: Option<&str>) -> &[Scheme] {
        self.settings.schemes_for(route)
    }

    /// The `WWW-Authenticate` value for a route: one challenge per kind of scheme it accepts.
    pub fn challenge(&self, route: Option<&str>) -> String {
        let mut challenges: Vec<String> = Vec::new();
        for scheme in self.schemes(route) {
            let challenge = match scheme {
                Scheme::Basic => r#"Basic realm="eso-refresher", charset="UTF-8""#.to_owned(),
                Scheme::Bearer | Scheme::Jwt | Scheme::Jwks => {
                    r#"Bearer realm="eso-refresher""#.to_owned()
                }
                Scheme::ClientCert => r#"TLS-Client-Certificate realm="eso-refresher""#.to_owned(),
                signed => format!(r#"Signature realm="eso-refresher", scheme="{signed}""#),
            };
            if !challenges.contains(&challenge) {
                challenges.push(challenge);
            }
        }
        challenges.join(", ")
    }

    fn refuse(&self, route: Option<&str>, rejections: Vec<(Scheme, Rejection)>) -> Refusal {
        Refusal {
            rejections,
            challenge: self.challenge(route),
        }
    }

    /// Tries the route's header-only schemes. When none accepts, the body is worth reading
    /// only if a body-signing scheme of the route finds its header.
    pub async fn before_body(
        &self,
        request: &HttpRequest,
        route: Option<&str>,
    ) -> Result<BeforeBody, Refusal> {
        let mut rejections = Vec::new();
        let mut signed = false;
        for &scheme in self.schemes(route) {
            let named = |principal: Option<String>| Caller {
                principal,
                ..Caller::unrestricted(scheme)
            };
            let outcome = match scheme {
                Scheme::Basic => self.basic.verify(request).map(|user| named(Some(user))),
                Scheme::Bearer => self.bearer.verify(request).map(|()| named(None)),
                Scheme::ClientCert => self.client_cert.verify(request).map(named),
                Scheme::Jwt => match &self.jwt {
                    Some(jwt) => jwt.verify(request).map(|namespaces| Caller {
                        namespaces,
                        ..named(None)
                    }),
                    None => Err(Rejection::KeysUnavailable),
                },
                Scheme::Jwks => match &self.jwks {
                    Some(jwks) => jwks.verify(request).await.map(|()| named(None)),
                    None => Err(Rejection::KeysUnavailable),
                },
                Scheme::HmacDoppler | Scheme::HmacInfisical | Scheme::Hmac => {
                    let header = match scheme {
                        Scheme::HmacDoppler => hmac::DOPPLER_HEADER,
                        Scheme::HmacInfisical => hmac::INFISICAL_HEADER,
                        _ => hmac::SIGNATURE_HEADER,
                    };
                    if request.headers().contains_key(header) {
                        signed = true;
                        continue;
                    }
                    Err(Rejection::Missing)
                }
            };
            match outcome {
                Ok(caller) => return Ok(BeforeBody::Accepted(caller)),
                Err(rejection) => rejections.push((scheme, rejection)),
            }
        }
        if signed {
            Ok(BeforeBody::NeedsBody(rejections))
        } else {
            Err(self.refuse(route, rejections))
        }
    }

    /// Tries the route's body-signing schemes on the raw body.
    pub fn with_body(
        &self,
        request: &HttpRequest,
        body: &[u8],
        route: Option<&str>,
        mut rejections: Vec<(Scheme, Rejection)>,
    ) -> Result<Caller, Refusal> {
        for &scheme in self.schemes(route) {
            let outcome = match scheme {
                Scheme::HmacDoppler => self.doppler.verify(request, body),
                Scheme::HmacInfisical => self.infisical.verify(request, body),
                Scheme::Hmac => self.hmac.verify(request, body),
                _ => continue,
            };
            match outcome {
                Ok(()) => return Ok(Caller::unrestricted(scheme)),
                Err(rejection) => rejections.push((scheme, rejection)),
            }
        }
        Err(self.refuse(route, rejections))
    }
}

/// Accepts when any of the constant-time comparisons matched; every one is made, whichever
/// matches, so the time taken does not tell which.
pub(crate) fn any_matches(
    comparisons: impl Iterator<Item = subtle::Choice>,
) -> Result<(), Rejection> {
    let matched = comparisons.fold(subtle::Choice::from(0), |any, this| any | this);
    if bool::from(matched) {
        Ok(())
    } else {
        Err(Rejection::WrongKey)
    }
}

/// A header that must appear at most once, as text.
pub(crate) fn single_header(
    request: &HttpRequest,
    name: impl TryInto<HeaderName>,
) -> Result<Option<&str>, Rejection> {
    let Ok(name) = name.try_into() else {
        return Err(Rejection::Malformed);
    };
    let mut values = request.headers().get_all(name);
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(Rejection::Malformed);
    }
    value.to_str().map(Some).map_err(|_| Rejection::Malformed)
}

/// The token of `Authorization: Bearer <token>`.
pub(crate) fn bearer_token(request: &HttpRequest) -> Result<&str, Rejection> {
    let value = single_header(request, actix_web::http::header::AUTHORIZATION)?
        .ok_or(Rejection::Missing)?;
    let (scheme, token) = value.split_once(' ').ok_or(Rejection::Missing)?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(Rejection::Missing);
    }
    let token = token.trim();
    if token.is_empty() {
        return Err(Rejection::Malformed);
    }
    Ok(token)
}

/// Lower-case hex to bytes; `None` for anything else.
pub(crate) fn from_hex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    let digit = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    };
    text.as_bytes()
        .chunks(2)
        .map(|pair| Some(digit(pair[0])? << 4 | digit(pair[1])?))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Secret;
    use crate::config::auth::BearerSettings;
    use actix_web::test::TestRequest;

    fn authenticator() -> Authenticator {
        let mut settings = AuthSettings::basic("hook", "pw");
        settings.bearer = BearerSettings {
            tokens: vec![Secret::new("token")],
            header: None,
        };
        settings.hmac_secrets = vec![Secret::new("key")];
        settings.routes.insert("aws".into(), vec![Scheme::Bearer]);
        settings
            .routes
            .insert("generic".into(), vec![Scheme::Basic, Scheme::Hmac]);
        Authenticator::new(&settings, None)
    }

    fn run<T>(future: impl std::future::Future<Output = T>) -> T {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime")
            .block_on(future)
    }

    #[test]
    fn each_route_tries_its_own_schemes() {
        let auth = authenticator();
        let bearer = TestRequest::post()
            .insert_header(("Authorization", "Bearer token"))
            .to_http_request();
        let accepted = run(auth.before_body(&bearer, Some("aws")));
        assert!(matches!(
            accepted,
            Ok(BeforeBody::Accepted(Caller {
                scheme: Scheme::Bearer,
                namespaces: None,
                principal: None
            }))
        ));
        let refused = run(auth.before_body(&bearer, None)).err().expect("refused");
        assert_eq!(refused.rejections, [(Scheme::Basic, Rejection::Missing)]);
        assert_eq!(refused.to_string(), "basic: missing");
        assert!(refused.challenge.starts_with("Basic realm="));
    }

    #[test]
    fn the_body_is_read_only_when_a_signature_header_is_present() {
        let auth = authenticator();
        let unsigned = TestRequest::post().to_http_request();
        let refused = run(auth.before_body(&unsigned, Some("generic")))
            .err()
            .expect("refused before the body");
        assert_eq!(
            refused.rejections,
            [
                (Scheme::Basic, Rejection::Missing),
                (Scheme::Hmac, Rejection::Missing)
            ]
        );
        assert_eq!(
            refused.challenge,
            r#"Basic realm="eso-refresher", charset="UTF-8", Signature realm="eso-refresher", scheme="hmac""#
        );
        let signed = TestRequest::post()
            .insert_header(("X-Signature", "sha256=00"))
            .to_http_request();
        let Ok(BeforeBody::NeedsBody(so_far)) = run(auth.before_body(&signed, Some("generic")))
        else {
            panic!("the body is needed");
        };
        let refused = auth
            .with_body(&signed, b"{}", Some("generic"), so_far)
            .expect_err("bad signature");
        assert_eq!(
            refused.rejections,
            [
                (Scheme::Basic, Rejection::Missing),
                (Scheme::Hmac, Rejection::Malformed)
            ]
        );
    }

    #[test]
    fn only_keys_needed_to_decide_make_a_refusal_the_servers() {
        let refusal = |rejections: &[(Scheme, Rejection)]| Refusal {
            rejections: rejections.to_vec(),
            challenge: String::new(),
        };
        let unavailable = (Scheme::Jwks, Rejection::KeysUnavailable);
        assert!(refusal(&[unavailable]).is_unavailable());
        assert!(refusal(&[(Scheme::Basic, Rejection::Missing), unavailable]).is_unavailable());
        // Another scheme saw credentials and refused them: the caller's fault.
        assert!(!refusal(&[(Scheme::Bearer, Rejection::WrongKey), unavailable]).is_unavailable());
        assert!(!refusal(&[unavailable, (Scheme::Hmac, Rejection::Malformed)]).is_unavailable());
        assert!(!refusal(&[(Scheme::Jwks, Rejection::Malformed)]).is_unavailable());
        assert!(!refusal(&[(Scheme::Basic, Rejection::Missing)]).is_unavailable());
    }

    #[test]
    fn hex() {
        assert_eq!(from_hex("00ff10Ab"), Some(vec![0, 255, 16, 171]));
        assert_eq!(from_hex("abc"), None);
        assert_eq!(from_hex("zz"), None);
    }
}
