//! `client-cert`: TLS client certificates, generated here for each test, checked against the
//! CAs of `TLS_CLIENT_CA_FILE` and the subjects of `CLIENT_CERT_SUBJECTS`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use eso_refresher::config::{ClientCertSettings, Scheme, TlsFiles};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::*;

/// A CA that signs client certificates.
struct Authority {
    issuer: Issuer<'static, KeyPair>,
    pem: String,
}

impl Authority {
    fn new(name: &str) -> Authority {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let pem = params.self_signed(&key).unwrap().pem();
        Authority {
            issuer: Issuer::new(params, key),
            pem,
        }
    }

    /// A client certificate with common name `cn` and DNS name `dns`, valid from `from` to `to`
    /// (years), and its key.
    fn client(&self, cn: &str, dns: &str, years: (i32, i32)) -> Client {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(vec![dns.to_owned()]).unwrap();
        params.distinguished_name.push(DnType::CommonName, cn);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        params.not_before = rcgen::date_time_ymd(years.0, 1, 1);
        params.not_after = rcgen::date_time_ymd(years.1, 1, 1);
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        Client {
            chain: vec![cert.der().clone()],
            key: PrivatePkcs8KeyDer::from(key.serialize_der()).into(),
        }
    }
}

struct Client {
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
}

const NOW: (i32, i32) = (2020, 2090);

/// The service over TLS, with `route_schemes` on `/webhook/akeyless`.
async fn serve(
    dir: &Path,
    ca: &Authority,
    subjects: &[&str],
    route_schemes: &[Scheme],
) -> (TestApp, CertificateDer<'static>) {
    let server_key = KeyPair::generate().unwrap();
    let server = CertificateParams::new(vec!["localhost".into()])
        .unwrap()
        .self_signed(&server_key)
        .unwrap();
    let write = |name: &str, text: &str| -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    };
    let mut config = config();
    config.tls = Some(TlsFiles {
        cert: write("tls.crt", &server.pem()),
        key: write("tls.key", &server_key.serialize_pem()),
    });
    config.auth.tls = true;
    config.auth.client_cert = Some(ClientCertSettings {
        ca_file: write("clients-ca.pem", &ca.pem),
        subjects: subjects.iter().map(|s| (*s).to_owned()).collect(),
    });
    config
        .auth
        .routes
        .insert("akeyless".into(), route_schemes.to_vec());
    let source = eso_refresher::app::Source::Manifests(
        concat!(env!("CARGO_MANIFEST_DIR"), "/examples/manifests").into(),
    );
    (spawn_app(config, source).await, server.der().clone())
}

/// One HTTP/1.1 request over TLS, with `client`'s certificate if any: the status line and body.
async fn request(
    app: &TestApp,
    server: &CertificateDer<'static>,
    client: Option<&Client>,
    head: &str,
) -> String {
    let port: u16 = app.url.rsplit(':').next().unwrap().parse().unwrap();
    let mut roots = rustls::RootCertStore::empty();
    roots.add(server.clone()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    let tls = match client {
        Some(client) => builder
            .with_client_auth_cert(client.chain.clone(), client.key.clone_key())
            .unwrap(),
        None => builder.with_no_client_auth(),
    };
    let connector = tokio_rustls::TlsConnector::from(Arc::new(tls));
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let name = ServerName::try_from("localhost").unwrap();
    let mut stream = connector.connect(name, tcp).await.expect("TLS handshake");
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.ok();
    answer
}

fn webhook(extra_headers: &str) -> String {
    let body =
        r#"{"event_type": "static-secret-updated", "item_name": "/prod/payments/db-password"}"#;
    format!(
        "POST /webhook/akeyless HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n{extra_headers}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
}

#[tokio::test]
async fn client_certificates_from_the_configured_ca_are_let_in_and_others_refused() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Authority::new("webhook clients");
    let (app, server) = serve(
        dir.path(),
        &ca,
        &["akeyless-forwarder"],
        &[Scheme::ClientCert],
    )
    .await;

    let good = ca.client("akeyless-forwarder", "forwarder.example", NOW);
    let answer = request(&app, &server, Some(&good), &webhook("")).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains("payments-db"), "{answer}");

    let by_dns = ca.client("someone", "akeyless-forwarder", NOW);
    let answer = request(&app, &server, Some(&by_dns), &webhook("")).await;
    assert!(
        answer.starts_with("HTTP/1.1 200"),
        "a DNS SAN names the subject too: {answer}"
    );

    let refusals = [
        (None, "none"),
        (
            Some(Authority::new("another CA").client("akeyless-forwarder", "f.example", NOW)),
            "another CA",
        ),
        (
            Some(ca.client("intruder", "intruder.example", NOW)),
            "a subject not allowed",
        ),
        (
            Some(ca.client("akeyless-forwarder", "f.example", (2001, 2002))),
            "expired",
        ),
        (
            Some(ca.client("akeyless-forwarder", "f.example", (2080, 2090))),
            "not yet valid",
        ),
    ];
    for (client, what) in &refusals {
        let answer = request(&app, &server, client.as_ref(), &webhook("")).await;
        assert!(answer.starts_with("HTTP/1.1 401"), "{what}: {answer}");
        assert!(
            answer.contains("TLS-Client-Certificate"),
            "{what}: {answer}"
        );
    }

    // Probes need no certificate.
    let probe = "GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";
    assert!(
        request(&app, &server, None, probe)
            .await
            .starts_with("HTTP/1.1 200")
    );
}

#[tokio::test]
async fn other_schemes_of_the_route_work_without_a_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Authority::new("webhook clients");
    let (app, server) = serve(dir.path(), &ca, &[], &[Scheme::ClientCert, Scheme::Basic]).await;
    let basic = format!(
        "Authorization: Basic {}\r\n",
        base64::Engine::encode(
            &base64::engine::general_purpose::STANDARD,
            format!("{USER}:{PASSWORD}")
        )
    );
    let answer = request(&app, &server, None, &webhook(&basic)).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let anyone = ca.client("any-name", "any.example", NOW);
    let answer = request(&app, &server, Some(&anyone), &webhook("")).await;
    assert!(
        answer.starts_with("HTTP/1.1 200"),
        "no subjects: any certificate of the CA: {answer}"
    );
    let answer = request(&app, &server, None, &webhook("")).await;
    assert!(answer.starts_with("HTTP/1.1 401"), "{answer}");
}
