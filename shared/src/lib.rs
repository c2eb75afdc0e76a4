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
pub mod convert;
pub mod db;
pub mod error;
pub mod filter;
pub mod idempotency;
pub mod kit;
pub mod money;
pub mod outbox;
pub mod paging;
pub mod privacy;
pub mod retention;
pub mod server;
pub mod store;
pub mod telemetry;
pub mod validate;
