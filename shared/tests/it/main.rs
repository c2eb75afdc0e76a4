//! Integration tests of the shared crate against real servers: the outbox
//! relayed to NATS JetStream and partitioned consumers reading it, on
//! SQLite and PostgreSQL, with `nats-server` processes started by the tests;
//! PostgreSQL connections' socket options.

mod common;
mod jetstream;
mod nodelay;
mod switch;
mod together;
