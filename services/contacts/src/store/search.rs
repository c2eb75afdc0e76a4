//! SearchContacts' query: every live contact where each word occurs in its
//! own search text or in its company's, ranked in the database over all
//! matches. The matches are found through the indexes of migration m0003
//! (trigram GIN on PostgreSQL, FTS5 trigram tables on SQLite): the words of
//! three characters or more together narrow the contacts' own texts, and
//! the companies' texts lead to their people. On PostgreSQL a page of
//! contacts holding every word as a whole token is read first, in name
//! order, from the token table of migration m0004.
//!
//! The ranking, per word: 3 points for a whole token of the contact's own
//! text (tokens end at spaces, `@` and `.`), 2 for the start of one, 1 for a
//! match elsewhere (inside a token, or only in the company's text).

use std::collections::HashMap;

use crm_shared::{
    db::{Tenant, TenantScoped},
    error::ApiError,
};
use sea_orm::{ColumnTrait, DbBackend, FromQueryResult, QueryFilter, Statement, Value};

use super::{Store, entities::contact};
use crate::domain::Contact;

/// FTS5's trigram index answers words of at least this many characters;
/// shorter ones are looked for row by row.
const TRIGRAM: usize = 3;

/// The columns of a matched contact that ranking reads.
const MATCH_COLUMNS: &str = "id, display_name, search_text, company, delete_time";

/// A contact found and its points (see the module docs).
#[derive(Debug, FromQueryResult)]
struct Hit {
    id: String,
    points: i64,
}

/// The values of one statement, its placeholders numbered as they are
/// added, and the backend's spelling of what differs.
struct Sql {
    backend: DbBackend,
    values: Vec<Value>,
}

impl Sql {
    /// A placeholder for `value`.
    fn bind(&mut self, value: impl Into<Value>) -> String {
        self.values.push(value.into());
        format!("${}", self.values.len())
    }

    /// The position of `needle` in `haystack` (0: absent).
    fn position(&self, haystack: &str, needle: &str) -> String {
        match self.backend {
            DbBackend::Postgres => format!("strpos({haystack}, {needle})"),
            _ => format!("instr({haystack}, {needle})"),
        }
    }

    /// A query for `columns` (of alias `t`) of `table`'s rows of `tenant`
    /// (a placeholder) whose search text contains every one of `words`, led by the table's
    /// index: all of them narrow it (PostgreSQL intersects their trigrams
    /// in one index scan, FTS5 their phrases), so a word with few distinct
    /// trigrams ("kakaka") no longer brings thousands of rows to recheck.
    fn rows_matching(
        &mut self,
        table: &str,
        columns: &str,
        tenant: &str,
        words: &[&str],
    ) -> String {
        let indexed = words.iter().all(|w| w.chars().count() >= TRIGRAM);
        match self.backend {
            DbBackend::Postgres => {
                let patterns: Vec<String> = words
                    .iter()
                    .map(|word| {
                        let pattern = self.bind(format!("%{}%", escape_like(word)));
                        format!(" AND t.search_text LIKE {pattern}")
                    })
                    .collect();
                format!(
                    "SELECT {columns} FROM {table} t WHERE t.tenant = {tenant}{}",
                    patterns.concat()
                )
            }
            _ if indexed => {
                // Quoted FTS5 strings: each word is matched as a substring,
                // none of it read as FTS5 syntax. CROSS JOIN makes the FTS5
                // table lead (SQLite plans without statistics here).
                let phrases: Vec<String> = words
                    .iter()
                    .map(|word| format!("\"{}\"", word.replace('"', "\"\"")))
                    .collect();
                let phrases = self.bind(phrases.join(" AND "));
                format!(
                    "SELECT {columns} FROM {table}_search CROSS JOIN {table} t ON t.rowid = {table}_search.rowid \
                     WHERE {table}_search MATCH {phrases} AND t.tenant = {tenant}"
                )
            }
            _ => {
                let found: Vec<String> = words
                    .iter()
                    .map(|word| {
                        let needle = self.bind((*word).to_owned());
                        format!(" AND {} > 0", self.position("t.search_text", &needle))
                    })
                    .collect();
                format!(
                    "SELECT {columns} FROM {table} t WHERE t.tenant = {tenant}{}",
                    found.concat()
                )
            }
        }
    }

    /// A query for the names (`companies/<id>`) of `tenant`'s companies
    /// whose search text contains `word`.
    fn companies_matching(&mut self, tenant: &str, word: &str) -> String {
        let ids = self.rows_matching("companies", "t.id", tenant, &[word]);
        format!("SELECT 'companies/' || m.id FROM ({ids}) m")
    }
}

/// `value` as a PostgreSQL string literal. An `E''` string reads its
/// backslashes as escapes whatever `standard_conforming_strings` says, so
/// doubling them and the quotes leaves nothing else to read.
fn text_literal(value: &str) -> String {
    format!("E'{}'", value.replace('\\', "\\\\").replace('\'', "''"))
}

/// Escapes `value` for a LIKE pattern with PostgreSQL's default escape `\`.
fn escape_like(value: &str) -> String {
    let mut escaped = String::with_capacity(value.len());
    for c in value.chars() {
        if matches!(c, '%' | '_' | '\\') {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    escaped
}

impl Store {
    /// The best `limit` live contacts matching every one of `words` (folded,
    /// as `query_words` gives them), best first, each with its points.
    pub async fn search_contacts(
        &self,
        tenant: &Tenant,
        words: &[String],
        limit: u64,
    ) -> Result<Vec<(Contact, i64)>, ApiError> {
        let statement = search_statement(self.db.backend(), tenant, words, limit);
        let hits = Hit::find_by_statement(statement).all(&self.db.conn).await?;
        let ids = hits.iter().map(|hit| hit.id.clone());
        let mut rows: HashMap<String, contact::Model> = contact::Entity::find_in(tenant)
            .filter(contact::Column::Id.is_in(ids))
            .all(&self.db.conn)
            .await?
            .into_iter()
            .map(|row| (row.id.clone(), row))
            .collect();
        // A contact erased between the two reads is left out, not an error.
        hits.into_iter()
            .filter_map(|hit| rows.remove(&hit.id).map(|row| (row, hit.points)))
            .map(|(row, points)| Ok((Contact::try_from(row)?, points)))
            .collect()
    }
}

/// One statement: the best `limit` live contacts matching every one of
/// `words` (see the module docs), as `(id, points)` rows, best first.
///
/// The matches are found through the indexes without reading the tenant:
/// a contact matching every word (on its own text or its company's) holds
/// the longest word (the lead) in its own text or its company's. Held in its
/// own text, either every indexed word is its own too (one index scan for
/// all of them), or some other word is only its company's (that word's
/// companies' people holding the lead). Held only by its company: that
/// company's people. Leading with the longest word keeps "ada lovelace"
/// from reading every Ada: a longer word is usually the rarer one.
///
/// On PostgreSQL, when no word spans tokens, the contacts holding every
/// word as a whole token of their own text (the most points there are) are
/// read first from `contact_search_tokens`, in name order up to `limit`;
/// only when there are fewer than `limit` of them is every match ranked.
///
/// `words` must not be empty (SearchContacts refuses an empty query).
pub fn search_statement(
    backend: DbBackend,
    tenant: &Tenant,
    words: &[String],
    limit: u64,
) -> Statement {
    let mut sql = Sql {
        backend,
        values: Vec::new(),
    };
    let tenant = sql.bind(tenant.as_str());
    let lead = (0..words.len())
        .max_by_key(|&i| (words[i].chars().count(), std::cmp::Reverse(i)))
        .unwrap_or(0);
    let indexed: Vec<&str> = words
        .iter()
        .map(String::as_str)
        .filter(|w| w.chars().count() >= TRIGRAM)
        .collect();
    // Only the lead is short when every word is: then it alone narrows.
    let own_words = if indexed.is_empty() {
        vec![words[lead].as_str()]
    } else {
        indexed
    };
    // The matches carry what ranking reads, so they are not joined back to
    // contacts: planned for 11,000 matches where there were 98 (a rare
    // word's trigram estimate), that join read all 1,000,000 contacts.
    let mut matched = vec![sql.rows_matching(
        "contacts",
        &format!("t.{}", MATCH_COLUMNS.replace(", ", ", t.")),
        &tenant,
        &own_words,
    )];
    let companies = sql.companies_matching(&tenant, &words[lead]);
    matched.push(format!(
        "SELECT {MATCH_COLUMNS} FROM contacts WHERE tenant = {tenant} AND company IN ({companies})"
    ));
    let mut others = Vec::new();
    for (i, word) in words.iter().enumerate() {
        if i == lead {
            continue;
        }
        // A short word is not in the own-text lookup: found only in the
        // company, it needs no branch of its own.
        if word.chars().count() >= TRIGRAM && *word != words[lead] {
            let companies = sql.companies_matching(&tenant, word);
            let lead_word = sql.bind(words[lead].clone());
            matched.push(format!(
                "SELECT {MATCH_COLUMNS} FROM contacts WHERE tenant = {tenant} \
                 AND company IN ({companies}) AND {} > 0",
                sql.position("search_text", &lead_word)
            ));
        }
        let needle = sql.bind(word.clone());
        // The company is read only for a contact whose own text lacks the
        // word (a probe per row, never a join over every company). A company
        // is named "companies/<id>": its id starts at character 11.
        others.push(format!(
            " AND ({} > 0 OR EXISTS (SELECT 1 FROM companies co WHERE co.tenant = {tenant} \
             AND co.id = substr(m.company, 11) AND {} > 0))",
            sql.position("m.search_text", &needle),
            sql.position("co.search_text", &needle),
        ));
    }
    // Tokens end at spaces, `@` and `.`: the text with those as spaces.
    let tokens = "(' ' || replace(replace(m.search_text, '@', ' '), '.', ' ') || ' ')";
    let mut points = Vec::with_capacity(words.len());
    for word in words {
        let whole = sql.bind(format!(" {word} "));
        let start = sql.bind(format!(" {word}"));
        points.push(format!(
            "CASE WHEN {} > 0 OR {} > 0 THEN 3 WHEN {} > 0 THEN 2 ELSE 1 END",
            sql.position("m.search_text", &whole),
            sql.position(tokens, &whole),
            sql.position(tokens, &start),
        ));
    }
    let size = limit;
    let limit = sql.bind(limit as i64);
    let ranked = format!(
        "SELECT m.id AS id, CAST({} AS BIGINT) AS points, m.display_name AS display_name \
         FROM matched m WHERE m.delete_time IS NULL{} \
         ORDER BY points DESC, m.display_name, m.id \
         LIMIT {limit}",
        points.join(" + "),
        others.join(""),
    );
    let matched = matched.join(" UNION ");
    let whole_tokens =
        backend == DbBackend::Postgres && words.iter().all(|w| !w.contains(['@', '.', ' ', '\0']));
    let text = if whole_tokens {
        // The lead's contacts in name order, each probed for the other
        // words through the same key (a contact's tokens share its name).
        // The words are written into the statement, not bound, so each
        // search is planned for its own words: after five runs of one text
        // PostgreSQL may settle on a generic plan, which sees neither how
        // common a word is nor how many rows its patterns match.
        let lead_word = text_literal(&words[lead]);
        let also: Vec<String> = words
            .iter()
            .filter(|w| **w != words[lead])
            .map(|word| {
                format!(
                    " AND EXISTS (SELECT 1 FROM contact_search_tokens o WHERE o.tenant = t.tenant \
                     AND o.token = {} AND o.display_name = t.display_name \
                     AND o.contact_id = t.contact_id)",
                    text_literal(word)
                )
            })
            .collect();
        let best = 3 * words.len();
        // Each branch below is gated on the count of `whole`, a one-time
        // filter: the ranking runs only when whole tokens fall short.
        format!(
            "WITH whole AS MATERIALIZED (\
               SELECT t.contact_id AS id, t.display_name AS display_name \
               FROM contact_search_tokens t JOIN contacts c ON c.tenant = t.tenant AND c.id = t.contact_id \
               WHERE t.tenant = {tenant} AND t.token = {lead_word} AND c.delete_time IS NULL{} \
               ORDER BY t.display_name, t.contact_id LIMIT {size}), \
             matched AS ({matched}) \
             SELECT id, points FROM (\
               SELECT id, CAST({best} AS BIGINT) AS points, display_name FROM whole \
               WHERE (SELECT count(*) FROM whole) >= {size} \
               UNION ALL \
               SELECT id, points, display_name FROM ({ranked}) r \
               WHERE (SELECT count(*) FROM whole) < {size}) hits \
             ORDER BY points DESC, display_name, id",
            also.concat(),
        )
    } else {
        format!(
            "WITH matched AS ({matched}) SELECT id, points FROM ({ranked}) r \
             ORDER BY points DESC, display_name, id"
        )
    };
    Statement::from_sql_and_values(backend, text, sql.values)
}

#[cfg(test)]
mod tests {
    use sea_orm::{ConnectionTrait, QueryTrait};
    use sea_orm_migration::MigratorTrait;

    use super::*;
    use crate::store::entities::{contact, contact_key};
    use crm_shared::db::TenantScoped;
    use sea_orm::{ColumnTrait, QueryFilter, QuerySelect};

    async fn sqlite_plan(db: &sea_orm::DatabaseConnection, statement: Statement) -> Vec<String> {
        db.query_all_raw(Statement::from_sql_and_values(
            DbBackend::Sqlite,
            format!("EXPLAIN QUERY PLAN {}", statement.sql),
            statement.values.map(|v| v.0).unwrap_or_default(),
        ))
        .await
        .expect("plan")
        .into_iter()
        .map(|row| row.try_get::<String>("", "detail").expect("detail"))
        .collect()
    }

    /// SQLite plans without statistics: each hot lookup must be led by the
    /// right index, or it reads the whole tenant (seconds at 1,000,000).
    #[tokio::test]
    async fn sqlite_lookups_are_led_by_their_indexes() {
        let mut options = sea_orm::ConnectOptions::new("sqlite::memory:");
        options.max_connections(1).sqlx_logging(false);
        let db = sea_orm::Database::connect(options).await.expect("db");
        crate::Migrator::up(&db, None).await.expect("migrated");
        let tenant = Tenant::new("acme");
        let words = vec!["ada".to_owned(), "lovelace".to_owned()];
        let plan = sqlite_plan(
            &db,
            search_statement(DbBackend::Sqlite, &tenant, &words, 20),
        )
        .await;
        assert!(
            plan.iter()
                .any(|line| line.starts_with("SCAN contacts_search VIRTUAL TABLE")),
            "{plan:?}"
        );
        assert!(
            !plan.iter().any(
                |line| line.starts_with("SCAN c") && !line.contains("VIRTUAL")
                    || line.contains("contacts_tenant_create_time")
            ),
            "no walk over the tenant's contacts: {plan:?}"
        );
        let page = contact::Entity::find_in(&tenant)
            .filter(contact::Column::Id.is_in(["a", "b"]))
            .build(DbBackend::Sqlite);
        assert_eq!(
            sqlite_plan(&db, page).await,
            ["SEARCH contacts USING INDEX contacts_tenant_id (tenant=? AND id=?)"]
        );
        let keys = contact_key::Entity::find_in(&tenant)
            .select_only()
            .column(contact_key::Column::Value)
            .filter(contact_key::Column::ContactId.eq("a"))
            .build(DbBackend::Sqlite);
        assert_eq!(
            sqlite_plan(&db, keys).await,
            [
                "SEARCH contact_keys USING COVERING INDEX contact_keys_of_contact (tenant=? AND contact_id=?)"
            ]
        );
    }

    #[test]
    fn text_literals_escape_quotes_and_backslashes() {
        assert_eq!(text_literal(r"o'brien\x"), r"E'o''brien\\x'");
    }

    #[test]
    fn like_metacharacters_match_literally() {
        assert_eq!(escape_like(r"50%_a\b"), r"50\%\_a\\b");
    }

    #[test]
    fn placeholders_follow_the_values() {
        let words = vec!["ada".to_owned(), "lo".to_owned()];
        for backend in [DbBackend::Postgres, DbBackend::Sqlite] {
            let statement = search_statement(backend, &Tenant::new("acme"), &words, 20);
            let values = statement.values.expect("values").0;
            let highest = (1..=values.len())
                .rev()
                .find(|n| statement.sql.contains(&format!("${n}")))
                .unwrap_or(0);
            assert_eq!(highest, values.len(), "{}", statement.sql);
        }
    }
}
