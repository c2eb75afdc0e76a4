//! A converted lead remembers whether its contact existed already, so a
//! repeated ConvertLead reports what the first call did. Leads converted
//! before this step read as not reused.

use sea_orm_migration::{prelude::*, schema::*};

/// Adds `leads.converted_contact_reused`.
#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Leads {
    Table,
    ConvertedContactReused,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Leads::Table)
                    .add_column(boolean(Leads::ConvertedContactReused).default(false))
                    .to_owned(),
            )
            .await
    }
}
