//! The read model: copies of the resources the KPIs and the customer view
//! need, daily aggregates, the merged timeline and erasure confirmations.
//! Every table's key starts with the generation (a rebuild writes a new one
//! beside the live one) and the tenant.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

/// The columns every read-model table starts with.
#[derive(DeriveIden, Clone, Copy)]
enum Scope {
    Generation,
    Tenant,
}

#[derive(DeriveIden, Clone, Copy)]
enum ModelState {
    Table,
    Id,
    Generation,
    RebuildingGeneration,
    RebuildStartTime,
    LastRebuildTime,
}

#[derive(DeriveIden, Clone, Copy)]
enum RebuildPositions {
    Table,
    Source,
    Position,
}

#[derive(DeriveIden, Clone, Copy)]
enum RmContacts {
    Table,
    Contact,
    DisplayName,
    Email,
    Company,
    LifecycleStage,
    EmailConsent,
    Survivor,
    Erased,
    CreateTime,
}

#[derive(DeriveIden, Clone, Copy)]
enum RmCompanies {
    Table,
    Company,
    DisplayName,
}

#[derive(DeriveIden, Clone, Copy)]
enum RmStages {
    Table,
    Stage,
    DisplayName,
}

#[derive(DeriveIden, Clone, Copy)]
enum RmLeads {
    Table,
    Lead,
    Contact,
    Campaign,
    State,
    Contribution,
}

#[derive(DeriveIden, Clone, Copy)]
enum RmDeals {
    Table,
    Opportunity,
    DisplayName,
    Contact,
    Customer,
    Owner,
    Pipeline,
    Campaign,
    Company,
    SourceLead,
    Stage,
    State,
    CurrencyCode,
    Units,
    Nanos,
    CreateTime,
    CloseTime,
    CloseDay,
    Deleted,
    Contribution,
}

#[derive(DeriveIden, Clone, Copy)]
enum RmCustomers {
    Table,
    Customer,
    FirstWinDay,
}

#[derive(DeriveIden, Clone, Copy)]
enum RmTickets {
    Table,
    Ticket,
    Subject,
    Contact,
    Status,
    Priority,
    Owner,
    Queue,
    Channel,
    Company,
    CreateTime,
    FirstResponseTime,
    FirstResponseSeconds,
    FirstResponseDay,
    SolveTime,
    ResolutionSeconds,
    SolveDay,
    ReopenCount,
    SlaBreached,
    NextSlaDueTime,
    Rating,
    RatingTime,
    Deleted,
    Contribution,
}

#[derive(DeriveIden, Clone, Copy)]
enum RmFacts {
    Table,
    Fact,
    Day,
    Owner,
    Pipeline,
    Campaign,
    Queue,
    Channel,
    Company,
    Grp,
    CurrencyCode,
    Count,
    Units,
    Nanos,
    Measure,
}

#[derive(DeriveIden, Clone, Copy)]
enum RmEngagements {
    Table,
    Contact,
    Source,
    Kind,
    FirstTime,
    LastTime,
}

#[derive(DeriveIden, Clone, Copy)]
enum RmTimeline {
    Table,
    EventId,
    Contact,
    Time,
    Kind,
    Source,
    EventType,
    Subject,
    Summary,
}

#[derive(DeriveIden, Clone, Copy)]
enum RmErasures {
    Table,
    Contact,
    EraseTime,
}

#[derive(DeriveIden, Clone, Copy)]
enum RmErasureConfirmations {
    Table,
    Contact,
    Service,
    ConfirmTime,
    ErasedResources,
}

#[derive(DeriveIden, Clone, Copy)]
enum RmCampaigns {
    Table,
    Campaign,
    DisplayName,
    CurrencyCode,
    Units,
    Nanos,
    StartDay,
}

/// A read-model table keyed by (generation, tenant, `key`...), with `columns`.
pub(super) fn scoped(
    table: impl IntoIden,
    key: &[&dyn IdenCol],
    columns: Vec<ColumnDef>,
) -> TableCreateStatement {
    let mut create = Table::create();
    create
        .table(table)
        .if_not_exists()
        .col(big_integer(Scope::Generation))
        .col(string(Scope::Tenant));
    let mut primary = Index::create();
    primary.col(Scope::Generation).col(Scope::Tenant);
    for column in key {
        create.col(string(column.iden()));
        primary.col(column.iden());
    }
    for mut column in columns {
        create.col(&mut column);
    }
    create.primary_key(&mut primary).to_owned()
}

/// A column name usable as a key part.
pub(super) trait IdenCol {
    fn iden(&self) -> DynIden;
}

impl<T: Iden + Clone + 'static> IdenCol for T {
    fn iden(&self) -> DynIden {
        self.clone().into_iden()
    }
}

/// An index on (generation, tenant, `columns`...).
fn scoped_index(
    name: &str,
    table: impl IntoIden,
    columns: &[&dyn IdenCol],
) -> IndexCreateStatement {
    let mut index = Index::create();
    index
        .name(name)
        .table(table)
        .col(Scope::Generation)
        .col(Scope::Tenant);
    for column in columns {
        index.col(column.iden());
    }
    index.if_not_exists().to_owned()
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(ModelState::Table)
                    .if_not_exists()
                    .col(integer(ModelState::Id).primary_key())
                    .col(big_integer(ModelState::Generation))
                    .col(big_integer(ModelState::RebuildingGeneration))
                    .col(timestamp_with_time_zone_null(ModelState::RebuildStartTime))
                    .col(timestamp_with_time_zone_null(ModelState::LastRebuildTime))
                    .to_owned(),
            )
            .await?;
        manager
            .exec_stmt(
                Query::insert()
                    .into_table(ModelState::Table)
                    .columns([
                        ModelState::Id,
                        ModelState::Generation,
                        ModelState::RebuildingGeneration,
                    ])
                    .values_panic([1.into(), 1.into(), 0.into()])
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(RebuildPositions::Table)
                    .if_not_exists()
                    .col(string(RebuildPositions::Source).primary_key())
                    .col(big_integer(RebuildPositions::Position))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(scoped(
                RmContacts::Table,
                &[&RmContacts::Contact],
                vec![
                    string(RmContacts::DisplayName),
                    string(RmContacts::Email),
                    string(RmContacts::Company),
                    string(RmContacts::LifecycleStage),
                    integer(RmContacts::EmailConsent),
                    string(RmContacts::Survivor),
                    boolean(RmContacts::Erased),
                    timestamp_with_time_zone_null(RmContacts::CreateTime),
                ],
            ))
            .await?;
        manager
            .create_table(scoped(
                RmCompanies::Table,
                &[&RmCompanies::Company],
                vec![string(RmCompanies::DisplayName)],
            ))
            .await?;
        manager
            .create_table(scoped(
                RmStages::Table,
                &[&RmStages::Stage],
                vec![string(RmStages::DisplayName)],
            ))
            .await?;
        manager
            .create_table(scoped(
                RmLeads::Table,
                &[&RmLeads::Lead],
                vec![
                    string(RmLeads::Contact),
                    string(RmLeads::Campaign),
                    text(RmLeads::State),
                    text(RmLeads::Contribution),
                ],
            ))
            .await?;
        manager
            .create_table(scoped(
                RmDeals::Table,
                &[&RmDeals::Opportunity],
                vec![
                    string(RmDeals::DisplayName),
                    string(RmDeals::Contact),
                    string(RmDeals::Customer),
                    string(RmDeals::Owner),
                    string(RmDeals::Pipeline),
                    string(RmDeals::Campaign),
                    string(RmDeals::Company),
                    string(RmDeals::SourceLead),
                    string(RmDeals::Stage),
                    string(RmDeals::State),
                    string(RmDeals::CurrencyCode),
                    big_integer(RmDeals::Units),
                    integer(RmDeals::Nanos),
                    timestamp_with_time_zone(RmDeals::CreateTime),
                    timestamp_with_time_zone_null(RmDeals::CloseTime),
                    string(RmDeals::CloseDay),
                    boolean(RmDeals::Deleted),
                    text(RmDeals::Contribution),
                ],
            ))
            .await?;
        // A customer view's deals; a customer's first win.
        manager
            .create_index(scoped_index(
                "rm_deals_contact",
                RmDeals::Table,
                &[&RmDeals::Contact],
            ))
            .await?;
        manager
            .create_index(scoped_index(
                "rm_deals_customer",
                RmDeals::Table,
                &[&RmDeals::Customer],
            ))
            .await?;
        // Revenue per customer reads the deals closed in a period; a lead's
        // campaign moves with its deals.
        manager
            .create_index(scoped_index(
                "rm_deals_close_day",
                RmDeals::Table,
                &[&RmDeals::CloseDay],
            ))
            .await?;
        manager
            .create_index(scoped_index(
                "rm_deals_source_lead",
                RmDeals::Table,
                &[&RmDeals::SourceLead],
            ))
            .await?;
        manager
            .create_table(scoped(
                RmCustomers::Table,
                &[&RmCustomers::Customer],
                vec![string(RmCustomers::FirstWinDay)],
            ))
            .await?;
        manager
            .create_index(scoped_index(
                "rm_customers_first_win",
                RmCustomers::Table,
                &[&RmCustomers::FirstWinDay],
            ))
            .await?;
        manager
            .create_table(scoped(
                RmTickets::Table,
                &[&RmTickets::Ticket],
                vec![
                    string(RmTickets::Subject),
                    string(RmTickets::Contact),
                    string(RmTickets::Status),
                    string(RmTickets::Priority),
                    string(RmTickets::Owner),
                    string(RmTickets::Queue),
                    string(RmTickets::Channel),
                    string(RmTickets::Company),
                    timestamp_with_time_zone(RmTickets::CreateTime),
                    timestamp_with_time_zone_null(RmTickets::FirstResponseTime),
                    big_integer_null(RmTickets::FirstResponseSeconds),
                    string(RmTickets::FirstResponseDay),
                    timestamp_with_time_zone_null(RmTickets::SolveTime),
                    big_integer_null(RmTickets::ResolutionSeconds),
                    string(RmTickets::SolveDay),
                    integer(RmTickets::ReopenCount),
                    boolean(RmTickets::SlaBreached),
                    timestamp_with_time_zone_null(RmTickets::NextSlaDueTime),
                    integer(RmTickets::Rating),
                    timestamp_with_time_zone_null(RmTickets::RatingTime),
                    boolean(RmTickets::Deleted),
                    text(RmTickets::Contribution),
                ],
            ))
            .await?;
        // Percentiles read the tickets solved or first answered in a period.
        manager
            .create_index(scoped_index(
                "rm_tickets_solve_day",
                RmTickets::Table,
                &[&RmTickets::SolveDay],
            ))
            .await?;
        manager
            .create_index(scoped_index(
                "rm_tickets_first_response_day",
                RmTickets::Table,
                &[&RmTickets::FirstResponseDay],
            ))
            .await?;
        manager
            .create_index(scoped_index(
                "rm_tickets_contact",
                RmTickets::Table,
                &[&RmTickets::Contact],
            ))
            .await?;
        manager
            .create_table(scoped(
                RmFacts::Table,
                &[
                    &RmFacts::Fact,
                    &RmFacts::Day,
                    &RmFacts::Owner,
                    &RmFacts::Pipeline,
                    &RmFacts::Campaign,
                    &RmFacts::Queue,
                    &RmFacts::Channel,
                    &RmFacts::Company,
                    &RmFacts::Grp,
                    &RmFacts::CurrencyCode,
                ],
                vec![
                    big_integer(RmFacts::Count),
                    big_integer(RmFacts::Units),
                    big_integer(RmFacts::Nanos),
                    double(RmFacts::Measure),
                ],
            ))
            .await?;
        manager
            .create_table(scoped(
                RmEngagements::Table,
                &[
                    &RmEngagements::Contact,
                    &RmEngagements::Source,
                    &RmEngagements::Kind,
                ],
                vec![
                    timestamp_with_time_zone(RmEngagements::FirstTime),
                    timestamp_with_time_zone(RmEngagements::LastTime),
                ],
            ))
            .await?;
        manager
            .create_table(scoped(
                RmTimeline::Table,
                &[&RmTimeline::EventId],
                vec![
                    string(RmTimeline::Contact),
                    timestamp_with_time_zone(RmTimeline::Time),
                    string(RmTimeline::Kind),
                    string(RmTimeline::Source),
                    string(RmTimeline::EventType),
                    string(RmTimeline::Subject),
                    text(RmTimeline::Summary),
                ],
            ))
            .await?;
        // A customer's timeline, newest first.
        manager
            .create_index(scoped_index(
                "rm_timeline_contact_time",
                RmTimeline::Table,
                &[
                    &RmTimeline::Contact,
                    &RmTimeline::Time,
                    &RmTimeline::EventId,
                ],
            ))
            .await?;
        manager
            .create_table(scoped(
                RmErasures::Table,
                &[&RmErasures::Contact],
                vec![timestamp_with_time_zone(RmErasures::EraseTime)],
            ))
            .await?;
        manager
            .create_table(scoped(
                RmErasureConfirmations::Table,
                &[
                    &RmErasureConfirmations::Contact,
                    &RmErasureConfirmations::Service,
                ],
                vec![
                    timestamp_with_time_zone(RmErasureConfirmations::ConfirmTime),
                    big_integer(RmErasureConfirmations::ErasedResources),
                ],
            ))
            .await?;
        manager
            .create_table(scoped(
                RmCampaigns::Table,
                &[&RmCampaigns::Campaign],
                vec![
                    string(RmCampaigns::DisplayName),
                    string(RmCampaigns::CurrencyCode),
                    big_integer(RmCampaigns::Units),
                    integer(RmCampaigns::Nanos),
                    string(RmCampaigns::StartDay),
                ],
            ))
            .await?;
        Ok(())
    }
}
