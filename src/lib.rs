//! eso-refresher: refreshes Kubernetes ExternalSecrets the moment a secret manager announces
//! that a secret changed.
//!
//! A webhook's body is read into changed keys by its sender ([`senders`]), looked up in an index
//! of every ExternalSecret's remote keys ([`core`]) that a watch keeps current ([`cluster`]),
//! and each match is refreshed by a merge patch of its annotations ([`cluster::patcher`]).
//! [`http`] is the way in, [`config`] the settings, [`telemetry`] logs and metrics; [`app`]
//! wires them together and [`refresher`] is one webhook's work.

pub mod app;
pub mod cluster;
pub mod config;
pub mod core;
pub mod http;
pub mod refresher;
pub mod senders;
pub mod telemetry;

/// Errors that stop the service from starting or running.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Config(#[from] config::ConfigError),
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error(
        "the API server does not serve external-secrets.io ExternalSecrets (v1 or v1beta1): is External Secrets Operator installed?"
    )]
    NotServed,
    #[error("reading manifests: {0}")]
    Manifests(String),
    #[error("cannot listen on port {port}: {source}")]
    Bind { port: u16, source: std::io::Error },
    #[error("no answer from the API server in time: {0}")]
    Timeout(&'static str),
    #[error("TLS: {0}")]
    Tls(String),
    #[error(transparent)]
    Io(std::io::Error),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Installs ring as rustls' process-wide crypto provider, for the HTTP clients (the server's TLS
/// names its provider itself). Idempotent.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}
