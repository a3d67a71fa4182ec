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
    assert!(stderr.contains("BASIC_AUTH_USER must be set"), "{stderr}");
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
