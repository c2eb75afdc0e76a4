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
//! Row triggers keep it in step with `contacts` in the writing statement
//! itself, so every write path (creates, imports, merges,
//! erasures) updates it in its own transaction; erasing a contact deletes
//! its tokens. SQLite has no such table: its FTS5 trigram table answers
//! every search there.

use sea_orm_migration::{prelude::*, sea_orm::DbBackend};

#[derive(DeriveMigrationName)]
pub struct Migration;

/// The distinct tokens of the contact row `row` (`NEW` or `OLD`).
fn tokens_of(row: &str) -> String {
    format!("unnest(string_to_array(translate({row}.search_text, '@.', '  '), ' '))")
}

fn up_statements() -> Vec<String> {
    // Row triggers, not statement triggers over transition tables: their
    // plans are cached per connection, where a statement trigger planned its
    // query over the transition table on every write (CreateContact on
    // PostgreSQL fell by 43% at one caller). Old tokens are deleted by their
    // full key, which the primary key serves.
    let insert = format!(
        "INSERT INTO contact_search_tokens (tenant, token, display_name, contact_id) \
         SELECT DISTINCT NEW.tenant, token, NEW.display_name, NEW.id FROM {} AS token \
         WHERE token <> ''",
        tokens_of("NEW")
    );
    let delete = format!(
        "DELETE FROM contact_search_tokens WHERE tenant = OLD.tenant \
         AND token = ANY (ARRAY(SELECT {})) \
         AND display_name = OLD.display_name AND contact_id = OLD.id",
        tokens_of("OLD")
    );
    let function = |name: &str, body: &str| {
        format!(
            "CREATE OR REPLACE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $body$ \
             BEGIN {body}; RETURN NULL; END $body$"
        )
    };
    vec![
        "CREATE TABLE IF NOT EXISTS contact_search_tokens (\
         tenant TEXT NOT NULL, token TEXT NOT NULL, display_name TEXT NOT NULL, \
         contact_id TEXT NOT NULL, PRIMARY KEY (tenant, token, display_name, contact_id))"
            .to_owned(),
        function("contact_search_tokens_insert", &insert),
        function("contact_search_tokens_delete", &delete),
        function(
            "contact_search_tokens_update",
            &format!("{delete}; {insert}"),
        ),
        "CREATE TRIGGER contact_search_tokens_insert AFTER INSERT ON contacts \
         FOR EACH ROW EXECUTE FUNCTION contact_search_tokens_insert()"
            .to_owned(),
        // Only a change of the text or the name moves tokens (not a soft
        // delete, not a new job title).
        "CREATE TRIGGER contact_search_tokens_update AFTER UPDATE OF search_text, display_name \
         ON contacts FOR EACH ROW WHEN (OLD.search_text IS DISTINCT FROM NEW.search_text \
         OR OLD.display_name IS DISTINCT FROM NEW.display_name) \
         EXECUTE FUNCTION contact_search_tokens_update()"
            .to_owned(),
        "CREATE TRIGGER contact_search_tokens_delete AFTER DELETE ON contacts \
         FOR EACH ROW EXECUTE FUNCTION contact_search_tokens_delete()"
            .to_owned(),
        // The contacts written before this migration, read after the
        // triggers exist: creating them locks out writers until the
        // migration commits, so no write falls between the two.
        "INSERT INTO contact_search_tokens (tenant, token, display_name, contact_id) \
         SELECT DISTINCT c.tenant, token, c.display_name, c.id FROM contacts c, \
         unnest(string_to_array(translate(c.search_text, '@.', '  '), ' ')) AS token \
         WHERE token <> '' ON CONFLICT DO NOTHING"
            .to_owned(),
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
