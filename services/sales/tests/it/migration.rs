//! Schema steps that change stored data: they must carry a running suite's
//! rows over, on both backends.

use crm_shared::db::Database;
use crm_testkit::{Backend, TestDatabase};
use sea_orm::{ConnectionTrait, Statement};
use sea_orm_migration::MigratorTrait;

/// Steps before m0004 (forecast sums): the kit's and sales' own.
const STEPS_BEFORE_FORECAST_SUMS: u32 = 10;

crm_testkit::db_test!(
    forecast_sums_are_filled_from_stored_amounts,
    forecast_sums_on
);
async fn forecast_sums_on(backend: Backend) {
    let Some(test_db) = TestDatabase::create(backend).await else {
        return;
    };
    let db = Database::connect(&test_db.url, 2).await.expect("connect");
    crm_sales::Migrator::up(&db.conn, Some(STEPS_BEFORE_FORECAST_SUMS))
        .await
        .expect("the steps before");
    // Two deals as the schema before stored them: one with an amount, one without.
    for (id, amount) in [
        (
            "with",
            r#"{"currency_code":"EUR","units":1234,"nanos":500000000}"#,
        ),
        ("without", ""),
    ] {
        let sql = format!(
            "INSERT INTO opportunities (id, tenant, display_name, amount, currency_code, pipeline, \
             stage, state, expected_close_date, owner, contact, company, line_items, close_reason, \
             close_time, stage_history, source_lead, create_time, update_time, delete_time, version) \
             VALUES ('{id}', 'acme', 'Deal', '{amount}', 'EUR', 'pipelines/p', 'pipelines/p/stages/s', \
             'OPEN', '2026-12-24', 'ann', '', '', '[]', '', NULL, '[]', '', \
             CURRENT_TIMESTAMP, CURRENT_TIMESTAMP, NULL, 1)"
        );
        db.conn.execute_unprepared(&sql).await.expect("an old row");
    }
    crm_sales::Migrator::up(&db.conn, None)
        .await
        .expect("the forecast sums step");
    let rows = db
        .conn
        .query_all_raw(Statement::from_string(
            db.backend(),
            "SELECT id, amount_units, amount_nanos FROM opportunities ORDER BY id",
        ))
        .await
        .expect("the filled columns");
    let filled: Vec<(String, i64, i64)> = rows
        .iter()
        .map(|row| {
            (
                row.try_get_by_index(0).expect("id"),
                row.try_get_by_index(1).expect("units"),
                row.try_get_by_index::<i32>(2).expect("nanos").into(),
            )
        })
        .collect();
    assert_eq!(
        filled,
        [
            ("with".to_owned(), 1234, 500_000_000),
            ("without".to_owned(), 0, 0)
        ]
    );
}
