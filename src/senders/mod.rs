//! The senders: one module per secret manager (or protocol), each reading its own webhook
//! bodies into "this secret changed". [`SENDERS`] lists them once; routes, detection on
//! `POST /webhook` and per-route settings all come from that list.
//!
//! Adding a sender: a module here with a type implementing [`Sender`], and one line in
//! [`SENDERS`].

pub mod akeyless;
pub mod aws;
pub mod azure;
pub mod cloudevents;
pub mod doppler;
pub mod gcp;
pub mod generic;
pub mod infisical;
mod read;
pub mod vault;

use std::fmt;
use std::sync::Arc;

use serde_json::Value;

pub use crate::core::change::{Ignored, Notification, Origin, PayloadError, Place, SecretChange};
pub use crate::core::store::StoreBackend;
pub use aws::sns;

/// A secret manager, or a protocol, that announces changes by webhook.
pub trait Sender: Sync {
    /// Its route, `POST /webhook/<name>`, and its settings' suffix, `WEBHOOK_AUTH_<NAME>`.
    fn name(&self) -> &'static str;

    /// Whether a body (its first event, for an array) has this sender's shape: how
    /// `POST /webhook` tells senders apart.
    fn recognizes(&self, first: &Value) -> bool;

    /// Reads a body of this sender's, parsed once by the caller.
    fn parse(&self, body: &Value) -> Result<Notification, PayloadError>;

    /// A shape other senders' bodies may have too (an Azure or Vault event is also a
    /// CloudEvent): `POST /webhook` tries such senders after all the others.
    fn shared_shape(&self) -> bool {
        false
    }

    /// The backend of a store whose `spec.provider` names `provider` (ESO's field name, such
    /// as `gcpsm`), when this sender speaks for that provider: how its stores spell the keys
    /// ExternalSecrets ask for, and which of this sender's changes concern them.
    fn read_store(&self, _provider: &str, _settings: &Value) -> Option<Arc<dyn StoreBackend>> {
        None
    }

    /// The schemes (as `WEBHOOK_AUTH` names them) this sender signs its requests with: while
    /// `WEBHOOK_AUTH_<NAME>` is unset, its route accepts them beside `WEBHOOK_AUTH`'s as soon
    /// as their secrets are set.
    fn default_auth(&self) -> &'static [&'static str] {
        &[]
    }
}

/// The backend of a store, from the sender that speaks for its provider (a
/// [`crate::core::store::StoreReader`]); `None` for a provider no sender speaks for.
pub fn read_store(provider: &str, settings: &Value) -> Option<Arc<dyn StoreBackend>> {
    SENDERS
        .into_iter()
        .find_map(|sender| sender.0.read_store(provider, settings))
}

/// Every sender.
pub const SENDERS: [Provider; 9] = [
    Provider(&akeyless::Akeyless),
    Provider(&aws::Aws),
    Provider(&gcp::Gcp),
    Provider(&azure::Azure),
    Provider(&vault::Vault),
    Provider(&cloudevents::CloudEvents),
    Provider(&generic::Generic),
    Provider(&doppler::Doppler),
    Provider(&infisical::Infisical),
];

/// One of [`SENDERS`].
#[derive(Clone, Copy)]
pub struct Provider(&'static dyn Sender);

impl PartialEq for Provider {
    fn eq(&self, other: &Provider) -> bool {
        self.name() == other.name()
    }
}

impl Eq for Provider {}

impl fmt::Debug for Provider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl Provider {
    pub const AKEYLESS: Provider = Provider(&akeyless::Akeyless);
    pub const AWS: Provider = Provider(&aws::Aws);
    pub const CLOUDEVENTS: Provider = Provider(&cloudevents::CloudEvents);
    pub const ALL: [Provider; SENDERS.len()] = SENDERS;

    pub fn name(self) -> &'static str {
        self.0.name()
    }

    pub fn from_name(name: &str) -> Option<Provider> {
        SENDERS.into_iter().find(|p| p.name() == name)
    }

    pub fn default_auth(self) -> &'static [&'static str] {
        self.0.default_auth()
    }

    /// Reads a body of this sender's.
    pub fn parse(self, body: &Value) -> Result<Notification, PayloadError> {
        let mut notification = self.0.parse(body)?;
        for change in &mut notification.changes {
            change.sender = self.name();
        }
        let says_nothing = notification.changes.is_empty()
            && notification.ignored.is_empty()
            && notification.reply.is_none()
            && notification.confirm_subscription.is_none();
        if says_nothing {
            return Err(PayloadError::Empty);
        }
        Ok(notification)
    }

    /// Which sender a body comes from, by its shape; Akeyless when none fits (so that its
    /// parser explains what it expected).
    pub fn detect(body: &Value) -> Provider {
        let first = match body {
            Value::Array(items) => items.first().unwrap_or(&Value::Null),
            other => other,
        };
        let shared = |sender: &Provider| sender.0.shared_shape();
        let mut specific_first = SENDERS
            .into_iter()
            .filter(|s| !shared(s))
            .chain(SENDERS.into_iter().filter(shared));
        specific_first
            .find(|sender| sender.0.recognizes(first))
            .unwrap_or(Provider::AKEYLESS)
    }
}

/// Parses a body as JSON, once for the whole request.
pub fn json(body: &[u8]) -> Result<Value, PayloadError> {
    read::json(body)
}

/// What a delivery says once read.
#[derive(Debug)]
pub enum Reading {
    /// Events, and the sender whose parser read them.
    Notification(Notification, Provider),
    /// A handshake to answer as is (Event Grid's validation, an SNS confirmation).
    Reply(Value),
}

/// Why a delivery cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error(transparent)]
    Payload(#[from] PayloadError),
    #[error(transparent)]
    Sns(#[from] sns::SnsError),
}

/// Where deliveries are read: recognized once, parsed once. SNS messages are checked (and
/// subscriptions confirmed) before anything in them is believed.
pub struct Inbox {
    sns: sns::SnsGate,
}

impl Inbox {
    pub fn new(sns: sns::SnsSettings) -> Inbox {
        Inbox {
            sns: sns::SnsGate::new(sns),
        }
    }

    /// Reads a delivery to `route` (`None`: `POST /webhook`, any sender by its shape), whose
    /// request headers `header` looks up by lower-case name.
    pub async fn read(
        &self,
        route: Option<Provider>,
        header: impl Fn(&str) -> Option<String>,
        body: &[u8],
    ) -> Result<Reading, ReadError> {
        let anyone = |provider: Provider| route.is_none_or(|r| r == provider);
        // A CloudEvent in binary mode is in the `ce-*` headers, not the body.
        if anyone(Provider::CLOUDEVENTS) && header("ce-specversion").is_some() {
            let mut event = serde_json::Map::new();
            for name in ["specversion", "type", "source", "id", "subject"] {
                if let Some(value) = header(&format!("ce-{name}")) {
                    event.insert(name.to_owned(), value.into());
                }
            }
            let mut notification = Notification::default();
            notification.push_cloudevent(&event, 0)?;
            for change in &mut notification.changes {
                change.sender = Provider::CLOUDEVENTS.name();
            }
            return Ok(Reading::Notification(notification, Provider::CLOUDEVENTS));
        }
        let value = json(body);
        let provider = route.unwrap_or_else(|| match &value {
            Ok(value) => Provider::detect(value),
            Err(_) => Provider::AKEYLESS,
        });
        if anyone(Provider::AWS) {
            let announced = header("x-amz-sns-message-type");
            let aws_event = provider == Provider::AWS;
            let screened = self
                .sns
                .screen(value.as_ref().ok(), announced.as_deref(), aws_event)
                .await?;
            if let Some(reply) = screened {
                return Ok(Reading::Reply(reply));
            }
        }
        let notification = provider.parse(&value?)?;
        if let Some(reply) = notification.reply {
            return Ok(Reading::Reply(reply));
        }
        if let Some(url) = &notification.confirm_subscription {
            // Confirming means fetching a URL the body names; an operator does it, from the log.
            tracing::warn!(subscribe_url = %url, "SNS asks to confirm a subscription: open the SubscribeURL (or confirm it in the AWS console)");
            return Ok(Reading::Reply(serde_json::json!({
                "subscriptionConfirmation": "received; confirm it with the SubscribeURL, which is logged"
            })));
        }
        Ok(Reading::Notification(notification, provider))
    }
}

/// A sample body from tests/fixtures/events, for the parsers' tests.
#[cfg(test)]
pub(crate) fn fixture(name: &str) -> Vec<u8> {
    let path = format!(
        "{}/tests/fixtures/events/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// A store's backend read from its `spec.provider` as the service reads it, for the senders'
/// tests of their stores.
#[cfg(test)]
pub(crate) fn store(provider: Value) -> crate::core::store::Backend {
    let object = crate::core::external_secret::tests::object(serde_json::json!({
        "apiVersion": "external-secrets.io/v1", "kind": "SecretStore",
        "metadata": {"namespace": "a", "name": "s"},
        "spec": {"provider": provider},
    }));
    crate::core::store::Backend::from_object(&object, read_store)
}

/// The spellings of `key` (as written in an ExternalSecret) through `store`.
#[cfg(test)]
pub(crate) fn spelled(store: &crate::core::store::Backend, key: &str) -> Vec<String> {
    store.spellings(&remote_key(key))
}

/// A key as an ExternalSecret writes it, read through no particular store.
#[cfg(test)]
pub(crate) fn remote_key(written: &str) -> crate::core::external_secret::RemoteKey {
    crate::core::external_secret::RemoteKey {
        key: crate::core::external_secret::normalize_key(written).to_owned(),
        written: written.to_owned(),
        store: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_fixture_is_recognized() {
        let expected = [
            ("akeyless-array.json", "akeyless"),
            ("akeyless-single.json", "akeyless"),
            ("akeyless-grouped.json", "akeyless"),
            ("akeyless-grouped-hyphenated.json", "akeyless"),
            ("akeyless-groups-unwrapped.json", "akeyless"),
            ("akeyless-docs-grouped.json", "akeyless"),
            ("akeyless-docs-certificate.json", "akeyless"),
            ("akeyless-docs-spaces.json", "akeyless"),
            ("akeyless-every-type.json", "akeyless"),
            ("aws-eventbridge-cloudtrail.json", "aws"),
            ("aws-secret-label-updated.json", "aws"),
            ("aws-sns-notification.json", "aws"),
            ("aws-sns-subscription-confirmation.json", "aws"),
            ("gcp-pubsub-push.json", "gcp"),
            ("azure-eventgrid.json", "azure"),
            ("azure-eventgrid-validation.json", "azure"),
            ("azure-cloudevent.json", "azure"),
            ("vault-kv-v2-event.json", "vault"),
            ("cloudevent-structured.json", "cloudevents"),
            ("doppler.json", "doppler"),
            ("infisical.json", "infisical"),
        ];
        for (file, name) in expected {
            let provider = Provider::from_name(name).unwrap();
            let body = json(&fixture(file)).unwrap();
            assert_eq!(Provider::detect(&body), provider, "{file}");
            assert!(provider.parse(&body).is_ok(), "{file}");
        }
    }

    use crate::core::external_secret::{IndexedSecret, RemoteKey};
    use crate::core::index::RefreshIndex;
    use crate::core::store::StoreId;
    use serde_json::json;

    fn reading(namespace: &str, name: &str, key: &str, store: &StoreId) -> IndexedSecret {
        let mut secret = IndexedSecret::with_keys(namespace, name, &[key]);
        secret.keys[0].store = Some(store.clone());
        secret
    }

    fn names(found: Vec<Arc<IndexedSecret>>) -> Vec<String> {
        found.iter().map(|s| s.id.to_string()).collect()
    }

    #[test]
    fn a_senders_change_concerns_only_its_stores() {
        let mut index = RefreshIndex::default();
        let (ireland, virginia) = (StoreId::namespaced("a", "ie"), StoreId::cluster("us"));
        let vault = StoreId::namespaced("a", "vault");
        let aws = |region: &str, prefix: &str| {
            store(json!({"aws": {"service": "SecretsManager", "region": region, "prefix": prefix}}))
        };
        index.apply_store(ireland.clone(), aws("eu-west-1", "prod/"));
        index.apply_store(virginia.clone(), aws("us-east-1", ""));
        index.apply_store(
            vault.clone(),
            store(json!({"vault": {"server": "s", "path": "secret"}})),
        );
        index.apply(reading("a", "prefixed", "db", &ireland));
        index.apply(reading("a", "elsewhere", "prod/db", &virginia));
        index.apply(reading("a", "vault", "prod/db", &vault));
        index.apply(IndexedSecret::with_keys("a", "storeless", &["prod/db"]));
        let from_ireland = Origin::new(aws::AwsRegion(Some("eu-west-1".into())));
        assert_eq!(
            names(index.lookup_change(&SecretChange::named("prod/db", Some(from_ireland)))),
            ["a/prefixed", "a/storeless"]
        );
        assert_eq!(
            names(index.lookup_change(&SecretChange::named("prod/db", None))),
            ["a/elsewhere", "a/prefixed", "a/storeless", "a/vault"],
            "an event that names no provider concerns every store"
        );
        let from_vault = Origin::new(vault::VaultMount(Some("secret".into())));
        let mut written = SecretChange::named("prod/db", Some(from_vault));
        written.also = vec!["secret/data/prod/db".into(), "secret/prod/db".into()];
        assert_eq!(
            names(index.lookup_change(&written)),
            ["a/storeless", "a/vault"]
        );
    }

    #[test]
    fn a_scope_change_concerns_every_reader_of_stores_in_scope() {
        let mut index = RefreshIndex::default();
        let backend =
            |config: &str| store(json!({"doppler": {"project": "payments", "config": config}}));
        let (prd, stg) = (StoreId::namespaced("a", "prd"), StoreId::cluster("stg"));
        index.apply_store(prd.clone(), backend("prd"));
        index.apply_store(stg.clone(), backend("stg"));
        let mut both = reading("a", "both", "X", &prd);
        both.keys.push(RemoteKey {
            key: "Y".into(),
            written: "Y".into(),
            store: Some(stg.clone()),
        });
        index.apply(both);
        index.apply(reading("b", "staging", "X", &stg));
        let doppler = |config: &str| {
            SecretChange::named(
                "doppler",
                Some(Origin::new(doppler::DopplerConfig {
                    project: "payments".into(),
                    config: config.into(),
                })),
            )
        };
        assert_eq!(names(index.lookup_change(&doppler("prd"))), ["a/both"]);
        assert_eq!(
            names(index.lookup_change(&doppler("stg"))),
            ["a/both", "b/staging"]
        );
        assert!(index.lookup_change(&doppler("dev")).is_empty());
    }

    /// Key Vault names are case-insensitive; GCP's (and the other providers') are not.
    #[test]
    fn each_provider_compares_names_by_its_own_case_rules() {
        let mut index = RefreshIndex::default();
        let vault = StoreId::namespaced("a", "kv");
        let gcp = StoreId::namespaced("a", "gcp");
        index.apply_store(
            vault.clone(),
            store(json!({"azurekv": {"vaultUrl": "https://kv-prod.vault.azure.net"}})),
        );
        index.apply_store(gcp.clone(), store(json!({"gcpsm": {"projectID": "p"}})));
        index.apply(reading("a", "lower", "db-token", &vault));
        index.apply(reading("a", "prefixed", "secret/DB-TOKEN", &vault));
        index.apply(reading("a", "exact", "DB-Token", &vault));
        index.apply(reading("a", "gcp-lower", "db-token", &gcp));
        let event = json!([{"id": "1", "eventType": "Microsoft.KeyVault.SecretNewVersionCreated",
            "subject": "DB-Token", "data": {"ObjectName": "DB-Token", "VaultName": "kv-prod"}}]);
        let changes = Provider::detect(&event).parse(&event).unwrap().changes;
        assert_eq!(
            names(index.lookup_change(&changes[0])),
            ["a/exact", "a/lower", "a/prefixed"]
        );
        let gcp_event = json!({"message": {"messageId": "2", "attributes": {
            "eventType": "SECRET_VERSION_ADD", "secretId": "projects/p/secrets/DB-Token"}}});
        let changes = Provider::detect(&gcp_event)
            .parse(&gcp_event)
            .unwrap()
            .changes;
        assert!(
            index.lookup_change(&changes[0]).is_empty(),
            "GCP names are case-sensitive"
        );
    }

    #[test]
    fn each_eso_provider_is_read_by_its_sender() {
        let readers = [
            ("akeyless", "akeyless"),
            ("aws", "aws"),
            ("gcpsm", "gcp"),
            ("azurekv", "azure"),
            ("vault", "vault"),
            ("doppler", "doppler"),
            ("infisical", "infisical"),
        ];
        for (provider, sender) in readers {
            let readers: Vec<&str> = SENDERS
                .into_iter()
                .filter(|s| s.0.read_store(provider, &json!({})).is_some())
                .map(Provider::name)
                .collect();
            assert_eq!(readers, [sender], "{provider}");
        }
        assert!(read_store("fake", &json!({})).is_none());
        let unknown = store(json!({"fake": {}}));
        assert!(!unknown.accepts(&Origin::new(akeyless::AkeylessPlace)));
        assert_eq!(
            store(json!({"akeyless": {}})),
            store(json!({"akeyless": {}}))
        );
        assert_ne!(
            store(json!({"gcpsm": {"projectID": "a"}})),
            store(json!({"gcpsm": {"projectID": "b"}}))
        );
    }

    #[test]
    fn names_round_trip() {
        for provider in Provider::ALL {
            assert_eq!(Provider::from_name(provider.name()), Some(provider));
        }
        assert_eq!(Provider::from_name("onepassword"), None);
    }

    proptest::proptest! {
        #[test]
        fn no_parser_panics(body in proptest::collection::vec(proptest::num::u8::ANY, 0..200)) {
            if let Ok(value) = json(&body) {
                for sender in SENDERS {
                    let _ = sender.parse(&value);
                }
            }
        }
    }
}
