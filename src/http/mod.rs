//! The HTTP surface: routes, shared state, and error mapping.

mod auth;
mod error;
mod health;
mod webhook;

use actix_web::{HttpResponse, web};

pub use auth::BasicCredentials;
pub use error::ApiError;

use crate::refresher::Refresher;

/// What every handler shares.
pub struct AppState {
    pub credentials: BasicCredentials,
    pub refresher: Refresher,
    pub max_body_bytes: usize,
}

/// The OpenAPI 3 description of every route, served at `/openapi.json`.
pub const OPENAPI: &str = include_str!("openapi.json");

/// Every route the server serves, as (method, path); the OpenAPI description lists exactly these.
pub const ROUTES: [(&str, &str); 4] = [
    ("POST", "/webhook"),
    ("GET", "/healthz"),
    ("GET", "/readyz"),
    ("GET", "/openapi.json"),
];

fn handler(path: &str) -> Option<actix_web::Route> {
    Some(match path {
        "/webhook" => web::route().to(webhook::receive),
        "/healthz" => web::route().to(health::healthz),
        "/readyz" => web::route().to(health::readyz),
        "/openapi.json" => web::route().to(openapi),
        _ => return None,
    })
}

pub fn routes(config: &mut web::ServiceConfig) {
    for (method, path) in ROUTES {
        let (Some(route), Ok(method)) = (handler(path), method.parse()) else {
            continue;
        };
        config.service(web::resource(path).route(route.method(method)));
    }
    config.default_service(web::to(|| async {
        Err::<HttpResponse, _>(ApiError::NotFound)
    }));
}

async fn openapi() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .body(OPENAPI)
}
