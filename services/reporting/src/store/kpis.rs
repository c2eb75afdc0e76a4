//! The rows KPIs are computed from: sums per day out of the daily
//! aggregates (the totals unless an owner or company filter asks for the
//! detailed table), and the per-resource rows percentiles and customer counts
//! need. One statement per source, whatever the number of events.

use chrono::NaiveDate;
use sea_orm::{ConnectionTrait, DbErr, QueryResult};

use super::{Scope, Store, sql::Sql};
use crate::domain::{
    kpi::{Filter as KpiFilter, Row, Source},
    period::day_key,
};

/// Narrows statements by a filter's dimensions.
trait Narrow {
    fn narrow(&self, sql: Sql) -> Sql;
    fn narrow_deals(&self, sql: Sql) -> Sql;
    fn narrow_tickets(&self, sql: Sql) -> Sql;
}

impl Narrow for KpiFilter {
    /// Narrows `sql` by every dimension set (the caller has checked the
    /// KPI accepts them; the columns have the same names everywhere).
    fn narrow(&self, sql: Sql) -> Sql {
        sql.and_in("owner", &self.owners)
            .and_eq("pipeline", &self.pipeline)
            .and_eq("campaign", &self.campaign)
            .and_eq("queue", &self.queue)
            .and_eq("channel", &self.channel)
            .and_eq("company", &self.company)
    }

    /// Narrows only by the dimensions `table` has.
    fn narrow_deals(&self, sql: Sql) -> Sql {
        sql.and_in("owner", &self.owners)
            .and_eq("pipeline", &self.pipeline)
            .and_eq("campaign", &self.campaign)
            .and_eq("company", &self.company)
    }

    fn narrow_tickets(&self, sql: Sql) -> Sql {
        sql.and_in("owner", &self.owners)
            .and_eq("queue", &self.queue)
            .and_eq("channel", &self.channel)
            .and_eq("company", &self.company)
    }
}

/// The earliest day a running total starts from.
const BEGINNING: &str = "0000-01-01";

fn day_of(row: &QueryResult, index: usize) -> Result<Option<NaiveDate>, DbErr> {
    let text: String = row.try_get_by_index(index)?;
    Ok(NaiveDate::parse_from_str(&text, "%Y-%m-%d").ok())
}

impl Store {
    /// The rows of `source` for the days from `from` (None: the beginning)
    /// to `to`, narrowed by `filter`.
    pub async fn kpi_rows(
        &self,
        scope: &Scope,
        source: Source,
        from: Option<NaiveDate>,
        to: NaiveDate,
        filter: &KpiFilter,
    ) -> Result<Vec<Row>, DbErr> {
        let conn = &self.base.db.conn;
        let from = from.map_or_else(|| BEGINNING.to_owned(), day_key);
        let to = day_key(to);
        let scoped = |sql: &str| {
            Sql::new(sql)
                .bind(" WHERE generation = ", scope.generation)
                .bind(" AND tenant = ", scope.tenant.clone())
        };
        let rows = match source {
            Source::OpenPipeline => self.open_pipeline(scope, filter).await?,
            // Fetched by the forecast query, which needs the spans' first days.
            Source::Forecasts => Vec::new(),
            Source::Fact(fact) | Source::Attributed(fact) => {
                let mut sql = scoped(&format!(
                    "SELECT day, grp, currency_code, CAST(SUM(count) AS BIGINT), CAST(SUM(units) AS BIGINT), \
                     CAST(SUM(nanos) AS BIGINT), CAST(SUM(measure) AS DOUBLE PRECISION) FROM {}",
                    super::facts::table_for(filter)
                ))
                .bind(" AND fact = ", fact)
                .bind(" AND day >= ", from)
                .bind(" AND day <= ", to);
                if matches!(source, Source::Attributed(_)) {
                    sql = sql.push(" AND campaign <> ''");
                }
                let sql = filter.narrow(sql).push(" GROUP BY day, grp, currency_code");
                conn.query_all_raw(sql.build(conn.get_database_backend()))
                    .await?
                    .iter()
                    .map(|r| {
                        Ok(Row {
                            day: day_of(r, 0)?,
                            group: r.try_get_by_index(1)?,
                            currency: r.try_get_by_index(2)?,
                            count: r.try_get_by_index(3)?,
                            units: r.try_get_by_index(4)?,
                            nanos: r.try_get_by_index(5)?,
                            measure: r.try_get_by_index(6)?,
                        })
                    })
                    .collect::<Result<Vec<_>, DbErr>>()?
            }
            Source::FirstResponseSeconds | Source::ResolutionSeconds => {
                let (day, seconds) = if source == Source::FirstResponseSeconds {
                    ("first_response_day", "first_response_seconds")
                } else {
                    ("solve_day", "resolution_seconds")
                };
                let sql = scoped(&format!("SELECT {day}, {seconds} FROM rm_tickets"))
                    .bind(&format!(" AND {day} >= "), from)
                    .bind(&format!(" AND {day} <= "), to)
                    .push(&format!(" AND {seconds} IS NOT NULL"));
                let sql = filter.narrow_tickets(sql);
                conn.query_all_raw(sql.build(conn.get_database_backend()))
                    .await?
                    .iter()
                    .map(|r| {
                        let seconds: i64 = r.try_get_by_index(1)?;
                        Ok(Row {
                            day: day_of(r, 0)?,
                            count: 1,
                            measure: seconds as f64,
                            ..Row::default()
                        })
                    })
                    .collect::<Result<Vec<_>, DbErr>>()?
            }
            Source::WonCustomers => {
                let sql = scoped("SELECT DISTINCT close_day, customer FROM rm_deals")
                    .push(" AND state = 'won' AND deleted = ")
                    .bind("", false)
                    .bind(" AND close_day >= ", from)
                    .bind(" AND close_day <= ", to)
                    .push(" AND customer <> ''");
                let sql = filter.narrow_deals(sql);
                conn.query_all_raw(sql.build(conn.get_database_backend()))
                    .await?
                    .iter()
                    .map(|r| {
                        Ok(Row {
                            day: day_of(r, 0)?,
                            group: r.try_get_by_index(1)?,
                            count: 1,
                            ..Row::default()
                        })
                    })
                    .collect::<Result<Vec<_>, DbErr>>()?
            }
            Source::FirstWins => {
                let sql = scoped("SELECT first_win_day, customer FROM rm_customers")
                    .bind(" AND first_win_day >= ", from)
                    .bind(" AND first_win_day <= ", to);
                conn.query_all_raw(sql.build(conn.get_database_backend()))
                    .await?
                    .iter()
                    .map(|r| {
                        Ok(Row {
                            day: day_of(r, 0)?,
                            group: r.try_get_by_index(1)?,
                            count: 1,
                            ..Row::default()
                        })
                    })
                    .collect::<Result<Vec<_>, DbErr>>()?
            }
            Source::CampaignCosts => {
                let sql = scoped("SELECT start_day, currency_code, units, nanos FROM rm_campaigns")
                    .bind(" AND start_day >= ", from)
                    .bind(" AND start_day <= ", to)
                    .push(" AND currency_code <> ''")
                    .and_eq("campaign", &filter.campaign);
                conn.query_all_raw(sql.build(conn.get_database_backend()))
                    .await?
                    .iter()
                    .map(|r| {
                        let nanos: i32 = r.try_get_by_index(3)?;
                        Ok(Row {
                            day: day_of(r, 0)?,
                            currency: r.try_get_by_index(1)?,
                            count: 1,
                            units: r.try_get_by_index(2)?,
                            nanos: i64::from(nanos),
                            ..Row::default()
                        })
                    })
                    .collect::<Result<Vec<_>, DbErr>>()?
            }
        };
        Ok(rows)
    }

    /// The open pipeline now: amount per stage and currency.
    async fn open_pipeline(&self, scope: &Scope, filter: &KpiFilter) -> Result<Vec<Row>, DbErr> {
        let conn = &self.base.db.conn;
        let sql = Sql::new(
            "SELECT COALESCE(s.display_name, d.stage), d.currency_code, CAST(COUNT(*) AS BIGINT), \
             CAST(SUM(d.units) AS BIGINT), CAST(SUM(d.nanos) AS BIGINT) FROM rm_deals d \
             LEFT JOIN rm_stages s ON s.generation = d.generation AND s.tenant = d.tenant AND s.stage = d.stage",
        )
        .bind(" WHERE d.generation = ", scope.generation)
        .bind(" AND d.tenant = ", scope.tenant.clone())
        .push(" AND d.state = 'open' AND d.deleted = ")
        .bind("", false)
        .and_in("d.owner", &filter.owners)
        .and_eq("d.pipeline", &filter.pipeline)
        .and_eq("d.campaign", &filter.campaign)
        .and_eq("d.company", &filter.company)
        .push(" GROUP BY COALESCE(s.display_name, d.stage), d.currency_code");
        conn.query_all_raw(sql.build(conn.get_database_backend()))
            .await?
            .iter()
            .map(|r| {
                Ok(Row {
                    day: None,
                    group: r.try_get_by_index(0)?,
                    currency: r.try_get_by_index(1)?,
                    count: r.try_get_by_index(2)?,
                    units: r.try_get_by_index(3)?,
                    nanos: r.try_get_by_index(4)?,
                    measure: 0.0,
                })
            })
            .collect()
    }
}
