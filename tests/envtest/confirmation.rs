//! Confirmation (`CONFIRM_TIMEOUT`) on the real ESO: a refresh is confirmed only once ESO has
//! synced the patched object, and one ESO cannot sync is reported.

use std::time::{Duration, Instant};

use crate::support::*;

const CONFIRMED: &str = r#"eso_refresher_confirmations_total{outcome="confirmed"}"#;
const NOT_READY: &str = r#"eso_refresher_confirmations_total{outcome="not_ready"}"#;

#[tokio::test]
async fn a_refresh_is_confirmed_only_after_eso_synced_it() {
    let Some(s) = Scenario::new("confirm", "base").await else {
        return;
    };
    let ns = s.namespace.as_str();
    let (slow_key, gone_key) = (s.key("slow", "v1"), s.key("gone", "v1"));
    s.store_in(ns).await;
    s.synced(&[
        (external_secret(ns, "slow", &s.store, &slow_key), "v1"),
        (external_secret(ns, "gone", &s.store, &gone_key), "v1"),
    ])
    .await;
    let service = s.service(&[("CONFIRM_TIMEOUT", "8s")]).await;

    // ESO's fetch of the new value takes 2 s: its sync ends at least that long after the
    // patch, and the confirmation must not come before it. The other key is no longer
    // there: ESO's sync of it fails.
    let fetch = Duration::from_secs(2);
    s.manager.set(&slow_key, "v2");
    s.manager.delay(&slow_key, fetch);
    s.manager.forget(&gone_key);
    let sent = Instant::now();
    let (status, _, answer) = service.generic(&[&slow_key, &gone_key]).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(refreshed(&answer).len(), 2, "{answer}");

    wait_for("the confirmation", || async {
        service.metric(CONFIRMED).await >= 1.0
    })
    .await;
    let confirmed_after = sent.elapsed();
    assert_eq!(
        s.cluster.secret_value(ns, "slow", "value").await.as_deref(),
        Some("v2"),
        "confirmed before ESO wrote the new value"
    );
    assert!(
        confirmed_after >= fetch,
        "confirmed {confirmed_after:?} after the webhook, before ESO could have synced"
    );
    let lines = service.logged("refresh confirmed");
    assert_eq!(lines.len(), 1, "{}", service.log_text());
    assert_eq!(lines[0]["external_secret"], format!("{ns}/slow"));

    // The failing one is never confirmed: after CONFIRM_TIMEOUT it is reported not Ready.
    wait_for("the not_ready report", || async {
        service.metric(NOT_READY).await >= 1.0
    })
    .await;
    assert_eq!(service.metric(CONFIRMED).await, 1.0);
    let warned = service.logged("ESO did not sync the refresh in time");
    assert_eq!(warned.len(), 1, "{}", service.log_text());
    assert_eq!(warned[0]["external_secret"], format!("{ns}/gone"));
}
