//! Parts of the cluster going away: ESO stopped (a refresh cannot be confirmed), and the API
//! server restarted (the webhook is refused until the watch is back, then applied). These
//! tests hold the cluster alone while they run.

use serde_json::json;

use crate::support::*;

#[tokio::test]
async fn without_eso_a_refresh_times_out_unconfirmed_and_is_synced_when_eso_returns() {
    let Some(s) = Scenario::exclusive("no-eso", "base").await else {
        return;
    };
    let ns = s.namespace.as_str();
    let key = s.one_synced("db").await;
    let service = s.service(&[("CONFIRM_TIMEOUT", "3s")]).await;

    let eso = s.cluster.env.stop_eso();
    s.manager.set(&key, "v2");
    let (status, _, answer) = service.generic(&[&key]).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(refreshed(&answer), [format!("{ns}/db")], "{answer}");
    wait_for("the timeout", || async {
        service
            .metric(r#"eso_refresher_confirmations_total{outcome="timeout"}"#)
            .await
            >= 1.0
    })
    .await;
    assert_eq!(
        service
            .metric(r#"eso_refresher_confirmations_total{outcome="confirmed"}"#)
            .await,
        0.0
    );
    let warned = service.logged("ESO did not sync the refresh in time");
    assert_eq!(warned.len(), 1, "{}", service.log_text());
    assert_eq!(warned[0]["external_secret"], format!("{ns}/db"));
    assert_eq!(
        s.cluster.secret_value(ns, "db", "value").await.as_deref(),
        Some("v1")
    );

    // ESO back: it syncs the patched annotations it has not synced yet.
    drop(eso);
    s.cluster.wait_for_value(ns, "db", "value", "v2").await;
}

#[tokio::test]
async fn an_api_server_restart_is_answered_503_then_the_redelivery_is_applied() {
    let Some(s) = Scenario::exclusive("restart", "base").await else {
        return;
    };
    let ns = s.namespace.as_str();
    let key = s.one_synced("db").await;
    let service = s.service(&[]).await;
    let event = json!({"specversion": "1.0", "id": s.tag, "source": "/e2e",
        "type": "com.example.secret.updated", "subject": key});

    let api_server = s.cluster.env.stop_api_server();
    s.manager.set(&key, "v2");
    let (status, retry_after, answer) = service.post("/webhook/cloudevents", &event, &[]).await;
    assert_eq!(status, 503, "{answer}");
    assert!(retry_after.is_some(), "503 without Retry-After: {answer}");
    wait_for("readiness to drop", || async {
        service
            .get("/readyz")
            .await
            .is_some_and(|r| r.status() == 503)
    })
    .await;
    let (status, retry_after, answer) = service.post("/webhook/cloudevents", &event, &[]).await;
    assert_eq!((status, retry_after.is_some()), (503, true), "{answer}");

    drop(api_server);
    // ESO's own watches would reconnect with a backoff grown during the outage, which would
    // slow this test and the ones after it: start it afresh.
    drop(s.cluster.env.stop_eso());
    let restarted = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true);
    service.wait_ready().await;
    // The sender re-delivers the same event: it was not remembered as done.
    let (status, _, answer) = service.post("/webhook/cloudevents", &event, &[]).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(refreshed(&answer), [format!("{ns}/db")], "{answer}");
    assert!(answer.get("duplicates").is_none(), "{answer}");
    let patched = s.cluster.external_secret(ns, "db").await;
    let stamp = patched["metadata"]["annotations"]["updated-at"].as_str();
    assert!(
        stamp.is_some_and(|stamp| stamp > restarted.as_str()),
        "patched after the restart: {stamp:?} > {restarted}"
    );
    s.cluster.wait_for_value(ns, "db", "value", "v2").await;
}
