//! How long a service keeps its outbox: an event is pruned once it is older
//! than the retention window *and* every known consumer has applied it.
//!
//! A consumer tells the producer how far it has applied each time it opens a
//! feed: the `after_sequence` of a `StreamEvents` call made by the service
//! identity is recorded as that reader's position (the shared consumer
//! reconnects every few minutes, so the position stays fresh). A reader not
//! seen for a whole window is forgotten, so a retired consumer cannot hold
//! the outbox forever; one that comes back later than that resumes after a gap,
//! which the window is there to make rare (30 days by default).

use std::time::Duration;

use sea_orm::{ConnectionTrait, DbErr, Statement, Value};
use tokio::sync::watch;

use crate::db::Database;

/// How often expired events are pruned (and once at start).
const PRUNE_EVERY: Duration = Duration::from_secs(600);

/// Records that `reader` (a service's subject) has applied every event up
/// to and including `position`. (`$n` placeholders work on SQLite too, where
/// a repeated `$1` is one parameter.)
pub async fn record_reader(db: &Database, reader: &str, position: i64) -> Result<(), DbErr> {
    let now = chrono::Utc::now();
    let sql = "INSERT INTO feed_readers (reader, position, seen_at) VALUES ($1, $2, $3) \
               ON CONFLICT (reader) DO UPDATE SET position = excluded.position, seen_at = excluded.seen_at";
    write(
        db,
        sql,
        vec![Value::from(reader), Value::from(position), Value::from(now)],
    )
    .await?;
    Ok(())
}

/// The position `reader` last recorded, if it has one.
pub async fn reader_position(db: &Database, reader: &str) -> Result<Option<i64>, DbErr> {
    let row = db
        .conn
        .query_one_raw(Statement::from_sql_and_values(
            db.backend(),
            "SELECT position FROM feed_readers WHERE reader = $1",
            vec![Value::from(reader)],
        ))
        .await?;
    row.map(|row| row.try_get::<i64>("", "position"))
        .transpose()
}

/// Runs one writing statement in a write transaction: on SQLite it then
/// waits its turn behind the process's other writers, where a bare write
/// would make their transactions fail with SQLITE_BUSY.
async fn write(db: &Database, sql: &str, values: Vec<Value>) -> Result<u64, DbErr> {
    let txn = db.begin_write().await?;
    let result = txn
        .execute_raw(Statement::from_sql_and_values(db.backend(), sql, values))
        .await?;
    txn.commit().await?;
    Ok(result.rows_affected())
}

/// Deletes every event older than `window` that every reader seen within the
/// window has applied; returns how many.
pub async fn prune_outbox(db: &Database, window: Duration) -> Result<u64, DbErr> {
    let cutoff = chrono::Utc::now() - window;
    let sql = "DELETE FROM outbox WHERE time < $1 AND sequence <= COALESCE( \
                   (SELECT MIN(position) FROM feed_readers WHERE seen_at >= $1), \
                   (SELECT MAX(sequence) FROM outbox))";
    let pruned = write(db, sql, vec![Value::from(cutoff)]).await?;
    let sql = "DELETE FROM feed_readers WHERE seen_at < $1";
    write(db, sql, vec![Value::from(cutoff)]).await?;
    Ok(pruned)
}

/// Deletes the audit log entries older than `window`; returns how many.
/// Entry ids are UUIDv7s, which sort by time, so the primary key finds them.
pub async fn prune_audit_log(db: &Database, window: Duration) -> Result<u64, DbErr> {
    let cutoff = chrono::Utc::now() - window;
    let millis = u64::try_from(cutoff.timestamp_millis()).unwrap_or_default();
    let first_kept = uuid::Builder::from_unix_timestamp_millis(millis, &[0; 10]).into_uuid();
    let sql = "DELETE FROM audit_log WHERE id < $1";
    write(db, sql, vec![Value::from(first_kept.to_string())]).await
}

/// How long a service keeps what it writes beside its data.
#[derive(Debug, Clone, Copy)]
pub struct Retention {
    /// Events, once every known consumer has applied them.
    pub events: Duration,
    /// Audit log entries; `None` keeps them forever.
    pub audit: Option<Duration>,
}

/// Prunes the outbox and the audit log at start and every [`PRUNE_EVERY`]
/// until `stopping`. Replicas may prune at the same time: deleting a row
/// twice is harmless.
pub async fn keep_pruning(db: Database, retention: Retention, mut stopping: watch::Receiver<bool>) {
    loop {
        match prune_outbox(&db, retention.events).await {
            Ok(0) => {}
            Ok(pruned) => tracing::info!(pruned, "events past their retention pruned"),
            Err(error) => tracing::warn!(%error, "could not prune the outbox"),
        }
        if let Some(window) = retention.audit {
            match prune_audit_log(&db, window).await {
                Ok(0) => {}
                Ok(pruned) => tracing::info!(pruned, "audit entries past their retention pruned"),
                Err(error) => tracing::warn!(%error, "could not prune the audit log"),
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(PRUNE_EVERY) => {}
            _ = stopping.wait_for(|stop| *stop) => return,
        }
    }
}

/// The `feed_readers` table.
pub mod migration {
    use sea_orm_migration::{prelude::*, schema::*};

    /// Creates `feed_readers`.
    #[derive(DeriveMigrationName)]
    pub struct CreateFeedReaders;

    #[derive(DeriveIden)]
    enum FeedReaders {
        Table,
        Reader,
        Position,
        SeenAt,
    }

    #[async_trait::async_trait]
    impl MigrationTrait for CreateFeedReaders {
        async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
            manager
                .create_table(
                    Table::create()
                        .table(FeedReaders::Table)
                        .if_not_exists()
                        .col(string(FeedReaders::Reader).primary_key())
                        .col(big_integer(FeedReaders::Position))
                        .col(timestamp_with_time_zone(FeedReaders::SeenAt))
                        .to_owned(),
                )
                .await
        }
    }
}
