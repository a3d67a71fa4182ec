//! Liveness (no dependencies) and readiness (the ExternalSecret cache is synced).

use actix_web::{HttpResponse, web};
use serde_json::json;

use super::AppState;

pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "ok"}))
}

pub async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    let index = &state.refresher.index;
    if index.is_ready() {
        let count = index.read(|index| index.len());
        HttpResponse::Ok().json(json!({"status": "ready", "externalSecrets": count}))
    } else if index.is_synced() {
        HttpResponse::ServiceUnavailable().json(json!({"status": "watch failing"}))
    } else {
        HttpResponse::ServiceUnavailable().json(json!({"status": "syncing"}))
    }
}
