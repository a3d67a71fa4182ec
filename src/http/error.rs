//! Every error a route can answer with, mapped to its status once. Bodies are small JSON
//! objects of one shape: `{"error": "<code>", "message": "<what is wrong>"}`.

use actix_web::http::StatusCode;
use actix_web::http::header;
use actix_web::{HttpResponse, ResponseError};
use serde_json::json;

use crate::senders::sns::SnsError;

/// Seconds a sender should wait before re-delivering after a 503.
pub const RETRY_AFTER_SECONDS: u32 = 5;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// With the `WWW-Authenticate` challenge naming the route's schemes.
    #[error("missing or wrong credentials")]
    Unauthorized { challenge: String },
    #[error("the credentials cannot be checked right now; retry later")]
    AuthUnavailable,
    #[error("{0}")]
    BadRequest(String),
    #[error("body is larger than {limit} bytes")]
    PayloadTooLarge { limit: usize },
    #[error("the ExternalSecret cache is not in sync with the cluster yet; retry later")]
    NotReady,
    #[error("no route for this path")]
    NotFound,
    #[error("the body did not arrive in time")]
    RequestTimeout,
    #[error("too many failed authentications; retry in {seconds} s")]
    Throttled { seconds: u64 },
    #[error("{count} events in one request; at most {limit} are accepted")]
    TooManyEvents { count: usize, limit: usize },
    #[error(transparent)]
    Sns(#[from] crate::senders::sns::SnsError),
}

impl From<crate::senders::ReadError> for ApiError {
    fn from(error: crate::senders::ReadError) -> ApiError {
        match error {
            crate::senders::ReadError::Payload(error) => ApiError::BadRequest(error.to_string()),
            crate::senders::ReadError::Sns(error) => ApiError::Sns(error),
        }
    }
}

impl ApiError {
    fn code(&self) -> &'static str {
        match self {
            ApiError::Unauthorized { .. } => "unauthorized",
            ApiError::AuthUnavailable => "auth_unavailable",
            ApiError::BadRequest(_) => "bad_request",
            ApiError::PayloadTooLarge { .. } => "payload_too_large",
            ApiError::NotReady => "not_ready",
            ApiError::NotFound => "not_found",
            ApiError::RequestTimeout => "request_timeout",
            ApiError::Throttled { .. } => "too_many_requests",
            ApiError::TooManyEvents { .. } => "too_many_events",
            ApiError::Sns(error) => match error {
                SnsError::Malformed(_) => "bad_request",
                SnsError::Signature(_) => "invalid_signature",
                SnsError::UntrustedUrl { .. } => "untrusted_url",
                SnsError::TopicNotAllowed(_) => "topic_not_allowed",
                SnsError::Stale(_) => "stale_message",
                SnsError::CertificateUnusable(_) => "certificate_unusable",
                SnsError::CertificateUnavailable => "certificate_unavailable",
                SnsError::ConfirmationFailed => "confirmation_failed",
                SnsError::NotSns => "sns_required",
            },
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::Unauthorized { .. } => StatusCode::UNAUTHORIZED,
            ApiError::AuthUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::NotReady => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::NotFound => StatusCode::NOT_FOUND,
            ApiError::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
            ApiError::Throttled { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::TooManyEvents { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::Sns(error) => match error {
                SnsError::Malformed(_) => StatusCode::BAD_REQUEST,
                SnsError::Signature(_)
                | SnsError::UntrustedUrl { .. }
                | SnsError::TopicNotAllowed(_)
                | SnsError::Stale(_)
                | SnsError::NotSns
                // A certificate host's 4xx or a body that is no certificate: SNS retrying
                // would not change it.
                | SnsError::CertificateUnusable(_) => StatusCode::FORBIDDEN,
                // SNS re-delivers on a 5xx.
                SnsError::CertificateUnavailable | SnsError::ConfirmationFailed => {
                    StatusCode::BAD_GATEWAY
                }
            },
        }
    }

    fn error_response(&self) -> HttpResponse {
        let mut response = HttpResponse::build(self.status_code());
        match self {
            ApiError::Unauthorized { challenge } => {
                response.insert_header((header::WWW_AUTHENTICATE, challenge.as_str()));
            }
            ApiError::NotReady
            | ApiError::AuthUnavailable
            | ApiError::Sns(SnsError::CertificateUnavailable | SnsError::ConfirmationFailed) => {
                response.insert_header((header::RETRY_AFTER, RETRY_AFTER_SECONDS));
            }
            ApiError::Throttled { seconds } => {
                response.insert_header((header::RETRY_AFTER, *seconds));
            }
            _ => {}
        }
        response.json(json!({"error": self.code(), "message": self.to_string()}))
    }
}
