//! Schemes that sign the body with a shared secret (HMAC-SHA256), several secrets valid at
//! once:
//!
//! - `hmac-doppler`: `X-Doppler-Signature: sha256=<hex HMAC of the body>`. Doppler signs no
//!   time, so a captured request can be replayed; all it can do is ask for a refresh again.
//! - `hmac-infisical`: `x-infisical-signature: t=<unix ms>;<hex HMAC of the body>`. Infisical
//!   signs the JSON body, which carries the same time as its `timestamp` field, not the
//!   header; so the header's time is trusted only when it equals the signed one.
//! - `hmac`: `X-Signature: sha256=<hex HMAC of "<timestamp>.<body>">` with
//!   `X-Signature-Timestamp: <unix seconds>`, for any sender that can compute it.
//!
//! Signed times must be within the replay window of now, either way.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use actix_web::HttpRequest;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use super::{Rejection, from_hex, single_header};
use crate::config::Secret;

pub const DOPPLER_HEADER: &str = "x-doppler-signature";
pub const INFISICAL_HEADER: &str = "x-infisical-signature";
pub const SIGNATURE_HEADER: &str = "x-signature";
pub const TIMESTAMP_HEADER: &str = "x-signature-timestamp";

/// The secrets, as keys; a signature passes when any of them made it.
struct Keys(Vec<Vec<u8>>);

impl Keys {
    fn new(secrets: &[Secret]) -> Self {
        Keys(
            secrets
                .iter()
                .map(|s| s.expose().as_bytes().to_vec())
                .collect(),
        )
    }

    /// Checks `tag` against the HMAC of `parts`, in constant time (`verify_slice`).
    fn verify(&self, parts: &[&[u8]], tag: &[u8]) -> Result<(), Rejection> {
        let mut matched = false;
        for key in &self.0 {
            let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(key) else {
                continue;
            };
            for part in parts {
                mac.update(part);
            }
            matched |= mac.verify_slice(tag).is_ok();
        }
        if matched {
            Ok(())
        } else {
            Err(Rejection::WrongKey)
        }
    }
}

/// The hex after `sha256=`.
fn sha256_tag(value: &str) -> Result<Vec<u8>, Rejection> {
    let hex = value
        .trim()
        .strip_prefix("sha256=")
        .ok_or(Rejection::Malformed)?;
    from_hex(hex)
        .filter(|tag| tag.len() == 32)
        .ok_or(Rejection::Malformed)
}

fn within(signed: Duration, now: Duration, window: Duration) -> Result<(), Rejection> {
    if signed.abs_diff(now) <= window {
        Ok(())
    } else {
        Err(Rejection::Replayed)
    }
}

fn now() -> Duration {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
}

pub struct DopplerSignature {
    keys: Keys,
}

impl DopplerSignature {
    pub fn new(secrets: &[Secret]) -> Self {
        DopplerSignature {
            keys: Keys::new(secrets),
        }
    }

    pub fn verify(&self, request: &HttpRequest, body: &[u8]) -> Result<(), Rejection> {
        let header = single_header(request, DOPPLER_HEADER)?.ok_or(Rejection::Missing)?;
        let tag = sha256_tag(header)?;
        self.keys.verify(&[body], &tag)
    }
}

pub struct InfisicalSignature {
    keys: Keys,
    window: Duration,
}

impl InfisicalSignature {
    pub fn new(secrets: &[Secret], window: Duration) -> Self {
        InfisicalSignature {
            keys: Keys::new(secrets),
            window,
        }
    }

    pub fn verify(&self, request: &HttpRequest, body: &[u8]) -> Result<(), Rejection> {
        self.verify_at(request, body, now())
    }

    fn verify_at(
        &self,
        request: &HttpRequest,
        body: &[u8],
        now: Duration,
    ) -> Result<(), Rejection> {
        let header = single_header(request, INFISICAL_HEADER)?.ok_or(Rejection::Missing)?;
        let (time, hex) = header
            .trim()
            .strip_prefix("t=")
            .and_then(|rest| rest.split_once(';'))
            .ok_or(Rejection::Malformed)?;
        let millis: u64 = time.parse().map_err(|_| Rejection::Malformed)?;
        let tag = from_hex(hex)
            .filter(|tag| tag.len() == 32)
            .ok_or(Rejection::Malformed)?;
        self.keys.verify(&[body], &tag)?;
        // The body is authentic: its own timestamp is the signed time.
        let signed = serde_json::from_slice::<serde_json::Value>(body)
            .ok()
            .and_then(|v| v.get("timestamp")?.as_u64());
        if signed != Some(millis) {
            return Err(Rejection::Malformed);
        }
        within(Duration::from_millis(millis), now, self.window)
    }
}

pub struct TimestampSignature {
    keys: Keys,
    window: Duration,
}

impl TimestampSignature {
    pub fn new(secrets: &[Secret], window: Duration) -> Self {
        TimestampSignature {
            keys: Keys::new(secrets),
            window,
        }
    }

    pub fn verify(&self, request: &HttpRequest, body: &[u8]) -> Result<(), Rejection> {
        self.verify_at(request, body, now())
    }

    fn verify_at(
        &self,
        request: &HttpRequest,
        body: &[u8],
        now: Duration,
    ) -> Result<(), Rejection> {
        let header = single_header(request, SIGNATURE_HEADER)?.ok_or(Rejection::Missing)?;
        let tag = sha256_tag(header)?;
        let timestamp = single_header(request, TIMESTAMP_HEADER)?
            .map(str::trim)
            .ok_or(Rejection::Malformed)?;
        let seconds: u64 = timestamp.parse().map_err(|_| Rejection::Malformed)?;
        self.keys
            .verify(&[timestamp.as_bytes(), b".", body], &tag)?;
        within(Duration::from_secs(seconds), now, self.window)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test::TestRequest;

    const WINDOW: Duration = Duration::from_secs(60);
    const NOW: Duration = Duration::from_secs(1_800_000_000);

    fn secrets() -> Vec<Secret> {
        vec![Secret::new("old-secret"), Secret::new("new-secret")]
    }

    fn sign(secret: &str, message: &[u8]) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
        mac.update(message);
        mac.finalize()
            .into_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    fn request(headers: &[(&str, String)]) -> HttpRequest {
        let mut request = TestRequest::post();
        for (name, value) in headers {
            request = request.append_header((*name, value.as_str()));
        }
        request.to_http_request()
    }

    #[test]
    fn doppler_signs_the_body() {
        let doppler = DopplerSignature::new(&secrets());
        let body = br#"{"type":"secrets.update"}"#;
        for secret in ["old-secret", "new-secret"] {
            let header = format!("sha256={}", sign(secret, body));
            assert_eq!(
                doppler.verify(&request(&[(DOPPLER_HEADER, header)]), body),
                Ok(())
            );
        }
        let wrong = format!("sha256={}", sign("other", body));
        let tampered = format!("sha256={}", sign("new-secret", b"{}"));
        let cases = [
            (vec![(DOPPLER_HEADER, wrong)], Rejection::WrongKey),
            (vec![(DOPPLER_HEADER, tampered)], Rejection::WrongKey),
            (vec![], Rejection::Missing),
            (
                vec![(DOPPLER_HEADER, sign("new-secret", body))],
                Rejection::Malformed,
            ),
            (
                vec![(DOPPLER_HEADER, "sha256=abc".to_owned())],
                Rejection::Malformed,
            ),
            (
                vec![(DOPPLER_HEADER, "sha256=".to_owned() + &"0".repeat(62))],
                Rejection::Malformed,
            ),
        ];
        for (headers, expected) in cases {
            assert_eq!(
                doppler.verify(&request(&headers), body),
                Err(expected),
                "{headers:?}"
            );
        }
    }

    fn infisical_body(millis: u128) -> Vec<u8> {
        format!(r#"{{"event":"secrets.modified","project":{{"workspaceId":"w","environment":"prod","secretPath":"/"}},"timestamp":{millis}}}"#).into_bytes()
    }

    #[test]
    fn infisical_signs_the_body_with_its_time() {
        let infisical = InfisicalSignature::new(&secrets(), WINDOW);
        let sent = NOW - Duration::from_secs(5);
        let body = infisical_body(sent.as_millis());
        let header = |secret: &str, millis: u128, body: &[u8]| {
            (
                INFISICAL_HEADER,
                format!("t={millis};{}", sign(secret, body)),
            )
        };
        let valid = request(&[header("new-secret", sent.as_millis(), &body)]);
        assert_eq!(infisical.verify_at(&valid, &body, NOW), Ok(()));
        let valid = request(&[header("old-secret", sent.as_millis(), &body)]);
        assert_eq!(infisical.verify_at(&valid, &body, NOW), Ok(()));

        let wrong = request(&[header("other", sent.as_millis(), &body)]);
        assert_eq!(
            infisical.verify_at(&wrong, &body, NOW),
            Err(Rejection::WrongKey)
        );
        // The same request, two minutes later.
        let later = NOW + Duration::from_secs(120);
        assert_eq!(
            infisical.verify_at(&valid, &body, later),
            Err(Rejection::Replayed)
        );
        // An old signed body under a fresh header time: the header's time is not signed.
        let old = NOW - Duration::from_secs(3600);
        let old_body = infisical_body(old.as_millis());
        let refreshed = request(&[header("new-secret", NOW.as_millis(), &old_body)]);
        assert_eq!(
            infisical.verify_at(&refreshed, &old_body, NOW),
            Err(Rejection::Malformed)
        );
        let replayed = request(&[header("new-secret", old.as_millis(), &old_body)]);
        assert_eq!(
            infisical.verify_at(&replayed, &old_body, NOW),
            Err(Rejection::Replayed)
        );
        for malformed in [
            format!("{};{}", sent.as_millis(), sign("new-secret", &body)),
            format!("t=soon;{}", sign("new-secret", &body)),
            format!("t={}", sent.as_millis()),
            format!("t={};xyz", sent.as_millis()),
        ] {
            let request = request(&[(INFISICAL_HEADER, malformed.clone())]);
            assert_eq!(
                infisical.verify_at(&request, &body, NOW),
                Err(Rejection::Malformed),
                "{malformed}"
            );
        }
        assert_eq!(
            infisical.verify_at(&request(&[]), &body, NOW),
            Err(Rejection::Missing)
        );
    }

    #[test]
    fn timestamped_signatures_expire_with_the_window() {
        let hmac = TimestampSignature::new(&secrets(), WINDOW);
        let body = br#"{"keys":["/prod/db"]}"#;
        let signed = |secret: &str, at: Duration| {
            let ts = at.as_secs().to_string();
            let message = [ts.as_bytes(), b".", body].concat();
            vec![
                (
                    SIGNATURE_HEADER,
                    format!("sha256={}", sign(secret, &message)),
                ),
                (TIMESTAMP_HEADER, ts),
            ]
        };
        let now = NOW;
        for secret in ["old-secret", "new-secret"] {
            let valid = request(&signed(secret, now - Duration::from_secs(59)));
            assert_eq!(hmac.verify_at(&valid, body, now), Ok(()));
        }
        let cases = [
            (
                signed("new-secret", now - Duration::from_secs(61)),
                Rejection::Replayed,
            ),
            (
                signed("new-secret", now + Duration::from_secs(61)),
                Rejection::Replayed,
            ),
            (signed("other", now), Rejection::WrongKey),
            (vec![], Rejection::Missing),
            (
                signed("new-secret", now)[..1].to_vec(),
                Rejection::Malformed,
            ),
        ];
        for (headers, expected) in cases {
            assert_eq!(
                hmac.verify_at(&request(&headers), body, now),
                Err(expected),
                "{headers:?}"
            );
        }
        // A timestamp changed after signing does not match the signature.
        let mut moved = signed("new-secret", now - Duration::from_secs(3600));
        moved[1].1 = now.as_secs().to_string();
        assert_eq!(
            hmac.verify_at(&request(&moved), body, now),
            Err(Rejection::WrongKey)
        );
        let mut garbled = signed("new-secret", now);
        garbled[1].1 = "yesterday".into();
        assert_eq!(
            hmac.verify_at(&request(&garbled), body, now),
            Err(Rejection::Malformed)
        );
    }
}
