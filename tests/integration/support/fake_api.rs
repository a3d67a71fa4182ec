//! A fake Kubernetes API server for external-secrets.io, served over real HTTP in the test
//! process. It does what the real one does for the requests eso-refresher makes — discovery,
//! LIST with resourceVersion and pagination, WATCH streams from a resourceVersion (410 Gone
//! once it is compacted away), JSON merge patch that changes the stored object and bumps its
//! resourceVersion — and records every request so tests can assert exactly what was sent.
//! Its resources, scopes and served versions come from ESO's own CRDs, and every object it
//! stores is validated against the CRD's schema, as the real API server does.

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use actix_web::dev::ServerHandle;
use actix_web::web::{self, Bytes};
use actix_web::{App, HttpRequest, HttpResponse, HttpServer};
use futures::StreamExt;
use serde_json::{Value, json};
use tokio::sync::mpsc;

pub const GROUP: &str = "external-secrets.io";

/// One request as the fake received it.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    pub path: String,
    pub query: BTreeMap<String, String>,
    pub content_type: Option<String>,
    pub body: Option<Value>,
}

impl Request {
    pub fn is_watch(&self) -> bool {
        self.query
            .get("watch")
            .is_some_and(|w| w == "true" || w == "1")
    }

    /// A read of objects: GET of a collection or an object, not a watch, not discovery.
    pub fn is_object_read(&self) -> bool {
        self.method == "GET"
            && !self.is_watch()
            && self.path.split('/').count() > 4
            && self.path.starts_with(&format!("/apis/{GROUP}/"))
    }
}

/// An answer the fake gives instead of the real one, `times` times.
#[derive(Debug, Clone)]
struct Fault {
    method: String,
    path_contains: String,
    kind: FaultKind,
    times: usize,
}

#[derive(Debug, Clone, Copy)]
enum FaultKind {
    /// An error status with a Status body.
    Status(u16),
    /// The connection breaks after the headers.
    Drop,
    /// The answer comes this much later (the request is then served normally).
    Stall(Duration),
}

#[derive(Clone)]
struct WatchEvent {
    resource_version: u64,
    plural: String,
    namespace: Option<String>,
    kind: &'static str,
    object: Value,
}

struct Watcher {
    plural: String,
    namespace: Option<String>,
    sender: mpsc::UnboundedSender<Bytes>,
}

type Key = (String, Option<String>, String);

/// One CustomResourceDefinition of ESO's, as discovery and validation need it.
#[derive(Clone)]
struct Resource {
    plural: String,
    kind: String,
    namespaced: bool,
    /// Version name → (served, schema validator).
    versions: BTreeMap<String, (bool, Arc<jsonschema::Validator>)>,
}

/// Read and compiled once per test binary: the schemas are large.
static ESO_CRDS: std::sync::LazyLock<Vec<Resource>> = std::sync::LazyLock::new(read_eso_crds);

fn eso_crds() -> Vec<Resource> {
    ESO_CRDS.clone()
}

fn read_eso_crds() -> Vec<Resource> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/eso/crds");
    let mut paths: Vec<_> = std::fs::read_dir(dir)
        .expect("CRD fixtures")
        .map(|entry| entry.expect("entry").path())
        .collect();
    paths.sort();
    paths
        .iter()
        .map(|path| {
            let text = std::fs::read_to_string(path).expect("CRD");
            let crd: Value = serde_saphyr::from_str(&text).expect("CRD YAML");
            let spec = &crd["spec"];
            let versions = spec["versions"]
                .as_array()
                .expect("versions")
                .iter()
                .map(|version| {
                    let schema = &version["schema"]["openAPIV3Schema"];
                    let validator = jsonschema::validator_for(schema).expect("CRD schema compiles");
                    let name = version["name"].as_str().expect("version name").to_owned();
                    (name, (version["served"] == true, Arc::new(validator)))
                })
                .collect();
            Resource {
                plural: spec["names"]["plural"].as_str().expect("plural").to_owned(),
                kind: spec["names"]["kind"].as_str().expect("kind").to_owned(),
                namespaced: spec["scope"] == "Namespaced",
                versions,
            }
        })
        .collect()
}

struct Cluster {
    resources: Vec<Resource>,
    /// Versions of the group served, preferred first.
    served: Vec<String>,
    objects: BTreeMap<Key, Value>,
    resource_version: u64,
    /// Events since `compacted`; a watch from before that gets 410 Gone.
    history: Vec<WatchEvent>,
    compacted: u64,
    watchers: Vec<Watcher>,
    requests: Vec<Request>,
    faults: Vec<Fault>,
    /// Resources (plural) that may not be listed across namespaces, as with Roles only.
    forbidden_cluster_lists: Vec<String>,
    next_uid: u64,
    /// Kubernetes Events created (events.k8s.io/v1).
    events: Vec<Value>,
    patch_delay: Duration,
    /// While true, PATCH requests wait (they are recorded first).
    patches_held: tokio::sync::watch::Sender<bool>,
}

/// The fake server; dropping it stops it.
pub struct FakeApiServer {
    pub url: String,
    cluster: Arc<Mutex<Cluster>>,
    handle: ServerHandle,
}

impl Drop for FakeApiServer {
    fn drop(&mut self) {
        let handle = self.handle.clone();
        tokio::spawn(async move { handle.stop(false).await });
    }
}

/// Serves what `configure` sets up on a loopback port, with one worker, in the background:
/// its URL and the handle that stops it. For the fakes the tests and the bench start.
pub fn serve_on_loopback(
    configure: impl Fn(&mut web::ServiceConfig) + Clone + Send + 'static,
) -> (String, ServerHandle) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let server = HttpServer::new(move || App::new().configure(configure.clone()))
        .workers(1)
        .disable_signals()
        .listen(listener)
        .expect("listen")
        .run();
    let handle = server.handle();
    tokio::spawn(server);
    (format!("http://127.0.0.1:{port}"), handle)
}

fn plural_of(kind: &str) -> String {
    format!("{}s", kind.to_ascii_lowercase())
}

fn status(code: u16, reason: &str, message: &str) -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
           "message": message, "reason": reason, "code": code})
}

impl FakeApiServer {
    /// A cluster with ESO's CRDs installed: external-secrets.io served as they say (v1 only).
    pub async fn start() -> FakeApiServer {
        let resources = eso_crds();
        let served = resources[0]
            .versions
            .iter()
            .filter(|(_, (served, _))| *served)
            .map(|(name, _)| name.clone())
            .collect();
        Self::with(resources, served).await
    }

    /// A cluster serving exactly `versions` of external-secrets.io, as older ESO releases did
    /// (`&["v1beta1"]`), or none of them (`&[]`: ESO not installed).
    pub async fn serving(versions: &[&str]) -> FakeApiServer {
        let served = versions.iter().map(|v| v.to_string()).collect();
        Self::with(eso_crds(), served).await
    }

    async fn with(resources: Vec<Resource>, served: Vec<String>) -> FakeApiServer {
        let cluster = Arc::new(Mutex::new(Cluster {
            resources,
            served,
            objects: BTreeMap::new(),
            resource_version: 1000,
            history: Vec::new(),
            compacted: 1000,
            watchers: Vec::new(),
            requests: Vec::new(),
            faults: Vec::new(),
            forbidden_cluster_lists: Vec::new(),
            next_uid: 1,
            events: Vec::new(),
            patch_delay: Duration::ZERO,
            patches_held: tokio::sync::watch::Sender::new(false),
        }));
        let data = web::Data::from(cluster.clone());
        let (url, handle) = serve_on_loopback(move |app| {
            app.app_data(data.clone())
                .app_data(web::PayloadConfig::new(16 * 1024 * 1024))
                .default_service(web::to(handle));
        });
        FakeApiServer {
            url,
            cluster,
            handle,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Cluster> {
        self.cluster.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A kube client talking to this server.
    pub fn client(&self) -> kube::Client {
        let config = kube::Config::new(self.url.parse().expect("url"));
        kube::Client::try_from(config).expect("client")
    }

    /// Stores an object (given as for `kubectl apply`) and announces it to watches. Panics if
    /// the object does not validate against its CRD: a test object must be a real one.
    pub fn apply(&self, mut object: Value) -> Value {
        let mut cluster = self.lock();
        if let Err(problems) = cluster.validate(&object) {
            panic!("invalid test object: {problems}\n{object:#}");
        }
        let kind = object["kind"].as_str().expect("kind").to_owned();
        let namespace = object["metadata"]["namespace"].as_str().map(str::to_owned);
        let name = object["metadata"]["name"]
            .as_str()
            .expect("name")
            .to_owned();
        let key = (plural_of(&kind), namespace, name);
        let existed = cluster.objects.get(&key).cloned();
        let uid = match &existed {
            Some(old) => old["metadata"]["uid"].clone(),
            None => {
                cluster.next_uid += 1;
                json!(format!("uid-{}", cluster.next_uid))
            }
        };
        object["metadata"]["uid"] = uid;
        let event = if existed.is_some() {
            "MODIFIED"
        } else {
            "ADDED"
        };
        cluster.store(key, object, event)
    }

    pub fn delete(&self, kind: &str, namespace: Option<&str>, name: &str) {
        let mut cluster = self.lock();
        let key = (
            plural_of(kind),
            namespace.map(str::to_owned),
            name.to_owned(),
        );
        if let Some(mut object) = cluster.objects.remove(&key) {
            cluster.resource_version += 1;
            object["metadata"]["resourceVersion"] = json!(cluster.resource_version.to_string());
            cluster.announce(&key, "DELETED", object);
        }
    }

    /// Deletes an object without telling the watches, as when it is deleted between a watch
    /// event and a patch.
    pub fn delete_unannounced(&self, kind: &str, namespace: Option<&str>, name: &str) {
        let key = (
            plural_of(kind),
            namespace.map(str::to_owned),
            name.to_owned(),
        );
        self.lock().objects.remove(&key);
    }

    /// Stops serving every version of the group, as when ESO's CRDs are removed.
    pub fn stop_serving(&self) {
        self.lock().served.clear();
    }

    pub fn get(&self, kind: &str, namespace: Option<&str>, name: &str) -> Option<Value> {
        let key = (
            plural_of(kind),
            namespace.map(str::to_owned),
            name.to_owned(),
        );
        self.lock().objects.get(&key).cloned()
    }

    pub fn requests(&self) -> Vec<Request> {
        self.lock().requests.clone()
    }

    pub fn patches(&self) -> Vec<Request> {
        self.requests()
            .into_iter()
            .filter(|r| r.method == "PATCH")
            .collect()
    }

    pub fn clear_requests(&self) {
        self.lock().requests.clear();
    }

    /// The next `times` requests with `method` whose path contains `path_contains` get
    /// `status` instead of their answer.
    pub fn fail(&self, method: &str, path_contains: &str, status: u16, times: usize) {
        self.inject(method, path_contains, FaultKind::Status(status), times);
    }

    /// The next `times` matching requests lose their connection in mid-answer.
    pub fn drop_connections(&self, method: &str, path_contains: &str, times: usize) {
        self.inject(method, path_contains, FaultKind::Drop, times);
    }

    /// The next `times` matching requests are answered only after `stall`.
    pub fn stall(&self, method: &str, path_contains: &str, stall: Duration, times: usize) {
        self.inject(method, path_contains, FaultKind::Stall(stall), times);
    }

    fn inject(&self, method: &str, path_contains: &str, kind: FaultKind, times: usize) {
        self.lock().faults.push(Fault {
            method: method.to_owned(),
            path_contains: path_contains.to_owned(),
            kind,
            times,
        });
    }

    /// The Kubernetes Events created so far.
    pub fn events(&self) -> Vec<Value> {
        self.lock().events.clone()
    }

    /// Holds every PATCH (after recording it) until `release_patches`.
    pub fn hold_patches(&self) {
        self.lock().patches_held.send_replace(true);
    }

    pub fn release_patches(&self) {
        self.lock().patches_held.send_replace(false);
    }

    /// Makes every PATCH answer only after `delay`, like a busy API server.
    pub fn delay_patches(&self, delay: Duration) {
        self.lock().patch_delay = delay;
    }

    /// Forgets every injected fault.
    pub fn heal(&self) {
        self.lock().faults.clear();
    }

    /// Answers 403 to LIST and WATCH across all namespaces, like a namespaced Role does.
    /// Grants by Roles only: nothing may be listed across namespaces, ClusterSecretStores
    /// not at all.
    pub fn forbid_cluster_list(&self) {
        self.lock().forbidden_cluster_lists =
            ["externalsecrets", "secretstores", "clustersecretstores"]
                .map(str::to_owned)
                .to_vec();
    }

    /// Ends every open watch, as an API server restart or a load balancer does.
    pub fn close_watches(&self) {
        self.lock().watchers.clear();
    }

    /// Forgets history: watches from an older resourceVersion now get 410 Gone.
    pub fn compact(&self) {
        let mut cluster = self.lock();
        cluster.compacted = cluster.resource_version;
        cluster.history.clear();
    }

    pub fn open_watches(&self) -> usize {
        let mut cluster = self.lock();
        cluster.watchers.retain(|w| !w.sender.is_closed());
        cluster.watchers.len()
    }

    /// Open watches of one resource (`externalsecrets`, `secretstores`, …).
    pub fn open_watches_of(&self, plural: &str) -> usize {
        let mut cluster = self.lock();
        cluster.watchers.retain(|w| !w.sender.is_closed());
        cluster
            .watchers
            .iter()
            .filter(|w| w.plural == plural)
            .count()
    }
}

impl Cluster {
    fn resource(&self, plural: &str) -> Option<&Resource> {
        self.resources.iter().find(|r| r.plural == plural)
    }

    /// Checks `object` against its CRD's schema, at the version its apiVersion names.
    fn validate(&self, object: &Value) -> Result<(), String> {
        let kind = object["kind"].as_str().unwrap_or_default();
        let version = object["apiVersion"]
            .as_str()
            .and_then(|v| v.strip_prefix(&format!("{GROUP}/")))
            .ok_or("apiVersion is not external-secrets.io/…")?;
        let resource = self
            .resources
            .iter()
            .find(|r| r.kind == kind)
            .ok_or_else(|| format!("no CRD for kind {kind:?}"))?;
        let (_, validator) = resource
            .versions
            .get(version)
            .ok_or_else(|| format!("{kind} has no version {version}"))?;
        let problems: Vec<String> = validator
            .iter_errors(object)
            .map(|e| format!("{}: {e}", e.instance_path()))
            .collect();
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems.join("; "))
        }
    }

    fn store(&mut self, key: Key, mut object: Value, event: &'static str) -> Value {
        // As the API server counts it for custom resources: 1 at creation, one more for each
        // change of the spec; metadata and status leave it alone.
        let generation = match self.objects.get(&key) {
            None => 1,
            Some(old) => {
                let previous = old["metadata"]["generation"].as_i64().unwrap_or(1);
                previous + i64::from(old.get("spec") != object.get("spec"))
            }
        };
        object["metadata"]["generation"] = json!(generation);
        self.resource_version += 1;
        object["metadata"]["resourceVersion"] = json!(self.resource_version.to_string());
        if object["metadata"]["creationTimestamp"].is_null() {
            object["metadata"]["creationTimestamp"] = json!("2026-01-01T00:00:00Z");
        }
        self.objects.insert(key.clone(), object.clone());
        self.announce(&key, event, object.clone());
        object
    }

    fn announce(&mut self, key: &Key, kind: &'static str, object: Value) {
        let event = WatchEvent {
            resource_version: self.resource_version,
            plural: key.0.clone(),
            namespace: key.1.clone(),
            kind,
            object,
        };
        self.watchers
            .retain(|w| !w.sender.is_closed() && (!w.wants(&event) || w.send(&event)));
        self.history.push(event);
    }

    fn take_fault(&mut self, method: &str, path: &str) -> Option<FaultKind> {
        let fault = self
            .faults
            .iter_mut()
            .find(|f| f.times > 0 && f.method == method && path.contains(&f.path_contains))?;
        fault.times -= 1;
        Some(fault.kind)
    }
}

impl Watcher {
    fn wants(&self, event: &WatchEvent) -> bool {
        event.plural == self.plural
            && (self.namespace.is_none() || self.namespace == event.namespace)
    }

    fn send(&self, event: &WatchEvent) -> bool {
        let line = json!({"type": event.kind, "object": event.object});
        self.sender.send(Bytes::from(format!("{line}\n"))).is_ok()
    }
}

/// A parsed resource path under /apis/external-secrets.io/{version}/.
struct ResourcePath {
    version: String,
    plural: String,
    namespace: Option<String>,
    name: Option<String>,
}

fn parse_resource_path(path: &str) -> Option<ResourcePath> {
    let rest = path.strip_prefix(&format!("/apis/{GROUP}/"))?;
    let parts: Vec<&str> = rest.split('/').filter(|p| !p.is_empty()).collect();
    let (version, namespace, tail) = match parts.as_slice() {
        [version, "namespaces", ns, tail @ ..] if !tail.is_empty() => {
            (*version, Some(ns.to_string()), tail)
        }
        [version, tail @ ..] if !tail.is_empty() => (*version, None, tail),
        _ => return None,
    };
    let (plural, name) = match tail {
        [plural] => (plural.to_string(), None),
        [plural, name] => (plural.to_string(), Some(name.to_string())),
        _ => return None,
    };
    Some(ResourcePath {
        version: version.to_owned(),
        plural,
        namespace,
        name,
    })
}

/// What the API server says of an object's `name` or `generateName` when it is not a DNS
/// subdomain (a `generateName` may end in a dash: the random suffix follows it).
fn invalid_name(metadata: &Value) -> Option<String> {
    // Dot-separated labels, each of lower-case alphanumerics and dashes, starting and ending
    // alphanumeric.
    fn is_dns_subdomain(name: &str) -> bool {
        let alphanumeric = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit();
        name.len() <= 253
            && name.split('.').all(|label| {
                label.starts_with(alphanumeric)
                    && label.ends_with(alphanumeric)
                    && label.chars().all(|c| alphanumeric(c) || c == '-')
            })
    }
    match (metadata["name"].as_str(), metadata["generateName"].as_str()) {
        (Some(name), _) if !is_dns_subdomain(name) => Some(format!(
            "metadata.name: Invalid value: {name:?}: a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.'"
        )),
        (Some(_), _) => None,
        (None, Some(prefix)) => {
            let masked = prefix.strip_suffix('-').map(|p| format!("{p}a"));
            (!is_dns_subdomain(masked.as_deref().unwrap_or(prefix)))
                .then(|| format!("metadata.generateName: Invalid value: {prefix:?}"))
        }
        (None, None) => {
            Some("metadata.name: Required value: name or generateName is required".into())
        }
    }
}

fn json_response(code: u16, body: Value) -> HttpResponse {
    HttpResponse::build(actix_web::http::StatusCode::from_u16(code).expect("status"))
        .content_type("application/json")
        .body(body.to_string())
}

fn error(code: u16, reason: &str, message: &str) -> HttpResponse {
    json_response(code, status(code, reason, message))
}

/// The API server's answer for an object that does not exist: it names the object.
fn not_found(target: &ResourcePath, name: &str) -> HttpResponse {
    let mut body = status(
        404,
        "NotFound",
        &format!("{}.{GROUP} \"{name}\" not found", target.plural),
    );
    body["details"] = json!({"name": name, "group": GROUP, "kind": target.plural});
    json_response(404, body)
}

async fn handle(
    request: HttpRequest,
    body: Bytes,
    cluster: web::Data<Mutex<Cluster>>,
) -> HttpResponse {
    let path = request.path().to_owned();
    let method = request.method().as_str().to_owned();
    let query: BTreeMap<String, String> =
        web::Query::<BTreeMap<String, String>>::from_query(request.query_string())
            .map(|q| q.into_inner())
            .unwrap_or_default();
    let content_type = request
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let parsed_body =
        (!body.is_empty()).then(|| serde_json::from_slice(&body).unwrap_or(Value::Null));

    // Record the request and decide on a fault, then let go of the lock while stalling.
    let (fault, mut delay, mut held) = {
        let mut cluster = cluster.lock().unwrap_or_else(|p| p.into_inner());
        cluster.requests.push(Request {
            method: method.clone(),
            path: path.clone(),
            query: query.clone(),
            content_type: content_type.clone(),
            body: parsed_body.clone(),
        });
        let delay = if method == "PATCH" {
            cluster.patch_delay
        } else {
            Duration::ZERO
        };
        let held = cluster.patches_held.subscribe();
        (cluster.take_fault(&method, &path), delay, held)
    };
    if method == "PATCH" {
        while *held.borrow_and_update() {
            if held.changed().await.is_err() {
                break;
            }
        }
    }
    match fault {
        Some(FaultKind::Status(code)) => {
            let reason = match code {
                403 => "Forbidden",
                404 => "NotFound",
                409 => "Conflict",
                429 => "TooManyRequests",
                503 => "ServiceUnavailable",
                _ => "InternalError",
            };
            return error(code, reason, "injected fault");
        }
        Some(FaultKind::Drop) => {
            // Headers go out, then the connection breaks in the middle of the body.
            let broken = futures::stream::iter([Err::<Bytes, _>(
                actix_web::error::ErrorInternalServerError("connection dropped"),
            )]);
            return HttpResponse::Ok()
                .content_type("application/json")
                .streaming(broken);
        }
        Some(FaultKind::Stall(stall)) => delay += stall,
        None => {}
    }
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let mut guard = cluster.lock().unwrap_or_else(|p| p.into_inner());
    let cluster = &mut *guard;

    match (method.as_str(), path.as_str()) {
        ("GET", "/api") => {
            return json_response(
                200,
                json!({"kind": "APIVersions", "versions": ["v1"],
                "serverAddressByClientCIDRs": []}),
            );
        }
        ("GET", "/apis") => {
            let versions: Vec<Value> = cluster
                .served
                .iter()
                .map(|v| json!({"groupVersion": format!("{GROUP}/{v}"), "version": v}))
                .collect();
            let groups: Vec<Value> = versions
                .first()
                .map(|preferred| json!({"name": GROUP, "versions": versions, "preferredVersion": preferred}))
                .into_iter()
                .collect();
            return json_response(
                200,
                json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}),
            );
        }
        _ => {}
    }
    if let Some(version) = path.strip_prefix(&format!("/apis/{GROUP}/"))
        && !version.contains('/')
    {
        if !cluster.served.iter().any(|v| v == version) {
            return error(
                404,
                "NotFound",
                "the server could not find the requested resource",
            );
        }
        let resources: Vec<Value> = cluster
            .resources
            .iter()
            .map(|r| json!({"name": r.plural, "singularName": r.kind.to_ascii_lowercase(),
                "namespaced": r.namespaced, "kind": r.kind,
                "verbs": ["delete","deletecollection","get","list","patch","create","update","watch"]}))
            .collect();
        return json_response(
            200,
            json!({"kind": "APIResourceList", "apiVersion": "v1",
            "groupVersion": format!("{GROUP}/{version}"), "resources": resources}),
        );
    }

    // Kubernetes Events: stored as they come, for tests to read.
    if let Some(rest) = path.strip_prefix("/apis/events.k8s.io/v1/namespaces/") {
        let Some(mut event) = parsed_body.filter(Value::is_object) else {
            return error(400, "BadRequest", "event body is not a JSON object");
        };
        let namespace = rest.split('/').next().unwrap_or_default().to_owned();
        event["metadata"]["namespace"] = json!(namespace);
        return match method.as_str() {
            "POST" if invalid_name(&event["metadata"]).is_some() => {
                let problem = invalid_name(&event["metadata"]).unwrap_or_default();
                error(422, "Invalid", &format!("Event is invalid: {problem}"))
            }
            "POST" => {
                cluster.events.push(event.clone());
                json_response(201, event)
            }
            "PATCH" => json_response(200, event),
            _ => error(405, "MethodNotAllowed", "method not served by the fake"),
        };
    }

    let Some(target) = parse_resource_path(&path) else {
        return error(
            404,
            "NotFound",
            "the server could not find the requested resource",
        );
    };
    let known = cluster
        .resource(&target.plural)
        .is_some_and(|r| r.namespaced || target.namespace.is_none());
    if !cluster.served.contains(&target.version) || !known {
        return error(
            404,
            "NotFound",
            "the server could not find the requested resource",
        );
    }
    let api_version = format!("{GROUP}/{}", target.version);
    let with_version = |mut object: Value| {
        object["apiVersion"] = json!(api_version);
        object
    };

    match (method.as_str(), &target.name) {
        ("GET", None) => {
            if target.namespace.is_none()
                && cluster.forbidden_cluster_lists.contains(&target.plural)
            {
                let plural = &target.plural;
                return error(
                    403,
                    "Forbidden",
                    &format!(
                        "{plural}.external-secrets.io is forbidden: \
                        User \"system:serviceaccount:eso:eso-refresher\" cannot list resource \
                        \"{plural}\" at the cluster scope"
                    ),
                );
            }
            let watch = query.get("watch").is_some_and(|w| w == "true" || w == "1");
            if watch {
                watch_response(cluster, &target, &query, &api_version)
            } else {
                list_response(cluster, &target, &query, &api_version)
            }
        }
        ("GET", Some(name)) => {
            let key = (
                target.plural.clone(),
                target.namespace.clone(),
                name.clone(),
            );
            match cluster.objects.get(&key) {
                Some(object) => json_response(200, with_version(object.clone())),
                None => not_found(&target, name),
            }
        }
        ("PATCH", Some(name)) => {
            if content_type.as_deref() != Some("application/merge-patch+json") {
                return error(
                    415,
                    "UnsupportedMediaType",
                    "only merge patches are served here",
                );
            }
            let key = (
                target.plural.clone(),
                target.namespace.clone(),
                name.clone(),
            );
            let Some(mut object) = cluster.objects.get(&key).cloned() else {
                return not_found(&target, name);
            };
            let Some(patch) = parsed_body.filter(Value::is_object) else {
                return error(400, "BadRequest", "patch body is not a JSON object");
            };
            json_patch::merge(&mut object, &patch);
            object["apiVersion"] = json!(api_version);
            if let Err(problems) = cluster.validate(&object) {
                return error(422, "Invalid", &format!("{name} is invalid: {problems}"));
            }
            let stored = cluster.store(key, object, "MODIFIED");
            json_response(200, with_version(stored))
        }
        _ => error(405, "MethodNotAllowed", "method not served by the fake"),
    }
}

fn in_scope(key: &Key, target: &ResourcePath) -> bool {
    key.0 == target.plural && (target.namespace.is_none() || key.1 == target.namespace)
}

/// A LIST's page: where it starts (the `continue` token is an offset) and how long it is.
fn page_bounds(query: &BTreeMap<String, String>) -> (usize, usize) {
    let offset = query
        .get("continue")
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let limit = query
        .get("limit")
        .and_then(|l| l.parse().ok())
        .filter(|l| *l > 0)
        .unwrap_or(usize::MAX);
    (offset, limit)
}

/// A LIST page. Only the page's objects are copied, so paging through a large scope costs
/// the same per page as the real API server's.
fn list_response(
    cluster: &Cluster,
    target: &ResourcePath,
    query: &BTreeMap<String, String>,
    api_version: &str,
) -> HttpResponse {
    let (offset, limit) = page_bounds(query);
    // Keys sort by plural, then namespace (None first), then name: a scope is one range.
    let start: Key = (
        target.plural.clone(),
        target.namespace.clone(),
        String::new(),
    );
    let in_scope_objects = cluster
        .objects
        .range(start..)
        .take_while(|(key, _)| in_scope(key, target));
    let mut page = Vec::new();
    let mut total = 0;
    for (i, (_, object)) in in_scope_objects.enumerate() {
        total = i + 1;
        if i >= offset && page.len() < limit {
            let mut object = object.clone();
            object["apiVersion"] = json!(api_version);
            page.push(object);
        }
    }
    let next = offset + page.len();
    let mut metadata = json!({"resourceVersion": cluster.resource_version.to_string()});
    if next < total {
        metadata["continue"] = json!(next.to_string());
        metadata["remainingItemCount"] = json!(total - next);
    }
    let kind = cluster
        .resource(&target.plural)
        .map(|r| format!("{}List", r.kind))
        .unwrap_or_default();
    json_response(
        200,
        json!({"apiVersion": api_version, "kind": kind,
        "metadata": metadata, "items": page}),
    )
}

fn watch_response(
    cluster: &mut Cluster,
    target: &ResourcePath,
    query: &BTreeMap<String, String>,
    api_version: &str,
) -> HttpResponse {
    let (sender, receiver) = mpsc::unbounded_channel::<Bytes>();
    let watcher = Watcher {
        plural: target.plural.clone(),
        namespace: target.namespace.clone(),
        sender,
    };
    let from: u64 = query
        .get("resourceVersion")
        .and_then(|rv| rv.parse().ok())
        .unwrap_or(0);
    if from == 0 {
        // No resourceVersion: the current state as ADDED events, then changes.
        for (key, object) in &cluster.objects {
            if in_scope(key, target) {
                let line = json!({"type": "ADDED", "object": object});
                let _ = watcher.sender.send(Bytes::from(format!("{line}\n")));
            }
        }
    } else if from < cluster.compacted {
        let gone = status(
            410,
            "Expired",
            &format!("too old resource version: {from} ({})", cluster.compacted),
        );
        let line = json!({"type": "ERROR", "object": gone});
        let _ = watcher.sender.send(Bytes::from(format!("{line}\n")));
        drop(watcher);
        return streaming(receiver, None);
    } else {
        for event in cluster.history.iter().filter(|e| e.resource_version > from) {
            if watcher.wants(event) {
                watcher.send(event);
            }
        }
    }
    if query
        .get("allowWatchBookmarks")
        .is_some_and(|b| b == "true")
    {
        let bookmark = json!({"type": "BOOKMARK", "object": {"apiVersion": api_version,
            "kind": "ExternalSecret", "metadata": {"resourceVersion": cluster.resource_version.to_string()}}});
        let _ = watcher.sender.send(Bytes::from(format!("{bookmark}\n")));
    }
    cluster.watchers.push(watcher);
    let timeout = query
        .get("timeoutSeconds")
        .and_then(|t| t.parse().ok())
        .map(Duration::from_secs);
    streaming(receiver, timeout)
}

fn streaming(receiver: mpsc::UnboundedReceiver<Bytes>, timeout: Option<Duration>) -> HttpResponse {
    let lines = futures::stream::unfold(receiver, |mut receiver| async move {
        receiver
            .recv()
            .await
            .map(|line| (Ok::<_, actix_web::Error>(line), receiver))
    });
    let ends = tokio::time::sleep(timeout.unwrap_or(Duration::from_secs(3600)));
    HttpResponse::Ok()
        .content_type("application/json")
        .streaming(lines.take_until(ends))
}

// =============================================================================================
// Benchmark support, used by benches/refresh.rs only. Everything above is the fake as the
// integration tests use it; this block only adds to it and changes nothing there.
// =============================================================================================

/// Arrival instants of PATCH and PUT requests at the benchmark front, with "METHOD path".
#[allow(dead_code)] // the integration tests do not use the benchmark additions
pub type Arrivals = Arc<Mutex<Vec<(std::time::Instant, String)>>>;

#[allow(dead_code)] // the integration tests do not use the benchmark additions
impl FakeApiServer {
    /// Stores objects as `apply` does (uid, resourceVersion, creationTimestamp) but without
    /// schema validation and without watch events or history: validating 100k objects takes
    /// minutes. For loading before anything watches; callers `apply` one object of each shape
    /// first so that the shapes are known to be valid. Returns how many were stored.
    pub fn load_unvalidated(&self, objects: impl IntoIterator<Item = Value>) -> usize {
        let mut cluster = self.lock();
        let mut count = 0;
        for mut object in objects {
            let kind = object["kind"].as_str().expect("kind").to_owned();
            let namespace = object["metadata"]["namespace"].as_str().map(str::to_owned);
            let name = object["metadata"]["name"]
                .as_str()
                .expect("name")
                .to_owned();
            cluster.next_uid += 1;
            cluster.resource_version += 1;
            object["metadata"]["uid"] = json!(format!("uid-{}", cluster.next_uid));
            object["metadata"]["resourceVersion"] = json!(cluster.resource_version.to_string());
            object["metadata"]["creationTimestamp"] = json!("2026-01-01T00:00:00Z");
            cluster
                .objects
                .insert((plural_of(&kind), namespace, name), object);
            count += 1;
        }
        count
    }

    /// How many requests have been recorded so far (cheaper than `requests().len()`).
    pub fn request_count(&self) -> usize {
        self.lock().requests.len()
    }

    /// Requests recorded from position `from` on, as (method, path, is a watch) only.
    pub fn request_summaries_since(&self, from: usize) -> Vec<(String, String, bool)> {
        let cluster = self.lock();
        cluster
            .requests
            .iter()
            .skip(from)
            .map(|r| (r.method.clone(), r.path.clone(), r.is_watch()))
            .collect()
    }

    /// A second listener on the same cluster state, for benchmarks. Everything goes to the
    /// fake's own handler (same recording, faults, validation, watches, merge patch), except:
    /// - `GET /api/v1/namespaces`, which the original tool calls: a NamespaceList of every
    ///   namespace that holds an object;
    /// - `PUT` of an external-secrets.io object, which the original tool sends: a full update
    ///   checked against the stored resourceVersion (409 on mismatch) and the CRD schema, as
    ///   the API server does;
    /// - LIST (GET of a collection, not a watch) when no faults are pending and cluster lists
    ///   are not forbidden: the same answer as the fake's (offset continue tokens, limit,
    ///   remainingItemCount) but built from the page only; the fake's own list copies every
    ///   object of the scope for each page, which at 100k objects makes the fake, not the
    ///   service under test, the bottleneck.
    ///
    /// The arrival instant of each PATCH and PUT is recorded before it is handled.
    pub fn start_bench_front(&self) -> (String, ServerHandle, Arrivals) {
        let arrivals: Arrivals = Arc::default();
        let data = web::Data::from(self.cluster.clone());
        let recorded = web::Data::from(arrivals.clone());
        let (url, handle) = serve_on_loopback(move |app| {
            app.app_data(data.clone())
                .app_data(recorded.clone())
                .app_data(web::PayloadConfig::new(16 * 1024 * 1024))
                .default_service(web::to(Self::bench_front));
        });
        (url, handle, arrivals)
    }

    async fn bench_front(
        request: HttpRequest,
        body: Bytes,
        cluster: web::Data<Mutex<Cluster>>,
        arrivals: web::Data<Mutex<Vec<(std::time::Instant, String)>>>,
    ) -> HttpResponse {
        let arrived = std::time::Instant::now();
        let method = request.method().as_str().to_owned();
        let path = request.path().to_owned();
        if method == "PATCH" || method == "PUT" {
            arrivals
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push((arrived, format!("{method} {path}")));
        }
        let query: BTreeMap<String, String> =
            web::Query::<BTreeMap<String, String>>::from_query(request.query_string())
                .map(|q| q.into_inner())
                .unwrap_or_default();
        let is_watch = query.get("watch").is_some_and(|w| w == "true" || w == "1");
        let served_here = {
            let mut guard = cluster.lock().unwrap_or_else(|p| p.into_inner());
            let state = &mut *guard;
            let target = parse_resource_path(&path);
            let no_faults = state.faults.iter().all(|f| f.times == 0);
            let answer = match (method.as_str(), &target) {
                ("GET", _) if path == "/api/v1/namespaces" => Some(Self::bench_namespaces(state)),
                ("PUT", Some(target)) if target.name.is_some() && no_faults => {
                    Some(Self::bench_put(state, target, &body))
                }
                ("GET", Some(target))
                    if target.name.is_none()
                        && !is_watch
                        && no_faults
                        && state.forbidden_cluster_lists.is_empty() =>
                {
                    Some(Self::bench_list(state, target, &query))
                }
                _ => None,
            };
            if answer.is_some() {
                let content_type = request
                    .headers()
                    .get("content-type")
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned);
                state.requests.push(Request {
                    method: method.clone(),
                    path: path.clone(),
                    query,
                    content_type,
                    body: (!body.is_empty())
                        .then(|| serde_json::from_slice(&body).unwrap_or(Value::Null)),
                });
            }
            answer
        };
        match served_here {
            Some(response) => response,
            None => handle(request, body, cluster).await,
        }
    }

    fn bench_namespaces(cluster: &Cluster) -> HttpResponse {
        let namespaces: std::collections::BTreeSet<&str> = cluster
            .objects
            .keys()
            .filter_map(|(_, namespace, _)| namespace.as_deref())
            .collect();
        let items: Vec<Value> = namespaces
            .into_iter()
            .map(|ns| {
                json!({"apiVersion": "v1", "kind": "Namespace",
                "metadata": {"name": ns}, "status": {"phase": "Active"}})
            })
            .collect();
        json_response(
            200,
            json!({"apiVersion": "v1", "kind": "NamespaceList",
            "metadata": {"resourceVersion": cluster.resource_version.to_string()},
            "items": items}),
        )
    }

    fn bench_known(cluster: &Cluster, target: &ResourcePath) -> bool {
        cluster.served.contains(&target.version)
            && cluster
                .resource(&target.plural)
                .is_some_and(|r| r.namespaced || target.namespace.is_none())
    }

    fn bench_list(
        cluster: &Cluster,
        target: &ResourcePath,
        query: &BTreeMap<String, String>,
    ) -> HttpResponse {
        if !Self::bench_known(cluster, target) {
            return error(
                404,
                "NotFound",
                "the server could not find the requested resource",
            );
        }
        let api_version = format!("{GROUP}/{}", target.version);
        list_response(cluster, target, query, &api_version)
    }

    fn bench_put(cluster: &mut Cluster, target: &ResourcePath, body: &Bytes) -> HttpResponse {
        if !Self::bench_known(cluster, target) {
            return error(
                404,
                "NotFound",
                "the server could not find the requested resource",
            );
        }
        let name = target.name.clone().unwrap_or_default();
        let key = (
            target.plural.clone(),
            target.namespace.clone(),
            name.clone(),
        );
        let Some(stored) = cluster.objects.get(&key) else {
            return not_found(target, &name);
        };
        let Ok(mut object) = serde_json::from_slice::<Value>(body) else {
            return error(400, "BadRequest", "body is not JSON");
        };
        if object["metadata"]["name"] != json!(name) {
            return error(
                400,
                "BadRequest",
                "the name in the body does not match the URL",
            );
        }
        let given = &object["metadata"]["resourceVersion"];
        if !given.is_null() && given != &stored["metadata"]["resourceVersion"] {
            return error(
                409,
                "Conflict",
                &format!(
                    "Operation cannot be fulfilled on {}.{GROUP} \"{name}\": the object has been modified",
                    target.plural
                ),
            );
        }
        object["metadata"]["uid"] = stored["metadata"]["uid"].clone();
        object["metadata"]["creationTimestamp"] = stored["metadata"]["creationTimestamp"].clone();
        object["apiVersion"] = json!(format!("{GROUP}/{}", target.version));
        if let Err(problems) = cluster.validate(&object) {
            return error(422, "Invalid", &format!("{name} is invalid: {problems}"));
        }
        let stored = cluster.store(key, object, "MODIFIED");
        json_response(200, stored)
    }
}
