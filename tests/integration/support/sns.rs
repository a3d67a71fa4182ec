//! A local stand-in for SNS: it serves the test signing certificate and answers SubscribeURLs,
//! recording every request, so tests can post messages signed as SNS signs them (with the
//! test-only key in tests/fixtures/sns) and see what the service fetched.

use std::sync::{Arc, Mutex};

use actix_web::dev::ServerHandle;
use actix_web::{HttpRequest, HttpResponse, web};

use super::fake_api::serve_on_loopback;
use base64::Engine;
use eso_refresher::senders::sns::SnsSettings;
use ring::rand::SystemRandom;
use ring::signature::{RSA_PKCS1_SHA256, RsaKeyPair};
use rustls::pki_types::PrivateKeyDer;
use rustls::pki_types::pem::PemObject;
use serde_json::{Value, json};

pub const CERTIFICATE_PATH: &str = "/SimpleNotificationService-test.pem";
/// Answered 200 with a body that is no certificate.
pub const NOT_A_CERTIFICATE_PATH: &str = "/SimpleNotificationService-junk.pem";
/// Answered 503.
pub const BUSY_CERTIFICATE_PATH: &str = "/SimpleNotificationService-busy.pem";

fn sns_fixture(name: &str) -> Vec<u8> {
    let path = format!("{}/tests/fixtures/sns/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

#[derive(Default)]
struct Recorded {
    /// Path and query of every request, in order.
    requests: Vec<String>,
}

pub struct FakeSns {
    pub url: String,
    recorded: Arc<Mutex<Recorded>>,
    handle: ServerHandle,
}

impl FakeSns {
    pub async fn start() -> FakeSns {
        let recorded: Arc<Mutex<Recorded>> = Arc::default();
        let data = web::Data::from(recorded.clone());
        let (url, handle) = serve_on_loopback(move |app| {
            app.app_data(data.clone()).default_service(web::to(answer));
        });
        FakeSns {
            url,
            recorded,
            handle,
        }
    }

    /// SNS settings that trust this server as the SNS endpoint.
    pub fn settings(&self) -> SnsSettings {
        SnsSettings {
            endpoint: Some(self.url.parse().expect("URL")),
            ..SnsSettings::default()
        }
    }

    /// Path and query of every request this server received.
    pub fn requests(&self) -> Vec<String> {
        self.recorded
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .requests
            .clone()
    }

    pub fn confirmations(&self) -> Vec<String> {
        self.requests()
            .into_iter()
            .filter(|r| r.contains("Action=ConfirmSubscription"))
            .collect()
    }

    pub fn certificate_url(&self) -> String {
        format!("{}{CERTIFICATE_PATH}", self.url)
    }

    /// An SNS message (a fixture's, say) as this SNS would send it now: its certificate here,
    /// signed with the test key (SignatureVersion 2).
    pub fn signed(&self, message: Value) -> Value {
        self.signed_at(message, chrono::Utc::now())
    }

    /// Likewise, as sent at `sent` (its `Timestamp`).
    pub fn signed_at(&self, mut message: Value, sent: chrono::DateTime<chrono::Utc>) -> Value {
        message["Timestamp"] = json!(sent.to_rfc3339_opts(chrono::SecondsFormat::Millis, true));
        message["SigningCertURL"] = json!(self.certificate_url());
        if message.get("SubscribeURL").is_some() {
            let topic = message["TopicArn"].as_str().unwrap_or_default().to_owned();
            message["SubscribeURL"] = json!(format!(
                "{}/?Action=ConfirmSubscription&TopicArn={topic}&Token=t-1",
                self.url
            ));
        }
        sign(message)
    }
}

impl Drop for FakeSns {
    fn drop(&mut self) {
        let handle = self.handle.clone();
        tokio::spawn(async move { handle.stop(false).await });
    }
}

async fn answer(request: HttpRequest, recorded: web::Data<Mutex<Recorded>>) -> HttpResponse {
    let target = match request.query_string() {
        "" => request.path().to_owned(),
        query => format!("{}?{query}", request.path()),
    };
    recorded
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .requests
        .push(target);
    match request.path() {
        CERTIFICATE_PATH => {
            return HttpResponse::Ok()
                .content_type("application/x-pem-file")
                .body(sns_fixture("signing-cert.pem"));
        }
        NOT_A_CERTIFICATE_PATH => {
            return HttpResponse::Ok()
                .content_type("application/x-pem-file")
                .body("<html>maintenance</html>");
        }
        BUSY_CERTIFICATE_PATH => return HttpResponse::ServiceUnavailable().finish(),
        _ => {}
    }
    if request
        .query_string()
        .contains("Action=ConfirmSubscription")
    {
        return HttpResponse::Ok().content_type("text/xml").body(
            "<ConfirmSubscriptionResponse><ConfirmSubscriptionResult>\
             <SubscriptionArn>arn:aws:sns:eu-west-1:123456789012:secret-changes:sub-1</SubscriptionArn>\
             </ConfirmSubscriptionResult></ConfirmSubscriptionResponse>",
        );
    }
    HttpResponse::NotFound().finish()
}

/// The string SNS signs for `message`.
fn canonical(message: &Value) -> String {
    let fields: &[&str] = if message["Type"] == "Notification" {
        &[
            "Message",
            "MessageId",
            "Subject",
            "Timestamp",
            "TopicArn",
            "Type",
        ]
    } else {
        &[
            "Message",
            "MessageId",
            "SubscribeURL",
            "Timestamp",
            "Token",
            "TopicArn",
            "Type",
        ]
    };
    fields
        .iter()
        .filter_map(|f| Some(format!("{f}\n{}\n", message.get(*f)?.as_str()?)))
        .collect()
}

/// `message` signed with the test key, SignatureVersion 2 (SHA256withRSA).
pub fn sign(mut message: Value) -> Value {
    let der = PrivateKeyDer::from_pem_slice(&sns_fixture("signing-key.pem")).expect("key");
    let pair = RsaKeyPair::from_pkcs8(der.secret_der()).expect("RSA key");
    let mut signature = vec![0; pair.public().modulus_len()];
    pair.sign(
        &RSA_PKCS1_SHA256,
        &SystemRandom::new(),
        canonical(&message).as_bytes(),
        &mut signature,
    )
    .expect("signs");
    message["SignatureVersion"] = json!("2");
    message["Signature"] = json!(base64::engine::general_purpose::STANDARD.encode(signature));
    message
}

/// An SNS fixture from tests/fixtures/events.
pub fn event_fixture(name: &str) -> Value {
    let path = format!(
        "{}/tests/fixtures/events/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    serde_json::from_str(&std::fs::read_to_string(&path).expect("fixture")).expect("JSON")
}
