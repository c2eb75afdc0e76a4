//! Integration tests of the contacts service: each test starts the real server
//! on a free port over a throwaway database (SQLite, and PostgreSQL when one
//! answers) and talks to it over gRPC like any client would.

/// Declares a test that runs `$body(Backend)` once on SQLite and once on
/// PostgreSQL. (`crm_shared::db_test!` does the same but does not expand:
/// `super::$body` with a `path` fragment is rejected, so this takes an ident.)
macro_rules! db_test {
    ($name:ident, $body:ident) => {
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$body(crm_shared::testing::Backend::Sqlite).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                super::$body(crm_shared::testing::Backend::Postgres).await
            }
        }
    };
}

mod support;

mod activities;
mod bad_input;
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
