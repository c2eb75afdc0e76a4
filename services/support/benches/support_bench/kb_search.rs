//! The knowledge-base search benchmark, on SQLite and on PostgreSQL in one
//! run: 100,000 published articles of generated text, loaded through the
//! real `support` process (`CreateArticle`, so the index is the one the
//! service builds), then `SearchArticles` through the process beside the
//! same ranked query by hand with sqlx on the same database, for three kinds
//! of query: one rare word, one common word, two words. Reports queries per
//! second and p50/p99 latency at one and four callers.
//!
//! `cargo bench -p crm-support --bench support_bench -- kb_search` runs it in
//! full; a plain run (`cargo test --benches`) makes a small smoke pass on
//! SQLite.

use std::{
    net::TcpListener,
    process::{Child, Command, Stdio},
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use crm_proto::support::{
    Article, ArticleState, CreateArticleRequest, SearchArticlesRequest,
    support_service_client::SupportServiceClient,
};
use crm_shared::auth::{Role, sign_hs256};
use crm_testkit::{Backend, TestDatabase};
use sqlx::{AnyPool, Row};
use tonic::{metadata::MetadataValue, transport::Channel};

const SECRET: &str = "bench-secret";
/// The tenant every article is in (the token's).
const TENANT: &str = "bench";
/// Words in the generated language.
const VOCABULARY: usize = 5000;
/// Results per search, the service's default page.
const PAGE: i64 = 20;

/// A small, fast, deterministic generator (xorshift64*): the same corpus
/// and queries every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Generated text: made-up words (two to four syllables, each word its own
/// spelling) drawn with Zipf's law, as words are in real text.
struct Corpus {
    words: Vec<String>,
    cumulative: Vec<f64>,
}

impl Corpus {
    fn new() -> Self {
        const SYLLABLES: [&str; 16] = [
            "ka", "lo", "mi", "ne", "ru", "ta", "po", "si", "de", "vu", "ga", "bo", "zu", "fi",
            "ha", "jo",
        ];
        let words = (0..VOCABULARY)
            .map(|i| {
                let mut n = i + 16;
                let mut word = String::new();
                while n > 0 {
                    word.push_str(SYLLABLES[n % 16]);
                    n /= 16;
                }
                word
            })
            .collect();
        let mut total = 0.0;
        let cumulative = (0..VOCABULARY)
            .map(|rank| {
                total += 1.0 / (rank + 1) as f64;
                total
            })
            .collect();
        Self { words, cumulative }
    }

    fn word(&self, rng: &mut Rng) -> &str {
        let total = self.cumulative[VOCABULARY - 1];
        let target = rng.unit() * total;
        let rank = self.cumulative.partition_point(|c| *c < target);
        &self.words[rank.min(VOCABULARY - 1)]
    }

    fn text(&self, rng: &mut Rng, words: usize) -> String {
        (0..words)
            .map(|_| self.word(rng))
            .collect::<Vec<_>>()
            .join(" ")
    }

    fn article(&self, rng: &mut Rng) -> Article {
        let title_words = 4 + rng.below(5);
        let body_words = 100 + rng.below(41);
        let mut body = String::new();
        // Sentences of about twelve words, paragraphs of four sentences.
        let mut written = 0;
        while written < body_words {
            let n = (8 + rng.below(9)).min(body_words - written);
            let sentence = self.text(rng, n);
            let mut chars = sentence.chars();
            if let Some(first) = chars.next() {
                body.extend(first.to_uppercase());
                body.push_str(chars.as_str());
            }
            body.push_str(if rng.below(4) == 0 { ".\n\n" } else { ". " });
            written += n;
        }
        Article {
            title: self.text(rng, title_words),
            body,
            locale: "en".into(),
            category: self.word(rng).to_owned(),
            tags: vec![self.word(rng).to_owned(), self.word(rng).to_owned()],
            state: ArticleState::Published as i32,
            ..Default::default()
        }
    }

    /// `count` queries of `kind`: one word of ranks 2,000-5,000 (in about
    /// 0.3-0.7% of articles), one of ranks 30-200 (7-37%), or two of ranks
    /// 100-1,000 (both: 0.2-2%).
    fn queries(&self, rng: &mut Rng, kind: Kind, count: usize) -> Vec<String> {
        let mut pick = |from: usize, to: usize| self.words[from + rng.below(to - from)].clone();
        (0..count)
            .map(|_| match kind {
                Kind::Rare => pick(2000, VOCABULARY),
                Kind::Common => pick(30, 200),
                Kind::TwoWords => format!("{} {}", pick(100, 1000), pick(100, 1000)),
            })
            .collect()
    }
}

#[derive(Debug, Clone, Copy)]
enum Kind {
    Rare,
    Common,
    TwoWords,
}

impl Kind {
    fn label(self) -> &'static str {
        match self {
            Kind::Rare => "one rare word",
            Kind::Common => "one common word",
            Kind::TwoWords => "two words",
        }
    }
}

struct Service {
    child: Child,
    client: SupportServiceClient<Channel>,
    token: MetadataValue<tonic::metadata::Ascii>,
}

impl Service {
    async fn start(url: &str) -> Service {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("free port");
        let child = Command::new(env!("CARGO_BIN_EXE_support"))
            .env("CRM_SUPPORT__LISTEN_ADDR", format!("127.0.0.1:{port}"))
            .env("CRM_SUPPORT__DATABASE_URL", url)
            .env("CRM_SUPPORT__MAX_CONNECTIONS", "16")
            // Nobody answers there: the contacts feed retries in the background.
            .env("CRM_SUPPORT__CONTACTS_URL", "http://127.0.0.1:9")
            .env("CRM_AUTH__HS256_SECRET", SECRET)
            .env("CRM_AUTH__SERVICE_SECRET", "bench-service-secret")
            .env("CRM_PAGING_SECRET", "bench")
            .env("CRM_TELEMETRY__FILTER", "error")
            .env("RUST_LOG", "error")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the support binary");
        let endpoint = format!("http://127.0.0.1:{port}");
        let started = Instant::now();
        let channel = loop {
            if let Ok(channel) = Channel::from_shared(endpoint.clone())
                .expect("endpoint")
                .connect()
                .await
            {
                let mut health =
                    tonic_health::pb::health_client::HealthClient::new(channel.clone());
                let request = tonic_health::pb::HealthCheckRequest {
                    service: String::new(),
                };
                if health
                    .check(request)
                    .await
                    .is_ok_and(|r| r.into_inner().status == 1)
                {
                    break channel;
                }
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "the service did not become ready"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        let token = sign_hs256(
            SECRET,
            TENANT,
            "bench",
            &[Role::Admin],
            Duration::from_secs(24 * 3600),
        )
        .expect("token");
        Service {
            child,
            client: SupportServiceClient::new(channel),
            token: format!("Bearer {token}").parse().expect("header"),
        }
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Creates `count` articles through the service with `concurrency` callers;
/// articles per second.
async fn load(service: &Service, corpus: &Arc<Corpus>, count: usize, concurrency: usize) -> f64 {
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for worker in 0..concurrency {
        let (mut client, token) = (service.client.clone(), service.token.clone());
        let (next, corpus) = (next.clone(), corpus.clone());
        tasks.push(tokio::spawn(async move {
            let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ (worker as u64 + 1));
            while next.fetch_add(1, Ordering::Relaxed) < count {
                let mut request = tonic::Request::new(CreateArticleRequest {
                    article: Some(corpus.article(&mut rng)),
                    request_id: String::new(),
                });
                request
                    .metadata_mut()
                    .insert("authorization", token.clone());
                client.create_article(request).await.expect("CreateArticle");
            }
        }));
    }
    for task in tasks {
        task.await.expect("a load task");
    }
    count as f64 / started.elapsed().as_secs_f64()
}

struct Latencies(Vec<Duration>);

impl Latencies {
    fn percentile(&mut self, p: f64) -> f64 {
        self.0.sort();
        let index = ((self.0.len() as f64 - 1.0) * p).round() as usize;
        self.0
            .get(index)
            .map_or(f64::NAN, |d| d.as_secs_f64() * 1000.0)
    }
}

/// Runs every query once, spread over `concurrency` callers of `search`
/// (which answers how many results it got); queries per second, latencies
/// and the mean number of results.
async fn measure<F, Fut>(queries: &[String], concurrency: usize, search: F) -> (f64, Latencies, f64)
where
    F: Fn(String) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = usize> + Send,
{
    let queries = Arc::new(queries.to_vec());
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let (queries, next, search) = (queries.clone(), next.clone(), search.clone());
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut results = 0;
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(query) = queries.get(i) else {
                    return (latencies, results);
                };
                let began = Instant::now();
                results += search(query.clone()).await;
                latencies.push(began.elapsed());
            }
        }));
    }
    let (mut all, mut results) = (Vec::new(), 0);
    for task in tasks {
        let (latencies, found) = task.await.expect("a search task");
        all.extend(latencies);
        results += found;
    }
    (
        queries.len() as f64 / started.elapsed().as_secs_f64(),
        Latencies(all),
        results as f64 / queries.len() as f64,
    )
}

/// The service's ranked query for one locale, written by hand: the page of
/// matches with their scores, the fields a result shows, and snippets.
async fn raw_search(pool: &AnyPool, backend: Backend, query: &str) -> usize {
    match backend {
        Backend::Postgres => {
            // Every query term quoted, as the service renders it.
            let text = query
                .split_whitespace()
                .map(|w| format!("\"{w}\""))
                .collect::<Vec<_>>()
                .join(" ");
            sqlx::query(
                "WITH q AS (SELECT websearch_to_tsquery('english', $1) AS query), \
                 top AS (SELECT a.id, a.title, a.body, a.tags, a.state, \
                 ts_rank_cd(a.search_vector, q.query)::float8 AS score \
                 FROM q JOIN articles a ON a.search_config = 'english' AND a.search_vector @@ q.query \
                 WHERE a.tenant = $2 AND a.delete_time IS NULL AND a.state = 'PUBLISHED' \
                 AND (a.locale = 'en' OR a.locale LIKE 'en-%') \
                 ORDER BY score DESC, a.id LIMIT $3) \
                 SELECT top.id, top.title, top.body, top.tags, top.score, \
                 ts_headline('english', top.body, q.query, \
                 'StartSel=<mark>, StopSel=</mark>, MaxWords=24, MinWords=8, ShortWord=2, \
                 MaxFragments=2, FragmentDelimiter=\" … \"') \
                 FROM top, q ORDER BY top.score DESC, top.id",
            )
            .bind(text)
            .bind(TENANT)
            .bind(PAGE)
            .fetch_all(pool)
            .await
            .expect("raw search")
            .len()
        }
        Backend::Sqlite => {
            let expression = query
                .split_whitespace()
                .map(|w| format!("(\"{w}\")"))
                .collect::<Vec<_>>()
                .join(" AND ");
            let ranked = sqlx::query(
                "SELECT a.id, a.search_key, a.title, a.body, a.tags, \
                 bm25(article_fts, 10.0, 1.0, 4.0) AS rank \
                 FROM article_fts CROSS JOIN articles a ON a.search_key = article_fts.rowid \
                 WHERE article_fts MATCH ?1 AND a.tenant = ?2 AND a.delete_time IS NULL \
                 AND a.state = 'PUBLISHED' AND (a.locale = 'en' OR a.locale LIKE 'en-%') \
                 ORDER BY rank, a.id LIMIT ?3",
            )
            .bind(expression.clone())
            .bind(TENANT)
            .bind(PAGE)
            .fetch_all(pool)
            .await
            .expect("raw search");
            if ranked.is_empty() {
                return 0;
            }
            let keys: Vec<String> = ranked
                .iter()
                .map(|row| row.get::<i64, _>(1).to_string())
                .collect();
            // The keys are integers read back from the database.
            let sql = format!(
                "SELECT rowid, snippet(article_fts, 1, '<mark>', '</mark>', '…', 24) \
                 FROM article_fts WHERE article_fts MATCH ?1 AND rowid IN ({})",
                keys.join(", ")
            );
            sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(expression)
                .fetch_all(pool)
                .await
                .expect("raw snippets");
            ranked.len()
        }
    }
}

/// Runs this part: in full, or (`full` false) a smoke pass on SQLite.
pub async fn run(full: bool) {
    let (articles, per_kind, backends): (usize, usize, &[Backend]) = if full {
        (100_000, 200, &[Backend::Sqlite, Backend::Postgres])
    } else {
        (300, 10, &[Backend::Sqlite])
    };
    let corpus = Arc::new(Corpus::new());
    println!("| backend | query | path | callers | queries/s | p50 ms | p99 ms | results |");
    println!("|---|---|---|---|---|---|---|---|");
    let mut loads = Vec::new();
    for &backend in backends {
        let Some(db) = TestDatabase::create(backend).await else {
            continue;
        };
        let name = format!("{backend:?}");
        let service = Service::start(&db.url).await;
        let rate = load(&service, &corpus, articles, 8).await;
        loads.push(format!("| {name} | {articles} | {rate:.0} |"));
        let pool = sqlx::any::AnyPoolOptions::new()
            .max_connections(4)
            // As the service connects (crm_shared::db).
            .after_connect(|conn, _| Box::pin(crm_testkit::nodelay(conn)))
            .connect(&db.url)
            .await
            .expect("pool");
        if backend == Backend::Postgres {
            // What autovacuum would have done after the load.
            sqlx::query("ANALYZE articles")
                .execute(&pool)
                .await
                .expect("analyze");
        }
        let mut rng = Rng(42);
        for kind in [Kind::Rare, Kind::Common, Kind::TwoWords] {
            let queries = corpus.queries(&mut rng, kind, per_kind);
            for callers in [1, 4] {
                let client = service.client.clone();
                let token = service.token.clone();
                let via_service = move |query: String| {
                    let (mut client, token) = (client.clone(), token.clone());
                    async move {
                        let mut request = tonic::Request::new(SearchArticlesRequest {
                            query,
                            locale: "en".into(),
                            page_size: PAGE as i32,
                            ..Default::default()
                        });
                        request.metadata_mut().insert("authorization", token);
                        client
                            .search_articles(request)
                            .await
                            .expect("SearchArticles")
                            .into_inner()
                            .results
                            .len()
                    }
                };
                let raw_pool = pool.clone();
                let by_hand = move |query: String| {
                    let pool = raw_pool.clone();
                    async move { raw_search(&pool, backend, &query).await }
                };
                // Warm up both paths (caches, connections, the planner).
                measure(
                    &queries[..queries.len().min(10)],
                    callers,
                    via_service.clone(),
                )
                .await;
                measure(&queries[..queries.len().min(10)], callers, by_hand.clone()).await;
                for (path, result) in [
                    (
                        "SearchArticles (gRPC)",
                        measure(&queries, callers, via_service).await,
                    ),
                    ("raw sqlx", measure(&queries, callers, by_hand).await),
                ] {
                    let (qps, mut latencies, results) = result;
                    println!(
                        "| {name} | {} | {path} | {callers} | {qps:.0} | {:.2} | {:.2} | {results:.1} |",
                        kind.label(),
                        latencies.percentile(0.5),
                        latencies.percentile(0.99),
                    );
                }
            }
        }
        pool.close().await;
        drop(service);
    }
    println!();
    println!("| backend | articles | CreateArticle articles/s (8 callers) |");
    println!("|---|---|---|");
    for line in loads {
        println!("{line}");
    }
}
