//! Indexes that answer SearchContacts over every match, not a scan, and
//! look a tenant's contacts and companies up by id.
//!
//! Search matches each word anywhere in the folded `search_text` of a
//! contact or of its company (names, emails, phone digits), so the index
//! must answer substring matches, not just whole words:
//! - PostgreSQL: `pg_trgm` GIN indexes, which serve `LIKE '%word%'`
//!   (a word's trigrams, then a recheck). Full-text `tsvector`s were not
//!   used: their parser keeps an email as one token and has no infix match,
//!   so "difference.example" or a phone's last digits would not be found.
//! - SQLite: FTS5 tables with the trigram tokenizer over the same column
//!   (external content, kept in step by triggers, so every write path, the
//!   import and the erasure included, updates them in its own transaction).
//!   They are keyed by the tables' rowids: SQLite documents that `VACUUM`
//!   may renumber those, so after a manual `VACUUM` run
//!   `INSERT INTO contacts_search(contacts_search) VALUES('rebuild')` (and
//!   the same for `companies_search`); the suite itself never vacuums.
//!
//! `(tenant, id)` is unique on both tables: SQLite, planning without
//! statistics, answered `tenant = ? AND id IN (...)` (a page of search
//! results, a batch get) by walking the tenant's create-time index, every
//! row of the tenant per call (minutes of searching at 1,000,000 contacts).
//! For the same reason a contact's keys are looked up through an index that
//! covers them, `(tenant, contact_id, value, kind)`, in place of
//! `(tenant, contact_id)`: SQLite preferred the covering primary key and
//! read every key of the tenant (90 ms per FindDuplicates at 1,000,000).

use sea_orm_migration::{prelude::*, sea_orm::DbBackend};

#[derive(DeriveMigrationName)]
pub struct Migration;

/// The tables searched, each with a `search_text` column.
const TABLES: [&str; 2] = ["contacts", "companies"];

/// The FTS5 table over `table`'s search text and the triggers that keep it
/// in step, one statement each.
fn sqlite_index(table: &str) -> [String; 6] {
    [
        format!(
            "CREATE VIRTUAL TABLE IF NOT EXISTS {table}_search USING fts5(\
             search_text, content='{table}', tokenize='trigram')"
        ),
        format!(
            "CREATE TRIGGER IF NOT EXISTS {table}_search_insert AFTER INSERT ON {table} BEGIN \
             INSERT INTO {table}_search(rowid, search_text) VALUES (new.rowid, new.search_text); \
             END"
        ),
        format!(
            "CREATE TRIGGER IF NOT EXISTS {table}_search_delete AFTER DELETE ON {table} BEGIN \
             INSERT INTO {table}_search({table}_search, rowid, search_text) \
             VALUES ('delete', old.rowid, old.search_text); \
             END"
        ),
        format!(
            "CREATE TRIGGER IF NOT EXISTS {table}_search_update AFTER UPDATE OF search_text \
             ON {table} WHEN old.search_text IS NOT new.search_text BEGIN \
             INSERT INTO {table}_search({table}_search, rowid, search_text) \
             VALUES ('delete', old.rowid, old.search_text); \
             INSERT INTO {table}_search(rowid, search_text) VALUES (new.rowid, new.search_text); \
             END"
        ),
        // A deleted row's trigrams leave the index at once, not at the next
        // merge of its segments: an erased person leaves nothing behind.
        format!("INSERT INTO {table}_search({table}_search, rank) VALUES ('secure-delete', 1)"),
        // Indexes the rows written before this migration.
        format!("INSERT INTO {table}_search({table}_search) VALUES ('rebuild')"),
    ]
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in TABLES {
            manager
                .create_index(
                    Index::create()
                        .name(format!("{table}_tenant_id"))
                        .table(Alias::new(table))
                        .col(Alias::new("tenant"))
                        .col(Alias::new("id"))
                        .unique()
                        .if_not_exists()
                        .to_owned(),
                )
                .await?;
        }
        manager
            .create_index(
                Index::create()
                    .name("contact_keys_of_contact")
                    .table(Alias::new("contact_keys"))
                    .col(Alias::new("tenant"))
                    .col(Alias::new("contact_id"))
                    .col(Alias::new("value"))
                    .col(Alias::new("kind"))
                    .if_not_exists()
                    .to_owned(),
            )
            .await?;
        manager
            .drop_index(
                Index::drop()
                    .name("contact_keys_contact")
                    .table(Alias::new("contact_keys"))
                    .if_exists()
                    .to_owned(),
            )
            .await?;
        let db = manager.get_connection();
        if manager.get_database_backend() == DbBackend::Postgres {
            // Trusted since PostgreSQL 13: a role with CREATE on the database
            // may create it; where the service's role may not, an operator
            // runs `CREATE EXTENSION pg_trgm` in its database first.
            db.execute_unprepared("CREATE EXTENSION IF NOT EXISTS pg_trgm")
                .await?;
            for table in TABLES {
                db.execute_unprepared(&format!(
                    "CREATE INDEX IF NOT EXISTS {table}_search_trigrams \
                     ON {table} USING GIN (search_text gin_trgm_ops)"
                ))
                .await?;
            }
        } else {
            for statement in TABLES.iter().flat_map(|table| sqlite_index(table)) {
                db.execute_unprepared(&statement).await?;
            }
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_index(
                Index::create()
                    .name("contact_keys_contact")
                    .table(Alias::new("contact_keys"))
                    .col(Alias::new("tenant"))
                    .col(Alias::new("contact_id"))
                    .if_not_exists()
                    .to_owned(),
            )
            .await?;
        manager
            .drop_index(
                Index::drop()
                    .name("contact_keys_of_contact")
                    .table(Alias::new("contact_keys"))
                    .if_exists()
                    .to_owned(),
            )
            .await?;
        let db = manager.get_connection();
        for table in TABLES {
            manager
                .drop_index(
                    Index::drop()
                        .name(format!("{table}_tenant_id"))
                        .table(Alias::new(table))
                        .if_exists()
                        .to_owned(),
                )
                .await?;
            if manager.get_database_backend() == DbBackend::Postgres {
                db.execute_unprepared(&format!("DROP INDEX IF EXISTS {table}_search_trigrams"))
                    .await?;
            } else {
                for (kind, suffix) in [
                    ("TRIGGER", "_insert"),
                    ("TRIGGER", "_delete"),
                    ("TRIGGER", "_update"),
                    ("TABLE", ""),
                ] {
                    db.execute_unprepared(&format!("DROP {kind} IF EXISTS {table}_search{suffix}"))
                        .await?;
                }
            }
        }
        Ok(())
    }
}
