//! Whole-token lookups for SearchContacts on PostgreSQL, in name order: the
//! best matches of a word (whole tokens of a contact's own text, ranked
//! first) are read up to the page and no further, instead of every match
//! being read and ranked (25,000 rows for a given name at 1,000,000).
//!
//! `contact_search_tokens` holds one row per distinct token of each
//! contact's folded `search_text` (split at spaces, `@` and `.`, the tokens
//! search ranks by), with the contact's display name. Its primary key
//! `(tenant, token, display_name, contact_id)` is the whole index: a
//! token's contacts in name order, and an exact probe for "does this
//! contact hold that token too". A GIN index cannot give rows in an order,
//! and walking the name index filtering by token reads the whole tenant for
//! a rare word, or for a common given name (display names start with it).
//!
//! Statement-level triggers keep it in step with `contacts` in the writing
//! statement itself, so every write path (creates, imports, merges,
//! erasures) updates it in its own transaction; erasing a contact deletes
//! its tokens. SQLite has no such table: its FTS5 trigram table answers
//! every search there.

use sea_orm_migration::{prelude::*, sea_orm::DbBackend};

#[derive(DeriveMigrationName)]
pub struct Migration;

/// The distinct tokens of the rows of `rows` (a relation of contacts).
fn tokens_of(rows: &str) -> String {
    format!(
        "SELECT DISTINCT r.tenant, token, r.display_name, r.id FROM {rows} r, \
         unnest(string_to_array(translate(r.search_text, '@.', '  '), ' ')) AS token \
         WHERE token <> ''"
    )
}

fn up_statements() -> Vec<String> {
    let insert = format!(
        "INSERT INTO contact_search_tokens (tenant, token, display_name, contact_id) {}",
        tokens_of("new_rows")
    );
    let delete = "DELETE FROM contact_search_tokens t USING old_rows o \
                  WHERE t.tenant = o.tenant AND t.contact_id = o.id";
    // An update rewrites the tokens of the rows whose text or name changed.
    let changed = "(SELECT n.* FROM new_rows n JOIN old_rows o ON o.tenant = n.tenant AND o.id = n.id \
                   WHERE o.search_text IS DISTINCT FROM n.search_text \
                   OR o.display_name IS DISTINCT FROM n.display_name)";
    let update = format!(
        "DELETE FROM contact_search_tokens t USING new_rows n JOIN old_rows o \
         ON o.tenant = n.tenant AND o.id = n.id \
         WHERE t.tenant = o.tenant AND t.contact_id = o.id \
         AND (o.search_text IS DISTINCT FROM n.search_text \
         OR o.display_name IS DISTINCT FROM n.display_name); \
         INSERT INTO contact_search_tokens (tenant, token, display_name, contact_id) {}",
        tokens_of(changed)
    );
    let function = |name: &str, body: &str| {
        format!(
            "CREATE OR REPLACE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $body$ \
             BEGIN {body}; RETURN NULL; END $body$"
        )
    };
    let trigger = |name: &str, event: &str, tables: &str| {
        format!(
            "CREATE TRIGGER {name} AFTER {event} ON contacts REFERENCING {tables} \
             FOR EACH STATEMENT EXECUTE FUNCTION {name}()"
        )
    };
    vec![
        "CREATE TABLE IF NOT EXISTS contact_search_tokens (\
         tenant TEXT NOT NULL, token TEXT NOT NULL, display_name TEXT NOT NULL, \
         contact_id TEXT NOT NULL, PRIMARY KEY (tenant, token, display_name, contact_id))"
            .to_owned(),
        // The contacts written before this migration.
        format!(
            "INSERT INTO contact_search_tokens (tenant, token, display_name, contact_id) {} \
             ON CONFLICT DO NOTHING",
            tokens_of("contacts")
        ),
        function("contact_search_tokens_insert", &insert),
        function("contact_search_tokens_update", &update),
        function("contact_search_tokens_delete", delete),
        trigger(
            "contact_search_tokens_insert",
            "INSERT",
            "NEW TABLE AS new_rows",
        ),
        trigger(
            "contact_search_tokens_update",
            "UPDATE",
            "OLD TABLE AS old_rows NEW TABLE AS new_rows",
        ),
        trigger(
            "contact_search_tokens_delete",
            "DELETE",
            "OLD TABLE AS old_rows",
        ),
    ]
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.get_database_backend() == DbBackend::Postgres {
            let db = manager.get_connection();
            for statement in up_statements() {
                db.execute_unprepared(&statement).await?;
            }
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.get_database_backend() == DbBackend::Postgres {
            let db = manager.get_connection();
            for kind in ["insert", "update", "delete"] {
                db.execute_unprepared(&format!(
                    "DROP TRIGGER IF EXISTS contact_search_tokens_{kind} ON contacts; \
                     DROP FUNCTION IF EXISTS contact_search_tokens_{kind}()"
                ))
                .await?;
            }
            db.execute_unprepared("DROP TABLE IF EXISTS contact_search_tokens")
                .await?;
        }
        Ok(())
    }
}
