//! The service under test: the release binary, run as a subprocess against an API server
//! through a kubeconfig written for it.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// The basic-auth credentials the service is started with.
pub const USER: &str = "bench";
pub const PASSWORD: &str = "bench-Pa55";
const READY_TIMEOUT: Duration = Duration::from_secs(600);

/// The running service: its URL and port on 127.0.0.1, and the file of its log.
pub struct Service {
    child: tokio::process::Child,
    pid: u32,
    pub url: String,
    pub port: u16,
    log: PathBuf,
}

fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr").port()
}

/// A kubeconfig for the service: `api_url`, and for a real API server (`tls`) the file of the
/// CA that signed its certificate and a bearer token.
pub fn write_kubeconfig(dir: &Path, api_url: &str, tls: Option<(&Path, &str)>) -> PathBuf {
    let path = dir.join("kubeconfig");
    let quoted = |s: &str| Value::from(s).to_string();
    let (ca, user) = match tls {
        Some((ca, token)) => (
            format!(
                "    certificate-authority: {}\n",
                quoted(&ca.to_string_lossy())
            ),
            format!("\n    token: {}", quoted(token)),
        ),
        None => (String::new(), " {}".to_owned()),
    };
    let text = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: bench\n  cluster:\n    server: {}\n{ca}\
         contexts:\n- name: bench\n  context:\n    cluster: bench\n    user: bench\n    namespace: default\n\
         current-context: bench\nusers:\n- name: bench\n  user:{user}\n",
        quoted(api_url)
    );
    std::fs::write(&path, text).expect("kubeconfig");
    path
}

impl Service {
    pub fn start(dir: &Path, kubeconfig: &Path, run: &str) -> Service {
        let port = free_port();
        let log = dir.join(format!("service-{run}.log"));
        let out = std::fs::File::create(&log).expect("log file");
        let err = out.try_clone().expect("log file");
        let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_eso-refresher"))
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", dir)
            .env("KUBECONFIG", kubeconfig)
            .env("BASIC_AUTH_USER", USER)
            .env("BASIC_AUTH_PASSWORD", PASSWORD)
            .env("HTTP_PORT", port.to_string())
            // Logged as configs/settings.env ships it.
            .env("RUST_LOG", "info")
            .env("LOG_FORMAT", "json")
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .kill_on_drop(true)
            .spawn()
            .expect("start eso-refresher");
        let pid = child.id().expect("pid");
        Service {
            child,
            pid,
            url: format!("http://127.0.0.1:{port}"),
            port,
            log,
        }
    }

    /// Polls /readyz every 5 ms; the time from `started` to the first 200. Checks the count of
    /// indexed ExternalSecrets when it is `expected` (a shared cluster holds others' too).
    pub async fn wait_ready(
        &mut self,
        http: &reqwest::Client,
        started: Instant,
        expected: Option<usize>,
    ) -> Duration {
        while started.elapsed() < READY_TIMEOUT {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "eso-refresher exited ({status}); see {}",
                    self.log.display()
                );
            }
            if let Ok(response) = http.get(format!("{}/readyz", self.url)).send().await
                && response.status() == 200
            {
                let ready = started.elapsed();
                let body: Value = response.json().await.expect("readyz JSON");
                if let Some(expected) = expected {
                    assert_eq!(body["externalSecrets"], json!(expected), "indexed count");
                }
                return ready;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        panic!(
            "not ready within {READY_TIMEOUT:?}; see {}",
            self.log.display()
        );
    }

    /// (VmRSS, VmHWM) in MiB.
    pub fn memory(&self) -> (f64, f64) {
        let status =
            std::fs::read_to_string(format!("/proc/{}/status", self.pid)).unwrap_or_default();
        let field = |name: &str| {
            status
                .lines()
                .find(|l| l.starts_with(name))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
                .map_or(f64::NAN, |kb| kb / 1024.0)
        };
        (field("VmRSS:"), field("VmHWM:"))
    }

    /// The CPU time the service has used (user and system), in seconds; NaN off Linux.
    pub fn cpu_seconds(&self) -> f64 {
        #[cfg(target_os = "linux")]
        {
            let stat = procfs::process::Process::new(self.pid as i32).and_then(|p| p.stat());
            stat.map_or(f64::NAN, |stat| {
                (stat.utime + stat.stime) as f64 / procfs::ticks_per_second() as f64
            })
        }
        #[cfg(not(target_os = "linux"))]
        f64::NAN
    }

    pub async fn stop(mut self) {
        let _ = self.child.kill().await;
    }
}
