//! Liveness (no dependencies), readiness (the ExternalSecret cache is synced), metrics.

use actix_web::{HttpResponse, web};
use serde_json::json;

use super::AppState;

/// ExternalSecrets with unmatchable rules listed in `/readyz`'s body, at most (all are counted).
const LISTED_UNMATCHABLE: usize = 50;

pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "ok"}))
}

pub async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    let index = &state.refresher.index;
    if index.is_ready() {
        let (count, stores, (unmatchable, with_unmatchable)) = index.read(|index| {
            let listed = index.with_unmatchable_rules(LISTED_UNMATCHABLE);
            (index.len(), index.store_count(), listed)
        });
        let unmatchable: Vec<_> = unmatchable
            .iter()
            .map(|secret| {
                json!({
                    "namespace": &*secret.id.namespace,
                    "name": &*secret.id.name,
                    "reasons": secret.unmatchable,
                })
            })
            .collect();
        HttpResponse::Ok().json(json!({
            "status": "ready",
            "externalSecrets": count,
            "secretStores": stores,
            "unmatchableRules": {"count": with_unmatchable, "externalSecrets": unmatchable},
        }))
    } else {
        // The fields of every error answer, beside the status probes have always read.
        let (status, message) = if index.is_synced() {
            ("watch failing", "the watch of the cluster is failing")
        } else {
            ("syncing", "the first sync with the cluster is not done")
        };
        HttpResponse::ServiceUnavailable().json(json!({
            "status": status,
            "error": "not_ready",
            "message": message,
        }))
    }
}

pub async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    let refresher = &state.refresher;
    let metrics = &state.metrics;
    let cached = refresher.index.read(|index| index.len());
    metrics
        .external_secrets
        .set(i64::try_from(cached).unwrap_or(i64::MAX));
    metrics.ready.set(i64::from(refresher.index.is_ready()));
    for reason in crate::core::external_secret::UNMATCHABLE {
        let count = refresher
            .index
            .read(|index| index.unmatchable_rules(reason));
        metrics
            .unmatchable_rules
            .get_or_create(&crate::telemetry::metrics::ReasonLabels { reason })
            .set(i64::try_from(count).unwrap_or(i64::MAX));
    }
    let pending = refresher.cache_buster.as_ref().map_or(0, |b| b.pending());
    metrics
        .cache_buster_pending
        .set(i64::try_from(pending).unwrap_or(i64::MAX));
    HttpResponse::Ok()
        .content_type("application/openmetrics-text; version=1.0.0; charset=utf-8")
        .body(metrics.encode())
}
