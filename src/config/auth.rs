//! Caller authentication settings: which schemes each webhook route accepts, and the
//! credentials of each scheme. Several credentials of a kind may be valid at once, so that
//! they can be rotated without a moment where the sender's old or new one is refused.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use clap::Args;

use super::ConfigError;
use super::parse::{self, Refusal, Setting, refuse};
use crate::senders::Provider;

pub const DEFAULT_REPLAY_WINDOW: Duration = Duration::from_secs(60);
pub const DEFAULT_NAMESPACES_CLAIM: &str = "namespaces";

/// The variable that sets the schemes of every route; `WEBHOOK_AUTH_<ROUTE>` overrides it.
pub const WEBHOOK_AUTH: &str = "WEBHOOK_AUTH";

/// One way a caller may prove who it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Scheme {
    Basic,
    Bearer,
    Jwt,
    Jwks,
    HmacDoppler,
    HmacInfisical,
    Hmac,
    ClientCert,
}

impl Scheme {
    pub const ALL: [Scheme; 8] = [
        Scheme::Basic,
        Scheme::Bearer,
        Scheme::Jwt,
        Scheme::Jwks,
        Scheme::HmacDoppler,
        Scheme::HmacInfisical,
        Scheme::Hmac,
        Scheme::ClientCert,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Scheme::Basic => "basic",
            Scheme::Bearer => "bearer",
            Scheme::Jwt => "jwt",
            Scheme::Jwks => "jwks",
            Scheme::HmacDoppler => "hmac-doppler",
            Scheme::HmacInfisical => "hmac-infisical",
            Scheme::Hmac => "hmac",
            Scheme::ClientCert => "client-cert",
        }
    }

    pub fn from_name(name: &str) -> Option<Scheme> {
        Scheme::ALL
            .into_iter()
            .find(|s| s.name().eq_ignore_ascii_case(name))
    }
}

impl fmt::Display for Scheme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A credential: compared, never shown.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BasicPair {
    pub user: String,
    pub password: Secret,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BearerSettings {
    pub tokens: Vec<Secret>,
    /// `None`: `Authorization: Bearer <token>`; otherwise the whole value of this header.
    pub header: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JwtSettings {
    pub secrets: Vec<Secret>,
    pub audience: String,
    pub issuer: Option<String>,
    /// The claim that, when present, lists the namespaces the caller may refresh.
    pub namespaces_claim: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JwksSettings {
    pub url: String,
    pub issuer: String,
    pub audience: String,
    pub cache_ttl: Duration,
    /// `JWKS_SUBJECTS`: the `email` (verified) or `sub` values allowed to call; empty: any.
    pub subjects: Vec<String>,
}

/// Google's ID-token issuer, in both spellings it uses. Anyone with a Google account can get a
/// Google-signed token for any audience, so with this issuer the callers must be named.
pub fn is_google_issuer(issuer: &str) -> bool {
    let issuer = issuer.trim().trim_end_matches('/').to_ascii_lowercase();
    issuer == "https://accounts.google.com" || issuer == "accounts.google.com"
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthSettings {
    /// The schemes of `/webhook` and of every route without a setting of its own.
    pub default: Vec<Scheme>,
    /// Per provider route (`/webhook/<name>`), by name.
    pub routes: BTreeMap<String, Vec<Scheme>>,
    pub basic: Vec<BasicPair>,
    pub bearer: BearerSettings,
    pub jwt: Option<JwtSettings>,
    pub jwks: Option<JwksSettings>,
    pub doppler_secrets: Vec<Secret>,
    pub infisical_secrets: Vec<Secret>,
    pub hmac_secrets: Vec<Secret>,
    /// How old (or how far in the future) a signed timestamp may be.
    pub replay_window: Duration,
    pub client_cert: Option<ClientCertSettings>,
    /// Whether the listener serves TLS, which `client-cert` needs.
    pub tls: bool,
}

/// `client-cert`: TLS client certificates issued by these CAs, naming one of these subjects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientCertSettings {
    /// `TLS_CLIENT_CA_FILE`: a PEM bundle of the CAs whose client certificates are accepted.
    pub ca_file: std::path::PathBuf,
    /// `CLIENT_CERT_SUBJECTS`: the subject CNs or DNS SANs allowed; empty: any the CAs issued.
    pub subjects: Vec<String>,
}

impl AuthSettings {
    /// Basic auth with one pair on every route (what the service did before schemes).
    pub fn basic(user: &str, password: &str) -> Self {
        AuthSettings {
            default: vec![Scheme::Basic],
            routes: BTreeMap::new(),
            basic: vec![BasicPair {
                user: user.to_owned(),
                password: Secret::new(password),
            }],
            bearer: BearerSettings {
                tokens: Vec::new(),
                header: None,
            },
            jwt: None,
            jwks: None,
            doppler_secrets: Vec::new(),
            infisical_secrets: Vec::new(),
            hmac_secrets: Vec::new(),
            replay_window: DEFAULT_REPLAY_WINDOW,
            client_cert: None,
            tls: false,
        }
    }

    /// The schemes a route accepts; `None` is `/webhook` itself.
    pub fn schemes_for(&self, route: Option<&str>) -> &[Scheme] {
        route
            .and_then(|name| self.routes.get(name))
            .unwrap_or(&self.default)
    }

    /// Every scheme some route uses.
    pub fn schemes_in_use(&self) -> Vec<Scheme> {
        let mut used: Vec<Scheme> = self
            .routes
            .values()
            .chain(std::iter::once(&self.default))
            .flatten()
            .copied()
            .collect();
        used.sort();
        used.dedup();
        used
    }
}

/// The per-route variable of a provider route: `WEBHOOK_AUTH_<NAME>`.
pub fn route_variable(route: &str) -> String {
    format!(
        "{WEBHOOK_AUTH}_{}",
        route.to_ascii_uppercase().replace('-', "_")
    )
}

/// The `WEBHOOK_AUTH_<ROUTE>` variables among `vars`: named after the routes, they are found by
/// their prefix.
pub fn route_settings(vars: impl IntoIterator<Item = (String, String)>) -> Vec<(String, String)> {
    let prefix = format!("{WEBHOOK_AUTH}_");
    vars.into_iter()
        .filter(|(name, _)| name.starts_with(&prefix))
        .collect()
}

/// The process's `WEBHOOK_AUTH_<ROUTE>` variables. Those that are not Unicode cannot be ours.
fn routes_from_env() -> Vec<(String, String)> {
    route_settings(
        std::env::vars_os().filter_map(|(name, value)| {
            Some((name.into_string().ok()?, value.into_string().ok()?))
        }),
    )
}

/// Webhook authentication: which schemes each route accepts, and each scheme's credentials.
/// Credentials are typed [`Secret`], so that they never show.
#[derive(Args, Debug, Clone)]
#[command(next_help_heading = "Webhook authentication")]
pub struct AuthArgs {
    /// User webhook callers must send with HTTP basic auth. Required, with BASIC_AUTH_PASSWORD
    /// (or BASIC_AUTH_CREDENTIALS), while any route uses basic (the default).
    #[arg(long, env = "BASIC_AUTH_USER", default_value = "", value_parser = Setting(parse::text))]
    basic_auth_user: std::option::Option<String>,

    /// Password webhook callers must send with BASIC_AUTH_USER.
    #[arg(long, env = "BASIC_AUTH_PASSWORD", default_value = "", hide_env_values = true,
        value_parser = Setting(password))]
    basic_auth_password: std::option::Option<Secret>,

    /// More user:password pairs accepted, comma-separated (a password may hold ":" but not
    /// ","), so that a sender's credentials can be rotated.
    #[arg(long, env = "BASIC_AUTH_CREDENTIALS", default_value = "", hide_env_values = true,
        value_parser = Setting(credentials))]
    basic_auth_credentials: std::vec::Vec<BasicPair>,

    /// How webhook callers authenticate: comma-separated schemes, any of which lets a request
    /// in (basic, bearer, jwt, jwks, hmac-doppler, hmac-infisical, hmac). Applies to every
    /// webhook route; WEBHOOK_AUTH_<ROUTE> (e.g. WEBHOOK_AUTH_GCP) sets one route's own.
    #[arg(long, env = "WEBHOOK_AUTH", default_value = "basic", value_parser = Setting(schemes))]
    webhook_auth: std::vec::Vec<Scheme>,

    /// The `WEBHOOK_AUTH_<ROUTE>` variables, by name: one a provider route.
    #[arg(skip = routes_from_env())]
    pub(super) per_route: Vec<(String, String)>,

    /// bearer: static tokens, comma-separated, compared in constant time.
    #[arg(long, env = "BEARER_TOKENS", default_value = "", hide_env_values = true,
        value_parser = Setting(secrets))]
    bearer_tokens: std::vec::Vec<Secret>,

    /// bearer: the header that carries the token. Empty or Authorization: "Authorization:
    /// Bearer <token>"; any other (e.g. X-Api-Key): the whole value of that header.
    #[arg(long, env = "BEARER_TOKEN_HEADER", default_value = "", value_parser = Setting(header))]
    bearer_token_header: std::option::Option<String>,

    /// jwt: HS256 secrets, comma-separated, any of which may have signed the caller's token.
    #[arg(long, env = "JWT_HS256_SECRETS", default_value = "", hide_env_values = true,
        value_parser = Setting(secrets))]
    jwt_hs256_secrets: std::vec::Vec<Secret>,

    /// jwt: the audience the token's aud claim must name.
    #[arg(long, env = "JWT_AUDIENCE", default_value = "", value_parser = Setting(parse::text))]
    jwt_audience: std::option::Option<String>,

    /// jwt: the issuer the token's iss claim must name; empty: not checked.
    #[arg(long, env = "JWT_ISSUER", default_value = "", value_parser = Setting(parse::text))]
    jwt_issuer: std::option::Option<String>,

    /// jwt: the claim that, when a token carries it, lists the only namespaces the caller may
    /// refresh.
    #[arg(long, env = "JWT_NAMESPACES_CLAIM", default_value = DEFAULT_NAMESPACES_CLAIM,
        value_parser = Setting(|text| Ok(text.trim().to_owned())))]
    jwt_namespaces_claim: String,

    /// hmac-doppler: Doppler webhook signing secrets, comma-separated.
    #[arg(long, env = "DOPPLER_WEBHOOK_SECRETS", default_value = "", hide_env_values = true,
        value_parser = Setting(secrets))]
    doppler_webhook_secrets: std::vec::Vec<Secret>,

    /// hmac-infisical: Infisical webhook secret keys, comma-separated.
    #[arg(long, env = "INFISICAL_WEBHOOK_SECRETS", default_value = "", hide_env_values = true,
        value_parser = Setting(secrets))]
    infisical_webhook_secrets: std::vec::Vec<Secret>,

    /// hmac: secrets, comma-separated, for senders that sign "<timestamp>.<body>" with
    /// HMAC-SHA256.
    #[arg(long, env = "HMAC_SECRETS", default_value = "", hide_env_values = true,
        value_parser = Setting(secrets))]
    hmac_secrets: std::vec::Vec<Secret>,

    /// hmac and hmac-infisical: how far a signed time may be from now, either way, Go duration.
    #[arg(long, env = "REPLAY_WINDOW", default_value = "60s",
        value_parser = Setting(parse::positive_duration))]
    replay_window: Duration,

    /// jwks: the URL of the JSON Web Key Set whose keys sign the callers' tokens. Required,
    /// with JWKS_ISSUER and JWKS_AUDIENCE, when jwks is used.
    #[arg(long, env = "JWKS_URL", default_value = "", value_parser = Setting(jwks_url))]
    jwks_url: std::option::Option<String>,

    /// jwks: the issuer the tokens' iss claim must name.
    #[arg(long, env = "JWKS_ISSUER", default_value = "", value_parser = Setting(parse::text))]
    jwks_issuer: std::option::Option<String>,

    /// jwks: the audience the tokens' aud claim must name.
    #[arg(long, env = "JWKS_AUDIENCE", default_value = "", value_parser = Setting(parse::text))]
    jwks_audience: std::option::Option<String>,

    /// jwks: how long fetched keys are used before the set is fetched again, Go duration.
    #[arg(long, env = "JWKS_CACHE_TTL", default_value = "1h",
        value_parser = Setting(parse::duration))]
    jwks_cache_ttl: Duration,

    /// jwks: comma-separated email (verified) or sub values allowed to call; empty: any.
    /// Required with Google's issuer, which signs tokens for any audience to anyone.
    #[arg(long, env = "JWKS_SUBJECTS", default_value = "", value_parser = Setting(parse::list))]
    jwks_subjects: std::vec::Vec<String>,

    /// client-cert: a PEM bundle of the CAs whose client certificates are accepted (needs
    /// TLS_CERT_FILE and TLS_KEY_FILE).
    #[arg(long, env = "TLS_CLIENT_CA_FILE", default_value = "", value_parser = Setting(parse::path))]
    tls_client_ca_file: std::option::Option<std::path::PathBuf>,

    /// client-cert: comma-separated subject CNs or DNS SANs allowed to call; empty: any
    /// certificate the CAs issued.
    #[arg(long, env = "CLIENT_CERT_SUBJECTS", default_value = "", value_parser = Setting(parse::list))]
    client_cert_subjects: std::vec::Vec<String>,
}

/// A password, taken as given; empty is unset.
fn password(text: &str) -> Result<Option<Secret>, Refusal> {
    Ok((!text.is_empty()).then(|| Secret::new(text)))
}

/// A comma-separated list of credentials, blanks dropped.
fn secrets(text: &str) -> Result<Vec<Secret>, Refusal> {
    Ok(parse::items(text).map(Secret::new).collect())
}

fn credentials(text: &str) -> Result<Vec<BasicPair>, Refusal> {
    parse::items(text)
        .map(|pair| match pair.split_once(':') {
            Some((user, password)) if !user.is_empty() && !password.is_empty() => Ok(BasicPair {
                user: user.to_owned(),
                password: Secret::new(password),
            }),
            // The value holds a password: never echo it.
            _ => Err(refuse(
                "<redacted>",
                "expected a comma-separated list of user:password pairs",
            )),
        })
        .collect()
}

fn schemes(text: &str) -> Result<Vec<Scheme>, Refusal> {
    let mut list = Vec::new();
    for item in parse::items(text) {
        let scheme = Scheme::from_name(item).ok_or_else(|| {
            let known: Vec<&str> = Scheme::ALL.iter().map(|s| s.name()).collect();
            refuse(
                item,
                format!("expected a comma-separated list of {}", known.join(", ")),
            )
        })?;
        if !list.contains(&scheme) {
            list.push(scheme);
        }
    }
    if list.is_empty() {
        return Err(refuse(text.trim(), "expected at least one scheme"));
    }
    Ok(list)
}

/// A header name, lower-case; Authorization is the default, spelled as unset.
fn header(text: &str) -> Result<Option<String>, Refusal> {
    let header = parse::text(text)?.filter(|h| !h.eq_ignore_ascii_case("authorization"));
    if let Some(name) = &header
        && actix_web::http::header::HeaderName::try_from(name.as_str()).is_err()
    {
        return Err(refuse(name, "expected an HTTP header name"));
    }
    Ok(header.map(|h| h.to_ascii_lowercase()))
}

fn jwks_url(text: &str) -> Result<Option<String>, Refusal> {
    let url = parse::text(text)?;
    match url {
        Some(url) if !(url.starts_with("https://") || url.starts_with("http://")) => {
            Err(refuse(&url, "expected an http(s) URL"))
        }
        url => Ok(url),
    }
}

/// A scheme some route uses, without what it needs: one line saying which variables to set.
fn lacking(scheme: Scheme, used_by: &str, needs: &str) -> ConfigError {
    ConfigError::SchemeWithoutCredentials {
        scheme: scheme.name(),
        used_by: used_by.to_owned(),
        needs: needs.to_owned(),
    }
}

impl AuthArgs {
    /// Checks the settings against each other: the routes named, and that every scheme in use
    /// has its credentials (`tls`: whether the listener serves TLS).
    pub fn read(self, tls: bool) -> Result<AuthSettings, ConfigError> {
        if self.tls_client_ca_file.is_some() && !tls {
            return Err(ConfigError::invalid(
                "TLS_CLIENT_CA_FILE",
                "",
                "client certificates come over TLS: set TLS_CERT_FILE and TLS_KEY_FILE",
            ));
        }
        let mut routes = BTreeMap::new();
        for (variable, value) in self.per_route {
            if value.trim().is_empty() {
                continue;
            }
            let Some(provider) = Provider::ALL
                .into_iter()
                .find(|p| route_variable(p.name()) == variable)
            else {
                let names: Vec<&str> = Provider::ALL.iter().map(|p| p.name()).collect();
                return Err(ConfigError::UnknownRoute {
                    variable,
                    routes: names.join(", "),
                });
            };
            let list = schemes(&value).map_err(|refusal| ConfigError::InvalidRoute {
                variable: variable.clone(),
                value: refusal.value,
                expected: refusal.expected,
            })?;
            routes.insert(provider.name().to_owned(), list);
        }

        let mut basic = Vec::new();
        match (self.basic_auth_user, self.basic_auth_password) {
            (Some(user), Some(password)) => basic.push(BasicPair { user, password }),
            (None, None) => {}
            (None, Some(_)) => {
                return Err(ConfigError::MissingCredentials("BASIC_AUTH_USER".into()));
            }
            (Some(_), None) => {
                return Err(ConfigError::MissingCredentials(
                    "BASIC_AUTH_PASSWORD".into(),
                ));
            }
        }
        basic.extend(self.basic_auth_credentials);

        let jwt = match (self.jwt_hs256_secrets.is_empty(), self.jwt_audience) {
            (false, Some(audience)) => Some(JwtSettings {
                secrets: self.jwt_hs256_secrets,
                audience,
                issuer: self.jwt_issuer,
                namespaces_claim: self.jwt_namespaces_claim,
            }),
            _ => None,
        };
        let jwks = match (self.jwks_url, self.jwks_issuer, self.jwks_audience) {
            (Some(url), Some(issuer), Some(audience)) => Some(JwksSettings {
                url,
                issuer,
                audience,
                cache_ttl: self.jwks_cache_ttl,
                subjects: self.jwks_subjects,
            }),
            _ => None,
        };

        let mut settings = AuthSettings {
            default: self.webhook_auth,
            routes,
            basic,
            bearer: BearerSettings {
                tokens: self.bearer_tokens,
                header: self.bearer_token_header,
            },
            jwt,
            jwks,
            doppler_secrets: self.doppler_webhook_secrets,
            infisical_secrets: self.infisical_webhook_secrets,
            hmac_secrets: self.hmac_secrets,
            replay_window: self.replay_window,
            client_cert: self.tls_client_ca_file.map(|ca_file| ClientCertSettings {
                ca_file,
                subjects: self.client_cert_subjects,
            }),
            tls,
        };
        settings.check_credentials()?;
        settings.add_senders_own_schemes();
        Ok(settings)
    }
}

impl AuthSettings {
    /// Every scheme in use has its credentials.
    fn check_credentials(&self) -> Result<(), ConfigError> {
        for scheme in self.schemes_in_use() {
            let used_by = self.users_of(scheme);
            let Some(needs) = self.lacks(scheme) else {
                continue;
            };
            // The message callers of the original tool know.
            let original = used_by == WEBHOOK_AUTH && self.default == [Scheme::Basic];
            if scheme == Scheme::Basic && original {
                return Err(ConfigError::MissingCredentials(
                    "BASIC_AUTH_USER and BASIC_AUTH_PASSWORD".into(),
                ));
            }
            return Err(lacking(scheme, &used_by, needs));
        }
        Ok(())
    }

    /// The routes without a setting of their own also accept the schemes their sender signs
    /// with, once those schemes' secrets are set (`DOPPLER_WEBHOOK_SECRETS` alone lets Doppler's
    /// signed requests into `/webhook/doppler`).
    fn add_senders_own_schemes(&mut self) {
        for provider in Provider::ALL {
            if self.routes.contains_key(provider.name()) {
                continue;
            }
            let own = provider
                .default_auth()
                .iter()
                .filter_map(|s| Scheme::from_name(s));
            let mut schemes = self.default.clone();
            for scheme in own.filter(|s| self.lacks(*s).is_none()) {
                if !schemes.contains(&scheme) {
                    schemes.push(scheme);
                }
            }
            if schemes != self.default {
                self.routes.insert(provider.name().to_owned(), schemes);
            }
        }
    }

    /// The variables a scheme needs and lacks, if it lacks any.
    fn lacks(&self, scheme: Scheme) -> Option<&'static str> {
        match scheme {
            Scheme::Basic if self.basic.is_empty() => {
                Some("BASIC_AUTH_USER and BASIC_AUTH_PASSWORD (or BASIC_AUTH_CREDENTIALS)")
            }
            Scheme::Bearer if self.bearer.tokens.is_empty() => Some("BEARER_TOKENS"),
            Scheme::Jwt if self.jwt.is_none() => Some("JWT_HS256_SECRETS and JWT_AUDIENCE"),
            Scheme::Jwks if self.jwks.is_none() => Some("JWKS_URL, JWKS_ISSUER and JWKS_AUDIENCE"),
            Scheme::Jwks
                if self.jwks.as_ref().is_some_and(|jwks| {
                    is_google_issuer(&jwks.issuer) && jwks.subjects.is_empty()
                }) =>
            {
                Some(
                    "JWKS_SUBJECTS (the service-account emails allowed to call; with Google's \
                         issuer anyone can get a token for any audience)",
                )
            }
            Scheme::HmacDoppler if self.doppler_secrets.is_empty() => {
                Some("DOPPLER_WEBHOOK_SECRETS")
            }
            Scheme::HmacInfisical if self.infisical_secrets.is_empty() => {
                Some("INFISICAL_WEBHOOK_SECRETS")
            }
            Scheme::Hmac if self.hmac_secrets.is_empty() => Some("HMAC_SECRETS"),
            Scheme::ClientCert if !self.tls => {
                Some("TLS_CERT_FILE and TLS_KEY_FILE (client certificates come over TLS)")
            }
            Scheme::ClientCert if self.client_cert.is_none() => Some("TLS_CLIENT_CA_FILE"),
            _ => None,
        }
    }

    /// The variables that put `scheme` in use, for error messages.
    fn users_of(&self, scheme: Scheme) -> String {
        let mut users = Vec::new();
        let default_applies = self.routes.len() < Provider::ALL.len();
        if default_applies && self.default.contains(&scheme) {
            users.push(WEBHOOK_AUTH.to_owned());
        }
        for (route, list) in &self.routes {
            if list.contains(&scheme) {
                users.push(route_variable(route));
            }
        }
        users.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(pairs: &[(&str, &str)]) -> Result<AuthSettings, ConfigError> {
        super::super::Config::from_vars(
            pairs
                .iter()
                .map(|(name, value)| (name.to_string(), value.to_string())),
        )
        .map(|(config, _)| config.auth)
    }

    #[test]
    fn basic_everywhere_by_default() {
        let settings = read(&[("BASIC_AUTH_USER", "u"), ("BASIC_AUTH_PASSWORD", "p")]).unwrap();
        assert_eq!(settings.schemes_for(None), [Scheme::Basic]);
        assert_eq!(settings.schemes_for(Some("gcp")), [Scheme::Basic]);
        assert_eq!(settings.replay_window, Duration::from_secs(60));
        assert_eq!(
            read(&[]).unwrap_err(),
            ConfigError::MissingCredentials("BASIC_AUTH_USER and BASIC_AUTH_PASSWORD".into())
        );
    }

    #[test]
    fn a_senders_own_signature_is_accepted_once_its_secrets_are_set() {
        let base = [("BASIC_AUTH_USER", "u"), ("BASIC_AUTH_PASSWORD", "p")];
        let signed = [base.as_slice(), &[("DOPPLER_WEBHOOK_SECRETS", "s")]].concat();
        let settings = read(&signed).unwrap();
        assert_eq!(
            settings.schemes_for(Some("doppler")),
            [Scheme::Basic, Scheme::HmacDoppler]
        );
        assert_eq!(settings.schemes_for(Some("infisical")), [Scheme::Basic]);
        assert_eq!(settings.schemes_for(None), [Scheme::Basic]);
        let only_signed = [
            signed.as_slice(),
            &[("WEBHOOK_AUTH_DOPPLER", "hmac-doppler")],
        ]
        .concat();
        assert_eq!(
            read(&only_signed).unwrap().schemes_for(Some("doppler")),
            [Scheme::HmacDoppler],
            "a route's own setting is kept as written"
        );
        assert_eq!(
            read(&base).unwrap().schemes_for(Some("doppler")),
            [Scheme::Basic]
        );
    }

    #[test]
    fn routes_override_the_default_and_basic_is_needed_only_where_used() {
        let settings = read(&[
            ("WEBHOOK_AUTH", "bearer, jwt"),
            ("WEBHOOK_AUTH_GCP", "jwks"),
            ("WEBHOOK_AUTH_AWS", ""),
            ("BEARER_TOKENS", "t1,t2"),
            ("BEARER_TOKEN_HEADER", "X-Api-Key"),
            ("JWT_HS256_SECRETS", "old,new"),
            ("JWT_AUDIENCE", "eso-refresher"),
            ("JWKS_URL", "https://www.googleapis.com/oauth2/v3/certs"),
            ("JWKS_ISSUER", "https://accounts.google.com"),
            ("JWKS_AUDIENCE", "https://hooks.example.com/webhook/gcp"),
            (
                "JWKS_SUBJECTS",
                "push@p.iam.gserviceaccount.com, ,other@p.iam.gserviceaccount.com",
            ),
        ])
        .unwrap();
        assert_eq!(
            settings.jwks.as_ref().map(|j| j.subjects.clone()),
            Some(vec![
                "push@p.iam.gserviceaccount.com".to_owned(),
                "other@p.iam.gserviceaccount.com".to_owned()
            ])
        );
        assert_eq!(settings.schemes_for(None), [Scheme::Bearer, Scheme::Jwt]);
        assert_eq!(
            settings.schemes_for(Some("aws")),
            [Scheme::Bearer, Scheme::Jwt]
        );
        assert_eq!(settings.schemes_for(Some("gcp")), [Scheme::Jwks]);
        assert_eq!(settings.bearer.header.as_deref(), Some("x-api-key"));
        let jwt = settings.jwt.unwrap();
        assert_eq!(jwt.secrets.len(), 2);
        assert_eq!(jwt.namespaces_claim, "namespaces");
        assert!(settings.basic.is_empty());
    }

    #[test]
    fn jwks_with_googles_issuer_needs_subjects() {
        let google = |issuer: &'static str, subjects: &'static str| {
            read(&[
                ("WEBHOOK_AUTH", "jwks"),
                ("JWKS_URL", "https://www.googleapis.com/oauth2/v3/certs"),
                ("JWKS_ISSUER", issuer),
                ("JWKS_AUDIENCE", "https://hooks.example.com/webhook/gcp"),
                ("JWKS_SUBJECTS", subjects),
            ])
        };
        for issuer in [
            "https://accounts.google.com",
            "accounts.google.com",
            "https://accounts.google.com/",
        ] {
            let err = google(issuer, " ").unwrap_err().to_string();
            assert!(
                err.starts_with("JWKS_SUBJECTS") && err.ends_with("WEBHOOK_AUTH uses jwks"),
                "{issuer}: {err}"
            );
            assert!(!err.contains('\n'), "{err}");
            assert!(google(issuer, "push@p.iam.gserviceaccount.com").is_ok());
        }
        // Another issuer may be one that only signs for its own callers.
        assert!(google("https://issuer.example", "").is_ok());
    }

    #[test]
    fn several_basic_pairs_for_rotation() {
        let settings = read(&[
            ("BASIC_AUTH_USER", "u"),
            ("BASIC_AUTH_PASSWORD", "p"),
            ("BASIC_AUTH_CREDENTIALS", "u:next:with-colon, other:x"),
        ])
        .unwrap();
        let pairs: Vec<(&str, &str)> = settings
            .basic
            .iter()
            .map(|p| (p.user.as_str(), p.password.expose()))
            .collect();
        assert_eq!(
            pairs,
            [("u", "p"), ("u", "next:with-colon"), ("other", "x")]
        );
        let only_list = read(&[("BASIC_AUTH_CREDENTIALS", "a:b")]).unwrap();
        assert_eq!(only_list.basic.len(), 1);
    }

    #[test]
    fn a_scheme_in_use_without_credentials_fails_with_one_line() {
        for (pairs, expected) in [
            (
                vec![("WEBHOOK_AUTH_DOPPLER_X", "basic")],
                "WEBHOOK_AUTH_DOPPLER_X",
            ),
            (
                vec![("WEBHOOK_AUTH", "bearer")],
                "BEARER_TOKENS must be set: WEBHOOK_AUTH uses bearer",
            ),
            (
                vec![
                    ("WEBHOOK_AUTH", "basic,hmac"),
                    ("BASIC_AUTH_CREDENTIALS", "u:p"),
                ],
                "HMAC_SECRETS must be set: WEBHOOK_AUTH uses hmac",
            ),
            (
                vec![
                    ("WEBHOOK_AUTH", "hmac"),
                    ("HMAC_SECRETS", "s"),
                    ("WEBHOOK_AUTH_GCP", "jwks"),
                ],
                "JWKS_URL, JWKS_ISSUER and JWKS_AUDIENCE must be set: WEBHOOK_AUTH_GCP uses jwks",
            ),
            (
                vec![("WEBHOOK_AUTH", "jwt"), ("JWT_HS256_SECRETS", "s")],
                "JWT_HS256_SECRETS and JWT_AUDIENCE must be set",
            ),
            (
                vec![
                    ("WEBHOOK_AUTH", "hmac-doppler"),
                    ("WEBHOOK_AUTH_VAULT", "basic"),
                ],
                "BASIC_AUTH_USER and BASIC_AUTH_PASSWORD (or BASIC_AUTH_CREDENTIALS) must be set: WEBHOOK_AUTH_VAULT uses basic",
            ),
            (
                vec![("WEBHOOK_AUTH", "hmac-doppler")],
                "DOPPLER_WEBHOOK_SECRETS must be set: WEBHOOK_AUTH uses hmac-doppler",
            ),
        ] {
            let err = read(&pairs).unwrap_err().to_string();
            assert!(err.starts_with(expected), "{err}");
            assert!(!err.contains('\n'), "{err}");
        }
    }

    #[test]
    fn bad_values_name_their_variable_and_hide_secrets() {
        for (pairs, name) in [
            (vec![("WEBHOOK_AUTH", "kerberos")], "WEBHOOK_AUTH="),
            (vec![("WEBHOOK_AUTH", " , ")], "WEBHOOK_AUTH="),
            (vec![("WEBHOOK_AUTH_GCP", "oidc")], "WEBHOOK_AUTH_GCP="),
            (vec![("WEBHOOK_AUTH_NOPE", "basic")], "WEBHOOK_AUTH_NOPE"),
            (vec![("REPLAY_WINDOW", "a minute")], "REPLAY_WINDOW="),
            (vec![("REPLAY_WINDOW", "0s")], "REPLAY_WINDOW="),
            (vec![("JWKS_CACHE_TTL", "soon")], "JWKS_CACHE_TTL="),
            (
                vec![("BEARER_TOKEN_HEADER", "X Api Key")],
                "BEARER_TOKEN_HEADER=",
            ),
            (
                vec![
                    ("WEBHOOK_AUTH", "jwks"),
                    ("JWKS_URL", "ftp://keys"),
                    ("JWKS_ISSUER", "i"),
                    ("JWKS_AUDIENCE", "a"),
                ],
                "JWKS_URL=",
            ),
            (
                vec![("BASIC_AUTH_CREDENTIALS", "no-colon-s3cret")],
                "BASIC_AUTH_CREDENTIALS=",
            ),
        ] {
            let mut pairs = pairs;
            pairs.extend([("BASIC_AUTH_USER", "u"), ("BASIC_AUTH_PASSWORD", "p")]);
            let err = read(&pairs).unwrap_err().to_string();
            assert!(err.starts_with(name), "{name}: {err}");
            assert!(!err.contains("s3cret"), "{err}");
        }
    }

    #[test]
    fn every_provider_route_has_its_variable() {
        for provider in Provider::ALL {
            let variable = route_variable(provider.name());
            assert!(
                super::super::VARIABLES.contains(&variable),
                "{variable} is missing from config::VARIABLES (and configs/settings.env)"
            );
        }
    }

    #[test]
    fn debug_hides_every_credential() {
        let settings = read(&[
            ("WEBHOOK_AUTH", "basic,bearer,hmac"),
            ("BASIC_AUTH_CREDENTIALS", "u:pw-s3cret"),
            ("BEARER_TOKENS", "tok-s3cret"),
            ("HMAC_SECRETS", "hmac-s3cret"),
        ])
        .unwrap();
        assert!(!format!("{settings:?}").contains("s3cret"));
    }
}
