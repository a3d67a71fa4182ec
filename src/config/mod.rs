//! Settings, read from the environment under the names the original tool used.

use std::time::Duration;

use serde::Deserialize;

use crate::core::duration;
use crate::senders::sns::SnsSettings;

pub mod auth;

pub use auth::{AuthSettings, Scheme, Secret};

/// The wait before the second, cache-busting patch when `CACHE_BUSTER_WAIT_INTERVAL` is unset
/// or unreadable (the original tool's default).
pub const DEFAULT_CACHE_BUSTER_WAIT: Duration = Duration::from_secs(2);
pub const DEFAULT_HTTP_PORT: u16 = 8000;
pub const DEFAULT_MAX_BODY_BYTES: usize = 1024 * 1024;
pub const DEFAULT_MAX_EVENTS: usize = 1000;
pub const DEFAULT_DEDUPE_WINDOW: Duration = Duration::from_secs(600);
pub const DEFAULT_AUTH_FAILURES_PER_MINUTE: u32 = 10;

/// Every environment variable the service reads (configs/.env.example explains each; tests keep
/// that file and the manifests in step with this list).
pub const VARIABLES: [&str; 50] = [
    "BASIC_AUTH_USER",
    "BASIC_AUTH_PASSWORD",
    "ENABLE_CACHE_BUSTER",
    "CACHE_BUSTER_WAIT_INTERVAL",
    "HTTP_PORT",
    "WATCH_NAMESPACES",
    "POD_NAMESPACE",
    "MAX_BODY_BYTES",
    "LOG_FORMAT",
    "RUST_LOG",
    "MAX_EVENTS",
    "DEDUPE_WINDOW",
    "AUTH_FAILURES_PER_MINUTE",
    "TRUST_FORWARDED_FOR",
    "TLS_CERT_FILE",
    "TLS_KEY_FILE",
    "CONFIRM_TIMEOUT",
    "POD_NAME",
    "WEBHOOK_AUTH",
    "WEBHOOK_AUTH_AKEYLESS",
    "WEBHOOK_AUTH_AWS",
    "WEBHOOK_AUTH_GCP",
    "WEBHOOK_AUTH_AZURE",
    "WEBHOOK_AUTH_VAULT",
    "WEBHOOK_AUTH_CLOUDEVENTS",
    "WEBHOOK_AUTH_GENERIC",
    "WEBHOOK_AUTH_DOPPLER",
    "WEBHOOK_AUTH_INFISICAL",
    "BASIC_AUTH_CREDENTIALS",
    "BEARER_TOKENS",
    "BEARER_TOKEN_HEADER",
    "JWT_HS256_SECRETS",
    "JWT_AUDIENCE",
    "JWT_ISSUER",
    "JWT_NAMESPACES_CLAIM",
    "DOPPLER_WEBHOOK_SECRETS",
    "INFISICAL_WEBHOOK_SECRETS",
    "HMAC_SECRETS",
    "REPLAY_WINDOW",
    "JWKS_URL",
    "JWKS_ISSUER",
    "JWKS_AUDIENCE",
    "JWKS_CACHE_TTL",
    "JWKS_SUBJECTS",
    "AWS_SNS_VERIFY_SIGNATURES",
    "AWS_SNS_CONFIRM_SUBSCRIPTIONS",
    "AWS_SNS_ONLY",
    "AWS_SNS_TOPIC_ARNS",
    "AWS_SNS_MAX_AGE",
    "AWS_ENDPOINT_URL_SNS",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Json,
    Text,
}

#[derive(Clone, PartialEq, Eq)]
pub struct Config {
    /// Who may call the webhook routes, and how they prove it.
    pub auth: AuthSettings,
    /// `Some(wait)` when the cache buster is enabled.
    pub cache_buster: Option<Duration>,
    pub http_port: u16,
    /// Namespaces to watch; empty means the whole cluster.
    pub watch_namespaces: Vec<String>,
    pub log_format: LogFormat,
    /// The service's own namespace, used when listing across namespaces is forbidden.
    pub pod_namespace: Option<String>,
    pub max_body_bytes: usize,
    /// Events accepted in one request.
    pub max_events: usize,
    /// How long an event id is remembered; zero turns de-duplication off.
    pub dedupe_window: Duration,
    /// Failed authentications one client may make per minute before it is answered 429.
    pub auth_failures_per_minute: u32,
    /// Take the client address from X-Forwarded-For / Forwarded (behind an ingress).
    pub trust_forwarded_for: bool,
    /// Certificate chain and private key (PEM) to serve HTTPS instead of HTTP.
    pub tls: Option<TlsFiles>,
    /// Follow each refresh until ESO reports it, for at most this long.
    pub confirm_timeout: Option<Duration>,
    /// SNS signature checks, subscription confirmation, accepted topics.
    pub sns: SnsSettings,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub cert: std::path::PathBuf,
    pub key: std::path::PathBuf,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("auth", &self.auth)
            .field("cache_buster", &self.cache_buster)
            .field("http_port", &self.http_port)
            .field("watch_namespaces", &self.watch_namespaces)
            .field("log_format", &self.log_format)
            .field("pod_namespace", &self.pod_namespace)
            .field("max_body_bytes", &self.max_body_bytes)
            .field("max_events", &self.max_events)
            .field("dedupe_window", &self.dedupe_window)
            .field("auth_failures_per_minute", &self.auth_failures_per_minute)
            .field("trust_forwarded_for", &self.trust_forwarded_for)
            .field("tls", &self.tls)
            .field("confirm_timeout", &self.confirm_timeout)
            .field("sns", &self.sns)
            .finish()
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    #[error("{0} must be set: webhook callers authenticate with HTTP basic auth")]
    MissingCredentials(String),
    #[error("{name}={value:?} is invalid: {expected}")]
    Invalid {
        name: &'static str,
        value: String,
        expected: String,
    },
    #[error("{needs} must be set: {used_by} uses {scheme}")]
    SchemeWithoutCredentials {
        scheme: &'static str,
        used_by: String,
        needs: String,
    },
    #[error("{variable} names no route: expected WEBHOOK_AUTH_<ROUTE> for a route among {routes}")]
    UnknownRoute { variable: String, routes: String },
    #[error("{variable}={value:?} is invalid: {expected}")]
    InvalidRoute {
        variable: String,
        value: String,
        expected: String,
    },
    #[error("reading the environment: {0}")]
    Environment(String),
}

/// Everything as text, so that each bad value gets an error naming its variable.
/// (envy matches variable names case-insensitively, as lower-case field names.)
#[derive(Deserialize, Default)]
#[cfg_attr(test, derive(serde::Serialize))]
struct RawConfig {
    basic_auth_user: Option<String>,
    basic_auth_password: Option<String>,
    webhook_auth: Option<String>,
    basic_auth_credentials: Option<String>,
    bearer_tokens: Option<String>,
    bearer_token_header: Option<String>,
    jwt_hs256_secrets: Option<String>,
    jwt_audience: Option<String>,
    jwt_issuer: Option<String>,
    jwt_namespaces_claim: Option<String>,
    doppler_webhook_secrets: Option<String>,
    infisical_webhook_secrets: Option<String>,
    hmac_secrets: Option<String>,
    replay_window: Option<String>,
    jwks_url: Option<String>,
    jwks_issuer: Option<String>,
    jwks_audience: Option<String>,
    jwks_cache_ttl: Option<String>,
    jwks_subjects: Option<String>,
    enable_cache_buster: Option<String>,
    cache_buster_wait_interval: Option<String>,
    http_port: Option<String>,
    watch_namespaces: Option<String>,
    log_format: Option<String>,
    pod_namespace: Option<String>,
    max_body_bytes: Option<String>,
    max_events: Option<String>,
    dedupe_window: Option<String>,
    auth_failures_per_minute: Option<String>,
    trust_forwarded_for: Option<String>,
    tls_cert_file: Option<String>,
    tls_key_file: Option<String>,
    confirm_timeout: Option<String>,
    aws_sns_verify_signatures: Option<String>,
    aws_sns_confirm_subscriptions: Option<String>,
    aws_sns_only: Option<String>,
    aws_sns_topic_arns: Option<String>,
    aws_sns_max_age: Option<String>,
    aws_endpoint_url_sns: Option<String>,
}

impl Config {
    pub fn from_env() -> Result<(Config, Vec<String>), ConfigError> {
        // Variables that are not Unicode cannot be ours; skip them rather than panic.
        Self::from_vars(
            std::env::vars_os()
                .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?))),
        )
    }

    /// Reads the settings from name/value pairs. Besides the config it returns warnings about
    /// values that were replaced by a default, to be logged once logging is set up.
    pub fn from_vars(
        vars: impl IntoIterator<Item = (String, String)>,
    ) -> Result<(Config, Vec<String>), ConfigError> {
        let vars: Vec<(String, String)> = vars.into_iter().collect();
        // Per-route settings are named after the routes, so they are found by their prefix.
        let route_prefix = format!("{}_", auth::WEBHOOK_AUTH);
        let per_route: Vec<(String, String)> = vars
            .iter()
            .filter(|(name, _)| name.to_ascii_uppercase().starts_with(&route_prefix))
            .map(|(name, value)| (name.to_ascii_uppercase(), value.clone()))
            .collect();
        let raw: RawConfig =
            envy::from_iter(vars).map_err(|e| ConfigError::Environment(e.to_string()))?;
        let mut warnings = Vec::new();

        let auth = auth::RawAuth {
            webhook_auth: raw.webhook_auth,
            per_route,
            basic_auth_user: raw.basic_auth_user,
            basic_auth_password: raw.basic_auth_password,
            basic_auth_credentials: raw.basic_auth_credentials,
            bearer_tokens: raw.bearer_tokens,
            bearer_token_header: raw.bearer_token_header,
            jwt_hs256_secrets: raw.jwt_hs256_secrets,
            jwt_audience: raw.jwt_audience,
            jwt_issuer: raw.jwt_issuer,
            jwt_namespaces_claim: raw.jwt_namespaces_claim,
            doppler_webhook_secrets: raw.doppler_webhook_secrets,
            infisical_webhook_secrets: raw.infisical_webhook_secrets,
            hmac_secrets: raw.hmac_secrets,
            replay_window: raw.replay_window,
            jwks_url: raw.jwks_url,
            jwks_issuer: raw.jwks_issuer,
            jwks_audience: raw.jwks_audience,
            jwks_cache_ttl: raw.jwks_cache_ttl,
            jwks_subjects: raw.jwks_subjects,
        }
        .read()?;

        let enabled = match raw.enable_cache_buster.as_deref().map(str::trim) {
            None | Some("") => false,
            Some(value) => parse_bool(value).ok_or_else(|| ConfigError::Invalid {
                name: "ENABLE_CACHE_BUSTER",
                value: value.to_owned(),
                expected: "expected true or false".into(),
            })?,
        };
        let wait = match raw.cache_buster_wait_interval.as_deref().map(str::trim) {
            None | Some("") => DEFAULT_CACHE_BUSTER_WAIT,
            Some(value) => duration::parse(value).unwrap_or_else(|e| {
                warnings.push(format!(
                    "CACHE_BUSTER_WAIT_INTERVAL: {e}; using {}",
                    humantime::format_duration(DEFAULT_CACHE_BUSTER_WAIT)
                ));
                DEFAULT_CACHE_BUSTER_WAIT
            }),
        };

        let http_port = match raw.http_port.as_deref().map(str::trim) {
            None | Some("") => DEFAULT_HTTP_PORT,
            Some(value) => value.parse::<u16>().map_err(|_| ConfigError::Invalid {
                name: "HTTP_PORT",
                value: value.to_owned(),
                expected: "expected a port number from 0 to 65535".into(),
            })?,
        };

        let watch_namespaces = parse_namespaces(&raw.watch_namespaces.unwrap_or_default())?;

        let log_format = match raw.log_format.as_deref().map(str::trim) {
            None | Some("") => LogFormat::Text,
            Some(v) if v.eq_ignore_ascii_case("text") => LogFormat::Text,
            Some(v) if v.eq_ignore_ascii_case("json") => LogFormat::Json,
            Some(value) => {
                return Err(ConfigError::Invalid {
                    name: "LOG_FORMAT",
                    value: value.to_owned(),
                    expected: "expected json or text".into(),
                });
            }
        };

        let max_body_bytes = match raw.max_body_bytes.as_deref().map(str::trim) {
            None | Some("") => DEFAULT_MAX_BODY_BYTES,
            Some(value) => value
                .parse::<usize>()
                .ok()
                .filter(|n| *n > 0)
                .ok_or_else(|| ConfigError::Invalid {
                    name: "MAX_BODY_BYTES",
                    value: value.to_owned(),
                    expected: "expected a positive number of bytes".into(),
                })?,
        };

        let max_events = positive(raw.max_events, "MAX_EVENTS", "a positive number of events")?
            .unwrap_or(DEFAULT_MAX_EVENTS);
        let auth_failures_per_minute = positive(
            raw.auth_failures_per_minute,
            "AUTH_FAILURES_PER_MINUTE",
            "a positive number",
        )?
        .map_or(Ok(DEFAULT_AUTH_FAILURES_PER_MINUTE), |n| {
            u32::try_from(n).map_err(|_| ConfigError::Invalid {
                name: "AUTH_FAILURES_PER_MINUTE",
                value: n.to_string(),
                expected: "expected a smaller number".into(),
            })
        })?;
        let dedupe_window =
            duration_setting(raw.dedupe_window, "DEDUPE_WINDOW")?.unwrap_or(DEFAULT_DEDUPE_WINDOW);
        let confirm_timeout =
            duration_setting(raw.confirm_timeout, "CONFIRM_TIMEOUT")?.filter(|d| !d.is_zero());
        let trust_forwarded_for = match raw.trust_forwarded_for.as_deref().map(str::trim) {
            None | Some("") => false,
            Some(value) => parse_bool(value).ok_or_else(|| ConfigError::Invalid {
                name: "TRUST_FORWARDED_FOR",
                value: value.to_owned(),
                expected: "expected true or false".into(),
            })?,
        };
        let tls = match (given(raw.tls_cert_file), given(raw.tls_key_file)) {
            (None, None) => None,
            (Some(cert), Some(key)) => Some(TlsFiles {
                cert: cert.into(),
                key: key.into(),
            }),
            (Some(_), None) | (None, Some(_)) => {
                return Err(ConfigError::Invalid {
                    name: "TLS_CERT_FILE",
                    value: String::new(),
                    expected: "TLS_CERT_FILE and TLS_KEY_FILE go together".into(),
                });
            }
        };

        let sns = sns_settings(
            [
                raw.aws_sns_verify_signatures,
                raw.aws_sns_confirm_subscriptions,
                raw.aws_sns_topic_arns,
                raw.aws_endpoint_url_sns,
                raw.aws_sns_max_age,
                raw.aws_sns_only,
            ],
            &mut warnings,
        )?;

        let pod_namespace = raw
            .pod_namespace
            .map(|ns| ns.trim().to_owned())
            .filter(|ns| !ns.is_empty());

        let config = Config {
            auth,
            cache_buster: enabled.then_some(wait),
            http_port,
            watch_namespaces,
            log_format,
            pod_namespace,
            max_body_bytes,
            max_events,
            dedupe_window,
            auth_failures_per_minute,
            trust_forwarded_for,
            tls,
            confirm_timeout,
            sns,
        };
        Ok((config, warnings))
    }
}

/// The `AWS_SNS_*` variables and `AWS_ENDPOINT_URL_SNS`; turning signature checks off is
/// warned about.
fn sns_settings(
    [verify, confirm, topics, endpoint, max_age, only]: [Option<String>; 6],
    warnings: &mut Vec<String>,
) -> Result<SnsSettings, ConfigError> {
    let flag_or = |value: &Option<String>, name: &'static str, unset: bool| match value
        .as_deref()
        .map(str::trim)
    {
        None | Some("") => Ok(unset),
        Some(text) => parse_bool(text).ok_or_else(|| ConfigError::Invalid {
            name,
            value: text.to_owned(),
            expected: "expected true or false".into(),
        }),
    };
    let flag = |value: &Option<String>, name: &'static str| flag_or(value, name, true);
    let verify_signatures = flag(&verify, "AWS_SNS_VERIFY_SIGNATURES")?;
    let only = flag_or(&only, "AWS_SNS_ONLY", false)?;
    if only && !verify_signatures {
        return Err(ConfigError::Invalid {
            name: "AWS_SNS_ONLY",
            value: "true".into(),
            expected: "AWS_SNS_ONLY needs AWS_SNS_VERIFY_SIGNATURES: unverified, an SNS envelope proves nothing".into(),
        });
    }
    if !verify_signatures {
        warnings.push(
            "AWS_SNS_VERIFY_SIGNATURES=false: SNS message signatures are not checked; anyone with the webhook credentials can send SNS messages".into(),
        );
    }
    let confirm_subscriptions = flag(&confirm, "AWS_SNS_CONFIRM_SUBSCRIPTIONS")?;
    let mut topic_arns: Vec<String> = Vec::new();
    for arn in topics
        .as_deref()
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|arn| !arn.is_empty())
    {
        if !arn.starts_with("arn:") || arn.split(':').count() != 6 {
            return Err(ConfigError::Invalid {
                name: "AWS_SNS_TOPIC_ARNS",
                value: arn.to_owned(),
                expected: "expected a comma-separated list of topic ARNs (arn:aws:sns:<region>:<account>:<topic>)".into(),
            });
        }
        if !topic_arns.iter().any(|known| known == arn) {
            topic_arns.push(arn.to_owned());
        }
    }
    let endpoint = match endpoint.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(text) => Some(
            reqwest::Url::parse(text)
                .ok()
                .filter(|url| matches!(url.scheme(), "http" | "https") && url.host().is_some())
                .ok_or_else(|| ConfigError::Invalid {
                    name: "AWS_ENDPOINT_URL_SNS",
                    value: text.to_owned(),
                    expected: "expected an http(s) URL such as http://localhost:4566".into(),
                })?,
        ),
    };
    let max_age = duration_setting(max_age, "AWS_SNS_MAX_AGE")?
        .unwrap_or(crate::senders::sns::DEFAULT_MAX_AGE);
    if max_age.is_zero() {
        return Err(ConfigError::Invalid {
            name: "AWS_SNS_MAX_AGE",
            value: "0s".into(),
            expected: "expected a positive duration".into(),
        });
    }
    Ok(SnsSettings {
        verify_signatures,
        confirm_subscriptions,
        topic_arns,
        endpoint,
        max_age,
        only,
    })
}

/// A `WATCH_NAMESPACES` value: comma-separated namespace names; empty means all namespaces.
/// Each namespace once, in the order first given.
pub fn parse_namespaces(value: &str) -> Result<Vec<String>, ConfigError> {
    let mut namespaces: Vec<String> = Vec::new();
    for ns in value.split(',').map(str::trim).filter(|ns| !ns.is_empty()) {
        if !is_dns_label(ns) {
            return Err(ConfigError::Invalid {
                name: "WATCH_NAMESPACES",
                value: ns.to_owned(),
                expected: "expected a comma-separated list of namespace names".into(),
            });
        }
        if !namespaces.iter().any(|known| known == ns) {
            namespaces.push(ns.to_owned());
        }
    }
    Ok(namespaces)
}

fn positive(
    value: Option<String>,
    name: &'static str,
    what: &str,
) -> Result<Option<usize>, ConfigError> {
    match value.as_deref().map(str::trim) {
        None | Some("") => Ok(None),
        Some(text) => text
            .parse::<usize>()
            .ok()
            .filter(|n| *n > 0)
            .map(Some)
            .ok_or_else(|| ConfigError::Invalid {
                name,
                value: text.to_owned(),
                expected: format!("expected {what}"),
            }),
    }
}

fn duration_setting(
    value: Option<String>,
    name: &'static str,
) -> Result<Option<Duration>, ConfigError> {
    match value.as_deref().map(str::trim) {
        None | Some("") => Ok(None),
        Some(text) => duration::parse(text)
            .map(Some)
            .map_err(|e| ConfigError::Invalid {
                name,
                value: text.to_owned(),
                expected: e.to_string(),
            }),
    }
}

fn given(value: Option<String>) -> Option<String> {
    value.filter(|v| !v.is_empty())
}

/// The spellings Go's `strconv.ParseBool` accepts, in any case.
fn parse_bool(value: &str) -> Option<bool> {
    match value.to_ascii_lowercase().as_str() {
        "1" | "t" | "true" => Some(true),
        "0" | "f" | "false" => Some(false),
        _ => None,
    }
}

fn is_dns_label(name: &str) -> bool {
    name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(pairs: &[(&str, &str)]) -> Result<(Config, Vec<String>), ConfigError> {
        let base = [
            ("BASIC_AUTH_USER", "hook"),
            ("BASIC_AUTH_PASSWORD", "s3cret"),
        ];
        Config::from_vars(
            base.iter()
                .chain(pairs)
                .map(|(k, v)| (k.to_string(), v.to_string())),
        )
    }

    #[test]
    fn defaults() {
        let (config, warnings) = read(&[]).expect("valid");
        assert!(warnings.is_empty());
        assert_eq!(config.auth.basic.len(), 1);
        assert_eq!(config.auth.basic[0].user, "hook");
        assert_eq!(config.cache_buster, None);
        assert_eq!(config.http_port, 8000);
        assert!(config.watch_namespaces.is_empty());
        assert_eq!(config.log_format, LogFormat::Text);
        assert_eq!(config.max_body_bytes, 1024 * 1024);
        assert_eq!(config.max_events, 1000);
        assert_eq!(config.dedupe_window, Duration::from_secs(600));
        assert_eq!(config.auth_failures_per_minute, 10);
        assert!(!config.trust_forwarded_for);
        assert_eq!(config.tls, None);
        assert_eq!(config.confirm_timeout, None);
        assert_eq!(config.sns, SnsSettings::default());
        assert_eq!(config.sns.max_age, Duration::from_secs(3600));
        assert!(config.sns.verify_signatures && config.sns.confirm_subscriptions);
    }

    #[test]
    fn credentials_are_required() {
        let missing_both = Config::from_vars(Vec::new()).unwrap_err();
        assert_eq!(
            missing_both.to_string(),
            "BASIC_AUTH_USER and BASIC_AUTH_PASSWORD must be set: webhook callers authenticate with HTTP basic auth"
        );
        let empty_password = Config::from_vars(vec![
            ("BASIC_AUTH_USER".to_string(), "u".to_string()),
            ("BASIC_AUTH_PASSWORD".to_string(), String::new()),
        ])
        .unwrap_err();
        assert_eq!(
            empty_password,
            ConfigError::MissingCredentials("BASIC_AUTH_PASSWORD".into())
        );
        assert!(
            empty_password
                .to_string()
                .contains("BASIC_AUTH_PASSWORD must be set")
        );
    }

    #[test]
    fn cache_buster_settings() {
        let (config, _) = read(&[("ENABLE_CACHE_BUSTER", "true")]).unwrap();
        assert_eq!(config.cache_buster, Some(Duration::from_secs(2)));
        let (config, _) = read(&[
            ("ENABLE_CACHE_BUSTER", "TRUE"),
            ("CACHE_BUSTER_WAIT_INTERVAL", "1m30s"),
        ])
        .unwrap();
        assert_eq!(config.cache_buster, Some(Duration::from_secs(90)));
        let (config, _) = read(&[
            ("ENABLE_CACHE_BUSTER", "false"),
            ("CACHE_BUSTER_WAIT_INTERVAL", "5s"),
        ])
        .unwrap();
        assert_eq!(config.cache_buster, None);
    }

    #[test]
    fn invalid_wait_warns_and_uses_two_seconds() {
        let (config, warnings) = read(&[
            ("ENABLE_CACHE_BUSTER", "1"),
            ("CACHE_BUSTER_WAIT_INTERVAL", "soon"),
        ])
        .unwrap();
        assert_eq!(config.cache_buster, Some(Duration::from_secs(2)));
        assert_eq!(warnings.len(), 1);
        assert!(
            warnings[0].contains("CACHE_BUSTER_WAIT_INTERVAL"),
            "{warnings:?}"
        );
    }

    #[test]
    fn invalid_values_name_their_variable() {
        for (name, value) in [
            ("ENABLE_CACHE_BUSTER", "maybe"),
            ("HTTP_PORT", "http"),
            ("HTTP_PORT", "70000"),
            ("LOG_FORMAT", "xml"),
            ("WATCH_NAMESPACES", "team-a,Team_B"),
            ("MAX_BODY_BYTES", "0"),
            ("MAX_EVENTS", "-1"),
            ("DEDUPE_WINDOW", "ten minutes"),
            ("AUTH_FAILURES_PER_MINUTE", "0"),
            ("TRUST_FORWARDED_FOR", "sometimes"),
            ("TLS_CERT_FILE", "/only/the/cert.pem"),
            ("CONFIRM_TIMEOUT", "soon"),
            ("AWS_SNS_VERIFY_SIGNATURES", "perhaps"),
            ("AWS_SNS_CONFIRM_SUBSCRIPTIONS", "yes"),
            ("AWS_SNS_TOPIC_ARNS", "secret-changes"),
            ("AWS_ENDPOINT_URL_SNS", "localhost:4566"),
            ("AWS_ENDPOINT_URL_SNS", "ftp://localhost"),
            ("AWS_SNS_MAX_AGE", "an hour"),
            ("AWS_SNS_MAX_AGE", "0s"),
            ("AWS_SNS_ONLY", "mostly"),
        ] {
            let err = read(&[(name, value)]).unwrap_err();
            assert!(err.to_string().starts_with(name), "{name}: {err}");
        }
    }

    #[test]
    fn namespaces_and_formats() {
        let (config, _) = read(&[
            ("WATCH_NAMESPACES", " team-a, ,team-b "),
            ("LOG_FORMAT", "JSON"),
            ("HTTP_PORT", "9000"),
            ("POD_NAMESPACE", "eso-refresher"),
        ])
        .unwrap();
        assert_eq!(config.watch_namespaces, ["team-a", "team-b"]);
        assert_eq!(
            parse_namespaces("b,a,b, a").unwrap(),
            ["b", "a"],
            "each once"
        );
        assert_eq!(config.log_format, LogFormat::Json);
        assert_eq!(config.http_port, 9000);
        assert_eq!(config.pod_namespace.as_deref(), Some("eso-refresher"));
    }

    #[test]
    fn variables_lists_exactly_what_is_read() {
        // RUST_LOG is read by the log filter, POD_NAME by the Event recorder, and per-route
        // WEBHOOK_AUTH_<ROUTE> by their prefix; every other name must be a field read here.
        let read: Vec<&str> = VARIABLES
            .iter()
            .copied()
            .filter(|v| !["RUST_LOG", "POD_NAME"].contains(v))
            .filter(|v| !v.starts_with("WEBHOOK_AUTH_"))
            .collect();
        let raw: RawConfig =
            envy::from_iter(read.iter().map(|v| (v.to_string(), "x".to_string()))).unwrap();
        let fields = serde_json::to_value(&raw).unwrap();
        let fields = fields.as_object().unwrap();
        assert_eq!(fields.len(), read.len(), "{fields:?}");
        for name in read {
            assert_eq!(fields[&name.to_lowercase()], "x", "{name} is not read");
        }
    }

    #[test]
    fn reliability_settings() {
        let (config, _) = read(&[
            ("MAX_EVENTS", "50"),
            ("DEDUPE_WINDOW", "0s"),
            ("AUTH_FAILURES_PER_MINUTE", "3"),
            ("TRUST_FORWARDED_FOR", "true"),
            ("TLS_CERT_FILE", "/tls/tls.crt"),
            ("TLS_KEY_FILE", "/tls/tls.key"),
            ("CONFIRM_TIMEOUT", "2m"),
        ])
        .unwrap();
        assert_eq!(config.max_events, 50);
        assert!(config.dedupe_window.is_zero());
        assert_eq!(config.auth_failures_per_minute, 3);
        assert!(config.trust_forwarded_for);
        assert_eq!(
            config.tls.unwrap().key,
            std::path::PathBuf::from("/tls/tls.key")
        );
        assert_eq!(config.confirm_timeout, Some(Duration::from_secs(120)));
    }

    #[test]
    fn sns_settings() {
        let (config, warnings) = read(&[
            ("AWS_SNS_VERIFY_SIGNATURES", "false"),
            ("AWS_SNS_CONFIRM_SUBSCRIPTIONS", "0"),
            (
                "AWS_SNS_TOPIC_ARNS",
                " arn:aws:sns:eu-west-1:1:a, ,arn:aws-cn:sns:cn-north-1:2:b,arn:aws:sns:eu-west-1:1:a",
            ),
            ("AWS_ENDPOINT_URL_SNS", "http://localhost:4566"),
            ("AWS_SNS_MAX_AGE", "15m"),
        ])
        .unwrap();
        assert_eq!(config.sns.max_age, Duration::from_secs(900));
        assert!(!config.sns.verify_signatures);
        assert!(!config.sns.confirm_subscriptions);
        assert_eq!(
            config.sns.topic_arns,
            ["arn:aws:sns:eu-west-1:1:a", "arn:aws-cn:sns:cn-north-1:2:b"]
        );
        assert_eq!(
            config.sns.endpoint.map(String::from).as_deref(),
            Some("http://localhost:4566/")
        );
        assert_eq!(warnings.len(), 1);
        assert!(warnings[0].starts_with("AWS_SNS_VERIFY_SIGNATURES=false"));
        assert!(
            !config.sns.only,
            "bare AWS events are accepted unless said otherwise"
        );

        let (only, _) = read(&[("AWS_SNS_ONLY", "true")]).unwrap();
        assert!(only.sns.only);
        let err = read(&[
            ("AWS_SNS_ONLY", "true"),
            ("AWS_SNS_VERIFY_SIGNATURES", "false"),
        ])
        .unwrap_err();
        assert!(err.to_string().starts_with("AWS_SNS_ONLY"), "{err}");
    }

    #[test]
    fn debug_output_hides_the_password() {
        let (config, _) = read(&[]).unwrap();
        assert!(!format!("{config:?}").contains("s3cret"));
    }
}
