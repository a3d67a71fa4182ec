//! The HTTP surface: routes, shared state, and error mapping.

mod auth;
mod encoding;
mod error;
mod health;
mod openapi;
mod throttle;
mod webhook;

use actix_web::{HttpResponse, web};

pub use auth::client_cert::{AskForClientCert, PeerCertificates, ca_verifier};
pub use auth::{Authenticator, Caller, Rejection};
pub use error::{ApiError, json_errors};
pub use throttle::AuthThrottle;

use std::sync::Arc;

use crate::refresher::Refresher;
use crate::telemetry::metrics::Metrics;

/// What every handler shares.
pub struct AppState {
    pub auth: Authenticator,
    pub throttle: AuthThrottle,
    pub refresher: Refresher,
    pub metrics: Arc<Metrics>,
    pub max_body_bytes: usize,
    pub max_events: usize,
    pub trust_forwarded_for: bool,
    pub inbox: crate::senders::Inbox,
}

impl AppState {
    /// The client's address: the connection's, or behind a trusted proxy the last hop of
    /// X-Forwarded-For — the one the proxy itself appended; anything left of it, and the
    /// Forwarded header, come from the client and could be anything.
    pub fn client_address(&self, request: &actix_web::HttpRequest) -> Option<std::net::IpAddr> {
        if self.trust_forwarded_for {
            let last_hop = request
                .headers()
                .get_all("x-forwarded-for")
                .filter_map(|value| value.to_str().ok())
                .flat_map(|value| value.split(','))
                .map(str::trim)
                .rfind(|hop| !hop.is_empty())
                .and_then(|hop| hop.parse::<std::net::IpAddr>().ok());
            if last_hop.is_some() {
                return last_hop;
            }
        }
        request.peer_addr().map(|addr| addr.ip())
    }
}

pub use openapi::{OPENAPI, document as openapi_document};

/// Every route the server serves, as (method, path); the OpenAPI description lists exactly these.
pub const ROUTES: [(&str, &str); 7] = [
    ("POST", "/webhook"),
    ("POST", "/webhook/{provider}"),
    ("OPTIONS", "/webhook/{provider}"),
    ("GET", "/healthz"),
    ("GET", "/readyz"),
    ("GET", "/metrics"),
    ("GET", "/openapi.json"),
];

fn handler(method: &str, path: &str) -> Option<actix_web::Route> {
    Some(match (method, path) {
        (_, "/webhook") => web::route().to(webhook::receive),
        ("POST", "/webhook/{provider}") => web::route().to(webhook::receive_from),
        ("OPTIONS", "/webhook/{provider}") => web::route().to(webhook::allow_origin),
        (_, "/healthz") => web::route().to(health::healthz),
        (_, "/readyz") => web::route().to(health::readyz),
        (_, "/metrics") => web::route().to(health::metrics),
        (_, "/openapi.json") => web::route().to(openapi),
        _ => return None,
    })
}

pub fn routes(config: &mut web::ServiceConfig) {
    let mut paths: Vec<&str> = ROUTES.iter().map(|(_, path)| *path).collect();
    paths.dedup();
    for path in paths {
        let mut resource = web::resource(path);
        for (method, _) in ROUTES.iter().filter(|(_, p)| *p == path) {
            if let (Some(route), Ok(method)) = (handler(method, path), method.parse()) {
                resource = resource.route(route.method(method));
            }
        }
        config.service(resource);
    }
    config.default_service(web::to(|| async {
        Err::<HttpResponse, _>(ApiError::NotFound)
    }));
}

async fn openapi() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .body(openapi::document())
}

/// Counts every request by route pattern (never the raw path), method and status, and times
/// it by route pattern.
pub async fn count_requests(
    request: actix_web::dev::ServiceRequest,
    next: actix_web::middleware::Next<impl actix_web::body::MessageBody>,
) -> Result<actix_web::dev::ServiceResponse<impl actix_web::body::MessageBody>, actix_web::Error> {
    let metrics = request
        .app_data::<web::Data<AppState>>()
        .map(|state| state.metrics.clone());
    let route = request
        .match_pattern()
        .unwrap_or_else(|| "unmatched".to_owned());
    let method = match request.method().as_str() {
        known @ ("GET" | "POST" | "PUT" | "PATCH" | "DELETE" | "HEAD" | "OPTIONS") => known,
        _ => "other",
    }
    .to_owned();
    let started = std::time::Instant::now();
    let response = next.call(request).await?;
    if let Some(metrics) = metrics {
        let timed = crate::telemetry::metrics::RouteLabels {
            route: route.clone(),
        };
        metrics
            .http_request_duration
            .get_or_create(&timed)
            .observe(started.elapsed().as_secs_f64());
        let labels = crate::telemetry::metrics::RequestLabels {
            route,
            method,
            status: response.status().as_u16(),
        };
        metrics.http_requests.get_or_create(&labels).inc();
    }
    Ok(response)
}
