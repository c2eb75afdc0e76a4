//! PostgreSQL `LISTEN`/`NOTIFY` between a service's replicas: a notice sent
//! in a transaction reaches every replica listening on its channel when (and
//! only if) the transaction commits. One `LISTEN` connection per channel and
//! process, reconnected when it drops. Notices are wake-ups, never the data:
//! what a listener missed while reconnecting it finds by looking again, which
//! [`forward`] tells it to do. SQLite has no such thing and needs none, its
//! writers all being in one process.

use std::time::Duration;

use sea_orm::{ConnectionTrait, DbBackend, DbErr, Statement};
use tokio::sync::watch;

use crate::db::Database;

/// What arrived on a channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Notice<'a> {
    /// A notice with its payload.
    Payload(&'a str),
    /// Listening (again): notices sent before now may have been missed.
    Listening,
}

/// On PostgreSQL, calls `on_notice` with every notice on `channel` until
/// `stopping` turns true, reconnecting after a second when the connection
/// fails; on SQLite does nothing.
pub fn forward<F>(
    db: &Database,
    channel: &'static str,
    mut stopping: watch::Receiver<bool>,
    on_notice: F,
) where
    F: Fn(Notice<'_>) + Send + Sync + 'static,
{
    if db.backend() != DbBackend::Postgres {
        return;
    }
    let pool = db.conn.get_postgres_connection_pool().clone();
    tokio::spawn(async move {
        loop {
            tokio::select! {
                Err(error) = listen(&pool, channel, &on_notice) => {
                    tracing::warn!(%error, channel, "listening for notices failed; reconnecting");
                }
                _ = stopping.wait_for(|stop| *stop) => return,
            }
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                _ = stopping.wait_for(|stop| *stop) => return,
            }
        }
    });
}

/// Passes on every notice on `channel` until the connection fails.
async fn listen<F: Fn(Notice<'_>)>(
    pool: &sea_orm::sqlx::PgPool,
    channel: &str,
    on_notice: &F,
) -> Result<std::convert::Infallible, sea_orm::sqlx::Error> {
    let mut listener = sea_orm::sqlx::postgres::PgListener::connect_with(pool).await?;
    listener.listen(channel).await?;
    on_notice(Notice::Listening);
    loop {
        let notification = listener.recv().await?;
        on_notice(Notice::Payload(notification.payload()));
    }
}

/// Sends `payload` on `channel` through `conn`: in a transaction, on commit.
/// PostgreSQL only (a no-op elsewhere); a payload must stay under 8,000 bytes.
pub async fn send<C: ConnectionTrait>(conn: &C, channel: &str, payload: &str) -> Result<(), DbErr> {
    if conn.get_database_backend() != DbBackend::Postgres {
        return Ok(());
    }
    conn.execute_raw(Statement::from_sql_and_values(
        DbBackend::Postgres,
        "SELECT pg_notify($1, $2)",
        [channel.into(), payload.into()],
    ))
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    /// Notices sent in a transaction arrive on commit, none on rollback, and
    /// the listener is told when it is listening. Needs PostgreSQL (under CI
    /// it must answer).
    #[tokio::test]
    async fn notices_arrive_on_commit_only() {
        let url = std::env::var("CRM_TEST_POSTGRES_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
        let db = match Database::connect(&url, 3).await {
            Ok(db) => db,
            Err(error) if std::env::var("CI").is_err() => {
                eprintln!("skipped: PostgreSQL does not answer ({error})");
                return;
            }
            Err(error) => panic!("under CI PostgreSQL must answer: {error}"),
        };
        let seen: Arc<Mutex<Vec<String>>> = Arc::default();
        let (stop, stopping) = watch::channel(false);
        let heard = seen.clone();
        forward(&db, "crm_notify_test", stopping, move |notice| {
            heard.lock().unwrap().push(match notice {
                Notice::Payload(payload) => payload.to_owned(),
                Notice::Listening => "<listening>".to_owned(),
            });
        });
        let listening = || seen.lock().unwrap().contains(&"<listening>".to_owned());
        for _ in 0..100 {
            if listening() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(listening(), "the listener connects");

        let txn = db.begin_write().await.unwrap();
        send(&*txn, "crm_notify_test", "rolled back").await.unwrap();
        txn.rollback().await.unwrap();
        let txn = db.begin_write().await.unwrap();
        send(&*txn, "crm_notify_test", "committed").await.unwrap();
        txn.commit().await.unwrap();
        for _ in 0..100 {
            if seen.lock().unwrap().contains(&"committed".to_owned()) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let seen = seen.lock().unwrap().clone();
        assert_eq!(seen, ["<listening>", "committed"]);
        stop.send(true).unwrap();
    }
}
