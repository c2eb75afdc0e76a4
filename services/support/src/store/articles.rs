//! Knowledge-base articles: their rows and versions, helpfulness votes and
//! links to tickets. Every write that changes an article's text keeps the
//! search index in step in the same transaction (`search`).

use chrono::Utc;
use crm_shared::{
    convert::{parse_stored, stored},
    db::{Tenant, TenantScoped, WriteTxn},
    error::ApiError,
    filter::{FieldKind, FilterField, FilterSchema},
    idempotency::IdempotencyKey,
    store::{Claim, ListQuery, Page, check_version},
};
use sea_orm::{
    ActiveModelTrait,
    ActiveValue::NotSet,
    ColumnTrait, EntityTrait, IntoActiveModel, QueryFilter, QuerySelect,
    sea_query::{Expr, ExprTrait, OnConflict},
};
use uuid::Uuid;

use super::{
    Store,
    entities::{article, article_link, article_version, article_vote},
    from_json, to_json,
};
use crate::domain::article::{
    ARTICLE_STATES, Article, ArticleChange, ArticleDraft, ArticleLink, ArticleState,
    ArticleVersion, search_config,
};

const STATE_VALUES: &[(&str, &str)] = &[
    ("DRAFT", "DRAFT"),
    ("PUBLISHED", "PUBLISHED"),
    ("ARCHIVED", "ARCHIVED"),
];

/// The fields an article filter may name.
pub const FILTER: FilterSchema = FilterSchema {
    fields: &[
        FilterField::new("state", FieldKind::Enum(STATE_VALUES)),
        FilterField::text("locale"),
        FilterField::text("category"),
        FilterField::new("tags", FieldKind::JsonStringArray),
        FilterField::new("create_time", FieldKind::Timestamp),
        FilterField::new("update_time", FieldKind::Timestamp),
        FilterField::new("publish_time", FieldKind::Timestamp),
    ],
};

/// The fields an article list may be ordered by.
pub const ORDER_BY: &[(&str, &str)] = &[
    ("title", "title"),
    ("create_time", "create_time"),
    ("update_time", "update_time"),
    ("publish_time", "publish_time"),
    ("helpful_count", "helpful_count"),
];

impl TryFrom<article::Model> for Article {
    type Error = ApiError;

    fn try_from(row: article::Model) -> Result<Self, ApiError> {
        let bad = |what: &str| ApiError::Internal(format!("stored article has a bad {what}"));
        Ok(Self {
            id: row.id.parse().map_err(|_| bad("id"))?,
            draft: ArticleDraft {
                title: row.title,
                body: row.body,
                locale: row.locale,
                category: row.category,
                tags: from_json("article tags", &row.tags)?,
            },
            state: parse_stored(ARTICLE_STATES, &row.state).ok_or_else(|| bad("state"))?,
            content_version: row.content_version,
            helpful_count: row.helpful_count,
            not_helpful_count: row.not_helpful_count,
            create_time: row.create_time,
            update_time: row.update_time,
            publish_time: row.publish_time,
            delete_time: row.delete_time,
            version: row.version,
        })
    }
}

/// An article's row. The vote counts are only ever added to in place
/// ([`Store::vote_article`]), so a row written back leaves them out.
fn article_row(tenant: &Tenant, a: &Article, search_key: Option<i64>) -> article::ActiveModel {
    let d = &a.draft;
    article::Model {
        id: a.id.to_string(),
        tenant: tenant.as_str().to_owned(),
        title: d.title.clone(),
        body: d.body.clone(),
        locale: d.locale.clone(),
        search_config: search_config(&d.locale).to_owned(),
        category: d.category.clone(),
        tags: to_json(&d.tags),
        state: stored(ARTICLE_STATES, a.state).to_owned(),
        content_version: a.content_version,
        helpful_count: a.helpful_count,
        not_helpful_count: a.not_helpful_count,
        search_key,
        create_time: a.create_time,
        update_time: a.update_time,
        publish_time: a.publish_time,
        delete_time: a.delete_time,
        version: a.version,
    }
    .into_active_model()
    .reset_all()
}

fn version_row(tenant: &Tenant, v: &ArticleVersion) -> article_version::ActiveModel {
    article_version::Model {
        id: Uuid::now_v7().to_string(),
        tenant: tenant.as_str().to_owned(),
        article_id: v.article.to_string(),
        number: v.number,
        title: v.draft.title.clone(),
        body: v.draft.body.clone(),
        locale: v.draft.locale.clone(),
        category: v.draft.category.clone(),
        tags: to_json(&v.draft.tags),
        author: v.author.clone(),
        create_time: v.create_time,
        delete_time: None,
        version: 1,
    }
    .into_active_model()
    .reset_all()
}

impl TryFrom<article_version::Model> for ArticleVersion {
    type Error = ApiError;

    fn try_from(row: article_version::Model) -> Result<Self, ApiError> {
        Ok(Self {
            article: row
                .article_id
                .parse()
                .map_err(|_| ApiError::Internal("stored article version has a bad id".into()))?,
            number: row.number,
            draft: ArticleDraft {
                title: row.title,
                body: row.body,
                locale: row.locale,
                category: row.category,
                tags: from_json("article version tags", &row.tags)?,
            },
            author: row.author,
            create_time: row.create_time,
        })
    }
}

impl TryFrom<article_link::Model> for ArticleLink {
    type Error = ApiError;

    fn try_from(row: article_link::Model) -> Result<Self, ApiError> {
        let bad = || ApiError::Internal("stored article link has a bad id".into());
        Ok(Self {
            ticket: row.ticket_id.parse().map_err(|_| bad())?,
            article: row.article_id.parse().map_err(|_| bad())?,
            article_title: String::new(),
            linked_by: row.linked_by,
            create_time: row.create_time,
        })
    }
}

impl Store {
    /// Writes a new article with its first version and its index entry; a
    /// retry with the same request id returns the first article.
    pub async fn create_article(
        &self,
        tenant: &Tenant,
        actor: &str,
        a: Article,
        request_id: Option<IdempotencyKey>,
    ) -> Result<Article, ApiError> {
        if let Some(existing) = self
            .base
            .replayed(tenant, "CreateArticle", request_id.as_ref())
            .await?
        {
            return self.get_article(tenant, super::id_of(&existing)).await;
        }
        let txn = self.base.db.begin_write().await?;
        let search_key = self.index_article(&txn, None, &a).await?;
        article::Entity::insert(article_row(tenant, &a, search_key))
            .exec(&*txn)
            .await?;
        article_version::Entity::insert(version_row(tenant, &ArticleVersion::of(&a, actor)))
            .exec(&*txn)
            .await?;
        let txn = match self
            .base
            .claim(txn, tenant, "CreateArticle", request_id.as_ref(), &a.name())
            .await?
        {
            Claim::Won(txn) => txn,
            Claim::Lost(existing) => {
                return self.get_article(tenant, super::id_of(&existing)).await;
            }
        };
        let event = self.event("ArticleCreated", a.name(), self.payloads.article(&a), actor);
        self.base.commit(txn, tenant, vec![event]).await?;
        Ok(a)
    }

    /// An article, deleted or not.
    pub async fn get_article(&self, tenant: &Tenant, id: Uuid) -> Result<Article, ApiError> {
        self.base
            .find::<article::Entity>(&self.base.db.conn, tenant, id, &format!("articles/{id}"))
            .await?
            .try_into()
    }

    /// One page of articles; drafts only `with_drafts`.
    pub async fn list_articles(
        &self,
        tenant: &Tenant,
        mut query: ListQuery,
        with_drafts: bool,
    ) -> Result<Page<Article>, ApiError> {
        if !with_drafts {
            query.condition = query
                .condition
                .add(article::Column::State.ne(stored(ARTICLE_STATES, ArticleState::Draft)));
        }
        self.base
            .list_page::<article::Entity, Article>(tenant, query)
            .await
    }

    /// Changes an article: `change` edits it and says what it did (nothing:
    /// `None`, and nothing is written). A new content version is kept and
    /// indexed with the row, in one transaction with the event.
    pub async fn update_article(
        &self,
        tenant: &Tenant,
        actor: &str,
        id: Uuid,
        expected_version: Option<i64>,
        change: impl FnOnce(&mut Article) -> Result<Option<ArticleChange>, ApiError>,
    ) -> Result<Article, ApiError> {
        let name = format!("articles/{id}");
        let txn = self.base.db.begin_write().await?;
        let row = self
            .base
            .find::<article::Entity>(&*txn, tenant, id, &name)
            .await?;
        let search_key = row.search_key;
        let mut a = Article::try_from(row)?;
        check_version(&name, expected_version, a.version)?;
        let (stored_version, stored_content) = (a.version, a.content_version);
        let Some(what) = change(&mut a)? else {
            return Ok(a);
        };
        a.version += 1;
        a.update_time = Utc::now();
        let mut row = article_row(tenant, &a, search_key);
        row.helpful_count = NotSet;
        row.not_helpful_count = NotSet;
        self.base
            .save_versioned::<article::Entity>(&txn, tenant, &name, id, stored_version, row)
            .await?;
        if a.content_version != stored_content {
            article_version::Entity::insert(version_row(tenant, &ArticleVersion::of(&a, actor)))
                .exec(&*txn)
                .await?;
            self.index_article(&txn, search_key, &a).await?;
        }
        let event = self.event(what.event(), a.name(), self.payloads.article(&a), actor);
        self.base.commit(txn, tenant, vec![event]).await?;
        Ok(a)
    }

    /// One page of an article's versions, newest first.
    pub async fn list_article_versions(
        &self,
        tenant: &Tenant,
        article_id: Uuid,
        mut query: ListQuery,
    ) -> Result<Page<ArticleVersion>, ApiError> {
        query.condition = query
            .condition
            .add(article_version::Column::ArticleId.eq(article_id.to_string()));
        self.base
            .list_page::<article_version::Entity, ArticleVersion>(tenant, query)
            .await
    }

    /// Records `subject`'s vote on a published article, replacing their
    /// earlier one; the counts move in place (a vote never conflicts with an
    /// edit). Returns the article with its counts.
    pub async fn vote_article(
        &self,
        tenant: &Tenant,
        subject: &str,
        id: Uuid,
        helpful: bool,
    ) -> Result<Article, ApiError> {
        let name = format!("articles/{id}");
        let txn = self.base.db.begin_write().await?;
        // One voter's votes on one article apply one after another.
        txn.serialize_on(&format!("{name}/votes/{subject}")).await?;
        let a = self.load_article(&txn, tenant, id).await?;
        a.check_published("voted on")?;
        let earlier = article_vote::Entity::find_in(tenant)
            .filter(article_vote::Column::ArticleId.eq(id.to_string()))
            .filter(article_vote::Column::Subject.eq(subject))
            .one(&*txn)
            .await?
            .map(|vote| vote.helpful);
        let step = |yes: bool| -> (i64, i64) { if yes { (1, 0) } else { (0, 1) } };
        let (up, down) = match earlier {
            Some(same) if same == helpful => return Ok(a),
            Some(before) => {
                let (old_up, old_down) = step(before);
                let (new_up, new_down) = step(helpful);
                (new_up - old_up, new_down - old_down)
            }
            None => step(helpful),
        };
        let vote = article_vote::ActiveModel {
            tenant: sea_orm::Set(tenant.as_str().to_owned()),
            article_id: sea_orm::Set(id.to_string()),
            subject: sea_orm::Set(subject.to_owned()),
            helpful: sea_orm::Set(helpful),
            vote_time: sea_orm::Set(Utc::now()),
        };
        article_vote::Entity::insert(vote)
            .on_conflict(
                OnConflict::columns([
                    article_vote::Column::Tenant,
                    article_vote::Column::ArticleId,
                    article_vote::Column::Subject,
                ])
                .update_columns([
                    article_vote::Column::Helpful,
                    article_vote::Column::VoteTime,
                ])
                .to_owned(),
            )
            .exec(&*txn)
            .await?;
        article::Entity::update_many()
            .col_expr(
                article::Column::HelpfulCount,
                Expr::col(article::Column::HelpfulCount).add(up),
            )
            .col_expr(
                article::Column::NotHelpfulCount,
                Expr::col(article::Column::NotHelpfulCount).add(down),
            )
            .filter(article::Column::Tenant.eq(tenant.as_str()))
            .filter(article::Column::Id.eq(id.to_string()))
            .exec(&*txn)
            .await?;
        let a = self.load_article(&txn, tenant, id).await?;
        let event = self.event("ArticleVoted", a.name(), self.payloads.article(&a), subject);
        self.base.commit(txn, tenant, vec![event]).await?;
        Ok(a)
    }

    async fn load_article(
        &self,
        txn: &WriteTxn,
        tenant: &Tenant,
        id: Uuid,
    ) -> Result<Article, ApiError> {
        self.base
            .find::<article::Entity>(&**txn, tenant, id, &format!("articles/{id}"))
            .await?
            .try_into()
    }

    /// Links a published article to a live ticket; a link made before is
    /// returned as it is, without a second event.
    pub async fn link_article(
        &self,
        tenant: &Tenant,
        actor: &str,
        ticket_id: Uuid,
        article_id: Uuid,
    ) -> Result<ArticleLink, ApiError> {
        let txn = self.base.db.begin_write().await?;
        let ticket = self.load_ticket(&*txn, tenant, ticket_id).await?;
        if ticket.delete_time.is_some() {
            return Err(ApiError::FailedPrecondition(format!(
                "{} is deleted",
                ticket.name()
            )));
        }
        let a = self.load_article(&txn, tenant, article_id).await?;
        a.check_published("linked to a ticket")?;
        let row = article_link::Model {
            id: Uuid::now_v7().to_string(),
            tenant: tenant.as_str().to_owned(),
            ticket_id: ticket_id.to_string(),
            article_id: article_id.to_string(),
            linked_by: actor.to_owned(),
            create_time: Utc::now(),
            delete_time: None,
            version: 1,
        };
        let inserted = article_link::Entity::insert(row.clone().into_active_model())
            .on_conflict_do_nothing_on([
                article_link::Column::Tenant,
                article_link::Column::TicketId,
                article_link::Column::ArticleId,
            ])
            .exec(&*txn)
            .await?;
        let fresh = matches!(inserted, sea_orm::TryInsertResult::Inserted(_));
        let row = if fresh {
            row
        } else {
            article_link::Entity::find_in(tenant)
                .filter(article_link::Column::TicketId.eq(ticket_id.to_string()))
                .filter(article_link::Column::ArticleId.eq(article_id.to_string()))
                .one(&*txn)
                .await?
                .ok_or_else(|| ApiError::Aborted("a concurrent link failed; retry".into()))?
        };
        let link = ArticleLink {
            article_title: a.draft.title.clone(),
            ..ArticleLink::try_from(row)?
        };
        if !fresh {
            return Ok(link);
        }
        let event = self.event(
            "ArticleLinked",
            link.name(),
            self.payloads.article_link(&link),
            actor,
        );
        self.base.commit(txn, tenant, vec![event]).await?;
        Ok(link)
    }

    /// One page of the articles linked to a ticket, oldest link first, each
    /// with its article's title now.
    pub async fn list_article_links(
        &self,
        tenant: &Tenant,
        ticket_id: Uuid,
        mut query: ListQuery,
    ) -> Result<Page<ArticleLink>, ApiError> {
        self.get_ticket(tenant, ticket_id).await?;
        query.condition = query
            .condition
            .add(article_link::Column::TicketId.eq(ticket_id.to_string()));
        let mut page = self
            .base
            .list_page::<article_link::Entity, ArticleLink>(tenant, query)
            .await?;
        let ids: Vec<String> = page.items.iter().map(|l| l.article.to_string()).collect();
        let titles: std::collections::HashMap<String, String> = article::Entity::find_in(tenant)
            .select_only()
            .column(article::Column::Id)
            .column(article::Column::Title)
            .filter(article::Column::Id.is_in(ids))
            .into_tuple::<(String, String)>()
            .all(&self.base.db.conn)
            .await?
            .into_iter()
            .collect();
        for link in &mut page.items {
            link.article_title = titles
                .get(&link.article.to_string())
                .cloned()
                .unwrap_or_default();
        }
        Ok(page)
    }
}
