//! Integration tests of the contacts service: each test starts the real server
//! on a free port over a throwaway database (SQLite, and PostgreSQL when one
//! answers) and talks to it over gRPC like any client would.

mod support;

mod activities;
mod audit;
mod bad_input;
mod cancellation;
mod companies;
mod contacts;
mod duplicates;
mod events;
mod health;
mod import_export;
mod merge;
mod privacy;
mod process;
mod search;
mod security;
mod statements;
