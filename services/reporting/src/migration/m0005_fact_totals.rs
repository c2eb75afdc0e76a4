//! Daily totals without the owner and company dimensions: `rm_facts` keeps
//! every dimension, and with an owner and a company on every deal it grew to
//! about a row per closed deal (825,825 rows for 849,488 in the benchmark),
//! so a year's KPI read as many rows as the sources hold. The totals have a
//! few rows per fact and day; they start as the sums of what `rm_facts`
//! already holds. Replicas of an older version must be stopped before it
//! runs (or the read model rebuilt after): what they add to `rm_facts`
//! afterwards would never reach the totals.

use sea_orm_migration::{prelude::*, schema::*};

use super::m0001_read_model::scoped;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden, Clone, Copy)]
enum RmFactTotals {
    Table,
    Fact,
    Day,
    Pipeline,
    Campaign,
    Queue,
    Channel,
    Grp,
    CurrencyCode,
    Count,
    Units,
    Nanos,
    Measure,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(scoped(
                RmFactTotals::Table,
                &[
                    &RmFactTotals::Fact,
                    &RmFactTotals::Day,
                    &RmFactTotals::Pipeline,
                    &RmFactTotals::Campaign,
                    &RmFactTotals::Queue,
                    &RmFactTotals::Channel,
                    &RmFactTotals::Grp,
                    &RmFactTotals::CurrencyCode,
                ],
                vec![
                    big_integer(RmFactTotals::Count),
                    big_integer(RmFactTotals::Units),
                    big_integer(RmFactTotals::Nanos),
                    double(RmFactTotals::Measure),
                ],
            ))
            .await?;
        manager
            .get_connection()
            .execute_unprepared(
                "INSERT INTO rm_fact_totals (generation, tenant, fact, day, pipeline, campaign, queue, \
                 channel, grp, currency_code, count, units, nanos, measure) \
                 SELECT generation, tenant, fact, day, pipeline, campaign, queue, channel, grp, \
                 currency_code, SUM(count), SUM(units), SUM(nanos), SUM(measure) FROM rm_facts \
                 GROUP BY generation, tenant, fact, day, pipeline, campaign, queue, channel, grp, \
                 currency_code",
            )
            .await?;
        Ok(())
    }
}
