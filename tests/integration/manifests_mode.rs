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

/// The README's quick start: the same delivery, sent twice, is answered the same way twice.
#[tokio::test]
async fn a_dry_run_answers_a_repeated_delivery_again_instead_of_calling_it_a_duplicate() {
    let app = spawn_app(config(), examples()).await;
    app.wait_ready().await;
    let body = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/events/akeyless-array.json"
    ))
    .unwrap();
    let mut answers = Vec::new();
    for _ in 0..2 {
        let response = app.post_webhook(body.clone()).await;
        assert_eq!(response.status().as_u16(), 200);
        let answer: serde_json::Value = response.json().await.unwrap();
        answers.push(answer);
    }
    for answer in &answers {
        assert!(answer.get("duplicates").is_none(), "{answer}");
        assert_eq!(
            answer["refreshed"].as_array().map(Vec::len),
            Some(2),
            "{answer}"
        );
    }
}

/// What `kubectl get externalsecrets,secretstores,clustersecretstores -A -o yaml` prints: one
/// file holding a `kind: List`.
#[tokio::test]
async fn serves_a_kubectl_list_from_one_file() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/manifests");
    let mut items = Vec::new();
    for file in ["payments.yaml", "shared.yaml", "stores.yaml"] {
        let text = std::fs::read_to_string(dir.join(file)).unwrap();
        items.extend(serde_saphyr::from_multiple::<serde_json::Value>(&text).unwrap());
    }
    let list = json!({"apiVersion": "v1", "kind": "List", "items": items,
        "metadata": {"resourceVersion": ""}});
    let file = tempfile::Builder::new().suffix(".txt").tempfile().unwrap();
    std::fs::write(file.path(), serde_saphyr::to_string(&list).unwrap()).unwrap();

    let app = spawn_app(config(), Source::Manifests(file.path().to_owned())).await;
    app.wait_ready().await;
    let (status, report) = app
        .webhook(&akeyless_events(&["/prod/payments/db-password"]))
        .await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["refreshed"][0]["name"], "payments-db", "{report}");
    assert_eq!(report["skipped"][0]["name"], "payments-db-bootstrap");
    let ready: serde_json::Value = app.get("/readyz").await.json().await.unwrap();
    assert_eq!(ready["secretStores"], 2, "{ready}");
}

/// The gauges the monitoring kit's alerts read: readiness, and the find rules no event can match.
#[tokio::test]
async fn metrics_say_ready_and_count_unmatchable_rules_by_reason() {
    let file = tempfile::Builder::new().suffix(".yaml").tempfile().unwrap();
    std::fs::write(
        file.path(),
        r#"apiVersion: external-secrets.io/v1
kind: ExternalSecret
metadata: {name: by-tags, namespace: team-a}
spec:
  secretStoreRef: {kind: ClusterSecretStore, name: akeyless}
  dataFrom:
    - find: {tags: {team: a}}
    - find: {name: {regexp: "(unclosed"}}
    - find: {tags: {team: b}}
"#,
    )
    .unwrap();
    let app = spawn_app(config(), Source::Manifests(file.path().to_owned())).await;
    app.wait_ready().await;
    let metrics = app.get("/metrics").await.text().await.unwrap();
    for sample in [
        "eso_refresher_ready 1",
        r#"eso_refresher_unmatchable_rules{reason="tags_only"} 2"#,
        r#"eso_refresher_unmatchable_rules{reason="invalid_regexp"} 1"#,
    ] {
        assert!(
            metrics.lines().any(|line| line == sample),
            "{sample}\n{metrics}"
        );
    }
}
