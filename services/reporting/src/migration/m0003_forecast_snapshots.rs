//! Forecast snapshots: the weighted pipeline by expected close day, as it
//! stood each day, so forecast accuracy compares a period's forecast as of
//! its first day with what closed. Snapshots observe time passing, which
//! no replay can reproduce, so they are kept outside the generations.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum RmDeals {
    Table,
    ExpectedCloseDay,
}

#[derive(DeriveIden)]
enum RmStages {
    Table,
    Probability,
}

#[derive(DeriveIden)]
enum ForecastSnapshots {
    Table,
    Tenant,
    SnapshotDay,
    ExpectedCloseDay,
    CurrencyCode,
    Weighted,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(RmDeals::Table)
                    .add_column(string(RmDeals::ExpectedCloseDay).default(""))
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(RmStages::Table)
                    .add_column(double(RmStages::Probability).default(0.0))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(ForecastSnapshots::Table)
                    .if_not_exists()
                    .col(string(ForecastSnapshots::Tenant))
                    .col(string(ForecastSnapshots::SnapshotDay))
                    .col(string(ForecastSnapshots::ExpectedCloseDay))
                    .col(string(ForecastSnapshots::CurrencyCode))
                    .col(double(ForecastSnapshots::Weighted))
                    .primary_key(
                        Index::create()
                            .col(ForecastSnapshots::Tenant)
                            .col(ForecastSnapshots::SnapshotDay)
                            .col(ForecastSnapshots::ExpectedCloseDay)
                            .col(ForecastSnapshots::CurrencyCode),
                    )
                    .to_owned(),
            )
            .await
    }
}
