//! Planner statistics kept fresh after bulk loads, off the request path.
//!
//! PostgreSQL's autovacuum analyses a table once a tenth of it changed, and
//! looks only about once a minute; until then the planner believes the tables
//! are as small as when an import began, and its duplicate lookups degrade to
//! scans of every key. Imports report the rows they wrote; one background task
//! runs `ANALYZE` once the rows written since the last one reach half as many
//! again (at least [`MIN_ROWS`]), and at most every [`MIN_INTERVAL`]. No call
//! ever waits for it: it used to run inside the import stream, stalling it for
//! 0.3-0.4 s at 22,000 contacts.

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use crm_shared::db::Database;
use sea_orm::{ConnectionTrait, DbBackend};
use tokio::sync::Notify;

/// The fewest new rows worth an `ANALYZE`.
const MIN_ROWS: u64 = 500;
/// The least time between two runs.
const MIN_INTERVAL: Duration = Duration::from_secs(2);

/// Counts bulk-written rows and wakes the refresher.
#[derive(Default)]
pub struct Statistics {
    /// Rows written since the last `ANALYZE`.
    pending: AtomicU64,
    wake: Notify,
}

impl Statistics {
    /// Starts the refresher for `db` (PostgreSQL only; SQLite plans these
    /// lookups from their indexes alone).
    pub fn start(db: &Database) -> Arc<Self> {
        let statistics = Arc::new(Self::default());
        if db.backend() == DbBackend::Postgres {
            tokio::spawn(refresh(db.clone(), statistics.clone()));
        }
        statistics
    }

    /// Notes `rows` newly written in bulk.
    pub fn wrote(&self, rows: u64) {
        self.pending.fetch_add(rows, Ordering::Relaxed);
        self.wake.notify_one();
    }
}

/// Runs `ANALYZE` whenever enough was written; ends with the runtime.
async fn refresh(db: Database, statistics: Arc<Statistics>) {
    let mut analysed_rows: u64 = 0;
    loop {
        statistics.wake.notified().await;
        let pending = statistics.pending.load(Ordering::Relaxed);
        if pending < MIN_ROWS.max(analysed_rows / 2) {
            continue;
        }
        match db
            .conn
            .execute_unprepared("ANALYZE contacts, contact_keys, outbox, audit_log, audit_state")
            .await
        {
            Ok(_) => {
                statistics.pending.fetch_sub(pending, Ordering::Relaxed);
                analysed_rows += pending;
            }
            Err(error) => tracing::warn!(%error, "could not refresh planner statistics"),
        }
        tokio::time::sleep(MIN_INTERVAL).await;
    }
}
