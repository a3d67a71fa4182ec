//! Webhook bodies from secret managers, read into "this secret changed".

pub mod akeyless;

/// One secret that changed, as a provider named it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretChange {
    /// The secret's name or path, exactly as the event gave it.
    pub key: String,
    pub event_type: Option<String>,
    pub event_id: Option<String>,
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
