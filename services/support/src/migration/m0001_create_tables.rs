//! Tickets with their number counters, changes, comments and mail ids;
//! queues, agents and routing rules.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Tickets {
    Table,
    Number,
    Subject,
    Description,
    Requester,
    RequesterEmail,
    Company,
    Channel,
    Priority,
    PriorityRank,
    Kind,
    Tags,
    CustomFields,
    Status,
    Queue,
    Assignee,
    AssignmentReason,
    FollowUpOf,
    FirstResponseTime,
    SolveTime,
    CloseTime,
    ReopenCount,
}

#[derive(DeriveIden)]
enum TicketCounters {
    Table,
    LastNumber,
}

#[derive(DeriveIden)]
enum TicketChanges {
    Table,
    TicketId,
    Field,
    OldValue,
    NewValue,
    Actor,
    ChangeTime,
}

#[derive(DeriveIden)]
enum TicketMessages {
    Table,
    MessageId,
    TicketId,
}

#[derive(DeriveIden)]
enum Comments {
    Table,
    TicketId,
    Body,
    Public,
    AuthorKind,
    Author,
    Attachments,
    MessageId,
}

#[derive(DeriveIden)]
enum Queues {
    Table,
    DisplayName,
    Description,
    Members,
    Strategy,
    RequiredSkills,
    Assigned,
}

#[derive(DeriveIden)]
enum Agents {
    Table,
    Subject,
    DisplayName,
    Skills,
    Available,
}

#[derive(DeriveIden)]
enum RoutingRules {
    Table,
    DisplayName,
    Priority,
    Filter,
    Queue,
    SetPriority,
}

/// The columns most tables have.
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

/// An index over the tenant and `columns`.
fn index(
    name: &str,
    table: impl IntoIden,
    columns: Vec<DynIden>,
    unique: bool,
) -> IndexCreateStatement {
    let mut index = Index::create();
    index
        .name(name)
        .table(table)
        .col(Common::Tenant)
        .if_not_exists();
    for column in columns {
        index.col(column);
    }
    if unique {
        index.unique();
    }
    index.to_owned()
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(resource(
                Tickets::Table,
                vec![
                    big_integer(Tickets::Number),
                    string(Tickets::Subject),
                    text(Tickets::Description),
                    string(Tickets::Requester),
                    string(Tickets::RequesterEmail),
                    string(Tickets::Company),
                    string(Tickets::Channel),
                    string(Tickets::Priority),
                    integer(Tickets::PriorityRank),
                    string(Tickets::Kind),
                    text(Tickets::Tags),
                    text(Tickets::CustomFields),
                    string(Tickets::Status),
                    string(Tickets::Queue),
                    string(Tickets::Assignee),
                    text(Tickets::AssignmentReason),
                    string(Tickets::FollowUpOf),
                    timestamp_with_time_zone_null(Tickets::FirstResponseTime),
                    timestamp_with_time_zone_null(Tickets::SolveTime),
                    timestamp_with_time_zone_null(Tickets::CloseTime),
                    integer(Tickets::ReopenCount),
                ],
            ))
            .await?;
        for (name, columns, unique) in [
            (
                "tickets_tenant_number",
                vec![Tickets::Number.into_iden()],
                true,
            ),
            (
                "tickets_tenant_requester",
                vec![Tickets::Requester.into_iden()],
                false,
            ),
            (
                "tickets_tenant_assignee_status",
                vec![Tickets::Assignee.into_iden(), Tickets::Status.into_iden()],
                false,
            ),
            (
                "tickets_tenant_create_time",
                vec![Common::CreateTime.into_iden(), Common::Id.into_iden()],
                false,
            ),
        ] {
            manager
                .create_index(index(name, Tickets::Table, columns, unique))
                .await?;
        }
        manager
            .create_table(
                Table::create()
                    .table(TicketCounters::Table)
                    .if_not_exists()
                    .col(string(Common::Tenant).primary_key())
                    .col(big_integer(TicketCounters::LastNumber))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(TicketChanges::Table)
                    .if_not_exists()
                    .col(string(Common::Id).primary_key())
                    .col(string(Common::Tenant))
                    .col(string(TicketChanges::TicketId))
                    .col(string(TicketChanges::Field))
                    .col(string(TicketChanges::OldValue))
                    .col(string(TicketChanges::NewValue))
                    .col(string(TicketChanges::Actor))
                    .col(timestamp_with_time_zone(TicketChanges::ChangeTime))
                    .col(timestamp_with_time_zone_null(Common::DeleteTime))
                    .col(big_integer(Common::Version))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(index(
                "ticket_changes_tenant_ticket",
                TicketChanges::Table,
                vec![
                    TicketChanges::TicketId.into_iden(),
                    TicketChanges::ChangeTime.into_iden(),
                ],
                false,
            ))
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(TicketMessages::Table)
                    .if_not_exists()
                    .col(string(Common::Tenant))
                    .col(string(TicketMessages::MessageId))
                    .col(string(TicketMessages::TicketId))
                    .primary_key(
                        Index::create()
                            .col(Common::Tenant)
                            .col(TicketMessages::MessageId),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(Comments::Table)
                    .if_not_exists()
                    .col(string(Common::Id).primary_key())
                    .col(string(Common::Tenant))
                    .col(string(Comments::TicketId))
                    .col(text(Comments::Body))
                    .col(boolean(Comments::Public))
                    .col(string(Comments::AuthorKind))
                    .col(string(Comments::Author))
                    .col(text(Comments::Attachments))
                    .col(string(Comments::MessageId))
                    .col(timestamp_with_time_zone(Common::CreateTime))
                    .col(timestamp_with_time_zone_null(Common::DeleteTime))
                    .col(big_integer(Common::Version))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(index(
                "comments_tenant_ticket",
                Comments::Table,
                vec![
                    Comments::TicketId.into_iden(),
                    Common::CreateTime.into_iden(),
                ],
                false,
            ))
            .await?;
        manager
            .create_table(resource(
                Queues::Table,
                vec![
                    string(Queues::DisplayName),
                    text(Queues::Description),
                    text(Queues::Members),
                    string(Queues::Strategy),
                    text(Queues::RequiredSkills),
                    big_integer(Queues::Assigned),
                ],
            ))
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(Agents::Table)
                    .if_not_exists()
                    .col(string(Common::Tenant))
                    .col(string(Agents::Subject))
                    .col(string(Agents::DisplayName))
                    .col(text(Agents::Skills))
                    .col(boolean(Agents::Available))
                    .col(timestamp_with_time_zone(Common::UpdateTime))
                    .col(timestamp_with_time_zone_null(Common::DeleteTime))
                    .col(big_integer(Common::Version))
                    .primary_key(Index::create().col(Common::Tenant).col(Agents::Subject))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(resource(
                RoutingRules::Table,
                vec![
                    string(RoutingRules::DisplayName),
                    integer(RoutingRules::Priority),
                    text(RoutingRules::Filter),
                    string(RoutingRules::Queue),
                    string(RoutingRules::SetPriority),
                ],
            ))
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            RoutingRules::Table.into_iden(),
            Agents::Table.into_iden(),
            Queues::Table.into_iden(),
            Comments::Table.into_iden(),
            TicketMessages::Table.into_iden(),
            TicketChanges::Table.into_iden(),
            TicketCounters::Table.into_iden(),
            Tickets::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).if_exists().to_owned())
                .await?;
        }
        Ok(())
    }
}
