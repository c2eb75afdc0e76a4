//! `GetForecast` for this calendar quarter over 100,000 deals, beside the
//! same forecast by hand: one grouped statement over the same table in the
//! same run.
//!
//! Sales runs as a service (`crm_testkit::ServiceProcess`) on a fresh
//! database; three pipelines are made through its API (four open stages at
//! 0.1 / 0.3 / 0.6 / 0.8, won, lost), then the deals go straight into its
//! `opportunities` table by multi-row INSERTs, stored as sales stores them:
//! 40% open (expected to close from 90 days ago to 270 days ahead), 35% won
//! and 25% lost (closed over the last year), in EUR, USD and GBP, owned by 50
//! owners, generated from their index (the same deals every run of a day).
//! PostgreSQL's planner statistics are refreshed after the load.
//!
//! Timed, the two paths taking turns, after a warm-up: the whole team's
//! forecast and one owner's (1/50 of the deals). "By hand" is one statement
//! grouping the period's won and open deals by currency, state and stage,
//! summing their amounts' number columns, and the stage
//! probabilities (known to the caller) applied to the few grouped rows.
//! Both answers must agree (counts and sums exactly; the weighted pipeline
//! within a nanosecond per deal: each side rounds its group's share).

use std::{
    collections::BTreeMap,
    time::{Duration, Instant},
};

use chrono::{DateTime, Datelike, Days, Months, NaiveDate, Utc};
use crm_proto::{
    common::Money,
    sales::{
        CreatePipelineRequest, Forecast, GetForecastRequest, Pipeline, Stage, StageKind,
        sales_service_client::SalesServiceClient,
    },
};
use crm_shared::{convert::to_timestamp, db::Database};
use crm_testkit::{
    ADMIN, Authed, Backend, ServiceProcess, TENANT, TestDatabase, bearer_for,
    bench::{mix, percentile, record},
    channel_to, service, settings,
};
use sea_orm::{
    ConnectionTrait, DbBackend, Statement, Value,
    sea_query::{Alias, Query},
};

/// Deals in the full run, and in the smoke pass.
const FULL_DEALS: u64 = 100_000;
const SMOKE_DEALS: u64 = 2_000;
/// Rows per multi-row INSERT (23 columns each).
const ROWS_PER_INSERT: u64 = 500;
/// Timed calls of each path, after the warm-up.
const RUNS: usize = 30;
const WARM_UP: usize = 3;
const OWNERS: u64 = 50;
/// The owner of the one-owner forecast.
const ONE_OWNER: &str = "rep-07";
const CURRENCIES: [&str; 3] = ["EUR", "USD", "GBP"];
/// Every pipeline's open stages and their probabilities.
const OPEN_STAGES: [(&str, f64); 4] = [
    ("Qualify", 0.1),
    ("Propose", 0.3),
    ("Negotiate", 0.6),
    ("Commit", 0.8),
];
/// Open deals at or above this probability count towards the commit (as
/// `crm_sales`' forecast counts them).
const COMMIT_PROBABILITY: f64 = 0.7;
const NANOS: i128 = 1_000_000_000;

const COLUMNS: [&str; 23] = [
    "id",
    "tenant",
    "display_name",
    "amount",
    "amount_units",
    "amount_nanos",
    "currency_code",
    "pipeline",
    "stage",
    "state",
    "expected_close_date",
    "owner",
    "contact",
    "company",
    "line_items",
    "close_reason",
    "close_time",
    "stage_history",
    "source_lead",
    "create_time",
    "update_time",
    "delete_time",
    "version",
];

/// A pipeline as the API made it: its name and its stages' names.
struct PipelineStages {
    name: String,
    open: Vec<(String, f64)>,
    won: String,
    lost: String,
}

/// Makes three pipelines through the API.
async fn make_pipelines(sales: &mut SalesServiceClient<Authed>) -> Vec<PipelineStages> {
    let stage = |display_name: &str, probability: f64, kind: StageKind| Stage {
        display_name: display_name.into(),
        probability,
        kind: kind as i32,
        ..Default::default()
    };
    let mut pipelines = Vec::new();
    for n in 1..=3 {
        let mut stages: Vec<Stage> = OPEN_STAGES
            .iter()
            .map(|(name, p)| stage(name, *p, StageKind::Open))
            .collect();
        stages.push(stage("Won", 1.0, StageKind::Won));
        stages.push(stage("Lost", 0.0, StageKind::Lost));
        let made = sales
            .create_pipeline(CreatePipelineRequest {
                pipeline: Some(Pipeline {
                    display_name: format!("Pipeline {n}"),
                    stages,
                    ..Default::default()
                }),
                request_id: String::new(),
            })
            .await
            .expect("CreatePipeline")
            .into_inner();
        let names: Vec<String> = made.stages.iter().map(|s| s.name.clone()).collect();
        pipelines.push(PipelineStages {
            name: made.name,
            open: names[..4]
                .iter()
                .cloned()
                .zip(OPEN_STAGES.iter().map(|(_, p)| *p))
                .collect(),
            won: names[4].clone(),
            lost: names[5].clone(),
        });
    }
    pipelines
}

/// Deal `i`'s row, in [`COLUMNS`]' order.
fn deal_row(i: u64, now: DateTime<Utc>, pipelines: &[PipelineStages]) -> Vec<Value> {
    let h = mix(i);
    let pipeline = &pipelines[(h >> 20) as usize % pipelines.len()];
    let currency = match (h >> 8) % 100 {
        0..50 => CURRENCIES[0],
        50..85 => CURRENCIES[1],
        _ => CURRENCIES[2],
    };
    let units = 500 + (mix(i ^ 0xA) % 99_500) as i64;
    let nanos: i32 = if (h >> 16).is_multiple_of(4) {
        500_000_000
    } else {
        0
    };
    let owner = format!("rep-{:02}", (h >> 32) % OWNERS);
    let seconds =
        |salt: u64, days: u64| chrono::Duration::seconds((mix(i ^ salt) % (days * 86_400)) as i64);
    let (state, stage, expected, create_time, close_time) = match h % 100 {
        0..40 => {
            let stage = pipeline.open[(h >> 24) as usize % 4].0.clone();
            let expected = now.date_naive() - Days::new(90) + Days::new(mix(i ^ 0xE) % 360);
            ("OPEN", stage, expected, now - seconds(0xD, 180), None)
        }
        roll => {
            let (state, stage) = if roll < 75 {
                ("WON", pipeline.won.clone())
            } else {
                ("LOST", pipeline.lost.clone())
            };
            let closed = now - seconds(0xC, 365);
            let created = closed - seconds(0xD, 120) - chrono::Duration::hours(1);
            (state, stage, closed.date_naive(), created, Some(closed))
        }
    };
    let change = |stage: &str, at: DateTime<Utc>| serde_json::json!({"stage": stage, "changed_by": owner, "change_time": at});
    let mut history = vec![change(&pipeline.open[0].0, create_time)];
    if let Some(closed) = close_time {
        history.push(change(&stage, closed));
    }
    vec![
        uuid::Uuid::from_u64_pair(0x0190_0000_0000_7000, i)
            .to_string()
            .into(),
        TENANT.into(),
        format!("Deal {i}").into(),
        serde_json::json!({"currency_code": currency, "units": units, "nanos": nanos})
            .to_string()
            .into(),
        units.into(),
        nanos.into(),
        currency.into(),
        pipeline.name.clone().into(),
        stage.into(),
        state.into(),
        expected.format("%Y-%m-%d").to_string().into(),
        owner.clone().into(),
        String::new().into(),
        String::new().into(),
        "[]".into(),
        String::new().into(),
        close_time.into(),
        serde_json::Value::Array(history).to_string().into(),
        String::new().into(),
        create_time.into(),
        close_time.unwrap_or(create_time).into(),
        Option::<DateTime<Utc>>::None.into(),
        1i64.into(),
    ]
}

/// Inserts `deals` deals into sales' table, then refreshes PostgreSQL's
/// statistics (as autovacuum would).
async fn load(db: &Database, deals: u64, pipelines: &[PipelineStages]) {
    let now = Utc::now();
    let mut next = 0;
    while next < deals {
        let txn = db.begin_write().await.expect("a transaction");
        for _ in 0..10 {
            if next >= deals {
                break;
            }
            let mut insert = Query::insert();
            insert
                .into_table(Alias::new("opportunities"))
                .columns(COLUMNS.map(Alias::new));
            for i in next..deals.min(next + ROWS_PER_INSERT) {
                insert.values_panic(deal_row(i, now, pipelines).into_iter().map(Into::into));
            }
            txn.execute_raw(db.backend().build(&insert))
                .await
                .expect("an INSERT into opportunities");
            next = deals.min(next + ROWS_PER_INSERT);
        }
        txn.commit().await.expect("a commit");
    }
    if db.backend() == DbBackend::Postgres {
        db.conn
            .execute_unprepared("ANALYZE opportunities")
            .await
            .expect("ANALYZE");
    }
}

/// One currency's line, in nanos.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Line {
    won_count: i64,
    open_count: i64,
    closed_won: i128,
    weighted: i128,
    commit: i128,
    best_case: i128,
}

fn nanos(money: Option<&Money>) -> i128 {
    money.map_or(0, |m| i128::from(m.units) * NANOS + i128::from(m.nanos))
}

/// The service's answer, per currency.
fn lines_of(forecast: &Forecast) -> BTreeMap<String, Line> {
    forecast
        .lines
        .iter()
        .map(|l| {
            let line = Line {
                won_count: l.won_count.into(),
                open_count: l.open_count.into(),
                closed_won: nanos(l.closed_won.as_ref()),
                weighted: nanos(l.weighted_pipeline.as_ref()),
                commit: nanos(l.commit.as_ref()),
                best_case: nanos(l.best_case.as_ref()),
            };
            (l.currency_code.clone(), line)
        })
        .collect()
}

/// The forecast by hand: one grouped statement, then the stage
/// probabilities applied to its rows.
struct ByHand {
    sql: &'static str,
    probabilities: BTreeMap<String, f64>,
}

impl ByHand {
    fn new(pipelines: &[PipelineStages]) -> Self {
        // Sums of the amount's number columns (as sales stores them beside
        // its JSON); PostgreSQL sums bigints as numeric.
        let sql = "SELECT currency_code, state, stage, COUNT(*), \
             CAST(SUM(amount_units) AS BIGINT), CAST(SUM(amount_nanos) AS BIGINT) \
             FROM opportunities WHERE tenant = $1 AND delete_time IS NULL \
             AND ((state = 'WON' AND close_time >= $2 AND close_time < $3) \
               OR (state = 'OPEN' AND expected_close_date >= $4 AND expected_close_date < $5)) \
             AND ($6 = '' OR owner = $6) GROUP BY 1, 2, 3";
        let probabilities = pipelines
            .iter()
            .flat_map(|p| p.open.iter().cloned())
            .collect();
        Self { sql, probabilities }
    }

    async fn forecast(
        &self,
        db: &Database,
        (start, end): (DateTime<Utc>, DateTime<Utc>),
        owner: &str,
    ) -> BTreeMap<String, Line> {
        let day = |at: DateTime<Utc>| at.format("%Y-%m-%d").to_string();
        let statement = Statement::from_sql_and_values(
            db.backend(),
            self.sql,
            [
                TENANT.into(),
                start.into(),
                end.into(),
                day(start).into(),
                day(end).into(),
                owner.into(),
            ],
        );
        let mut lines: BTreeMap<String, Line> = BTreeMap::new();
        let mut open: BTreeMap<String, i128> = BTreeMap::new();
        let mut committed: BTreeMap<String, i128> = BTreeMap::new();
        for row in db
            .conn
            .query_all_raw(statement)
            .await
            .expect("the forecast by hand")
        {
            let currency: String = row.try_get_by_index(0).expect("a currency");
            let state: String = row.try_get_by_index(1).expect("a state");
            let stage: String = row.try_get_by_index(2).expect("a stage");
            let count: i64 = row.try_get_by_index(3).expect("a count");
            let units: i64 = row.try_get_by_index(4).expect("units");
            let nanos: i64 = row.try_get_by_index(5).expect("nanos");
            let amount = i128::from(units) * NANOS + i128::from(nanos);
            let line = lines.entry(currency.clone()).or_default();
            if state == "WON" {
                line.won_count += count;
                line.closed_won += amount;
                continue;
            }
            let probability = self.probabilities.get(&stage).copied().unwrap_or(0.0);
            line.open_count += count;
            line.weighted += (amount as f64 * probability).round() as i128;
            *open.entry(currency.clone()).or_default() += amount;
            if probability >= COMMIT_PROBABILITY {
                *committed.entry(currency).or_default() += amount;
            }
        }
        for (currency, line) in &mut lines {
            line.commit = line.closed_won + committed.get(currency).copied().unwrap_or(0);
            line.best_case = line.closed_won + open.get(currency).copied().unwrap_or(0);
        }
        lines
    }
}

/// Exactly equal, but for the weighted pipeline: each side rounds its
/// group's share (sales in floating point), so it may differ by a few nanos.
fn assert_agree(service: &BTreeMap<String, Line>, by_hand: &BTreeMap<String, Line>) {
    assert_eq!(
        service.keys().collect::<Vec<_>>(),
        by_hand.keys().collect::<Vec<_>>(),
        "the same currencies"
    );
    for (currency, ours) in service {
        let theirs = by_hand[currency];
        assert!(
            (ours.weighted - theirs.weighted).abs() <= i128::from(ours.open_count),
            "{currency}: weighted {} vs {} ({ours:?} vs {theirs:?})",
            ours.weighted,
            theirs.weighted
        );
        let exact = Line {
            weighted: 0,
            ..*ours
        };
        assert_eq!(
            exact,
            Line {
                weighted: 0,
                ..theirs
            },
            "{currency}: the forecast and the same by hand"
        );
    }
}

/// This calendar quarter: its first instant and the next quarter's.
fn this_quarter() -> (DateTime<Utc>, DateTime<Utc>) {
    let today = Utc::now().date_naive();
    let first_month = (today.month0() / 3) * 3 + 1;
    let start = NaiveDate::from_ymd_opt(today.year(), first_month, 1).expect("a quarter's start");
    let end = start + Months::new(3);
    let at = |d: NaiveDate| d.and_hms_opt(0, 0, 0).expect("midnight").and_utc();
    (at(start), at(end))
}

/// One measured path.
struct Row {
    backend: &'static str,
    scope: &'static str,
    path: &'static str,
    deals_read: i64,
    latencies: Vec<Duration>,
}

/// Runs this part: in full, or (`full` false) a smoke pass on SQLite.
pub async fn run(full: bool) {
    let (deals, backends): (u64, &[Backend]) = if full {
        (FULL_DEALS, &[Backend::Postgres, Backend::Sqlite])
    } else {
        (SMOKE_DEALS, &[Backend::Sqlite])
    };
    let mut rows = Vec::new();
    for &backend in backends {
        let Some(db) = TestDatabase::create(backend).await else {
            eprintln!("{backend:?} is not available: skipped");
            continue;
        };
        let backend_name = match backend {
            Backend::Postgres => "PostgreSQL",
            Backend::Sqlite => "SQLite",
        };
        let mut service_settings = settings("sales", &db.url);
        // Nobody listens there: the contacts feed's consumer just retries.
        service_settings
            .peers
            .insert("contacts".into(), "http://127.0.0.1:9".into());
        let sales = ServiceProcess::start(service(crm_sales::build), service_settings).await;
        let mut client =
            SalesServiceClient::with_interceptor(channel_to(sales.addr), bearer_for(TENANT, ADMIN));
        let pipelines = make_pipelines(&mut client).await;
        let raw = Database::connect(&db.url, 2)
            .await
            .expect("a connection for the load and the forecast by hand");
        let loading = Instant::now();
        load(&raw, deals, &pipelines).await;
        eprintln!(
            "{backend_name}: {deals} deals loaded in {:.1} s",
            loading.elapsed().as_secs_f64()
        );
        let by_hand = ByHand::new(&pipelines);
        let period = this_quarter();
        for (scope, owner) in [("whole team", ""), ("one owner", ONE_OWNER)] {
            let request = GetForecastRequest {
                period_start: Some(to_timestamp(period.0)),
                period_end: Some(to_timestamp(period.1)),
                owner: owner.into(),
                team: vec![],
            };
            let mut call = async || -> BTreeMap<String, Line> {
                let forecast = client
                    .get_forecast(request.clone())
                    .await
                    .expect("GetForecast")
                    .into_inner();
                lines_of(&forecast)
            };
            let expected = by_hand.forecast(&raw, period, owner).await;
            assert_agree(&call().await, &expected);
            let deals_read: i64 = expected.values().map(|l| l.won_count + l.open_count).sum();
            for _ in 0..WARM_UP {
                call().await;
                by_hand.forecast(&raw, period, owner).await;
            }
            let (mut service_times, mut raw_times) = (Vec::new(), Vec::new());
            for _ in 0..RUNS {
                let began = Instant::now();
                call().await;
                service_times.push(began.elapsed());
                let began = Instant::now();
                by_hand.forecast(&raw, period, owner).await;
                raw_times.push(began.elapsed());
            }
            for (path, latencies) in [
                ("GetForecast (gRPC)", service_times),
                ("by hand: one grouped statement", raw_times),
            ] {
                rows.push(Row {
                    backend: backend_name,
                    scope,
                    path,
                    deals_read,
                    latencies,
                });
            }
        }
        drop(sales);
    }
    print_table(deals, &mut rows);
}

fn print_table(deals: u64, rows: &mut [Row]) {
    println!(
        "GetForecast for this quarter over {deals} deals, beside the same by hand ({RUNS} calls each)"
    );
    println!();
    println!(
        "| backend | deals | forecast of | path | deals in it | p50 ms | p99 ms | p50 vs by hand |"
    );
    println!("|---|---:|---|---|---:|---:|---:|---:|");
    // Each service row is followed by its by-hand row.
    for pair in rows.chunks_mut(2) {
        let [service, raw] = pair else { continue };
        let by_hand_p50 = percentile(&mut raw.latencies, 0.5);
        for row in [service, raw] {
            let p50 = percentile(&mut row.latencies, 0.5);
            let p99 = percentile(&mut row.latencies, 0.99);
            let ratio = p50 / by_hand_p50;
            println!(
                "| {} | {deals} | {} | {} | {} | {p50:.1} | {p99:.1} | {ratio:.2}x |",
                row.backend, row.scope, row.path, row.deals_read
            );
            record(
                "sales_forecast",
                serde_json::json!({
                    "backend": row.backend, "deals": deals, "scope": row.scope,
                    "path": row.path, "deals_in_forecast": row.deals_read,
                    "p50_ms": p50, "p99_ms": p99, "p50_vs_by_hand": ratio,
                }),
            );
        }
    }
}
