//! Integration tests: the real server, over real HTTP, against a fake Kubernetes API server.

mod auth;
mod binary;
mod cache_buster;
mod client_cert;
mod cluster;
mod input;
mod manifests_mode;
mod monitoring;
mod providers;
mod refresh;
mod reliability;
mod sns;
mod stores;
mod support;
