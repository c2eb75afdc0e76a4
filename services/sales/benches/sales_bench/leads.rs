//! Lead capture and conversion at several concurrencies, on PostgreSQL and
//! SQLite in one run, beside raw SQL and the contacts call they make.
//!
//! Contacts and sales run as services on fresh databases of the backend
//! (sales' contacts peer is that contacts), with two assignment rules (leads
//! from Germany round-robin between two reps, larger companies to a third)
//! and three scoring rules. Rows per backend and concurrency, the modes
//! taking turns after a warm-up (`crm_testkit::bench::in_turns`):
//!
//! - `CreateLead`: each lead new (its own email and company); the email is
//!   looked up in contacts (a call to contacts), its open-lead twins in
//!   sales, the assignment rules and scoring rules evaluated against the
//!   stored row, its event and audit entry written;
//! - raw SQL: the irreducible writes of a lead: its row as sales stores it
//!   (one INSERT) and its `LeadCreated` event (the kit's own outbox append)
//!   in one transaction, through a pool as large as the service's;
//! - `ConvertLead` (1 and 8 callers): each converts a lead made beforehand,
//!   untimed, into a contact and a company in contacts and a deal in sales;
//!   beside `CreateContact` alone, the largest part of it, on contacts.

use std::sync::{
    Arc, Mutex,
    atomic::{AtomicUsize, Ordering},
};

use chrono::{Duration, Utc};
use crm_proto::{
    common::Money,
    contacts::{Contact, CreateContactRequest, contacts_service_client::ContactsServiceClient},
    sales::{
        AssignmentRule, AssignmentStrategy, ConvertLeadRequest, CreateAssignmentRuleRequest,
        CreateLeadRequest, CreateScoringRuleRequest, Lead, LeadSource, ScoringRule,
        sales_service_client::SalesServiceClient,
    },
};
use crm_shared::{
    db::{Database, Tenant},
    outbox::{self, NewEvent},
};
use crm_testkit::{
    ADMIN, Authed, Backend, ServiceProcess, TENANT, TestDatabase, bearer_for,
    bench::{Op, WARM_UP_PER_CALLER, in_turns, op, percentile, record},
    channel_to, service, settings,
};
use sea_orm::{
    ConnectionTrait, Value,
    sea_query::{Alias, Query},
};

/// Pooled connections of each service and of the raw pool.
const MAX_CONNECTIONS: u32 = 10;

fn lead(i: usize, run: &str) -> Lead {
    Lead {
        given_name: format!("Ada{i}"),
        family_name: "Lovelace".into(),
        email: format!("ada{i}.{run}@engines{i}.example"),
        company_name: format!("{run} Engines {i}"),
        country: if i.is_multiple_of(2) { "DE" } else { "FR" }.into(),
        employee_count: (i % 7 * 150) as i64,
        title: "Head of Operations".into(),
        source: LeadSource::WebForm as i32,
        ..Default::default()
    }
}

/// The rules leads are checked against (most match one of each kind).
async fn make_rules(sales: &mut SalesServiceClient<Authed>) {
    let assignment = [
        ("DACH", 1, r#"country = "DE""#, vec!["ann", "bob"]),
        ("Enterprise", 2, "employee_count >= 500", vec!["eve"]),
    ];
    for (name, priority, filter, members) in assignment {
        sales
            .create_assignment_rule(CreateAssignmentRuleRequest {
                assignment_rule: Some(AssignmentRule {
                    display_name: name.into(),
                    priority,
                    filter: filter.into(),
                    strategy: AssignmentStrategy::RoundRobin as i32,
                    members: members.into_iter().map(Into::into).collect(),
                    ..Default::default()
                }),
                request_id: String::new(),
            })
            .await
            .expect("an assignment rule");
    }
    let scoring = [
        ("Enterprise size", "employee_count >= 500", 30),
        ("Germany", r#"country = "DE""#, 10),
        ("Web form", r#"source = "WEB_FORM""#, 5),
    ];
    for (name, filter, points) in scoring {
        sales
            .create_scoring_rule(CreateScoringRuleRequest {
                scoring_rule: Some(ScoringRule {
                    display_name: name.into(),
                    filter: filter.into(),
                    points,
                    ..Default::default()
                }),
                request_id: String::new(),
            })
            .await
            .expect("a scoring rule");
    }
}

/// Creates leads, each with an email of its own (a run's indexes repeat
/// from slice to slice: twins would pile up as possible duplicates).
fn create_leads(sales: SalesServiceClient<Authed>) -> Op {
    let next = Arc::new(AtomicUsize::new(0));
    op(move |_| {
        let mut sales = sales.clone();
        let i = next.fetch_add(1, Ordering::Relaxed);
        async move {
            sales
                .create_lead(CreateLeadRequest {
                    lead: Some(lead(i, "bench")),
                    request_id: String::new(),
                })
                .await
                .expect("CreateLead");
        }
    })
}

/// The lead columns of sales' `leads` table.
const LEAD_COLUMNS: [&str; 28] = [
    "id",
    "tenant",
    "given_name",
    "family_name",
    "email",
    "phone",
    "company_name",
    "title",
    "country",
    "employee_count",
    "source",
    "campaign",
    "status",
    "disqualify_reason",
    "owner",
    "assignment_reason",
    "score",
    "score_factors",
    "possible_duplicates",
    "converted_contact",
    "converted_company",
    "converted_contact_reused",
    "converted_opportunity",
    "convert_time",
    "create_time",
    "update_time",
    "delete_time",
    "version",
];

/// A lead's row and its event in one transaction.
async fn raw_create(db: &Database, i: usize) {
    let draft = lead(i, "raw");
    let id = uuid::Uuid::now_v7();
    let now = Utc::now();
    let values: [Value; 28] = [
        id.to_string().into(),
        TENANT.into(),
        draft.given_name.clone().into(),
        draft.family_name.clone().into(),
        draft.email.clone().into(),
        String::new().into(),
        draft.company_name.clone().into(),
        draft.title.clone().into(),
        draft.country.clone().into(),
        draft.employee_count.into(),
        "WEB_FORM".into(),
        String::new().into(),
        "NEW".into(),
        String::new().into(),
        "ann".into(),
        "DACH".into(),
        15i32.into(),
        r#"[{"rule":"Germany","points":10},{"rule":"Web form","points":5}]"#.into(),
        "[]".into(),
        String::new().into(),
        String::new().into(),
        false.into(),
        String::new().into(),
        Option::<chrono::DateTime<Utc>>::None.into(),
        now.into(),
        now.into(),
        Option::<chrono::DateTime<Utc>>::None.into(),
        1i64.into(),
    ];
    let mut insert = Query::insert();
    insert
        .into_table(Alias::new("leads"))
        .columns(LEAD_COLUMNS.map(Alias::new))
        .values_panic(values.into_iter().map(Into::into));
    let txn = db.begin_write().await.expect("begin");
    txn.execute_raw(db.backend().build(&insert))
        .await
        .expect("the lead's row");
    let name = format!("leads/{id}");
    let event = NewEvent::new(
        "LeadCreated",
        name.clone(),
        &Lead { name, ..draft },
        "tester",
    );
    outbox::append(&*txn, &Tenant::new(TENANT), "crm.sales.v1", vec![event])
        .await
        .expect("the lead's event");
    txn.commit().await.expect("commit");
}

/// Converts the leads made beforehand, the last made first.
fn convert_leads(sales: SalesServiceClient<Authed>, leads: Arc<Mutex<Vec<String>>>) -> Op {
    op(move |_| {
        let mut sales = sales.clone();
        let name = leads
            .lock()
            .expect("the leads")
            .pop()
            .expect("a lead left to convert");
        async move {
            sales
                .convert_lead(ConvertLeadRequest {
                    name,
                    create_opportunity: true,
                    amount: Some(Money {
                        currency_code: "EUR".into(),
                        units: 12_000,
                        nanos: 0,
                    }),
                    expected_close_date: (Utc::now() + Duration::days(30))
                        .format("%Y-%m-%d")
                        .to_string(),
                    ..Default::default()
                })
                .await
                .expect("ConvertLead");
        }
    })
}

fn create_contacts(contacts: ContactsServiceClient<Authed>) -> Op {
    op(move |i| {
        let mut contacts = contacts.clone();
        async move {
            contacts
                .create_contact(CreateContactRequest {
                    contact: Some(Contact {
                        display_name: format!("Grace Hopper {i}"),
                        ..Default::default()
                    }),
                    request_id: String::new(),
                })
                .await
                .expect("CreateContact");
        }
    })
}

/// One backend's services and raw pool. Services stop before their
/// databases are dropped (fields drop in order).
struct Bench {
    sales: ServiceProcess,
    contacts: ServiceProcess,
    raw: Arc<Database>,
    _databases: Vec<TestDatabase>,
}

impl Bench {
    async fn start(backend: Backend) -> Option<Self> {
        let contacts_db = TestDatabase::create(backend).await?;
        let sales_db = TestDatabase::create(backend).await?;
        let raw_db = TestDatabase::create(backend).await?;
        let mut contacts_settings = settings("contacts", &contacts_db.url);
        contacts_settings.service.max_connections = MAX_CONNECTIONS;
        let contacts = ServiceProcess::start(service(crm_contacts::build), contacts_settings).await;
        let mut sales_settings = settings("sales", &sales_db.url);
        sales_settings.service.max_connections = MAX_CONNECTIONS;
        sales_settings
            .peers
            .insert("contacts".into(), format!("http://{}", contacts.addr));
        let sales = ServiceProcess::start(service(crm_sales::build), sales_settings).await;
        make_rules(&mut client(&sales)).await;
        let raw = Database::connect(&raw_db.url, MAX_CONNECTIONS)
            .await
            .expect("the raw pool");
        raw.migrate::<crm_sales::Migrator>()
            .await
            .expect("migrate the raw database");
        Some(Self {
            sales,
            contacts,
            raw: Arc::new(raw),
            _databases: vec![contacts_db, sales_db, raw_db],
        })
    }
}

fn client(sales: &ServiceProcess) -> SalesServiceClient<Authed> {
    SalesServiceClient::with_interceptor(channel_to(sales.addr), bearer_for(TENANT, ADMIN))
}

/// Makes `count` leads to convert (untimed); their names.
async fn leads_to_convert(sales: &ServiceProcess, count: usize, run: &str) -> Vec<String> {
    let mut names = Vec::with_capacity(count);
    let mut sales = client(sales);
    for i in 0..count {
        let made = sales
            .create_lead(CreateLeadRequest {
                lead: Some(lead(i, run)),
                request_id: String::new(),
            })
            .await
            .expect("a lead to convert")
            .into_inner();
        names.push(made.name);
    }
    names
}

/// One row of the table.
struct Row {
    backend: &'static str,
    concurrency: usize,
    path: &'static str,
    rate: f64,
    p50: f64,
    p99: f64,
    /// Calls per second of the row it is compared with.
    baseline_rate: f64,
}

/// The rows of one measured pair: the path under test, then the baseline
/// it is compared with (the second of `paths` and `measured`).
fn compared(
    backend: &'static str,
    concurrency: usize,
    paths: [&'static str; 2],
    measured: Vec<(std::time::Duration, Vec<std::time::Duration>)>,
) -> Vec<Row> {
    let rate = |(elapsed, latencies): &(std::time::Duration, Vec<std::time::Duration>)| {
        latencies.len() as f64 / elapsed.as_secs_f64()
    };
    let baseline_rate = rate(&measured[1]);
    paths
        .into_iter()
        .zip(measured)
        .map(|(path, mut m)| Row {
            backend,
            concurrency,
            path,
            rate: rate(&m),
            p50: percentile(&mut m.1, 0.5),
            p99: percentile(&mut m.1, 0.99),
            baseline_rate,
        })
        .collect()
}

/// Runs this part: in full, or (`full` false) a smoke pass on SQLite.
pub async fn run(full: bool) {
    let (per_cell, concurrencies, backends): (usize, &[usize], &[Backend]) = if full {
        (2000, &[1, 8, 32], &[Backend::Postgres, Backend::Sqlite])
    } else {
        (60, &[4], &[Backend::Sqlite])
    };
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
        let create = create_leads(client(&bench.sales));
        let raw_db = bench.raw.clone();
        let raw = op(move |i| {
            let db = raw_db.clone();
            async move { raw_create(&db, i).await }
        });
        let contacts = ContactsServiceClient::with_interceptor(
            channel_to(bench.contacts.addr),
            bearer_for(TENANT, ADMIN),
        );
        for &concurrency in concurrencies {
            let measured = in_turns(&[&create, &raw], concurrency, per_cell).await;
            rows.extend(compared(
                backend_name,
                concurrency,
                [
                    "CreateLead (gRPC): contacts checked, 2 assignment + 3 scoring rules",
                    "raw SQL: the lead's row and its event in one transaction",
                ],
                measured,
            ));
            if concurrency > 8 {
                continue;
            }
            // Conversions use up their leads: warm-up and turns included.
            let needed = (concurrency * WARM_UP_PER_CALLER).max(20) + per_cell;
            let leads = Arc::new(Mutex::new(
                leads_to_convert(&bench.sales, needed, &format!("convert{concurrency}")).await,
            ));
            let convert = convert_leads(client(&bench.sales), leads);
            let contact = create_contacts(contacts.clone());
            let measured = in_turns(&[&convert, &contact], concurrency, per_cell).await;
            rows.extend(compared(
                backend_name,
                concurrency,
                [
                    "ConvertLead (gRPC): contact, company and deal",
                    "CreateContact alone (gRPC to contacts)",
                ],
                measured,
            ));
        }
    }
    println!("Leads: {per_cell} calls per row, modes taking turns (`leads.rs`)");
    println!();
    println!(
        "| backend | callers | path | calls/s | p50 ms | p99 ms | vs the row it is compared with |"
    );
    println!("|---|---:|---|---:|---:|---:|---:|");
    for row in rows {
        let ratio = row.rate / row.baseline_rate;
        println!(
            "| {} | {} | {} | {:.0} | {:.1} | {:.1} | {ratio:.2} |",
            row.backend, row.concurrency, row.path, row.rate, row.p50, row.p99
        );
        record(
            "sales_leads",
            serde_json::json!({
                "backend": row.backend, "concurrency": row.concurrency, "path": row.path,
                "per_second": row.rate, "p50_ms": row.p50, "p99_ms": row.p99,
                "vs_baseline": ratio,
            }),
        );
    }
}
