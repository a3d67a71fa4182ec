//! Wiring: the index, its source, the patcher and the HTTP server, started and stopped together.

use std::net::TcpListener;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::{Server, ServerHandle};
use actix_web::{App, HttpServer, web};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::Error;
use crate::cache_buster::CacheBuster;
use crate::cluster;
use crate::config::Config;
use crate::external_secret::IndexedSecret;
use crate::http::{AppState, BasicCredentials, routes};
use crate::index::SharedIndex;
use crate::manifests;
use crate::patcher::{ClusterPatcher, Patcher};
use crate::refresher::Refresher;

/// How long in-flight requests may take to finish once shutdown starts.
const HTTP_SHUTDOWN_SECONDS: u64 = 10;
/// How long pending cache-buster patches may take after the server has stopped. Together
/// with the above this stays below Kubernetes' default 30 s termination grace period.
const DRAIN_DEADLINE: Duration = Duration::from_secs(15);

/// Where the ExternalSecrets come from.
pub enum Source {
    /// A live cluster, watched; patches are sent to it.
    Cluster(kube::Client),
    /// Manifest files; patches are only reported.
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
        let index = Arc::new(SharedIndex::default());
        let shutdown = CancellationToken::new();
        let (patcher, watch) = match source {
            Source::Manifests(dir) => {
                let objects = manifests::load_dir(&dir)?;
                index.write(|index| {
                    index.reset(None, objects.iter().filter_map(IndexedSecret::read_logged))
                });
                index.mark_synced();
                tracing::info!(
                    dir = %dir.display(),
                    count = index.read(|i| i.len()),
                    "serving ExternalSecrets from manifests (dry run: nothing is patched)"
                );
                (Patcher::DryRun, None)
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
                let watch = tokio::spawn(cluster::watch(
                    client.clone(),
                    apis.external_secrets.clone(),
                    scopes,
                    index.clone(),
                    shutdown.clone(),
                ));
                let patcher = Patcher::Cluster(Box::new(ClusterPatcher {
                    client,
                    external_secrets: apis.external_secrets,
                    cluster_external_secrets: apis.cluster_external_secrets,
                }));
                (patcher, Some(watch))
            }
        };

        let state = web::Data::new(AppState {
            credentials: BasicCredentials::new(
                &config.basic_auth_user,
                &config.basic_auth_password,
            ),
            refresher: Refresher {
                index,
                patcher: Arc::new(patcher),
                stamps: Arc::default(),
                cache_buster: config
                    .cache_buster
                    .map(|wait| CacheBuster::new(wait, shutdown.clone())),
            },
            max_body_bytes: config.max_body_bytes,
        });

        let listener =
            TcpListener::bind(("0.0.0.0", config.http_port)).map_err(|source| Error::Bind {
                port: config.http_port,
                source,
            })?;
        let port = listener.local_addr().map_err(Error::Io)?.port();
        let server_state = state.clone();
        let server =
            HttpServer::new(move || App::new().app_data(server_state.clone()).configure(routes))
                .shutdown_timeout(HTTP_SHUTDOWN_SECONDS)
                .listen(listener)
                .map_err(Error::Io)?
                .run();
        tracing::info!(port, "listening");

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

    /// Stops the server; `stop(true)` is what SIGTERM does (SIGINT stops at once).
    pub fn handle(&self) -> ServerHandle {
        self.server.handle()
    }

    /// Serves until SIGTERM (or `handle().stop(true)`), then finishes in-flight requests,
    /// sends or reports every pending cache-buster patch, and stops the watch.
    pub async fn run_until_stopped(self) -> Result<(), Error> {
        let served = self.server.await;
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
