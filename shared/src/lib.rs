//! The cross-cutting parts every CRM service mounts, in one crate with one
//! module per concern. A service is built with the [`kit`]: it names its
//! migrator, gRPC services and the feeds it follows ([`consumer`]); the kit
//! does configuration, telemetry, the database, health, reflection, its
//! event feed ([`outbox`]) and shutdown the same way for every service.

pub mod audit;
pub mod auth;
pub mod client;
pub mod config;
pub mod consumer;
pub mod contacts;
pub mod convert;
pub mod db;
pub mod error;
pub mod filter;
pub mod idempotency;
pub mod jetstream;
pub mod kit;
pub mod money;
pub mod notify;
pub mod outbox;
pub mod paging;
pub mod privacy;
pub mod retention;
pub mod schedule;
pub mod server;
pub mod statistics;
pub mod store;
pub mod telemetry;
pub mod token;
pub mod validate;

/// This build's version: the workspace's, with `+<revision>` when the build
/// set `CRM_BUILD_REVISION` (the Dockerfile passes the git commit). Every
/// server sends it as the `x-crm-version` response header.
pub fn version() -> &'static str {
    static VERSION: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    VERSION.get_or_init(|| match option_env!("CRM_BUILD_REVISION") {
        Some(revision) if !revision.is_empty() => {
            format!("{}+{revision}", env!("CARGO_PKG_VERSION"))
        }
        _ => env!("CARGO_PKG_VERSION").to_owned(),
    })
}
