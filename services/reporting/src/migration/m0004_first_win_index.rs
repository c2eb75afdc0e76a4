//! A customer's first won deal is found through (customer, close day): with
//! only the customer index and the close-day index, a planner without
//! statistics (SQLite before `ANALYZE`) chose the close-day one to serve the
//! order and read the tenant's deals one by one for every deal event.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum RmDeals {
    Table,
    Generation,
    Tenant,
    Customer,
    CloseDay,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_index(
                Index::create()
                    .name("rm_deals_customer_close_day")
                    .table(RmDeals::Table)
                    .col(RmDeals::Generation)
                    .col(RmDeals::Tenant)
                    .col(RmDeals::Customer)
                    .col(RmDeals::CloseDay)
                    .if_not_exists()
                    .to_owned(),
            )
            .await?;
        // Its prefix serves every lookup the customer index served.
        manager
            .drop_index(
                Index::drop()
                    .name("rm_deals_customer")
                    .table(RmDeals::Table)
                    .if_exists()
                    .to_owned(),
            )
            .await
    }
}
