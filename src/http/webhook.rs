//! `POST /webhook`: authenticate, read the events, refresh what they concern.

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, ResponseError, web};

use super::AppState;
use super::error::{ApiError, RETRY_AFTER_SECONDS};
use crate::events::akeyless;
use crate::refresher::RefreshReport;

/// How long a client may take to send the body.
const BODY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Handles a webhook and logs one line about it, whatever its outcome.
pub async fn receive(
    request: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> HttpResponse {
    match handle(&request, payload, &state).await {
        Ok(report) => {
            let applied = report.all_applied();
            let status = if applied { 200 } else { 503 };
            tracing::info!(
                status,
                events = report.events,
                refreshed = report.refreshed.len(),
                skipped = report.skipped.len(),
                failed = report.failed.len(),
                unmatched = report.unmatched.len(),
                duplicates = report.duplicates.len(),
                dry_run = report.dry_run,
                "webhook handled"
            );
            if applied {
                HttpResponse::Ok().json(report)
            } else {
                HttpResponse::ServiceUnavailable()
                    .insert_header((header::RETRY_AFTER, RETRY_AFTER_SECONDS))
                    .json(report)
            }
        }
        Err(error) => {
            let status = error.status_code().as_u16();
            tracing::info!(status, error = %error, "webhook handled");
            error.error_response()
        }
    }
}

/// Credentials are checked before the body is read, so an unauthenticated caller cannot
/// make the server buffer anything. The Content-Type header is not insisted on.
async fn handle(
    request: &HttpRequest,
    payload: web::Payload,
    state: &AppState,
) -> Result<RefreshReport, ApiError> {
    let client = state.client_address(request);
    if let Some(wait) = client.and_then(|ip| state.throttle.blocked(ip)) {
        state.metrics.throttled_requests.inc();
        return Err(ApiError::Throttled {
            seconds: wait.as_secs().max(1),
        });
    }
    if let Err(error) = state.credentials.verify(request) {
        state.metrics.auth_failures.inc();
        if let Some(ip) = client {
            state.throttle.failed(ip);
        }
        return Err(error);
    }
    let limit = state.max_body_bytes;
    let body = tokio::time::timeout(BODY_TIMEOUT, payload.to_bytes_limited(limit))
        .await
        .map_err(|_| ApiError::RequestTimeout)?
        .map_err(|_| ApiError::PayloadTooLarge { limit })?
        .map_err(|e| ApiError::BadRequest(format!("reading the body failed: {e}")))?;
    let changes = akeyless::parse(&body).map_err(|e| ApiError::BadRequest(e.to_string()))?;
    if changes.len() > state.max_events {
        return Err(ApiError::TooManyEvents {
            count: changes.len(),
            limit: state.max_events,
        });
    }
    state
        .refresher
        .refresh(&changes)
        .await
        .map_err(|_| ApiError::NotReady)
}
