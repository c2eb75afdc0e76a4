//! The knowledge base: ranked full-text search scoped by tenant, state and
//! locale; versions kept on update; votes once per voter; links and
//! suggestions for tickets; roles and bad input.

use std::time::Duration;

use crm_proto::support::{
    ArchiveArticleRequest, Article, ArticleState, CreateArticleRequest, CreateTicketRequest,
    DeleteArticleRequest, GetArticleRequest, LinkArticleRequest, ListArticleVersionsRequest,
    ListArticlesRequest, ListTicketArticlesRequest, PublishArticleRequest, SearchArticlesRequest,
    SearchArticlesResponse, SuggestArticlesRequest, Ticket, UpdateArticleRequest,
    VoteArticleRequest, support_service_client::SupportServiceClient,
};
use crm_shared::auth::{Role, sign_hs256};
use prost_types::FieldMask;
use tonic::Code;

use crate::harness::*;

fn article(title: &str, body: &str, locale: &str) -> Article {
    Article {
        title: title.into(),
        body: body.into(),
        locale: locale.into(),
        ..Default::default()
    }
}

async fn create(support: &mut Support, a: Article) -> Article {
    support
        .create_article(CreateArticleRequest {
            article: Some(a),
            request_id: String::new(),
        })
        .await
        .expect("CreateArticle")
        .into_inner()
}

async fn published(support: &mut Support, a: Article) -> Article {
    create(
        support,
        Article {
            state: ArticleState::Published as i32,
            ..a
        },
    )
    .await
}

async fn search(
    support: &mut Support,
    query: &str,
    locale: &str,
) -> Result<SearchArticlesResponse, tonic::Status> {
    support
        .search_articles(SearchArticlesRequest {
            query: query.into(),
            locale: locale.into(),
            ..Default::default()
        })
        .await
        .map(tonic::Response::into_inner)
}

/// The titles a search finds, best first.
async fn found(support: &mut Support, query: &str, locale: &str) -> Vec<String> {
    search(support, query, locale)
        .await
        .unwrap_or_else(|e| panic!("search {query:?}: {e:?}"))
        .results
        .into_iter()
        .map(|r| r.article.expect("an article").title)
        .collect()
}

/// A support client acting as `subject`.
fn support_as(suite: &mut Suite, subject: &str, roles: &[Role]) -> Support {
    let token =
        sign_hs256(SECRET, TENANT, subject, roles, Duration::from_secs(3600)).expect("a token");
    SupportServiceClient::with_interceptor(
        channel_to(suite.support_process().addr),
        bearer(Some(&format!("Bearer {token}"))),
    )
}

db_test!(
    search_ranks_title_over_body_and_sees_only_what_it_may,
    search_on
);
async fn search_on(backend: Backend) {
    let Some(suite) = Suite::start(backend).await else {
        return;
    };
    let mut admin = suite.support(TENANT, ADMIN);
    let mut agent = suite.support(TENANT, AGENT);
    published(
        &mut admin,
        article(
            "Shipping times",
            "Orders ship within two days. A refund is possible when a parcel is lost.",
            "en",
        ),
    )
    .await;
    let policy = published(
        &mut admin,
        Article {
            tags: vec!["billing".into()],
            ..article(
                "Refund policy",
                "Money goes back to your card after a cancellation.\n\nIt takes <5> days & more.",
                "en",
            )
        },
    )
    .await;
    create(
        &mut admin,
        article("Refund draft", "A refund plan, unreleased.", "en"),
    )
    .await;
    let old = published(
        &mut admin,
        article("Old refund rules", "Refund by cheque.", "en"),
    )
    .await;
    admin
        .archive_article(ArchiveArticleRequest {
            name: old.name.clone(),
            etag: String::new(),
        })
        .await
        .expect("ArchiveArticle");
    published(
        &mut admin,
        article(
            "Rückerstattung",
            "So bekommen Sie Ihre refund zurück.",
            "de-CH",
        ),
    )
    .await;
    published(
        &mut suite.support(OTHER_TENANT, ADMIN),
        article("Refund elsewhere", "Another tenant's refund.", "en"),
    )
    .await;

    // The title match ranks first; drafts, archived and other tenants'
    // articles are never found; every locale is searched unless one is named.
    let response = search(&mut agent, "refund", "").await.expect("search");
    let titles: Vec<&str> = response
        .results
        .iter()
        .map(|r| r.article.as_ref().expect("article").title.as_str())
        .collect();
    assert_eq!(titles.first(), Some(&"Refund policy"), "{titles:?}");
    let mut sorted = titles.clone();
    sorted.sort();
    assert_eq!(
        sorted,
        ["Refund policy", "Rückerstattung", "Shipping times"]
    );
    let scores: Vec<f64> = response.results.iter().map(|r| r.score).collect();
    assert!(scores.windows(2).all(|w| w[0] >= w[1]), "{scores:?}");
    assert!(scores.iter().all(|s| *s > 0.0), "{scores:?}");
    assert_eq!(
        found(&mut agent, "refund", "en").await,
        ["Refund policy", "Shipping times"]
    );
    assert_eq!(found(&mut agent, "refund", "de").await, ["Rückerstattung"]);
    assert_eq!(
        found(&mut agent, "refund", "de-CH").await,
        ["Rückerstattung"]
    );
    assert!(found(&mut agent, "refund", "fr").await.is_empty());

    // Words of the body, in another form (stemmed), and tags find it; the
    // snippet marks the match and escapes the text.
    let hit = search(&mut agent, "cancellations", "en")
        .await
        .expect("stemmed")
        .results;
    assert_eq!(hit.len(), 1, "{hit:?}");
    assert_eq!(
        hit[0].article.as_ref().map(|a| a.name.as_str()),
        Some(policy.name.as_str())
    );
    assert!(
        hit[0].snippet.contains("<mark>cancellation</mark>"),
        "{}",
        hit[0].snippet
    );
    assert!(
        hit[0].snippet.contains("&lt;5&gt; days &amp; more"),
        "{}",
        hit[0].snippet
    );
    assert!(!hit[0].snippet.contains('\n'), "{}", hit[0].snippet);
    assert_eq!(found(&mut agent, "billing", "").await, ["Refund policy"]);

    // Phrases, alternatives and exclusions, as in a web search box.
    assert_eq!(
        found(&mut agent, "refund -parcel", "en").await,
        ["Refund policy"]
    );
    assert_eq!(
        found(&mut agent, "\"parcel is lost\"", "").await,
        ["Shipping times"]
    );
    assert!(found(&mut agent, "\"lost parcel\"", "").await.is_empty());
    let mut either = found(&mut agent, "cheque or parcel", "").await;
    either.sort();
    assert_eq!(either, ["Shipping times"]);
    // Query syntax of either database is only words to look for.
    for hostile in [
        "refund\" OR title:*",
        "') OR 1=1 --",
        "NEAR(refund parcel) ^title:refund*",
        "refund & !parcel | <-> :*",
        r#"back\slash "it's \" or" -"\"#,
    ] {
        search(&mut agent, hostile, "")
            .await
            .unwrap_or_else(|e| panic!("{hostile:?}: {e:?}"));
    }

    // Managers may ask for drafts; agents may not, and never see one.
    let drafts = admin
        .search_articles(SearchArticlesRequest {
            query: "refund".into(),
            include_drafts: true,
            locale: "en".into(),
            ..Default::default()
        })
        .await
        .expect("drafts")
        .into_inner()
        .results;
    assert_eq!(drafts.len(), 3, "{drafts:?}");
    let refused = agent
        .search_articles(SearchArticlesRequest {
            query: "refund".into(),
            include_drafts: true,
            ..Default::default()
        })
        .await
        .expect_err("an agent asks for drafts");
    assert_eq!(refused.code(), Code::PermissionDenied);
    let listed = agent
        .list_articles(ListArticlesRequest::default())
        .await
        .expect("ListArticles")
        .into_inner()
        .articles;
    assert_eq!(listed.len(), 4, "no draft for an agent");
    let listed = admin
        .list_articles(ListArticlesRequest {
            filter: "state = DRAFT AND locale = \"en\"".into(),
            ..Default::default()
        })
        .await
        .expect("ListArticles")
        .into_inner()
        .articles;
    assert_eq!(listed.len(), 1);
    let hidden = agent
        .get_article(GetArticleRequest {
            name: listed[0].name.clone(),
        })
        .await
        .expect_err("an agent reads a draft");
    assert_eq!(hidden.code(), Code::NotFound);
    let stranger = suite
        .support(OTHER_TENANT, ADMIN)
        .get_article(GetArticleRequest {
            name: policy.name.clone(),
        })
        .await
        .expect_err("another tenant's article");
    assert_eq!(stranger.code(), Code::NotFound);

    // Pages continue the ranking.
    let first = agent
        .search_articles(SearchArticlesRequest {
            query: "refund".into(),
            page_size: 2,
            ..Default::default()
        })
        .await
        .expect("page 1")
        .into_inner();
    assert_eq!(first.results.len(), 2);
    let second = agent
        .search_articles(SearchArticlesRequest {
            query: "refund".into(),
            page_size: 2,
            page_token: first.next_page_token.clone(),
            ..Default::default()
        })
        .await
        .expect("page 2")
        .into_inner();
    assert_eq!(second.results.len(), 1);
    assert!(second.next_page_token.is_empty());
    let mut paged: Vec<String> = first
        .results
        .iter()
        .chain(&second.results)
        .map(|r| r.article.as_ref().expect("article").title.clone())
        .collect();
    paged.sort();
    assert_eq!(paged, sorted);

    // A deleted article leaves the search.
    admin
        .delete_article(DeleteArticleRequest {
            name: policy.name.clone(),
            etag: String::new(),
        })
        .await
        .expect("DeleteArticle");
    assert_eq!(found(&mut agent, "refund", "en").await, ["Shipping times"]);
}

db_test!(updates_keep_every_version_and_reindex, versions_on);
async fn versions_on(backend: Backend) {
    let Some(suite) = Suite::start(backend).await else {
        return;
    };
    let mut admin = suite.support(TENANT, ADMIN);
    let a = create(&mut admin, article("Printer setup", "Plug it in.", "en")).await;
    assert_eq!((a.version, a.state), (1, ArticleState::Draft as i32));
    let update = |a: &Article, changes: Article, paths: &[&str]| UpdateArticleRequest {
        article: Some(Article {
            name: a.name.clone(),
            etag: a.etag.clone(),
            ..changes
        }),
        update_mask: Some(FieldMask {
            paths: paths.iter().map(|p| (*p).to_owned()).collect(),
        }),
    };
    let b = admin
        .update_article(update(&a, article("Scanner setup", "", ""), &["title"]))
        .await
        .expect("title")
        .into_inner();
    assert_eq!((b.version, b.body.as_str()), (2, "Plug it in."));
    let c = admin
        .update_article(update(
            &b,
            Article {
                tags: vec!["Hardware".into()],
                ..article("", "Connect the USB cable, then install the driver.", "")
            },
            &["body", "tags"],
        ))
        .await
        .expect("body")
        .into_inner();
    assert_eq!(c.version, 3);
    // The same content again is no new version.
    let same = admin
        .update_article(update(&c, article("Scanner setup", "", ""), &["title"]))
        .await
        .expect("no change")
        .into_inner();
    assert_eq!((same.version, same.etag.as_str()), (3, c.etag.as_str()));
    let stale = admin
        .update_article(update(&a, article("Too late", "", ""), &["title"]))
        .await
        .expect_err("a stale etag");
    assert_eq!(stale.code(), Code::Aborted);

    let versions = admin
        .list_article_versions(ListArticleVersionsRequest {
            parent: a.name.clone(),
            ..Default::default()
        })
        .await
        .expect("ListArticleVersions")
        .into_inner()
        .versions;
    let kept: Vec<(i64, &str, &str)> = versions
        .iter()
        .map(|v| (v.version, v.title.as_str(), v.body.as_str()))
        .collect();
    assert_eq!(
        kept,
        [
            (
                3,
                "Scanner setup",
                "Connect the USB cable, then install the driver."
            ),
            (2, "Scanner setup", "Plug it in."),
            (1, "Printer setup", "Plug it in."),
        ]
    );
    assert_eq!(versions[0].name, format!("{}/versions/3", a.name));
    assert!(versions.iter().all(|v| v.author == "tester"));

    // The index follows the content: new words are found, old ones are not.
    admin
        .publish_article(PublishArticleRequest {
            name: a.name.clone(),
            etag: String::new(),
        })
        .await
        .expect("PublishArticle");
    let mut agent = suite.support(TENANT, AGENT);
    assert_eq!(found(&mut agent, "driver", "").await, ["Scanner setup"]);
    assert_eq!(found(&mut agent, "scanner", "").await, ["Scanner setup"]);
    assert_eq!(found(&mut agent, "hardware", "").await, ["Scanner setup"]);
    assert!(found(&mut agent, "printer", "").await.is_empty());
    assert!(found(&mut agent, "plug", "").await.is_empty());

    let types: Vec<String> = suite
        .support_events()
        .await
        .into_iter()
        .filter(|e| e.subject == a.name)
        .map(|e| e.r#type.trim_start_matches("crm.support.v1.").to_owned())
        .collect();
    assert_eq!(
        types,
        [
            "ArticleCreated",
            "ArticleUpdated",
            "ArticleUpdated",
            "ArticlePublished"
        ]
    );
}

db_test!(votes_count_once_per_voter, votes_on);
async fn votes_on(backend: Backend) {
    let Some(mut suite) = Suite::start(backend).await else {
        return;
    };
    let mut admin = suite.support(TENANT, ADMIN);
    let a = published(
        &mut admin,
        article("Reset a password", "Use the link.", "en"),
    )
    .await;
    let vote = |helpful: bool| VoteArticleRequest {
        name: a.name.clone(),
        helpful,
    };
    let counts = |a: &Article| (a.helpful_count, a.not_helpful_count);

    // Concurrent votes of one voter count once.
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let mut ann = support_as(&mut suite, "ann", AGENT);
        let request = vote(true);
        tasks.push(tokio::spawn(async move {
            ann.vote_article(request).await.expect("VoteArticle")
        }));
    }
    for task in tasks {
        task.await.expect("a vote task");
    }
    let mut ann = support_as(&mut suite, "ann", AGENT);
    let after = ann
        .vote_article(vote(true))
        .await
        .expect("again")
        .into_inner();
    assert_eq!(counts(&after), (1, 0));
    // A new vote replaces the voter's earlier one.
    let after = ann
        .vote_article(vote(false))
        .await
        .expect("changed")
        .into_inner();
    assert_eq!(counts(&after), (0, 1));
    // Every reader may vote.
    let mut viewer = support_as(&mut suite, "vic", &[Role::Viewer]);
    let after = viewer
        .vote_article(vote(true))
        .await
        .expect("viewer")
        .into_inner();
    assert_eq!(counts(&after), (1, 1));
    // Votes are not edits: the etag an editor holds stays good.
    assert_eq!(after.etag, a.etag);

    let draft = create(&mut admin, article("Draft", "Not yet.", "en")).await;
    let hidden = ann
        .vote_article(VoteArticleRequest {
            name: draft.name.clone(),
            helpful: true,
        })
        .await
        .expect_err("an agent votes on a draft");
    assert_eq!(hidden.code(), Code::NotFound);
    let refused = admin
        .vote_article(VoteArticleRequest {
            name: draft.name.clone(),
            helpful: true,
        })
        .await
        .expect_err("a manager votes on a draft");
    assert_eq!(refused.code(), Code::FailedPrecondition);
    let got = admin
        .get_article(GetArticleRequest {
            name: a.name.clone(),
        })
        .await
        .expect("GetArticle")
        .into_inner();
    assert_eq!(counts(&got), (1, 1));
}

db_test!(tickets_get_suggestions_and_links, suggest_on);
async fn suggest_on(backend: Backend) {
    let Some(suite) = Suite::start(backend).await else {
        return;
    };
    let mut admin = suite.support(TENANT, ADMIN);
    published(
        &mut admin,
        article(
            "Reset your password",
            "Use the forgot password link on the sign-in page.",
            "en",
        ),
    )
    .await;
    let refund = published(
        &mut admin,
        article(
            "Charged twice? Get a refund",
            "If your card was charged twice for one order, we refund the second charge within five days.",
            "en",
        ),
    )
    .await;
    published(
        &mut admin,
        article(
            "Change your order",
            "Orders can be changed until they ship.",
            "en",
        ),
    )
    .await;
    let draft = create(
        &mut admin,
        article(
            "Charges, refunds, cards",
            "Charged twice refund card order.",
            "en",
        ),
    )
    .await;
    let mut agent = suite.support(TENANT, AGENT);
    let ticket = agent
        .create_ticket(CreateTicketRequest {
            ticket: Some(Ticket {
                subject: "Charged twice for my order".into(),
                description: "Hello, my card was charged twice for order 1234. Please refund one of the charges. Thanks!".into(),
                requester_email: "ada@example.com".into(),
                ..Default::default()
            }),
            request_id: String::new(),
        })
        .await
        .expect("CreateTicket")
        .into_inner();
    let suggested: Vec<String> = agent
        .suggest_articles(SuggestArticlesRequest {
            ticket: ticket.name.clone(),
            ..Default::default()
        })
        .await
        .expect("SuggestArticles")
        .into_inner()
        .results
        .into_iter()
        .map(|r| r.article.expect("article").name)
        .collect();
    assert_eq!(suggested.first(), Some(&refund.name), "{suggested:?}");
    assert!(!suggested.contains(&draft.name));

    // Linking is idempotent and announced once.
    for _ in 0..2 {
        let link = agent
            .link_article(LinkArticleRequest {
                ticket: ticket.name.clone(),
                article: refund.name.clone(),
            })
            .await
            .expect("LinkArticle")
            .into_inner();
        assert_eq!(link.article_title, "Charged twice? Get a refund");
        assert_eq!(link.linked_by, "tester");
    }
    let links = suite
        .support(TENANT, VIEWER)
        .list_ticket_articles(ListTicketArticlesRequest {
            parent: ticket.name.clone(),
            ..Default::default()
        })
        .await
        .expect("ListTicketArticles")
        .into_inner()
        .article_links;
    assert_eq!(links.len(), 1);
    assert_eq!(
        (links[0].ticket.as_str(), links[0].article.as_str()),
        (ticket.name.as_str(), refund.name.as_str())
    );
    let linked = suite
        .support_events()
        .await
        .into_iter()
        .filter(|e| e.r#type == "crm.support.v1.ArticleLinked")
        .count();
    assert_eq!(linked, 1);

    // Only published articles, only this tenant's tickets.
    let hidden = agent
        .link_article(LinkArticleRequest {
            ticket: ticket.name.clone(),
            article: draft.name.clone(),
        })
        .await
        .expect_err("a draft");
    assert_eq!(hidden.code(), Code::NotFound);
    let stranger = suite
        .support(OTHER_TENANT, AGENT)
        .suggest_articles(SuggestArticlesRequest {
            ticket: ticket.name.clone(),
            ..Default::default()
        })
        .await
        .expect_err("another tenant's ticket");
    assert_eq!(stranger.code(), Code::NotFound);
    let denied = suite
        .support(TENANT, VIEWER)
        .link_article(LinkArticleRequest {
            ticket: ticket.name.clone(),
            article: refund.name.clone(),
        })
        .await
        .expect_err("a viewer links");
    assert_eq!(denied.code(), Code::PermissionDenied);
}

db_test!(bad_input_and_roles_are_refused, refusals_on);
async fn refusals_on(backend: Backend) {
    let Some(suite) = Suite::start(backend).await else {
        return;
    };
    let denied = suite
        .support(TENANT, AGENT)
        .create_article(CreateArticleRequest {
            article: Some(article("Mine", "", "en")),
            request_id: String::new(),
        })
        .await
        .expect_err("an agent writes an article");
    assert_eq!(denied.code(), Code::PermissionDenied);

    let mut admin = suite.support(TENANT, ADMIN);
    let cases: Vec<(Article, &str)> = vec![
        (article("", "Body", "en"), "article.title"),
        (article("   ", "Body", "en"), "article.title"),
        (article("Title", "Body", "english"), "article.locale"),
        (article("Title", "Body", ""), "article.locale"),
        (
            Article {
                state: 42,
                ..article("Title", "Body", "en")
            },
            "article.state",
        ),
        (
            Article {
                state: ArticleState::Archived as i32,
                ..article("Title", "Body", "en")
            },
            "article.state",
        ),
        (
            article("Title", "Bell \u{7} in the body", "en"),
            "article.body",
        ),
    ];
    for (a, field) in cases {
        let status = admin
            .create_article(CreateArticleRequest {
                article: Some(a),
                request_id: String::new(),
            })
            .await
            .expect_err(field);
        assert_invalid_field(&status, field, field);
    }
    let mut agent = suite.support(TENANT, AGENT);
    for (query, locale, field) in [
        ("", "", "query"),
        ("   ", "", "query"),
        ("-excluded -only", "", "query"),
        ("refund", "not a locale", "locale"),
    ] {
        let status = search(&mut agent, query, locale).await.expect_err(field);
        assert_invalid_field(&status, field, &format!("{query:?} {locale:?}"));
    }
    let status = agent
        .list_articles(ListArticlesRequest {
            filter: "state = SOMETIMES".into(),
            ..Default::default()
        })
        .await
        .expect_err("an unknown state");
    assert_invalid_field(&status, "filter", "filter");
    let a = create(&mut admin, article("Title", "Body", "en")).await;
    let status = admin
        .update_article(UpdateArticleRequest {
            article: Some(Article {
                name: a.name.clone(),
                state: ArticleState::Published as i32,
                ..Default::default()
            }),
            update_mask: Some(FieldMask {
                paths: vec!["state".into()],
            }),
        })
        .await
        .expect_err("state through update");
    assert_invalid_field(&status, "update_mask", "update_mask");
    let status = admin
        .update_article(UpdateArticleRequest {
            article: Some(Article {
                name: a.name.clone(),
                locale: "xx-".into(),
                ..Default::default()
            }),
            update_mask: Some(FieldMask {
                paths: vec!["locale".into()],
            }),
        })
        .await
        .expect_err("a bad locale on update");
    assert_invalid_field(&status, "article.locale", "article.locale");
    let status = agent
        .suggest_articles(SuggestArticlesRequest {
            ticket: "articles/nope".into(),
            ..Default::default()
        })
        .await
        .expect_err("not a ticket");
    assert_invalid_field(&status, "ticket", "ticket");
    // Nothing above changed the article.
    let got = admin
        .get_article(GetArticleRequest {
            name: a.name.clone(),
        })
        .await
        .expect("GetArticle")
        .into_inner();
    assert_eq!((got.version, got.etag), (1, a.etag));
}
