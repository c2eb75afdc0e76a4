//! The read model and the KPIs over a crafted history spanning a month, the
//! month before and the same month a year earlier, applied event by event
//! through the same code the consumers run, on SQLite and PostgreSQL. Every
//! expected value is worked out by hand in the comments beside it.

use chrono::{DateTime, Utc};
use crm_proto::{
    common::Money,
    contacts::{ContactErased, ContactMerged},
    events::Event,
    marketing::{Campaign, CampaignProgress, ContactUnsubscribed, EmailEngagement, EmailSent},
    reporting as pb,
    sales::{Lead, LeadSource, LeadStatus, Opportunity, OpportunityState, Pipeline, Stage},
    support::{
        SatisfactionSurvey, SlaState, SlaTarget, Ticket, TicketChannel, TicketPriority,
        TicketStatus,
    },
};
use crm_shared::{convert::to_any, db::Database, outbox::CommitSignal, store::Resources};
use crm_testkit::{Backend, TestDatabase};
use sea_orm_migration::MigratorTrait;

use crate::{
    api::kpis::{Query, answer},
    consumer::ReadModel,
    store::{Scope, Store},
};

const TENANT: &str = "acme";

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s)
        .expect("a time")
        .with_timezone(&Utc)
}

fn ts(s: &str) -> Option<prost_types::Timestamp> {
    Some(crm_shared::convert::to_timestamp(at(s)))
}

/// Builds events with increasing sequences.
struct History {
    model: ReadModel,
    store: Store,
    sequence: i64,
}

impl History {
    async fn apply<M: prost::Name>(&mut self, source: &str, name: &str, time: &str, message: &M) {
        self.sequence += 1;
        let event = Event {
            id: format!("e{}", self.sequence),
            sequence: self.sequence,
            r#type: format!("crm.{source}.v1.{name}"),
            source: source.into(),
            subject: String::new(),
            tenant: TENANT.into(),
            time: ts(time),
            payload: Some(to_any(message)),
            traceparent: String::new(),
            actor: "test".into(),
        };
        let scope = Scope {
            generation: 1,
            tenant: TENANT.into(),
        };
        let txn = self
            .store
            .resources()
            .db
            .begin_write()
            .await
            .expect("a transaction");
        self.model
            .apply(&*txn, &scope, &event)
            .await
            .expect("the event applies");
        txn.commit().await.expect("a commit");
    }
}

fn money(currency: &str, units: i64) -> Option<Money> {
    Some(Money {
        currency_code: currency.into(),
        units,
        nanos: 0,
    })
}

fn lead(name: &str, source: LeadSource, campaign: &str, created: &str, converted: bool) -> Lead {
    Lead {
        name: name.into(),
        source: source as i32,
        campaign: campaign.into(),
        owner: "ada".into(),
        status: if converted {
            LeadStatus::Converted
        } else {
            LeadStatus::New
        } as i32,
        create_time: ts(created),
        ..Lead::default()
    }
}

#[allow(clippy::too_many_arguments)]
fn deal(
    name: &str,
    currency: &str,
    units: i64,
    created: &str,
    state: OpportunityState,
    closed: Option<&str>,
    company: &str,
    lead: &str,
) -> Opportunity {
    Opportunity {
        name: name.into(),
        display_name: format!("Deal {name}"),
        amount: money(currency, units),
        pipeline: "pipelines/p".into(),
        stage: "pipelines/p/stages/negotiation".into(),
        owner: if name.ends_with("d1") {
            "ada".into()
        } else {
            "bob".into()
        },
        contact: "contacts/c1".into(),
        company: company.into(),
        state: state as i32,
        close_time: closed.and_then(ts),
        source_lead: lead.into(),
        create_time: ts(created),
        ..Opportunity::default()
    }
}

#[allow(clippy::too_many_arguments)]
fn ticket(
    name: &str,
    channel: TicketChannel,
    priority: TicketPriority,
    created: &str,
    responded: Option<&str>,
    solved: Option<&str>,
    breached: bool,
    reopened: i32,
) -> Ticket {
    Ticket {
        name: name.into(),
        number: 1,
        subject: "Printer on fire".into(),
        requester: "contacts/c1".into(),
        channel: channel as i32,
        priority: priority as i32,
        status: if solved.is_some() {
            TicketStatus::Solved
        } else {
            TicketStatus::Open
        } as i32,
        first_response_time: responded.and_then(ts),
        solve_time: solved.and_then(ts),
        reopen_count: reopened,
        create_time: ts(created),
        sla: Some(SlaState {
            policy: "slaPolicies/x".into(),
            targets: vec![SlaTarget {
                breached,
                ..SlaTarget::default()
            }],
        }),
        ..Ticket::default()
    }
}

/// The history; see each block for what it adds up to.
async fn write_history(h: &mut History) {
    use OpportunityState::{Lost, Open, Won};
    h.apply(
        "sales",
        "PipelineCreated",
        "2025-01-01T00:00:00Z",
        &Pipeline {
            name: "pipelines/p".into(),
            stages: vec![Stage {
                name: "pipelines/p/stages/negotiation".into(),
                display_name: "Negotiation".into(),
                probability: 0.5,
                ..Stage::default()
            }],
            ..Pipeline::default()
        },
    )
    .await;
    // Leads: March has l1 (web, converted) and l2 (campaign); l5 is deleted.
    // February has l3 (converted); March 2025 has l4.
    h.apply(
        "sales",
        "LeadCreated",
        "2026-03-05T09:00:00Z",
        &lead(
            "leads/l1",
            LeadSource::WebForm,
            "",
            "2026-03-05T09:00:00Z",
            false,
        ),
    )
    .await;
    h.apply(
        "sales",
        "LeadUpdated",
        "2026-03-06T09:00:00Z",
        &lead(
            "leads/l1",
            LeadSource::WebForm,
            "",
            "2026-03-05T09:00:00Z",
            true,
        ),
    )
    .await;
    h.apply(
        "sales",
        "LeadCreated",
        "2026-03-10T09:00:00Z",
        &lead(
            "leads/l2",
            LeadSource::Campaign,
            "campaigns/c1",
            "2026-03-10T09:00:00Z",
            false,
        ),
    )
    .await;
    h.apply(
        "sales",
        "LeadCreated",
        "2026-02-10T09:00:00Z",
        &lead(
            "leads/l3",
            LeadSource::WebForm,
            "",
            "2026-02-10T09:00:00Z",
            true,
        ),
    )
    .await;
    h.apply(
        "sales",
        "LeadCreated",
        "2025-03-15T09:00:00Z",
        &lead(
            "leads/l4",
            LeadSource::WebForm,
            "",
            "2025-03-15T09:00:00Z",
            false,
        ),
    )
    .await;
    let mut deleted = lead(
        "leads/l5",
        LeadSource::WebForm,
        "",
        "2026-03-20T09:00:00Z",
        false,
    );
    h.apply("sales", "LeadCreated", "2026-03-20T09:00:00Z", &deleted)
        .await;
    deleted.delete_time = ts("2026-03-21T09:00:00Z");
    h.apply("sales", "LeadDeleted", "2026-03-21T09:00:00Z", &deleted)
        .await;
    // Deals won in March: d1 1,000 EUR (co1), d2 500 USD (no company: the
    // contact is the customer), d3 3,000 EUR from l2 (campaign c1, co1),
    // each 10 days from creation; d4 lost; d5 won then reopened (open,
    // 2,000 EUR in Negotiation). February: d6 700 EUR (co2). March 2025:
    // d7 400 EUR (co9).
    h.apply(
        "sales",
        "OpportunityCreated",
        "2026-03-06T00:00:00Z",
        &deal(
            "opportunities/d1",
            "EUR",
            1000,
            "2026-03-06T00:00:00Z",
            Open,
            None,
            "companies/co1",
            "leads/l1",
        ),
    )
    .await;
    h.apply(
        "sales",
        "OpportunityWon",
        "2026-03-16T00:00:00Z",
        &crm_proto::sales::OpportunityStageChanged {
            opportunity: Some(deal(
                "opportunities/d1",
                "EUR",
                1000,
                "2026-03-06T00:00:00Z",
                Won,
                Some("2026-03-16T00:00:00Z"),
                "companies/co1",
                "leads/l1",
            )),
            ..Default::default()
        },
    )
    .await;
    h.apply(
        "sales",
        "OpportunityUpdated",
        "2026-03-11T00:00:00Z",
        &deal(
            "opportunities/d2",
            "USD",
            500,
            "2026-03-01T00:00:00Z",
            Won,
            Some("2026-03-11T00:00:00Z"),
            "",
            "",
        ),
    )
    .await;
    h.apply(
        "sales",
        "OpportunityUpdated",
        "2026-03-22T00:00:00Z",
        &deal(
            "opportunities/d3",
            "EUR",
            3000,
            "2026-03-12T00:00:00Z",
            Won,
            Some("2026-03-22T00:00:00Z"),
            "companies/co1",
            "leads/l2",
        ),
    )
    .await;
    h.apply(
        "sales",
        "OpportunityUpdated",
        "2026-03-25T00:00:00Z",
        &deal(
            "opportunities/d4",
            "EUR",
            900,
            "2026-03-02T00:00:00Z",
            Lost,
            Some("2026-03-25T00:00:00Z"),
            "companies/co3",
            "",
        ),
    )
    .await;
    h.apply(
        "sales",
        "OpportunityUpdated",
        "2026-03-20T00:00:00Z",
        &deal(
            "opportunities/d5",
            "EUR",
            2000,
            "2026-03-10T00:00:00Z",
            Won,
            Some("2026-03-20T00:00:00Z"),
            "companies/co4",
            "",
        ),
    )
    .await;
    h.apply(
        "sales",
        "OpportunityUpdated",
        "2026-03-21T00:00:00Z",
        &deal(
            "opportunities/d5",
            "EUR",
            2000,
            "2026-03-10T00:00:00Z",
            Open,
            None,
            "companies/co4",
            "",
        ),
    )
    .await;
    h.apply(
        "sales",
        "OpportunityUpdated",
        "2026-02-15T00:00:00Z",
        &deal(
            "opportunities/d6",
            "EUR",
            700,
            "2026-02-01T00:00:00Z",
            Won,
            Some("2026-02-15T00:00:00Z"),
            "companies/co2",
            "",
        ),
    )
    .await;
    h.apply(
        "sales",
        "OpportunityUpdated",
        "2025-03-10T00:00:00Z",
        &deal(
            "opportunities/d7",
            "EUR",
            400,
            "2025-03-01T00:00:00Z",
            Won,
            Some("2025-03-10T00:00:00Z"),
            "companies/co9",
            "",
        ),
    )
    .await;
    // Campaign c1 cost 1,000 EUR and started on 2 March; sent to four
    // people: c1 opened twice and clicked, c2 opened, c3 unsubscribed, c4 bounced.
    h.apply(
        "marketing",
        "CampaignStarted",
        "2026-03-02T08:00:00Z",
        &CampaignProgress {
            campaign: Some(Campaign {
                name: "campaigns/c1".into(),
                display_name: "Spring".into(),
                cost: money("EUR", 1000),
                start_time: ts("2026-03-02T08:00:00Z"),
                ..Campaign::default()
            }),
        },
    )
    .await;
    for c in ["c1", "c2", "c3", "c4"] {
        h.apply(
            "marketing",
            "EmailSent",
            "2026-03-02T08:00:00Z",
            &EmailSent {
                campaign: "campaigns/c1".into(),
                contact: format!("contacts/{c}"),
                ..EmailSent::default()
            },
        )
        .await;
    }
    let engagement = |c: &str| EmailEngagement {
        campaign: "campaigns/c1".into(),
        contact: format!("contacts/{c}"),
        ..EmailEngagement::default()
    };
    h.apply(
        "marketing",
        "EmailOpened",
        "2026-03-03T08:00:00Z",
        &engagement("c1"),
    )
    .await;
    h.apply(
        "marketing",
        "EmailOpened",
        "2026-03-04T08:00:00Z",
        &engagement("c1"),
    )
    .await;
    h.apply(
        "marketing",
        "EmailOpened",
        "2026-03-04T09:00:00Z",
        &engagement("c2"),
    )
    .await;
    h.apply(
        "marketing",
        "EmailClicked",
        "2026-03-04T08:01:00Z",
        &engagement("c1"),
    )
    .await;
    h.apply(
        "marketing",
        "EmailBounced",
        "2026-03-02T08:01:00Z",
        &engagement("c4"),
    )
    .await;
    h.apply(
        "marketing",
        "ContactUnsubscribed",
        "2026-03-05T08:00:00Z",
        &ContactUnsubscribed {
            contact: "contacts/c3".into(),
            campaign: "campaigns/c1".into(),
            ..ContactUnsubscribed::default()
        },
    )
    .await;
    // Tickets in March: t1 (email, high: response 1 h, solved after 1 day,
    // rated 5), t2 (web, normal: response 2 h, solved after 2 days,
    // breached, reopened once, rated 2 then 4), t3 (chat, normal: response
    // 10 min, open); t5 deleted. February: t4 (email, low, open).
    let mut t1 = ticket(
        "tickets/t1",
        TicketChannel::Email,
        TicketPriority::High,
        "2026-03-01T10:00:00Z",
        None,
        None,
        false,
        0,
    );
    h.apply("support", "TicketCreated", "2026-03-01T10:00:00Z", &t1)
        .await;
    t1.first_response_time = ts("2026-03-01T11:00:00Z");
    h.apply(
        "support",
        "CommentCreated",
        "2026-03-01T11:00:00Z",
        &crm_proto::support::CommentCreated {
            ticket: Some(t1.clone()),
            ..Default::default()
        },
    )
    .await;
    let t1 = ticket(
        "tickets/t1",
        TicketChannel::Email,
        TicketPriority::High,
        "2026-03-01T10:00:00Z",
        Some("2026-03-01T11:00:00Z"),
        Some("2026-03-02T10:00:00Z"),
        false,
        0,
    );
    h.apply(
        "support",
        "TicketSolved",
        "2026-03-02T10:00:00Z",
        &crm_proto::support::TicketStatusChanged {
            ticket: Some(t1),
            ..Default::default()
        },
    )
    .await;
    let rating = |t: &str, r: i32, when: &str| SatisfactionSurvey {
        name: format!("tickets/{t}/satisfaction"),
        rating: r,
        submit_time: ts(when),
        ..SatisfactionSurvey::default()
    };
    h.apply(
        "support",
        "CsatSubmitted",
        "2026-03-03T10:00:00Z",
        &rating("t1", 5, "2026-03-03T10:00:00Z"),
    )
    .await;
    let t2 = ticket(
        "tickets/t2",
        TicketChannel::Web,
        TicketPriority::Normal,
        "2026-03-05T00:00:00Z",
        Some("2026-03-05T02:00:00Z"),
        Some("2026-03-06T00:00:00Z"),
        true,
        0,
    );
    h.apply(
        "support",
        "TicketSolved",
        "2026-03-06T00:00:00Z",
        &crm_proto::support::TicketStatusChanged {
            ticket: Some(t2),
            ..Default::default()
        },
    )
    .await;
    let t2 = ticket(
        "tickets/t2",
        TicketChannel::Web,
        TicketPriority::Normal,
        "2026-03-05T00:00:00Z",
        Some("2026-03-05T02:00:00Z"),
        None,
        true,
        1,
    );
    h.apply(
        "support",
        "TicketReopened",
        "2026-03-06T05:00:00Z",
        &crm_proto::support::TicketStatusChanged {
            ticket: Some(t2),
            ..Default::default()
        },
    )
    .await;
    h.apply(
        "support",
        "CsatSubmitted",
        "2026-03-06T06:00:00Z",
        &rating("t2", 2, "2026-03-06T06:00:00Z"),
    )
    .await;
    let t2 = ticket(
        "tickets/t2",
        TicketChannel::Web,
        TicketPriority::Normal,
        "2026-03-05T00:00:00Z",
        Some("2026-03-05T02:00:00Z"),
        Some("2026-03-07T00:00:00Z"),
        true,
        1,
    );
    h.apply(
        "support",
        "TicketSolved",
        "2026-03-07T00:00:00Z",
        &crm_proto::support::TicketStatusChanged {
            ticket: Some(t2),
            ..Default::default()
        },
    )
    .await;
    h.apply(
        "support",
        "CsatSubmitted",
        "2026-03-08T06:00:00Z",
        &rating("t2", 4, "2026-03-08T06:00:00Z"),
    )
    .await;
    let t3 = ticket(
        "tickets/t3",
        TicketChannel::Chat,
        TicketPriority::Normal,
        "2026-03-10T00:00:00Z",
        Some("2026-03-10T00:10:00Z"),
        None,
        false,
        0,
    );
    h.apply("support", "TicketUpdated", "2026-03-10T00:10:00Z", &t3)
        .await;
    let t4 = ticket(
        "tickets/t4",
        TicketChannel::Email,
        TicketPriority::Low,
        "2026-02-20T00:00:00Z",
        None,
        None,
        false,
        0,
    );
    h.apply("support", "TicketCreated", "2026-02-20T00:00:00Z", &t4)
        .await;
    let mut t5 = ticket(
        "tickets/t5",
        TicketChannel::Email,
        TicketPriority::Low,
        "2026-03-12T00:00:00Z",
        None,
        None,
        false,
        0,
    );
    h.apply("support", "TicketCreated", "2026-03-12T00:00:00Z", &t5)
        .await;
    t5.delete_time = ts("2026-03-12T01:00:00Z");
    h.apply("support", "TicketDeleted", "2026-03-12T01:00:00Z", &t5)
        .await;
}

/// An empty read model on a new database of `backend`.
async fn empty(backend: Backend) -> Option<(TestDatabase, History)> {
    let database = TestDatabase::create(backend).await?;
    let db = Database::connect(&database.url, 5)
        .await
        .expect("the database");
    crate::Migrator::up(&db.conn, None)
        .await
        .expect("migrations");
    let store = Store::new(Resources::new(
        db,
        CommitSignal::default(),
        "crm.reporting.v1",
        std::time::Duration::from_secs(3600),
    ));
    let h = History {
        model: ReadModel::new(store.clone()),
        store,
        sequence: 0,
    };
    Some((database, h))
}

async fn history(backend: Backend) -> Option<(TestDatabase, History)> {
    let (database, mut h) = empty(backend).await?;
    write_history(&mut h).await;
    Some((database, h))
}

/// The KPI's lines as (currency, group, value, previous, year ago).
type Lines = Vec<(String, String, Option<f64>, Option<f64>, Option<f64>)>;

async fn query(
    h: &History,
    kpis: &[&str],
    start: &str,
    end: &str,
    granularity: pb::Granularity,
    filter: Option<pb::KpiFilter>,
) -> Result<pb::QueryKpisResponse, crm_shared::error::ApiError> {
    let request = pb::QueryKpisRequest {
        kpis: kpis.iter().map(|k| (*k).to_owned()).collect(),
        period: Some(pb::Period {
            start_date: start.into(),
            end_date: end.into(),
        }),
        granularity: granularity as i32,
        filter,
    };
    let scope = Scope {
        generation: 1,
        tenant: TENANT.into(),
    };
    answer(&h.store, &scope, &Query::read(&request)?).await
}

async fn march(h: &History, kpi: &str) -> Lines {
    let response = query(
        h,
        &[kpi],
        "2026-03-01",
        "2026-03-31",
        pb::Granularity::Unspecified,
        None,
    )
    .await
    .expect("an answer");
    response.results[0]
        .lines
        .iter()
        .map(|l| {
            let t = l.total.expect("a total");
            (
                l.currency.clone(),
                l.group.clone(),
                t.value,
                t.previous_value,
                t.year_ago_value,
            )
        })
        .collect()
}

fn line(value: Option<f64>, previous: Option<f64>, year_ago: Option<f64>) -> Lines {
    vec![(String::new(), String::new(), value, previous, year_ago)]
}

fn money_line(
    currency: &str,
    value: Option<f64>,
    previous: Option<f64>,
    year_ago: Option<f64>,
) -> (String, String, Option<f64>, Option<f64>, Option<f64>) {
    (currency.into(), String::new(), value, previous, year_ago)
}

async fn kpis_match_the_history(backend: Backend) {
    let Some((_db, h)) = history(backend).await else {
        return;
    };
    // Leads: March 2 (l1, l2), February 1 (l3), March 2025 1 (l4).
    assert_eq!(
        march(&h, "sales.leads_created").await,
        line(Some(2.0), Some(1.0), Some(1.0))
    );
    assert_eq!(
        march(&h, "sales.leads_by_source").await,
        vec![
            (
                String::new(),
                "campaign".into(),
                Some(1.0),
                Some(0.0),
                Some(0.0)
            ),
            (
                String::new(),
                "web_form".into(),
                Some(1.0),
                Some(1.0),
                Some(1.0)
            ),
        ]
    );
    // Converted of created: 1/2, 1/1, 0/1.
    assert_eq!(
        march(&h, "sales.lead_conversion_rate").await,
        line(Some(0.5), Some(1.0), Some(0.0))
    );
    // Won 3 (d1, d2, d3; d5 was reopened), lost 1 (d4): 3/4; Feb d6 1/1; 2025 d7 1/1.
    assert_eq!(
        march(&h, "sales.deals_won").await,
        line(Some(3.0), Some(1.0), Some(1.0))
    );
    assert_eq!(
        march(&h, "sales.win_rate").await,
        line(Some(0.75), Some(1.0), Some(1.0))
    );
    assert_eq!(
        march(&h, "sales.won_revenue").await,
        // Nothing was won in USD before: a sum of nothing is 0.
        vec![
            money_line("EUR", Some(4000.0), Some(700.0), Some(400.0)),
            money_line("USD", Some(500.0), Some(0.0), Some(0.0))
        ]
    );
    assert_eq!(
        march(&h, "sales.average_deal_size").await,
        vec![
            money_line("EUR", Some(2000.0), Some(700.0), Some(400.0)),
            money_line("USD", Some(500.0), None, None)
        ]
    );
    // d1, d2, d3 each took 10 days; d6 14; d7 9.
    assert_eq!(
        march(&h, "sales.sales_cycle_days").await,
        line(Some(10.0), Some(14.0), Some(9.0))
    );
    // Open now: d5, 2,000 EUR in Negotiation (no comparisons: a snapshot).
    assert_eq!(
        march(&h, "sales.pipeline_value_by_stage").await,
        vec![("EUR".into(), "Negotiation".into(), Some(2000.0), None, None)]
    );
    // First wins in March: co1 (d1 on the 16th) and contact c1 (d2, no
    // company); February co2; March 2025 co9.
    assert_eq!(
        march(&h, "customers.new").await,
        line(Some(2.0), Some(1.0), Some(1.0))
    );
    // March: EUR 4,000 over 2 customers (co1, c1), USD 500 over the same 2.
    assert_eq!(
        march(&h, "customers.revenue_per_customer").await,
        vec![
            money_line("EUR", Some(2000.0), Some(700.0), Some(400.0)),
            money_line("USD", Some(250.0), None, None)
        ]
    );
    // Up to 31 March: EUR 1,000 + 3,000 + 700 + 400 over 4 customers; USD
    // 500 over 4. Up to 28 February: EUR 1,100 over 2. Up to March 2025: 400 / 1.
    assert_eq!(
        march(&h, "customers.lifetime_value").await,
        vec![
            money_line("EUR", Some(1275.0), Some(550.0), Some(400.0)),
            money_line("USD", Some(125.0), None, None)
        ]
    );
    // Email: 4 sent, 1 bounced, 3 delivered; unique opens 2, clicks 1, unsubscribes 1.
    assert_eq!(
        march(&h, "marketing.emails_sent").await,
        line(Some(4.0), Some(0.0), Some(0.0))
    );
    assert_eq!(
        march(&h, "marketing.delivery_rate").await,
        line(Some(0.75), None, None)
    );
    assert_eq!(
        march(&h, "marketing.bounce_rate").await,
        line(Some(0.25), None, None)
    );
    assert_eq!(
        march(&h, "marketing.open_rate").await,
        line(Some(2.0 / 3.0), None, None)
    );
    assert_eq!(
        march(&h, "marketing.click_rate").await,
        line(Some(1.0 / 3.0), None, None)
    );
    assert_eq!(
        march(&h, "marketing.unsubscribe_rate").await,
        line(Some(1.0 / 3.0), None, None)
    );
    assert_eq!(
        march(&h, "marketing.attributed_leads").await,
        line(Some(1.0), Some(0.0), Some(0.0))
    );
    assert_eq!(
        march(&h, "marketing.attributed_revenue").await,
        vec![money_line("EUR", Some(3000.0), Some(0.0), Some(0.0))]
    );
    // (3,000 - 1,000) / 1,000.
    assert_eq!(
        march(&h, "marketing.roi").await,
        vec![money_line("EUR", Some(2.0), None, None)]
    );
    // Tickets opened in March: t1, t2, t3 (t5 deleted); February t4.
    assert_eq!(
        march(&h, "support.tickets_created").await,
        line(Some(3.0), Some(1.0), Some(0.0))
    );
    assert_eq!(
        march(&h, "support.tickets_by_channel").await,
        vec![
            (
                String::new(),
                "chat".into(),
                Some(1.0),
                Some(0.0),
                Some(0.0)
            ),
            (
                String::new(),
                "email".into(),
                Some(1.0),
                Some(1.0),
                Some(0.0)
            ),
            (String::new(), "web".into(), Some(1.0), Some(0.0), Some(0.0)),
        ]
    );
    // First responses 3,600, 7,200 and 600 s: median 3,600; p90 at rank 1.8
    // of [600, 3600, 7200]: 3,600 + 0.8 x 3,600.
    assert_eq!(
        march(&h, "support.first_response_time_median").await,
        line(Some(3600.0), None, None)
    );
    assert_eq!(
        march(&h, "support.first_response_time_p90").await,
        line(Some(6480.0), None, None)
    );
    // Resolutions 86,400 (t1) and 172,800 s (t2's last solve, 2 days after creation).
    assert_eq!(
        march(&h, "support.resolution_time_median").await,
        line(Some(129_600.0), None, None)
    );
    assert_eq!(
        march(&h, "support.resolution_time_p90").await,
        line(Some(164_160.0), None, None)
    );
    // Of 2 solved, t2 breached and was reopened; ratings as last given: 5 and 4.
    assert_eq!(
        march(&h, "support.sla_compliance").await,
        line(Some(0.5), None, None)
    );
    assert_eq!(
        march(&h, "support.reopen_rate").await,
        line(Some(0.5), None, None)
    );
    assert_eq!(march(&h, "support.csat").await, line(Some(1.0), None, None));
    // Open at the end of March: t3, t4; of February: t4; of March 2025: none.
    assert_eq!(
        march(&h, "support.backlog").await,
        line(Some(2.0), Some(1.0), Some(0.0))
    );
}

async fn series_filters_and_changes(backend: Backend) {
    let Some((_db, h)) = history(backend).await else {
        return;
    };
    let response = query(
        &h,
        &["sales.leads_created", "sales.win_rate"],
        "2026-01-01",
        "2026-03-31",
        pb::Granularity::Month,
        None,
    )
    .await
    .expect("an answer");
    let buckets: Vec<(String, Option<f64>)> = response.results[0].lines[0]
        .buckets
        .iter()
        .map(|b| (b.start_date.clone(), b.value))
        .collect();
    assert_eq!(
        buckets,
        vec![
            ("2026-01-01".into(), Some(0.0)),
            ("2026-02-01".into(), Some(1.0)),
            ("2026-03-01".into(), Some(2.0))
        ]
    );
    let rates: Vec<Option<f64>> = response.results[1].lines[0]
        .buckets
        .iter()
        .map(|b| b.value)
        .collect();
    assert_eq!(rates, vec![None, Some(1.0), Some(0.75)]);
    assert_eq!(
        response.previous_period,
        Some(pb::Period {
            start_date: "2025-10-03".into(),
            end_date: "2025-12-31".into()
        })
    );
    // Changes: 2 leads against 1 the month before (+100 %).
    let total = query(
        &h,
        &["sales.leads_created"],
        "2026-03-01",
        "2026-03-31",
        pb::Granularity::Unspecified,
        None,
    )
    .await
    .expect("an answer")
    .results[0]
        .lines[0]
        .total
        .expect("a total");
    assert_eq!(
        (total.change_from_previous, total.change_from_year_ago),
        (Some(1.0), Some(1.0))
    );
    // Ada owns d1 only; campaign c1 is d3's.
    let ada = pb::KpiFilter {
        owners: vec!["users/ada".into()],
        ..Default::default()
    };
    let won = query(
        &h,
        &["sales.deals_won"],
        "2026-03-01",
        "2026-03-31",
        pb::Granularity::Unspecified,
        Some(ada),
    )
    .await
    .expect("an answer");
    assert_eq!(
        won.results[0].lines[0].total.expect("a total").value,
        Some(1.0)
    );
    let c1 = pb::KpiFilter {
        campaign: "campaigns/c1".into(),
        ..Default::default()
    };
    let revenue = query(
        &h,
        &["marketing.attributed_revenue", "marketing.emails_sent"],
        "2026-03-01",
        "2026-03-31",
        pb::Granularity::Unspecified,
        Some(c1),
    )
    .await
    .expect("an answer");
    assert_eq!(
        revenue.results[0].lines[0].total.expect("a total").value,
        Some(3000.0)
    );
    assert_eq!(
        revenue.results[1].lines[0].total.expect("a total").value,
        Some(4.0)
    );
    // A filter some KPI cannot apply is refused, naming it.
    let queue = pb::KpiFilter {
        queue: "queues/q".into(),
        ..Default::default()
    };
    let refused = query(
        &h,
        &["sales.win_rate"],
        "2026-03-01",
        "2026-03-31",
        pb::Granularity::Unspecified,
        Some(queue),
    )
    .await
    .expect_err("refused");
    assert!(
        format!("{refused:?}").contains("filter.queue"),
        "{refused:?}"
    );
}

async fn merges_and_erasure(backend: Backend) {
    let Some((_db, mut h)) = history(backend).await else {
        return;
    };
    let scope = Scope {
        generation: 1,
        tenant: TENANT.into(),
    };
    h.apply(
        "contacts",
        "ContactMerged",
        "2026-04-01T00:00:00Z",
        &ContactMerged {
            survivor: "contacts/c1".into(),
            merged: vec!["contacts/c2".into()],
        },
    )
    .await;
    // The read model has no contact row for c1 (no contacts events): the
    // view is unknown, but the engagements moved to c1.
    assert!(
        h.store
            .customer(&scope, "contacts/c1", 10, &[], None)
            .await
            .expect("a read")
            .is_none()
    );
    h.apply(
        "contacts",
        "ContactErased",
        "2026-04-02T00:00:00Z",
        &ContactErased {
            contact: "contacts/c1".into(),
            merged: vec!["contacts/c2".into()],
            ..Default::default()
        },
    )
    .await;
    let erased = h
        .store
        .customer(&scope, "contacts/c1", 10, &[], None)
        .await
        .expect("a read")
        .expect("the erased marker");
    assert!(
        erased.contact.erased && erased.timeline.is_empty() && erased.last_engagement.is_none()
    );
    assert!(erased.open_tickets.iter().all(|t| t.subject.is_empty()));
    // Deal titles may name the person: gone, also when sales sends one again.
    assert!(
        !erased.deals.is_empty() && erased.deals.iter().all(|(d, _)| d.display_name.is_empty())
    );
    h.apply(
        "sales",
        "OpportunityUpdated",
        "2026-04-03T00:00:00Z",
        &deal(
            "opportunities/d1",
            "EUR",
            1000,
            "2026-03-06T00:00:00Z",
            OpportunityState::Won,
            Some("2026-03-16T00:00:00Z"),
            "companies/co1",
            "leads/l1",
        ),
    )
    .await;
    let again = h
        .store
        .customer(&scope, "contacts/c1", 10, &[], None)
        .await
        .expect("a read")
        .expect("the erased marker");
    assert!(again.deals.iter().all(|(d, _)| d.display_name.is_empty()));
    let status = h
        .store
        .erasure(&scope, "contacts/c1")
        .await
        .expect("a read")
        .expect("the erasure");
    assert_eq!(
        status
            .confirmations
            .iter()
            .map(|c| c.0.as_str())
            .collect::<Vec<_>>(),
        vec!["reporting"]
    );
    // Counts stay: they hold no personal data.
    assert_eq!(
        march(&h, "marketing.open_rate").await,
        line(Some(2.0 / 3.0), None, None)
    );
}

async fn csv_and_chart(backend: Backend) {
    let Some((_db, h)) = history(backend).await else {
        return;
    };
    let answer = query(
        &h,
        &["sales.won_revenue", "support.csat"],
        "2026-02-01",
        "2026-03-31",
        pb::Granularity::Month,
        None,
    )
    .await
    .expect("an answer");
    let csv = crate::api::reports::csv_of(&answer).expect("csv");
    let rows: Vec<&str> = csv.lines().collect();
    assert_eq!(
        rows[0],
        "kpi,currency,group,start_date,end_date,value,previous_value,year_ago_value"
    );
    // EUR: February 700 (d6), March 4,000; the period's total 4,700 against
    // nothing the two months before and 400 a year earlier.
    assert!(
        rows.contains(&"sales.won_revenue,EUR,,,,4700,0,400"),
        "{csv}"
    );
    // Nothing won in USD in February: 0, not an empty cell.
    assert!(
        rows.contains(&"sales.won_revenue,USD,,2026-02-01,2026-02-28,0,,"),
        "{csv}"
    );
    assert!(
        rows.contains(&"sales.won_revenue,EUR,,2026-02-01,2026-02-28,700,,"),
        "{csv}"
    );
    assert!(
        rows.contains(&"sales.won_revenue,USD,,2026-03-01,2026-03-31,500,,"),
        "{csv}"
    );
    // No rating in February: an empty cell, not a zero.
    assert!(
        rows.contains(&"support.csat,,,2026-02-01,2026-02-28,,,"),
        "{csv}"
    );
    let svg = crate::api::chart::render(&answer, 800, 300).expect("a chart");
    assert!(
        svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"),
        "{svg}"
    );
    assert!(svg.contains("sales.won_revenue") && svg.contains("support.csat"));
    assert!(svg.contains("2026-03-01") && svg.contains("EUR") && svg.contains("USD"));
    assert!(
        svg.matches("<polyline").count() >= 3,
        "a line per currency and one for csat"
    );
}

async fn cohorts_and_forecasts(backend: Backend) {
    use OpportunityState::{Open, Won};
    let Some((_db, mut h)) = history(backend).await else {
        return;
    };
    // Before any snapshot there is no forecast.
    assert!(march(&h, "sales.forecast").await.is_empty());
    // Open on 1 April: d8 1,000 EUR expected on the 20th, d9 400 USD on the
    // 5th, both in Negotiation (probability 0.5); d5 has no expected date.
    let expected = |mut o: Opportunity, day: &str| {
        o.expected_close_date = day.into();
        o
    };
    h.apply(
        "sales",
        "OpportunityCreated",
        "2026-03-30T00:00:00Z",
        &expected(
            deal(
                "opportunities/d8",
                "EUR",
                1000,
                "2026-03-30T00:00:00Z",
                Open,
                None,
                "companies/co5",
                "",
            ),
            "2026-04-20",
        ),
    )
    .await;
    h.apply(
        "sales",
        "OpportunityCreated",
        "2026-03-30T00:00:00Z",
        &expected(
            deal(
                "opportunities/d9",
                "USD",
                400,
                "2026-03-30T00:00:00Z",
                Open,
                None,
                "companies/co6",
                "",
            ),
            "2026-04-05",
        ),
    )
    .await;
    h.store
        .take_forecast_snapshot(chrono::NaiveDate::from_ymd_opt(2026, 4, 1).unwrap())
        .await
        .expect("a snapshot");
    // In April d8 is won (1,000 EUR) and co2, a customer since February,
    // wins d10 (600 EUR); d9 slips.
    h.apply(
        "sales",
        "OpportunityWon",
        "2026-04-20T00:00:00Z",
        &crm_proto::sales::OpportunityStageChanged {
            opportunity: Some(expected(
                deal(
                    "opportunities/d8",
                    "EUR",
                    1000,
                    "2026-03-30T00:00:00Z",
                    Won,
                    Some("2026-04-20T00:00:00Z"),
                    "companies/co5",
                    "",
                ),
                "2026-04-20",
            )),
            ..Default::default()
        },
    )
    .await;
    h.apply(
        "sales",
        "OpportunityUpdated",
        "2026-04-10T00:00:00Z",
        &deal(
            "opportunities/d10",
            "EUR",
            600,
            "2026-04-01T00:00:00Z",
            Won,
            Some("2026-04-10T00:00:00Z"),
            "companies/co2",
            "",
        ),
    )
    .await;
    // A snapshot taken later does not change what stood on 1 April.
    h.store
        .take_forecast_snapshot(chrono::NaiveDate::from_ymd_opt(2026, 4, 21).unwrap())
        .await
        .expect("a snapshot");
    let april = |kpi: &'static str| {
        let h = &h;
        async move {
            let response = query(
                h,
                &[kpi],
                "2026-04-01",
                "2026-04-30",
                pb::Granularity::Unspecified,
                None,
            )
            .await
            .expect("an answer");
            response.results[0]
                .lines
                .iter()
                .map(|l| {
                    (
                        l.currency.clone(),
                        l.group.clone(),
                        l.total.expect("a total").value,
                    )
                })
                .collect::<Vec<_>>()
        }
    };
    // Forecast: 0.5 x 1,000 EUR and 0.5 x 400 USD.
    assert_eq!(
        april("sales.forecast").await,
        vec![
            ("EUR".into(), String::new(), Some(500.0)),
            ("USD".into(), String::new(), Some(200.0))
        ]
    );
    // Won in April: EUR 1,600 against 500; USD nothing against 200.
    assert_eq!(
        april("sales.forecast_accuracy").await,
        vec![
            ("EUR".into(), String::new(), Some(3.2)),
            ("USD".into(), String::new(), Some(0.0))
        ]
    );
    // Customers won before April, by the month of their first win: 2025-03
    // co9; 2026-02 co2 (won again in April); 2026-03 co1 and contact c1.
    let g = |group: &str, value: f64| (String::new(), group.to_owned(), Some(value));
    assert_eq!(
        april("customers.retention_by_cohort").await,
        vec![
            g("2025-03", 0.0),
            g("2026-02", 1.0),
            g("2026-03", 0.0),
            g("all", 0.25)
        ]
    );
    assert_eq!(
        april("customers.churn_by_cohort").await,
        vec![
            g("2025-03", 1.0),
            g("2026-02", 0.0),
            g("2026-03", 1.0),
            g("all", 0.75)
        ]
    );
}

/// The non-zero sums of a table of daily aggregates by the totals' key,
/// measures rounded (summed in another order they may differ in the last
/// bits).
async fn sums(h: &History, table: &str) -> Vec<(String, i64, i64, i64, String)> {
    use sea_orm::ConnectionTrait;
    let conn = &h.store.resources().db.conn;
    let sql = format!(
        "SELECT fact || '|' || day || '|' || pipeline || '|' || campaign || '|' || queue || '|' || \
         channel || '|' || grp || '|' || currency_code, CAST(SUM(count) AS BIGINT), \
         CAST(SUM(units) AS BIGINT), CAST(SUM(nanos) AS BIGINT), \
         CAST(SUM(measure) AS DOUBLE PRECISION) FROM {table} GROUP BY 1 ORDER BY 1"
    );
    conn.query_all_raw(sea_orm::Statement::from_string(
        conn.get_database_backend(),
        sql,
    ))
    .await
    .expect("the sums")
    .iter()
    .map(|r| {
        let measure: f64 = r.try_get_by_index(4).expect("a measure");
        (
            r.try_get_by_index(0).expect("a key"),
            r.try_get_by_index(1).expect("a count"),
            r.try_get_by_index(2).expect("units"),
            r.try_get_by_index(3).expect("nanos"),
            format!("{measure:.6}"),
        )
    })
    .filter(|(_, count, units, nanos, measure)| {
        *count != 0 || *units != 0 || *nanos != 0 || measure.trim_start_matches('-') != "0.000000"
    })
    .collect()
}

/// The totals read without an owner or company filter hold exactly the
/// detailed facts summed over owners and companies, after a history with
/// reopened deals, deleted tickets and moved leads.
async fn totals_are_the_facts_summed(backend: Backend) {
    let Some((_db, h)) = history(backend).await else {
        return;
    };
    let totals = sums(&h, "rm_fact_totals").await;
    assert!(totals.len() > 10, "{totals:?}");
    assert_eq!(totals, sums(&h, "rm_facts").await);
}

/// A read model that had facts before the totals existed gets them summed.
async fn totals_start_from_existing_facts(backend: Backend) {
    use sea_orm::ConnectionTrait;
    let Some(database) = TestDatabase::create(backend).await else {
        return;
    };
    let db = Database::connect(&database.url, 2)
        .await
        .expect("the database");
    let before_totals = crate::Migrator::migrations()
        .iter()
        .position(|m| m.name() == "m0005_fact_totals")
        .expect("the totals' migration") as u32;
    crate::Migrator::up(&db.conn, Some(before_totals))
        .await
        .expect("migrations before the totals");
    db.conn
        .execute_unprepared(
            "INSERT INTO rm_facts (generation, tenant, fact, day, owner, pipeline, campaign, queue, \
             channel, company, grp, currency_code, count, units, nanos, measure) VALUES \
             (1, 'acme', 'deal.won', '2026-03-03', 'users/ada', 'pipelines/p', '', '', '', 'companies/c1', '', 'EUR', 1, 1000, 0, 12.0), \
             (1, 'acme', 'deal.won', '2026-03-03', 'users/bo', 'pipelines/p', '', '', '', 'companies/c2', '', 'EUR', 2, 500, 5, 3.5), \
             (1, 'acme', 'deal.won', '2026-03-04', 'users/bo', 'pipelines/p', '', '', '', '', '', 'EUR', 1, 7, 0, 1.0), \
             (1, 'globex', 'deal.won', '2026-03-03', 'users/cy', 'pipelines/p', '', '', '', '', '', 'EUR', 1, 9, 0, 0.0)",
        )
        .await
        .expect("facts");
    crate::Migrator::up(&db.conn, None)
        .await
        .expect("the totals' migration");
    let rows = db
        .conn
        .query_all_raw(sea_orm::Statement::from_string(
            db.backend(),
            "SELECT tenant, day, count, units, nanos, measure FROM rm_fact_totals ORDER BY tenant, day",
        ))
        .await
        .expect("the totals");
    let rows: Vec<(String, String, i64, i64, i64, f64)> = rows
        .iter()
        .map(|r| {
            (
                r.try_get_by_index(0).expect("tenant"),
                r.try_get_by_index(1).expect("day"),
                r.try_get_by_index(2).expect("count"),
                r.try_get_by_index(3).expect("units"),
                r.try_get_by_index(4).expect("nanos"),
                r.try_get_by_index(5).expect("measure"),
            )
        })
        .collect();
    let row = |tenant: &str, day: &str, count, units, nanos, measure| {
        (
            tenant.to_owned(),
            day.to_owned(),
            count,
            units,
            nanos,
            measure,
        )
    };
    assert_eq!(
        rows,
        vec![
            row("acme", "2026-03-03", 3, 1500, 5, 15.5),
            row("acme", "2026-03-04", 1, 7, 0, 1.0),
            row("globex", "2026-03-03", 1, 9, 0, 0.0),
        ]
    );
}

/// On PostgreSQL the read model's planner statistics are refreshed as
/// events arrive (a manual `ANALYZE` shows in `last_analyze`), so lookups
/// keep their indexes on a server without autovacuum.
#[tokio::test]
async fn statistics_follow_the_read_model() {
    use sea_orm::ConnectionTrait;
    let Some((_db, mut h)) = empty(Backend::Postgres).await else {
        return;
    };
    for i in 0..600 {
        let day = format!("2026-03-{:02}T10:00:00Z", 1 + i % 28);
        let l = lead(&format!("leads/l{i}"), LeadSource::WebForm, "", &day, false);
        h.apply("sales", "LeadCreated", &day, &l).await;
    }
    let conn = h.store.resources().db.conn.clone();
    crm_testkit::eventually("ANALYZE has run on the read model", async || {
        let row = conn
            .query_one_raw(sea_orm::Statement::from_string(
                sea_orm::DbBackend::Postgres,
                "SELECT last_analyze IS NOT NULL FROM pg_stat_user_tables WHERE relname = 'rm_fact_totals'",
            ))
            .await
            .expect("pg_stat_user_tables")
            .expect("a row for rm_fact_totals");
        row.try_get_by_index::<bool>(0).expect("a bool")
    })
    .await;
}

macro_rules! on_both {
    ($($name:ident),*) => {
        mod sqlite {
            $(#[tokio::test] async fn $name() { super::$name(crm_testkit::Backend::Sqlite).await })*
        }
        mod postgres {
            $(#[tokio::test] async fn $name() { super::$name(crm_testkit::Backend::Postgres).await })*
        }
    };
}

on_both!(
    kpis_match_the_history,
    series_filters_and_changes,
    merges_and_erasure,
    csv_and_chart,
    cohorts_and_forecasts,
    totals_are_the_facts_summed,
    totals_start_from_existing_facts
);
