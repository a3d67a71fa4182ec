//! `--envtest`: the service (the release binary) against a real kube-apiserver and the real ESO
//! controller, run as local processes by the envtest kit, beside the same workload on the fake.
//!
//! Found only through the variables the kit's `start.sh --with-eso` prints: `KUBECONFIG` (admin),
//! `ENVTEST_DIR` (its CA in `pki/ca.crt`), `ENVTEST_AUDIT_LOG` and `ENVTEST_ESO=1`. Each run works
//! in namespaces of its own (they never finish deleting there) with keys of its own, so it
//! neither sees nor touches what other tests on the same cluster do.
//!
//! The service runs as a ServiceAccount bound to the ClusterRole `eso-refresher rbac` prints (the
//! API server's audit log records ServiceAccount requests only), with a TokenRequest token. Per
//! webhook, the audit log tells when each PATCH reached the API server and when it was answered.
//! ESO reads from an HTTP "secret manager" served here on 127.0.0.1 (its `webhook` provider),
//! so a changed value, a webhook, and the Secret's update can be timed end to end.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, HashMap};
use std::io::{Read, Seek, SeekFrom};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use actix_web::{HttpResponse, web};
use futures::StreamExt;
use futures::stream::BoxStream;
use k8s_openapi::api::core::v1::{Secret, ServiceAccount};
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, GroupVersionKind, ListParams, PostParams,
    WatchEvent, WatchParams,
};
use serde_json::{Value, json};

use crate::args::Options;
use crate::client::{Target, measure_webhooks, post_webhook};
use crate::fake_api::{Arrivals, serve_on_loopback};
use crate::requests::{Phase, RequestLog, per_webhook, show_verbs, verb, with_requests};
use crate::service::{Service, write_kubeconfig};
use crate::stats::{Latency, Stats, Timings, stats};
use crate::workload::{FANOUT, generic_body, group_key, loaded_fake, own_key, spread};

/// ExternalSecrets per run: two groups of FANOUT, each group's shared key read by all of them.
pub const SIZE: usize = 2 * FANOUT;
const ROUTE: &str = "/webhook/generic";
/// How long ESO may take to put a new value in a Secret before a sample counts as failed.
const SYNC_TIMEOUT: Duration = Duration::from_secs(30);
/// How long ESO may take over the first sync of every ExternalSecret of a run, or over the
/// re-syncs a phase set off.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(300);
/// ESO is taken to be done when it has left the run's ExternalSecrets alone this long.
const QUIET: Duration = Duration::from_millis(1500);

const MISSING: &str = "--envtest needs a running envtest with ESO: KUBECONFIG, ENVTEST_DIR, \
    ENVTEST_AUDIT_LOG and ENVTEST_ESO=1 in the environment, as \
    `../shared/envtest/start.sh --with-eso` prints them";

/// Where envtest is, from the environment only.
struct Envtest {
    kubeconfig: PathBuf,
    ca: PathBuf,
    audit_log: PathBuf,
}

impl Envtest {
    fn from_environment() -> Result<Envtest, String> {
        let var = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty());
        let (Some(kubeconfig), Some(dir), Some(audit_log), Some(eso)) = (
            var("KUBECONFIG"),
            var("ENVTEST_DIR"),
            var("ENVTEST_AUDIT_LOG"),
            var("ENVTEST_ESO"),
        ) else {
            return Err(MISSING.into());
        };
        if eso != "1" {
            return Err(MISSING.into());
        }
        let env = Envtest {
            kubeconfig: kubeconfig.into(),
            ca: Path::new(&dir).join("pki").join("ca.crt"),
            audit_log: audit_log.into(),
        };
        for file in [&env.kubeconfig, &env.ca, &env.audit_log] {
            if !file.is_file() {
                return Err(format!("{MISSING}; {} is not a file", file.display()));
            }
        }
        Ok(env)
    }

    /// Whether the variables are there at all (`--smoke` adds a tiny pass only then).
    pub fn present() -> bool {
        std::env::var_os("ENVTEST_DIR").is_some()
    }

    async fn admin(&self) -> (kube::Client, String) {
        let kubeconfig = kube::config::Kubeconfig::read_from(&self.kubeconfig).expect("KUBECONFIG");
        let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
            .await
            .expect("KUBECONFIG");
        let server = config.cluster_url.to_string();
        let client = kube::Client::try_from(config).expect("admin client");
        (client, server.trim_end_matches('/').to_owned())
    }
}

// ---------------------------------------------------------------------------------------------
// The objects of one run
// ---------------------------------------------------------------------------------------------

struct Workload {
    /// A prefix unique to the run: namespaces, keys and cluster-scoped names start with it.
    run: String,
    namespaces: Vec<String>,
    n: usize,
}

impl Workload {
    fn new(n: usize, namespaces: usize) -> Workload {
        let stamp = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .expect("clock")
            .as_millis();
        let run = format!("bench-{stamp}");
        let namespaces = (0..namespaces).map(|j| format!("{run}-{j}")).collect();
        Workload { run, namespaces, n }
    }

    fn namespace(&self, i: usize) -> &str {
        &self.namespaces[i % self.namespaces.len()]
    }

    /// The keys as the fake workload's, prefixed with the run (a webhook matches only its own).
    fn own_key(&self, i: usize) -> String {
        format!("{}{}", self.run, own_key(i).replace('/', "-"))
    }

    fn group_key(&self, group: usize) -> String {
        format!("{}{}", self.run, group_key(group).replace('/', "-"))
    }

    fn name(i: usize) -> String {
        format!("es-{i:04}")
    }

    /// ExternalSecret `i`, read by ESO from the local HTTP store: its own key as `password`, its
    /// group's as `host`. `refreshInterval: 1h`: only a webhook explains a sync during the run.
    fn external_secret(&self, i: usize) -> Value {
        json!({
            "apiVersion": "external-secrets.io/v1",
            "kind": "ExternalSecret",
            "metadata": {"namespace": self.namespace(i), "name": Self::name(i)},
            "spec": {
                "refreshInterval": "1h",
                "secretStoreRef": {"kind": "SecretStore", "name": "local-http"},
                "target": {"name": Self::name(i)},
                "data": [
                    {"secretKey": "password", "remoteRef": {"key": self.own_key(i)}},
                    {"secretKey": "host", "remoteRef": {"key": self.group_key(i / FANOUT)}},
                ],
            },
        })
    }

    /// A SecretStore of ESO's `webhook` provider reading `GET <url>/secrets/<key>`.
    fn secret_store(namespace: &str, url: &str) -> Value {
        json!({
            "apiVersion": "external-secrets.io/v1",
            "kind": "SecretStore",
            "metadata": {"namespace": namespace, "name": "local-http"},
            "spec": {"provider": {"webhook": {
                "url": format!("{url}/secrets/{{{{ .remoteRef.key }}}}"),
                "method": "GET",
                "result": {"jsonPath": "$.value"},
            }}},
        })
    }

    /// The service's ServiceAccount and its grant, as `eso-refresher rbac` prints them for the
    /// whole cluster, the cluster-scoped names made the run's own.
    fn rbac(&self) -> Vec<Value> {
        let mut objects =
            eso_refresher::cluster::rbac::manifests(&[], "eso-refresher", &self.namespaces[0]);
        let name = format!("{}-eso-refresher", self.run);
        for object in &mut objects {
            if object["metadata"]["namespace"].is_null() {
                object["metadata"]["name"] = json!(name);
            }
            if object["roleRef"].is_object() {
                object["roleRef"]["name"] = json!(name);
            }
        }
        objects
    }
}

fn api_for(client: &kube::Client, object: &Value) -> (Api<DynamicObject>, String) {
    let api_version = object["apiVersion"].as_str().expect("apiVersion");
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    let kind = object["kind"].as_str().expect("kind");
    let resource = ApiResource::from_gvk(&GroupVersionKind::gvk(group, version, kind));
    let api = match object["metadata"]["namespace"].as_str() {
        Some(ns) => Api::namespaced_with(client.clone(), ns, &resource),
        None => Api::all_with(client.clone(), &resource),
    };
    let name = object["metadata"]["name"]
        .as_str()
        .expect("name")
        .to_owned();
    (api, name)
}

async fn create(client: &kube::Client, object: Value) {
    let (api, name) = api_for(client, &object);
    let object: DynamicObject = serde_json::from_value(object).expect("object");
    if let Err(e) = api.create(&PostParams::default(), &object).await {
        panic!("creating {name}: {e}");
    }
}

/// Deletes, and says (without failing the run) what could not be deleted.
async fn delete(client: &kube::Client, object: &Value) {
    let (api, name) = api_for(client, object);
    if let Err(e) = api.delete(&name, &DeleteParams::default()).await {
        eprintln!("[envtest] could not delete {name}: {e}");
    }
}

// ---------------------------------------------------------------------------------------------
// The secret manager ESO reads from
// ---------------------------------------------------------------------------------------------

type Values = Mutex<HashMap<String, String>>;

async fn answer(values: web::Data<Values>, key: web::Path<String>) -> HttpResponse {
    match values.lock().expect("values").get(key.as_str()) {
        Some(value) => HttpResponse::Ok().json(json!({"value": value})),
        None => HttpResponse::NotFound().finish(),
    }
}

fn set(values: &Values, key: String, value: String) {
    values.lock().expect("values").insert(key, value);
}

// ---------------------------------------------------------------------------------------------
// The audit log: the service's requests as the API server saw them
// ---------------------------------------------------------------------------------------------

/// A request of the service as the audit log records it.
struct Audited {
    method: &'static str,
    path: String,
    watch: bool,
    code: u16,
}

/// Reads the audit log's new lines for one ServiceAccount: each PATCH of an ExternalSecret as
/// an arrival (when the API server received it), how long the server took over it, and every
/// request for the counts by verb. The log is shared and appended by others: lines of other
/// users are passed over, a partial last line is left for the next read.
struct AuditTail {
    path: PathBuf,
    user: String,
    /// One instant and the wall-clock time at that instant: the log's times are wall-clock.
    anchor: (Instant, SystemTime),
    offset: Cell<u64>,
    arrivals: Arrivals,
    served: RefCell<Vec<Duration>>,
    requests: RefCell<Vec<Audited>>,
}

impl AuditTail {
    /// Starts at the log's end: what came before is not this run's.
    fn new(path: &Path, user: String) -> AuditTail {
        let size = std::fs::metadata(path).map_or(0, |m| m.len());
        AuditTail {
            path: path.to_owned(),
            user,
            anchor: (Instant::now(), SystemTime::now()),
            offset: Cell::new(size),
            arrivals: Arrivals::default(),
            served: RefCell::default(),
            requests: RefCell::default(),
        }
    }

    fn instant_of(&self, stamp: &Value) -> Option<Instant> {
        let wall: SystemTime = chrono::DateTime::parse_from_rfc3339(stamp.as_str()?)
            .ok()?
            .into();
        match wall.duration_since(self.anchor.1) {
            Ok(after) => Some(self.anchor.0 + after),
            Err(before) => self.anchor.0.checked_sub(before.duration()),
        }
    }

    fn catch_up(&self) {
        let mut file = std::fs::File::open(&self.path).expect("audit log");
        let size = file.metadata().expect("audit log").len();
        if size < self.offset.get() {
            // Emptied by someone (the kit allows it): read on from its start.
            self.offset.set(0);
        }
        file.seek(SeekFrom::Start(self.offset.get()))
            .expect("audit log");
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes).expect("audit log");
        let complete = bytes.iter().rposition(|b| *b == b'\n').map_or(0, |p| p + 1);
        self.offset.set(self.offset.get() + complete as u64);
        let needle = format!("\"{}\"", self.user);
        for line in String::from_utf8_lossy(&bytes[..complete]).lines() {
            if !line.contains(&needle) {
                continue;
            }
            let Ok(event) = serde_json::from_str::<Value>(line) else {
                continue;
            };
            if event["user"]["username"] != json!(self.user)
                || event["stage"] != json!("ResponseComplete")
            {
                continue;
            }
            self.record(&event);
        }
    }

    fn record(&self, event: &Value) {
        let audit_verb = event["verb"].as_str().unwrap_or_default();
        let method = match audit_verb {
            "get" | "list" | "watch" => "GET",
            "create" => "POST",
            "patch" => "PATCH",
            "update" => "PUT",
            "delete" | "deletecollection" => "DELETE",
            _ => "other",
        };
        let uri = event["requestURI"].as_str().unwrap_or_default();
        let path = uri.split('?').next().unwrap_or_default().to_owned();
        let resource = event["objectRef"]["resource"].as_str().unwrap_or_default();
        let received = self.instant_of(&event["requestReceivedTimestamp"]);
        let answered = self.instant_of(&event["stageTimestamp"]);
        if method == "PATCH"
            && ["externalsecrets", "clusterexternalsecrets"].contains(&resource)
            && let (Some(received), Some(answered)) = (received, answered)
        {
            self.arrivals
                .lock()
                .expect("arrivals")
                .push((received, format!("PATCH {path}")));
            self.served
                .borrow_mut()
                .push(answered.saturating_duration_since(received));
        }
        let code = event["responseStatus"]["code"].as_u64().unwrap_or(0) as u16;
        self.requests.borrow_mut().push(Audited {
            method,
            path,
            watch: audit_verb == "watch",
            code,
        });
    }
}

/// A verb answered with an error is counted apart, with its status code.
impl RequestLog for AuditTail {
    fn mark(&self) -> usize {
        self.catch_up();
        self.requests.borrow().len()
    }

    fn verbs_since(&self, from: usize, webhooks: usize) -> BTreeMap<String, f64> {
        self.catch_up();
        let requests = self.requests.borrow();
        let keys = requests[from.min(requests.len())..].iter().map(|r| {
            let verb = verb(r.method, &r.path, r.watch);
            if r.code >= 300 {
                format!("{verb} ({})", r.code)
            } else {
                verb.to_owned()
            }
        });
        per_webhook(keys, webhooks)
    }
}

// ---------------------------------------------------------------------------------------------
// Watching for ESO's writes
// ---------------------------------------------------------------------------------------------

/// A watch on the Secrets of one namespace, kept open across samples.
struct SecretWatch {
    api: Api<Secret>,
    version: String,
    events: BoxStream<'static, kube::Result<WatchEvent<Secret>>>,
}

impl SecretWatch {
    async fn open(api: Api<Secret>) -> SecretWatch {
        let list = api
            .list_metadata(&ListParams::default().limit(1))
            .await
            .expect("list Secrets");
        let version = list.metadata.resource_version.unwrap_or_default();
        let events = Self::events(&api, &version).await;
        SecretWatch {
            api,
            version,
            events,
        }
    }

    async fn events(
        api: &Api<Secret>,
        version: &str,
    ) -> BoxStream<'static, kube::Result<WatchEvent<Secret>>> {
        api.watch(&WatchParams::default().timeout(290), version)
            .await
            .expect("watch Secrets")
            .boxed()
    }

    /// Waits until Secret `name` holds `value` under `password`, at most `SYNC_TIMEOUT`; the
    /// instant its event came.
    async fn wait_for(&mut self, name: &str, value: &str) -> Option<Instant> {
        let deadline = Instant::now() + SYNC_TIMEOUT;
        // Bounded by the deadline; also by a count, should the stream end over and over.
        for _ in 0..100_000 {
            let left = deadline.saturating_duration_since(Instant::now());
            let event = match tokio::time::timeout(left, self.events.next()).await {
                Err(_) => return None,
                Ok(None) => {
                    self.events = Self::events(&self.api, &self.version).await;
                    continue;
                }
                Ok(Some(event)) => event.expect("Secret watch"),
            };
            let secret = match event {
                WatchEvent::Added(s) | WatchEvent::Modified(s) => s,
                WatchEvent::Bookmark(b) => {
                    self.version = b.metadata.resource_version;
                    continue;
                }
                WatchEvent::Deleted(_) => continue,
                WatchEvent::Error(e) => panic!("Secret watch: {e:?}"),
            };
            let seen = Instant::now();
            if let Some(v) = &secret.metadata.resource_version {
                self.version = v.clone();
            }
            let holds = secret.metadata.name.as_deref() == Some(name)
                && secret
                    .data
                    .as_ref()
                    .and_then(|d| d.get("password"))
                    .is_some_and(|v| v.0 == value.as_bytes());
            if holds {
                return Some(seen);
            }
        }
        None
    }
}

// ---------------------------------------------------------------------------------------------
// The run
// ---------------------------------------------------------------------------------------------

/// One side's figures: on the fake, or on envtest.
#[derive(Default)]
pub struct Side {
    one: Phase,
    fanout: Phase,
    /// Where each phase's writes are in the side's arrivals.
    one_writes: Range<usize>,
    fanout_writes: Range<usize>,
    /// envtest only: the API server's time per PATCH (audit log) of 1-match and of 100-match
    /// webhooks, sent → Secret updated by ESO, and those webhooks' own round trips.
    served_one: Stats,
    served_fanout: Stats,
    synced: Stats,
    synced_round_trip: Stats,
    synced_count: usize,
}

pub struct Figures {
    fake: Side,
    envtest: Side,
    server_version: String,
    started: String,
}

/// The envtest pass, and the same workload on the fake. Fails with a clear message when envtest
/// is not there; `--smoke` runs it only when it is.
pub async fn run(options: &Options, dir: &Path, http: &reqwest::Client) -> Option<Figures> {
    let env = match Envtest::from_environment() {
        Ok(env) => env,
        Err(missing) if options.smoke && !Envtest::present() => {
            println!("\nenvtest pass skipped: {missing}");
            return None;
        }
        Err(missing) => panic!("{missing}"),
    };
    let started = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let fake = on_fake(options, dir, http).await;
    let (envtest, server_version) = on_envtest(options, &env, dir, http).await;
    Some(Figures {
        fake,
        envtest,
        server_version,
        started,
    })
}

type Body<'a> = &'a dyn Fn(usize) -> (String, usize);

/// A few webhooks to warm the connections (the service's to the API server, ours to it).
async fn warm_up(
    http: &reqwest::Client,
    url: &str,
    target: Target<'_>,
    arrivals: &Arrivals,
    one: Body<'_>,
) {
    measure_webhooks(http, url, target, arrivals, (0..5).map(one), CAP).await;
}

const CAP: Duration = Duration::from_secs(120);

/// Times the 1-match webhooks, then (after `pause`) the 100-match ones, with the API requests
/// of each phase and where its writes are in `arrivals`.
async fn one_and_fanout(
    (options, label): (&Options, &str),
    (http, url, target): (&reqwest::Client, &str, Target<'_>),
    (arrivals, log): (&Arrivals, &dyn RequestLog),
    (one, fanout): (Body<'_>, Body<'_>),
    pause: impl Future<Output = ()>,
) -> Side {
    let mut side = Side::default();
    let written = || arrivals.lock().expect("arrivals").len();
    let start = written();
    let bodies = (0..options.webhooks).map(one);
    let phase = measure_webhooks(http, url, target, arrivals, bodies, CAP);
    side.one = with_requests(log, phase).await;
    side.one_writes = start..written();
    pause.await;
    let start = written();
    let bodies = (0..options.fanout_webhooks).map(fanout);
    let phase = measure_webhooks(http, url, target, arrivals, bodies, CAP);
    side.fanout = with_requests(log, phase).await;
    side.fanout_writes = start..written();
    eprintln!(
        "[{}] 1 match: PATCH received p50/p99 {:.2}/{:.2} ms, round trip {:.2}/{:.2} ms; \
         100 match: last PATCH received {:.2}/{:.2} ms, round trip {:.2}/{:.2} ms",
        label,
        side.one.latency.last_write.p50,
        side.one.latency.last_write.p99,
        side.one.latency.round_trip.p50,
        side.one.latency.round_trip.p99,
        side.fanout.latency.last_write.p50,
        side.fanout.latency.last_write.p99,
        side.fanout.latency.round_trip.p50,
        side.fanout.latency.round_trip.p99,
    );
    side
}

/// The 1-match and 100-match webhooks on the fake, with the same N, namespaces, route and
/// sample counts as on envtest.
async fn on_fake(options: &Options, dir: &Path, http: &reqwest::Client) -> Side {
    let n = SIZE;
    let (fake, _api, front, arrivals, kubeconfig) = loaded_fake(n, options.namespaces, dir).await;
    let mut service = Service::start(dir, &kubeconfig, "envtest-fake");
    service.wait_ready(http, Instant::now(), Some(n)).await;
    let target: Target = (ROUTE, &|| {});
    let one = |k| (generic_body(&own_key(spread(k, n))), 1);
    let fanout = |k| (generic_body(&group_key(k % (n / FANOUT))), FANOUT);
    let url = service.url.clone();
    warm_up(http, &url, target, &arrivals, &one).await;
    let to_service = (http, url.as_str(), target);
    let side = one_and_fanout(
        (options, "fake"),
        to_service,
        (&arrivals, &fake),
        (&one, &fanout),
        async {},
    )
    .await;
    service.stop().await;
    front.stop(false).await;
    side
}

async fn on_envtest(
    options: &Options,
    env: &Envtest,
    dir: &Path,
    http: &reqwest::Client,
) -> (Side, String) {
    let (admin, server) = env.admin().await;
    let server_version = admin
        .apiserver_version()
        .await
        .map_or_else(|e| panic!("envtest's API server: {e}"), |v| v.git_version);
    let work = Workload::new(SIZE, options.namespaces);
    eprintln!(
        "[envtest] {server} ({server_version}); run {}, {} ExternalSecrets over {} namespaces",
        work.run,
        work.n,
        work.namespaces.len()
    );

    // The secret manager first: ESO checks a store by dialing it.
    let values: Arc<Values> = Arc::default();
    for i in 0..work.n {
        set(&values, work.own_key(i), format!("initial-{i}"));
    }
    for group in 0..work.n / FANOUT {
        set(&values, work.group_key(group), format!("host-{group}"));
    }
    let data = web::Data::from(values.clone());
    let (store_url, store_server) = serve_on_loopback(move |app| {
        app.app_data(data.clone())
            .route("/secrets/{key}", web::get().to(answer));
    });

    let created = Instant::now();
    for ns in &work.namespaces {
        create(
            &admin,
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}),
        )
        .await;
        create(&admin, Workload::secret_store(ns, &store_url)).await;
    }
    let rbac = work.rbac();
    for object in &rbac {
        create(&admin, object.clone()).await;
    }
    futures::stream::iter((0..work.n).map(|i| create(&admin, work.external_secret(i))))
        .buffer_unordered(8)
        .collect::<Vec<()>>()
        .await;
    settle(&admin, &work).await;
    eprintln!(
        "[envtest] created, and synced by ESO, in {:.1}s",
        created.elapsed().as_secs_f64()
    );

    // The service as the ServiceAccount, with a token from the TokenRequest API.
    let accounts: Api<ServiceAccount> = Api::namespaced(admin.clone(), &work.namespaces[0]);
    let request = json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
                         "spec": {"expirationSeconds": 3600}});
    let token: Value = accounts
        .create_subresource("token", "eso-refresher", &PostParams::default(), &request)
        .await
        .expect("TokenRequest");
    let token = token["status"]["token"].as_str().expect("token");
    let user = format!("system:serviceaccount:{}:eso-refresher", work.namespaces[0]);
    let audit = AuditTail::new(&env.audit_log, user);
    let kubeconfig = write_kubeconfig(dir, &server, Some((&env.ca, token)));
    let mut service = Service::start(dir, &kubeconfig, "envtest");
    service.wait_ready(http, Instant::now(), None).await;
    let url = service.url.clone();
    let catch_up = || audit.catch_up();
    let target: Target = (ROUTE, &catch_up);
    let arrivals = audit.arrivals.clone();
    let one = |k| (generic_body(&work.own_key(spread(k, work.n))), 1);
    let fanout = |k| (generic_body(&work.group_key(k % (work.n / FANOUT))), FANOUT);
    warm_up(http, &url, target, &arrivals, &one).await;

    // Webhook → Secret updated by ESO, once ESO is done with what came before.
    quiet(&admin, &work).await;
    let (synced, synced_round_trip, synced_count) =
        secret_phase(options, &admin, &work, &values, (http, &url)).await;

    // 1-match webhooks, then the 100-match fan-out, each when ESO is done with what came
    // before (a fan-out sets it re-syncing 100 ExternalSecrets).
    quiet(&admin, &work).await;
    let to_service = (http, url.as_str(), target);
    let log = (&arrivals, &audit as &dyn RequestLog);
    let pause = quiet(&admin, &work);
    let timed = one_and_fanout(
        (options, "envtest"),
        to_service,
        log,
        (&one, &fanout),
        pause,
    )
    .await;
    let side = {
        let served = audit.served.borrow();
        Side {
            served_one: stats(served[timed.one_writes.clone()].iter().copied()),
            served_fanout: stats(served[timed.fanout_writes.clone()].iter().copied()),
            synced,
            synced_round_trip,
            synced_count,
            ..timed
        }
    };

    service.stop().await;
    clean_up(&admin, &work, &rbac).await;
    store_server.stop(false).await;
    (side, server_version)
}

/// Per sample: a new value at the secret manager for one ExternalSecret of the first
/// namespace, a webhook for its key, and the time until ESO has put it in the Secret (with the
/// webhook's round trip). One more ExternalSecret whose value changes without a webhook must
/// stay stale meanwhile. Returns the two and the count.
async fn secret_phase(
    options: &Options,
    admin: &kube::Client,
    work: &Workload,
    values: &Values,
    (http, url): (&reqwest::Client, &str),
) -> (Stats, Stats, usize) {
    let control = 1;
    set(
        values,
        work.own_key(control),
        "changed-without-webhook".into(),
    );
    let secrets: Api<Secret> = Api::namespaced(admin.clone(), &work.namespaces[0]);
    let mut watch = SecretWatch::open(secrets).await;
    let (mut synced, mut round_trips) = (Timings::default(), Timings::default());
    let per_namespace = work.n / work.namespaces.len();
    for k in 0..options.secret_samples {
        let i = spread(k, per_namespace) * work.namespaces.len();
        let value = format!("v{k}-{}", work.run);
        set(values, work.own_key(i), value.clone());
        let body = generic_body(&work.own_key(i));
        let name = Workload::name(i);
        let sent = Instant::now();
        let (refreshed, seen) = tokio::join!(
            async {
                let refreshed = post_webhook(http, url, ROUTE, body).await;
                round_trips.record(sent.elapsed());
                refreshed
            },
            watch.wait_for(&name, &value)
        );
        assert_eq!(refreshed, 1, "refreshed by webhook {k}");
        let seen =
            seen.unwrap_or_else(|| panic!("Secret {name} not updated within {SYNC_TIMEOUT:?}"));
        synced.record(seen.duration_since(sent));
    }
    let stale = Api::<Secret>::namespaced(admin.clone(), work.namespace(control))
        .get(&Workload::name(control))
        .await
        .expect("control Secret");
    let stale = stale
        .data
        .unwrap_or_default()
        .get("password")
        .map(|v| v.0.clone());
    assert_eq!(
        stale.as_deref(),
        Some(format!("initial-{control}").as_bytes()),
        "a Secret whose value changed without a webhook was re-synced meanwhile"
    );
    eprintln!(
        "[envtest] webhook → Secret updated: p50/p99 {:.1}/{:.1} ms over {}",
        synced.stats().p50,
        synced.stats().p99,
        synced.count()
    );
    (synced.stats(), round_trips.stats(), synced.count())
}

/// Waits until ESO has written the Secret of every ExternalSecret of the run.
async fn settle(admin: &kube::Client, work: &Workload) {
    let started = Instant::now();
    while started.elapsed() < SETTLE_TIMEOUT {
        let mut written = 0;
        for ns in &work.namespaces {
            let secrets: Api<Secret> = Api::namespaced(admin.clone(), ns);
            let list = secrets
                .list_metadata(&ListParams::default())
                .await
                .expect("list Secrets");
            written += list.items.len();
        }
        if written >= work.n {
            return quiet(admin, work).await;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    panic!("ESO did not sync the run's ExternalSecrets within {SETTLE_TIMEOUT:?}; is it running?");
}

/// Waits until no ExternalSecret of the run has changed (ESO writes its status after each sync)
/// for `QUIET`, at most `SETTLE_TIMEOUT`.
async fn quiet(admin: &kube::Client, work: &Workload) {
    let started = Instant::now();
    let (mut last, mut since) = (Vec::new(), Instant::now());
    while started.elapsed() < SETTLE_TIMEOUT {
        let mut versions = Vec::new();
        // ExternalSecret i is in namespace i mod M: one API per namespace.
        for i in 0..work.namespaces.len() {
            let (api, _) = api_for(admin, &work.external_secret(i));
            let list = api
                .list_metadata(&ListParams::default())
                .await
                .expect("list ExternalSecrets");
            versions.extend(list.items.into_iter().map(|o| o.metadata.resource_version));
        }
        if versions != last {
            (last, since) = (versions, Instant::now());
        } else if since.elapsed() >= QUIET {
            return;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    eprintln!("[envtest] ESO still re-syncing after {SETTLE_TIMEOUT:?}; measuring anyway");
}

/// Deletes the run's ExternalSecrets while ESO runs (it removes its finalizer), its stores and
/// grants; the namespaces stay (without a controller-manager they never finish deleting).
async fn clean_up(admin: &kube::Client, work: &Workload, rbac: &[Value]) {
    futures::stream::iter((0..work.n).map(|i| async move {
        delete(admin, &work.external_secret(i)).await;
    }))
    .buffer_unordered(8)
    .collect::<Vec<()>>()
    .await;
    for ns in &work.namespaces {
        delete(admin, &Workload::secret_store(ns, "")).await;
    }
    for object in rbac {
        delete(admin, object).await;
    }
}

// ---------------------------------------------------------------------------------------------
// Report
// ---------------------------------------------------------------------------------------------

fn cells(s: Stats) -> String {
    format!("{:.2} / {:.2} / {:.2}", s.p50, s.p99, s.max)
}

pub fn report(options: &Options, figures: &Figures) {
    let (fake, real) = (&figures.fake, &figures.envtest);
    println!(
        "\n## envtest beside the fake ({SIZE} ExternalSecrets over {} namespaces; started {})\n",
        options.namespaces, figures.started
    );
    println!(
        "envtest: kube-apiserver {} and the ESO controller; the service as a ServiceAccount. \
         Sequential webhooks to POST {ROUTE}; p50 / p99 / max in ms, nearest rank.\n",
        figures.server_version
    );
    println!("| figure | fake API server | envtest | samples (fake / envtest) |");
    println!("|---|---|---|---|");
    let one: fn(&Side) -> (&Phase, Stats) = |s| (&s.one, s.served_one);
    let fanout: fn(&Side) -> (&Phase, Stats) = |s| (&s.fanout, s.served_fanout);
    for (phase, of) in [("1 match", one), ("100 matches", fanout)] {
        let ((f, _), (r, served)) = (of(fake), of(real));
        let (f, f_verbs, r, r_verbs) = (&f.latency, &f.verbs, &r.latency, &r.verbs);
        let n = format!("{} / {}", f.count, r.count);
        let both = |figure: &str, stat: fn(&Latency) -> Stats| {
            let (a, b) = (cells(stat(f)), cells(stat(r)));
            println!("| {phase}: {figure} | {a} | {b} | {n} |");
        };
        both("sent → first PATCH received by the API server", |l| {
            l.first_write
        });
        both("sent → last PATCH received", |l| l.last_write);
        both(
            "round trip (answered once every PATCH is acknowledged)",
            |l| l.round_trip,
        );
        println!(
            "| {phase}: the API server's time on a PATCH (audit log: answered − received) | – | {} | – / {} PATCHes |",
            cells(served),
            r.count * if phase == "1 match" { 1 } else { FANOUT },
        );
        let (a, b) = (show_verbs(f_verbs), show_verbs(r_verbs));
        println!("| {phase}: requests per webhook | {a} | {b} | {n} |");
    }
    let synced = real.synced_count;
    println!(
        "| sent → Secret holds the new value (ESO's sync) | – (no ESO) | {} | – / {synced} |",
        cells(real.synced)
    );
    println!(
        "| those webhooks' round trip | – | {} | – / {synced} |",
        cells(real.synced_round_trip)
    );
}
