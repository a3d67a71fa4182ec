//! The binary as an operator starts it.

use std::process::Command;

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
    let output = binary()
        .env("WATCH_NAMESPACES", "team-a,team-b")
        .arg("rbac")
        .arg("--namespace")
        .arg("platform")
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let yaml = String::from_utf8(output.stdout).unwrap();
    let objects = eso_refresher::manifests::parse_documents(&yaml).unwrap();
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
