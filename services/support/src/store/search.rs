//! Ranked full-text search over articles, one way per backend, and the
//! index kept in step with every article write.
//!
//! PostgreSQL: `articles.search_vector` is a generated `tsvector` in the
//! article's own text-search configuration (English, German, French or
//! Spanish stemming by its locale, else `simple`): title weighted A, body B,
//! category and tags C, under a GIN index. A query is parsed by
//! `websearch_to_tsquery` in each configuration searched, matched with `@@`
//! and ranked by `ts_rank_cd`; snippets come from `ts_headline`.
//!
//! SQLite: the FTS5 table `article_fts` (title, body, keywords), whose rowid
//! is the article's `search_key`, written in the article's transaction.
//! A query is rendered as FTS5 syntax in which every word and phrase of the
//! caller is a quoted string, so none of it is read as FTS5 operators;
//! results are ranked by `bm25` with the title weighted ten times the body;
//! snippets come from `snippet()`.
//!
//! Either way the tenant, the states searched and the locale are conditions
//! on the article row, and only the page asked for gets its snippets made.

use std::collections::HashMap;

use crm_shared::{
    convert::stored,
    db::{Tenant, TenantScoped, WriteTxn},
    error::ApiError,
};
use sea_orm::{ColumnTrait, ConnectionTrait, DbBackend, QueryFilter, Statement, Value};
use uuid::Uuid;

use super::{Store, entities::article};
use crate::domain::article::{
    ARTICLE_STATES, Article, ArticleState, Clause, MATCH_END, MATCH_START, SEARCH_CONFIGS,
    SearchQuery, search_config,
};

/// What to search for, and where.
#[derive(Debug, Clone)]
pub struct ArticleSearch<'a> {
    /// The query.
    pub query: &'a SearchQuery,
    /// Only articles in this language (canonical BCP 47; "de" takes "de-CH").
    pub locale: Option<&'a str>,
    /// The states searched.
    pub states: &'a [ArticleState],
    /// Results to skip.
    pub offset: u64,
    /// Results to return.
    pub limit: u64,
}

/// An article found, with its score (higher is better) and a passage of its
/// body with the matches between [`MATCH_START`] and [`MATCH_END`].
#[derive(Debug, Clone)]
pub struct Found {
    /// The article.
    pub article: Article,
    /// How well it matched.
    pub score: f64,
    /// The passage.
    pub snippet: String,
}

/// bm25 weights of `article_fts`'s columns: title, body, keywords.
const BM25: &str = "bm25(article_fts, 10.0, 1.0, 4.0)";
/// Words of body around the matches in a snippet.
const SNIPPET_WORDS: u32 = 24;

/// A statement under construction: its text and the values bound to it.
struct Sql {
    backend: DbBackend,
    text: String,
    values: Vec<Value>,
}

impl Sql {
    fn new(backend: DbBackend) -> Self {
        Self {
            backend,
            text: String::new(),
            values: Vec::new(),
        }
    }

    /// Binds `value` and returns its placeholder (numbered on both backends).
    fn bind(&mut self, value: impl Into<Value>) -> String {
        self.values.push(value.into());
        match self.backend {
            DbBackend::Postgres => format!("${}", self.values.len()),
            _ => format!("?{}", self.values.len()),
        }
    }

    fn push(&mut self, text: &str) {
        self.text.push_str(text);
    }

    fn statement(self) -> Statement {
        Statement::from_sql_and_values(self.backend, self.text, self.values)
    }
}

/// A term as an FTS5 string: quoted, so it is only ever words to match.
fn fts5_string(text: &str) -> String {
    format!("\"{}\"", text.replace('"', "\"\""))
}

/// The query as an FTS5 expression: each clause's terms quoted and ORed,
/// the clauses ANDed, the excluded terms taken away with NOT.
pub fn fts5_match(query: &SearchQuery) -> String {
    let mut wanted = Vec::new();
    let mut unwanted = Vec::new();
    for clause in &query.clauses {
        match clause {
            Clause::Any(terms) => {
                let any: Vec<String> = terms.iter().map(|t| fts5_string(t.text())).collect();
                wanted.push(format!("({})", any.join(" OR ")));
            }
            Clause::Not(term) => unwanted.push(fts5_string(term.text())),
        }
    }
    let wanted = wanted.join(" AND ");
    if unwanted.is_empty() {
        wanted
    } else {
        format!("({wanted}) NOT ({})", unwanted.join(" OR "))
    }
}

/// The query in `websearch_to_tsquery`'s syntax: every term a quoted
/// phrase, `or` between a clause's terms, `-` before an excluded one.
pub fn websearch_text(query: &SearchQuery) -> String {
    let quoted = |text: &str| format!("\"{}\"", text.replace('"', " "));
    query
        .clauses
        .iter()
        .map(|clause| match clause {
            Clause::Any(terms) => terms
                .iter()
                .map(|t| quoted(t.text()))
                .collect::<Vec<_>>()
                .join(" or "),
            Clause::Not(term) => format!("-{}", quoted(term.text())),
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// The text of the keywords column: category and tags.
fn keywords(a: &Article) -> String {
    let mut words = vec![a.draft.category.clone()];
    words.extend(a.draft.tags.iter().cloned());
    words.join(" ")
}

/// The conditions every search puts on the article row `a`.
fn row_conditions(sql: &mut Sql, tenant: &Tenant, search: &ArticleSearch<'_>) {
    let tenant = sql.bind(tenant.as_str());
    sql.push(&format!(
        " AND a.tenant = {tenant} AND a.delete_time IS NULL"
    ));
    let states: Vec<String> = search
        .states
        .iter()
        .map(|s| sql.bind(stored(ARTICLE_STATES, *s)))
        .collect();
    sql.push(&format!(" AND a.state IN ({})", states.join(", ")));
    if let Some(locale) = search.locale {
        // Canonical tags hold only letters, digits and "-": no LIKE wildcards.
        let exact = sql.bind(locale);
        let below = sql.bind(format!("{locale}-%"));
        sql.push(&format!(
            " AND (a.locale = {exact} OR a.locale LIKE {below})"
        ));
    }
}

impl Store {
    /// Writes an article's text to the SQLite index: at `key` (replacing
    /// what was there), or at a new key, which is returned. PostgreSQL
    /// indexes the row itself (a generated column): nothing to do, `None`.
    pub(super) async fn index_article(
        &self,
        txn: &WriteTxn,
        key: Option<i64>,
        a: &Article,
    ) -> Result<Option<i64>, ApiError> {
        let backend = txn.get_database_backend();
        if backend == DbBackend::Postgres {
            return Ok(None);
        }
        let text: [Value; 3] = [
            a.draft.title.clone().into(),
            a.draft.body.clone().into(),
            keywords(a).into(),
        ];
        if let Some(key) = key {
            txn.execute_raw(Statement::from_sql_and_values(
                backend,
                "DELETE FROM article_fts WHERE rowid = ?1",
                [key.into()],
            ))
            .await?;
            let [title, body, words] = text;
            txn.execute_raw(Statement::from_sql_and_values(
                backend,
                "INSERT INTO article_fts (rowid, title, body, keywords) VALUES (?1, ?2, ?3, ?4)",
                [key.into(), title, body, words],
            ))
            .await?;
            return Ok(Some(key));
        }
        txn.execute_raw(Statement::from_sql_and_values(
            backend,
            "INSERT INTO article_fts (title, body, keywords) VALUES (?1, ?2, ?3)",
            text,
        ))
        .await?;
        // The same connection, in the same transaction: the row just written.
        let row = txn
            .query_one_raw(Statement::from_string(
                backend,
                "SELECT last_insert_rowid()",
            ))
            .await?
            .ok_or_else(|| ApiError::Internal("last_insert_rowid returned no row".into()))?;
        Ok(Some(row.try_get_by_index::<i64>(0)?))
    }

    /// One page of the articles that match a search, best first.
    pub async fn search_articles(
        &self,
        tenant: &Tenant,
        search: &ArticleSearch<'_>,
    ) -> Result<Vec<Found>, ApiError> {
        let hits = match self.base.db.backend() {
            DbBackend::Postgres => self.search_postgres(tenant, search).await?,
            _ => self.search_sqlite(tenant, search).await?,
        };
        if hits.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<String> = hits.iter().map(|(id, _, _)| id.to_string()).collect();
        let mut articles: HashMap<Uuid, Article> = article::Entity::find_in(tenant)
            .filter(article::Column::Id.is_in(ids))
            .all(&self.base.db.conn)
            .await?
            .into_iter()
            .map(|row| Article::try_from(row).map(|a| (a.id, a)))
            .collect::<Result<_, _>>()?;
        Ok(hits
            .into_iter()
            .filter_map(|(id, score, snippet)| {
                articles.remove(&id).map(|article| Found {
                    article,
                    score,
                    snippet,
                })
            })
            .collect())
    }

    /// PostgreSQL: each configuration searched parses the query once; an
    /// article is matched and ranked with its own configuration's query.
    async fn search_postgres(
        &self,
        tenant: &Tenant,
        search: &ArticleSearch<'_>,
    ) -> Result<Vec<(Uuid, f64, String)>, ApiError> {
        let configs: Vec<&str> = match search.locale {
            Some(locale) => vec![search_config(locale)],
            None => SEARCH_CONFIGS.to_vec(),
        };
        let mut sql = Sql::new(DbBackend::Postgres);
        let text = sql.bind(websearch_text(search.query));
        let rows: Vec<String> = configs
            .iter()
            .map(|c| format!("({})", sql.bind(*c)))
            .collect();
        sql.push(&format!(
            "WITH q AS (SELECT c.cfg, websearch_to_tsquery(c.cfg::regconfig, {text}) AS query \
             FROM (VALUES {}) AS c(cfg)), \
             top AS (SELECT a.id, a.body, q.cfg, q.query, \
             ts_rank_cd(a.search_vector, q.query)::float8 AS score \
             FROM q JOIN articles a ON a.search_config = q.cfg AND a.search_vector @@ q.query \
             WHERE TRUE",
            rows.join(", ")
        ));
        row_conditions(&mut sql, tenant, search);
        let limit = sql.bind(search.limit as i64);
        let offset = sql.bind(search.offset as i64);
        let options = sql.bind(format!(
            "StartSel={MATCH_START}, StopSel={MATCH_END}, MaxWords={SNIPPET_WORDS}, \
             MinWords=8, ShortWord=2, MaxFragments=2, FragmentDelimiter=\" … \""
        ));
        sql.push(&format!(
            " ORDER BY score DESC, a.id LIMIT {limit} OFFSET {offset}) \
             SELECT id, score, ts_headline(cfg::regconfig, body, query, {options}) \
             FROM top ORDER BY score DESC, id"
        ));
        let rows = self.base.db.conn.query_all_raw(sql.statement()).await?;
        rows.into_iter()
            .map(|row| {
                let id: String = row.try_get_by_index(0)?;
                Ok((
                    parse_id(&id)?,
                    row.try_get_by_index::<f64>(1)?,
                    row.try_get_by_index::<String>(2)?,
                ))
            })
            .collect()
    }

    /// SQLite: rank every match with bm25, then make snippets for the page.
    async fn search_sqlite(
        &self,
        tenant: &Tenant,
        search: &ArticleSearch<'_>,
    ) -> Result<Vec<(Uuid, f64, String)>, ApiError> {
        let conn = &self.base.db.conn;
        let expression = fts5_match(search.query);
        let ranked: Vec<(Uuid, i64, f64)> = conn
            .query_all_raw(sqlite_ranking(tenant, search, &expression))
            .await?
            .into_iter()
            .map(|row| {
                let id: String = row.try_get_by_index(0)?;
                Ok((
                    parse_id(&id)?,
                    row.try_get_by_index::<i64>(1)?,
                    row.try_get_by_index::<f64>(2)?,
                ))
            })
            .collect::<Result<_, ApiError>>()?;
        if ranked.is_empty() {
            return Ok(Vec::new());
        }
        let keys: Vec<i64> = ranked.iter().map(|(_, key, _)| *key).collect();
        let mut snippets: HashMap<i64, String> = conn
            .query_all_raw(sqlite_snippets(&expression, &keys))
            .await?
            .into_iter()
            .map(|row| Ok((row.try_get_by_index(0)?, row.try_get_by_index(1)?)))
            .collect::<Result<_, sea_orm::DbErr>>()?;
        Ok(ranked
            .into_iter()
            .map(|(id, key, rank)| {
                // bm25 is lower for better matches; scores are higher.
                (id, -rank, snippets.remove(&key).unwrap_or_default())
            })
            .collect())
    }
}

/// SQLite: the page of matches, ranked: id, search key and bm25.
///
/// The FTS5 table must drive the join (CROSS JOIN fixes SQLite's join
/// order): led by the articles' index instead, SQLite would look every
/// article of the tenant up in the full-text index, one seek per article
/// (seconds per search at 100,000 articles).
fn sqlite_ranking(tenant: &Tenant, search: &ArticleSearch<'_>, expression: &str) -> Statement {
    let mut sql = Sql::new(DbBackend::Sqlite);
    let matching = sql.bind(expression);
    sql.push(&format!(
        "SELECT a.id, a.search_key, {BM25} AS rank \
         FROM article_fts CROSS JOIN articles a ON a.search_key = article_fts.rowid \
         WHERE article_fts MATCH {matching}"
    ));
    row_conditions(&mut sql, tenant, search);
    let limit = sql.bind(search.limit as i64);
    let offset = sql.bind(search.offset as i64);
    sql.push(&format!(
        " ORDER BY rank, a.id LIMIT {limit} OFFSET {offset}"
    ));
    sql.statement()
}

/// SQLite: the snippets of the articles at `keys`, by key.
fn sqlite_snippets(expression: &str, keys: &[i64]) -> Statement {
    let mut sql = Sql::new(DbBackend::Sqlite);
    let matching = sql.bind(expression);
    let start = sql.bind(MATCH_START.to_string());
    let end = sql.bind(MATCH_END.to_string());
    let keys: Vec<String> = keys.iter().map(|key| sql.bind(*key)).collect();
    sql.push(&format!(
        "SELECT rowid, snippet(article_fts, 1, {start}, {end}, '…', {SNIPPET_WORDS}) \
         FROM article_fts WHERE article_fts MATCH {matching} AND rowid IN ({})",
        keys.join(", ")
    ));
    sql.statement()
}

fn parse_id(id: &str) -> Result<Uuid, ApiError> {
    id.parse()
        .map_err(|_| ApiError::Internal(format!("stored article id {id:?}")))
}

#[cfg(test)]
mod tests {
    use sea_orm::QueryTrait;
    use sea_orm_migration::MigratorTrait;

    use super::*;

    /// SQLite's plan for a search: the full-text index first, each match's
    /// article by its key. Planned the other way round, a search at 100,000
    /// articles took seconds.
    #[tokio::test]
    async fn sqlite_searches_the_index_first() {
        let mut options = sea_orm::ConnectOptions::new("sqlite::memory:");
        options.max_connections(1).sqlx_logging(false);
        let db = sea_orm::Database::connect(options).await.unwrap();
        crate::Migrator::up(&db, None).await.unwrap();
        let query = SearchQuery::parse("refund card", "query").unwrap();
        let search = ArticleSearch {
            query: &query,
            locale: Some("en"),
            states: &[ArticleState::Published, ArticleState::Draft],
            offset: 0,
            limit: 20,
        };
        let ranking = sqlite_ranking(&Tenant::new("acme"), &search, &fts5_match(&query));
        let plan: Vec<String> = db
            .query_all_raw(Statement::from_sql_and_values(
                DbBackend::Sqlite,
                format!("EXPLAIN QUERY PLAN {}", ranking.sql),
                ranking.values.map(|v| v.0).unwrap_or_default(),
            ))
            .await
            .unwrap()
            .into_iter()
            .map(|row| row.try_get::<String>("", "detail").unwrap())
            .collect();
        assert!(
            plan[0].starts_with("SCAN article_fts VIRTUAL TABLE"),
            "{plan:?}"
        );
        assert!(
            plan[1].contains("USING INDEX articles_search_key"),
            "{plan:?}"
        );
        // The page's articles by their ids, not every article of the tenant.
        let ids: Vec<String> = (0..20).map(|_| Uuid::now_v7().to_string()).collect();
        let page = article::Entity::find_in(&Tenant::new("acme"))
            .filter(article::Column::Id.is_in(ids))
            .build(DbBackend::Sqlite);
        let plan = db
            .query_all_raw(Statement::from_sql_and_values(
                DbBackend::Sqlite,
                format!("EXPLAIN QUERY PLAN {}", page.sql),
                page.values.map(|v| v.0).unwrap_or_default(),
            ))
            .await
            .unwrap()
            .into_iter()
            .map(|row| row.try_get::<String>("", "detail").unwrap())
            .collect::<Vec<_>>();
        assert_eq!(
            plan,
            ["SEARCH articles USING INDEX articles_tenant_id (tenant=? AND id=?)"]
        );
    }

    #[test]
    fn every_term_is_quoted_for_fts5_and_websearch() {
        let q = SearchQuery::parse(
            r#"refund "credit card" or pay*pal -crypto NEAR(a) col:x ^y"#,
            "query",
        )
        .unwrap();
        assert_eq!(
            fts5_match(&q),
            r#"(("refund") AND ("credit card" OR "pay*pal") AND ("NEAR(a)") AND ("col:x") AND ("^y")) NOT ("crypto")"#
        );
        assert_eq!(
            websearch_text(&q),
            r#""refund" "credit card" or "pay*pal" -"crypto" "NEAR(a)" "col:x" "^y""#
        );
    }
}
