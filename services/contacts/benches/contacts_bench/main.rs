//! The contacts benchmark, on SQLite and on PostgreSQL in one run:
//!
//! - `CreateContact` through the real service process: requests per second and
//!   p50/p99 latency at several concurrencies, beside a hand-written sqlx
//!   INSERT of the same row at the same concurrency;
//! - `ImportContacts` of 100,000 rows: rows per second beside a raw multi-row
//!   INSERT of the same rows (and, on PostgreSQL, `COPY`), with the service
//!   process's peak memory (VmHWM) at 10,000 and 100,000 rows.
//!
//! - contacts at scale (`scale.rs`): search, duplicates and lists in one
//!   tenant of 1,000,000 contacts, and the process's start and memory.
//!
//! `make bench` (= `cargo bench -p crm-contacts --bench contacts_bench`) runs it
//! in full; `-- writes` or `-- scale` runs one part, `backends=postgres` (or
//! `sqlite`) one backend, and `scale keep` leaves its loaded databases. Under `cargo test` (and
//! `make bench QUICK=1`) it runs a small smoke pass, to keep it working.

mod scale;

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use crm_proto::contacts::{
    Contact, CreateContactRequest, EmailAddress, ImportContactsRequest, PhoneNumber,
    contacts_service_client::ContactsServiceClient,
};
use crm_shared::auth::{Role, sign_hs256};
use crm_testkit::{Backend, TestDatabase, spawned::SpawnedService};
use sqlx::{AnyConnection, Connection};
use tonic::{metadata::MetadataValue, transport::Channel};

/// The contacts binary (release under `cargo bench`), with its client.
struct Service {
    process: SpawnedService,
    /// From spawning the process to its health check answering SERVING.
    started_in: Duration,
    client: ContactsServiceClient<Channel>,
    token: MetadataValue<tonic::metadata::Ascii>,
}

impl Service {
    async fn start(url: &str) -> Service {
        let process = SpawnedService::start(
            env!("CARGO_BIN_EXE_contacts"),
            "contacts",
            url,
            &[("CRM_CONTACTS__MAX_CONNECTIONS", "16")],
        )
        .await;
        let token = sign_hs256(
            crm_testkit::SECRET,
            "bench",
            "bench",
            &[Role::Admin],
            Duration::from_secs(3600),
        )
        .expect("token");
        Service {
            started_in: process.started_in,
            client: ContactsServiceClient::new(process.channel.clone())
                .max_encoding_message_size(64 << 20),
            token: format!("Bearer {token}").parse().expect("header"),
            process,
        }
    }

    fn request<T>(&self, message: T) -> tonic::Request<T> {
        let mut request = tonic::Request::new(message);
        request
            .metadata_mut()
            .insert("authorization", self.token.clone());
        request
    }

    /// The process's resident memory now, in MiB (Linux VmRSS).
    fn resident_mib(&self) -> f64 {
        self.process.resident_mib()
    }

    /// The process's peak resident memory in MiB (Linux VmHWM).
    fn peak_memory_mib(&self) -> f64 {
        self.process.peak_mib()
    }
}

fn contact(i: usize, run: &str) -> Contact {
    Contact {
        given_name: format!("Given{i}"),
        family_name: format!("Family{run}"),
        emails: vec![EmailAddress {
            address: format!("person{i}.{run}@example.com"),
            label: "work".into(),
            primary: true,
        }],
        phones: vec![PhoneNumber {
            number: format!("+4930{:08}", i),
            ..Default::default()
        }],
        job_title: "Engineer".into(),
        source: "bench".into(),
        tags: vec!["bench".into()],
        ..Default::default()
    }
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

async fn create_via_service(
    service: &Service,
    concurrency: usize,
    total: usize,
    run: &str,
) -> (f64, Latencies) {
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let mut client = service.client.clone();
        let next = next.clone();
        let token = service.token.clone();
        let run = run.to_owned();
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= total {
                    return latencies;
                }
                let mut request = tonic::Request::new(CreateContactRequest {
                    contact: Some(contact(i, &run)),
                    request_id: String::new(),
                });
                request
                    .metadata_mut()
                    .insert("authorization", token.clone());
                let began = Instant::now();
                client.create_contact(request).await.expect("CreateContact");
                latencies.push(began.elapsed());
            }
        }));
    }
    let mut all = Vec::new();
    for task in tasks {
        all.extend(task.await.expect("task"));
    }
    (
        total as f64 / started.elapsed().as_secs_f64(),
        Latencies(all),
    )
}

const COLUMNS: &str = "id, tenant, given_name, family_name, display_name, primary_email, primary_phone, emails, phones, company, job_title, address, lifecycle_stage, owner, source, tags, custom_fields, consents, search_text, merged_into, create_time, update_time, delete_time, version";

fn row_values(i: usize, run: &str) -> Vec<String> {
    let now = chrono::Utc::now()
        .format("%Y-%m-%d %H:%M:%S%.6f+00:00")
        .to_string();
    vec![
        uuid::Uuid::now_v7().to_string(),
        "bench".into(),
        format!("Given{i}"),
        format!("Family{run}"),
        format!("Given{i} Family{run}"),
        format!("person{i}.{run}@example.com"),
        format!("+4930{:08}", i),
        format!(r#"[{{"address":"person{i}.{run}@example.com","label":"work","primary":true}}]"#),
        format!(
            r#"[{{"number":"+4930{i:08}","normalized":"+4930{i:08}","label":"","primary":true}}]"#
        ),
        String::new(),
        "Engineer".into(),
        "null".into(),
        String::new(),
        String::new(),
        "bench".into(),
        r#"["bench"]"#.into(),
        "{}".into(),
        "[]".into(),
        format!(" given{i} family{run} person{i}.{run}@example.com "),
        String::new(),
        now.clone(),
        now,
        String::new(),
        "1".into(),
    ]
}

fn placeholders(backend: Backend, rows: usize, first: usize) -> String {
    (0..rows)
        .map(|r| {
            let cells: Vec<String> = (0..24)
                .map(|c| {
                    let n = first + r * 24 + c + 1;
                    let p = if backend == Backend::Postgres {
                        format!("${n}")
                    } else {
                        "?".to_owned()
                    };
                    match (backend, c) {
                        // merged_into and delete_time are NULL in a fresh row.
                        (_, 19) => format!("NULLIF({p}, '')"),
                        (Backend::Postgres, 22) => format!("CAST(NULLIF({p}, '') AS timestamptz)"),
                        (_, 22) => format!("NULLIF({p}, '')"),
                        (Backend::Postgres, 20) | (Backend::Postgres, 21) => {
                            format!("CAST({p} AS timestamptz)")
                        }
                        (Backend::Postgres, 23) => format!("CAST({p} AS bigint)"),
                        _ => p,
                    }
                })
                .collect();
            format!("({})", cells.join(", "))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

async fn raw_insert_rows(url: &str, backend: Backend, rows: usize, batch: usize, run: &str) -> f64 {
    let mut conn = AnyConnection::connect(&sqlx_url(url))
        .await
        .expect("sqlx connect");
    crm_testkit::nodelay(&mut conn).await.expect("TCP_NODELAY");
    if backend == Backend::Sqlite {
        sqlx::query("PRAGMA synchronous = NORMAL")
            .execute(&mut conn)
            .await
            .expect("pragma");
    }
    let started = Instant::now();
    for start in (0..rows).step_by(batch) {
        let n = batch.min(rows - start);
        let sql = format!(
            "INSERT INTO contacts ({COLUMNS}) VALUES {}",
            placeholders(backend, n, 0)
        );
        // The SQL is built from constants and placeholders only; values are bound.
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        for i in start..start + n {
            for value in row_values(i, run) {
                query = query.bind(value);
            }
        }
        let mut txn = conn.begin().await.expect("begin");
        query.execute(&mut *txn).await.expect("insert");
        txn.commit().await.expect("commit");
    }
    rows as f64 / started.elapsed().as_secs_f64()
}

/// A pool of `concurrency` open connections with the durability the
/// service runs with (see shared::db), for the raw baselines.
async fn warm_pool(url: &str, backend: Backend, concurrency: usize) -> sqlx::AnyPool {
    let pool = sqlx::any::AnyPoolOptions::new()
        .max_connections(concurrency as u32)
        .after_connect(move |conn, _| {
            Box::pin(async move {
                crm_testkit::nodelay(conn).await?;
                if backend == Backend::Sqlite {
                    sqlx::query("PRAGMA synchronous = NORMAL")
                        .execute(&mut *conn)
                        .await?;
                    sqlx::query("PRAGMA busy_timeout = 15000")
                        .execute(&mut *conn)
                        .await?;
                }
                Ok(())
            })
        })
        .connect(&sqlx_url(url))
        .await
        .expect("pool");
    // Warm up: open every connection before measuring, as the service's is.
    let warm = futures_util::future::join_all((0..concurrency).map(|_| pool.acquire())).await;
    drop(warm);
    pool
}

async fn raw_insert_single(
    url: &str,
    backend: Backend,
    concurrency: usize,
    total: usize,
    run: &str,
) -> (f64, Latencies) {
    let pool = warm_pool(url, backend, concurrency).await;
    let sql = Arc::new(format!(
        "INSERT INTO contacts ({COLUMNS}) VALUES {}",
        placeholders(backend, 1, 0)
    ));
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let (pool, sql, next, run) = (pool.clone(), sql.clone(), next.clone(), run.to_owned());
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= total {
                    return latencies;
                }
                let mut query = sqlx::query(sqlx::AssertSqlSafe(sql.as_str().to_owned()));
                for value in row_values(i, &run) {
                    query = query.bind(value);
                }
                let began = Instant::now();
                query.execute(&pool).await.expect("insert");
                latencies.push(began.elapsed());
            }
        }));
    }
    let mut all = Vec::new();
    for task in tasks {
        all.extend(task.await.expect("task"));
    }
    (
        total as f64 / started.elapsed().as_secs_f64(),
        Latencies(all),
    )
}

/// The same writes the service makes for one CreateContact, by hand: the
/// contact row, its email and phone keys, its outbox event and its audit
/// entry (the entry and the audited state; a create reads no earlier
/// state), in one transaction.
async fn raw_same_writes(
    url: &str,
    backend: Backend,
    concurrency: usize,
    total: usize,
    run: &str,
) -> (f64, Latencies) {
    let pool = warm_pool(url, backend, concurrency).await;
    let pg = backend == Backend::Postgres;
    let p = |n: usize| if pg { format!("${n}") } else { "?".to_owned() };
    let contact_sql = Arc::new(format!(
        "INSERT INTO contacts ({COLUMNS}) VALUES {}",
        placeholders(backend, 1, 0)
    ));
    let key_sql = Arc::new(format!(
        "INSERT INTO contact_keys (tenant, kind, value, contact_id) VALUES ({}, 'email', {}, {}), ({}, 'phone', {}, {})",
        p(1),
        p(2),
        p(3),
        p(4),
        p(5),
        p(6)
    ));
    let time = if pg {
        format!("CAST({} AS timestamptz)", p(9))
    } else {
        p(9)
    };
    // On PostgreSQL the outbox numbers events from the transaction id (see
    // crm_shared::outbox); the service reads it with a query of its own.
    let (sequence_column, sequence_value) = if pg {
        ("sequence, ", "pg_current_xact_id()::text::bigint << 20, ")
    } else {
        ("", "")
    };
    let outbox_sql = Arc::new(format!(
        "INSERT INTO outbox ({sequence_column}id, tenant, event_type, subject, payload_type, payload, traceparent, actor, time) VALUES ({sequence_value}{}, {}, {}, {}, {}, {}, {}, {}, {time})",
        p(1),
        p(2),
        p(3),
        p(4),
        p(5),
        p(6),
        p(7),
        p(8)
    ));
    let audit_sql = Arc::new(AuditSql {
        entry: format!(
            "INSERT INTO audit_log (id, tenant, actor, method, resource, event_type, changes, changed_fields, request_id, trace_id, erased, time) VALUES ({}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {})",
            p(1),
            p(2),
            p(3),
            p(4),
            p(5),
            p(6),
            p(7),
            p(8),
            p(9),
            p(10),
            p(11),
            if pg {
                format!("CAST({} AS timestamptz)", p(12))
            } else {
                p(12)
            }
        ),
        state: format!(
            "INSERT INTO audit_state (tenant, resource, state) VALUES ({}, {}, {}) ON CONFLICT (tenant, resource) DO UPDATE SET state = excluded.state",
            p(1),
            p(2),
            p(3)
        ),
    });
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let (pool, next, run) = (pool.clone(), next.clone(), run.to_owned());
        let (contact_sql, key_sql, outbox_sql, audit_sql) = (
            contact_sql.clone(),
            key_sql.clone(),
            outbox_sql.clone(),
            audit_sql.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= total {
                    return latencies;
                }
                let values = row_values(i, &run);
                let (id, email, phone) = (values[0].clone(), values[5].clone(), values[6].clone());
                let began = Instant::now();
                // As the service's writes do: SQLite's writer lock taken at
                // BEGIN, so a transaction never has to upgrade from a read
                // snapshot another writer has moved past (SQLITE_BUSY at
                // once; the FTS5 triggers read before they write).
                let mut txn = if backend == Backend::Sqlite {
                    pool.begin_with("BEGIN IMMEDIATE").await.expect("begin")
                } else {
                    pool.begin().await.expect("begin")
                };
                let mut query = sqlx::query(sqlx::AssertSqlSafe(contact_sql.as_str().to_owned()));
                for value in values {
                    query = query.bind(value);
                }
                query.execute(&mut *txn).await.expect("contact");
                sqlx::query(sqlx::AssertSqlSafe(key_sql.as_str().to_owned()))
                    .bind("bench")
                    .bind(email)
                    .bind(id.clone())
                    .bind("bench")
                    .bind(phone)
                    .bind(id.clone())
                    .execute(&mut *txn)
                    .await
                    .expect("keys");
                sqlx::query(sqlx::AssertSqlSafe(outbox_sql.as_str().to_owned()))
                    .bind(uuid::Uuid::now_v7().to_string())
                    .bind("bench")
                    .bind("crm.contacts.v1.ContactCreated")
                    .bind(format!("contacts/{id}"))
                    .bind("type.googleapis.com/crm.contacts.v1.Contact")
                    .bind(vec![0u8; 200])
                    .bind("")
                    .bind("bench")
                    .bind(
                        chrono::Utc::now()
                            .format("%Y-%m-%d %H:%M:%S%.6f+00:00")
                            .to_string(),
                    )
                    .execute(&mut *txn)
                    .await
                    .expect("outbox");
                audit_sql.write(&mut txn, &format!("contacts/{id}")).await;
                txn.commit().await.expect("commit");
                latencies.push(began.elapsed());
            }
        }));
    }
    let mut all = Vec::new();
    for task in tasks {
        all.extend(task.await.expect("task"));
    }
    (
        total as f64 / started.elapsed().as_secs_f64(),
        Latencies(all),
    )
}

/// The audit log's statements, as the service's `crm_shared::audit` makes them.
struct AuditSql {
    entry: String,
    state: String,
}

impl AuditSql {
    /// The audit writes of one created contact, with a state and a change
    /// list the size of a typical contact's.
    async fn write(&self, txn: &mut sqlx::Transaction<'_, sqlx::Any>, resource: &str) {
        let state = format!(
            r#"{{"name":"{resource}","given_name":"Bench","family_name":"Person","emails":[{{"address":"b@example.com"}}],"phones":[{{"number":"+15550100000"}}],"lifecycle_stage":"LIFECYCLE_STAGE_LEAD","create_time":"2026-11-29T00:00:00Z"}}"#
        );
        sqlx::query(sqlx::AssertSqlSafe(self.entry.clone()))
            .bind(uuid::Uuid::now_v7().to_string())
            .bind("bench")
            .bind("bench")
            .bind("/crm.contacts.v1.ContactsService/CreateContact")
            .bind(resource.to_owned())
            .bind("crm.contacts.v1.ContactCreated")
            .bind(format!("[{state}]"))
            .bind(r#"["create_time","emails","family_name","given_name","lifecycle_stage","name","phones"]"#)
            .bind("")
            .bind("")
            .bind(false)
            .bind(
                chrono::Utc::now()
                    .format("%Y-%m-%d %H:%M:%S%.6f+00:00")
                    .to_string(),
            )
            .execute(&mut **txn)
            .await
            .expect("audit entry");
        sqlx::query(sqlx::AssertSqlSafe(self.state.clone()))
            .bind("bench")
            .bind(resource.to_owned())
            .bind(state)
            .execute(&mut **txn)
            .await
            .expect("audit state");
    }
}

async fn copy_rows(url: &str, count: usize, run: &str) -> f64 {
    let started = Instant::now();
    // merged_into and delete_time (empty here) are NULL.
    let rows = (0..count).map(|i| {
        row_values(i, run)
            .into_iter()
            .enumerate()
            .map(|(c, v)| (!((c == 19 || c == 22) && v.is_empty())).then_some(v))
            .collect()
    });
    scale::load(url, Backend::Postgres, "contacts", COLUMNS, rows).await;
    count as f64 / started.elapsed().as_secs_f64()
}

fn sqlx_url(url: &str) -> String {
    url.to_owned()
}

async fn import_via_service(service: &mut Service, rows: usize, run: &str) -> f64 {
    let run = run.to_owned();
    let requests = tokio_stream::iter((0..rows).map(move |i| ImportContactsRequest {
        contact: Some(contact(i, &run)),
    }));
    let started = Instant::now();
    let mut responses = service
        .client
        .import_contacts(service.request(requests))
        .await
        .expect("import")
        .into_inner();
    let mut created = 0;
    while let Some(batch) = responses.message().await.expect("import stream") {
        created += batch.results.iter().filter(|r| r.outcome == 1).count();
    }
    assert_eq!(created, rows, "every row is created");
    rows as f64 / started.elapsed().as_secs_f64()
}

#[tokio::main]
async fn main() {
    sqlx::any::install_default_drivers();
    let args = crm_testkit::bench::Args::from_env();
    let full = args.full;
    let wanted = |part: &str| args.runs(part, true);
    let mut backends: Vec<Backend> = if full {
        vec![Backend::Sqlite, Backend::Postgres]
    } else {
        vec![Backend::Sqlite]
    };
    // `backends=postgres` (or `sqlite`) runs one backend only.
    if let Some(only) = args.value("backends") {
        backends.retain(|backend| format!("{backend:?}").eq_ignore_ascii_case(only));
    }
    let backends = backends.as_slice();
    if wanted("writes") {
        // `imports=100000,1000000` sets the import sizes.
        let imports: Option<Vec<usize>> = args.value("imports").map(|sizes| {
            sizes
                .split(',')
                .map(|n| n.replace('_', "").parse().expect("imports=<rows>[,<rows>]"))
                .collect()
        });
        writes(full, backends, imports).await;
        println!();
    }
    if wanted("scale") {
        // (contacts, calls per case, the far page)
        let (contacts, calls, pages) = if full {
            (1_000_000, 100, 1000)
        } else {
            (2_000, 3, 5)
        };
        let mut scale_backends = vec![Backend::Sqlite, Backend::Postgres];
        if let Some(only) = args.value("backends") {
            scale_backends.retain(|backend| format!("{backend:?}").eq_ignore_ascii_case(only));
        }
        // `keep` leaves the loaded databases behind for EXPLAIN and prints where.
        scale::run(contacts, calls, pages, &scale_backends, args.named("keep")).await;
    }
}

/// CreateContact and ImportContacts (of `imports` rows each, or the
/// default sizes) beside raw writes.
async fn writes(full: bool, backends: &[Backend], imports: Option<Vec<usize>>) {
    let (creates, concurrencies, default_imports): (usize, &[usize], &[usize]) = if full {
        (3000, &[1, 8, 32], &[10_000, 100_000])
    } else {
        (100, &[4], &[1_000])
    };
    let import_sizes = imports.unwrap_or_else(|| default_imports.to_vec());
    println!("| backend | path | concurrency | req/s | p50 ms | p99 ms |");
    println!("|---|---|---|---|---|---|");
    let mut import_lines = Vec::new();
    for &backend in backends {
        let Some(db) = TestDatabase::create(backend).await else {
            continue;
        };
        let name = format!("{backend:?}");
        let service = Service::start(&db.url).await;
        for (run, &concurrency) in concurrencies.iter().enumerate() {
            // Warm up: let the service's pool open its connections first.
            create_via_service(&service, concurrency, concurrency * 4, &format!("w{run}")).await;
            let (rps, mut lat) =
                create_via_service(&service, concurrency, creates, &format!("s{run}")).await;
            println!(
                "| {name} | CreateContact (gRPC) | {concurrency} | {rps:.0} | {:.2} | {:.2} |",
                lat.percentile(0.5),
                lat.percentile(0.99)
            );
            let (rps, mut lat) =
                raw_insert_single(&db.url, backend, concurrency, creates, &format!("r{run}")).await;
            println!(
                "| {name} | raw sqlx INSERT | {concurrency} | {rps:.0} | {:.2} | {:.2} |",
                lat.percentile(0.5),
                lat.percentile(0.99)
            );
            let (rps, mut lat) =
                raw_same_writes(&db.url, backend, concurrency, creates, &format!("t{run}")).await;
            println!(
                "| {name} | raw sqlx, same writes in one transaction | {concurrency} | {rps:.0} | {:.2} | {:.2} |",
                lat.percentile(0.5),
                lat.percentile(0.99)
            );
        }
        drop(service);
        for &rows in &import_sizes {
            // A fresh process per size, so its peak memory belongs to this import.
            let mut service = Service::start(&db.url).await;
            let before = service.peak_memory_mib();
            let rate = import_via_service(&mut service, rows, &format!("i{rows}")).await;
            let peak = service.peak_memory_mib();
            drop(service);
            let raw = raw_insert_rows(&db.url, backend, rows, 500, &format!("m{rows}")).await;
            let copy = if backend == Backend::Postgres {
                format!("{:.0}", copy_rows(&db.url, rows, &format!("c{rows}")).await)
            } else {
                "n/a".into()
            };
            import_lines.push(format!(
                "| {name} | {rows} | {rate:.0} | {raw:.0} | {copy} | {before:.0} -> {peak:.0} |"
            ));
        }
    }
    println!();
    println!(
        "| backend | rows | ImportContacts rows/s | raw multi-row INSERT rows/s | COPY rows/s | service peak RSS MiB (start -> after) |"
    );
    println!("|---|---|---|---|---|---|");
    for line in import_lines {
        println!("{line}");
    }
}
