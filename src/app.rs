//! Wiring: the index, its source, the patcher and the HTTP server, started and stopped together.

use std::net::TcpListener;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::{Server, ServerHandle};
use actix_web::{App, HttpServer, web};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use rustls::server::danger::ClientCertVerifier;

use crate::Error;
use crate::cluster::cache_buster::CacheBuster;
use crate::cluster::follow_up::FollowUp;
use crate::cluster::manifests;
use crate::cluster::patcher::{ClusterPatcher, Destination, Patcher};
use crate::cluster::watch as cluster;
use crate::config::{Config, TlsFiles};
use crate::core::dedupe::SeenEvents;
use crate::core::index::SharedIndex;
use crate::http::{AppState, AuthThrottle, Authenticator, count_requests, json_errors, routes};
use crate::http::{AskForClientCert, PeerCertificates, ca_verifier};
use crate::refresher::Refresher;
use crate::senders::{Inbox, read_store};
use crate::telemetry::metrics::Metrics;

/// Shutdown within Kubernetes' default 30 s termination grace period: at SIGTERM pending
/// cache-buster patches are sent at once, in-flight webhooks get up to this long to finish
/// (a webhook patches for 20 s at most)...
const HTTP_SHUTDOWN_SECONDS: u64 = 22;
/// ...and what is still pending after that gets this much more, then is reported.
const DRAIN_DEADLINE: Duration = Duration::from_secs(5);

/// How long a client may take to send a request's head.
const REQUEST_HEAD_TIMEOUT: Duration = Duration::from_secs(10);

/// Runs the watch; if it ends before shutdown (it should not, even a panic), the index is
/// marked unsynced so that the service reports unready instead of answering from it.
async fn supervise(
    watch: impl std::future::Future<Output = ()> + Send + 'static,
    index: Arc<SharedIndex>,
    shutdown: CancellationToken,
) {
    let ended = tokio::spawn(watch).await;
    if !shutdown.is_cancelled() {
        index.mark_unsynced();
        tracing::error!(
            panicked = ended.is_err(),
            "the watch ended; reporting unready"
        );
    }
}

/// The first SIGTERM or SIGINT starts a graceful stop; a second one stops at once.
async fn stop_on_signals(server: ServerHandle, shutdown: CancellationToken) {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        tracing::error!("cannot listen for signals");
        return;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    tracing::info!("signal received: finishing in-flight requests");
    shutdown.cancel();
    let graceful = tokio::spawn({
        let server = server.clone();
        async move { server.stop(true).await }
    });
    tokio::select! {
        _ = term.recv() => server.stop(false).await,
        _ = int.recv() => server.stop(false).await,
        _ = graceful => {}
    }
}

/// Reads the PEM certificate chain and private key into a TLS configuration; with
/// `client_cas`, the listener asks clients for a certificate (and requires none).
fn tls_config(
    files: &TlsFiles,
    client_cas: Option<Arc<dyn ClientCertVerifier>>,
) -> Result<rustls::ServerConfig, Error> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let failed = |what: &std::path::Path, e: &dyn std::fmt::Display| {
        Error::Tls(format!("{}: {e}", what.display()))
    };
    let certs = CertificateDer::pem_file_iter(&files.cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| failed(&files.cert, &e))?;
    if certs.is_empty() {
        return Err(failed(&files.cert, &"no certificate in the file"));
    }
    let key = PrivateKeyDer::from_pem_file(&files.key).map_err(|e| failed(&files.key, &e))?;
    rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .and_then(|builder| {
            let builder = match client_cas {
                Some(cas) => builder.with_client_cert_verifier(Arc::new(AskForClientCert(cas))),
                None => builder.with_no_client_auth(),
            };
            builder.with_single_cert(certs, key)
        })
        .map_err(|e| failed(&files.key, &e))
}

/// Keeps the certificate chain a TLS client showed with its connection, for `client-cert`.
fn keep_client_certificates(connection: &dyn std::any::Any, data: &mut actix_web::dev::Extensions) {
    type Tls = actix_tls::accept::rustls_0_23::TlsStream<actix_web::rt::net::TcpStream>;
    let Some(tls) = connection.downcast_ref::<Tls>() else {
        return;
    };
    if let Some(chain) = tls.get_ref().1.peer_certificates() {
        let chain = chain.iter().map(|c| c.clone().into_owned()).collect();
        data.insert(PeerCertificates(chain));
    }
}

/// Where the ExternalSecrets come from.
pub enum Source {
    /// A live cluster, watched; patches are sent to it.
    Cluster(kube::Client),
    /// Manifest files (a file, a directory, or `-` for standard input); patches are only
    /// reported, and no event is de-duplicated.
    Manifests(PathBuf),
}

pub struct Application {
    server: Server,
    port: u16,
    state: web::Data<AppState>,
    shutdown: CancellationToken,
    watch: Option<JoinHandle<()>>,
}

impl Application {
    /// Binds the listener (port 0 picks a free one) and prepares the source. In cluster mode
    /// it fails at once if external-secrets.io is not served; the index fills in the
    /// background and the service reports ready when it is synced.
    pub async fn build(config: Config, source: Source) -> Result<Application, Error> {
        crate::install_crypto_provider();
        let index = Arc::new(SharedIndex::default());
        let metrics = Arc::new(Metrics::default());
        let shutdown = CancellationToken::new();
        let (patcher, watch, events_client) = match source {
            Source::Manifests(path) => {
                let objects = manifests::load(&path)?;
                index.write(|index| objects.fill(index, read_store));
                index.mark_synced();
                tracing::info!(
                    path = %path.display(),
                    count = index.read(|i| i.len()),
                    "serving ExternalSecrets from manifests (dry run: nothing is patched, nothing is de-duplicated)"
                );
                (Destination::DryRun, None, None)
            }
            Source::Cluster(client) => {
                let apis = cluster::discover(&client).await?;
                tracing::info!(version = %apis.version, "using {}/{}", cluster::GROUP, apis.version);
                let scopes = cluster::watch_scopes(
                    &client,
                    &apis.external_secrets,
                    &config.watch_namespaces,
                    config.pod_namespace.as_deref(),
                )
                .await?;
                let targets = cluster::watch_targets(&client, &apis, &scopes).await?;
                let events_client = client.clone();
                let watch = cluster::watch(
                    client.clone(),
                    targets,
                    read_store,
                    index.clone(),
                    metrics.clone(),
                    shutdown.clone(),
                );
                let watch = tokio::spawn(supervise(watch, index.clone(), shutdown.clone()));
                let patcher = Destination::Cluster(Box::new(ClusterPatcher {
                    client,
                    external_secrets: apis.external_secrets,
                    cluster_external_secrets: apis.cluster_external_secrets,
                }));
                (patcher, Some(watch), Some(events_client))
            }
        };

        let client_cas = match &config.auth.client_cert {
            Some(settings) => Some(ca_verifier(&settings.ca_file).map_err(Error::Tls)?),
            None => None,
        };
        let dry_run = matches!(patcher, Destination::DryRun);
        let state = web::Data::new(AppState {
            auth: Authenticator::new(&config.auth, client_cas.clone()),
            throttle: AuthThrottle::new(config.auth_failures_per_minute),
            refresher: Refresher {
                index: index.clone(),
                // A dry run is for trying events, the same one as often as wanted.
                seen: SeenEvents::new(if dry_run {
                    Duration::ZERO
                } else {
                    config.dedupe_window
                }),
                patcher: Patcher::new(patcher, metrics.clone()),
                cache_buster: config
                    .cache_buster
                    .map(|wait| CacheBuster::new(wait, shutdown.clone())),
                follow_up: FollowUp::new(
                    events_client,
                    config.confirm_timeout,
                    index.clone(),
                    metrics.clone(),
                ),
                metrics: metrics.clone(),
            },
            metrics,
            max_body_bytes: config.max_body_bytes,
            max_events: config.max_events,
            trust_forwarded_for: config.trust_forwarded_for,
            inbox: Inbox::new(config.sns.clone()),
        });

        let listener =
            TcpListener::bind(("0.0.0.0", config.http_port)).map_err(|source| Error::Bind {
                port: config.http_port,
                source,
            })?;
        let port = listener.local_addr().map_err(Error::Io)?.port();
        let server_state = state.clone();
        let server = HttpServer::new(move || {
            App::new()
                .app_data(server_state.clone())
                .wrap(actix_web::middleware::from_fn(json_errors))
                .wrap(actix_web::middleware::from_fn(count_requests))
                .configure(routes)
        })
        .shutdown_timeout(HTTP_SHUTDOWN_SECONDS)
        .disable_signals()
        .client_request_timeout(REQUEST_HEAD_TIMEOUT)
        .client_disconnect_timeout(Duration::from_secs(1))
        .on_connect(keep_client_certificates);
        let server = match &config.tls {
            Some(files) => server.listen_rustls_0_23(listener, tls_config(files, client_cas)?),
            None => server.listen(listener),
        }
        .map_err(Error::Io)?
        .run();
        tracing::info!(port, tls = config.tls.is_some(), "listening");

        Ok(Application {
            server,
            port,
            state,
            shutdown,
            watch,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Stops the server; `stop(true)` stops it gracefully, as SIGTERM does.
    pub fn handle(&self) -> ServerHandle {
        self.server.handle()
    }

    /// Serves until SIGTERM or SIGINT (or `handle().stop(true)`). Then it sends pending
    /// cache-buster patches at once, lets in-flight requests finish, reports what is still
    /// pending, and stops the watch. A second signal stops at once.
    pub async fn run_until_stopped(self) -> Result<(), Error> {
        let signals = tokio::spawn(stop_on_signals(self.server.handle(), self.shutdown.clone()));
        let served = self.server.await;
        signals.abort();
        tracing::info!("shutting down");
        self.shutdown.cancel();
        if let Some(buster) = &self.state.refresher.cache_buster {
            buster.drain(DRAIN_DEADLINE).await;
        }
        if let Some(watch) = self.watch {
            let _ = watch.await;
        }
        served.map_err(Error::Io)
    }
}
