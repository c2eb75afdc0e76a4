//! Forecast snapshots: each day, every tenant's open deals weighted by their
//! stage's probability, summed per expected close day and currency. Kept
//! outside the generations (time cannot be replayed).

use chrono::NaiveDate;
use sea_orm::{ConnectionTrait, DbErr};

use super::{Store, sql::Sql};
use crate::domain::{kpi::Row, period::day_key};

impl Store {
    /// Takes (or retakes) `day`'s snapshot of every tenant from the live
    /// generation; returns the rows written.
    pub async fn take_forecast_snapshot(&self, day: NaiveDate) -> Result<u64, DbErr> {
        let txn = self.base.db.begin_write().await?;
        let backend = txn.get_database_backend();
        let generation = self.model_state(&*txn).await?.generation;
        let today = day_key(day);
        txn.execute_raw(
            Sql::new("DELETE FROM forecast_snapshots WHERE snapshot_day = ")
                .bind("", today.clone())
                .build(backend),
        )
        .await?;
        // A marker row per tenant says a snapshot was taken, even of nothing.
        let markers = Sql::new(
            "INSERT INTO forecast_snapshots (tenant, snapshot_day, expected_close_day, currency_code, weighted) \
             SELECT DISTINCT tenant, ",
        )
        .bind("", today.clone())
        .push(", '', '', 0 FROM rm_deals")
        .bind(" WHERE generation = ", generation);
        let weighted = Sql::new(
            "INSERT INTO forecast_snapshots (tenant, snapshot_day, expected_close_day, currency_code, weighted) \
             SELECT d.tenant, ",
        )
        .bind("", today.clone())
        .push(
            ", d.expected_close_day, d.currency_code, \
             SUM((d.units + d.nanos / 1000000000.0) * COALESCE(s.probability, 0)) FROM rm_deals d \
             LEFT JOIN rm_stages s ON s.generation = d.generation AND s.tenant = d.tenant AND s.stage = d.stage",
        )
        .bind(" WHERE d.generation = ", generation)
        .push(" AND d.state = 'open' AND d.deleted = ")
        .bind("", false)
        .bind(" AND d.expected_close_day >= ", today)
        .push(" AND d.currency_code <> '' GROUP BY d.tenant, d.expected_close_day, d.currency_code");
        let mut written = txn
            .execute_raw(markers.build(backend))
            .await?
            .rows_affected();
        written += txn
            .execute_raw(weighted.build(backend))
            .await?
            .rows_affected();
        txn.commit().await?;
        Ok(written)
    }

    /// The forecasts that stood on each of `starts` (the latest snapshot on
    /// or before it) for the days up to `to`: rows with the expected close
    /// day, the snapshot day as group, the currency and the weighted amount
    /// as measure, and a marker row (no day) per snapshot day found.
    pub async fn forecast_rows(
        &self,
        tenant: &str,
        starts: &[NaiveDate],
        to: NaiveDate,
    ) -> Result<Vec<Row>, DbErr> {
        let conn = &self.base.db.conn;
        let backend = conn.get_database_backend();
        let Some(first) = starts.iter().min() else {
            return Ok(Vec::new());
        };
        let latest = starts
            .iter()
            .max()
            .map_or_else(String::new, |d| day_key(*d));
        let days: Vec<String> = conn
            .query_all_raw(
                Sql::new("SELECT DISTINCT snapshot_day FROM forecast_snapshots")
                    .bind(" WHERE tenant = ", tenant.to_owned())
                    .bind(" AND snapshot_day <= ", latest)
                    .push(" ORDER BY snapshot_day")
                    .build(backend),
            )
            .await?
            .iter()
            .map(|r| r.try_get_by_index::<String>(0))
            .collect::<Result<_, _>>()?;
        let mut chosen: Vec<String> = starts
            .iter()
            .filter_map(|start| {
                let start = day_key(*start);
                days.iter().rev().find(|d| **d <= start).cloned()
            })
            .collect();
        chosen.sort();
        chosen.dedup();
        if chosen.is_empty() {
            return Ok(Vec::new());
        }
        let mut rows: Vec<Row> = chosen
            .iter()
            .map(|d| Row {
                group: d.clone(),
                ..Row::default()
            })
            .collect();
        let found = conn
            .query_all_raw(
                Sql::new("SELECT snapshot_day, expected_close_day, currency_code, weighted FROM forecast_snapshots")
                    .bind(" WHERE tenant = ", tenant.to_owned())
                    .and_in("snapshot_day", &chosen)
                    .bind(" AND expected_close_day >= ", day_key(*first))
                    .bind(" AND expected_close_day <= ", day_key(to))
                    .build(backend),
            )
            .await?;
        for r in &found {
            let close: String = r.try_get_by_index(1)?;
            rows.push(Row {
                day: NaiveDate::parse_from_str(&close, "%Y-%m-%d").ok(),
                group: r.try_get_by_index(0)?,
                currency: r.try_get_by_index(2)?,
                count: 1,
                measure: r.try_get_by_index(3)?,
                ..Row::default()
            });
        }
        Ok(rows)
    }
}
