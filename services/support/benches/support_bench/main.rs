//! The support benchmark, in two parts, each on PostgreSQL and SQLite in one
//! run against real service processes, beside raw SQL doing the same work on
//! the same database:
//!
//! - `tickets`: `CreateTicket` at several concurrencies (see `tickets.rs`);
//! - `kb_search`: knowledge-base search over 100,000 articles (see
//!   `kb_search.rs`);
//! - `start`: the `support` binary's start to SERVING on an empty and on a
//!   migrated database, and its idle memory (`crm_testkit::spawned`).
//!
//! `cargo bench -p crm-support --bench support_bench` runs every part in full;
//! name a part after `--` to run only it (`... -- kb_search`). A plain run
//! (`cargo test --benches`) makes a small smoke pass of each on SQLite
//! (the starts on both backends).

mod kb_search;
mod tickets;

#[tokio::main]
async fn main() {
    sqlx::any::install_default_drivers();
    let args = crm_testkit::bench::Args::from_env();
    let full = args.full;
    let chosen = |part: &str| args.runs(part, true);
    if chosen("tickets") {
        tickets::run(full).await;
    }
    if chosen("kb_search") {
        println!();
        kb_search::run(full).await;
    }
    if chosen("start") {
        println!();
        crm_testkit::spawned::measure_starts(env!("CARGO_BIN_EXE_support"), "support", &[]).await;
    }
}
