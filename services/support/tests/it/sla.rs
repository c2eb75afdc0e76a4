//! SLAs: the policy a ticket gets, its clocks over business hours, the pause
//! while pending, and breaches found and escalated by the scheduler even
//! when the service was down when they fell due.

use chrono::{DateTime, Duration, Utc};
use crm_proto::support::{
    BusinessCalendar, BusinessHours, CreateBusinessCalendarRequest, CreateQueueRequest,
    CreateSlaPolicyRequest, CreateTicketRequest, GetTicketRequest, ListTicketChangesRequest, Queue,
    SlaAlert, SlaMetric, SlaPolicy, SlaTarget, Ticket, TicketPriority, TicketStatus,
    UpdateTicketRequest,
};
use crm_support::domain::sla::{CalendarDraft, WrittenHours};
use prost_types::FieldMask;
use sea_orm::{ConnectionTrait, DbBackend, Statement};

use crate::harness::*;

fn time(t: &Option<prost_types::Timestamp>) -> Option<DateTime<Utc>> {
    t.as_ref()
        .and_then(|t| DateTime::from_timestamp(t.seconds, u32::try_from(t.nanos).ok()?))
}

fn target(t: &Ticket, metric: SlaMetric) -> SlaTarget {
    t.sla
        .as_ref()
        .expect("an SLA")
        .targets
        .iter()
        .find(|x| x.metric == metric as i32)
        .cloned()
        .unwrap_or_else(|| panic!("no {metric:?} target in {:?}", t.sla))
}

async fn get(support: &mut Support, name: &str) -> Ticket {
    support
        .get_ticket(GetTicketRequest { name: name.into() })
        .await
        .expect("GetTicket")
        .into_inner()
}

async fn set_status(support: &mut Support, name: &str, status: TicketStatus) -> Ticket {
    support
        .update_ticket(UpdateTicketRequest {
            ticket: Some(Ticket {
                name: name.into(),
                status: status as i32,
                ..Default::default()
            }),
            update_mask: Some(FieldMask {
                paths: vec!["status".into()],
            }),
        })
        .await
        .expect("UpdateTicket")
        .into_inner()
}

/// Moves a ticket's creation and history `by` into the past and makes it due
/// for the scheduler now, as if it had been made then: straight in the
/// database, while support is stopped.
async fn backdate(url: &str, ticket: &Ticket, by: Duration) {
    let db = sea_orm::Database::connect(url)
        .await
        .expect("the support database");
    let backend = db.get_database_backend();
    let id = ticket.name.trim_start_matches("tickets/").to_owned();
    let then = Utc::now() - by;
    let sql = |text: &str| match backend {
        DbBackend::Postgres => text.to_owned(),
        // SQLite numbers its parameters ?1, ?2 (a bare ? is the next one).
        _ => text.replace('$', "?"),
    };
    for statement in [
        "UPDATE tickets SET create_time = $1, sla_next_check = $1 WHERE id = $2",
        "UPDATE ticket_changes SET change_time = $1 WHERE ticket_id = $2",
    ] {
        db.execute_raw(Statement::from_sql_and_values(
            backend,
            sql(statement),
            [then.into(), id.clone().into()],
        ))
        .await
        .expect("backdating");
    }
    db.close().await.expect("close");
}

db_test!(
    slas_run_on_business_hours_pause_and_escalate_after_downtime,
    sla_on
);
async fn sla_on(backend: Backend) {
    let Some(mut suite) = Suite::start(backend).await else {
        return;
    };
    let mut admin = suite.support(TENANT, ADMIN);
    let hours: Vec<BusinessHours> = (1..=5)
        .map(|day| BusinessHours {
            day_of_week: day,
            open_time: "09:00".into(),
            close_time: "17:00".into(),
        })
        .collect();
    let holidays = vec!["2026-12-24".to_owned(), "2026-12-25".to_owned()];
    let office = admin
        .create_business_calendar(CreateBusinessCalendarRequest {
            business_calendar: Some(BusinessCalendar {
                display_name: "Berlin office".into(),
                time_zone: "Europe/Berlin".into(),
                weekly_hours: hours.clone(),
                holidays: holidays.clone(),
                ..Default::default()
            }),
            request_id: String::new(),
        })
        .await
        .expect("CreateBusinessCalendar")
        .into_inner();
    let escalations = admin
        .create_queue(CreateQueueRequest {
            queue: Some(Queue {
                display_name: "Escalations".into(),
                ..Default::default()
            }),
            request_id: String::new(),
        })
        .await
        .expect("CreateQueue")
        .into_inner();
    let urgent = admin
        .create_sla_policy(CreateSlaPolicyRequest {
            sla_policy: Some(SlaPolicy {
                display_name: "Urgent, office hours".into(),
                priority: 1,
                filter: "priority = URGENT".into(),
                first_response_minutes: 60,
                resolution_minutes: 8 * 60,
                calendar: office.name.clone(),
                ..Default::default()
            }),
            request_id: String::new(),
        })
        .await
        .expect("CreateSlaPolicy")
        .into_inner();
    let standard = admin
        .create_sla_policy(CreateSlaPolicyRequest {
            sla_policy: Some(SlaPolicy {
                display_name: "Everyone else, around the clock".into(),
                priority: 2,
                first_response_minutes: 30,
                resolution_minutes: 120,
                warn_at_percent: 50,
                escalate_priority: TicketPriority::Urgent as i32,
                escalate_queue: escalations.name.clone(),
                ..Default::default()
            }),
            request_id: String::new(),
        })
        .await
        .expect("CreateSlaPolicy")
        .into_inner();

    let mut support = suite.support(TENANT, AGENT);
    let create = async |support: &mut Support, priority: TicketPriority| {
        support
            .create_ticket(CreateTicketRequest {
                ticket: Some(Ticket {
                    subject: "Down".into(),
                    requester_email: "ada@example.com".into(),
                    priority: priority as i32,
                    ..Default::default()
                }),
                request_id: String::new(),
            })
            .await
            .expect("CreateTicket")
            .into_inner()
    };

    // An urgent ticket counts office hours in Berlin, holidays excluded.
    let hot = create(&mut support, TicketPriority::Urgent).await;
    assert_eq!(hot.sla.as_ref().expect("an SLA").policy, urgent.name);
    let calendar = CalendarDraft {
        display_name: "same".into(),
        time_zone: "Europe/Berlin".into(),
        weekly_hours: hours
            .iter()
            .map(|h| WrittenHours {
                day_of_week: h.day_of_week,
                open_time: h.open_time.clone(),
                close_time: h.close_time.clone(),
            })
            .collect(),
        holidays,
    }
    .calendar("c")
    .expect("a calendar");
    let created = time(&hot.create_time).expect("create_time");
    let first = target(&hot, SlaMetric::FirstResponse);
    assert_eq!(
        time(&first.due_time),
        Some(calendar.add_business_time(created, Duration::hours(1)))
    );
    assert_eq!(
        time(&target(&hot, SlaMetric::Resolution).due_time),
        Some(calendar.add_business_time(created, Duration::hours(8)))
    );

    // A normal one gets the around-the-clock policy; pending pauses it.
    let t = create(&mut support, TicketPriority::Normal).await;
    assert_eq!(t.sla.as_ref().expect("an SLA").policy, standard.name);
    let due = time(&target(&t, SlaMetric::FirstResponse).due_time).expect("due");
    assert_eq!(
        due,
        time(&t.create_time).expect("created") + Duration::minutes(30)
    );
    let pending = set_status(&mut support, &t.name, TicketStatus::Pending).await;
    let paused = target(&pending, SlaMetric::Resolution);
    assert!(paused.paused && paused.due_time.is_none(), "{paused:?}");
    let left = paused.time_left.expect("time left").seconds;
    assert!(
        (7000..=7200).contains(&left),
        "about two hours left: {left}"
    );
    set_status(&mut support, &t.name, TicketStatus::Open).await;

    // Support is down while both targets fall due; on restart the
    // scheduler catches up: warnings, breaches with their real due
    // times, and the escalation.
    suite.support_process().stop().await;
    backdate(&suite.support_db.url, &t, Duration::hours(3)).await;
    suite.support_process().restart().await;
    let mut support = suite.support(TENANT, AGENT);
    eventually("the breaches are found", async || {
        let types: Vec<String> = suite
            .support_events()
            .await
            .into_iter()
            .filter(|e| e.subject == t.name)
            .map(|e| e.r#type)
            .collect();
        types.iter().filter(|t| t.ends_with(".SlaBreached")).count() == 2
    })
    .await;
    let events = suite.support_events().await;
    let alerts: Vec<(String, SlaAlert)> = events
        .iter()
        .filter(|e| e.subject == t.name && e.r#type.contains(".Sla"))
        .map(|e| (e.r#type.clone(), payload::<SlaAlert>(e)))
        .collect();
    assert_eq!(alerts.len(), 4, "two warnings, two breaches: {alerts:?}");
    let breach = alerts
        .iter()
        .find(|(kind, a)| {
            kind.ends_with("SlaBreached") && a.metric == SlaMetric::FirstResponse as i32
        })
        .expect("the first response breach");
    let due = time(&breach.1.due_time).expect("due");
    assert!(
        due < Utc::now() - Duration::hours(2),
        "reported with when it fell due: {due}"
    );
    let escalated = get(&mut support, &t.name).await;
    assert_eq!(escalated.priority, TicketPriority::Urgent as i32);
    assert_eq!(escalated.queue, escalations.name);
    let first = target(&escalated, SlaMetric::FirstResponse);
    assert!(first.breached && first.time_left.expect("left").seconds < 0);
    let by_sla: Vec<String> = support
        .list_ticket_changes(ListTicketChangesRequest {
            parent: t.name.clone(),
            ..Default::default()
        })
        .await
        .expect("changes")
        .into_inner()
        .changes
        .into_iter()
        .filter(|c| c.actor == "sla")
        .map(|c| c.field)
        .collect();
    assert_eq!(by_sla, ["priority", "queue"]);

    // Later passes raise nothing twice.
    tokio::time::sleep(std::time::Duration::from_millis(600)).await;
    let again = suite
        .support_events()
        .await
        .into_iter()
        .filter(|e| e.subject == t.name && e.r#type.contains(".Sla"))
        .count();
    assert_eq!(again, 4);

    // Bad policies and calendars name their field.
    let status = admin
        .create_sla_policy(CreateSlaPolicyRequest {
            sla_policy: Some(SlaPolicy {
                display_name: "Nothing".into(),
                ..Default::default()
            }),
            request_id: String::new(),
        })
        .await
        .expect_err("a policy without targets");
    assert_invalid_field(&status, "sla_policy.resolution_minutes", "no target");
    let status = admin
        .create_business_calendar(CreateBusinessCalendarRequest {
            business_calendar: Some(BusinessCalendar {
                display_name: "Mars".into(),
                time_zone: "Mars/Olympus".into(),
                weekly_hours: hours,
                ..Default::default()
            }),
            request_id: String::new(),
        })
        .await
        .expect_err("an unknown zone");
    assert_invalid_field(&status, "business_calendar.time_zone", "zone");
}

db_test!(
    a_companys_tier_chooses_the_sla_and_follows_the_company,
    tier_on
);
async fn tier_on(backend: Backend) {
    use crm_proto::contacts::{Company, CreateCompanyRequest, UpdateCompanyRequest};
    let Some(suite) = Suite::start(backend).await else {
        return;
    };
    let mut contacts = suite.contacts(TENANT, ADMIN);
    let company = contacts
        .create_company(CreateCompanyRequest {
            company: Some(Company {
                display_name: "Globex".into(),
                tier: "Enterprise".into(),
                ..Default::default()
            }),
            request_id: String::new(),
        })
        .await
        .expect("CreateCompany")
        .into_inner();
    let mut admin = suite.support(TENANT, ADMIN);
    let mut policy = async |name: &str, priority: i32, filter: &str, minutes: i32| {
        admin
            .create_sla_policy(CreateSlaPolicyRequest {
                sla_policy: Some(SlaPolicy {
                    display_name: name.into(),
                    priority,
                    filter: filter.into(),
                    first_response_minutes: minutes,
                    ..Default::default()
                }),
                request_id: String::new(),
            })
            .await
            .expect("CreateSlaPolicy")
            .into_inner()
            .name
    };
    let enterprise = policy("Enterprise", 1, r#"company_tier = "enterprise""#, 15).await;
    let everyone = policy("Everyone", 2, "", 240).await;

    let mut support = suite.support(TENANT, AGENT);
    let ticket = support
        .create_ticket(CreateTicketRequest {
            ticket: Some(Ticket {
                subject: "Invoices are late".into(),
                requester_email: "hank@globex.example".into(),
                company: company.name.clone(),
                ..Default::default()
            }),
            request_id: String::new(),
        })
        .await
        .expect("CreateTicket")
        .into_inner();
    assert_eq!(ticket.company_tier, "enterprise");
    assert_eq!(ticket.sla.as_ref().expect("an SLA").policy, enterprise);

    // The company steps down a tier in contacts: the open ticket follows.
    contacts
        .update_company(UpdateCompanyRequest {
            company: Some(Company {
                name: company.name.clone(),
                tier: "standard".into(),
                ..Default::default()
            }),
            update_mask: Some(FieldMask {
                paths: vec!["tier".into()],
            }),
        })
        .await
        .expect("UpdateCompany");
    eventually("the new tier reaches the ticket", async || {
        let t = get(&mut support, &ticket.name).await;
        t.company_tier == "standard" && t.sla.as_ref().is_some_and(|s| s.policy == everyone)
    })
    .await;
}
