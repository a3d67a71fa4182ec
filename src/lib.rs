//! eso-refresher: refreshes Kubernetes ExternalSecrets the moment a secret manager announces
//! that a secret changed.
//!
//! A webhook's body is read into changed keys by its sender ([`senders`]), looked up in an index
//! of every ExternalSecret's remote keys ([`core`]) that a watch keeps current ([`cluster`]),
//! and each match is refreshed by a merge patch of its annotations ([`cluster::patcher`]).
//! [`http`] is the way in, [`config`] the settings, [`telemetry`] logs and metrics; [`app`]
//! wires them together and [`refresher`] is one webhook's work. [`preview`] says what an event
//! would refresh, without refreshing anything.

pub mod app;
pub mod cluster;
pub mod config;
pub mod core;
pub mod http;
pub mod preview;
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

/// The layers, checked from the sources: what each top-level module may use.
#[cfg(test)]
mod layers {
    use std::collections::BTreeSet;
    use std::path::Path;

    /// Ingress (`http`, `senders`) → `core` ← `cluster`; `app` wires everything.
    const MAY_USE: [(&str, &[&str]); 8] = [
        ("core", &[]),
        ("senders", &["core"]),
        ("cluster", &["core", "telemetry"]),
        ("config", &["core", "senders"]),
        ("telemetry", &["config"]),
        ("refresher", &["cluster", "core", "telemetry"]),
        ("preview", &["cluster", "core", "senders"]),
        (
            "http",
            &["config", "core", "refresher", "senders", "telemetry"],
        ),
    ];

    /// The top-level modules named as `crate::<module>` in the files of `path`.
    fn used_by(path: &Path, found: &mut BTreeSet<String>) {
        if !path.exists() {
            return;
        }
        if path.is_dir() {
            for entry in std::fs::read_dir(path).unwrap() {
                used_by(&entry.unwrap().path(), found);
            }
            return;
        }
        let source = std::fs::read_to_string(path).unwrap();
        assert!(
            !source.contains("crate::{"),
            "{}: name modules one by one",
            path.display()
        );
        for (at, _) in source.match_indices("crate::") {
            let name: String = source[at + 7..]
                .chars()
                .take_while(|c| c.is_ascii_lowercase() || *c == '_')
                .collect();
            found.insert(name);
        }
    }

    #[test]
    fn modules_use_only_the_layers_below_them() {
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let modules: Vec<&str> = MAY_USE.iter().map(|(module, _)| *module).collect();
        for (module, allowed) in MAY_USE {
            let mut used = BTreeSet::new();
            used_by(&src.join(module), &mut used);
            used_by(&src.join(format!("{module}.rs")), &mut used);
            let other: Vec<&String> = used
                .iter()
                .filter(|name| modules.contains(&name.as_str()) && *name != module)
                .filter(|name| !allowed.contains(&name.as_str()))
                .collect();
            assert!(other.is_empty(), "{module} uses {other:?}");
        }
    }

    #[test]
    fn the_layers_have_no_cycle() {
        let mut placed: Vec<&str> = Vec::new();
        while placed.len() < MAY_USE.len() {
            let next = MAY_USE.iter().find(|(module, uses)| {
                !placed.contains(module) && uses.iter().all(|u| placed.contains(u))
            });
            let Some((module, _)) = next else {
                panic!("a cycle among {MAY_USE:?}");
            };
            placed.push(module);
        }
    }
}
