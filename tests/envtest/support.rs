//! The real-cluster tier's scaffolding: a real kube-apiserver and the real ESO controller
//! (`../shared/envtest`), the service binary run as a user runs it, with a ServiceAccount token
//! bound to exactly the RBAC that `kustomize/` renders, and a small HTTP "secret manager" that
//! ESO's `webhook` provider reads from.
//!
//! Where the cluster comes from: `KUBECONFIG` + `ENVTEST_DIR` exported by
//! `../shared/envtest/start.sh --with-eso`, or, when they are not set and that script exists,
//! the script is run once for this test binary. Without either, every test says so in one
//! line and passes, unless `ENVTEST_REQUIRED` is set (CI sets it), where it fails.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::{Secret, ServiceAccount};
use kube::api::{Api, DynamicObject, ListParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::core::GroupVersionKind;
use serde_json::{Value, json};

pub const USER: &str = "e2e";
pub const PASSWORD: &str = "e2e-Pa55word";
const ROOT: &str = env!("CARGO_MANIFEST_DIR");
/// Long enough for a loaded 2-core machine; every wait is bounded.
pub const PATIENCE: Duration = Duration::from_secs(30);
/// Long enough for ESO to have acted on anything it was going to act on: it re-syncs within a
/// quarter of a second of a metadata change on this machine.
pub const QUIET: Duration = Duration::from_secs(3);

/// The running envtest, as its start script describes it.
#[derive(Debug, Clone)]
pub struct Envtest {
    pub kubeconfig: PathBuf,
    pub dir: PathBuf,
    pub audit_log: PathBuf,
    pub script_dir: Option<PathBuf>,
}

fn shared_envtest() -> PathBuf {
    Path::new(ROOT).join("../shared/envtest")
}

/// Writes past the test harness's output capture: a skip must be seen.
pub fn say(line: &str) {
    let _ = writeln!(std::io::stderr(), "{line}");
}

/// Parses start.sh's `export NAME=value` lines.
fn exports(text: &str) -> HashMap<String, String> {
    text.lines()
        .filter_map(|line| line.strip_prefix("export "))
        .filter_map(|pair| pair.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.trim_matches(['"', '\'']).to_owned()))
        .collect()
}

fn locate() -> Result<Envtest, String> {
    let script_dir = shared_envtest()
        .join("start.sh")
        .is_file()
        .then(shared_envtest);
    let from_env = |name: &str| std::env::var_os(name).map(PathBuf::from);
    if let (Some(kubeconfig), Some(dir), Some(_)) = (
        from_env("KUBECONFIG"),
        from_env("ENVTEST_DIR"),
        from_env("ENVTEST_ESO"),
    ) {
        let audit_log = from_env("ENVTEST_AUDIT_LOG").unwrap_or_else(|| dir.join("logs/audit.log"));
        return Ok(Envtest {
            kubeconfig,
            dir,
            audit_log,
            script_dir,
        });
    }
    let Some(scripts) = script_dir else {
        return Err(format!(
            "envtest is not running (no KUBECONFIG/ENVTEST_DIR/ENVTEST_ESO) and {} is absent",
            shared_envtest().display()
        ));
    };
    let output = std::process::Command::new("bash")
        .arg(scripts.join("start.sh"))
        .arg("--with-eso")
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| format!("cannot run start.sh: {e}"))?;
    if !output.status.success() {
        return Err(format!("start.sh --with-eso failed ({})", output.status));
    }
    let vars = exports(&String::from_utf8_lossy(&output.stdout));
    let get = |name: &str| {
        vars.get(name)
            .map(PathBuf::from)
            .ok_or(format!("start.sh exported no {name}"))
    };
    Ok(Envtest {
        kubeconfig: get("KUBECONFIG")?,
        dir: get("ENVTEST_DIR")?,
        audit_log: get("ENVTEST_AUDIT_LOG")?,
        script_dir: Some(scripts),
    })
}

/// The cluster, or `None` after one visible line saying why this tier is skipped.
pub fn envtest() -> Option<Envtest> {
    static FOUND: OnceLock<Result<Envtest, String>> = OnceLock::new();
    static SAID: OnceLock<()> = OnceLock::new();
    match FOUND.get_or_init(locate) {
        Ok(found) => Some(found.clone()),
        Err(why) => {
            assert!(
                std::env::var_os("ENVTEST_REQUIRED").is_none(),
                "ENVTEST_REQUIRED is set but {why}"
            );
            SAID.get_or_init(|| say(&format!("skipped: real-cluster tests: {why}")));
            None
        }
    }
}

/// `kubectl kustomize` of an overlay, from a scratch copy of the committed manifests and
/// settings (as a fresh clone renders them), parsed.
pub fn render(overlay: &str) -> Vec<Value> {
    let dir = tempfile::tempdir().expect("temp dir");
    for part in ["kustomize", "configs"] {
        copy_tree(&Path::new(ROOT).join(part), &dir.path().join(part));
    }
    let output = std::process::Command::new("kubectl")
        .arg("kustomize")
        .arg(dir.path().join("kustomize").join(overlay))
        .output()
        .expect("kubectl (with kustomize) is needed by the real-cluster tier");
    assert!(
        output.status.success(),
        "kubectl kustomize {overlay}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_saphyr::from_multiple::<Value>(&String::from_utf8_lossy(&output.stdout))
        .expect("rendered YAML")
}

fn copy_tree(from: &Path, to: &Path) {
    if from.is_dir() {
        std::fs::create_dir_all(to).expect("mkdir");
        for entry in std::fs::read_dir(from).expect("read dir").flatten() {
            copy_tree(&entry.path(), &to.join(entry.file_name()));
        }
    } else {
        std::fs::copy(from, to).unwrap_or_else(|e| panic!("{}: {e}", from.display()));
    }
}

/// A name no other test, run or replica has used: namespaces never finish deleting here.
pub fn unique(prefix: &str) -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or_default();
    format!(
        "{prefix}-{:x}{:x}-{}",
        std::process::id(),
        nanos,
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// The admin's view of the cluster, for setting up and inspecting.
#[derive(Clone)]
pub struct Cluster {
    pub env: Envtest,
    pub client: kube::Client,
    pub server: String,
}

impl Cluster {
    pub async fn connect(env: Envtest) -> Cluster {
        eso_refresher::install_crypto_provider();
        let kubeconfig = Kubeconfig::read_from(&env.kubeconfig).expect("admin kubeconfig");
        let server = env.server_url().expect("a server in the kubeconfig");
        let config =
            kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
                .await
                .expect("admin config");
        let client = kube::Client::try_from(config).expect("admin client");
        Cluster {
            env,
            client,
            server,
        }
    }

    async fn api(&self, object: &Value) -> (Api<DynamicObject>, String) {
        let api_version = object["apiVersion"].as_str().expect("apiVersion");
        let kind = object["kind"].as_str().expect("kind");
        let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
        let gvk = GroupVersionKind::gvk(group, version, kind);
        let (resource, capabilities) = kube::discovery::pinned_kind(&self.client, &gvk)
            .await
            .unwrap_or_else(|e| panic!("{api_version} {kind} is not served: {e}"));
        let name = object["metadata"]["name"]
            .as_str()
            .expect("name")
            .to_owned();
        let api = match (capabilities.scope, object["metadata"]["namespace"].as_str()) {
            (kube::discovery::Scope::Namespaced, Some(namespace)) => {
                Api::namespaced_with(self.client.clone(), namespace, &resource)
            }
            _ => Api::all_with(self.client.clone(), &resource),
        };
        (api, name)
    }

    /// Creates the object, or replaces the spec of one left by an earlier run.
    pub async fn apply(&self, object: Value) -> Value {
        let (api, name) = self.api(&object).await;
        let params = kube::api::PatchParams::apply("e2e").force();
        let applied = api
            .patch(&name, &params, &kube::api::Patch::Apply(&object))
            .await
            .unwrap_or_else(|e| panic!("applying {name}: {e}\n{object:#}"));
        serde_json::to_value(applied).expect("JSON")
    }

    /// Sets one annotation with a merge patch, as `kubectl annotate --overwrite` does.
    pub async fn annotate(&self, object: &Value, key: &str, value: &str) {
        let (api, name) = self.api(object).await;
        let patch = json!({"metadata": {"annotations": {key: value}}});
        api.patch(
            &name,
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(&patch),
        )
        .await
        .unwrap_or_else(|e| panic!("annotating {name}: {e}"));
    }

    pub async fn get(
        &self,
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
        name: &str,
    ) -> Option<Value> {
        let probe = json!({"apiVersion": api_version, "kind": kind,
            "metadata": {"name": name, "namespace": namespace}});
        let (api, name) = self.api(&probe).await;
        api.get_opt(&name)
            .await
            .expect("get")
            .map(|o| serde_json::to_value(o).expect("JSON"))
    }

    pub async fn external_secret(&self, namespace: &str, name: &str) -> Value {
        self.get(
            "external-secrets.io/v1",
            "ExternalSecret",
            Some(namespace),
            name,
        )
        .await
        .unwrap_or_else(|| panic!("ExternalSecret {namespace}/{name} exists"))
    }

    /// A field of a Kubernetes Secret, decoded; `None` while the Secret or field is missing.
    pub async fn secret_value(&self, namespace: &str, name: &str, field: &str) -> Option<String> {
        let secrets: Api<Secret> = Api::namespaced(self.client.clone(), namespace);
        let secret = secrets.get_opt(name).await.expect("get Secret")?;
        let bytes = secret.data?.get(field)?.0.clone();
        Some(String::from_utf8_lossy(&bytes).into_owned())
    }

    pub async fn wait_for_value(&self, namespace: &str, name: &str, field: &str, want: &str) {
        wait_for(
            &format!("Secret {namespace}/{name} to hold {want:?}"),
            || async { self.secret_value(namespace, name, field).await.as_deref() == Some(want) },
        )
        .await;
    }

    pub async fn namespace(&self, name: &str, labels: Value) {
        self.apply(json!({"apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": name, "labels": labels}}))
            .await;
    }

    /// The service's events.k8s.io Events in `namespace` whose `regarding` names `name` (ESO
    /// records Events of its own on the same objects).
    pub async fn events_about(&self, namespace: &str, name: &str) -> Vec<Value> {
        let events: Api<k8s_openapi::api::events::v1::Event> =
            Api::namespaced(self.client.clone(), namespace);
        let listed = events
            .list(&ListParams::default())
            .await
            .expect("list Events");
        listed
            .items
            .into_iter()
            .map(|e| serde_json::to_value(e).expect("JSON"))
            .filter(|e| {
                e["regarding"]["name"] == name && e["reportingController"] == "eso-refresher"
            })
            .collect()
    }

    /// A ServiceAccount in `namespace` bound to exactly the RBAC rules `overlay` renders, under
    /// names of this test's own; returns a kubeconfig with its token.
    pub async fn service_account_as_shipped(
        &self,
        namespace: &str,
        overlay: &str,
        dir: &Path,
    ) -> Identity {
        let suffix = unique("b");
        let mut granted = Vec::new();
        let rendered = render(overlay);
        let shipped_account = rendered
            .iter()
            .find(|o| o["kind"] == "ServiceAccount")
            .expect("the overlay ships a ServiceAccount");
        let (account, account_namespace) = (
            shipped_account["metadata"]["name"].clone(),
            shipped_account["metadata"]["namespace"].clone(),
        );
        self.apply(json!({"apiVersion": "v1", "kind": "ServiceAccount",
            "metadata": {"name": account, "namespace": namespace}}))
            .await;
        for object in &rendered {
            let kind = object["kind"].as_str().unwrap_or_default();
            if !matches!(
                kind,
                "ClusterRole" | "Role" | "ClusterRoleBinding" | "RoleBinding"
            ) {
                continue;
            }
            if let Some(scope) = object["metadata"]["namespace"].as_str() {
                self.namespace(scope, json!({})).await;
            }
            let mut object = object.clone();
            let name = format!(
                "{}-{suffix}",
                object["metadata"]["name"].as_str().expect("name")
            );
            object["metadata"]["name"] = json!(name);
            if kind.ends_with("Binding") {
                let subjects = object["subjects"].as_array().expect("subjects");
                assert_eq!(subjects.len(), 1, "{object:#}");
                assert_eq!(subjects[0]["kind"], "ServiceAccount");
                assert_eq!(
                    subjects[0]["name"], account,
                    "binds the shipped ServiceAccount"
                );
                assert_eq!(subjects[0]["namespace"], account_namespace);
                object["subjects"][0]["namespace"] = json!(namespace);
                let role = format!(
                    "{}-{suffix}",
                    object["roleRef"]["name"].as_str().expect("roleRef")
                );
                object["roleRef"]["name"] = json!(role);
            } else {
                let scope = object["metadata"]["namespace"].as_str().map(str::to_owned);
                for rule in object["rules"].as_array().expect("rules") {
                    for group in rule["apiGroups"].as_array().into_iter().flatten() {
                        for resource in rule["resources"].as_array().into_iter().flatten() {
                            for verb in rule["verbs"].as_array().into_iter().flatten() {
                                granted.push(Grant {
                                    namespace: scope.clone(),
                                    group: group.as_str().unwrap_or_default().to_owned(),
                                    resource: resource.as_str().unwrap_or_default().to_owned(),
                                    verb: verb.as_str().unwrap_or_default().to_owned(),
                                });
                            }
                        }
                    }
                }
            }
            self.apply(object).await;
        }
        let account = account.as_str().expect("account name").to_owned();
        let accounts: Api<ServiceAccount> = Api::namespaced(self.client.clone(), namespace);
        let request = TokenRequest {
            spec: Some(TokenRequestSpec {
                expiration_seconds: Some(3600),
                ..TokenRequestSpec::default()
            }),
            ..TokenRequest::default()
        };
        let token = accounts
            .create_token_request(&account, &PostParams::default(), &request)
            .await
            .expect("TokenRequest")
            .status
            .expect("token")
            .token;
        let kubeconfig = dir.join("kubeconfig");
        let ca = self.env.dir.join("pki/ca.crt");
        std::fs::write(
            &kubeconfig,
            serde_json::to_string_pretty(&json!({
                "apiVersion": "v1", "kind": "Config", "current-context": "e2e",
                "clusters": [{"name": "envtest", "cluster": {
                    "server": self.server, "certificate-authority": ca}}],
                "users": [{"name": "sa", "user": {"token": token}}],
                "contexts": [{"name": "e2e", "context": {"cluster": "envtest", "user": "sa"}}],
            }))
            .expect("JSON"),
        )
        .expect("write kubeconfig");
        let identity = Identity {
            username: format!("system:serviceaccount:{namespace}:{account}"),
            kubeconfig,
            granted: granted.into_iter().collect(),
        };
        identity.wait_until_authorized().await;
        identity
    }

    /// The API requests `user` made since `from` (a byte offset of the audit log), each
    /// once: by `ResponseComplete`, and a watch by `ResponseStarted` (it completes only when
    /// it ends).
    pub fn audit_since(&self, user: &str, from: u64) -> Vec<Audited> {
        let text = std::fs::read(&self.env.audit_log).expect("audit log");
        let start = usize::try_from(from).unwrap_or(0).min(text.len());
        String::from_utf8_lossy(&text[start..])
            .lines()
            .filter_map(|line| serde_json::from_str::<Value>(line).ok())
            .filter(|e| e["user"]["username"] == user)
            .filter(|e| {
                let watch = e["verb"] == "watch";
                (e["stage"] == "ResponseComplete" && !watch)
                    || (e["stage"] == "ResponseStarted" && watch)
            })
            .map(|e| Audited {
                verb: e["verb"].as_str().unwrap_or_default().to_owned(),
                group: e["objectRef"]["apiGroup"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
                resource: e["objectRef"]["resource"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
                namespace: e["objectRef"]["namespace"].as_str().map(str::to_owned),
                name: e["objectRef"]["name"].as_str().map(str::to_owned),
                code: e["responseStatus"]["code"].as_u64().unwrap_or_default(),
                uri: e["requestURI"].as_str().unwrap_or_default().to_owned(),
            })
            .collect()
    }

    pub fn audit_offset(&self) -> u64 {
        std::fs::metadata(&self.env.audit_log)
            .map(|m| m.len())
            .unwrap_or(0)
    }
}

/// One permission a rendered Role or ClusterRole grants.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Grant {
    /// `None` for a ClusterRole.
    pub namespace: Option<String>,
    pub group: String,
    pub resource: String,
    pub verb: String,
}

/// One request from the audit log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Audited {
    pub verb: String,
    pub group: String,
    pub resource: String,
    pub namespace: Option<String>,
    pub name: Option<String>,
    pub code: u64,
    pub uri: String,
}

pub struct Identity {
    pub username: String,
    pub kubeconfig: PathBuf,
    pub granted: BTreeSet<Grant>,
}

impl Identity {
    /// Until the API server's authorizer allows every grant to this identity (it learns of new
    /// bindings through a watch of its own): asked as the identity itself.
    async fn wait_until_authorized(&self) {
        use k8s_openapi::api::authorization::v1::{
            ResourceAttributes, SelfSubjectAccessReview, SelfSubjectAccessReviewSpec,
        };
        let kubeconfig = Kubeconfig::read_from(&self.kubeconfig).expect("kubeconfig");
        let config =
            kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
                .await
                .expect("config");
        let client = kube::Client::try_from(config).expect("client");
        let reviews: Api<SelfSubjectAccessReview> = Api::all(client);
        for grant in &self.granted {
            let review = SelfSubjectAccessReview {
                spec: SelfSubjectAccessReviewSpec {
                    resource_attributes: Some(ResourceAttributes {
                        group: Some(grant.group.clone()),
                        resource: Some(grant.resource.clone()),
                        verb: Some(grant.verb.clone()),
                        namespace: grant.namespace.clone(),
                        ..ResourceAttributes::default()
                    }),
                    ..SelfSubjectAccessReviewSpec::default()
                },
                ..SelfSubjectAccessReview::default()
            };
            wait_for(&format!("{grant:?} to be authorized"), || async {
                reviews
                    .create(&PostParams::default(), &review)
                    .await
                    .ok()
                    .and_then(|r| r.status)
                    .is_some_and(|s| s.allowed)
            })
            .await;
        }
    }
}

/// A stand-in secret manager for ESO's `webhook` provider: `GET /secrets/<key>` answers
/// `{"value": …}`, after an optional delay per key.
#[derive(Clone, Default)]
pub struct SecretManager {
    values: Arc<Mutex<HashMap<String, String>>>,
    delays: Arc<Mutex<HashMap<String, Duration>>>,
    /// Fetches begun, by key.
    fetches: Arc<Mutex<HashMap<String, usize>>>,
    pub port: u16,
}

impl SecretManager {
    pub async fn start() -> SecretManager {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = listener.local_addr().expect("address").port();
        let manager = SecretManager {
            port,
            ..SecretManager::default()
        };
        let serving = manager.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let serving = serving.clone();
                tokio::spawn(async move { serving.answer(stream).await });
            }
        });
        manager
    }

    async fn answer(&self, mut stream: tokio::net::TcpStream) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut request = Vec::new();
        let mut buffer = [0u8; 4096];
        while !request.windows(4).any(|w| w == b"\r\n\r\n") {
            match stream.read(&mut buffer).await {
                Ok(0) | Err(_) => return,
                Ok(n) => request.extend_from_slice(&buffer[..n]),
            }
        }
        let head = String::from_utf8_lossy(&request);
        let path = head.split_whitespace().nth(1).unwrap_or_default();
        let key = path
            .strip_prefix("/secrets/")
            .unwrap_or_default()
            .to_owned();
        *self
            .fetches
            .lock()
            .expect("lock")
            .entry(key.clone())
            .or_default() += 1;
        let delay = self.delays.lock().expect("lock").get(&key).copied();
        if let Some(delay) = delay {
            tokio::time::sleep(delay).await;
        }
        let value = self.values.lock().expect("lock").get(&key).cloned();
        let (status, body) = match value {
            Some(value) => ("200 OK", json!({"value": value}).to_string()),
            None => ("404 Not Found", json!({"error": "no such key"}).to_string()),
        };
        let response = format!(
            "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        let _ = stream.write_all(response.as_bytes()).await;
    }

    pub fn set(&self, key: &str, value: &str) {
        self.values
            .lock()
            .expect("lock")
            .insert(key.to_owned(), value.to_owned());
    }

    /// How many fetches of `key` ESO has begun.
    pub fn fetches(&self, key: &str) -> usize {
        self.fetches
            .lock()
            .expect("lock")
            .get(key)
            .copied()
            .unwrap_or(0)
    }

    /// `key` no longer exists: ESO's fetches of it get 404.
    pub fn forget(&self, key: &str) {
        self.values.lock().expect("lock").remove(key);
    }

    /// ESO's fetches of `key` are answered this much later.
    pub fn delay(&self, key: &str, delay: Duration) {
        self.delays
            .lock()
            .expect("lock")
            .insert(key.to_owned(), delay);
    }

    /// ESO's `webhook` provider reading `GET /secrets/<key>` from this server.
    pub fn provider(&self) -> Value {
        json!({"webhook": {
            "url": format!("http://127.0.0.1:{}/secrets/{{{{ .remoteRef.key }}}}", self.port),
            "method": "GET",
            "result": {"jsonPath": "$.value"},
        }})
    }
}

pub fn secret_store(namespace: &str, name: &str, provider: Value) -> Value {
    json!({"apiVersion": "external-secrets.io/v1", "kind": "SecretStore",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"provider": provider}})
}

/// An ExternalSecret reading `key` into field `value` of a Secret of its own name.
pub fn external_secret(namespace: &str, name: &str, store: &str, key: &str) -> Value {
    json!({"apiVersion": "external-secrets.io/v1", "kind": "ExternalSecret",
    "metadata": {"name": name, "namespace": namespace},
    "spec": {
        "refreshInterval": "1h",
        "secretStoreRef": {"name": store, "kind": "SecretStore"},
        "target": {"name": name},
        "data": [{"secretKey": "value", "remoteRef": {"key": key}}],
    }})
}

/// The service binary, started as a user starts it, against the cluster as `identity`.
pub struct Service {
    child: tokio::process::Child,
    pub url: String,
    pub log: PathBuf,
    pub http: reqwest::Client,
}

impl Service {
    /// Starts it with the basic settings and `env`, and waits until it is ready.
    pub async fn start(
        identity: &Identity,
        namespace: &str,
        dir: &Path,
        env: &[(&str, &str)],
    ) -> Service {
        let log = dir.join("service.log");
        let file = std::fs::File::create(&log).expect("log file");
        let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_eso-refresher"));
        command
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("KUBECONFIG", &identity.kubeconfig)
            .env("BASIC_AUTH_USER", USER)
            .env("BASIC_AUTH_PASSWORD", PASSWORD)
            .env("HTTP_PORT", "0")
            .env("LOG_FORMAT", "json")
            .env("POD_NAMESPACE", namespace)
            .env("POD_NAME", format!("{namespace}-refresher"))
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(file.try_clone().expect("log file"))
            .stderr(file)
            .kill_on_drop(true);
        let child = command.spawn().expect("the service starts");
        let mut service = Service {
            child,
            url: String::new(),
            log,
            // A fresh connection per request: a pooled one idle past the server's keep-alive
            // may be closed just as a request is sent on it.
            http: reqwest::Client::builder()
                .pool_max_idle_per_host(0)
                .build()
                .expect("HTTP client"),
        };
        let deadline = Instant::now() + PATIENCE;
        let port =
            loop {
                if let Some(port) = service.log_lines().iter().find_map(|line| {
                    (line["message"] == "listening").then(|| line["port"].as_u64())?
                }) {
                    break port;
                }
                if let Ok(Some(status)) = service.child.try_wait() {
                    panic!("the service exited ({status}):\n{}", service.log_text());
                }
                assert!(
                    Instant::now() < deadline,
                    "the service did not listen:\n{}",
                    service.log_text()
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            };
        service.url = format!("http://127.0.0.1:{port}");
        service.wait_ready().await;
        service
    }

    pub async fn wait_ready(&self) {
        let deadline = Instant::now() + PATIENCE;
        while self.get("/readyz").await.is_none_or(|r| r.status() != 200) {
            if Instant::now() > deadline {
                let log = self.log_text();
                let tail: Vec<&str> = log.lines().rev().take(30).collect();
                let tail: Vec<&str> = tail.into_iter().rev().collect();
                panic!(
                    "the service is not ready; its log ends:\n{}",
                    tail.join("\n")
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub async fn get(&self, path: &str) -> Option<reqwest::Response> {
        self.http
            .get(format!("{}{path}", self.url))
            .send()
            .await
            .ok()
    }

    /// POSTs `body` to `path` with the webhook credentials: the status, `Retry-After`, and
    /// the JSON answer.
    pub async fn post(
        &self,
        path: &str,
        body: &Value,
        headers: &[(&str, &str)],
    ) -> (u16, Option<String>, Value) {
        let mut request = self
            .http
            .post(format!("{}{path}", self.url))
            .basic_auth(USER, Some(PASSWORD))
            .body(body.to_string());
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = request.send().await.expect("webhook request");
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        (
            status,
            retry_after,
            response.json().await.unwrap_or(Value::Null),
        )
    }

    /// `POST /webhook/generic` naming `keys`.
    pub async fn generic(&self, keys: &[&str]) -> (u16, Option<String>, Value) {
        self.post("/webhook/generic", &json!({ "keys": keys }), &[])
            .await
    }

    pub async fn metrics(&self) -> String {
        match self.get("/metrics").await {
            Some(response) => response.text().await.unwrap_or_default(),
            None => String::new(),
        }
    }

    /// The value of one sample of `/metrics`, e.g.
    /// `eso_refresher_confirmations_total{outcome="confirmed"}`; 0 when absent.
    pub async fn metric(&self, sample: &str) -> f64 {
        let text = self.metrics().await;
        text.lines()
            .find_map(|line| line.strip_prefix(sample)?.trim().parse().ok())
            .unwrap_or(0.0)
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn log_lines(&self) -> Vec<Value> {
        self.log_text()
            .lines()
            .filter_map(|line| serde_json::from_str(line).ok())
            .collect()
    }

    /// Log lines whose message is `message`.
    pub fn logged(&self, message: &str) -> Vec<Value> {
        self.log_lines()
            .into_iter()
            .filter(|line| {
                line["message"]
                    .as_str()
                    .is_some_and(|m| m.starts_with(message))
            })
            .collect()
    }
}

/// The names under `refreshed` of a webhook's answer, as `namespace/name` (or the name of a
/// ClusterExternalSecret).
pub fn refreshed(answer: &Value) -> Vec<String> {
    answer["refreshed"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|t| match t["namespace"].as_str() {
            Some(namespace) => format!("{namespace}/{}", t["name"].as_str().unwrap_or_default()),
            None => t["name"].as_str().unwrap_or_default().to_owned(),
        })
        .collect()
}

/// Polls `condition` until it holds; panics after [`PATIENCE`].
pub async fn wait_for<F, Fut>(what: &str, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + PATIENCE;
    while !condition().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Holds for `period`: checks `condition` throughout and panics the moment it fails.
pub async fn holds_for<F, Fut>(what: &str, period: Duration, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let until = Instant::now() + period;
    while Instant::now() < until {
        assert!(condition().await, "no longer true: {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Tests that stop part of the cluster hold this exclusively; the others share it.
static CLUSTER_IN_USE: tokio::sync::RwLock<()> = tokio::sync::RwLock::const_new(());

#[allow(dead_code)] // held for its Drop
enum Hold {
    Shared(tokio::sync::RwLockReadGuard<'static, ()>),
    Exclusive(tokio::sync::RwLockWriteGuard<'static, ()>),
}

/// A part of envtest stopped by a test; started again when dropped, however the test ends.
pub struct Stopped {
    env: Envtest,
    restart: Restart,
}

enum Restart {
    /// `start.sh` with these arguments.
    Script(&'static [&'static str]),
    /// The same command line again, on the same port. (`start.sh` would pick another port when
    /// the old one still has connections in TIME_WAIT; an API server that comes back elsewhere
    /// is not a restart its clients can survive.)
    Process {
        argv: Vec<String>,
        pid_file: PathBuf,
    },
}

impl Drop for Stopped {
    fn drop(&mut self) {
        // Not an assertion: this may run while a test is already panicking.
        let started = match &self.restart {
            Restart::Script(args) => self.env.try_script("start.sh", args),
            Restart::Process { argv, pid_file } => restart_process(argv, pid_file, &self.env),
        };
        if let Err(error) = started {
            say(&format!("could not start envtest again: {error}"));
        }
    }
}

/// Starts `argv` detached, logging where envtest logs, with its pid where envtest keeps it.
fn restart_process(argv: &[String], pid_file: &Path, env: &Envtest) -> Result<(), String> {
    let log = env.dir.join("logs/kube-apiserver.log");
    let open = || {
        std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .open(&log)
            .map_err(|e| format!("{}: {e}", log.display()))
    };
    let child = std::process::Command::new("setsid")
        .args(argv)
        .stdin(Stdio::null())
        .stdout(open()?)
        .stderr(open()?)
        .spawn()
        .map_err(|e| format!("restarting the API server: {e}"))?;
    std::fs::write(pid_file, child.id().to_string()).map_err(|e| e.to_string())?;
    // Ready when its kubeconfig's server answers /readyz.
    let deadline = Instant::now() + PATIENCE;
    loop {
        let ready = std::process::Command::new("curl")
            .args([
                "-sk",
                "--max-time",
                "2",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
            ])
            .arg(format!("{}/readyz", env.server_url()?))
            .output()
            .is_ok_and(|o| o.stdout == b"200" || o.stdout == b"401" || o.stdout == b"403");
        if ready {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err("the restarted API server did not answer".into());
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

impl Envtest {
    /// The API server's URL, from the admin kubeconfig.
    fn server_url(&self) -> Result<String, String> {
        Kubeconfig::read_from(&self.kubeconfig)
            .map_err(|e| e.to_string())?
            .clusters
            .first()
            .and_then(|c| c.cluster.as_ref())
            .and_then(|c| c.server.clone())
            .ok_or_else(|| "no server in the kubeconfig".to_owned())
    }

    fn try_script(&self, script: &str, args: &[&str]) -> Result<(), String> {
        let scripts = self
            .script_dir
            .clone()
            .ok_or("stopping and starting envtest needs its scripts beside the repository")?;
        let status = std::process::Command::new("bash")
            .arg(scripts.join(script))
            .args(args)
            .env("ENVTEST_DIR", &self.dir)
            .stdout(Stdio::null())
            .status()
            .map_err(|e| format!("{script}: {e}"))?;
        match status.success() {
            true => Ok(()),
            false => Err(format!("{script} {args:?}: {status}")),
        }
    }

    fn run_script(&self, script: &str, args: &[&str]) {
        if let Err(error) = self.try_script(script, args) {
            panic!("{error}");
        }
    }

    /// Stops the ESO controller until the guard is dropped.
    pub fn stop_eso(&self) -> Stopped {
        self.run_script("stop.sh", &["--eso"]);
        Stopped {
            env: self.clone(),
            restart: Restart::Script(&["--with-eso"]),
        }
    }

    /// Stops the kube-apiserver (etcd and ESO go on) until the guard is dropped: SIGTERM,
    /// and SIGKILL if it has not exited 5 s later (it stops listening at once, then waits for
    /// the long-running requests in flight).
    pub fn stop_api_server(&self) -> Stopped {
        let pid_file = self.dir.join("run/kube-apiserver.pid");
        let pid = std::fs::read_to_string(&pid_file).expect("the API server's pid file");
        let pid = pid.trim().to_owned();
        let argv: Vec<String> = std::fs::read(format!("/proc/{pid}/cmdline"))
            .expect("the API server's command line")
            .split(|b| *b == 0)
            .filter(|arg| !arg.is_empty())
            .map(|arg| String::from_utf8_lossy(arg).into_owned())
            .collect();
        // From here on, however this ends, the API server is started again.
        let stopped = Stopped {
            env: self.clone(),
            restart: Restart::Process { argv, pid_file },
        };
        let alive = || Path::new(&format!("/proc/{pid}")).exists();
        let signal = |name: &str| {
            let _ = std::process::Command::new("kill")
                .args([name, pid.as_str()])
                .status();
        };
        signal("-TERM");
        let deadline = Instant::now() + Duration::from_secs(5);
        while alive() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        if alive() {
            signal("-KILL");
        }
        let deadline = Instant::now() + PATIENCE;
        while alive() {
            assert!(Instant::now() < deadline, "the API server did not stop");
            std::thread::sleep(Duration::from_millis(50));
        }
        stopped
    }
}

/// A test's own namespace, secret manager, store and service identity.
pub struct Scenario {
    _hold: Hold,
    pub cluster: Cluster,
    pub namespace: String,
    pub manager: SecretManager,
    pub store: String,
    pub identity: Identity,
    pub dir: tempfile::TempDir,
    pub tag: String,
}

impl Scenario {
    /// `None` (after a visible line) without envtest. `overlay` names the RBAC the service
    /// runs with: `base` (cluster-wide) or `overlays/namespaced`.
    pub async fn new(test: &str, overlay: &str) -> Option<Scenario> {
        let env = envtest()?;
        let hold = Hold::Shared(CLUSTER_IN_USE.read().await);
        Some(Self::set_up(env, hold, test, overlay).await)
    }

    /// As [`Scenario::new`], while no other test uses the cluster: for tests that stop part
    /// of it.
    pub async fn exclusive(test: &str, overlay: &str) -> Option<Scenario> {
        let env = envtest()?;
        if env.script_dir.is_none() {
            assert!(
                std::env::var_os("ENVTEST_REQUIRED").is_none(),
                "ENVTEST_REQUIRED is set but envtest's scripts are not beside the repository"
            );
            say(
                "skipped: this test stops and starts envtest and needs its scripts beside the repository",
            );
            return None;
        }
        let hold = Hold::Exclusive(CLUSTER_IN_USE.write().await);
        Some(Self::set_up(env, hold, test, overlay).await)
    }

    async fn set_up(env: Envtest, hold: Hold, test: &str, overlay: &str) -> Scenario {
        let cluster = Cluster::connect(env).await;
        let tag = unique(test);
        let namespace = tag.clone();
        cluster.namespace(&namespace, json!({})).await;
        let dir = tempfile::tempdir().expect("temp dir");
        let identity = cluster
            .service_account_as_shipped(&namespace, overlay, dir.path())
            .await;
        let manager = SecretManager::start().await;
        Scenario {
            _hold: hold,
            cluster,
            namespace,
            manager,
            store: "local-http".into(),
            identity,
            dir,
            tag,
        }
    }

    /// A key of this scenario's own, set to `value` at the secret manager.
    pub fn key(&self, name: &str, value: &str) -> String {
        let key = format!("{}-{name}", self.tag);
        self.manager.set(&key, value);
        key
    }

    /// The store in `namespace`, reading from this scenario's secret manager.
    pub async fn store_in(&self, namespace: &str) {
        self.cluster
            .apply(secret_store(
                namespace,
                &self.store,
                self.manager.provider(),
            ))
            .await;
    }

    /// ExternalSecrets created and synced by ESO: each Secret holds its first value.
    pub async fn synced(&self, objects: &[(Value, &str)]) {
        for (object, _) in objects {
            self.cluster.apply(object.clone()).await;
        }
        for (object, value) in objects {
            let namespace = object["metadata"]["namespace"].as_str().expect("namespace");
            let name = object["metadata"]["name"].as_str().expect("name");
            self.cluster
                .wait_for_value(namespace, name, "value", value)
                .await;
        }
    }

    /// The store, and one ExternalSecret `name` in this scenario's namespace reading a key of
    /// its own, synced with "v1"; returns the key.
    pub async fn one_synced(&self, name: &str) -> String {
        let key = self.key(name, "v1");
        self.store_in(&self.namespace).await;
        self.synced(&[(
            external_secret(&self.namespace, name, &self.store, &key),
            "v1",
        )])
        .await;
        key
    }

    pub async fn service(&self, env: &[(&str, &str)]) -> Service {
        Service::start(&self.identity, &self.namespace, self.dir.path(), env).await
    }
}

/// The generation/hash ESO records after syncing an object, and when it started that sync.
pub fn sync_marks(object: &Value) -> (Value, Value) {
    (
        object["status"]["syncedResourceVersion"].clone(),
        object["status"]["refreshTime"].clone(),
    )
}

/// Sorted, for comparisons that ignore order.
pub fn sorted<T: Ord>(items: impl IntoIterator<Item = T>) -> Vec<T> {
    items
        .into_iter()
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect()
}

/// Counts of `(verb, resource)` among audited requests.
pub fn tally(requests: &[Audited]) -> BTreeMap<(String, String), usize> {
    let mut counts = BTreeMap::new();
    for request in requests {
        *counts
            .entry((request.verb.clone(), request.resource.clone()))
            .or_default() += 1;
    }
    counts
}
