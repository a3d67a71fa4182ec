//! The pure core: the ExternalSecret model, store references, the index, the plan, stamps and
//! the de-duplication window. No I/O, no Kubernetes client, no HTTP: the watch and the webhook
//! handlers feed it and act on what it says.

pub mod change;
pub mod dedupe;
pub mod duration;
pub mod external_secret;
pub mod index;
pub mod plan;
pub mod stamp;
pub mod store;
