//! Live chats and their transcripts.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Chats {
    Table,
    Id,
    Tenant,
    State,
    Subject,
    Requester,
    RequesterEmail,
    RequesterDisplayName,
    Queue,
    OfferedAgent,
    Agent,
    LastSequence,
    CustomerReadSequence,
    AgentReadSequence,
    Ticket,
    EndedBy,
    CreateTime,
    AcceptTime,
    EndTime,
    UpdateTime,
    DeleteTime,
    Version,
}

#[derive(DeriveIden)]
enum ChatMessages {
    Table,
    Tenant,
    ChatId,
    Sequence,
    Kind,
    AuthorRole,
    Author,
    Text,
    ClientMessageId,
    CreateTime,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Chats::Table)
                    .if_not_exists()
                    .col(string(Chats::Id).primary_key())
                    .col(string(Chats::Tenant))
                    .col(string(Chats::State))
                    .col(text(Chats::Subject))
                    .col(string(Chats::Requester))
                    .col(string(Chats::RequesterEmail))
                    .col(string(Chats::RequesterDisplayName))
                    .col(string(Chats::Queue))
                    .col(string(Chats::OfferedAgent))
                    .col(string(Chats::Agent))
                    .col(big_integer(Chats::LastSequence))
                    .col(big_integer(Chats::CustomerReadSequence))
                    .col(big_integer(Chats::AgentReadSequence))
                    .col(string(Chats::Ticket))
                    .col(string(Chats::EndedBy))
                    .col(timestamp_with_time_zone(Chats::CreateTime))
                    .col(timestamp_with_time_zone_null(Chats::AcceptTime))
                    .col(timestamp_with_time_zone_null(Chats::EndTime))
                    .col(timestamp_with_time_zone(Chats::UpdateTime))
                    .col(timestamp_with_time_zone_null(Chats::DeleteTime))
                    .col(big_integer(Chats::Version))
                    .to_owned(),
            )
            .await?;
        // Agents list a queue's waiting chats, oldest first.
        manager
            .create_index(
                Index::create()
                    .name("chats_tenant_state_create_time")
                    .table(Chats::Table)
                    .col(Chats::Tenant)
                    .col(Chats::State)
                    .col(Chats::CreateTime)
                    .if_not_exists()
                    .to_owned(),
            )
            .await?;
        // Merges and erasures find a person's chats.
        manager
            .create_index(
                Index::create()
                    .name("chats_tenant_requester")
                    .table(Chats::Table)
                    .col(Chats::Tenant)
                    .col(Chats::Requester)
                    .if_not_exists()
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(ChatMessages::Table)
                    .if_not_exists()
                    .col(string(ChatMessages::Tenant))
                    .col(string(ChatMessages::ChatId))
                    .col(big_integer(ChatMessages::Sequence))
                    .col(string(ChatMessages::Kind))
                    .col(string(ChatMessages::AuthorRole))
                    .col(string(ChatMessages::Author))
                    .col(text(ChatMessages::Text))
                    .col(string(ChatMessages::ClientMessageId))
                    .col(timestamp_with_time_zone(ChatMessages::CreateTime))
                    .primary_key(
                        Index::create()
                            .col(ChatMessages::Tenant)
                            .col(ChatMessages::ChatId)
                            .col(ChatMessages::Sequence),
                    )
                    .to_owned(),
            )
            .await?;
        // A message resent after a reconnection is stored once (the store
        // looks first; this makes it a rule). Both backends take the
        // partial index.
        manager
            .get_connection()
            .execute_unprepared(
                "CREATE UNIQUE INDEX IF NOT EXISTS chat_messages_client_id \
                 ON chat_messages (tenant, chat_id, author, client_message_id) \
                 WHERE client_message_id <> ''",
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(
                Table::drop()
                    .table(ChatMessages::Table)
                    .if_exists()
                    .to_owned(),
            )
            .await?;
        manager
            .drop_table(Table::drop().table(Chats::Table).if_exists().to_owned())
            .await
    }
}
