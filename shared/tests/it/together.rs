//! Writes run together (`db::execute_together`): on PostgreSQL one
//! statement of `WITH` parts, on SQLite one call of several statements.
//! Each part's values land in its own rows, and a failing part fails the
//! call, leaving nothing once its transaction rolls back.

use crm_shared::db::{Database, execute_together};
use crm_testkit::{Backend, TestDatabase, db_test};
use sea_orm::{ConnectionTrait, Statement, Value};

/// An INSERT in the backend's own placeholder style, as sea-query writes it.
fn insert(backend: sea_orm::DbBackend, table: &str, id: i64, label: &str) -> Statement {
    let sql = match backend {
        sea_orm::DbBackend::Postgres => format!("INSERT INTO {table} (id, label) VALUES ($1, $2)"),
        _ => format!("INSERT INTO {table} (id, label) VALUES (?, ?)"),
    };
    Statement::from_sql_and_values(backend, sql, [Value::from(id), Value::from(label)])
}

async fn rows(db: &Database, table: &str) -> Vec<(i64, String)> {
    let backend = db.backend();
    let found = db
        .conn
        .query_all_raw(Statement::from_string(
            backend,
            format!("SELECT id, label FROM {table} ORDER BY id"),
        ))
        .await
        .expect("read");
    found
        .iter()
        .map(|row| {
            (
                row.try_get("", "id").expect("id"),
                row.try_get("", "label").expect("label"),
            )
        })
        .collect()
}

db_test!(writes_run_together_land_whole_or_not_at_all, together_on);
async fn together_on(backend: Backend) {
    let Some(database) = TestDatabase::create(backend).await else {
        return;
    };
    let db = Database::connect(&database.url, 2).await.expect("connects");
    let dialect = db.backend();
    for table in ["left_side", "right_side"] {
        db.conn
            .execute_raw(Statement::from_string(
                dialect,
                format!("CREATE TABLE {table} (id BIGINT PRIMARY KEY, label TEXT NOT NULL)"),
            ))
            .await
            .expect("create table");
    }

    let txn = db.begin_write().await.expect("begin");
    execute_together(
        &*txn,
        vec![
            insert(dialect, "left_side", 1, "one"),
            insert(dialect, "right_side", 2, "two"),
            insert(dialect, "left_side", 3, "three"),
        ],
    )
    .await
    .expect("joined writes");
    txn.commit().await.expect("commit");
    assert_eq!(
        rows(&db, "left_side").await,
        [(1, "one".to_owned()), (3, "three".to_owned())]
    );
    assert_eq!(rows(&db, "right_side").await, [(2, "two".to_owned())]);

    // The last part repeats a key: the call fails and nothing of it stays.
    let txn = db.begin_write().await.expect("begin");
    let failed = execute_together(
        &*txn,
        vec![
            insert(dialect, "right_side", 4, "four"),
            insert(dialect, "left_side", 1, "again"),
        ],
    )
    .await;
    assert!(failed.is_err(), "a duplicate key fails the call");
    txn.rollback().await.expect("rollback");
    assert_eq!(rows(&db, "right_side").await, [(2, "two".to_owned())]);
}
