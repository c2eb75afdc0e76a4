//! Contacts at scale: one tenant of 1,000,000 contacts (2,000 in the smoke
//! pass), loaded straight into the
//! database (COPY on PostgreSQL, multi-row INSERTs on SQLite, the search
//! indexes kept by the service's own triggers and indexes), then through
//! the real `contacts` process beside the same queries by hand (sqlx) in
//! the same run:
//!
//! - SearchContacts: a rare word (a surname, ~70 matches at 1M), a common
//!   word (a given name, 2.5% of the tenant) and two words;
//! - FindDuplicates for one contact (blocking keys: its email key, its
//!   company's people);
//! - ListContacts filtered (`lifecycle_stage = "CUSTOMER"`) and ordered
//!   (`display_name`), the first page and the 1,000th (keyset), beside the
//!   keyset query and an `OFFSET` query by hand; and the first page with
//!   `include_total_size` (a COUNT of every match);
//! - the process's start to SERVING on the loaded database, and its RSS.
//!
//! Every row also goes to the results file (`crm_testkit::bench`).

use std::time::{Duration, Instant};

use crm_proto::contacts::{
    FindDuplicatesRequest, ListContactsRequest, ListContactsResponse, SearchContactsRequest,
};
use crm_shared::db::nodelay;
use crm_testkit::{Backend, TestDatabase, bench::mix};
use sqlx::{AnyConnection, Connection};

use crate::{Latencies, Service, sqlx_url};

/// Given names: each is 1 in 40 contacts (the common word).
const GIVEN: [&str; 40] = [
    "Ada", "Alan", "Grace", "Edsger", "Barbara", "Donald", "Frances", "John", "Margaret", "Ken",
    "Radia", "Dennis", "Hedy", "Tim", "Sophie", "Linus", "Karen", "Niklaus", "Shafi", "Leslie",
    "Anita", "Robin", "Carol", "Butler", "Jean", "Fran", "Adele", "Bjarne", "Guido", "Yukihiro",
    "Annie", "Mary", "Evelyn", "Joan", "Lynn", "Susan", "Erna", "Kathleen", "Marlyn", "Betty",
];

/// Surnames are three of these (13,824 of them: ~72 contacts each at 1M).
const SYLLABLES: [&str; 24] = [
    "ka", "lo", "mer", "vin", "tor", "sel", "bra", "dun", "fel", "gor", "hal", "jen", "kru", "lam",
    "mos", "nor", "pet", "quin", "ros", "stam", "tul", "vak", "wes", "zim",
];

const STAGES: [&str; 4] = ["LEAD", "CUSTOMER", "OPPORTUNITY", "SUBSCRIBER"];

fn capitalised(word: &str) -> String {
    let mut chars = word.chars();
    chars
        .next()
        .map(|c| c.to_uppercase().chain(chars).collect())
        .unwrap_or_default()
}

fn surname(h: u64) -> String {
    let s = |k: u64| SYLLABLES[((h >> k) % 24) as usize];
    capitalised(&format!("{}{}{}", s(8), s(16), s(24)))
}

/// The generated tenant: its people and companies.
struct Tenant {
    contacts: usize,
    companies: usize,
    company_ids: Vec<String>,
    now: String,
}

/// One generated contact.
struct Person {
    id: String,
    given: String,
    family: String,
    email: String,
    company: String,
    stage: &'static str,
}

impl Tenant {
    fn new(contacts: usize) -> Tenant {
        let companies = (contacts / 50).max(1);
        Tenant {
            contacts,
            companies,
            company_ids: (0..companies)
                .map(|_| uuid::Uuid::now_v7().to_string())
                .collect(),
            now: chrono::Utc::now()
                .format("%Y-%m-%d %H:%M:%S%.6f+00:00")
                .to_string(),
        }
    }

    fn company_name(&self, c: usize) -> String {
        format!("{} Systems {c}", surname(mix(c as u64 ^ 0xC0)))
    }

    fn person(&self, i: usize) -> Person {
        let h = mix(i as u64);
        let given = GIVEN[(h % 40) as usize].to_owned();
        let family = surname(h);
        // Four in five work at one of the companies (50 people each).
        let company = if h.is_multiple_of(5) {
            String::new()
        } else {
            format!(
                "companies/{}",
                self.company_ids[(h >> 32) as usize % self.companies]
            )
        };
        Person {
            id: uuid::Uuid::now_v7().to_string(),
            email: format!(
                "{}.{}{i}@mail{}.example",
                given.to_lowercase(),
                family.to_lowercase(),
                i % 100
            ),
            given,
            family,
            company,
            stage: STAGES[(h >> 40) as usize % 4],
        }
    }

    /// The contact columns of `person`, as the service writes them (None: NULL).
    fn contact_row(&self, p: &Person) -> Vec<Option<String>> {
        let display = format!("{} {}", p.given, p.family);
        let search_text = format!(
            " {} {} {} {} ",
            display.to_lowercase(),
            p.given.to_lowercase(),
            p.family.to_lowercase(),
            p.email
        );
        [
            p.id.as_str(),
            "bench",
            &p.given,
            &p.family,
            &display,
            &p.email,
            "",
            &format!(
                r#"[{{"address":"{}","label":"work","primary":true}}]"#,
                p.email
            ),
            "[]",
            &p.company,
            "",
            "null",
            p.stage,
            "",
            "bench",
            "[]",
            "{}",
            "[]",
            &search_text,
        ]
        .into_iter()
        .map(|v| Some(v.to_owned()))
        .chain([
            None,
            Some(self.now.clone()),
            Some(self.now.clone()),
            None,
            Some("1".into()),
        ])
        .collect()
    }

    fn company_row(&self, c: usize) -> Vec<Option<String>> {
        let name = self.company_name(c);
        let domain = format!("{}.example", name.to_lowercase().replace(' ', ""));
        let search_text = format!(" {} {domain} ", name.to_lowercase());
        [
            self.company_ids[c].as_str(),
            "bench",
            &name,
            &domain,
            "",
            "0",
            "null",
            "null",
            "[]",
            "{}",
            "",
            "",
            &search_text,
        ]
        .into_iter()
        .map(|v| Some(v.to_owned()))
        .chain([
            Some(self.now.clone()),
            Some(self.now.clone()),
            None,
            Some("1".into()),
        ])
        .collect()
    }
}

const CONTACT_COLUMNS: &str = crate::COLUMNS;
const COMPANY_COLUMNS: &str = "id, tenant, display_name, domain, industry, employee_count, annual_revenue, address, tags, custom_fields, owner, tier, search_text, create_time, update_time, delete_time, version";
const KEY_COLUMNS: &str = "tenant, kind, value, contact_id";

/// Writes `rows` into `table` by the fastest plain means: COPY on
/// PostgreSQL, 500-row INSERTs in transactions of 20,000 rows on SQLite.
pub(crate) async fn load(
    url: &str,
    backend: Backend,
    table: &str,
    columns: &str,
    rows: impl Iterator<Item = Vec<Option<String>>>,
) {
    let mut conn = AnyConnection::connect(&sqlx_url(url))
        .await
        .expect("connect");
    if backend == Backend::Postgres {
        drop(conn);
        let mut conn = sqlx::PgConnection::connect(url).await.expect("pg connect");
        nodelay::set(&mut conn).await.expect("TCP_NODELAY");
        let mut copy = conn
            .copy_in_raw(&format!("COPY {table} ({columns}) FROM STDIN (FORMAT csv)"))
            .await
            .expect("COPY");
        let mut buffer = String::new();
        for row in rows {
            let cells: Vec<String> = row
                .into_iter()
                .map(|v| v.map_or(String::new(), |v| format!("\"{}\"", v.replace('"', "\"\""))))
                .collect();
            buffer.push_str(&cells.join(","));
            buffer.push('\n');
            if buffer.len() > 1 << 20 {
                copy.send(std::mem::take(&mut buffer).into_bytes())
                    .await
                    .expect("send");
            }
        }
        copy.send(buffer.into_bytes()).await.expect("send");
        copy.finish().await.expect("finish");
        return;
    }
    let width = columns.split(',').count();
    let mut rows = rows.peekable();
    while rows.peek().is_some() {
        let mut txn = conn.begin().await.expect("begin");
        for _ in 0..40 {
            let batch: Vec<Vec<Option<String>>> = rows.by_ref().take(500).collect();
            if batch.is_empty() {
                break;
            }
            let one = format!("({})", vec!["?"; width].join(", "));
            let sql = format!(
                "INSERT INTO {table} ({columns}) VALUES {}",
                vec![one; batch.len()].join(", ")
            );
            // Built from constants and placeholders only; values are bound.
            let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
            for value in batch.into_iter().flatten() {
                query = query.bind(value);
            }
            query.execute(&mut *txn).await.expect("insert");
        }
        txn.commit().await.expect("commit");
    }
}

/// Loads the tenant; returns a sample of its people for the queries.
async fn load_tenant(url: &str, backend: Backend, tenant: &Tenant) -> Vec<Person> {
    load(
        url,
        backend,
        "companies",
        COMPANY_COLUMNS,
        (0..tenant.companies).map(|c| tenant.company_row(c)),
    )
    .await;
    let mut sample = Vec::new();
    let mut keys = Vec::with_capacity(tenant.contacts);
    let rows = (0..tenant.contacts).map(|i| {
        let person = tenant.person(i);
        keys.push(vec![
            Some("bench".into()),
            Some("email".into()),
            Some(person.email.clone()),
            Some(person.id.clone()),
        ]);
        let row = tenant.contact_row(&person);
        if mix(i as u64 ^ 0x5A).is_multiple_of((tenant.contacts as u64 / 200).max(1)) {
            sample.push(person);
        }
        row
    });
    load(url, backend, "contacts", CONTACT_COLUMNS, rows).await;
    load(url, backend, "contact_keys", KEY_COLUMNS, keys.into_iter()).await;
    if backend == Backend::Postgres {
        // What autovacuum would have done after the load (this server runs
        // without it): statistics, the visibility map, the trigram index's
        // pending list merged; then the load's writes checkpointed, so the
        // queries are measured in a steady state, not during write-back.
        let mut conn = AnyConnection::connect(url).await.expect("connect");
        for statement in ["VACUUM (ANALYZE)", "CHECKPOINT"] {
            sqlx::query(statement)
                .execute(&mut conn)
                .await
                .expect(statement);
        }
    }
    sample
}

/// The words of a case's `i`th query.
type QueryWords<'a> = dyn Fn(usize) -> Vec<String> + 'a;

/// p50, p99 and calls per second of `calls` made one after another.
struct Timed {
    per_second: f64,
    latencies: Latencies,
}

async fn timed<F: AsyncFnMut(usize)>(calls: usize, mut call: F) -> Timed {
    let mut latencies = Vec::with_capacity(calls);
    let started = Instant::now();
    for i in 0..calls {
        let began = Instant::now();
        call(i).await;
        latencies.push(began.elapsed());
    }
    Timed {
        per_second: calls as f64 / started.elapsed().as_secs_f64(),
        latencies: Latencies(latencies),
    }
}

/// Prints a row and records it.
fn report(backend: Backend, contacts: usize, case: &str, path: &str, mut timed: Timed) {
    let (p50, p99) = (
        timed.latencies.percentile(0.5),
        timed.latencies.percentile(0.99),
    );
    println!(
        "| {backend:?} | {contacts} | {case} | {path} | {:.0} | {p50:.2} | {p99:.2} |",
        timed.per_second
    );
    crm_testkit::bench::record(
        "contacts_scale",
        serde_json::json!({
            "backend": format!("{backend:?}"), "contacts": contacts, "case": case, "path": path,
            "per_second": timed.per_second, "p50_ms": p50, "p99_ms": p99,
        }),
    );
}

/// SearchContacts' own statement, run by hand: the ranked ids joined to
/// their rows in the same statement (the service reads the rows with a
/// second one).
fn search_by_hand(backend: Backend, words: &[String]) -> (String, Vec<sea_orm::Value>) {
    let db_backend = match backend {
        Backend::Postgres => sea_orm::DbBackend::Postgres,
        Backend::Sqlite => sea_orm::DbBackend::Sqlite,
    };
    let tenant = crm_shared::db::Tenant::new("bench");
    let statement = crm_contacts::search_statement(db_backend, &tenant, words, 20);
    let sql = format!(
        "SELECT c.*, best.points FROM ({}) best JOIN contacts c ON c.tenant = $1 AND c.id = best.id \
         ORDER BY best.points DESC, c.display_name, c.id",
        statement.sql
    );
    (sql, statement.values.map(|v| v.0).unwrap_or_default())
}

/// A connection for the queries by hand, of the backend's own driver
/// (sqlx's Any driver cannot read timestamptz).
enum Conn {
    Postgres(sqlx::PgConnection),
    Sqlite(sqlx::SqliteConnection),
}

impl Conn {
    async fn open(url: &str, backend: Backend) -> Conn {
        let url = sqlx_url(url);
        match backend {
            Backend::Postgres => {
                let mut conn = sqlx::PgConnection::connect(&url).await.expect("connect");
                nodelay::set(&mut conn).await.expect("TCP_NODELAY");
                // As the service's connections run (crm_shared::db).
                sqlx::query("SET jit = off")
                    .execute(&mut conn)
                    .await
                    .expect("jit off");
                Conn::Postgres(conn)
            }
            Backend::Sqlite => Conn::Sqlite(
                sqlx::SqliteConnection::connect(&url)
                    .await
                    .expect("connect"),
            ),
        }
    }
}

/// Runs `sql` with `values` bound in order; the number of rows returned.
async fn fetch_all(conn: &mut Conn, sql: &str, values: &[String]) -> usize {
    let values: Vec<sea_orm::Value> = values.iter().map(|v| v.clone().into()).collect();
    fetch_values(conn, sql, &values).await
}

/// Runs `sql` with `values` (texts and integers) bound in order; the number
/// of rows returned.
async fn fetch_values(conn: &mut Conn, sql: &str, values: &[sea_orm::Value]) -> usize {
    use sea_orm::Value;
    let sql = sqlx::AssertSqlSafe(sql.to_owned());
    macro_rules! bound {
        ($query:expr) => {{
            let mut query = $query;
            for value in values {
                query = match value {
                    Value::String(text) => query.bind(text.clone()),
                    Value::BigInt(number) => query.bind(*number),
                    other => panic!("the benchmark binds no {other:?}"),
                };
            }
            query
        }};
    }
    match conn {
        Conn::Postgres(conn) => bound!(sqlx::query::<sqlx::Postgres>(sql))
            .fetch_all(conn)
            .await
            .expect("query by hand")
            .len(),
        Conn::Sqlite(conn) => bound!(sqlx::query::<sqlx::Sqlite>(sql))
            .fetch_all(conn)
            .await
            .expect("query by hand")
            .len(),
    }
}

/// Runs `sql` with `values` bound in order; the first column of each row.
async fn first_column(conn: &mut Conn, sql: &str, values: &[String]) -> Vec<String> {
    use sqlx::Row;
    let sql = sqlx::AssertSqlSafe(sql.to_owned());
    match conn {
        Conn::Postgres(conn) => {
            let mut query = sqlx::query::<sqlx::Postgres>(sql);
            for value in values {
                query = query.bind(value.clone());
            }
            let rows = query.fetch_all(conn).await.expect("query by hand");
            rows.iter().map(|row| row.get::<String, _>(0)).collect()
        }
        Conn::Sqlite(conn) => {
            let mut query = sqlx::query::<sqlx::Sqlite>(sql);
            for value in values {
                query = query.bind(value.clone());
            }
            let rows = query.fetch_all(conn).await.expect("query by hand");
            rows.iter().map(|row| row.get::<String, _>(0)).collect()
        }
    }
}

async fn list_page(service: &mut Service, token: &str, total: bool) -> ListContactsResponse {
    let request = service.request(ListContactsRequest {
        page_size: 50,
        page_token: token.to_owned(),
        filter: r#"lifecycle_stage = "CUSTOMER""#.into(),
        order_by: "display_name".into(),
        show_deleted: false,
        include_total_size: total,
    });
    service
        .client
        .list_contacts(request)
        .await
        .expect("ListContacts")
        .into_inner()
}

/// Runs the scale benchmark on each backend.
pub async fn run(contacts: usize, calls: usize, pages: usize, backends: &[Backend], keep: bool) {
    println!("| backend | contacts | case | path | calls/s | p50 ms | p99 ms |");
    println!("|---|---|---|---|---|---|---|");
    let mut starts = Vec::new();
    for &backend in backends {
        let Some(db) = TestDatabase::create(backend).await else {
            continue;
        };
        // The service migrates the empty database; its start is measured.
        let service = Service::start(&db.url).await;
        starts.push((
            backend,
            "empty",
            0,
            service.started_in,
            service.resident_mib(),
        ));
        drop(service);
        let tenant = Tenant::new(contacts);
        let began = Instant::now();
        let sample = load_tenant(&db.url, backend, &tenant).await;
        eprintln!(
            "{backend:?}: loaded {contacts} contacts in {:?}",
            began.elapsed()
        );
        let mut service = Service::start(&db.url).await;
        starts.push((
            backend,
            "loaded",
            contacts,
            service.started_in,
            service.resident_mib(),
        ));
        let mut conn = Conn::open(&db.url, backend).await;

        let pick = |i: usize| &sample[(mix(i as u64) % sample.len() as u64) as usize];
        let cases: [(&str, Box<QueryWords>); 3] = [
            (
                "search: a rare word",
                Box::new(|i| vec![pick(i).family.to_lowercase()]),
            ),
            (
                "search: a common word",
                Box::new(|i| vec![GIVEN[i % 40].to_lowercase()]),
            ),
            (
                "search: two words",
                Box::new(|i| vec![pick(i).given.to_lowercase(), pick(i).family.to_lowercase()]),
            ),
        ];
        for (case, words) in &cases {
            // Warm-up, then the service and the query by hand.
            for i in 0..3 {
                let query = words(i).join(" ");
                let request = service.request(SearchContactsRequest {
                    query,
                    page_size: 20,
                });
                service
                    .client
                    .search_contacts(request)
                    .await
                    .expect("search");
            }
            let t = timed(calls, async |i| {
                let query = words(i).join(" ");
                let request = service.request(SearchContactsRequest {
                    query,
                    page_size: 20,
                });
                let found = service
                    .client
                    .search_contacts(request)
                    .await
                    .expect("search");
                assert!(
                    !found.into_inner().results.is_empty(),
                    "{case} finds someone"
                );
            })
            .await;
            report(backend, contacts, case, "SearchContacts (gRPC)", t);
            let t = timed(calls, async |i| {
                let (sql, values) = search_by_hand(backend, &words(i));
                assert!(
                    fetch_values(&mut conn, &sql, &values).await > 0,
                    "{case} by hand"
                );
            })
            .await;
            report(backend, contacts, case, "by hand (sqlx)", t);
        }

        let t = timed(calls, async |i| {
            let request = service.request(FindDuplicatesRequest {
                contact: format!("contacts/{}", pick(i).id),
                ..Default::default()
            });
            service
                .client
                .find_duplicates(request)
                .await
                .expect("FindDuplicates");
        })
        .await;
        report(
            backend,
            contacts,
            "duplicates of one contact",
            "FindDuplicates (gRPC)",
            t,
        );
        let t = timed(calls, async |i| {
            let person = pick(i);
            let values = vec!["bench".to_owned(), person.id.clone()];
            fetch_all(&mut conn, "SELECT company FROM contacts WHERE tenant = $1 AND id = $2", &values).await;
            let mut keys = vec!["bench".to_owned()];
            keys.extend(
                first_column(
                    &mut conn,
                    "SELECT value FROM contact_keys WHERE tenant = $1 AND contact_id = $2",
                    &values,
                )
                .await,
            );
            let list: Vec<String> = (2..=keys.len()).map(|n| format!("${n}")).collect();
            let holders = format!(
                "SELECT kind, value, contact_id FROM contact_keys WHERE tenant = $1 AND value IN ({})",
                list.join(", ")
            );
            fetch_all(&mut conn, &holders, &keys).await;
            if !person.company.is_empty() {
                let values = vec!["bench".to_owned(), person.company.clone()];
                fetch_all(
                    &mut conn,
                    "SELECT id, company, display_name FROM contacts WHERE tenant = $1 AND company = $2 \
                     AND delete_time IS NULL",
                    &values,
                )
                .await;
            }
        })
        .await;
        report(
            backend,
            contacts,
            "duplicates of one contact",
            "by hand (sqlx)",
            t,
        );

        // Walk to the last page asked for, keeping its token and the key
        // (display name, id) of the row before it.
        let mut token = String::new();
        let mut before = (String::new(), String::new());
        for page in 1..pages {
            let response = list_page(&mut service, &token, false).await;
            let last = response.contacts.last().expect("a full page");
            before = (
                last.display_name.clone(),
                last.name.trim_start_matches("contacts/").to_owned(),
            );
            token = response.next_page_token;
            assert!(!token.is_empty(), "page {page} has a next page");
        }
        let far = format!("list: page {pages}");
        for (case, token, total) in [
            ("list: page 1", "", false),
            (far.as_str(), token.as_str(), false),
            ("list: page 1 with total_size", "", true),
        ] {
            let t = timed(calls, async |_| {
                let page = list_page(&mut service, token, total).await;
                assert_eq!(page.contacts.len(), 50);
            })
            .await;
            report(backend, contacts, case, "ListContacts (gRPC)", t);
        }
        let filter = "tenant = $1 AND lifecycle_stage = 'CUSTOMER' AND delete_time IS NULL";
        let keyset = format!(
            "SELECT * FROM contacts WHERE {filter} AND (display_name > $2 OR (display_name = $2 AND id > $3)) \
             AND display_name >= $2 ORDER BY display_name, id LIMIT 51"
        );
        let values = vec!["bench".to_owned(), before.0.clone(), before.1.clone()];
        let t = timed(calls, async |_| {
            assert_eq!(fetch_all(&mut conn, &keyset, &values).await, 51);
        })
        .await;
        report(backend, contacts, &far, "keyset by hand (sqlx)", t);
        let offset = format!(
            "SELECT * FROM contacts WHERE {filter} ORDER BY display_name, id LIMIT 51 OFFSET {}",
            (pages - 1) * 50
        );
        let t = timed(calls, async |_| {
            assert_eq!(
                fetch_all(&mut conn, &offset, &["bench".to_owned()]).await,
                51
            );
        })
        .await;
        report(backend, contacts, &far, "OFFSET by hand (sqlx)", t);
        let peak = service.peak_memory_mib();
        starts.push((
            backend,
            "after the queries (peak)",
            contacts,
            Duration::ZERO,
            peak,
        ));
        if keep {
            eprintln!("{backend:?}: the loaded database is kept at {}", db.url);
            std::mem::forget(db);
        }
    }
    println!();
    println!("| backend | database | contacts | start to SERVING ms | RSS MiB |");
    println!("|---|---|---|---|---|");
    for (backend, database, contacts, started_in, rss) in starts {
        let ms = started_in.as_secs_f64() * 1000.0;
        println!("| {backend:?} | {database} | {contacts} | {ms:.0} | {rss:.0} |");
        crm_testkit::bench::record(
            "contacts_start",
            serde_json::json!({
                "backend": format!("{backend:?}"), "database": database, "contacts": contacts,
                "start_ms": ms, "rss_mib": rss,
            }),
        );
    }
}
