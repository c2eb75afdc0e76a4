//! A/B tests (the test's definition and outcome on the campaign, a variant
//! per ledger row), a campaign's cost, and what sales reports back: the
//! leads that name a campaign and the deals won from them.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Campaigns {
    Table,
    CostCurrency,
    CostUnits,
    CostNanos,
    AbTest,
    AbWinner,
    AbTestSentTime,
    AbDecideTime,
}

#[derive(DeriveIden)]
enum CampaignRecipients {
    Table,
    Tenant,
    CampaignId,
    Email,
    MessageId,
    State,
    UpdateTime,
    Variant,
}

#[derive(DeriveIden)]
enum CampaignLeads {
    Table,
    Tenant,
    Lead,
    CampaignId,
    CreateTime,
}

#[derive(DeriveIden)]
enum CampaignWins {
    Table,
    Tenant,
    Opportunity,
    CampaignId,
    Lead,
    CurrencyCode,
    Units,
    Nanos,
    WonTime,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // One column per statement: SQLite alters one at a time.
        let campaign_columns = [
            string(Campaigns::CostCurrency).default("").to_owned(),
            big_integer(Campaigns::CostUnits).default(0).to_owned(),
            integer(Campaigns::CostNanos).default(0).to_owned(),
            text(Campaigns::AbTest).default("").to_owned(),
            string(Campaigns::AbWinner).default("").to_owned(),
            timestamp_with_time_zone_null(Campaigns::AbTestSentTime),
            timestamp_with_time_zone_null(Campaigns::AbDecideTime),
        ];
        for mut column in campaign_columns {
            manager
                .alter_table(
                    Table::alter()
                        .table(Campaigns::Table)
                        .add_column(&mut column)
                        .to_owned(),
                )
                .await?;
        }
        manager
            .alter_table(
                Table::alter()
                    .table(CampaignRecipients::Table)
                    .add_column(string(CampaignRecipients::Variant).default(""))
                    .to_owned(),
            )
            .await?;
        // Per message, the sender asks whether another recipient had the
        // address; a relay's report finds its message; each pass settles
        // rows a stopped sender left. Without these each is a scan of the
        // ledger (a 100,000-recipient campaign slowed to 8 messages a second).
        for (name, columns) in [
            (
                "campaign_recipients_email",
                vec![
                    CampaignRecipients::Tenant,
                    CampaignRecipients::CampaignId,
                    CampaignRecipients::Email,
                ],
            ),
            (
                "campaign_recipients_message_id",
                vec![CampaignRecipients::Tenant, CampaignRecipients::MessageId],
            ),
            (
                "campaign_recipients_state_update",
                vec![CampaignRecipients::State, CampaignRecipients::UpdateTime],
            ),
        ] {
            let mut index = Index::create();
            index
                .name(name)
                .table(CampaignRecipients::Table)
                .if_not_exists();
            for column in columns {
                index.col(column);
            }
            manager.create_index(index.to_owned()).await?;
        }
        manager
            .create_table(
                Table::create()
                    .table(CampaignLeads::Table)
                    .if_not_exists()
                    .col(string(CampaignLeads::Tenant))
                    .col(string(CampaignLeads::Lead))
                    .col(string(CampaignLeads::CampaignId))
                    .col(timestamp_with_time_zone(CampaignLeads::CreateTime))
                    .primary_key(
                        Index::create()
                            .col(CampaignLeads::Tenant)
                            .col(CampaignLeads::Lead),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("campaign_leads_campaign")
                    .table(CampaignLeads::Table)
                    .col(CampaignLeads::Tenant)
                    .col(CampaignLeads::CampaignId)
                    .if_not_exists()
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(CampaignWins::Table)
                    .if_not_exists()
                    .col(string(CampaignWins::Tenant))
                    .col(string(CampaignWins::Opportunity))
                    .col(string(CampaignWins::CampaignId))
                    .col(string(CampaignWins::Lead))
                    .col(string(CampaignWins::CurrencyCode))
                    .col(big_integer(CampaignWins::Units))
                    .col(integer(CampaignWins::Nanos))
                    .col(timestamp_with_time_zone(CampaignWins::WonTime))
                    .primary_key(
                        Index::create()
                            .col(CampaignWins::Tenant)
                            .col(CampaignWins::Opportunity),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("campaign_wins_campaign")
                    .table(CampaignWins::Table)
                    .col(CampaignWins::Tenant)
                    .col(CampaignWins::CampaignId)
                    .if_not_exists()
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            CampaignWins::Table.into_iden(),
            CampaignLeads::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).if_exists().to_owned())
                .await?;
        }
        manager
            .alter_table(
                Table::alter()
                    .table(CampaignRecipients::Table)
                    .drop_column(CampaignRecipients::Variant)
                    .to_owned(),
            )
            .await?;
        for column in [
            Campaigns::CostCurrency,
            Campaigns::CostUnits,
            Campaigns::CostNanos,
            Campaigns::AbTest,
            Campaigns::AbWinner,
            Campaigns::AbTestSentTime,
            Campaigns::AbDecideTime,
        ] {
            manager
                .alter_table(
                    Table::alter()
                        .table(Campaigns::Table)
                        .drop_column(column)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }
}
