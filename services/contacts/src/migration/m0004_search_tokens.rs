//! A whole-token index for SearchContacts on PostgreSQL, so that the best
//! matches of a word (whole tokens of a contact's own text, ranked first)
//! are read in name order and cut at the page, instead of every match
//! being read and ranked (25,000 rows for a given name at 1,000,000).
//!
//! The tokens are the ones search ranks by: the folded `search_text` split
//! at spaces, `@` and `.`. A GIN index over that array answers "holds every
//! one of these words"; the query must spell the expression exactly as
//! [`TOKENS`] does for PostgreSQL to use the index. SQLite has no such
//! index (its FTS5 trigram table answers every search).

use sea_orm_migration::{prelude::*, sea_orm::DbBackend};

#[derive(DeriveMigrationName)]
pub struct Migration;

/// A contact's search tokens, over its unqualified `search_text` column.
pub const TOKENS: &str = "string_to_array(translate(search_text, '@.', '  '), ' ')";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.get_database_backend() == DbBackend::Postgres {
            manager
                .get_connection()
                .execute_unprepared(&format!(
                    "CREATE INDEX IF NOT EXISTS contacts_search_tokens ON contacts USING GIN (({TOKENS}))"
                ))
                .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.get_database_backend() == DbBackend::Postgres {
            manager
                .get_connection()
                .execute_unprepared("DROP INDEX IF EXISTS contacts_search_tokens")
                .await?;
        }
        Ok(())
    }
}
