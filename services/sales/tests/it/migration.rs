//! Schema steps that change stored data: they must carry a running suite's
//! rows over, on both backends, and rows an older replica writes during a
//! rolling upgrade must still count.

use chrono::{TimeZone, Utc};
use crm_proto::sales::{GetForecastRequest, sales_service_client::SalesServiceClient};
use crm_shared::{convert::to_timestamp, db::Database};
use crm_testkit::{
    ADMIN, Backend, ServiceProcess, TENANT, TestDatabase, bearer_for, channel_to, service, settings,
};
use sea_orm::{ConnectionTrait, Statement};
use sea_orm_migration::MigratorTrait;

/// Inserts an open deal expected on 2026-12-24 with the columns a replica
/// older than m0004 writes (`currency` empty: no amount).
async fn old_style_deal(db: &Database, id: &str, amount: &str, currency: &str) {
    let sql = format!(
        "INSERT INTO opportunities (id, tenant, display_name, amount, currency_code, pipeline, \
         stage, state, expected_close_date, owner, contact, company, line_items, close_reason, \
         close_time, stage_history, source_lead, create_time, update_time, delete_time, version) \
         VALUES ('{id}', '{TENANT}', 'Deal', '{amount}', '{currency}', 'pipelines/p', \
         'pipelines/p/stages/s', 'OPEN', '2026-12-24', 'ann', '', '', '[]', '', NULL, '[]', '', \
         CURRENT_TIMESTAMP, CURRENT_TIMESTAMP, NULL, 1)"
    );
    db.conn
        .execute_unprepared(&sql)
        .await
        .expect("an old-style row");
}

const EUR_1234_5: &str = r#"{"currency_code":"EUR","units":1234,"nanos":500000000}"#;

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
    old_style_deal(&db, "with", EUR_1234_5, "EUR").await;
    old_style_deal(&db, "without", "", "").await;
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

    // A deal an older replica writes after the step (its number columns
    // left at 0) still counts in the forecast, through its JSON.
    old_style_deal(
        &db,
        "late",
        r#"{"currency_code":"EUR","units":100,"nanos":0}"#,
        "EUR",
    )
    .await;
    let mut service_settings = settings("sales", &test_db.url);
    service_settings
        .peers
        .insert("contacts".into(), "http://127.0.0.1:9".into());
    let sales = ServiceProcess::start(service(crm_sales::build), service_settings).await;
    let mut client =
        SalesServiceClient::with_interceptor(channel_to(sales.addr), bearer_for(TENANT, ADMIN));
    let forecast = client
        .get_forecast(GetForecastRequest {
            period_start: Some(to_timestamp(
                Utc.with_ymd_and_hms(2026, 12, 1, 0, 0, 0).unwrap(),
            )),
            period_end: Some(to_timestamp(
                Utc.with_ymd_and_hms(2027, 1, 1, 0, 0, 0).unwrap(),
            )),
            owner: String::new(),
            team: vec![],
        })
        .await
        .expect("GetForecast")
        .into_inner();
    assert_eq!(forecast.lines.len(), 1, "{forecast:?}");
    let eur = &forecast.lines[0];
    let best_case = eur.best_case.clone().expect("a best case");
    assert_eq!(
        (eur.open_count, best_case.units, best_case.nanos),
        (2, 1334, 500_000_000),
        "the backfilled deal and the late one; the one without an amount counts nowhere"
    );
}
