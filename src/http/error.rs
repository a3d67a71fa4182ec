//! Every error a route can answer with, mapped to its status once. Bodies are small JSON
//! objects of one shape: `{"error": "<code>", "message": "<what is wrong>"}`; [`json_errors`]
//! gives that shape to the errors the framework answers by itself (405, ...).

use std::borrow::Cow;

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header;
use actix_web::http::{Method, StatusCode};
use actix_web::middleware::Next;
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
    #[error("the decompressed body is larger than {limit} bytes")]
    DecodedTooLarge { limit: usize },
    #[error("Content-Encoding {0} is not supported; send gzip, deflate or identity")]
    UnsupportedEncoding(String),
    #[error("the ExternalSecret cache is not in sync with the cluster yet; retry later")]
    NotReady,
    #[error("no route for this path")]
    NotFound,
    #[error("{method} is not allowed here; allowed: {allowed}")]
    MethodNotAllowed { method: Method, allowed: String },
    /// Any other error status, with what the framework said of it.
    #[error("{message}")]
    Other { status: StatusCode, message: String },
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
    fn code(&self) -> Cow<'static, str> {
        let code = match self {
            ApiError::Unauthorized { .. } => "unauthorized",
            ApiError::AuthUnavailable => "auth_unavailable",
            ApiError::BadRequest(_) => "bad_request",
            ApiError::PayloadTooLarge { .. } | ApiError::DecodedTooLarge { .. } => {
                "payload_too_large"
            }
            ApiError::UnsupportedEncoding(_) => "unsupported_encoding",
            ApiError::NotReady => "not_ready",
            ApiError::NotFound => "not_found",
            ApiError::MethodNotAllowed { .. } => "method_not_allowed",
            // The reason phrase, in the codes' spelling: "Bad Gateway" is `bad_gateway`.
            ApiError::Other { status, .. } => {
                let reason = status.canonical_reason().unwrap_or("error");
                return Cow::Owned(reason.to_ascii_lowercase().replace([' ', '-'], "_"));
            }
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
        };
        Cow::Borrowed(code)
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::Unauthorized { .. } => StatusCode::UNAUTHORIZED,
            ApiError::AuthUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::PayloadTooLarge { .. } | ApiError::DecodedTooLarge { .. } => {
                StatusCode::PAYLOAD_TOO_LARGE
            }
            ApiError::UnsupportedEncoding(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::NotReady => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::NotFound => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Other { status, .. } => *status,
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
            // RFC 7694: the codings that would have been accepted.
            ApiError::UnsupportedEncoding(_) => {
                response.insert_header((header::ACCEPT_ENCODING, "gzip, deflate"));
            }
            ApiError::MethodNotAllowed { allowed, .. } => {
                response.insert_header((header::ALLOW, allowed.as_str()));
            }
            _ => {}
        }
        response.json(json!({"error": self.code(), "message": self.to_string()}))
    }
}

/// The most of a framework-made error body kept as its message.
const MESSAGE_LIMIT: usize = 1024;

/// Gives every 4xx and 5xx answer the JSON shape of [`ApiError`]'s: those the routes make
/// already have it; those the framework makes (405 for a method a route does not serve, an
/// extractor's 400, ...) are rewritten, keeping their headers (`Allow`) and their text as the
/// message.
pub async fn json_errors(
    request: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let method = request.method().clone();
    // Handlers' and the router's errors arrive as responses; an `Err` would be a middleware's
    // own, and there is none inside this one.
    let response = next.call(request).await?.map_into_boxed_body();
    let status = response.status();
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if is_json || !(status.is_client_error() || status.is_server_error()) {
        return Ok(response);
    }
    let (request, original) = response.into_parts();
    let (original, body) = original.into_parts();
    let error = if status == StatusCode::METHOD_NOT_ALLOWED {
        let allowed = original
            .headers()
            .get(header::ALLOW)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("none")
            .to_owned();
        ApiError::MethodNotAllowed { method, allowed }
    } else {
        let text = actix_web::body::to_bytes_limited(body, MESSAGE_LIMIT)
            .await
            .ok()
            .and_then(Result::ok)
            .map(|bytes| String::from_utf8_lossy(&bytes).trim().to_owned())
            .filter(|text| !text.is_empty());
        let message = text
            .or_else(|| status.canonical_reason().map(str::to_owned))
            .unwrap_or_else(|| status.to_string());
        ApiError::Other { status, message }
    };
    let mut answer = error.error_response();
    let own: Vec<header::HeaderName> = answer.headers().keys().cloned().collect();
    for (name, value) in original.headers() {
        let body_header = name == header::CONTENT_TYPE || name == header::CONTENT_LENGTH;
        if !body_header && !own.contains(name) {
            answer.headers_mut().append(name.clone(), value.clone());
        }
    }
    Ok(ServiceResponse::new(request, answer))
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::middleware::from_fn;
    use actix_web::{App, test, web};

    #[actix_web::test]
    async fn framework_errors_get_the_json_shape() {
        let app = test::init_service(
            App::new()
                .wrap(from_fn(json_errors))
                .route(
                    "/text",
                    web::get().to(|| async {
                        HttpResponse::BadGateway()
                            .insert_header(("x-kept", "yes"))
                            .body("upstream went away")
                    }),
                )
                .route(
                    "/empty",
                    web::get().to(|| async { HttpResponse::InternalServerError().finish() }),
                )
                .route(
                    "/ours",
                    web::get().to(|| async { Err::<HttpResponse, _>(ApiError::NotFound) }),
                )
                .route("/fine", web::get().to(|| async { "fine" })),
        )
        .await;
        let cases = [
            ("/text", 502, "bad_gateway", "upstream went away"),
            (
                "/empty",
                500,
                "internal_server_error",
                "Internal Server Error",
            ),
            ("/ours", 404, "not_found", "no route for this path"),
        ];
        for (path, status, code, message) in cases {
            let request = test::TestRequest::get().uri(path).to_request();
            let response = test::call_service(&app, request).await;
            assert_eq!(response.status().as_u16(), status, "{path}");
            let header = |name: &str| response.headers().get(name).cloned();
            assert_eq!(
                header("content-type").as_ref().map(|v| v.as_bytes()),
                Some(&b"application/json"[..]),
                "{path}"
            );
            if path == "/text" {
                assert_eq!(
                    header("x-kept").as_ref().map(|v| v.as_bytes()),
                    Some(&b"yes"[..])
                );
            }
            let body: serde_json::Value = test::read_body_json(response).await;
            assert_eq!(body, json!({"error": code, "message": message}), "{path}");
        }
        let request = test::TestRequest::get().uri("/fine").to_request();
        let body = test::call_and_read_body(&app, request).await;
        assert_eq!(body, "fine");
    }
}
