//! Planner statistics kept fresh as tables grow, off the request path.
//!
//! PostgreSQL's autovacuum analyses a table once a tenth of it changed, and
//! looks only about once a minute (a server may run without it); until then
//! the planner believes the tables are as small as when they began to fill,
//! estimates one row wherever a key prefix matches, and picks any index that
//! starts with it: lookups degrade to scans of a tenant's rows. Writers note
//! what they wrote (rows, or events of a few rows each); the background task
//! a [`Statistics::start`] spawns runs `ANALYZE` on the given tables once
//! the writes noted since the last run reach half as many again as were
//! noted before it in this process (at least [`MIN_ROWS`]), and at most
//! every [`MIN_INTERVAL`]: a process that writes N is analysed about
//! log1.5(N / MIN_ROWS) times. No call ever waits for it.

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use sea_orm::{ConnectionTrait, DbBackend};
use tokio::sync::Notify;

use crate::db::Database;

/// The fewest new rows worth an `ANALYZE`.
const MIN_ROWS: u64 = 500;
/// The least time between two runs.
const MIN_INTERVAL: Duration = Duration::from_secs(2);

/// Counts written rows and wakes the refresher.
#[derive(Default)]
pub struct Statistics {
    /// Rows written since the last `ANALYZE`.
    pending: AtomicU64,
    wake: Notify,
}

impl Statistics {
    /// Starts the refresher for `tables` of `db` (PostgreSQL only: SQLite
    /// plans from its indexes alone, which each service shapes for that).
    pub fn start(db: &Database, tables: &'static [&'static str]) -> Arc<Self> {
        let statistics = Arc::new(Self::default());
        if db.backend() == DbBackend::Postgres && !tables.is_empty() {
            tokio::spawn(refresh(
                db.clone(),
                format!("ANALYZE {}", tables.join(", ")),
                statistics.clone(),
            ));
        }
        statistics
    }

    /// Notes `rows` newly written.
    pub fn wrote(&self, rows: u64) {
        self.pending.fetch_add(rows, Ordering::Relaxed);
        self.wake.notify_one();
    }
}

/// Runs `analyze` whenever enough was written; ends with the runtime.
async fn refresh(db: Database, analyze: String, statistics: Arc<Statistics>) {
    let mut analysed_rows: u64 = 0;
    loop {
        statistics.wake.notified().await;
        let pending = statistics.pending.load(Ordering::Relaxed);
        if pending < MIN_ROWS.max(analysed_rows / 2) {
            continue;
        }
        match db.conn.execute_unprepared(&analyze).await {
            Ok(_) => {
                statistics.pending.fetch_sub(pending, Ordering::Relaxed);
                analysed_rows += pending;
            }
            Err(error) => tracing::warn!(%error, "could not refresh planner statistics"),
        }
        tokio::time::sleep(MIN_INTERVAL).await;
    }
}
