//! Test scaffolding: the real server started beside a fake API server, and builders for
//! the objects tests put in it.

pub mod fake_api;
pub mod sns;

use std::time::Duration;

use eso_refresher::app::{Application, Source};
use eso_refresher::config::{AuthSettings, Config, LogFormat};
use serde_json::{Value, json};

pub use fake_api::FakeApiServer;
pub use sns::{BUSY_CERTIFICATE_PATH, FakeSns, NOT_A_CERTIFICATE_PATH, event_fixture};

pub const USER: &str = "hook";
pub const PASSWORD: &str = "s3cret-Pa55";

pub fn config() -> Config {
    Config {
        auth: AuthSettings::basic(USER, PASSWORD),
        cache_buster: None,
        http_port: 0,
        watch_namespaces: Vec::new(),
        log_format: LogFormat::Text,
        pod_namespace: None,
        max_body_bytes: 1024 * 1024,
        max_events: 1000,
        dedupe_window: std::time::Duration::from_secs(600),
        auth_failures_per_minute: 10,
        trust_forwarded_for: false,
        tls: None,
        confirm_timeout: None,
        sns: eso_refresher::senders::sns::SnsSettings::default(),
    }
}

/// The real server, running.
pub struct TestApp {
    pub url: String,
    pub http: reqwest::Client,
    pub handle: actix_web::dev::ServerHandle,
    pub stopped: tokio::task::JoinHandle<eso_refresher::Result<()>>,
}

impl TestApp {
    pub async fn post_webhook(&self, body: impl Into<reqwest::Body>) -> reqwest::Response {
        self.http
            .post(format!("{}/webhook", self.url))
            .basic_auth(USER, Some(PASSWORD))
            .body(body)
            .send()
            .await
            .expect("webhook request")
    }

    /// POSTs a webhook and returns its status and JSON body.
    pub async fn webhook(&self, body: &Value) -> (u16, Value) {
        let response = self.post_webhook(body.to_string()).await;
        let status = response.status().as_u16();
        (status, response.json().await.expect("JSON body"))
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.http
            .get(format!("{}{path}", self.url))
            .send()
            .await
            .expect("request")
    }

    /// Waits until /readyz says ready (the first sync is done).
    pub async fn wait_ready(&self) {
        wait_for("the service to be ready", || async {
            self.get("/readyz").await.status().as_u16() == 200
        })
        .await;
    }

    /// Stops the server as SIGTERM would and waits for the shutdown to finish.
    pub async fn stop(self) {
        self.handle.stop(true).await;
        self.stopped.await.expect("joined").expect("clean shutdown");
    }
}

pub async fn spawn_app(config: Config, source: Source) -> TestApp {
    let app = Application::build(config, source)
        .await
        .expect("app builds");
    let url = format!("http://127.0.0.1:{}", app.port());
    let handle = app.handle();
    let stopped = tokio::spawn(app.run_until_stopped());
    TestApp {
        url,
        http: http_client(),
        handle,
        stopped,
    }
}

/// An HTTP client for the tests' requests.
pub fn http_client() -> reqwest::Client {
    eso_refresher::install_crypto_provider();
    reqwest::Client::new()
}

/// Starts the server against `api` and waits until it is ready and its watches are open
/// (each starts right after its list), so that tests see only the requests they cause.
pub async fn spawn_ready(api: &FakeApiServer, config: Config) -> TestApp {
    let app = spawn_app(config, Source::Cluster(api.client())).await;
    app.wait_ready().await;
    let mut open = api.open_watches();
    for _ in 0..40 {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        let now = api.open_watches();
        if now == open && now > 0 {
            break;
        }
        open = now;
    }
    app
}

/// The `updated-at` values of the ExternalSecret patches `api` received, in order.
pub fn stamps(api: &FakeApiServer) -> Vec<String> {
    api.patches()
        .iter()
        .filter_map(|p| {
            p.body.as_ref()?["metadata"]["annotations"]["updated-at"]
                .as_str()
                .map(str::to_owned)
        })
        .collect()
}

/// Polls `condition` for up to ten seconds.
pub async fn wait_for<F, Fut>(what: &str, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..200 {
        if condition().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for {what}");
}

/// An ExternalSecret under construction.
pub struct ExternalSecretBuilder(Value);

pub fn external_secret(namespace: &str, name: &str) -> ExternalSecretBuilder {
    ExternalSecretBuilder(json!({
        "apiVersion": "external-secrets.io/v1",
        "kind": "ExternalSecret",
        "metadata": {"namespace": namespace, "name": name},
        "spec": {
            "refreshInterval": "1h",
            "secretStoreRef": {"kind": "ClusterSecretStore", "name": "akeyless"},
            "target": {"name": name},
            "data": [],
        },
    }))
}

impl ExternalSecretBuilder {
    pub fn with_key(mut self, key: &str) -> Self {
        let data = self.0["spec"]["data"].as_array_mut().expect("data");
        let secret_key = format!("k{}", data.len());
        data.push(json!({"secretKey": secret_key, "remoteRef": {"key": key}}));
        self
    }

    pub fn with_extract(mut self, key: &str) -> Self {
        self.data_from().push(json!({"extract": {"key": key}}));
        self
    }

    pub fn with_find(mut self, path: Option<&str>, regexp: Option<&str>) -> Self {
        let mut find = json!({});
        if let Some(path) = path {
            find["path"] = json!(path);
        }
        if let Some(regexp) = regexp {
            find["name"] = json!({"regexp": regexp});
        }
        self.data_from().push(json!({"find": find}));
        self
    }

    /// Reads from this store rather than the default ClusterSecretStore "akeyless".
    pub fn reading_from(mut self, kind: &str, name: &str) -> Self {
        self.0["spec"]["secretStoreRef"] = json!({"kind": kind, "name": name});
        self
    }

    pub fn refresh_policy(mut self, policy: &str) -> Self {
        self.0["spec"]["refreshPolicy"] = json!(policy);
        self
    }

    pub fn refresh_interval(mut self, interval: &str) -> Self {
        self.0["spec"]["refreshInterval"] = json!(interval);
        self
    }

    pub fn annotate(mut self, key: &str, value: &str) -> Self {
        self.0["metadata"]["annotations"][key] = json!(value);
        self
    }

    pub fn owned_by_cluster_external_secret(mut self, parent: &str) -> Self {
        self.0["metadata"]["ownerReferences"] = json!([{
            "apiVersion": "external-secrets.io/v1", "kind": "ClusterExternalSecret",
            "name": parent, "uid": format!("uid-{parent}"), "controller": true,
            "blockOwnerDeletion": true}]);
        self
    }

    pub fn build(self) -> Value {
        self.0
    }

    fn data_from(&mut self) -> &mut Vec<Value> {
        let spec = &mut self.0["spec"];
        if spec["dataFrom"].is_null() {
            spec["dataFrom"] = json!([]);
        }
        spec["dataFrom"].as_array_mut().expect("dataFrom")
    }
}

/// Sends a request; its status and JSON body (null if it has none).
pub async fn send(request: reqwest::RequestBuilder) -> (u16, Value) {
    let response = request.send().await.expect("request");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// The `namespace/name` of each ExternalSecret a report says was refreshed, in its order.
pub fn refreshed(report: &Value) -> Vec<String> {
    let targets = report["refreshed"].as_array().into_iter().flatten();
    targets
        .map(|t| {
            let namespace = t["namespace"].as_str().unwrap_or("-");
            format!("{namespace}/{}", t["name"].as_str().unwrap_or_default())
        })
        .collect()
}

/// A SecretStore (`namespace: Some`) or ClusterSecretStore with this `spec.provider`.
pub fn secret_store(namespace: Option<&str>, name: &str, provider: Value) -> Value {
    let kind = if namespace.is_some() {
        "SecretStore"
    } else {
        "ClusterSecretStore"
    };
    let mut store = json!({
        "apiVersion": "external-secrets.io/v1",
        "kind": kind,
        "metadata": {"name": name},
        "spec": {"provider": provider},
    });
    if let Some(namespace) = namespace {
        store["metadata"]["namespace"] = json!(namespace);
    }
    store
}

pub fn cluster_external_secret(name: &str) -> Value {
    json!({
        "apiVersion": "external-secrets.io/v1",
        "kind": "ClusterExternalSecret",
        "metadata": {"name": name},
        "spec": {"externalSecretName": name, "namespaces": ["team-a", "team-b"],
                 "externalSecretSpec": {"secretStoreRef": {"kind": "ClusterSecretStore", "name": "akeyless"}}},
    })
}

static NEXT_EVENT_ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1000);

/// An Akeyless forwarder body: one event per key, each with an id never used before.
pub fn akeyless_events(keys: &[&str]) -> Value {
    Value::Array(
        keys.iter()
            .enumerate()
            .map(|(i, key)| {
                let id = NEXT_EVENT_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                json!({"event_id": id, "event_level": "info",
                "event_type": "static-secret-updated", "item_name": key, "item_id": 9000 + i,
                "item_type": "STATIC_SECRET", "payload": {}})
            })
            .collect(),
    )
}

/// Reads an ESO example manifest from the fixtures, as an object to put in the fake API.
pub fn eso_example(file: &str, namespace: &str) -> Value {
    let path = format!(
        "{}/tests/fixtures/eso/examples/{file}",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).expect("fixture");
    let objects = eso_refresher::cluster::manifests::parse_documents(&text).expect("parses");
    let mut object = serde_json::to_value(&objects[0]).expect("serializes");
    object["metadata"]["namespace"] = json!(namespace);
    object
}

/// `data` compressed as a `Content-Encoding` names it: `gzip`, `deflate` (the zlib format),
/// or `raw-deflate` (bare DEFLATE, which some clients send as `deflate`).
pub fn compress(coding: &str, data: &[u8]) -> Vec<u8> {
    use flate2::Compression;
    use flate2::write::{DeflateEncoder, GzEncoder, ZlibEncoder};
    use std::io::Write;
    let level = Compression::default();
    let compressed = match coding {
        "gzip" => {
            let mut encoder = GzEncoder::new(Vec::new(), level);
            encoder.write_all(data).and_then(|()| encoder.finish())
        }
        "deflate" => {
            let mut encoder = ZlibEncoder::new(Vec::new(), level);
            encoder.write_all(data).and_then(|()| encoder.finish())
        }
        "raw-deflate" => {
            let mut encoder = DeflateEncoder::new(Vec::new(), level);
            encoder.write_all(data).and_then(|()| encoder.finish())
        }
        other => panic!("no such coding here: {other}"),
    };
    compressed.expect("compressing in memory")
}
