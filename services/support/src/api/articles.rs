//! The knowledge base: articles written, published and archived by admins
//! and managers; read, searched and voted on by everyone in the tenant;
//! linked to tickets by agents and suggested for them.

use chrono::Utc;
use crm_proto::support as pb;
use crm_shared::{
    auth::{Principal, Role, admitted},
    convert::{parse_etag, parse_name, required},
    db::Tenant,
    error::ApiError,
    filter::FilterSchema,
    idempotency::IdempotencyKey,
    paging::page_size,
    store::{ListPlan, ListRequest},
    validate::update_paths,
};
use tonic::{Request, Response, Status};
use uuid::Uuid;

use super::{
    ADMINS, SupportApi,
    convert::{
        article_draft, article_link_message, article_message, article_state,
        article_version_message, search_result_message,
    },
    fixed_plan,
};
use crate::{
    domain::article::{
        ARTICLE_FIELDS, Article, ArticleChange, ArticleState, SearchQuery, canonical_locale,
        suggestion_terms,
    },
    store::{self, ArticleSearch},
};

/// Whether the caller sees drafts: the knowledge base's editors (and the
/// suite's services).
fn sees_drafts(principal: &Principal) -> bool {
    principal
        .roles
        .iter()
        .any(|role| ADMINS.contains(role) || *role == Role::Service)
}

/// An article the caller may see; a draft is NOT_FOUND to anyone but its
/// editors, as if it did not exist.
async fn visible_article(
    api: &SupportApi,
    principal: &Principal,
    tenant: &Tenant,
    id: Uuid,
) -> Result<Article, ApiError> {
    let article = api.store.get_article(tenant, id).await?;
    if !article.visible_to(sees_drafts(principal)) {
        return Err(ApiError::NotFound(article.name()));
    }
    Ok(article)
}

/// A locale to search in: empty for every locale, else a BCP 47 tag.
fn search_locale(locale: &str, field: &str) -> Result<Option<String>, ApiError> {
    if locale.trim().is_empty() {
        return Ok(None);
    }
    canonical_locale(locale)
        .map(Some)
        .ok_or_else(|| ApiError::invalid(field, "a BCP 47 tag such as en or de-CH"))
}

pub(super) async fn create_article(
    api: &SupportApi,
    request: Request<pb::CreateArticleRequest>,
) -> Result<Response<pb::Article>, Status> {
    let (principal, tenant) = admitted(&request)?;
    let r = request.into_inner();
    let request_id = IdempotencyKey::of(&r.request_id, &r)?;
    let message = required(r.article, "article")?;
    let state = article_state(message.state, "article.state")?.unwrap_or(ArticleState::Draft);
    let mut draft = article_draft(&message);
    draft.normalize_and_check("article")?;
    let article = Article::new(draft, state, Utc::now(), "article.state")?;
    let created = api
        .store
        .create_article(&tenant, &principal.subject, article, request_id)
        .await?;
    Ok(Response::new(article_message(&created)))
}

pub(super) async fn get_article(
    api: &SupportApi,
    request: Request<pb::GetArticleRequest>,
) -> Result<Response<pb::Article>, Status> {
    let (principal, tenant) = admitted(&request)?;
    let id = parse_name(&request.get_ref().name, "articles", "name")?;
    let article = visible_article(api, &principal, &tenant, id).await?;
    Ok(Response::new(article_message(&article)))
}

pub(super) async fn list_articles(
    api: &SupportApi,
    request: Request<pb::ListArticlesRequest>,
) -> Result<Response<pb::ListArticlesResponse>, Status> {
    let (principal, tenant) = admitted(&request)?;
    let r = request.into_inner();
    let plan = ListPlan::new(
        &api.page_tokens,
        ListRequest {
            resource: "articles",
            schema: &store::ARTICLE_FILTER,
            orderable: store::ARTICLE_ORDER,
            filter: &r.filter,
            order_by: &r.order_by,
            show_deleted: r.show_deleted,
            page_size: r.page_size,
            page_token: &r.page_token,
            include_total_size: r.include_total_size,
        },
    )?;
    let page = api
        .store
        .list_articles(&tenant, plan.query.clone(), sees_drafts(&principal))
        .await?;
    Ok(Response::new(pb::ListArticlesResponse {
        next_page_token: plan.next_page_token(&api.page_tokens, &page),
        articles: page.items.iter().map(article_message).collect(),
        total_size: page.total_size(),
    }))
}

pub(super) async fn update_article(
    api: &SupportApi,
    request: Request<pb::UpdateArticleRequest>,
) -> Result<Response<pb::Article>, Status> {
    let (principal, tenant) = admitted(&request)?;
    let r = request.into_inner();
    let message = required(r.article, "article")?;
    let id = parse_name(&message.name, "articles", "article.name")?;
    let expected = parse_etag(&message.etag, "article.etag")?;
    let mask = r.update_mask.map(|m| m.paths).unwrap_or_default();
    let paths = update_paths(&mask, ARTICLE_FIELDS)?;
    let changes = article_draft(&message);
    let updated = api
        .store
        .update_article(&tenant, &principal.subject, id, expected, |a| {
            a.revise(&paths, &changes, "article")
        })
        .await?;
    Ok(Response::new(article_message(&updated)))
}

/// The standard shape of DeleteArticle, UndeleteArticle, PublishArticle and
/// ArchiveArticle: a name, an optional etag and one change.
async fn change_article(
    api: &SupportApi,
    principal: &Principal,
    tenant: &Tenant,
    (name, etag): (&str, &str),
    change: impl FnOnce(&mut Article) -> Result<Option<ArticleChange>, ApiError>,
) -> Result<Response<pb::Article>, Status> {
    let id = parse_name(name, "articles", "name")?;
    let expected = parse_etag(etag, "etag")?;
    let changed = api
        .store
        .update_article(tenant, &principal.subject, id, expected, change)
        .await?;
    Ok(Response::new(article_message(&changed)))
}

pub(super) async fn delete_article(
    api: &SupportApi,
    request: Request<pb::DeleteArticleRequest>,
) -> Result<Response<pb::Article>, Status> {
    let (principal, tenant) = admitted(&request)?;
    let r = request.get_ref();
    change_article(api, &principal, &tenant, (&r.name, &r.etag), |a| {
        Ok(a.delete(Utc::now()))
    })
    .await
}

pub(super) async fn undelete_article(
    api: &SupportApi,
    request: Request<pb::UndeleteArticleRequest>,
) -> Result<Response<pb::Article>, Status> {
    let (principal, tenant) = admitted(&request)?;
    let r = request.get_ref();
    change_article(api, &principal, &tenant, (&r.name, &r.etag), |a| {
        Ok(a.undelete())
    })
    .await
}

pub(super) async fn publish_article(
    api: &SupportApi,
    request: Request<pb::PublishArticleRequest>,
) -> Result<Response<pb::Article>, Status> {
    let (principal, tenant) = admitted(&request)?;
    let r = request.get_ref();
    change_article(api, &principal, &tenant, (&r.name, &r.etag), |a| {
        a.publish(Utc::now())
    })
    .await
}

pub(super) async fn archive_article(
    api: &SupportApi,
    request: Request<pb::ArchiveArticleRequest>,
) -> Result<Response<pb::Article>, Status> {
    let (principal, tenant) = admitted(&request)?;
    let r = request.get_ref();
    change_article(api, &principal, &tenant, (&r.name, &r.etag), |a| {
        a.archive()
    })
    .await
}

pub(super) async fn list_article_versions(
    api: &SupportApi,
    request: Request<pb::ListArticleVersionsRequest>,
) -> Result<Response<pb::ListArticleVersionsResponse>, Status> {
    const NONE: FilterSchema = FilterSchema { fields: &[] };
    let (principal, tenant) = admitted(&request)?;
    let r = request.into_inner();
    let id = parse_name(&r.parent, "articles", "parent")?;
    visible_article(api, &principal, &tenant, id).await?;
    let plan = ListPlan::new(
        &api.page_tokens,
        ListRequest {
            resource: &format!("articleVersions:{id}"),
            schema: &NONE,
            orderable: &[("version", "number")],
            filter: "",
            order_by: "version desc",
            show_deleted: false,
            page_size: r.page_size,
            page_token: &r.page_token,
            include_total_size: false,
        },
    )?;
    let page = api
        .store
        .list_article_versions(&tenant, id, plan.query.clone())
        .await?;
    Ok(Response::new(pb::ListArticleVersionsResponse {
        next_page_token: plan.next_page_token(&api.page_tokens, &page),
        versions: page.items.iter().map(article_version_message).collect(),
    }))
}

pub(super) async fn search_articles(
    api: &SupportApi,
    request: Request<pb::SearchArticlesRequest>,
) -> Result<Response<pb::SearchArticlesResponse>, Status> {
    let (principal, tenant) = admitted(&request)?;
    let r = request.into_inner();
    let query = SearchQuery::parse(&r.query, "query")?;
    let locale = search_locale(&r.locale, "locale")?;
    if r.include_drafts && !sees_drafts(&principal) {
        return Err(ApiError::PermissionDenied(
            "only admins and managers may search drafts".into(),
        )
        .into());
    }
    let states: &[ArticleState] = if r.include_drafts {
        &[ArticleState::Published, ArticleState::Draft]
    } else {
        &[ArticleState::Published]
    };
    let size = page_size(r.page_size, 20, 100, "page_size")?;
    let fingerprint = format!(
        "articleSearch\0{}\0{}\0{}",
        r.query,
        locale.as_deref().unwrap_or_default(),
        r.include_drafts
    );
    let offset = api
        .page_tokens
        .decode(&r.page_token, &fingerprint, "page_token")?;
    // One more than the page: whether another page follows.
    let mut found = api
        .store
        .search_articles(
            &tenant,
            &ArticleSearch {
                query: &query,
                locale: locale.as_deref(),
                states,
                offset,
                limit: size + 1,
            },
        )
        .await?;
    let next_page_token = if found.len() as u64 > size {
        found.truncate(size as usize);
        api.page_tokens.encode(&fingerprint, offset + size)
    } else {
        String::new()
    };
    Ok(Response::new(pb::SearchArticlesResponse {
        results: found.iter().map(search_result_message).collect(),
        next_page_token,
    }))
}

pub(super) async fn vote_article(
    api: &SupportApi,
    request: Request<pb::VoteArticleRequest>,
) -> Result<Response<pb::Article>, Status> {
    let (principal, tenant) = admitted(&request)?;
    let r = request.into_inner();
    let id = parse_name(&r.name, "articles", "name")?;
    visible_article(api, &principal, &tenant, id).await?;
    let voted = api
        .store
        .vote_article(&tenant, &principal.subject, id, r.helpful)
        .await?;
    Ok(Response::new(article_message(&voted)))
}

pub(super) async fn link_article(
    api: &SupportApi,
    request: Request<pb::LinkArticleRequest>,
) -> Result<Response<pb::ArticleLink>, Status> {
    let (principal, tenant) = admitted(&request)?;
    let r = request.into_inner();
    let ticket = parse_name(&r.ticket, "tickets", "ticket")?;
    let article = parse_name(&r.article, "articles", "article")?;
    visible_article(api, &principal, &tenant, article).await?;
    let link = api
        .store
        .link_article(&tenant, &principal.subject, ticket, article)
        .await?;
    Ok(Response::new(article_link_message(&link)))
}

pub(super) async fn list_ticket_articles(
    api: &SupportApi,
    request: Request<pb::ListTicketArticlesRequest>,
) -> Result<Response<pb::ListTicketArticlesResponse>, Status> {
    let (_, tenant) = admitted(&request)?;
    let r = request.into_inner();
    let id = parse_name(&r.parent, "tickets", "parent")?;
    let plan = fixed_plan(
        &api.page_tokens,
        &format!("articleLinks:{id}"),
        &[("create_time", "create_time")],
        r.page_size,
        &r.page_token,
        false,
    )?;
    let page = api
        .store
        .list_article_links(&tenant, id, plan.query.clone())
        .await?;
    Ok(Response::new(pb::ListTicketArticlesResponse {
        next_page_token: plan.next_page_token(&api.page_tokens, &page),
        article_links: page.items.iter().map(article_link_message).collect(),
    }))
}

pub(super) async fn suggest_articles(
    api: &SupportApi,
    request: Request<pb::SuggestArticlesRequest>,
) -> Result<Response<pb::SuggestArticlesResponse>, Status> {
    let (_, tenant) = admitted(&request)?;
    let r = request.into_inner();
    let id = parse_name(&r.ticket, "tickets", "ticket")?;
    let locale = search_locale(&r.locale, "locale")?;
    let size = page_size(r.page_size, 5, 50, "page_size")?;
    let ticket = api.store.get_ticket(&tenant, id).await?;
    let terms = suggestion_terms(&ticket.draft.subject, &ticket.draft.description);
    let Some(query) = SearchQuery::any_of(terms) else {
        return Ok(Response::new(pb::SuggestArticlesResponse::default()));
    };
    let found = api
        .store
        .search_articles(
            &tenant,
            &ArticleSearch {
                query: &query,
                locale: locale.as_deref(),
                states: &[ArticleState::Published],
                offset: 0,
                limit: size,
            },
        )
        .await?;
    Ok(Response::new(pb::SuggestArticlesResponse {
        results: found.iter().map(search_result_message).collect(),
    }))
}
