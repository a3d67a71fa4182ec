//! The binary as an operator starts it.

use std::process::Command;

/// What a command prints on stdout; it must succeed.
fn stdout_of(command: &mut Command) -> String {
    let output = command.output().unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

fn binary() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_eso-refresher"));
    command
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default());
    command
}

#[test]
fn exits_with_one_clear_line_without_credentials() {
    let output = binary()
        .arg("--manifests")
        .arg("examples/manifests")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("BASIC_AUTH_USER and BASIC_AUTH_PASSWORD must be set"),
        "{stderr}"
    );
}

#[test]
fn rejects_an_invalid_setting_naming_it() {
    let output = binary()
        .env("BASIC_AUTH_USER", "u")
        .env("BASIC_AUTH_PASSWORD", "p")
        .env("HTTP_PORT", "eighty")
        .arg("--manifests")
        .arg("examples/manifests")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("HTTP_PORT=\"eighty\" is invalid"),
        "{stderr}"
    );
}

#[test]
fn prints_rbac_for_the_configured_scope() {
    let yaml = stdout_of(
        binary()
            .env("WATCH_NAMESPACES", "team-a,team-b")
            .arg("rbac")
            .arg("--namespace")
            .arg("platform"),
    );
    let objects = eso_refresher::cluster::manifests::parse_documents(&yaml).unwrap();
    let described: Vec<String> = objects
        .iter()
        .map(|o| {
            format!(
                "{} {}",
                o.types.as_ref().unwrap().kind,
                o.metadata.namespace.as_deref().unwrap_or("-")
            )
        })
        .collect();
    assert_eq!(
        described,
        [
            "ServiceAccount platform",
            "Role team-a",
            "RoleBinding team-a",
            "Role team-b",
            "RoleBinding team-b",
        ]
    );

    let cluster = binary().arg("rbac").output().unwrap();
    let yaml = String::from_utf8(cluster.stdout).unwrap();
    assert!(yaml.contains("kind: ClusterRole\n"), "{yaml}");

    let invalid = binary()
        .arg("rbac")
        .arg("--watch-namespaces")
        .arg("Bad_NS")
        .output()
        .unwrap();
    assert!(!invalid.status.success());
    assert!(String::from_utf8_lossy(&invalid.stderr).contains("WATCH_NAMESPACES"));
}

/// The basic-auth password of the services these tests start.
const PASSWORD: &str = "Pa55-NEVER-LOGGED";

/// The binary on a free port in manifests mode, user `hook`, with JSON logs at `level` on a
/// stderr pipe.
fn json_logged(level: &str) -> Command {
    let mut command = binary();
    command
        .env("BASIC_AUTH_USER", "hook")
        .env("BASIC_AUTH_PASSWORD", PASSWORD)
        .env("HTTP_PORT", "0")
        .env("LOG_FORMAT", "json")
        .env("RUST_LOG", level)
        .arg("--manifests")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/manifests"))
        .stderr(std::process::Stdio::piped());
    command
}

/// The port a "listening" log line names.
fn listening_port(line: &str) -> Option<u16> {
    let entry: serde_json::Value = serde_json::from_str(line).ok()?;
    (entry["message"] == "listening").then(|| entry["port"].as_u64().unwrap_or_default() as u16)
}

/// Starts the binary on a free port in manifests mode with JSON logs at debug level.
fn start_logged(
    extra: &[(&str, &str)],
) -> (std::process::Child, u16, std::sync::mpsc::Receiver<String>) {
    use std::io::BufRead;
    let mut command = json_logged("debug");
    command
        .env("ENABLE_CACHE_BUSTER", "true")
        .env("CACHE_BUSTER_WAIT_INTERVAL", "100ms");
    for (name, value) in extra {
        command.env(name, value);
    }
    let mut child = command.spawn().unwrap();
    let stderr = child.stderr.take().unwrap();
    let (lines, received) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            if lines.send(line).is_err() {
                break;
            }
        }
    });
    let port = loop {
        let line = received
            .recv_timeout(std::time::Duration::from_secs(20))
            .expect("a log line");
        serde_json::from_str::<serde_json::Value>(&line).expect("JSON log line");
        if let Some(port) = listening_port(&line) {
            break port;
        }
    };
    (child, port, received)
}

#[tokio::test]
async fn logs_are_json_with_one_line_per_webhook_and_no_secrets() {
    let (mut child, port, lines) = start_logged(&[]);
    let http = crate::support::http_client();
    let url = format!("http://127.0.0.1:{port}/webhook");
    let body = serde_json::json!([{"event_id": 1, "event_type": "static-secret-updated",
        "item_name": "/prod/payments/db-password", "item_id": 2,
        "payload": {"value": "TOPSECRET-PAYLOAD-VALUE"}}]);
    let wrong = http
        .post(&url)
        .basic_auth("hook", Some("WRONG-GUESS-NEVER-LOGGED"))
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
    let right = http
        .post(&url)
        .basic_auth("hook", Some(PASSWORD))
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(right.status(), 200);
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    // SIGTERM, as Kubernetes stops a pod.
    let _ = std::process::Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status();
    let status = child.wait().unwrap();
    assert!(status.success(), "clean exit on SIGTERM");

    let logged: Vec<String> = lines.try_iter().collect();
    assert!(
        logged.iter().any(|l| l.contains("would patch")),
        "a patch line, which names its object: {logged:#?}"
    );
    let mut summaries = 0;
    for line in &logged {
        // Strict: a key twice in one object is refused by strict parsers and lost by others.
        serde_json::from_str::<StrictJson>(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        let entry: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        assert!(
            entry["level"].is_string() && entry["timestamp"].is_string(),
            "{line}"
        );
        if entry["message"] == "webhook handled" {
            summaries += 1;
            match entry["status"].as_u64() {
                Some(200) => {
                    assert_eq!(entry["events"], 1);
                    assert_eq!(entry["refreshed"], 1);
                    // An audit trail: who, from where, which events, which objects.
                    assert_eq!(entry["route"], "webhook", "{line}");
                    assert_eq!(entry["client"], "127.0.0.1", "{line}");
                    assert_eq!(entry["scheme"], "basic", "{line}");
                    assert_eq!(entry["principal"], "hook", "{line}");
                    assert_eq!(entry["sender"], "akeyless", "{line}");
                    assert_eq!(entry["event_ids"], "1", "{line}");
                    assert_eq!(entry["keys"], "/prod/payments/db-password", "{line}");
                    let objects = entry["refreshed_objects"].as_str().unwrap_or_default();
                    assert!(objects.contains("payments/payments-db"), "{line}");
                }
                Some(401) => {
                    assert!(entry["error"].is_string(), "{line}");
                    assert_eq!(entry["client"], "127.0.0.1", "{line}");
                }
                other => panic!("unexpected status {other:?}: {line}"),
            }
        }
        for secret in [
            PASSWORD,
            "WRONG-GUESS-NEVER-LOGGED",
            "TOPSECRET-PAYLOAD-VALUE",
        ] {
            assert!(!line.contains(secret), "{secret} logged: {line}");
        }
        let encoded = {
            use base64::Engine;
            base64::engine::general_purpose::STANDARD.encode("hook:Pa55-NEVER-LOGGED")
        };
        assert!(
            !line.contains(&encoded),
            "Authorization header logged: {line}"
        );
    }
    assert_eq!(
        summaries, 2,
        "one line per webhook, refused or not: {logged:#?}"
    );
    let refused = logged
        .iter()
        .filter(|l| l.contains("webhook authentication failed"))
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap_or_default());
    for entry in refused {
        assert_eq!(entry["client"], "127.0.0.1", "{entry}");
    }
}

/// What becomes of the service's stderr once it listens.
#[derive(Clone, Copy, Debug)]
enum Stderr {
    /// Closed: every write fails (a log shipper gone).
    Closed,
    /// Open but never read again: writes block once the pipe is full (a log shipper stalled).
    Unread,
}

/// Starts the binary in manifests mode, reads its stderr until it listens, then closes the pipe
/// or stops reading it; the stderr pipe stays open until `release` is dropped.
fn start_with_stderr(mode: Stderr) -> (Killed, u16, std::sync::mpsc::Sender<()>) {
    use std::io::BufRead;
    // Many lines a webhook, to fill the pipe and the writer's queue quickly.
    let mut child = json_logged("trace")
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let child = Killed(child);
    let (ports, port) = std::sync::mpsc::channel();
    let (release, released) = std::sync::mpsc::channel::<()>();
    std::thread::spawn(move || {
        let mut reader = std::io::BufReader::new(stderr);
        let mut line = String::new();
        while reader.read_line(&mut line).is_ok_and(|read| read > 0) {
            if let Some(listening) = listening_port(&line) {
                let _ = ports.send(listening);
                break;
            }
            line.clear();
        }
        if let Stderr::Unread = mode {
            let _ = released.recv();
        }
        drop(reader);
    });
    let port = port
        .recv_timeout(std::time::Duration::from_secs(20))
        .expect("the service listens");
    (child, port, release)
}

/// A child process killed when dropped, so that a failing test leaves none behind.
struct Killed(std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The service's dropped-lines counter, read from /metrics.
async fn dropped_log_lines(http: &reqwest::Client, port: u16) -> u64 {
    let metrics = http
        .get(format!("http://127.0.0.1:{port}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    metrics
        .lines()
        .find_map(|line| line.strip_prefix("eso_refresher_log_lines_dropped_total "))
        .and_then(|value| value.trim().parse().ok())
        .unwrap_or_else(|| panic!("no dropped-lines counter in {metrics}"))
}

/// A log pipe that is closed, or full and never read, costs log lines (counted) but never a
/// webhook's answer or a clean stop on SIGTERM.
#[tokio::test]
async fn a_broken_or_stalled_log_pipe_loses_lines_not_webhooks() {
    for mode in [Stderr::Closed, Stderr::Unread] {
        let (mut child, port, release) = start_with_stderr(mode);
        eso_refresher::install_crypto_provider();
        let http = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(10))
            .build()
            .unwrap();
        let url = format!("http://127.0.0.1:{port}/webhook");
        let body = r#"[{"event_id": 7, "event_type": "static-secret-updated",
            "item_name": "/prod/payments/db-password", "item_id": 2}]"#;
        let mut answered = 0;
        let mut dropped = 0;
        let started = std::time::Instant::now();
        // Until lines are lost (the pipe and the writer's queue full, when unread), and on.
        while started.elapsed() < std::time::Duration::from_secs(60)
            && (dropped == 0 || answered % 100 != 0)
        {
            let response = http
                .post(&url)
                .basic_auth("hook", Some(PASSWORD))
                .body(body)
                .send()
                .await
                .unwrap_or_else(|e| panic!("{mode:?}: webhook {answered} not answered: {e}"));
            assert_eq!(response.status(), 200, "{mode:?}");
            answered += 1;
            if answered % 50 == 0 {
                dropped = dropped_log_lines(&http, port).await;
            }
        }
        assert!(
            dropped > 0,
            "{mode:?}: lost lines counted after {answered} webhooks"
        );

        let stopping = std::time::Instant::now();
        let _ = std::process::Command::new("kill")
            .arg("-TERM")
            .arg(child.0.id().to_string())
            .status();
        let status = loop {
            if let Some(status) = child.0.try_wait().unwrap() {
                break status;
            }
            if stopping.elapsed() > std::time::Duration::from_secs(20) {
                panic!("{mode:?}: still running 20 s after SIGTERM");
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        };
        assert!(
            status.success(),
            "{mode:?}: clean exit on SIGTERM: {status}"
        );
        drop(release);
    }
}

/// `kubectl get externalsecrets,secretstores,clustersecretstores -A -o json | eso-refresher
/// preview --manifests - …`: a list on standard input, a webhook body from a file.
#[test]
fn previews_an_event_against_a_list_on_standard_input() {
    use std::io::Write;
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/manifests");
    let mut items = Vec::new();
    for file in ["payments.yaml", "shared.yaml", "stores.yaml"] {
        let text = std::fs::read_to_string(dir.join(file)).unwrap();
        items.extend(serde_saphyr::from_multiple::<serde_json::Value>(&text).unwrap());
    }
    let list = serde_json::json!({"apiVersion": "v1", "kind": "List", "items": items});
    let mut child = binary()
        .args(["preview", "--manifests", "-", "--output", "json", "--event"])
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/events/akeyless-array.json"
        ))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin
        .write_all(serde_json::to_string_pretty(&list).unwrap().as_bytes())
        .unwrap();
    drop(stdin);
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let answer: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(answer["source"], "-");
    assert_eq!(answer["externalSecrets"], 6, "{answer:#}");
    let seen: Vec<String> = answer["matches"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| format!("{} {} {}", m["name"], m["action"], m["rule"]))
        .collect();
    assert_eq!(
        seen,
        [
            r#""payments-db" "refresh" "key /prod/payments/db-password""#,
            r#""payments-db-bootstrap" "skip" "key /prod/payments/db-password""#,
            r#""payments-api" "refresh" "key prod/payments/api-key""#,
        ],
        "{answer:#}"
    );
}

#[test]
fn preview_needs_an_event_and_reads_one_thing_from_standard_input() {
    let nothing = binary()
        .args(["preview", "--manifests", "examples/manifests"])
        .output()
        .unwrap();
    assert!(!nothing.status.success());
    assert!(String::from_utf8_lossy(&nothing.stderr).contains("--key"));
    let twice = binary()
        .args(["preview", "--manifests", "-", "--event", "-"])
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert!(!twice.status.success());
    let said = String::from_utf8_lossy(&twice.stderr);
    assert!(said.contains("standard input"), "{said}");
}

/// The README's preview example is what the binary prints for that command line.
#[test]
fn the_readme_shows_what_preview_prints() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let (_, example) = readme
        .split_once("```console\n$ eso-refresher preview ")
        .expect("a preview example in README.md");
    let (command, rest) = example.split_once('\n').unwrap();
    let (shown, _) = rest.split_once("```").unwrap();
    let printed = stdout_of(
        binary()
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .arg("preview")
            .args(command.split_whitespace()),
    );
    assert_eq!(printed, shown);
}

/// Any JSON value, refused if an object in it has a key twice.
struct StrictJson;

impl<'de> serde::Deserialize<'de> for StrictJson {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(StrictVisitor)
    }
}

struct StrictVisitor;

impl<'de> serde::de::Visitor<'de> for StrictVisitor {
    type Value = StrictJson;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("JSON without duplicate keys")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<StrictJson, A::Error> {
        let mut keys = std::collections::HashSet::new();
        while let Some(key) = map.next_key::<String>()? {
            if !keys.insert(key.clone()) {
                return Err(serde::de::Error::custom(format!("duplicate key {key:?}")));
            }
            map.next_value::<StrictJson>()?;
        }
        Ok(StrictJson)
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<StrictJson, A::Error> {
        while seq.next_element::<StrictJson>()?.is_some() {}
        Ok(StrictJson)
    }

    fn visit_bool<E>(self, _: bool) -> Result<StrictJson, E> {
        Ok(StrictJson)
    }

    fn visit_i64<E>(self, _: i64) -> Result<StrictJson, E> {
        Ok(StrictJson)
    }

    fn visit_u64<E>(self, _: u64) -> Result<StrictJson, E> {
        Ok(StrictJson)
    }

    fn visit_f64<E>(self, _: f64) -> Result<StrictJson, E> {
        Ok(StrictJson)
    }

    fn visit_str<E>(self, _: &str) -> Result<StrictJson, E> {
        Ok(StrictJson)
    }

    fn visit_unit<E>(self) -> Result<StrictJson, E> {
        Ok(StrictJson)
    }
}
