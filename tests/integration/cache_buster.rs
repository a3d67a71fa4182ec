//! The second, delayed patch.

use std::time::Duration;

use serde_json::Value;

use crate::support::*;

#[tokio::test]
async fn patches_again_after_the_wait_with_a_fresh_stamp() {
    let api = FakeApiServer::start().await;
    api.apply(external_secret("a", "db").with_key("/k").build());
    let mut config = config();
    config.cache_buster = Some(Duration::from_millis(1500));
    let app = spawn_ready(&api, config).await;

    let (status, report) = app.webhook(&akeyless_events(&["/k"])).await;
    assert_eq!(status, 200);
    assert_eq!(report["cacheBuster"]["scheduled"], 1);
    assert_eq!(report["cacheBuster"]["afterMs"], 1500);
    // The response did not wait for the second patch.
    assert_eq!(api.patches().len(), 1);

    wait_for("the second patch", || async { api.patches().len() == 2 }).await;
    let stamps = stamps(&api);
    assert!(stamps[0] < stamps[1], "{stamps:?}");
    let paths: Vec<String> = api.patches().into_iter().map(|p| p.path).collect();
    assert_eq!(paths[0], paths[1]);
}

#[tokio::test]
async fn shutdown_sends_pending_second_patches_instead_of_dropping_them() {
    let api = FakeApiServer::start().await;
    api.apply(external_secret("a", "db").with_key("/k").build());
    api.apply(cluster_external_secret("fanout"));
    api.apply(
        external_secret("b", "child")
            .with_key("/k")
            .owned_by_cluster_external_secret("fanout")
            .build(),
    );
    let mut config = config();
    config.cache_buster = Some(Duration::from_secs(3600));
    let app = spawn_ready(&api, config).await;

    let (status, report): (u16, Value) = app.webhook(&akeyless_events(&["/k"])).await;
    assert_eq!(status, 200);
    assert_eq!(report["cacheBuster"]["scheduled"], 2);
    assert_eq!(api.patches().len(), 2);

    app.stop().await;
    assert_eq!(
        api.patches().len(),
        4,
        "both second patches were sent at shutdown"
    );
}

#[tokio::test]
async fn nothing_is_scheduled_for_failed_or_skipped_targets() {
    let api = FakeApiServer::start().await;
    api.apply(external_secret("a", "broken").with_key("/k").build());
    api.apply(
        external_secret("a", "once")
            .with_key("/k")
            .refresh_policy("CreatedOnce")
            .build(),
    );
    let mut config = config();
    config.cache_buster = Some(Duration::from_millis(100));
    let app = spawn_ready(&api, config).await;
    api.fail("PATCH", "/broken", 500, 1000);
    let (status, report) = app.webhook(&akeyless_events(&["/k"])).await;
    assert_eq!(status, 503, "{report}");
    assert!(report.get("cacheBuster").is_none(), "{report}");
    tokio::time::sleep(Duration::from_millis(400)).await;
    let patches = api.patches().len();
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(
        api.patches().len(),
        patches,
        "no second patch for a failed target"
    );
}
