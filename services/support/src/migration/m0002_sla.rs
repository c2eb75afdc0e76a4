//! SLA policies and business calendars, and each ticket's SLA: its policy,
//! clocks, the alerts already raised, and when the scheduler looks next.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Tickets {
    Table,
    SlaPolicy,
    SlaClocks,
    SlaRecorded,
    SlaNextCheck,
    AwaitingReplySince,
}

#[derive(DeriveIden)]
enum BusinessCalendars {
    Table,
    DisplayName,
    TimeZone,
    WeeklyHours,
    Holidays,
}

#[derive(DeriveIden)]
enum SlaPolicies {
    Table,
    DisplayName,
    Priority,
    Filter,
    FirstResponseMinutes,
    NextResponseMinutes,
    ResolutionMinutes,
    Calendar,
    WarnAtPercent,
    EscalatePriority,
    EscalateQueue,
}

#[derive(DeriveIden)]
enum Common {
    Id,
    Tenant,
    CreateTime,
    UpdateTime,
    DeleteTime,
    Version,
}

/// A resource table: id, tenant, `columns`, then times and version.
fn resource(table: impl IntoIden, columns: Vec<ColumnDef>) -> TableCreateStatement {
    let mut create = Table::create();
    create
        .table(table)
        .if_not_exists()
        .col(string(Common::Id).primary_key())
        .col(string(Common::Tenant));
    for mut column in columns {
        create.col(&mut column);
    }
    create
        .col(timestamp_with_time_zone(Common::CreateTime))
        .col(timestamp_with_time_zone(Common::UpdateTime))
        .col(timestamp_with_time_zone_null(Common::DeleteTime))
        .col(big_integer(Common::Version))
        .to_owned()
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // One column per statement: SQLite alters one at a time.
        let columns = [
            string(Tickets::SlaPolicy).default("").to_owned(),
            text(Tickets::SlaClocks).default("[]").to_owned(),
            text(Tickets::SlaRecorded).default("[]").to_owned(),
            timestamp_with_time_zone_null(Tickets::SlaNextCheck),
            timestamp_with_time_zone_null(Tickets::AwaitingReplySince),
        ];
        for mut column in columns {
            manager
                .alter_table(
                    Table::alter()
                        .table(Tickets::Table)
                        .add_column(&mut column)
                        .to_owned(),
                )
                .await?;
        }
        // The scheduler's scan: what falls due next, across tenants.
        manager
            .create_index(
                Index::create()
                    .name("tickets_sla_next_check")
                    .table(Tickets::Table)
                    .col(Tickets::SlaNextCheck)
                    .if_not_exists()
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(resource(
                BusinessCalendars::Table,
                vec![
                    string(BusinessCalendars::DisplayName),
                    string(BusinessCalendars::TimeZone),
                    text(BusinessCalendars::WeeklyHours),
                    text(BusinessCalendars::Holidays),
                ],
            ))
            .await?;
        manager
            .create_table(resource(
                SlaPolicies::Table,
                vec![
                    string(SlaPolicies::DisplayName),
                    integer(SlaPolicies::Priority),
                    text(SlaPolicies::Filter),
                    integer(SlaPolicies::FirstResponseMinutes),
                    integer(SlaPolicies::NextResponseMinutes),
                    integer(SlaPolicies::ResolutionMinutes),
                    string(SlaPolicies::Calendar),
                    integer(SlaPolicies::WarnAtPercent),
                    string(SlaPolicies::EscalatePriority),
                    string(SlaPolicies::EscalateQueue),
                ],
            ))
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            SlaPolicies::Table.into_iden(),
            BusinessCalendars::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).if_exists().to_owned())
                .await?;
        }
        for column in [
            Tickets::AwaitingReplySince.into_iden(),
            Tickets::SlaNextCheck.into_iden(),
            Tickets::SlaRecorded.into_iden(),
            Tickets::SlaClocks.into_iden(),
            Tickets::SlaPolicy.into_iden(),
        ] {
            manager
                .alter_table(
                    Table::alter()
                        .table(Tickets::Table)
                        .drop_column(column)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }
}
