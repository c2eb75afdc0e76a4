//! The cross-cutting parts every CRM service mounts, in one crate with one
//! module per concern. A service's `main.rs` reads as: load [`config`], init
//! [`telemetry`], [`db::connect`] and migrate, then [`server::serve`].

pub mod auth;
pub mod client;
pub mod config;
pub mod convert;
pub mod db;
pub mod error;
pub mod filter;
pub mod idempotency;
pub mod money;
pub mod outbox;
pub mod paging;
pub mod server;
pub mod store;
pub mod telemetry;
pub mod testing;
pub mod validate;
