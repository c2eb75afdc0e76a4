//! Leads, assignment and scoring rules, pipelines, opportunities, products,
//! tasks, and the cursor of each event feed sales follows.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Leads {
    Table,
    GivenName,
    FamilyName,
    Email,
    Phone,
    CompanyName,
    Title,
    Country,
    EmployeeCount,
    Source,
    Campaign,
    Status,
    DisqualifyReason,
    Owner,
    AssignmentReason,
    Score,
    ScoreFactors,
    PossibleDuplicates,
    ConvertedContact,
    ConvertedCompany,
    ConvertedOpportunity,
    ConvertTime,
}

#[derive(DeriveIden)]
enum AssignmentRules {
    Table,
    DisplayName,
    Priority,
    Filter,
    Strategy,
    Members,
    Assigned,
}

#[derive(DeriveIden)]
enum ScoringRules {
    Table,
    DisplayName,
    Filter,
    Points,
}

#[derive(DeriveIden)]
enum Pipelines {
    Table,
    DisplayName,
    Stages,
    IsDefault,
}

#[derive(DeriveIden)]
enum Opportunities {
    Table,
    DisplayName,
    Amount,
    CurrencyCode,
    Pipeline,
    Stage,
    State,
    ExpectedCloseDate,
    Owner,
    Contact,
    Company,
    LineItems,
    CloseReason,
    CloseTime,
    StageHistory,
    SourceLead,
}

#[derive(DeriveIden)]
enum Products {
    Table,
    Sku,
    DisplayName,
    UnitPrice,
    CurrencyCode,
    Active,
}

#[derive(DeriveIden)]
enum Tasks {
    Table,
    Title,
    DueTime,
    Owner,
    Status,
    Lead,
    Contact,
    Opportunity,
}

#[derive(DeriveIden)]
enum FeedCursors {
    Table,
    Source,
    Sequence,
}

/// The columns every resource table has.
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

async fn index(
    manager: &SchemaManager<'_>,
    name: &str,
    table: impl IntoIden,
    columns: Vec<DynIden>,
    unique: bool,
) -> Result<(), DbErr> {
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
    manager.create_index(index.to_owned()).await
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(resource(
                Leads::Table,
                vec![
                    string(Leads::GivenName),
                    string(Leads::FamilyName),
                    string(Leads::Email),
                    string(Leads::Phone),
                    string(Leads::CompanyName),
                    string(Leads::Title),
                    string(Leads::Country),
                    big_integer(Leads::EmployeeCount),
                    string(Leads::Source),
                    string(Leads::Campaign),
                    string(Leads::Status),
                    text(Leads::DisqualifyReason),
                    string(Leads::Owner),
                    text(Leads::AssignmentReason),
                    integer(Leads::Score),
                    text(Leads::ScoreFactors),
                    text(Leads::PossibleDuplicates),
                    string(Leads::ConvertedContact),
                    string(Leads::ConvertedCompany),
                    string(Leads::ConvertedOpportunity),
                    timestamp_with_time_zone_null(Leads::ConvertTime),
                ],
            ))
            .await?;
        index(
            manager,
            "leads_tenant_email",
            Leads::Table,
            vec![Leads::Email.into_iden()],
            false,
        )
        .await?;
        index(
            manager,
            "leads_tenant_create_time",
            Leads::Table,
            vec![Common::CreateTime.into_iden()],
            false,
        )
        .await?;
        index(
            manager,
            "leads_tenant_owner_status",
            Leads::Table,
            vec![Leads::Owner.into_iden(), Leads::Status.into_iden()],
            false,
        )
        .await?;
        index(
            manager,
            "leads_tenant_converted_contact",
            Leads::Table,
            vec![Leads::ConvertedContact.into_iden()],
            false,
        )
        .await?;

        manager
            .create_table(resource(
                AssignmentRules::Table,
                vec![
                    string(AssignmentRules::DisplayName),
                    integer(AssignmentRules::Priority),
                    text(AssignmentRules::Filter),
                    string(AssignmentRules::Strategy),
                    text(AssignmentRules::Members),
                    big_integer(AssignmentRules::Assigned),
                ],
            ))
            .await?;
        manager
            .create_table(resource(
                ScoringRules::Table,
                vec![
                    string(ScoringRules::DisplayName),
                    text(ScoringRules::Filter),
                    integer(ScoringRules::Points),
                ],
            ))
            .await?;
        manager
            .create_table(resource(
                Pipelines::Table,
                vec![
                    string(Pipelines::DisplayName),
                    text(Pipelines::Stages),
                    boolean(Pipelines::IsDefault),
                ],
            ))
            .await?;
        manager
            .create_table(resource(
                Opportunities::Table,
                vec![
                    string(Opportunities::DisplayName),
                    text(Opportunities::Amount),
                    string(Opportunities::CurrencyCode),
                    string(Opportunities::Pipeline),
                    string(Opportunities::Stage),
                    string(Opportunities::State),
                    string(Opportunities::ExpectedCloseDate),
                    string(Opportunities::Owner),
                    string(Opportunities::Contact),
                    string(Opportunities::Company),
                    text(Opportunities::LineItems),
                    text(Opportunities::CloseReason),
                    timestamp_with_time_zone_null(Opportunities::CloseTime),
                    text(Opportunities::StageHistory),
                    string(Opportunities::SourceLead),
                ],
            ))
            .await?;
        index(
            manager,
            "opportunities_tenant_pipeline",
            Opportunities::Table,
            vec![Opportunities::Pipeline.into_iden()],
            false,
        )
        .await?;
        index(
            manager,
            "opportunities_tenant_contact",
            Opportunities::Table,
            vec![Opportunities::Contact.into_iden()],
            false,
        )
        .await?;
        index(
            manager,
            "opportunities_tenant_source_lead",
            Opportunities::Table,
            vec![Opportunities::SourceLead.into_iden()],
            false,
        )
        .await?;
        manager
            .create_table(resource(
                Products::Table,
                vec![
                    string(Products::Sku),
                    string(Products::DisplayName),
                    text(Products::UnitPrice),
                    string(Products::CurrencyCode),
                    boolean(Products::Active),
                ],
            ))
            .await?;
        index(
            manager,
            "products_tenant_sku",
            Products::Table,
            vec![Products::Sku.into_iden()],
            true,
        )
        .await?;
        manager
            .create_table(resource(
                Tasks::Table,
                vec![
                    string(Tasks::Title),
                    timestamp_with_time_zone(Tasks::DueTime),
                    string(Tasks::Owner),
                    string(Tasks::Status),
                    string(Tasks::Lead),
                    string(Tasks::Contact),
                    string(Tasks::Opportunity),
                ],
            ))
            .await?;
        index(
            manager,
            "tasks_tenant_due_time",
            Tasks::Table,
            vec![Tasks::DueTime.into_iden()],
            false,
        )
        .await?;
        index(
            manager,
            "tasks_tenant_contact",
            Tasks::Table,
            vec![Tasks::Contact.into_iden()],
            false,
        )
        .await?;
        manager
            .create_table(
                Table::create()
                    .table(FeedCursors::Table)
                    .if_not_exists()
                    .col(string(FeedCursors::Source).primary_key())
                    .col(big_integer(FeedCursors::Sequence))
                    .to_owned(),
            )
            .await?;
        Ok(())
    }
}
