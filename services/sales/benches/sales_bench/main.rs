//! The sales benchmark, on PostgreSQL and SQLite in one run, against sales
//! running as a service (its own runtime and pool, a real socket), beside
//! raw SQL doing the same work on the same database:
//!
//! - `leads`: `CreateLead` with assignment and scoring rules at 1, 8 and 32
//!   callers, and `ConvertLead`, beside raw SQL and the contacts call (see
//!   `leads.rs`);
//! - `forecast`: `GetForecast` for this quarter over 100,000 deals (see
//!   `forecast.rs`);
//! - `start`: the `sales` binary's start to SERVING on an empty and on a
//!   migrated database, and its idle memory (`crm_testkit::spawned`).
//!
//! `cargo bench -p crm-sales --bench sales_bench` runs every part in full;
//! name a part after `--` to run only it. A plain run (`cargo test
//! --benches`) makes a small smoke pass of each on SQLite.

mod forecast;
mod leads;

#[tokio::main]
async fn main() {
    let args = crm_testkit::bench::Args::from_env();
    let full = args.full;
    let chosen = |part: &str| args.runs(part, true);
    if chosen("leads") {
        leads::run(full).await;
        println!();
    }
    if chosen("forecast") {
        forecast::run(full).await;
    }
    if chosen("start") {
        println!();
        crm_testkit::spawned::measure_starts(env!("CARGO_BIN_EXE_sales"), "sales", &[]).await;
    }
}
