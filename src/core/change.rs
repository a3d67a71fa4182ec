//! What a webhook says, whoever sent it: which secrets changed, where, and what was only
//! acknowledged. Senders read their bodies into these; the index and the plan read them.

use std::any::Any;
use std::fmt;
use std::sync::Arc;

use serde::Serialize;
use serde_json::Value;

/// One secret that changed, as a provider named it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SecretChange {
    /// The secret's name or path, exactly as the event gave it.
    pub key: String,
    /// Other spellings ExternalSecrets may use for the same secret (an AWS ARN, a GCP resource
    /// name, a Vault path with its mount).
    pub also: Vec<String>,
    pub event_type: Option<String>,
    pub event_id: Option<String>,
    /// Where the event id is unique, when the sender's ids are unique only there (a CloudEvents
    /// `source`, an Event Grid topic, a Pub/Sub subscription).
    pub scope: Option<String>,
    /// The sender that read the event: ids of different senders never collide.
    pub sender: &'static str,
    /// Which provider announced it, and where; `None` when the sender does not say (generic
    /// bodies, CloudEvents), which matches every store.
    pub origin: Option<Origin>,
}

impl SecretChange {
    /// What identifies the event among every sender's: the sender, the scope of its id and the
    /// id. `None` for an event without an id, which is never taken for a re-delivery.
    pub fn event_key(&self) -> Option<String> {
        let id = self.event_id.as_deref()?;
        let scope = self.scope.as_deref().unwrap_or_default();
        Some(format!("{}\u{1f}{scope}\u{1f}{id}", self.sender))
    }
}

#[cfg(test)]
impl SecretChange {
    /// A change to `key` from `origin`, nothing more: for tests.
    pub fn named(key: &str, origin: Option<Origin>) -> SecretChange {
        SecretChange {
            key: key.into(),
            origin,
            ..SecretChange::default()
        }
    }
}

/// Where a change happened, as far as its event tells: only ExternalSecrets whose store reads
/// from there are refreshed. What a place is (a region, a project, a vault, a Doppler config)
/// is each sender's own business: the sender that creates it is the one whose stores read it
/// back ([`crate::core::store::StoreBackend`]).
#[derive(Clone)]
pub struct Origin(Arc<dyn AnyPlace>);

/// A sender's description of where its changes happen.
pub trait Place: fmt::Debug + PartialEq + Send + Sync + 'static {
    /// Whether the change concerns a whole scope (a Doppler config, an Infisical folder)
    /// rather than one key.
    fn is_scope(&self) -> bool {
        false
    }
}

/// A [`Place`] of any sender's: compared and shown without knowing its type.
trait AnyPlace: fmt::Debug + Send + Sync {
    fn as_any(&self) -> &dyn Any;
    fn equals(&self, other: &dyn AnyPlace) -> bool;
    fn is_scope(&self) -> bool;
}

impl<T: Place> AnyPlace for T {
    fn as_any(&self) -> &dyn Any {
        self
    }

    fn equals(&self, other: &dyn AnyPlace) -> bool {
        other.as_any().downcast_ref::<T>() == Some(self)
    }

    fn is_scope(&self) -> bool {
        Place::is_scope(self)
    }
}

impl Origin {
    pub fn new(place: impl Place) -> Origin {
        Origin(Arc::new(place))
    }

    /// The place, if a sender of type `T`'s made it.
    pub fn place<T: Place>(&self) -> Option<&T> {
        self.0.as_any().downcast_ref()
    }

    /// Whether the change concerns a whole scope rather than one key.
    pub fn is_scope(&self) -> bool {
        self.0.is_scope()
    }
}

impl PartialEq for Origin {
    fn eq(&self, other: &Origin) -> bool {
        self.0.equals(&*other.0)
    }
}

impl Eq for Origin {}

impl fmt::Debug for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// An event acknowledged but not acted on, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Ignored {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event_id: Option<String>,
    pub reason: String,
}

/// What one webhook body says.
#[derive(Debug, Default)]
pub struct Notification {
    pub changes: Vec<SecretChange>,
    pub ignored: Vec<Ignored>,
    /// A handshake to answer instead of a report (Event Grid's subscription validation).
    pub reply: Option<Value>,
    /// An SNS subscription asks to be confirmed at this URL.
    pub confirm_subscription: Option<String>,
}

/// Why a body could not be read; each becomes a 400 that says so.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PayloadError {
    #[error("body is not valid JSON: {0}")]
    Json(String),
    #[error("{0}")]
    Shape(String),
    #[error("body holds no events")]
    Empty,
}
