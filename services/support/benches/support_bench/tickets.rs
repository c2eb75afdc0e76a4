//! The ticket creation benchmark, on PostgreSQL and on SQLite in one run:
//! `CreateTicket` through gRPC at several concurrencies (tickets per second,
//! p50/p99 latency), beside raw SQL making the same writes per ticket in one
//! transaction at the same concurrency, in the same run.
//!
//! Rows per backend and concurrency, each after a warm-up, measured in
//! slices with the modes taking turns (the machine may be shared):
//!
//! - `CreateTicket`: the requester named as a contact, so every call asks the
//!   real contacts service for it (`GetContact`), as in production;
//! - `CreateTicket, contacts stubbed`: the same, with support's contacts peer
//!   a stub in this process that answers `GetContact` from memory: the
//!   lookup's round trip stays, the contacts service's work does not;
//! - `GetContact alone`: the lookup by itself, straight to contacts;
//! - `raw SQL`: sqlx over a fresh database migrated with support's
//!   `Migrator`: the counter upsert, the ticket row, its two change rows, the
//!   audit entry and the audit state, and the outbox row (numbered from the
//!   transaction id on PostgreSQL, as the kit does), in one transaction;
//!   on SQLite behind one in-process write lock, as the service's writes are.
//!
//! Both the services and the raw pool hold at most 10 connections (the
//! service default). `cargo bench -p crm-support --bench support_bench --
//! tickets` runs it in full; a plain run (`cargo test --benches`) makes a
//! small smoke pass on SQLite.

use std::{
    convert::Infallible,
    sync::Arc,
    task::{Context, Poll},
    time::Instant,
};

use crm_proto::{
    codec::StrictProstCodec,
    contacts::{
        Contact, CreateContactRequest, EmailAddress, GetContactRequest,
        contacts_service_client::ContactsServiceClient,
    },
    support::{CreateTicketRequest, Ticket, support_service_client::SupportServiceClient},
};
use crm_shared::{auth::Role, config::Settings};
use crm_testkit::{
    ADMIN, Authed, Backend, ServiceProcess, TENANT, TestDatabase, bearer_for,
    bench::{Op, ROUNDS, WARM_UP_PER_CALLER, in_turns, op, percentile},
    channel_to, service, settings,
};
use prost::Message;
use sqlx::{AssertSqlSafe, Row as _};
use tokio::sync::Mutex;
use tonic::{
    codegen::{BoxFuture, Service, http},
    server::NamedService,
    transport::server::TcpIncoming,
};

/// The calling agent's roles.
const AGENT: &[Role] = &[Role::Support];
/// Pooled connections of every service and of the raw pool.
const MAX_CONNECTIONS: u32 = 10;
/// Contacts the tickets name as requesters, in turn.
const REQUESTERS: usize = 8;

fn service_settings(name: &str, url: &str) -> Settings {
    let mut settings = settings(name, url);
    settings.service.max_connections = MAX_CONNECTIONS;
    settings
}

/// A ticket as an API client would open it.
fn ticket(i: usize, requester: &str) -> Ticket {
    Ticket {
        subject: format!("Cannot log in ({i})"),
        description: "Since this morning the login page says my password is wrong, \
                      although I reset it twice."
            .into(),
        requester: requester.to_owned(),
        r#type: "question".into(),
        tags: vec!["login".into(), "web".into()],
        ..Default::default()
    }
}

fn create_tickets(support: SupportServiceClient<Authed>, requesters: Arc<Vec<String>>) -> Op {
    op(move |i| {
        let mut support = support.clone();
        let requester = requesters[i % requesters.len()].clone();
        async move {
            support
                .create_ticket(CreateTicketRequest {
                    ticket: Some(ticket(i, &requester)),
                    request_id: String::new(),
                })
                .await
                .expect("CreateTicket");
        }
    })
}

fn get_contacts(contacts: ContactsServiceClient<Authed>, requesters: Arc<Vec<String>>) -> Op {
    op(move |i| {
        let mut contacts = contacts.clone();
        let name = requesters[i % requesters.len()].clone();
        async move {
            contacts
                .get_contact(GetContactRequest { name })
                .await
                .expect("GetContact");
        }
    })
}

/// A contacts service that answers `GetContact` from memory (any name, a
/// live contact with one email) and nothing else.
#[derive(Clone)]
struct StubContacts;

impl NamedService for StubContacts {
    const NAME: &'static str = "crm.contacts.v1.ContactsService";
}

struct StubGet;

impl tonic::server::UnaryService<GetContactRequest> for StubGet {
    type Response = Contact;
    type Future = std::future::Ready<Result<tonic::Response<Contact>, tonic::Status>>;

    fn call(&mut self, request: tonic::Request<GetContactRequest>) -> Self::Future {
        std::future::ready(Ok(tonic::Response::new(Contact {
            name: request.into_inner().name,
            display_name: "Ada Lovelace".into(),
            emails: vec![EmailAddress {
                address: "ada@example.com".into(),
                label: "work".into(),
                primary: true,
            }],
            ..Default::default()
        })))
    }
}

impl<B> Service<http::Request<B>> for StubContacts
where
    B: tonic::codegen::Body + Send + 'static,
    B::Error: Into<tonic::codegen::StdError> + Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        if request.uri().path() == "/crm.contacts.v1.ContactsService/GetContact" {
            Box::pin(async move {
                let mut grpc = tonic::server::Grpc::new(StrictProstCodec::default());
                Ok(grpc.unary(StubGet, request).await)
            })
        } else {
            Box::pin(async { Ok(tonic::Status::unimplemented("a stub").into_http()) })
        }
    }
}

/// Serves [`StubContacts`] on a free port of this process; its address.
fn start_stub_contacts() -> std::net::SocketAddr {
    let incoming = TcpIncoming::bind("127.0.0.1:0".parse().expect("an address"))
        .expect("a free port")
        .with_nodelay(Some(true));
    let addr = incoming.local_addr().expect("the stub's address");
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(StubContacts)
            .serve_with_incoming(incoming),
    );
    addr
}

/// The statements of the raw path, in the backend's dialect.
struct RawSql {
    counter: Arc<str>,
    ticket: Arc<str>,
    changes: Arc<str>,
    audit_entry: Arc<str>,
    audit_state: Arc<str>,
    outbox: Arc<str>,
}

impl RawSql {
    fn new(backend: Backend) -> Self {
        let pg = backend == Backend::Postgres;
        // Placeholders $first.. (PostgreSQL) or ?, one per listed kind; a
        // kind `t` is a timestamp (bound as text, cast on PostgreSQL).
        let values = |first: usize, kinds: &str| -> String {
            kinds
                .chars()
                .enumerate()
                .map(|(k, kind)| match (pg, kind) {
                    (true, 't') => format!("CAST(${} AS timestamptz)", first + k),
                    (true, _) => format!("${}", first + k),
                    (false, _) => "?".to_owned(),
                })
                .collect::<Vec<_>>()
                .join(", ")
        };
        let outbox = if pg {
            // The kit's statement (crm_shared::outbox): numbered after this
            // transaction's earlier events, notifying followers on commit.
            format!(
                "WITH tx AS (SELECT pg_current_xact_id()::text::bigint << 20 AS base), \
                      next AS (SELECT tx.base + (SELECT COUNT(*) FROM outbox \
                          WHERE sequence >= tx.base AND sequence < tx.base + (1 << 20)) AS first FROM tx) \
                 INSERT INTO outbox (sequence, id, tenant, event_type, subject, payload_type, payload, traceparent, actor, time) \
                 SELECT next.first + v.i, v.id, v.tenant, v.event_type, v.subject, v.payload_type, v.payload, v.traceparent, v.actor, v.time \
                 FROM next, (SELECT pg_notify('crm_outbox', '')) AS notified, \
                      (VALUES ({})) AS v(i, id, tenant, event_type, subject, payload_type, payload, traceparent, actor, time)",
                values(1, "vvvvvvvvvt")
            )
        } else {
            format!(
                "INSERT INTO outbox (id, tenant, event_type, subject, payload_type, payload, traceparent, actor, time) VALUES ({})",
                values(1, "vvvvvvvvt")
            )
        };
        Self {
            counter: format!(
                "INSERT INTO ticket_counters (tenant, last_number) VALUES ({}, 1) \
                 ON CONFLICT (tenant) DO UPDATE SET last_number = ticket_counters.last_number + 1 \
                 RETURNING last_number",
                values(1, "v")
            )
            .into(),
            ticket: format!(
                "INSERT INTO tickets (id, tenant, number, subject, description, requester, requester_email, \
                 company, channel, priority, priority_rank, kind, tags, custom_fields, status, queue, assignee, \
                 assignment_reason, follow_up_of, reopen_count, create_time, update_time, version, sla_policy, \
                 sla_clocks, sla_recorded) VALUES ({})",
                values(1, "vvvvvvvvvvvvvvvvvvvvttvvvv")
            )
            .into(),
            changes: format!(
                "INSERT INTO ticket_changes (id, tenant, ticket_id, field, old_value, new_value, actor, change_time, version) \
                 VALUES ({}), ({})",
                values(1, "vvvvvvvtv"),
                values(10, "vvvvvvvtv")
            )
            .into(),
            audit_entry: format!(
                "INSERT INTO audit_log (id, tenant, time, actor, method, resource, event_type, changes, \
                 changed_fields, request_id, trace_id, erased) VALUES ({})",
                values(1, "vvtvvvvvvvvv")
            )
            .into(),
            audit_state: format!(
                "INSERT INTO audit_state (tenant, resource, state) VALUES ({}) \
                 ON CONFLICT (tenant, resource) DO UPDATE SET state = excluded.state",
                values(1, "vvv")
            )
            .into(),
            outbox: outbox.into(),
        }
    }
}

/// Raw SQL making a ticket's writes.
struct RawTickets {
    pool: sqlx::AnyPool,
    sql: RawSql,
    backend: Backend,
    /// SQLite's one writer, as `crm_shared::db` keeps it.
    write_lock: Option<Mutex<()>>,
}

fn sql(text: &Arc<str>) -> AssertSqlSafe<Arc<str>> {
    AssertSqlSafe(text.clone())
}

impl RawTickets {
    /// Migrates `url` with support's `Migrator` and opens a pool on it.
    async fn open(url: &str, backend: Backend) -> Self {
        let migrated = crm_shared::db::Database::connect(url, 2)
            .await
            .expect("connect to the raw database");
        migrated
            .migrate::<crm_support::Migrator>()
            .await
            .expect("migrate the raw database");
        drop(migrated);
        let pool = sqlx::any::AnyPoolOptions::new()
            .max_connections(MAX_CONNECTIONS)
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    // TCP_NODELAY and the durability the service runs with (crm_shared::db).
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
            .connect(url)
            .await
            .expect("the raw pool");
        Self {
            pool,
            sql: RawSql::new(backend),
            backend,
            write_lock: (backend == Backend::Sqlite).then(|| Mutex::new(())),
        }
    }

    /// Opens every pooled connection a run at `concurrency` will use.
    async fn warm(&self, concurrency: usize) {
        let mut held = Vec::new();
        for _ in 0..concurrency.min(MAX_CONNECTIONS as usize) {
            held.push(self.pool.acquire().await.expect("a connection"));
        }
    }

    /// One ticket's writes in one transaction.
    async fn create(&self, i: usize, requester: &str) {
        let _writer = match &self.write_lock {
            Some(lock) => Some(lock.lock().await),
            None => None,
        };
        let now = chrono::Utc::now();
        let time = now.format("%Y-%m-%d %H:%M:%S%.6f+00:00").to_string();
        let id = uuid::Uuid::now_v7().to_string();
        let name = format!("tickets/{id}");
        let draft = ticket(i, requester);
        let tags = serde_json::to_string(&draft.tags).expect("tags");
        let mut txn = self.pool.begin().await.expect("begin");
        let number: i64 = sqlx::query(sql(&self.sql.counter))
            .bind(TENANT)
            .fetch_one(&mut *txn)
            .await
            .expect("counter")
            .try_get(0)
            .expect("the number");
        sqlx::query(sql(&self.sql.ticket))
            .bind(id.clone())
            .bind(TENANT)
            .bind(number)
            .bind(draft.subject.clone())
            .bind(draft.description.clone())
            .bind(requester.to_owned())
            .bind("ada@example.com")
            .bind("")
            .bind("API")
            .bind("NORMAL")
            .bind(2i32)
            .bind(draft.r#type.clone())
            .bind(tags.clone())
            .bind("{}")
            .bind("NEW")
            .bind("")
            .bind("")
            .bind("")
            .bind("")
            .bind(0i32)
            .bind(time.clone())
            .bind(time.clone())
            .bind(1i64)
            .bind("")
            .bind("[]")
            .bind("[]")
            .execute(&mut *txn)
            .await
            .expect("ticket");
        let mut changes = sqlx::query(sql(&self.sql.changes));
        for (field, value) in [("status", "NEW"), ("priority", "NORMAL")] {
            changes = changes
                .bind(uuid::Uuid::now_v7().to_string())
                .bind(TENANT)
                .bind(id.clone())
                .bind(field)
                .bind("")
                .bind(value)
                .bind("tester")
                .bind(time.clone())
                .bind(1i64);
        }
        changes.execute(&mut *txn).await.expect("changes");
        // The audit log's copy of the ticket and its changes from nothing.
        let state = serde_json::json!({
            "name": name,
            "number": number.to_string(),
            "subject": draft.subject,
            "description": draft.description,
            "requester": requester,
            "requester_email": "ada@example.com",
            "channel": "TICKET_CHANNEL_API",
            "priority": "TICKET_PRIORITY_NORMAL",
            "type": draft.r#type,
            "tags": draft.tags,
            "status": "TICKET_STATUS_NEW",
            "create_time": now.to_rfc3339(),
            "update_time": now.to_rfc3339(),
            "etag": "1",
        });
        let fields: Vec<&String> = state
            .as_object()
            .expect("an object")
            .keys()
            .filter(|f| *f != "update_time" && *f != "etag")
            .collect();
        let changes: Vec<_> = fields
            .iter()
            .map(|f| serde_json::json!({"field": f, "before": null, "after": state[f.as_str()]}))
            .collect();
        sqlx::query(sql(&self.sql.audit_entry))
            .bind(uuid::Uuid::now_v7().to_string())
            .bind(TENANT)
            .bind(time.clone())
            .bind("tester")
            .bind("/crm.support.v1.SupportService/CreateTicket")
            .bind(name.clone())
            .bind("crm.support.v1.TicketCreated")
            .bind(serde_json::to_string(&changes).expect("changes"))
            .bind(serde_json::to_string(&fields).expect("fields"))
            .bind("")
            .bind("")
            .bind(false)
            .execute(&mut *txn)
            .await
            .expect("audit entry");
        sqlx::query(sql(&self.sql.audit_state))
            .bind(TENANT)
            .bind(name.clone())
            .bind(state.to_string())
            .execute(&mut *txn)
            .await
            .expect("audit state");
        // The event's payload: the ticket as the API returns it.
        let payload = Ticket {
            name: name.clone(),
            number,
            requester_email: "ada@example.com".into(),
            etag: "1".into(),
            ..draft
        }
        .encode_to_vec();
        let mut outbox = sqlx::query(sql(&self.sql.outbox));
        if self.backend == Backend::Postgres {
            outbox = outbox.bind(0i64);
        }
        outbox
            .bind(uuid::Uuid::now_v7().to_string())
            .bind(TENANT)
            .bind("crm.support.v1.TicketCreated")
            .bind(name)
            .bind("type.googleapis.com/crm.support.v1.Ticket")
            .bind(payload)
            .bind("")
            .bind("tester")
            .bind(time)
            .execute(&mut *txn)
            .await
            .expect("outbox");
        txn.commit().await.expect("commit");
    }
}

fn raw_tickets(raw: Arc<RawTickets>, requesters: Arc<Vec<String>>) -> Op {
    op(move |i| {
        let raw = raw.clone();
        let requester = requesters[i % requesters.len()].clone();
        async move { raw.create(i, &requester).await }
    })
}

/// Everything one backend's rows run against. Services stop before their
/// databases are dropped (fields drop in order).
struct Bench {
    support: ServiceProcess,
    stubbed_support: ServiceProcess,
    contacts: ServiceProcess,
    raw: Arc<RawTickets>,
    requesters: Arc<Vec<String>>,
    _databases: Vec<TestDatabase>,
}

impl Bench {
    async fn start(backend: Backend) -> Option<Self> {
        let contacts_db = TestDatabase::create(backend).await?;
        let support_db = TestDatabase::create(backend).await?;
        let stubbed_db = TestDatabase::create(backend).await?;
        let raw_db = TestDatabase::create(backend).await?;
        let contacts = ServiceProcess::start(
            service(crm_contacts::build),
            service_settings("contacts", &contacts_db.url),
        )
        .await;
        let mut support_settings = service_settings("support", &support_db.url);
        support_settings
            .peers
            .insert("contacts".into(), format!("http://{}", contacts.addr));
        let support = ServiceProcess::start(service(crm_support::build), support_settings).await;
        let mut stubbed_settings = service_settings("support", &stubbed_db.url);
        stubbed_settings.peers.insert(
            "contacts".into(),
            format!("http://{}", start_stub_contacts()),
        );
        let stubbed_support =
            ServiceProcess::start(service(crm_support::build), stubbed_settings).await;
        let mut admin = ContactsServiceClient::with_interceptor(
            channel_to(contacts.addr),
            bearer_for(TENANT, ADMIN),
        );
        let mut requesters = Vec::new();
        for n in 0..REQUESTERS {
            let contact = admin
                .create_contact(CreateContactRequest {
                    contact: Some(Contact {
                        display_name: format!("Requester {n}"),
                        emails: vec![EmailAddress {
                            address: format!("requester{n}@example.com"),
                            label: "work".into(),
                            primary: true,
                        }],
                        ..Default::default()
                    }),
                    request_id: String::new(),
                })
                .await
                .expect("CreateContact")
                .into_inner();
            requesters.push(contact.name);
        }
        let raw = Arc::new(RawTickets::open(&raw_db.url, backend).await);
        Some(Self {
            support,
            stubbed_support,
            contacts,
            raw,
            requesters: Arc::new(requesters),
            _databases: vec![contacts_db, support_db, stubbed_db, raw_db],
        })
    }

    fn support_client(process: &ServiceProcess) -> SupportServiceClient<Authed> {
        SupportServiceClient::with_interceptor(channel_to(process.addr), bearer_for(TENANT, AGENT))
    }
}

/// One row of the table.
struct Row {
    mode: &'static str,
    backend: &'static str,
    concurrency: usize,
    rate: f64,
    p50: f64,
    p99: f64,
    /// Whether the row creates tickets (and so has a ratio to raw SQL).
    creates: bool,
}

/// Runs this part: in full, or (`full` false) a smoke pass on SQLite.
pub async fn run(full: bool) {
    let (per_cell, concurrencies, backends): (usize, &[usize], &[Backend]) = if full {
        (2000, &[1, 8, 32], &[Backend::Postgres, Backend::Sqlite])
    } else {
        (60, &[4], &[Backend::Sqlite])
    };
    let started = Instant::now();
    let mut rows = Vec::new();
    for &backend in backends {
        let Some(bench) = Bench::start(backend).await else {
            eprintln!("{backend:?} is not available: skipped");
            continue;
        };
        let backend_name = match backend {
            Backend::Postgres => "PostgreSQL",
            Backend::Sqlite => "SQLite",
        };
        // A separate client (and so connection) per mode.
        let modes: [(&'static str, Op, bool); 4] = [
            (
                "CreateTicket (gRPC), requester looked up in contacts",
                create_tickets(
                    Bench::support_client(&bench.support),
                    bench.requesters.clone(),
                ),
                true,
            ),
            (
                "CreateTicket (gRPC), contacts stubbed",
                create_tickets(
                    Bench::support_client(&bench.stubbed_support),
                    bench.requesters.clone(),
                ),
                true,
            ),
            (
                "GetContact alone (gRPC to contacts; calls/s)",
                get_contacts(
                    ContactsServiceClient::with_interceptor(
                        channel_to(bench.contacts.addr),
                        bearer_for(TENANT, AGENT),
                    ),
                    bench.requesters.clone(),
                ),
                false,
            ),
            (
                "raw SQL, same writes in one transaction",
                raw_tickets(bench.raw.clone(), bench.requesters.clone()),
                true,
            ),
        ];
        for &concurrency in concurrencies {
            bench.raw.warm(concurrency).await;
            let ops: Vec<&Op> = modes.iter().map(|(_, op, _)| op).collect();
            let measured = in_turns(&ops, concurrency, per_cell).await;
            for ((mode, _, creates), (elapsed, mut latencies)) in modes.iter().zip(measured) {
                rows.push(Row {
                    mode,
                    backend: backend_name,
                    concurrency,
                    rate: latencies.len() as f64 / elapsed.as_secs_f64(),
                    p50: percentile(&mut latencies, 0.5),
                    p99: percentile(&mut latencies, 0.99),
                    creates: *creates,
                });
            }
        }
    }
    println!("| mode | backend | concurrency | tickets/s | p50 ms | p99 ms | ratio to raw SQL |");
    println!("|---|---|---|---|---|---|---|");
    for row in &rows {
        let raw = rows
            .iter()
            .find(|r| {
                r.mode.starts_with("raw SQL")
                    && r.backend == row.backend
                    && r.concurrency == row.concurrency
            })
            .map_or(f64::NAN, |r| r.rate);
        let ratio = if row.creates {
            format!("{:.2}", row.rate / raw)
        } else {
            "n/a".to_owned()
        };
        println!(
            "| {} | {} | {} | {:.0} | {:.2} | {:.2} | {ratio} |",
            row.mode, row.backend, row.concurrency, row.rate, row.p50, row.p99
        );
    }
    println!(
        "\n{per_cell} operations per row in {ROUNDS} slices, the modes taking turns, after a warm-up \
         of {WARM_UP_PER_CALLER} per caller (at least 20); {:.0} s in all.",
        started.elapsed().as_secs_f64()
    );
}
