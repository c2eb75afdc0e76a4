//! Saved report definitions: the tenant's own data, not derived from feeds,
//! so outside the read model's generations.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Reports {
    Table,
    Id,
    Tenant,
    DisplayName,
    Description,
    Definition,
    Creator,
    CreateTime,
    UpdateTime,
    DeleteTime,
    Version,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Reports::Table)
                    .if_not_exists()
                    .col(string(Reports::Id).primary_key())
                    .col(string(Reports::Tenant))
                    .col(string(Reports::DisplayName))
                    .col(text(Reports::Description))
                    .col(text(Reports::Definition))
                    .col(string(Reports::Creator))
                    .col(timestamp_with_time_zone(Reports::CreateTime))
                    .col(timestamp_with_time_zone(Reports::UpdateTime))
                    .col(timestamp_with_time_zone_null(Reports::DeleteTime))
                    .col(big_integer(Reports::Version))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("reports_tenant_create_time")
                    .table(Reports::Table)
                    .col(Reports::Tenant)
                    .col(Reports::CreateTime)
                    .if_not_exists()
                    .to_owned(),
            )
            .await
    }
}
