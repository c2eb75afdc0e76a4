//! PostgreSQL connections get TCP_NODELAY (sqlx 0.9.0 no longer sets it;
//! without it a statement of more than one segment waits ~40 ms for the
//! server's delayed ACK), and run without JIT compilation.

use crm_shared::db::{Database, nodelay};
use crm_testkit::{Backend, TestDatabase};
use sea_orm::{ConnectionTrait, Statement};

#[tokio::test]
async fn every_pooled_postgres_connection_has_nodelay() {
    let Some(database) = TestDatabase::create(Backend::Postgres).await else {
        return;
    };
    let db = Database::connect(&database.url, 3).await.expect("connects");
    // Three transactions open at once hold three different connections.
    let mut held = Vec::new();
    for _ in 0..3 {
        let txn = db.begin_write().await.expect("begin");
        let row = txn
            .query_one_raw(Statement::from_string(
                txn.get_database_backend(),
                "SELECT inet_client_port() AS port",
            ))
            .await
            .expect("query")
            .expect("a row");
        let port: i32 = row.try_get("", "port").expect("the client port");
        let port = u16::try_from(port).expect("a port");
        assert_eq!(
            nodelay::is_set_on_local_port(port),
            Some(true),
            "the connection from port {port} has TCP_NODELAY"
        );
        held.push(txn);
    }
}

#[tokio::test]
async fn postgres_connections_run_without_jit() {
    let Some(database) = TestDatabase::create(Backend::Postgres).await else {
        return;
    };
    let db = Database::connect(&database.url, 2).await.expect("connects");
    let row = db
        .conn
        .query_one_raw(Statement::from_string(
            sea_orm::DbBackend::Postgres,
            "SELECT current_setting('jit') AS jit",
        ))
        .await
        .expect("query")
        .expect("a row");
    let jit: String = row.try_get("", "jit").expect("jit");
    assert_eq!(jit, "off", "the server's default (on) is overridden");
}
