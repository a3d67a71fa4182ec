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

/// What the old confirmation got wrong: ESO stamps `refreshTime` with the second its reconcile
/// started, so a reconcile that read the object just before the patch, in the same second,
/// looked like the sync of the patch. Here such a reconcile is in flight (slow, and fetching
/// the old value) when the patch lands; the confirmation must wait for the next one.
#[tokio::test]
async fn a_sync_that_began_before_the_patch_does_not_confirm_it() {
    let Some(s) = Scenario::new("in-flight", "base").await else {
        return;
    };
    let ns = s.namespace.as_str();
    let key = s.one_synced("db").await;
    let service = s.service(&[("CONFIRM_TIMEOUT", "20s")]).await;
    let fetch = Duration::from_secs(2);
    s.manager.delay(&key, fetch);

    // Early in a second, so that the reconcile below and the patch share their second.
    let into_second = chrono::Utc::now().timestamp_subsec_millis();
    tokio::time::sleep(Duration::from_millis(u64::from(1000 - into_second) + 20)).await;
    let fetched = s.manager.fetches(&key);
    let object = s.cluster.external_secret(ns, "db").await;
    s.cluster.annotate(&object, "changed-by-hand", &s.tag).await;
    // The reconcile of that change is in flight once its fetch has begun.
    wait_for("ESO's fetch after the change by hand", || async {
        s.manager.fetches(&key) > fetched
    })
    .await;
    s.manager.set(&key, "v2");
    let sent = Instant::now();
    let (status, _, answer) = service.generic(&[&key]).await;
    assert_eq!(status, 200, "{answer}");

    wait_for("the confirmation", || async {
        service.metric(CONFIRMED).await >= 1.0
    })
    .await;
    assert_eq!(
        s.cluster.secret_value(ns, "db", "value").await.as_deref(),
        Some("v2"),
        "confirmed by the reconcile that began before the patch"
    );
    assert!(
        sent.elapsed() >= fetch + fetch / 2,
        "confirmed {:?} after the patch: before a second slow reconcile could end",
        sent.elapsed()
    );
}
