//! Forecasts sum amounts in the database instead of reading every deal of
//! the period: an opportunity's amount gets number columns beside its JSON
//! (filled from it here), and the forecast's two filters, won in a period
//! and open expected in it, get an index each. Deals an older replica
//! writes while a rolling upgrade runs get 0 in both columns; the forecast
//! reads their JSON (`store::opportunities::amount_sum`).

use sea_orm_migration::{prelude::*, schema::*, sea_orm::DbBackend};

/// Adds `opportunities.amount_units` and `amount_nanos`, and the indexes.
#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Opportunities {
    Table,
    Tenant,
    State,
    CloseTime,
    ExpectedCloseDate,
    AmountUnits,
    AmountNanos,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // SQLite adds one column per ALTER TABLE.
        for column in [
            big_integer(Opportunities::AmountUnits).default(0),
            integer(Opportunities::AmountNanos).default(0),
        ] {
            manager
                .alter_table(
                    Table::alter()
                        .table(Opportunities::Table)
                        .add_column(column)
                        .to_owned(),
                )
                .await?;
        }
        let backfill = match manager.get_database_backend() {
            DbBackend::Postgres => {
                "UPDATE opportunities SET \
                 amount_units = COALESCE((amount::jsonb ->> 'units')::bigint, 0), \
                 amount_nanos = COALESCE((amount::jsonb ->> 'nanos')::integer, 0) \
                 WHERE amount <> ''"
            }
            _ => {
                "UPDATE opportunities SET \
                 amount_units = COALESCE(CAST(json_extract(amount, '$.units') AS INTEGER), 0), \
                 amount_nanos = COALESCE(CAST(json_extract(amount, '$.nanos') AS INTEGER), 0) \
                 WHERE amount <> ''"
            }
        };
        manager
            .get_connection()
            .execute_unprepared(backfill)
            .await?;
        for (name, column) in [
            (
                "opportunities_tenant_state_close_time",
                Opportunities::CloseTime,
            ),
            (
                "opportunities_tenant_state_expected_close_date",
                Opportunities::ExpectedCloseDate,
            ),
        ] {
            manager
                .create_index(
                    Index::create()
                        .name(name)
                        .table(Opportunities::Table)
                        .col(Opportunities::Tenant)
                        .col(Opportunities::State)
                        .col(column)
                        .if_not_exists()
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }
}
