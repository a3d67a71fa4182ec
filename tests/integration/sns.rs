//! AWS SNS over HTTP(S): signed messages are checked against the certificate SNS names,
//! subscriptions are confirmed, and what cannot be checked is refused or retried.

use serde_json::{Value, json};

use crate::support::*;

const TOPIC: &str = "arn:aws:sns:eu-west-1:123456789012:secret-changes";

struct Sns {
    api: FakeApiServer,
    app: TestApp,
    sns: FakeSns,
}

/// An ExternalSecret that the SNS notification fixture's secret refreshes, the service, and a
/// local SNS stand-in; `adjust` changes the SNS settings.
async fn start(adjust: impl FnOnce(&mut eso_refresher::senders::sns::SnsSettings)) -> Sns {
    let api = FakeApiServer::start().await;
    api.apply(
        external_secret("aws", "db")
            .with_key("prod/payments/db-password")
            .build(),
    );
    let sns = FakeSns::start().await;
    let mut config = config();
    config.sns = sns.settings();
    adjust(&mut config.sns);
    let app = spawn_ready(&api, config).await;
    Sns { api, app, sns }
}

impl Sns {
    /// POSTs `message` as SNS does: text/plain, with its type in a header.
    async fn post(&self, path: &str, message: &Value) -> (u16, Value, reqwest::header::HeaderMap) {
        let response = self
            .app
            .http
            .post(format!("{}{path}", self.app.url))
            .basic_auth(USER, Some(PASSWORD))
            .header("content-type", "text/plain; charset=UTF-8")
            .header(
                "x-amz-sns-message-type",
                message["Type"].as_str().unwrap_or_default(),
            )
            .body(message.to_string())
            .send()
            .await
            .expect("webhook request");
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        (
            status,
            response.json().await.unwrap_or(Value::Null),
            headers,
        )
    }

    fn patched(&self) -> Vec<String> {
        self.api.patches().into_iter().map(|p| p.path).collect()
    }

    fn certificate_fetches(&self) -> usize {
        self.sns
            .requests()
            .iter()
            .filter(|r| r.ends_with(".pem"))
            .count()
    }
}

fn notification(message_id: &str) -> Value {
    let mut message = event_fixture("aws-sns-notification.json");
    message["MessageId"] = json!(message_id);
    message
}

fn confirmation() -> Value {
    event_fixture("aws-sns-subscription-confirmation.json")
}

#[tokio::test]
async fn a_signed_notification_refreshes_and_its_certificate_is_fetched_once() {
    let t = start(|_| {}).await;
    let (status, report, _) = t
        .post("/webhook/aws", &t.sns.signed(notification("n-1")))
        .await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["refreshed"][0]["name"], "db", "{report}");
    let patched = t.patched();
    assert!(
        patched.len() == 1 && patched[0].ends_with("/namespaces/aws/externalsecrets/db"),
        "{patched:?}"
    );

    // Recognized at /webhook as well; the certificate comes from the cache.
    let mut second = notification("n-2");
    second["Message"] = json!(
        second["Message"]
            .as_str()
            .unwrap()
            .replace("6a7e8feb-b491-4cf7-a9f1-bf3703467718", "second-event")
    );
    let (status, report, _) = t.post("/webhook", &t.sns.signed(second)).await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(t.patched().len(), 2, "{report}");
    assert_eq!(t.certificate_fetches(), 1, "{:?}", t.sns.requests());
}

#[tokio::test]
async fn tampered_unsigned_and_foreign_certificate_messages_are_refused() {
    let t = start(|_| {}).await;
    // A new event id in the message: unchecked, it would be refreshed.
    let mut tampered = t.sns.signed(notification("n-1"));
    tampered["Message"] = json!(
        tampered["Message"]
            .as_str()
            .unwrap()
            .replace("6a7e8feb-b491-4cf7-a9f1-bf3703467718", "tampered")
    );
    let (status, answer, _) = t.post("/webhook/aws", &tampered).await;
    assert_eq!(status, 403, "{answer}");
    assert_eq!(answer["error"], "invalid_signature");
    assert!(
        answer["message"]
            .as_str()
            .unwrap()
            .contains("does not match"),
        "{answer}"
    );

    // The fixture as committed: a placeholder signature, refused before anything is fetched.
    let (status, answer, _) = t
        .post("/webhook/aws", &event_fixture("aws-sns-notification.json"))
        .await;
    assert_eq!(status, 403, "{answer}");
    assert_eq!(answer["error"], "invalid_signature");

    // Signed, but naming a certificate somewhere other than SNS.
    let mut elsewhere = t.sns.signed(notification("n-2"));
    elsewhere["SigningCertURL"] = json!("https://sns.eu-west-1.amazonaws.com.evil.com/cert.pem");
    let (status, answer, _) = t.post("/webhook", &elsewhere).await;
    assert_eq!(status, 403, "{answer}");
    assert_eq!(answer["error"], "untrusted_url");
    assert!(
        answer["message"]
            .as_str()
            .unwrap()
            .contains("SigningCertURL")
    );

    // No signature at all.
    let mut unsigned = t.sns.signed(notification("n-3"));
    unsigned.as_object_mut().unwrap().remove("Signature");
    let (status, answer, _) = t.post("/webhook/aws", &unsigned).await;
    assert_eq!(status, 403, "{answer}");
    assert!(answer["message"].as_str().unwrap().contains("no Signature"));

    assert!(t.patched().is_empty(), "{:?}", t.patched());
}

#[tokio::test]
async fn a_subscription_is_confirmed_at_its_subscribe_url() {
    let t = start(|_| {}).await;
    let message = t.sns.signed(confirmation());
    let (status, reply, _) = t.post("/webhook", &message).await;
    assert_eq!(status, 200, "{reply}");
    assert_eq!(
        reply,
        json!({"subscriptionConfirmation": "confirmed", "topicArn": TOPIC,
               "subscriptionArn": "arn:aws:sns:eu-west-1:123456789012:secret-changes:sub-1"})
    );
    let confirmations = t.sns.confirmations();
    assert_eq!(confirmations.len(), 1, "{:?}", t.sns.requests());
    assert!(confirmations[0].contains("Token=t-1"), "{confirmations:?}");
    assert!(t.patched().is_empty());

    // An unsubscribe is acknowledged; nothing is fetched but the (cached) certificate.
    let mut unsubscribe = confirmation();
    unsubscribe["Type"] = json!("UnsubscribeConfirmation");
    let (status, reply, _) = t.post("/webhook/aws", &t.sns.signed(unsubscribe)).await;
    assert_eq!(status, 200, "{reply}");
    assert!(reply["unsubscribeConfirmation"].is_string(), "{reply}");
    assert_eq!(t.sns.confirmations().len(), 1);
}

#[tokio::test]
async fn topics_outside_the_allow_list_are_refused() {
    let t =
        start(|sns| sns.topic_arns = vec!["arn:aws:sns:eu-west-1:123456789012:other".into()]).await;
    for message in [confirmation(), notification("n-1")] {
        let (status, answer, _) = t.post("/webhook/aws", &t.sns.signed(message)).await;
        assert_eq!(status, 403, "{answer}");
        assert_eq!(answer["error"], "topic_not_allowed");
        assert!(answer["message"].as_str().unwrap().contains(TOPIC));
    }
    assert!(t.sns.confirmations().is_empty());
    assert!(t.patched().is_empty());

    let allowed = start(|sns| sns.topic_arns = vec![TOPIC.into()]).await;
    let (status, _, _) = allowed
        .post("/webhook/aws", &allowed.sns.signed(notification("n-1")))
        .await;
    assert_eq!(status, 200);
    assert_eq!(allowed.patched().len(), 1);
}

#[tokio::test]
async fn an_unreachable_certificate_or_subscribe_url_is_retried_later() {
    // A port nothing listens on, trusted as the endpoint.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let t = start(|sns| {
        sns.endpoint = Some(format!("http://127.0.0.1:{closed}").parse().unwrap());
    })
    .await;
    let mut message = t.sns.signed(notification("n-1"));
    message["SigningCertURL"] = json!(format!("http://127.0.0.1:{closed}/cert.pem"));
    let (status, answer, headers) = t.post("/webhook/aws", &message).await;
    assert_eq!(status, 502, "{answer}");
    assert_eq!(answer["error"], "certificate_unavailable");
    assert!(headers.contains_key("retry-after"));
    assert!(t.patched().is_empty());

    // A SubscribeURL that fails: 5xx too, so that SNS sends the confirmation again.
    let failing = start(|sns| sns.verify_signatures = false).await;
    let mut message = confirmation();
    message["SubscribeURL"] = json!(format!("{}/not-a-subscribe-url", failing.sns.url));
    let (status, answer, headers) = failing.post("/webhook/aws", &message).await;
    assert_eq!(status, 502, "{answer}");
    assert_eq!(answer["error"], "confirmation_failed");
    assert!(headers.contains_key("retry-after"));
}

#[tokio::test]
async fn confirming_and_verifying_can_be_turned_off() {
    let t = start(|sns| {
        sns.confirm_subscriptions = false;
        sns.verify_signatures = false;
    })
    .await;
    let (status, reply, _) = t.post("/webhook/aws", &confirmation()).await;
    assert_eq!(status, 200, "{reply}");
    assert!(
        reply["subscriptionConfirmation"]
            .as_str()
            .unwrap()
            .contains("logged"),
        "{reply}"
    );
    // Unverified, the committed fixture's placeholder signature is not looked at.
    let (status, report, _) = t
        .post("/webhook/aws", &event_fixture("aws-sns-notification.json"))
        .await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(t.patched().len(), 1);
    assert!(t.sns.requests().is_empty(), "{:?}", t.sns.requests());
}

#[tokio::test]
async fn old_or_future_messages_are_refused_as_replays() {
    let t = start(|_| {}).await;
    let now = chrono::Utc::now();
    let minutes = chrono::TimeDelta::minutes;
    for (sent, expected) in [
        (now - minutes(120), "old"),
        (now - minutes(61), "old"),
        (now + minutes(10), "in the future"),
    ] {
        let message = t.sns.signed_at(notification("n-1"), sent);
        let (status, answer, _) = t.post("/webhook/aws", &message).await;
        assert_eq!(status, 403, "{answer}");
        assert_eq!(answer["error"], "stale_message");
        let text = answer["message"].as_str().unwrap();
        assert!(
            text.contains(expected) && text.contains("Timestamp"),
            "{text}"
        );
    }
    assert!(t.patched().is_empty());
    assert_eq!(
        t.certificate_fetches(),
        0,
        "nothing fetched for a stale message"
    );

    // Within the hour (SNS retrying a delivery) it is accepted.
    let late = t.sns.signed_at(notification("n-2"), now - minutes(40));
    let (status, report, _) = t.post("/webhook/aws", &late).await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(t.patched().len(), 1);

    // The window is AWS_SNS_MAX_AGE.
    let short = start(|sns| sns.max_age = std::time::Duration::from_secs(600)).await;
    let message = short.sns.signed_at(notification("n-3"), now - minutes(15));
    let (status, answer, _) = short.post("/webhook/aws", &message).await;
    assert_eq!(status, 403, "{answer}");
    assert!(
        answer["message"].as_str().unwrap().contains("10m"),
        "{answer}"
    );
}

#[tokio::test]
async fn a_certificate_that_will_never_come_is_refused_and_failures_are_not_refetched() {
    let t = start(|_| {}).await;
    let at = |path: &str, id: &str| {
        let mut message = t.sns.signed(notification(id));
        message["SigningCertURL"] = json!(format!("{}{path}", t.sns.url));
        message
    };
    let fetches = |path: &str| {
        t.sns
            .requests()
            .iter()
            .filter(|r| r.as_str() == path)
            .count()
    };
    for (path, what) in [
        ("/SimpleNotificationService-gone.pem", "404"),
        (NOT_A_CERTIFICATE_PATH, "not a certificate"),
    ] {
        for id in ["n-1", "n-2", "n-3"] {
            let (status, answer, headers) = t.post("/webhook/aws", &at(path, id)).await;
            assert_eq!(status, 403, "{what}: {answer}");
            assert_eq!(answer["error"], "certificate_unusable", "{what}");
            assert!(!headers.contains_key("retry-after"), "{what}");
        }
        assert_eq!(fetches(path), 1, "{what}: failures are remembered");
    }

    // A certificate host that is busy: worth retrying, but not on every delivery.
    for id in ["n-4", "n-5"] {
        let (status, answer, headers) =
            t.post("/webhook/aws", &at(BUSY_CERTIFICATE_PATH, id)).await;
        assert_eq!(status, 502, "{answer}");
        assert_eq!(answer["error"], "certificate_unavailable");
        assert!(headers.contains_key("retry-after"));
    }
    assert_eq!(fetches(BUSY_CERTIFICATE_PATH), 1);
    assert!(t.patched().is_empty());
}

#[tokio::test]
async fn with_sns_only_a_bare_aws_event_is_refused() {
    let sns = start(|settings| settings.only = true).await;
    let bare = event_fixture("aws-eventbridge-cloudtrail.json");
    for path in ["/webhook/aws", "/webhook"] {
        let request = sns.app.http.post(format!("{}{path}", sns.app.url));
        let (status, body) = send(
            request
                .basic_auth(USER, Some(PASSWORD))
                .body(bare.to_string()),
        )
        .await;
        assert_eq!(status, 403, "{path}: {body}");
        assert_eq!(body["error"], "sns_required", "{body}");
    }
    assert!(sns.patched().is_empty());
    // Other senders' bodies on /webhook are not concerned.
    let (status, report) = sns.app.webhook(&akeyless_events(&["/nothing"])).await;
    assert_eq!(status, 200, "{report}");
    let (status, body, _) = sns
        .post("/webhook/aws", &sns.sns.signed(notification("only-1")))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(sns.patched().len(), 1);
}
