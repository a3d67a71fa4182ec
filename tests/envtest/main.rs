//! The real-cluster tier: the service binary against a real kube-apiserver and the real ESO
//! controller, as a user runs it. See `tests/README.md` for what each tier covers.

mod akeyless;
mod cluster_external_secrets;
mod confirmation;
mod dedupe;
mod outage;
mod preview;
mod rbac;
mod refresh;
mod support;
mod unmatchable;
