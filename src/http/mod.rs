//! The HTTP surface: routes, shared state, and error mapping.

mod auth;
mod error;
mod health;
mod webhook;

use actix_web::web;

pub use auth::BasicCredentials;
pub use error::ApiError;

use crate::refresher::Refresher;

/// What every handler shares.
pub struct AppState {
    pub credentials: BasicCredentials,
    pub refresher: Refresher,
    pub max_body_bytes: usize,
}

pub fn routes(config: &mut web::ServiceConfig) {
    config
        .service(web::resource("/webhook").route(web::post().to(webhook::receive)))
        .service(web::resource("/healthz").route(web::get().to(health::healthz)))
        .service(web::resource("/readyz").route(web::get().to(health::readyz)))
        .default_service(web::to(|| async {
            Err::<actix_web::HttpResponse, _>(ApiError::NotFound)
        }));
}
