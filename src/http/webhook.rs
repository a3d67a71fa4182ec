//! `POST /webhook`: authenticate, read the events, refresh what they concern.

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, ResponseError, web};

use super::AppState;
use super::auth::{BeforeBody, Refusal};
use super::encoding;
use super::error::{ApiError, RETRY_AFTER_SECONDS};
use crate::refresher::RefreshReport;
use crate::senders::Provider;
use crate::senders::Reading;

/// How long a client may take to send the body.
const BODY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// What a webhook comes to.
enum Answer {
    Report(RefreshReport),
    /// A handshake's answer, sent as is.
    Reply(serde_json::Value),
}

/// `POST /webhook/{provider}`: a body of that provider's.
pub async fn receive_from(
    request: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> HttpResponse {
    let name = request.match_info().get("provider").unwrap_or_default();
    let mut trail = Trail::new(&request, &state, name);
    match Provider::from_name(name) {
        Some(provider) => {
            let outcome = handle(&request, payload, &state, Some(provider), &mut trail).await;
            respond(outcome, &trail)
        }
        None => respond(Err(ApiError::NotFound), &trail),
    }
}

/// `OPTIONS /webhook/{provider}`: the CloudEvents webhook abuse-protection handshake (Azure
/// Event Grid's CloudEvents schema sends it before delivering anything).
pub async fn allow_origin(request: HttpRequest) -> HttpResponse {
    let origin = request
        .headers()
        .get("webhook-request-origin")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("*")
        .to_owned();
    HttpResponse::Ok()
        .insert_header(("WebHook-Allowed-Origin", origin))
        .insert_header(("WebHook-Allowed-Rate", "*"))
        .insert_header((header::ALLOW, "POST, OPTIONS"))
        .finish()
}

/// `POST /webhook`: Akeyless bodies, and any other provider's recognized by its shape.
pub async fn receive(
    request: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> HttpResponse {
    let mut trail = Trail::new(&request, &state, "webhook");
    let outcome = handle(&request, payload, &state, None, &mut trail).await;
    respond(outcome, &trail)
}

/// Items listed in a log line, at most; the rest are counted.
const LOGGED_ITEMS: usize = 20;

/// Who called and what they sent, for the one log line of each webhook: an audit trail that
/// never holds a credential or a payload.
struct Trail {
    route: String,
    client: Option<std::net::IpAddr>,
    scheme: Option<&'static str>,
    /// Who the scheme says called, where it names someone: the basic-auth user, the client
    /// certificate's subject.
    principal: Option<String>,
    sender: Option<&'static str>,
    event_ids: Vec<String>,
    keys: Vec<String>,
}

impl Trail {
    fn new(request: &HttpRequest, state: &AppState, route: &str) -> Trail {
        Trail {
            route: route.to_owned(),
            client: state.client_address(request),
            scheme: None,
            principal: None,
            sender: None,
            event_ids: Vec::new(),
            keys: Vec::new(),
        }
    }
}

/// `items` as one line, the first [`LOGGED_ITEMS`] of them and how many more; none when empty
/// (the field is left out of the line).
fn listed<T: std::fmt::Display>(items: impl ExactSizeIterator<Item = T>) -> Option<String> {
    let count = items.len();
    if count == 0 {
        return None;
    }
    let mut line: Vec<String> = items.take(LOGGED_ITEMS).map(|i| i.to_string()).collect();
    if count > LOGGED_ITEMS {
        line.push(format!("… (+{} more)", count - LOGGED_ITEMS));
    }
    Some(line.join(", "))
}

/// Answers, and logs one line about the webhook, whatever its outcome. What is unknown or
/// empty is left out of the line.
fn respond(outcome: Result<Answer, ApiError>, trail: &Trail) -> HttpResponse {
    let client = trail.client.map(tracing::field::display);
    let (route, scheme) = (trail.route.as_str(), trail.scheme);
    let principal = trail.principal.as_deref();
    let sender = trail.sender;
    match outcome {
        Ok(Answer::Reply(reply)) => {
            tracing::info!(
                status = 200,
                route,
                client,
                scheme,
                principal,
                sender,
                "webhook handshake answered"
            );
            HttpResponse::Ok().json(reply)
        }
        Ok(Answer::Report(report)) => {
            let applied = report.all_applied();
            let status = if applied { 200 } else { 503 };
            let object = |t: &crate::refresher::TargetReport| match &t.namespace {
                Some(namespace) => format!("{namespace}/{}", t.name),
                None => t.name.clone(),
            };
            tracing::info!(
                status,
                route,
                client,
                scheme,
                principal,
                sender,
                event_ids = listed(trail.event_ids.iter()),
                keys = listed(trail.keys.iter()),
                events = report.events,
                refreshed = report.refreshed.len(),
                refreshed_objects = listed(report.refreshed.iter().map(object)),
                skipped = report.skipped.len(),
                skipped_objects = listed(
                    report
                        .skipped
                        .iter()
                        .map(|s| format!("{}/{} ({})", s.namespace, s.name, s.code))
                ),
                failed = report.failed.len(),
                failed_objects = listed(report.failed.iter().map(|f| object(&f.target))),
                unmatched = report.unmatched.len(),
                duplicates = report.duplicates.len(),
                dry_run = report.dry_run,
                "webhook handled"
            );
            if applied {
                return HttpResponse::Ok().json(report);
            }
            // The report, with the fields every error answer has.
            let mut body = serde_json::to_value(&report).unwrap_or_default();
            if let Some(fields) = body.as_object_mut() {
                fields.insert("error".to_owned(), "patch_failed".into());
                let message = format!("{} of the patches failed; retry later", report.failed.len());
                fields.insert("message".to_owned(), message.into());
            }
            HttpResponse::ServiceUnavailable()
                .insert_header((header::RETRY_AFTER, RETRY_AFTER_SECONDS))
                .json(body)
        }
        Err(error) => {
            let status = error.status_code().as_u16();
            tracing::info!(status, route, client, scheme, principal, sender, error = %error, "webhook handled");
            error.error_response()
        }
    }
}

/// Header-only credentials are checked before the body is read, so that an unauthenticated
/// caller cannot make the server buffer anything; a body is read without them only when the
/// route accepts a body signature and the request carries one, and the signature is checked
/// before the body is parsed. The Content-Type header is not insisted on.
///
/// A body's Content-Encoding is checked before it is read (415 for one not decoded), and the
/// body decoded after the signature check: a signature is of the bytes as sent (compressed,
/// when they are), and the decoded body is limited like the raw one.
async fn handle(
    request: &HttpRequest,
    payload: web::Payload,
    state: &AppState,
    provider: Option<Provider>,
    trail: &mut Trail,
) -> Result<Answer, ApiError> {
    let client = trail.client;
    if let Some(wait) = client.and_then(|ip| state.throttle.blocked(ip)) {
        state.metrics.throttled_requests.inc();
        return Err(ApiError::Throttled {
            seconds: wait.as_secs().max(1),
        });
    }
    let route = provider.map(Provider::name);
    let refused = |refusal: Refusal| {
        // Counted either way: tokens that need the (unreachable) key set must not be a free
        // way to make the server fetch, or to guess.
        if let Some(ip) = client {
            state.throttle.failed(ip);
        }
        let shown = client.map(tracing::field::display);
        if refusal.is_unavailable() {
            tracing::warn!(route = route.unwrap_or("webhook"), client = shown, reasons = %refusal, "webhook credentials could not be checked");
            return ApiError::AuthUnavailable;
        }
        state.metrics.auth_failures.inc();
        tracing::info!(route = route.unwrap_or("webhook"), client = shown, reasons = %refusal, "webhook authentication failed");
        ApiError::Unauthorized {
            challenge: refusal.challenge,
        }
    };
    let before_body = state
        .auth
        .before_body(request, route)
        .await
        .map_err(refused)?;
    let coding = encoding::coding_of(request)?;
    let limit = state.max_body_bytes;
    // A body mostly comes with the head, and the server hands it over just after calling the
    // handler: a turn later it is all there, read before the timeout's timer is ever set.
    tokio::task::yield_now().await;
    let body = tokio::time::timeout(BODY_TIMEOUT, payload.to_bytes_limited(limit))
        .await
        .map_err(|_| ApiError::RequestTimeout)?
        .map_err(|_| ApiError::PayloadTooLarge { limit })?
        .map_err(|e| ApiError::BadRequest(format!("reading the body failed: {e}")))?;
    let mut caller = match before_body {
        BeforeBody::Accepted(caller) => caller,
        BeforeBody::NeedsBody(so_far) => state
            .auth
            .with_body(request, &body, route, so_far)
            .map_err(refused)?,
    };
    trail.scheme = Some(caller.scheme.name());
    trail.principal = caller.principal.take();
    let body = encoding::decoded(coding, body, limit).await?;
    let header = |name: &str| {
        request
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let (notification, sender) = match state.inbox.read(provider, header, &body).await? {
        Reading::Reply(reply) => return Ok(Answer::Reply(reply)),
        Reading::Notification(notification, sender) => (notification, sender),
    };
    trail.sender = Some(sender.name());
    let ids = notification
        .changes
        .iter()
        .filter_map(|c| c.event_id.clone());
    trail.event_ids = ids
        .chain(
            notification
                .ignored
                .iter()
                .filter_map(|i| i.event_id.clone()),
        )
        .collect();
    trail.keys = notification.changes.iter().map(|c| c.key.clone()).collect();
    let count = notification.changes.len() + notification.ignored.len();
    if count > state.max_events {
        return Err(ApiError::TooManyEvents {
            count,
            limit: state.max_events,
        });
    }
    // Counted as they arrive (before patching), unless they are to be re-delivered because
    // the cache is not ready.
    if state.refresher.index.is_ready() {
        for change in &notification.changes {
            let event_type = change.event_type.as_deref();
            state.metrics.count_event(sender.name(), event_type);
        }
    }
    let mut report = if notification.changes.is_empty() {
        RefreshReport::default()
    } else {
        state
            .refresher
            .refresh(&notification.changes, caller.namespaces.as_ref())
            .await
            .map_err(|_| ApiError::NotReady)?
    };
    report.events += notification.ignored.len();
    report.ignored = notification.ignored;
    Ok(Answer::Report(report))
}
