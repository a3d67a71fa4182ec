//! `client-cert`: the caller's TLS client certificate (Akeyless's `certificate` forwarder
//! authentication), issued by a CA of `TLS_CLIENT_CA_FILE` and, with `CLIENT_CERT_SUBJECTS`,
//! naming an allowed subject.
//!
//! The TLS listener asks every client for a certificate and requires none, so probes and
//! requests with other schemes still get in. At the handshake a client that shows a
//! certificate proves it holds its private key; whether the certificate is one to trust (its
//! chain to a configured CA, its validity dates) is decided per request, here, by rustls'
//! WebPKI client verifier, so that a request without a good certificate is refused with a 401
//! naming the reason, like any other scheme's, instead of a failed handshake.

use std::path::Path;
use std::sync::Arc;

use actix_web::HttpRequest;
use rustls::client::danger::HandshakeSignatureValid;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{CertificateError, DigitallySignedStruct, DistinguishedName, SignatureScheme};
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::{FromDer, X509Certificate};

use super::Rejection;
use crate::config::ClientCertSettings;

/// The certificate chain a client showed on its connection, end entity first.
#[derive(Debug, Clone)]
pub struct PeerCertificates(pub Vec<CertificateDer<'static>>);

/// Reads the CAs of `TLS_CLIENT_CA_FILE` into rustls' client verifier: the chain and the dates
/// of a client certificate are checked against them.
pub fn ca_verifier(ca_file: &Path) -> Result<Arc<dyn ClientCertVerifier>, String> {
    let failed = |e: &dyn std::fmt::Display| format!("{}: {e}", ca_file.display());
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca_file).map_err(|e| failed(&e))? {
        roots
            .add(cert.map_err(|e| failed(&e))?)
            .map_err(|e| failed(&e))?;
    }
    if roots.is_empty() {
        return Err(failed(&"no CA certificate in the file"));
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
        .allow_unauthenticated()
        .build()
        .map_err(|e| failed(&e))
}

/// The listener's verifier: asks for a certificate, requires none, and at the handshake checks
/// only the client's proof that it holds the certificate's key. [`ClientCertificates`] checks
/// the certificate itself on each request.
#[derive(Debug)]
pub struct AskForClientCert(pub Arc<dyn ClientCertVerifier>);

impl ClientCertVerifier for AskForClientCert {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        false
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.0.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

/// The `client-cert` scheme.
pub struct ClientCertificates {
    verifier: Option<Arc<dyn ClientCertVerifier>>,
    subjects: Vec<String>,
}

impl ClientCertificates {
    /// `verifier`: the CAs' verifier, the one the listener was built with.
    pub fn new(
        settings: Option<&ClientCertSettings>,
        verifier: Option<Arc<dyn ClientCertVerifier>>,
    ) -> Self {
        ClientCertificates {
            verifier,
            subjects: settings.map(|s| s.subjects.clone()).unwrap_or_default(),
        }
    }

    /// The certificate's first common name (or DNS name), when it is accepted.
    pub fn verify(&self, request: &HttpRequest) -> Result<Option<String>, Rejection> {
        let certificates = request.conn_data::<PeerCertificates>();
        let Some((end_entity, intermediates)) = certificates.and_then(|c| c.0.split_first()) else {
            return Err(Rejection::Missing);
        };
        let verifier = self.verifier.as_ref().ok_or(Rejection::KeysUnavailable)?;
        verifier
            .verify_client_cert(end_entity, intermediates, UnixTime::now())
            .map_err(rejection)?;
        let names = subject_names(end_entity);
        if !self.subjects.is_empty() {
            let names = names.as_ref().ok_or(Rejection::Malformed)?;
            if !names.iter().any(|name| self.subjects.contains(name)) {
                return Err(Rejection::WrongSubject);
            }
        }
        Ok(names.and_then(|names| names.into_iter().next()))
    }
}

fn rejection(error: rustls::Error) -> Rejection {
    match error {
        rustls::Error::InvalidCertificate(
            CertificateError::Expired | CertificateError::ExpiredContext { .. },
        ) => Rejection::Expired,
        rustls::Error::InvalidCertificate(
            CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. },
        ) => Rejection::NotYetValid,
        rustls::Error::InvalidCertificate(CertificateError::BadEncoding) => Rejection::Malformed,
        _ => Rejection::Untrusted,
    }
}

/// The subject's common names and the DNS names among the subject alternative names.
fn subject_names(certificate: &CertificateDer<'_>) -> Option<Vec<String>> {
    let (_, parsed) = X509Certificate::from_der(certificate.as_ref()).ok()?;
    let mut names: Vec<String> = parsed
        .subject()
        .iter_common_name()
        .filter_map(|cn| cn.as_str().ok())
        .map(str::to_owned)
        .collect();
    if let Ok(Some(alternatives)) = parsed.subject_alternative_name() {
        for name in &alternatives.value.general_names {
            if let GeneralName::DNSName(dns) = name {
                names.push((*dns).to_owned());
            }
        }
    }
    Some(names)
}
