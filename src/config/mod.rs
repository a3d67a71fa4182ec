//! Settings, read from the environment under the names the original tool used.
//!
//! Each setting is declared once, as a field of [`Settings`] or of the groups it flattens
//! ([`auth::AuthArgs`], [`sns::SnsArgs`]): its variable, default, parser and doc. clap reads
//! them (`eso-refresher --help` lists them); [`Settings::into_config`] checks them against each
//! other and builds the [`Config`] the service runs with.

use std::sync::LazyLock;
use std::time::Duration;

use clap::{ArgAction, Args, FromArgMatches};

use crate::senders::Provider;
use crate::senders::sns::SnsSettings;
use parse::{Refusal, Setting, refuse};

pub mod auth;
mod parse;
pub mod sns;

pub use auth::{AuthSettings, ClientCertSettings, Scheme, Secret};

/// The wait before the second, cache-busting patch when `CACHE_BUSTER_WAIT_INTERVAL` is
/// unreadable (the original tool's default; also the declared default).
pub const DEFAULT_CACHE_BUSTER_WAIT: Duration = Duration::from_secs(2);
pub const DEFAULT_HTTP_PORT: u16 = 8000;
pub const DEFAULT_MAX_BODY_BYTES: usize = 1024 * 1024;
pub const DEFAULT_MAX_EVENTS: usize = 1000;
pub const DEFAULT_AUTH_FAILURES_PER_MINUTE: u32 = 10;

/// The program name clap reports in errors and help.
const NAME: &str = env!("CARGO_PKG_NAME");

/// Variables read outside this module: the log filter reads `RUST_LOG`, the Event recorder
/// `POD_NAME`.
const READ_ELSEWHERE: [&str; 2] = ["RUST_LOG", "POD_NAME"];

/// Every environment variable the service reads: those of the declared settings, one
/// `WEBHOOK_AUTH_<ROUTE>` per provider route, and [`READ_ELSEWHERE`]. configs/settings.env and
/// configs/credentials.env.example explain each; tests keep those files and the manifests in
/// step with this list.
pub static VARIABLES: LazyLock<Vec<String>> = LazyLock::new(|| {
    let command = command();
    let declared: Vec<String> = command
        .get_arguments()
        .filter_map(clap::Arg::get_env)
        .map(|name| name.to_string_lossy().into_owned())
        .collect();
    let routes = Provider::ALL.map(|provider| auth::route_variable(provider.name()));
    declared
        .into_iter()
        .chain(routes)
        .chain(READ_ELSEWHERE.map(String::from))
        .collect()
});

/// The variables of [`VARIABLES`] that hold credentials: those whose values `--help` never
/// shows. The manifests put them in a Secret, and every other setting in a ConfigMap.
pub static CREDENTIALS: LazyLock<Vec<String>> = LazyLock::new(|| {
    command()
        .get_arguments()
        .filter(|arg| arg.is_hide_env_values_set())
        .filter_map(clap::Arg::get_env)
        .map(|name| name.to_string_lossy().into_owned())
        .collect()
});

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Json,
    Text,
}

#[derive(Debug, Clone, PartialEq, Eq)]
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

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    #[error("{0} must be set: webhook callers authenticate with HTTP basic auth")]
    MissingCredentials(String),
    #[error("{name}={value:?} is invalid: {expected}")]
    Invalid {
        name: String,
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

impl ConfigError {
    pub fn invalid(name: &str, value: &str, expected: impl Into<String>) -> Self {
        ConfigError::Invalid {
            name: name.to_owned(),
            value: value.to_owned(),
            expected: expected.into(),
        }
    }

    /// The setting a clap error refuses, if it refuses one; `None` for clap's own errors and
    /// messages (an unknown option, `--help`), which clap prints itself.
    pub fn from_clap(error: &clap::Error) -> Option<ConfigError> {
        std::error::Error::source(error)?
            .downcast_ref::<ConfigError>()
            .cloned()
    }

    fn from_clap_or_environment(error: clap::Error) -> ConfigError {
        ConfigError::from_clap(&error).unwrap_or_else(|| {
            let text = error.to_string();
            ConfigError::Environment(text.lines().next().unwrap_or_default().to_owned())
        })
    }
}

/// The service's settings as declared: each field one environment variable (or, equally, the
/// command-line option of the same name). Blank counts as unset.
#[derive(Args, Debug, Clone)]
#[command(next_help_heading = "Settings", mut_args = hide_empty_default)]
pub struct Settings {
    /// Patch a second time, CACHE_BUSTER_WAIT_INTERVAL after the first, for providers whose own
    /// caches may still serve the old value at first: true or false (also 1/0, t/f).
    #[arg(long, env = "ENABLE_CACHE_BUSTER", default_value = "false",
        action = ArgAction::Set, value_parser = Setting(parse::flag))]
    enable_cache_buster: bool,

    /// The wait before the second patch, Go duration ("500ms", "1m30s"); an unreadable value
    /// logs a warning and 2s is used.
    #[arg(long, env = "CACHE_BUSTER_WAIT_INTERVAL", default_value = "2s",
        value_parser = Setting(parse::lenient_duration))]
    cache_buster_wait_interval: std::result::Result<Duration, crate::core::duration::DurationError>,

    /// Port of the HTTP listener (webhook, health, readiness).
    #[arg(long, env = "HTTP_PORT", default_value_t = DEFAULT_HTTP_PORT,
        value_parser = Setting(parse::port))]
    http_port: u16,

    /// Comma-separated namespaces to watch; empty watches every namespace (if listing them is
    /// forbidden, the service falls back to its own namespace and logs it).
    #[arg(long, env = "WATCH_NAMESPACES", default_value = "",
        value_parser = Setting(parse::namespaces))]
    watch_namespaces: std::vec::Vec<String>,

    /// The service's own namespace, for that fallback (in a pod, from the downward API); unset:
    /// the service account's namespace file.
    #[arg(long, env = "POD_NAMESPACE", default_value = "", value_parser = Setting(parse::text))]
    pod_namespace: std::option::Option<String>,

    /// Largest webhook body accepted, in bytes, as sent and decompressed; a larger one is
    /// answered 413.
    #[arg(long, env = "MAX_BODY_BYTES", default_value_t = DEFAULT_MAX_BODY_BYTES,
        value_parser = Setting(|text| parse::positive(text, "a positive number of bytes")))]
    max_body_bytes: usize,

    /// Log lines as json (one object per line) or text.
    #[arg(long, env = "LOG_FORMAT", default_value = "text", value_parser = Setting(log_format))]
    log_format: LogFormat,

    /// Most events accepted in one request; a larger batch is answered 413.
    #[arg(long, env = "MAX_EVENTS", default_value_t = DEFAULT_MAX_EVENTS,
        value_parser = Setting(|text| parse::positive(text, "a positive number of events")))]
    max_events: usize,

    /// How long an applied event id is remembered (a re-delivery within it is answered as a
    /// duplicate), Go duration; 0s turns it off.
    #[arg(long, env = "DEDUPE_WINDOW", default_value = "10m",
        value_parser = Setting(parse::duration))]
    dedupe_window: Duration,

    /// Failed authentications one client address may make per minute before it is answered 429.
    #[arg(long, env = "AUTH_FAILURES_PER_MINUTE", default_value_t = DEFAULT_AUTH_FAILURES_PER_MINUTE,
        value_parser = Setting(parse::positive_u32))]
    auth_failures_per_minute: u32,

    /// Take the client address from the last hop of X-Forwarded-For: behind an ingress only.
    #[arg(long, env = "TRUST_FORWARDED_FOR", default_value = "false",
        action = ArgAction::Set, value_parser = Setting(parse::flag))]
    trust_forwarded_for: bool,

    /// PEM certificate chain to serve HTTPS instead of HTTP (with TLS_KEY_FILE).
    #[arg(long, env = "TLS_CERT_FILE", default_value = "", value_parser = Setting(parse::path))]
    tls_cert_file: std::option::Option<std::path::PathBuf>,

    /// PEM private key of TLS_CERT_FILE.
    #[arg(long, env = "TLS_KEY_FILE", default_value = "", value_parser = Setting(parse::path))]
    tls_key_file: std::option::Option<std::path::PathBuf>,

    /// Follow each refresh until ESO reports it, for at most this long, Go duration; empty or
    /// 0s: off.
    #[arg(long, env = "CONFIRM_TIMEOUT", default_value = "",
        value_parser = Setting(parse::optional_duration))]
    confirm_timeout: std::option::Option<Duration>,

    #[command(flatten)]
    auth: auth::AuthArgs,

    #[command(flatten)]
    sns: sns::SnsArgs,
}

/// An empty default means unset; `[default: ""]` would say nothing in `--help`.
fn hide_empty_default(arg: clap::Arg) -> clap::Arg {
    let empty = arg
        .get_default_values()
        .iter()
        .all(|value| value.is_empty());
    arg.hide_default_value(empty)
}

fn log_format(text: &str) -> Result<LogFormat, Refusal> {
    match text.trim() {
        text if text.eq_ignore_ascii_case("text") => Ok(LogFormat::Text),
        text if text.eq_ignore_ascii_case("json") => Ok(LogFormat::Json),
        text => Err(refuse(text, "expected json or text")),
    }
}

/// The settings alone, as a command of their own.
fn command() -> clap::Command {
    Settings::augment_args(clap::Command::new(NAME))
}

impl Settings {
    /// The settings checked against each other, as the service uses them. Besides the config
    /// it returns warnings about values that were replaced by a default, to be logged once
    /// logging is set up.
    pub fn into_config(self) -> Result<(Config, Vec<String>), ConfigError> {
        let mut warnings = Vec::new();
        let wait = self.cache_buster_wait_interval.unwrap_or_else(|e| {
            warnings.push(format!(
                "CACHE_BUSTER_WAIT_INTERVAL: {e}; using {}",
                humantime::format_duration(DEFAULT_CACHE_BUSTER_WAIT)
            ));
            DEFAULT_CACHE_BUSTER_WAIT
        });
        let tls = match (self.tls_cert_file, self.tls_key_file) {
            (None, None) => None,
            (Some(cert), Some(key)) => Some(TlsFiles { cert, key }),
            (Some(_), None) | (None, Some(_)) => {
                return Err(ConfigError::invalid(
                    "TLS_CERT_FILE",
                    "",
                    "TLS_CERT_FILE and TLS_KEY_FILE go together",
                ));
            }
        };
        let auth = self.auth.read(tls.is_some())?;
        let sns = self.sns.read(&mut warnings)?;
        let config = Config {
            auth,
            cache_buster: self.enable_cache_buster.then_some(wait),
            http_port: self.http_port,
            watch_namespaces: self.watch_namespaces,
            log_format: self.log_format,
            pod_namespace: self.pod_namespace,
            max_body_bytes: self.max_body_bytes,
            max_events: self.max_events,
            dedupe_window: self.dedupe_window,
            auth_failures_per_minute: self.auth_failures_per_minute,
            trust_forwarded_for: self.trust_forwarded_for,
            tls,
            confirm_timeout: self.confirm_timeout,
            sns,
        };
        Ok((config, warnings))
    }
}

impl Config {
    /// Reads the settings from the process environment (see [`Settings::into_config`]).
    pub fn from_env() -> Result<(Config, Vec<String>), ConfigError> {
        let matches = command()
            .try_get_matches_from([NAME])
            .map_err(ConfigError::from_clap_or_environment)?;
        Settings::from_arg_matches(&matches)
            .map_err(ConfigError::from_clap_or_environment)?
            .into_config()
    }

    /// Reads the settings from name/value pairs instead of the process environment, exactly
    /// as [`Config::from_env`] would from an environment holding just these.
    pub fn from_vars(
        vars: impl IntoIterator<Item = (String, String)>,
    ) -> Result<(Config, Vec<String>), ConfigError> {
        let vars: Vec<(String, String)> = vars.into_iter().collect();
        let value_of = |name: &str| {
            vars.iter()
                .rev()
                .find(|(known, _)| known == name)
                .map_or("", |(_, value)| value.as_str())
        };
        // Every setting given on the command line, which clap prefers to the process
        // environment; an absent one as blank, which counts as unset.
        let command = command();
        let arguments: Vec<String> = command
            .get_arguments()
            .filter_map(|arg| {
                let value = value_of(arg.get_env()?.to_str()?);
                Some(format!("--{}={value}", arg.get_long()?))
            })
            .collect();
        let matches = command
            .try_get_matches_from(std::iter::once(NAME.to_owned()).chain(arguments))
            .map_err(ConfigError::from_clap_or_environment)?;
        let mut settings =
            Settings::from_arg_matches(&matches).map_err(ConfigError::from_clap_or_environment)?;
        settings.auth.per_route = auth::route_settings(vars);
        settings.into_config()
    }
}

/// A `WATCH_NAMESPACES` value: comma-separated namespace names; empty means all namespaces.
/// Each namespace once, in the order first given.
pub fn parse_namespaces(value: &str) -> Result<Vec<String>, ConfigError> {
    parse::namespaces(value).map_err(|refusal| {
        ConfigError::invalid("WATCH_NAMESPACES", &refusal.value, refusal.expected)
    })
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
    fn every_setting_has_a_variable_an_option_of_that_name_and_a_doc() {
        command().debug_assert();
        let mut names = Vec::new();
        for arg in command().get_arguments().filter(|a| a.get_id() != "help") {
            let name = arg.get_env().and_then(|n| n.to_str()).expect("a variable");
            let option = name.to_ascii_lowercase().replace('_', "-");
            assert_eq!(arg.get_long(), Some(option.as_str()), "{name}");
            assert!(arg.get_help().is_some(), "{name} has no doc");
            names.push(name.to_owned());
        }
        assert_eq!(names.len(), 41, "{names:?}");
        assert_eq!(
            VARIABLES.len(),
            41 + Provider::ALL.len() + READ_ELSEWHERE.len()
        );
        let mut unique = VARIABLES.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), VARIABLES.len(), "each variable once");
        assert!(names.iter().all(|name| VARIABLES.contains(name)));
        for name in ["RUST_LOG", "POD_NAME", "WEBHOOK_AUTH_GCP"] {
            assert!(VARIABLES.iter().any(|v| v == name), "{name}");
        }
    }

    #[test]
    fn credentials_are_the_settings_whose_values_never_show() {
        assert!(CREDENTIALS.iter().all(|name| VARIABLES.contains(name)));
        for name in ["BASIC_AUTH_PASSWORD", "BEARER_TOKENS", "HMAC_SECRETS"] {
            assert!(CREDENTIALS.iter().any(|c| c == name), "{name}");
        }
        for name in ["BASIC_AUTH_USER", "HTTP_PORT", "JWKS_URL"] {
            assert!(!CREDENTIALS.iter().any(|c| c == name), "{name}");
        }
    }

    #[test]
    fn declared_defaults_match_the_constants() {
        let (config, _) = read(&[("CACHE_BUSTER_WAIT_INTERVAL", "")]).unwrap();
        assert_eq!(
            config.auth.replay_window,
            AuthSettings::basic("u", "p").replay_window
        );
        assert_eq!(config.sns, SnsSettings::default());
        let (enabled, _) = read(&[("ENABLE_CACHE_BUSTER", "true")]).unwrap();
        assert_eq!(enabled.cache_buster, Some(DEFAULT_CACHE_BUSTER_WAIT));
    }

    #[test]
    fn blank_is_unset() {
        let (config, warnings) = read(&[
            ("HTTP_PORT", "  "),
            ("WEBHOOK_AUTH", ""),
            ("DEDUPE_WINDOW", " "),
            ("JWT_NAMESPACES_CLAIM", " "),
            ("AWS_SNS_VERIFY_SIGNATURES", ""),
        ])
        .unwrap();
        assert!(warnings.is_empty(), "{warnings:?}");
        assert_eq!(config.http_port, DEFAULT_HTTP_PORT);
        assert_eq!(config.auth.default, [Scheme::Basic]);
        assert_eq!(config.dedupe_window, Duration::from_secs(600));
        assert!(config.sns.verify_signatures);
        assert_eq!(config.auth.jwt, None);
    }

    #[test]
    fn settings_debug_hides_credentials() {
        let command = command();
        let matches = command
            .try_get_matches_from([
                NAME,
                "--basic-auth-user=u",
                "--basic-auth-password=pw-s3cret",
                "--bearer-tokens=tok-s3cret",
                "--basic-auth-credentials=v:cred-s3cret",
            ])
            .unwrap();
        let settings = Settings::from_arg_matches(&matches).unwrap();
        let shown = format!("{settings:?}");
        assert!(shown.contains("basic_auth_user"), "{shown}");
        assert!(!shown.contains("s3cret"), "{shown}");
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
    fn client_certificates_need_tls_and_a_ca_file() {
        let tls = [
            ("TLS_CERT_FILE", "/tls/tls.crt"),
            ("TLS_KEY_FILE", "/tls/tls.key"),
        ];
        let ca = ("TLS_CLIENT_CA_FILE", "/tls/clients-ca.pem");
        let scheme = ("WEBHOOK_AUTH_AKEYLESS", "client-cert");
        let (config, _) =
            read(&[tls[0], tls[1], ca, scheme, ("CLIENT_CERT_SUBJECTS", "a, b")]).unwrap();
        assert_eq!(
            config.auth.schemes_for(Some("akeyless")),
            [Scheme::ClientCert]
        );
        let client_cert = config.auth.client_cert.unwrap();
        assert_eq!(
            client_cert.ca_file,
            std::path::PathBuf::from("/tls/clients-ca.pem")
        );
        assert_eq!(client_cert.subjects, ["a", "b"]);

        let refused = |pairs: &[(&str, &str)]| read(pairs).unwrap_err().to_string();
        assert_eq!(
            refused(&[ca, scheme]),
            "TLS_CLIENT_CA_FILE=\"\" is invalid: client certificates come over TLS: set \
             TLS_CERT_FILE and TLS_KEY_FILE"
        );
        assert_eq!(
            refused(&[scheme]),
            "TLS_CERT_FILE and TLS_KEY_FILE (client certificates come over TLS) must be set: \
             WEBHOOK_AUTH_AKEYLESS uses client-cert"
        );
        assert_eq!(
            refused(&[tls[0], tls[1], scheme]),
            "TLS_CLIENT_CA_FILE must be set: WEBHOOK_AUTH_AKEYLESS uses client-cert"
        );
        assert!(
            read(&[tls[0], tls[1], ca]).is_ok(),
            "a CA without the scheme is harmless"
        );
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
