//! Kubernetes: the watch that fills the index, the patches, what follows them (Events,
//! confirmation, the cache buster), the RBAC the service needs, manifest files read
//! instead of a cluster, and the one-time read of a cluster a preview makes.

pub mod cache_buster;
pub mod events;
pub mod follow_up;
pub mod manifests;
pub mod patcher;
pub mod rbac;
pub mod snapshot;
pub mod watch;
