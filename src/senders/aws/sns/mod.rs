//! AWS SNS over HTTP(S): every SNS message's signature is checked before it is read, a
//! SubscriptionConfirmation is confirmed by fetching its SubscribeURL, and an
//! UnsubscribeConfirmation is acknowledged. Parsing, the canonical string, the signature check
//! and the URL rule are pure ([`message`], [`signature`], [`trust`]); [`SnsGate`] adds the
//! fetching and the certificate cache.
//!
//! A signature proves who sent a message, not when: a captured message stays valid for its
//! certificate's lifetime. So a message's signed `Timestamp` must also be recent
//! (`AWS_SNS_MAX_AGE`), which leaves a replay only that window.

pub mod message;
pub mod signature;
pub mod trust;

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use reqwest::Url;
use serde_json::{Value, json};

use message::{MessageType, SnsMessage};
use signature::{Signed, SigningKey};

/// Signing certificates remembered, by URL. SNS signs with one certificate per region at a
/// time, so a handful covers every topic.
const CACHED_CERTIFICATES: usize = 16;
/// A signing certificate is a couple of kilobytes; refuse to read much more.
const MAX_CERTIFICATE_BYTES: usize = 64 * 1024;
const FETCH_TIMEOUT: Duration = Duration::from_secs(10);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How old a message's `Timestamp` may be by default: SNS's default HTTP delivery policy
/// retries for about 20 minutes (at most an hour when customized), so this keeps every retry.
pub const DEFAULT_MAX_AGE: Duration = Duration::from_secs(3600);
/// How far in the future a message's `Timestamp` may be: clock skew, not more.
pub const MAX_FUTURE: Duration = Duration::from_secs(300);
/// How long a failed certificate fetch is remembered, so that a flood of deliveries naming
/// an unusable certificate does not become a flood of fetches.
const FAILED_FETCH_MEMORY: Duration = Duration::from_secs(30);

/// Why an SNS message was refused or could not be handled.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SnsError {
    #[error("{0}")]
    Malformed(String),
    #[error("SNS signature check failed: {0}")]
    Signature(String),
    #[error("{field} {url:?} is not trusted: {reason}")]
    UntrustedUrl {
        field: &'static str,
        url: String,
        reason: String,
    },
    #[error("messages from topic {0} are not accepted (AWS_SNS_TOPIC_ARNS)")]
    TopicNotAllowed(String),
    #[error("{0}")]
    Stale(String),
    /// The cause is logged where it happens; the answer stays generic.
    #[error("the SNS signing certificate could not be fetched; retry later")]
    CertificateUnavailable,
    /// The certificate host answered, but not with a certificate: retrying will not help.
    #[error("the SNS signing certificate at SigningCertURL is not usable: {0}")]
    CertificateUnusable(String),
    #[error("confirming the SNS subscription failed; retry later")]
    ConfirmationFailed,
    #[error("AWS events are accepted only in signed SNS messages (AWS_SNS_ONLY)")]
    NotSns,
}

/// What the SNS support does; from the `AWS_SNS_*` variables and `AWS_ENDPOINT_URL_SNS`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnsSettings {
    /// Check every SNS message's signature.
    pub verify_signatures: bool,
    /// Confirm subscriptions by fetching their SubscribeURL (otherwise it is logged).
    pub confirm_subscriptions: bool,
    /// Topics whose messages are accepted; empty accepts every topic.
    pub topic_arns: Vec<String>,
    /// A custom SNS endpoint (LocalStack, a test server) trusted besides SNS's own.
    pub endpoint: Option<Url>,
    /// How old a message's signed `Timestamp` may be (`AWS_SNS_MAX_AGE`).
    pub max_age: Duration,
    /// AWS events only inside signed SNS messages, never posted bare (`AWS_SNS_ONLY`).
    pub only: bool,
}

impl Default for SnsSettings {
    fn default() -> Self {
        SnsSettings {
            verify_signatures: true,
            confirm_subscriptions: true,
            topic_arns: Vec::new(),
            endpoint: None,
            max_age: DEFAULT_MAX_AGE,
            only: false,
        }
    }
}

/// Checks SNS messages and confirms subscriptions: the HTTP client, the certificate cache and
/// the settings.
pub struct SnsGate {
    settings: SnsSettings,
    /// Built at the first SNS message, so that a service that never gets one never loads the
    /// system's CA certificates (and does not need any to start).
    http: OnceLock<Result<reqwest::Client, String>>,
    certificates: Mutex<CertificateCache>,
}

impl SnsGate {
    pub fn new(settings: SnsSettings) -> SnsGate {
        SnsGate {
            settings,
            http: OnceLock::new(),
            certificates: Mutex::new(CertificateCache::default()),
        }
    }

    fn http(&self) -> Result<&reqwest::Client, String> {
        self.http
            .get_or_init(|| {
                crate::install_crypto_provider();
                reqwest::Client::builder()
                    .timeout(FETCH_TIMEOUT)
                    .connect_timeout(CONNECT_TIMEOUT)
                    // A trusted host must not send us anywhere else.
                    .redirect(reqwest::redirect::Policy::none())
                    .build()
                    .map_err(|e| format!("building the HTTP client: {e}"))
            })
            .as_ref()
            .map_err(Clone::clone)
    }

    /// Checks `body` if it is an SNS message (`announced` is its `x-amz-sns-message-type`
    /// header). A confirmation is answered here: `Some(reply)`. `None` means the body is to be
    /// read as usual: it is not SNS, or a Notification that passed, or a
    /// SubscriptionConfirmation to be logged because confirming is turned off.
    pub async fn screen(
        &self,
        body: Option<&Value>,
        announced: Option<&str>,
        aws_event: bool,
    ) -> Result<Option<Value>, SnsError> {
        // Only a body that must be signed has to be an SNS envelope: unverified, a raw
        // message delivery is read like any other body.
        let announced = announced.filter(|_| self.settings.verify_signatures);
        let Some(message) = SnsMessage::read(body, announced)? else {
            if aws_event && self.settings.only {
                return Err(SnsError::NotSns);
            }
            return Ok(None);
        };
        if self.settings.verify_signatures {
            self.verify(&message).await?;
        }
        let topic = message.required("TopicArn")?;
        if !self.settings.topic_arns.is_empty()
            && !self.settings.topic_arns.iter().any(|t| t == topic)
        {
            return Err(SnsError::TopicNotAllowed(topic.to_owned()));
        }
        match message.kind {
            MessageType::Notification => Ok(None),
            MessageType::UnsubscribeConfirmation => {
                tracing::info!(topic_arn = topic, "SNS subscription ended");
                Ok(Some(json!({
                    "unsubscribeConfirmation": "acknowledged; nothing to do",
                    "topicArn": topic,
                })))
            }
            MessageType::SubscriptionConfirmation if self.settings.confirm_subscriptions => {
                self.confirm(&message, topic).await.map(Some)
            }
            MessageType::SubscriptionConfirmation => Ok(None),
        }
    }

    async fn verify(&self, message: &SnsMessage) -> Result<(), SnsError> {
        let signed = Signed::read(message)?;
        let url = trust::trusted_url(
            "SigningCertURL",
            message.required("SigningCertURL")?,
            self.settings.endpoint.as_ref(),
        )?;
        // Before anything is fetched: a stale message costs nothing. The Timestamp is signed,
        // so it is trusted once the signature below verifies.
        let now = chrono::Utc::now();
        fresh(message, now, self.settings.max_age)?;
        let key = self.signing_key(&url).await?;
        key.verify(&signed, now.timestamp())
    }

    async fn signing_key(&self, url: &Url) -> Result<Arc<SigningKey>, SnsError> {
        let now = Instant::now();
        if let Some(known) = self.cache().get(url.as_str(), now) {
            return known;
        }
        let key = match self.fetch(url).await {
            Ok(pem) => SigningKey::from_pem(&pem).map_err(|cause| {
                tracing::warn!(url = %url, error = %cause, "the SNS signing certificate is not usable");
                SnsError::CertificateUnusable(cause)
            }),
            Err(FetchError::Transient(cause)) => {
                tracing::warn!(url = %url, error = %cause, "fetching the SNS signing certificate failed");
                Err(SnsError::CertificateUnavailable)
            }
            Err(FetchError::Refused(cause)) => {
                tracing::warn!(url = %url, error = %cause, "the SNS signing certificate host refused it");
                Err(SnsError::CertificateUnusable(cause))
            }
        };
        match key {
            Ok(key) => {
                let key = Arc::new(key);
                self.cache().insert(url.as_str(), key.clone());
                Ok(key)
            }
            Err(error) => {
                self.cache()
                    .failed(url.as_str(), error.clone(), Instant::now());
                Err(error)
            }
        }
    }

    async fn fetch(&self, url: &Url) -> Result<Vec<u8>, FetchError> {
        let response = self
            .http()
            .map_err(FetchError::Transient)?
            .get(url.clone())
            .send()
            .await
            .map_err(|e| FetchError::Transient(e.to_string()))?;
        let status = response.status();
        if status.is_client_error() || status.is_redirection() {
            // Redirects are not followed (see `http`): the host will not give a certificate.
            return Err(FetchError::Refused(format!("the host answered {status}")));
        }
        if !status.is_success() {
            return Err(FetchError::Transient(format!("the host answered {status}")));
        }
        if response
            .content_length()
            .is_some_and(|n| n > MAX_CERTIFICATE_BYTES as u64)
        {
            return Err(FetchError::Refused(
                "the response is too large for a certificate".into(),
            ));
        }
        let body = response
            .bytes()
            .await
            .map_err(|e| FetchError::Transient(e.to_string()))?;
        if body.len() > MAX_CERTIFICATE_BYTES {
            return Err(FetchError::Refused(
                "the response is too large for a certificate".into(),
            ));
        }
        Ok(body.to_vec())
    }

    async fn confirm(&self, message: &SnsMessage, topic: &str) -> Result<Value, SnsError> {
        let url = trust::trusted_url(
            "SubscribeURL",
            message.required("SubscribeURL")?,
            self.settings.endpoint.as_ref(),
        )?;
        let failed = |cause: String| {
            tracing::warn!(topic_arn = topic, error = %cause, "confirming the SNS subscription failed");
            SnsError::ConfirmationFailed
        };
        let answer = self
            .http()
            .map_err(failed)?
            .get(url)
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .map_err(|e| failed(e.to_string()))?
            .text()
            .await
            .unwrap_or_default();
        let subscription = subscription_arn(&answer);
        tracing::info!(
            topic_arn = topic,
            subscription_arn = subscription.unwrap_or("-"),
            "SNS subscription confirmed"
        );
        let mut reply = json!({"subscriptionConfirmation": "confirmed", "topicArn": topic});
        if let Some(subscription) = subscription {
            reply["subscriptionArn"] = json!(subscription);
        }
        Ok(reply)
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, CertificateCache> {
        // The cache holds no invariant a panic could break; keep using it.
        self.certificates
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Why a certificate could not be fetched: worth retrying (no answer, a 5xx) or not (the
/// host answered, but not with a certificate).
enum FetchError {
    Transient(String),
    Refused(String),
}

/// The message's signed `Timestamp` is within `max_age` before `now`, and at most
/// `MAX_FUTURE` after it.
pub fn fresh(
    message: &SnsMessage,
    now: chrono::DateTime<chrono::Utc>,
    max_age: Duration,
) -> Result<(), SnsError> {
    let text = message.required("Timestamp")?;
    let sent = chrono::DateTime::parse_from_rfc3339(text).map_err(|e| {
        SnsError::Malformed(format!(
            "SNS Timestamp {text:?} is not an ISO 8601 time: {e}"
        ))
    })?;
    let age = now.signed_duration_since(sent);
    let spelled = |d: chrono::TimeDelta| {
        humantime::format_duration(Duration::from_secs(d.num_seconds().unsigned_abs()))
    };
    if age.to_std().is_ok_and(|age| age > max_age) {
        return Err(SnsError::Stale(format!(
            "the SNS message's Timestamp {text} is {} old; messages older than {} \
             (AWS_SNS_MAX_AGE) are refused as possible replays",
            spelled(age),
            humantime::format_duration(max_age)
        )));
    }
    if (-age).to_std().is_ok_and(|ahead| ahead > MAX_FUTURE) {
        return Err(SnsError::Stale(format!(
            "the SNS message's Timestamp {text} is {} in the future; more than {} ahead of this \
             server's clock is refused",
            spelled(-age),
            humantime::format_duration(MAX_FUTURE)
        )));
    }
    Ok(())
}

/// The SubscriptionArn in SNS's ConfirmSubscription answer (a small XML document).
fn subscription_arn(answer: &str) -> Option<&str> {
    let start = answer.find("<SubscriptionArn>")? + "<SubscriptionArn>".len();
    let length = answer[start..].find("</SubscriptionArn>")?;
    Some(answer[start..start + length].trim()).filter(|arn| !arn.is_empty())
}

/// Signing keys by certificate URL, the oldest dropped first when full; and recent failures
/// to get one, remembered for `FAILED_FETCH_MEMORY`.
#[derive(Default)]
struct CertificateCache {
    keys: HashMap<String, Arc<SigningKey>>,
    order: VecDeque<String>,
    failures: HashMap<String, (Instant, SnsError)>,
}

impl CertificateCache {
    /// The key, or the recent failure to get it, if either is known at `now`.
    fn get(&self, url: &str, now: Instant) -> Option<Result<Arc<SigningKey>, SnsError>> {
        if let Some(key) = self.keys.get(url) {
            return Some(Ok(key.clone()));
        }
        let (at, error) = self.failures.get(url)?;
        (now.saturating_duration_since(*at) < FAILED_FETCH_MEMORY).then(|| Err(error.clone()))
    }

    fn failed(&mut self, url: &str, error: SnsError, now: Instant) {
        self.failures
            .retain(|_, (at, _)| now.saturating_duration_since(*at) < FAILED_FETCH_MEMORY);
        // Many made-up URLs on a trusted host must not grow memory: forget the oldest.
        while self.failures.len() >= CACHED_CERTIFICATES {
            let oldest = self
                .failures
                .iter()
                .min_by_key(|(_, (at, _))| *at)
                .map(|(url, _)| url.clone());
            match oldest {
                Some(url) => self.failures.remove(&url),
                None => break,
            };
        }
        self.failures.insert(url.to_owned(), (now, error));
    }

    fn insert(&mut self, url: &str, key: Arc<SigningKey>) {
        self.failures.remove(url);
        if self.keys.insert(url.to_owned(), key).is_some() {
            return;
        }
        self.order.push_back(url.to_owned());
        while self.order.len() > CACHED_CERTIFICATES {
            if let Some(oldest) = self.order.pop_front() {
                self.keys.remove(&oldest);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_certificate_cache_is_bounded() {
        let key = Arc::new(
            SigningKey::from_pem(&signature::tests::sns_fixture("signing-cert.pem")).unwrap(),
        );
        let mut cache = CertificateCache::default();
        for i in 0..CACHED_CERTIFICATES + 3 {
            cache.insert(
                &format!("https://sns.eu-west-1.amazonaws.com/{i}.pem"),
                key.clone(),
            );
        }
        cache.insert("https://sns.eu-west-1.amazonaws.com/5.pem", key.clone());
        assert_eq!(cache.keys.len(), CACHED_CERTIFICATES);
        assert_eq!(cache.order.len(), CACHED_CERTIFICATES);
        let now = Instant::now();
        assert!(
            cache
                .get("https://sns.eu-west-1.amazonaws.com/0.pem", now)
                .is_none()
        );
        assert!(
            cache
                .get("https://sns.eu-west-1.amazonaws.com/18.pem", now)
                .is_some()
        );
    }

    #[test]
    fn failures_are_remembered_briefly_and_boundedly() {
        let mut cache = CertificateCache::default();
        let url = "https://sns.eu-west-1.amazonaws.com/gone.pem";
        let t0 = Instant::now();
        let refused = SnsError::CertificateUnusable("the host answered 404 Not Found".into());
        cache.failed(url, refused.clone(), t0);
        assert_eq!(
            cache.get(url, t0 + Duration::from_secs(29)),
            Some(Err(refused))
        );
        assert_eq!(cache.get(url, t0 + FAILED_FETCH_MEMORY), None);
        for i in 0..CACHED_CERTIFICATES * 3 {
            cache.failed(
                &format!("https://sns.eu-west-1.amazonaws.com/{i}.pem"),
                SnsError::CertificateUnavailable,
                t0 + Duration::from_millis(i as u64),
            );
        }
        assert!(cache.failures.len() <= CACHED_CERTIFICATES);
        // A certificate fetched after all replaces the failure.
        let key = Arc::new(
            SigningKey::from_pem(&signature::tests::sns_fixture("signing-cert.pem")).unwrap(),
        );
        cache.failed(url, SnsError::CertificateUnavailable, t0);
        cache.insert(url, key);
        assert!(matches!(cache.get(url, t0), Some(Ok(_))));
    }

    fn stamped(timestamp: &str) -> SnsMessage {
        let body = serde_json::json!({"Type": "Notification", "Timestamp": timestamp});
        SnsMessage::read(Some(&body), None).unwrap().unwrap()
    }

    #[test]
    fn only_recent_messages_are_fresh() {
        let now = chrono::DateTime::parse_from_rfc3339("2026-11-20T12:00:00Z")
            .unwrap()
            .to_utc();
        let hour = Duration::from_secs(3600);
        for timestamp in [
            "2026-11-20T12:00:00.000Z",
            "2026-11-20T11:00:00.000Z",
            "2026-11-20T12:05:00.000Z",
            "2026-11-20T13:30:00+01:30",
        ] {
            assert_eq!(fresh(&stamped(timestamp), now, hour), Ok(()), "{timestamp}");
        }
        let old = fresh(&stamped("2026-11-20T10:59:59.000Z"), now, hour).unwrap_err();
        assert!(
            matches!(&old, SnsError::Stale(m) if m.contains("1h 1s old") && m.contains("AWS_SNS_MAX_AGE")),
            "{old}"
        );
        let ahead = fresh(&stamped("2026-11-20T12:05:01.000Z"), now, hour).unwrap_err();
        assert!(
            matches!(&ahead, SnsError::Stale(m) if m.contains("5m 1s in the future")),
            "{ahead}"
        );
        // A shorter window is honoured.
        assert!(
            fresh(
                &stamped("2026-11-20T11:58:00Z"),
                now,
                Duration::from_secs(60)
            )
            .is_err()
        );
        for bad in ["yesterday", "2026-11-20 10:00"] {
            assert!(
                matches!(fresh(&stamped(bad), now, hour), Err(SnsError::Malformed(_))),
                "{bad}"
            );
        }
        let untimed = SnsMessage::read(Some(&serde_json::json!({"Type": "Notification"})), None)
            .unwrap()
            .unwrap();
        assert!(matches!(
            fresh(&untimed, now, hour),
            Err(SnsError::Malformed(_))
        ));
    }

    #[test]
    fn subscription_arns_are_read_from_the_answer() {
        let answer = "<ConfirmSubscriptionResponse><ConfirmSubscriptionResult>\n<SubscriptionArn>arn:aws:sns:eu-west-1:1:t:abc</SubscriptionArn>\n</ConfirmSubscriptionResult></ConfirmSubscriptionResponse>";
        assert_eq!(
            subscription_arn(answer),
            Some("arn:aws:sns:eu-west-1:1:t:abc")
        );
        assert_eq!(subscription_arn("<html>"), None);
        assert_eq!(
            subscription_arn("<SubscriptionArn></SubscriptionArn>"),
            None
        );
    }

    fn gate(settings: SnsSettings) -> SnsGate {
        SnsGate::new(settings)
    }

    #[tokio::test]
    async fn untrusted_certificate_and_subscribe_urls_are_refused_without_fetching() {
        let mut message = signature::tests::signed(serde_json::json!({
            "Type": "SubscriptionConfirmation", "MessageId": "m", "Token": "t",
            "TopicArn": "arn:aws:sns:eu-west-1:1:t", "Message": "m",
            "Timestamp": "2026-11-20T10:00:00.000Z",
            "SubscribeURL": "https://sns.evil.com/?Action=ConfirmSubscription",
            "SigningCertURL": "http://sns.eu-west-1.amazonaws.com/cert.pem"}));
        let err = gate(SnsSettings::default())
            .screen(Some(&message), None, true)
            .await
            .unwrap_err();
        assert!(
            matches!(
                &err,
                SnsError::UntrustedUrl {
                    field: "SigningCertURL",
                    ..
                }
            ),
            "{err}"
        );
        // Unverified, the SubscribeURL is still held to the same rule.
        let unverified = SnsSettings {
            verify_signatures: false,
            ..SnsSettings::default()
        };
        let err = gate(unverified.clone())
            .screen(Some(&message), None, true)
            .await
            .unwrap_err();
        assert!(
            matches!(
                &err,
                SnsError::UntrustedUrl {
                    field: "SubscribeURL",
                    ..
                }
            ),
            "{err}"
        );
        message["TopicArn"] = serde_json::json!("arn:aws:sns:eu-west-1:1:other");
        let limited = SnsSettings {
            topic_arns: vec!["arn:aws:sns:eu-west-1:1:t".into()],
            ..unverified
        };
        let err = gate(limited)
            .screen(Some(&message), None, true)
            .await
            .unwrap_err();
        assert_eq!(
            err,
            SnsError::TopicNotAllowed("arn:aws:sns:eu-west-1:1:other".into())
        );
    }

    #[tokio::test]
    async fn raw_message_delivery_is_refused_unless_unverified() {
        let raw = &serde_json::json!({"source": "aws.secretsmanager", "detail-type": "AWS API Call via CloudTrail", "detail": {}});
        let err = gate(SnsSettings::default())
            .screen(Some(raw), Some("Notification"), true)
            .await
            .unwrap_err();
        assert!(err.to_string().contains("raw message delivery"), "{err}");
        let unverified = SnsSettings {
            verify_signatures: false,
            ..SnsSettings::default()
        };
        assert_eq!(
            gate(unverified)
                .screen(Some(raw), Some("Notification"), true)
                .await,
            Ok(None)
        );
    }

    #[tokio::test]
    async fn other_bodies_pass_through_and_unsigned_sns_messages_do_not() {
        let gate = gate(SnsSettings::default());
        assert_eq!(
            gate.screen(Some(&json!({"source": "aws.secretsmanager"})), None, true)
                .await,
            Ok(None)
        );
        let unsigned = json!({"Type": "Notification", "MessageId": "m", "TopicArn": "t", "Message": "{}", "Timestamp": "t",
            "SigningCertURL": "https://sns.eu-west-1.amazonaws.com/c.pem"});
        let err = gate.screen(Some(&unsigned), None, true).await.unwrap_err();
        assert!(matches!(err, SnsError::Signature(_)), "{err}");
    }
}
