//! Segments, lists and their members, templates, campaigns and their send
//! ledger.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

/// The columns every resource table has.
#[derive(DeriveIden)]
enum Common {
    Id,
    Tenant,
    DisplayName,
    CreateTime,
    UpdateTime,
    DeleteTime,
    Version,
}

#[derive(DeriveIden)]
enum Segments {
    Table,
    Description,
    Filter,
}

#[derive(DeriveIden)]
enum MailingLists {
    Table,
    Description,
}

#[derive(DeriveIden)]
enum ListMembers {
    Table,
    ListId,
    Contact,
    AddTime,
}

#[derive(DeriveIden)]
enum Templates {
    Table,
    Subject,
    HtmlBody,
    TextBody,
}

#[derive(DeriveIden)]
enum Campaigns {
    Table,
    State,
    Template,
    FromAddress,
    FromName,
    ReplyTo,
    Audience,
    SendTime,
    MessagesPerSecond,
    AudienceBuilt,
    StartTime,
    FinishTime,
}

#[derive(DeriveIden)]
enum Engagements {
    Table,
    CampaignId,
    Contact,
    Kind,
    Detail,
    Time,
}

#[derive(DeriveIden)]
enum Suppressions {
    Table,
    EmailFingerprint,
    Reason,
}

#[derive(DeriveIden)]
enum CampaignRecipients {
    Table,
    CampaignId,
    Contact,
    Position,
    Email,
    State,
    Reason,
    Attempts,
    MessageId,
    Claim,
    NextAttemptTime,
}

/// A resource table: id, tenant, display name, times and version, plus `columns`.
fn resource(table: impl IntoIden, columns: Vec<ColumnDef>) -> TableCreateStatement {
    let mut create = Table::create();
    create
        .table(table)
        .if_not_exists()
        .col(string(Common::Id).primary_key())
        .col(string(Common::Tenant))
        .col(string(Common::DisplayName));
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
        manager
            .create_table(resource(
                Segments::Table,
                vec![text(Segments::Description), text(Segments::Filter)],
            ))
            .await?;
        manager
            .create_table(resource(
                MailingLists::Table,
                vec![text(MailingLists::Description)],
            ))
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(ListMembers::Table)
                    .if_not_exists()
                    .col(string(Common::Tenant))
                    .col(string(ListMembers::ListId))
                    .col(string(ListMembers::Contact))
                    .col(timestamp_with_time_zone(ListMembers::AddTime))
                    .primary_key(
                        Index::create()
                            .col(Common::Tenant)
                            .col(ListMembers::ListId)
                            .col(ListMembers::Contact),
                    )
                    .to_owned(),
            )
            .await?;
        // Merges and erasures find a person's memberships.
        manager
            .create_index(
                Index::create()
                    .name("list_members_tenant_contact")
                    .table(ListMembers::Table)
                    .col(Common::Tenant)
                    .col(ListMembers::Contact)
                    .if_not_exists()
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(resource(
                Templates::Table,
                vec![
                    text(Templates::Subject),
                    text(Templates::HtmlBody),
                    text(Templates::TextBody),
                ],
            ))
            .await?;
        manager
            .create_table(resource(
                Campaigns::Table,
                vec![
                    string(Campaigns::State),
                    string(Campaigns::Template),
                    string(Campaigns::FromAddress),
                    string(Campaigns::FromName),
                    string(Campaigns::ReplyTo),
                    text(Campaigns::Audience),
                    timestamp_with_time_zone_null(Campaigns::SendTime),
                    integer(Campaigns::MessagesPerSecond),
                    boolean(Campaigns::AudienceBuilt),
                    timestamp_with_time_zone_null(Campaigns::StartTime),
                    timestamp_with_time_zone_null(Campaigns::FinishTime),
                ],
            ))
            .await?;
        // The sender looks for campaigns due or sending.
        manager
            .create_index(
                Index::create()
                    .name("campaigns_state_send_time")
                    .table(Campaigns::Table)
                    .col(Campaigns::State)
                    .col(Campaigns::SendTime)
                    .if_not_exists()
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(CampaignRecipients::Table)
                    .if_not_exists()
                    .col(string(Common::Tenant))
                    .col(string(CampaignRecipients::CampaignId))
                    .col(string(CampaignRecipients::Contact))
                    .col(big_integer(CampaignRecipients::Position))
                    .col(string(CampaignRecipients::Email))
                    .col(string(CampaignRecipients::State))
                    .col(text(CampaignRecipients::Reason))
                    .col(integer(CampaignRecipients::Attempts))
                    .col(string(CampaignRecipients::MessageId))
                    .col(string(CampaignRecipients::Claim))
                    .col(timestamp_with_time_zone_null(
                        CampaignRecipients::NextAttemptTime,
                    ))
                    .col(timestamp_with_time_zone(Common::UpdateTime))
                    .primary_key(
                        Index::create()
                            .col(Common::Tenant)
                            .col(CampaignRecipients::CampaignId)
                            .col(CampaignRecipients::Contact),
                    )
                    .to_owned(),
            )
            .await?;
        // The sender takes a campaign's queued recipients in order.
        manager
            .create_index(
                Index::create()
                    .name("campaign_recipients_state_position")
                    .table(CampaignRecipients::Table)
                    .col(CampaignRecipients::CampaignId)
                    .col(CampaignRecipients::State)
                    .col(CampaignRecipients::Position)
                    .if_not_exists()
                    .to_owned(),
            )
            .await?;
        // Opens, clicks, unsubscribes, bounces and complaints. A bounce or
        // complaint has one row per message (its id says so); opens and
        // clicks one per time.
        manager
            .create_table(
                Table::create()
                    .table(Engagements::Table)
                    .if_not_exists()
                    .col(string(Common::Id).primary_key())
                    .col(string(Common::Tenant))
                    .col(string(Engagements::CampaignId))
                    .col(string(Engagements::Contact))
                    .col(string(Engagements::Kind))
                    .col(text(Engagements::Detail))
                    .col(timestamp_with_time_zone(Engagements::Time))
                    .to_owned(),
            )
            .await?;
        // A campaign's counts group its engagements by kind.
        manager
            .create_index(
                Index::create()
                    .name("engagements_campaign_kind")
                    .table(Engagements::Table)
                    .col(Common::Tenant)
                    .col(Engagements::CampaignId)
                    .col(Engagements::Kind)
                    .if_not_exists()
                    .to_owned(),
            )
            .await?;
        // Each pass settles rows a stopped sender left behind.
        manager
            .create_index(
                Index::create()
                    .name("campaign_recipients_state_update_time")
                    .table(CampaignRecipients::Table)
                    .col(CampaignRecipients::State)
                    .col(Common::UpdateTime)
                    .if_not_exists()
                    .to_owned(),
            )
            .await?;
        // A relay's bounce report names the message.
        manager
            .create_index(
                Index::create()
                    .name("campaign_recipients_message_id")
                    .table(CampaignRecipients::Table)
                    .col(Common::Tenant)
                    .col(CampaignRecipients::MessageId)
                    .if_not_exists()
                    .to_owned(),
            )
            .await?;
        // Addresses nothing is sent to again (an unsubscribe; later bounces
        // and complaints), whichever contact holds them: by fingerprint
        // (crm_shared::privacy), so the list keeps no address and outlives
        // the person's erasure.
        manager
            .create_table(
                Table::create()
                    .table(Suppressions::Table)
                    .if_not_exists()
                    .col(string(Common::Tenant))
                    .col(string(Suppressions::EmailFingerprint))
                    .col(text(Suppressions::Reason))
                    .col(timestamp_with_time_zone(Common::CreateTime))
                    .primary_key(
                        Index::create()
                            .col(Common::Tenant)
                            .col(Suppressions::EmailFingerprint),
                    )
                    .to_owned(),
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            Engagements::Table.into_iden(),
            Suppressions::Table.into_iden(),
            CampaignRecipients::Table.into_iden(),
            Campaigns::Table.into_iden(),
            Templates::Table.into_iden(),
            ListMembers::Table.into_iden(),
            MailingLists::Table.into_iden(),
            Segments::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).if_exists().to_owned())
                .await?;
        }
        Ok(())
    }
}
