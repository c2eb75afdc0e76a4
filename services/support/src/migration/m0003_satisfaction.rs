//! Satisfaction surveys, one per ticket.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum SatisfactionSurveys {
    Table,
    Tenant,
    TicketId,
    Assignee,
    Queue,
    Rating,
    Comment,
    CreateTime,
    ExpireTime,
    SubmitTime,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(SatisfactionSurveys::Table)
                    .if_not_exists()
                    .col(string(SatisfactionSurveys::Tenant))
                    .col(string(SatisfactionSurveys::TicketId))
                    .col(string(SatisfactionSurveys::Assignee))
                    .col(string(SatisfactionSurveys::Queue))
                    .col(integer_null(SatisfactionSurveys::Rating))
                    .col(text(SatisfactionSurveys::Comment))
                    .col(timestamp_with_time_zone(SatisfactionSurveys::CreateTime))
                    .col(timestamp_with_time_zone(SatisfactionSurveys::ExpireTime))
                    .col(timestamp_with_time_zone_null(
                        SatisfactionSurveys::SubmitTime,
                    ))
                    .primary_key(
                        Index::create()
                            .col(SatisfactionSurveys::Tenant)
                            .col(SatisfactionSurveys::TicketId),
                    )
                    .to_owned(),
            )
            .await?;
        // Reports read a tenant's answers of a period.
        manager
            .create_index(
                Index::create()
                    .name("satisfaction_surveys_tenant_submit_time")
                    .table(SatisfactionSurveys::Table)
                    .col(SatisfactionSurveys::Tenant)
                    .col(SatisfactionSurveys::SubmitTime)
                    .if_not_exists()
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(
                Table::drop()
                    .table(SatisfactionSurveys::Table)
                    .if_exists()
                    .to_owned(),
            )
            .await
    }
}
