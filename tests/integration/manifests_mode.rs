//! Running without a cluster: ExternalSecrets from manifest files, patches reported only.

use std::path::PathBuf;

use eso_refresher::app::Source;
use serde_json::json;

use crate::support::*;

fn examples() -> Source {
    Source::Manifests(PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/manifests"
    )))
}

#[tokio::test]
async fn answers_with_the_patches_it_would_make() {
    let app = spawn_app(config(), examples()).await;
    app.wait_ready().await;
    let (status, report) = app
        .webhook(&akeyless_events(&[
            "/prod/payments/db-password",
            "/prod/shared/registry-token",
        ]))
        .await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["dryRun"], true);
    let refreshed: Vec<String> = report["refreshed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            format!(
                "{} {}",
                r["kind"].as_str().unwrap(),
                r["name"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(
        refreshed,
        [
            "ClusterExternalSecret registry-token",
            "ExternalSecret payments-db",
            "ExternalSecret shared-bundle",
        ]
    );
    // billing-db names the same secret, from an AWS store: an Akeyless event leaves it alone.
    assert_eq!(report["skipped"][0]["name"], "payments-db-bootstrap");
    let parent_patch = &report["refreshed"][0]["patch"]["metadata"]["annotations"];
    assert!(
        parent_patch["external-secrets.io/force-sync"].is_string(),
        "{report}"
    );
    let patch = &report["refreshed"][1]["patch"]["metadata"]["annotations"];
    assert_eq!(patch["updated-by"], "externalsecret-updater");
    assert!(patch["updated-at"].is_string());
    assert_eq!(report["unmatched"], json!([]));
}

#[tokio::test]
async fn a_missing_manifest_directory_is_a_startup_error() {
    let error =
        eso_refresher::app::Application::build(config(), Source::Manifests("/no/such/dir".into()))
            .await
            .err()
            .expect("fails");
    assert!(error.to_string().contains("/no/such/dir"), "{error}");
}
