//! SNS message signatures: SignatureVersion 1 is SHA1withRSA, 2 is SHA256withRSA, over the
//! message's canonical string, checked with the public key of the certificate at
//! `SigningCertURL`.

use base64::Engine;
use ring::signature::{
    RSA_PKCS1_2048_8192_SHA1_FOR_LEGACY_USE_ONLY, RSA_PKCS1_2048_8192_SHA256, UnparsedPublicKey,
    VerificationAlgorithm,
};
use x509_parser::public_key::PublicKey;

use super::SnsError;
use super::message::SnsMessage;

/// The RSA public key of an SNS signing certificate, and when the certificate is valid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SigningKey {
    /// PKCS#1 RSAPublicKey, DER, as ring reads it.
    public_key: Vec<u8>,
    not_before: i64,
    not_after: i64,
}

impl SigningKey {
    /// Reads a PEM certificate; its key must be RSA.
    pub fn from_pem(pem: &[u8]) -> Result<SigningKey, String> {
        let (_, pem) = x509_parser::pem::parse_x509_pem(pem)
            .map_err(|e| format!("not a PEM certificate: {e}"))?;
        let certificate = pem
            .parse_x509()
            .map_err(|e| format!("not an X.509 certificate: {e}"))?;
        let key = certificate.public_key();
        match key.parsed() {
            Ok(PublicKey::RSA(_)) => {}
            _ => return Err("the certificate's key is not RSA".into()),
        }
        let validity = certificate.validity();
        Ok(SigningKey {
            public_key: key.subject_public_key.data.to_vec(),
            not_before: validity.not_before.timestamp(),
            not_after: validity.not_after.timestamp(),
        })
    }

    /// Checks a signature at `now` (seconds since the Unix epoch).
    pub fn verify(&self, signed: &Signed, now: i64) -> Result<(), SnsError> {
        if now < self.not_before || now > self.not_after {
            return Err(SnsError::Signature(
                "the signing certificate is not valid at this time".into(),
            ));
        }
        UnparsedPublicKey::new(signed.algorithm, &self.public_key)
            .verify(signed.canonical.as_bytes(), &signed.signature)
            .map_err(|_| {
                SnsError::Signature(
                    "Signature does not match the message and the signing certificate".into(),
                )
            })
    }
}

/// What a message's signature claims: the string signed, how, and the signature. Read before
/// any certificate is fetched, so that a message without one costs nothing.
pub struct Signed {
    canonical: String,
    algorithm: &'static dyn VerificationAlgorithm,
    signature: Vec<u8>,
}

impl Signed {
    pub fn read(message: &SnsMessage) -> Result<Signed, SnsError> {
        let algorithm: &'static dyn VerificationAlgorithm = match message.field("SignatureVersion")
        {
            Some("1") => &RSA_PKCS1_2048_8192_SHA1_FOR_LEGACY_USE_ONLY,
            Some("2") => &RSA_PKCS1_2048_8192_SHA256,
            Some(other) => {
                return Err(SnsError::Signature(format!(
                    "SignatureVersion {other:?} is not supported (1 or 2)"
                )));
            }
            None => return Err(SnsError::Signature("no SignatureVersion".into())),
        };
        let signature = message
            .field("Signature")
            .filter(|s| !s.is_empty())
            .ok_or_else(|| SnsError::Signature("no Signature".into()))?;
        let signature = base64::engine::general_purpose::STANDARD
            .decode(signature)
            .map_err(|e| SnsError::Signature(format!("Signature is not base64: {e}")))?;
        Ok(Signed {
            canonical: message.canonical()?,
            algorithm,
            signature,
        })
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use ring::rand::SystemRandom;
    use ring::signature::{RSA_PKCS1_SHA256, RsaKeyPair};
    use rustls::pki_types::PrivateKeyDer;
    use rustls::pki_types::pem::PemObject;
    use serde_json::{Value, json};

    pub(crate) fn sns_fixture(name: &str) -> Vec<u8> {
        let path = format!("{}/tests/fixtures/sns/{name}", env!("CARGO_MANIFEST_DIR"));
        std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    fn key(name: &str) -> SigningKey {
        SigningKey::from_pem(&sns_fixture(name)).expect("a usable certificate")
    }

    fn read(value: &Value) -> SnsMessage {
        SnsMessage::read(Some(value), None).unwrap().unwrap()
    }

    /// `message` signed with the test key, as SNS signs SignatureVersion 2.
    pub(crate) fn signed(mut message: Value) -> Value {
        let der = PrivateKeyDer::from_pem_slice(&sns_fixture("signing-key.pem")).unwrap();
        let pair = RsaKeyPair::from_pkcs8(der.secret_der()).unwrap();
        message["SignatureVersion"] = json!("2");
        let canonical = read(&message).canonical().unwrap();
        let mut signature = vec![0; pair.public().modulus_len()];
        pair.sign(
            &RSA_PKCS1_SHA256,
            &SystemRandom::new(),
            canonical.as_bytes(),
            &mut signature,
        )
        .unwrap();
        message["Signature"] = json!(base64::engine::general_purpose::STANDARD.encode(signature));
        message
    }

    const NOW: i64 = 2_000_000_000;

    fn check(key: &SigningKey, message: &SnsMessage, now: i64) -> Result<(), SnsError> {
        key.verify(&Signed::read(message)?, now)
    }

    fn fixture_json(name: &str) -> Value {
        serde_json::from_slice(&sns_fixture(name)).unwrap()
    }

    #[test]
    fn both_signature_versions_verify() {
        for file in ["notification-v1.json", "notification-v2.json"] {
            let message = read(&fixture_json(file));
            assert_eq!(
                check(&key("signing-cert.pem"), &message, NOW),
                Ok(()),
                "{file}"
            );
        }
        let confirmation = signed(json!({"Type": "SubscriptionConfirmation", "MessageId": "m",
            "Token": "t", "TopicArn": "arn:t", "Message": "m", "Timestamp": "2026-11-20T10:00:00.000Z",
            "SubscribeURL": "https://sns.eu-west-1.amazonaws.com/?Action=ConfirmSubscription"}));
        assert_eq!(
            check(&key("signing-cert.pem"), &read(&confirmation), NOW),
            Ok(())
        );
    }

    #[test]
    fn tampered_messages_do_not_verify() {
        let signing = key("signing-cert.pem");
        for (field, value) in [
            ("Message", json!("{\"source\": \"aws.secretsmanager\"}")),
            ("Subject", json!("Another subject")),
            (
                "TopicArn",
                json!("arn:aws:sns:eu-west-1:123456789012:other"),
            ),
            ("Timestamp", json!("2026-11-20T10:15:02.000Z")),
            // Claiming the other version changes the digest.
            ("SignatureVersion", json!("2")),
        ] {
            let mut message = fixture_json("notification-v1.json");
            message[field] = value;
            let err = check(&signing, &read(&message), NOW).unwrap_err();
            assert!(err.to_string().contains("does not match"), "{field}: {err}");
        }
        // A Subject added to a message signed without one is noticed too.
        let mut added = fixture_json("notification-v2.json");
        added["Subject"] = json!("Added");
        assert!(check(&signing, &read(&added), NOW).is_err());
    }

    #[test]
    fn another_certificate_does_not_verify() {
        let message = read(&fixture_json("notification-v2.json"));
        let err = check(&key("other-cert.pem"), &message, NOW).unwrap_err();
        assert!(err.to_string().contains("does not match"), "{err}");
    }

    #[test]
    fn missing_or_unreadable_signatures_are_named() {
        let cases = [
            ("Signature", Value::Null, "no Signature"),
            ("Signature", json!("%%%"), "not base64"),
            ("SignatureVersion", Value::Null, "no SignatureVersion"),
            ("SignatureVersion", json!("3"), "not supported"),
        ];
        for (field, value, expected) in cases {
            let mut message = fixture_json("notification-v2.json");
            match value {
                Value::Null => {
                    message.as_object_mut().unwrap().remove(field);
                }
                other => message[field] = other,
            }
            let err = check(&key("signing-cert.pem"), &read(&message), NOW).unwrap_err();
            assert!(err.to_string().contains(expected), "{field}: {err}");
        }
    }

    #[test]
    fn certificates_are_checked_for_validity_and_shape() {
        let message = read(&fixture_json("notification-v2.json"));
        let signing = key("signing-cert.pem");
        assert!(check(&signing, &message, 0).is_err(), "before notBefore");
        assert!(
            check(&signing, &message, i64::MAX).is_err(),
            "after notAfter"
        );
        assert!(SigningKey::from_pem(b"not a certificate").is_err());
        assert!(SigningKey::from_pem(&sns_fixture("signing-key.pem")).is_err());
    }
}
