//! What a webhook says, whoever sent it: which secrets changed, where, and what was only
//! acknowledged. Senders read their bodies into these; the index and the plan read them.

use serde::Serialize;
use serde_json::Value;

/// One secret that changed, as a provider named it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretChange {
    /// The secret's name or path, exactly as the event gave it.
    pub key: String,
    /// Other spellings ExternalSecrets may use for the same secret (an AWS ARN, a GCP resource
    /// name, a Vault path with its mount).
    pub also: Vec<String>,
    pub event_type: Option<String>,
    pub event_id: Option<String>,
    /// Which provider announced it, and where; `None` when the sender does not say (generic
    /// bodies, CloudEvents), which matches every store.
    pub origin: Option<Origin>,
}

/// Where a change happened, as far as its event tells: only ExternalSecrets whose store reads
/// from there are refreshed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    Akeyless,
    Aws {
        region: Option<String>,
    },
    /// `project` as the event names it: a number or an id.
    Gcp {
        project: Option<String>,
    },
    Azure {
        vault: Option<String>,
    },
    Vault {
        mount: Option<String>,
    },
    /// Doppler names a project's config, not a secret: every store reading it is concerned.
    Doppler {
        project: String,
        config: String,
    },
    /// Infisical names an environment's folder.
    Infisical {
        environment: String,
        path: String,
    },
}

impl Origin {
    /// Whether the change concerns a whole scope rather than one key.
    pub fn is_scope(&self) -> bool {
        matches!(self, Origin::Doppler { .. } | Origin::Infisical { .. })
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
