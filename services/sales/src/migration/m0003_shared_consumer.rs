//! Sales follows contacts through the shared consumer: its cursor moves from
//! `feed_cursors` into the consumer's own table, so an upgraded replica
//! resumes where the old one stopped.

use sea_orm_migration::prelude::*;

/// Copies the contacts cursor over and drops `feed_cursors`.
#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let conn = manager.get_connection();
        conn.execute_unprepared(
            "INSERT INTO consumer_cursors (consumer, sequence, update_time, lag_ms) \
             SELECT source, sequence, CURRENT_TIMESTAMP, 0 FROM feed_cursors",
        )
        .await?;
        manager
            .drop_table(Table::drop().table(Alias::new("feed_cursors")).to_owned())
            .await
    }
}
