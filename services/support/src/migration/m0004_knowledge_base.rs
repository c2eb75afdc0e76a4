//! The knowledge base: articles with their versions, votes and links to
//! tickets, and each backend's full-text index over them: on PostgreSQL a
//! generated, weighted `tsvector` column with a GIN index; on SQLite an FTS5
//! table the store keeps in step with every write.

use sea_orm_migration::{prelude::*, schema::*, sea_orm::DbBackend};

/// The text-search configurations articles are indexed in, as this step
/// made the column (a later change is a later step); the domain's
/// `search_config` answers only these, which a test checks.
pub(crate) const SEARCH_CONFIGS: &[&str] = &["english", "german", "french", "spanish", "simple"];

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Articles {
    Table,
    Title,
    Body,
    Locale,
    SearchConfig,
    Category,
    Tags,
    State,
    ContentVersion,
    HelpfulCount,
    NotHelpfulCount,
    SearchKey,
    PublishTime,
}

#[derive(DeriveIden)]
enum ArticleVersions {
    Table,
    ArticleId,
    Number,
    Title,
    Body,
    Locale,
    Category,
    Tags,
    Author,
}

#[derive(DeriveIden)]
enum ArticleVotes {
    Table,
    ArticleId,
    Subject,
    Helpful,
    VoteTime,
}

#[derive(DeriveIden)]
enum ArticleLinks {
    Table,
    TicketId,
    ArticleId,
    LinkedBy,
}

/// The columns most tables have.
#[derive(DeriveIden)]
enum Common {
    Id,
    Tenant,
    CreateTime,
    UpdateTime,
    DeleteTime,
    Version,
}

/// The weighted document of one configuration: title A, body B, category
/// and tags C (ts_rank_cd weighs A 1.0, B 0.4, C 0.2).
fn weighted(config: &str) -> String {
    format!(
        "setweight(to_tsvector('{config}'::regconfig, title), 'A') || \
         setweight(to_tsvector('{config}'::regconfig, body), 'B') || \
         setweight(to_tsvector('{config}'::regconfig, category || ' ' || tags), 'C')"
    )
}

/// PostgreSQL: the search vector, computed by the database from the row in
/// the article's own configuration. A generated column needs an immutable
/// expression, so each configuration is a constant of its own branch.
fn postgres_search_vector() -> String {
    let branches: String = SEARCH_CONFIGS
        .iter()
        .filter(|config| **config != "simple")
        .map(|config| format!(" WHEN '{config}' THEN {}", weighted(config)))
        .collect();
    format!(
        "ALTER TABLE articles ADD COLUMN IF NOT EXISTS search_vector tsvector \
         GENERATED ALWAYS AS (CASE search_config{branches} ELSE {} END) STORED",
        weighted("simple")
    )
}

/// SQLite: the FTS5 index; its rowid is the article's `search_key`. Porter
/// stemming over Unicode words, diacritics folded.
const SQLITE_FTS: &str = "CREATE VIRTUAL TABLE IF NOT EXISTS article_fts USING fts5(\
     title, body, keywords, tokenize = 'porter unicode61 remove_diacritics 2')";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Articles::Table)
                    .if_not_exists()
                    .col(string(Common::Id).primary_key())
                    .col(string(Common::Tenant))
                    .col(string(Articles::Title))
                    .col(text(Articles::Body))
                    .col(string(Articles::Locale))
                    .col(string(Articles::SearchConfig))
                    .col(string(Articles::Category))
                    .col(text(Articles::Tags))
                    .col(string(Articles::State))
                    .col(big_integer(Articles::ContentVersion))
                    .col(big_integer(Articles::HelpfulCount))
                    .col(big_integer(Articles::NotHelpfulCount))
                    .col(big_integer_null(Articles::SearchKey))
                    .col(timestamp_with_time_zone(Common::CreateTime))
                    .col(timestamp_with_time_zone(Common::UpdateTime))
                    .col(timestamp_with_time_zone_null(Articles::PublishTime))
                    .col(timestamp_with_time_zone_null(Common::DeleteTime))
                    .col(big_integer(Common::Version))
                    .to_owned(),
            )
            .await?;
        for (name, columns) in [
            (
                "articles_tenant_create_time",
                vec![Common::CreateTime.into_iden(), Common::Id.into_iden()],
            ),
            (
                "articles_tenant_state_locale",
                vec![Articles::State.into_iden(), Articles::Locale.into_iden()],
            ),
        ] {
            let mut index = Index::create();
            index
                .name(name)
                .table(Articles::Table)
                .col(Common::Tenant)
                .if_not_exists();
            for column in columns {
                index.col(column);
            }
            manager.create_index(index.to_owned()).await?;
        }
        // SQLite plans from indexes alone (no statistics): without this one,
        // `tenant = ? AND id IN (...)` (a page of search results) walks every
        // article of the tenant through the tenant's other indexes.
        manager
            .create_index(
                Index::create()
                    .name("articles_tenant_id")
                    .table(Articles::Table)
                    .col(Common::Tenant)
                    .col(Common::Id)
                    .unique()
                    .if_not_exists()
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("articles_search_key")
                    .table(Articles::Table)
                    .col(Articles::SearchKey)
                    .unique()
                    .if_not_exists()
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(ArticleVersions::Table)
                    .if_not_exists()
                    .col(string(Common::Id).primary_key())
                    .col(string(Common::Tenant))
                    .col(string(ArticleVersions::ArticleId))
                    .col(big_integer(ArticleVersions::Number))
                    .col(string(ArticleVersions::Title))
                    .col(text(ArticleVersions::Body))
                    .col(string(ArticleVersions::Locale))
                    .col(string(ArticleVersions::Category))
                    .col(text(ArticleVersions::Tags))
                    .col(string(ArticleVersions::Author))
                    .col(timestamp_with_time_zone(Common::CreateTime))
                    .col(timestamp_with_time_zone_null(Common::DeleteTime))
                    .col(big_integer(Common::Version))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("article_versions_tenant_article_number")
                    .table(ArticleVersions::Table)
                    .col(Common::Tenant)
                    .col(ArticleVersions::ArticleId)
                    .col(ArticleVersions::Number)
                    .unique()
                    .if_not_exists()
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(ArticleVotes::Table)
                    .if_not_exists()
                    .col(string(Common::Tenant))
                    .col(string(ArticleVotes::ArticleId))
                    .col(string(ArticleVotes::Subject))
                    .col(boolean(ArticleVotes::Helpful))
                    .col(timestamp_with_time_zone(ArticleVotes::VoteTime))
                    .primary_key(
                        Index::create()
                            .col(Common::Tenant)
                            .col(ArticleVotes::ArticleId)
                            .col(ArticleVotes::Subject),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(ArticleLinks::Table)
                    .if_not_exists()
                    .col(string(Common::Id).primary_key())
                    .col(string(Common::Tenant))
                    .col(string(ArticleLinks::TicketId))
                    .col(string(ArticleLinks::ArticleId))
                    .col(string(ArticleLinks::LinkedBy))
                    .col(timestamp_with_time_zone(Common::CreateTime))
                    .col(timestamp_with_time_zone_null(Common::DeleteTime))
                    .col(big_integer(Common::Version))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("article_links_tenant_ticket_article")
                    .table(ArticleLinks::Table)
                    .col(Common::Tenant)
                    .col(ArticleLinks::TicketId)
                    .col(ArticleLinks::ArticleId)
                    .unique()
                    .if_not_exists()
                    .to_owned(),
            )
            .await?;
        let db = manager.get_connection();
        match manager.get_database_backend() {
            DbBackend::Postgres => {
                db.execute_unprepared(&postgres_search_vector()).await?;
                db.execute_unprepared(
                    "CREATE INDEX IF NOT EXISTS articles_search_vector \
                     ON articles USING GIN (search_vector)",
                )
                .await?;
            }
            _ => {
                db.execute_unprepared(SQLITE_FTS).await?;
            }
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.get_database_backend() == DbBackend::Sqlite {
            manager
                .get_connection()
                .execute_unprepared("DROP TABLE IF EXISTS article_fts")
                .await?;
        }
        for table in [
            ArticleLinks::Table.into_iden(),
            ArticleVotes::Table.into_iden(),
            ArticleVersions::Table.into_iden(),
            Articles::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).if_exists().to_owned())
                .await?;
        }
        Ok(())
    }
}
