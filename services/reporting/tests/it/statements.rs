//! Statements per call do not grow with the data (no N+1 queries):
//! reporting's reads (KPI queries with and without owner, pipeline and
//! company filters, each with its comparison periods and series; a
//! customer's view; saved reports listed, read, run, exported and drawn;
//! erasure statuses; the read model's status) report their statement count
//! (`x-crm-db-statements`) over the shared history, and again once the
//! services have fed reporting 100 more customers and deals (a fifth of
//! them Ada's), 20 more leads, 30 more tickets, a second campaign, 10 more
//! reports and 5 more erasures; the counts must be equal.

use std::collections::BTreeMap;

use chrono::{Datelike, Days};
use crm_proto::{
    contacts::EraseContactRequest,
    reporting::{
        self as pb, ExportReportRequest, GetCustomerViewRequest, GetErasureStatusRequest,
        GetReadModelStatusRequest, GetReportRequest, ListErasureStatusesRequest,
        ListReportsRequest, QueryKpisRequest, RenderReportChartRequest, RunReportRequest,
    },
    sales::{CreateOpportunityRequest, LeadSource, Opportunity, UpdateOpportunityRequest},
    support::{TicketChannel, TicketPriority},
};
use crm_testkit::statements::{assert_unchanged, counted, statement_count};
use tokio_stream::StreamExt;

use crate::{harness::*, history::*};

/// What the counted calls answered, to show the read model did grow.
#[derive(Debug, Default)]
struct Seen {
    deals_won: f64,
    adas_deals: usize,
    adas_timeline: usize,
    reports: usize,
    erasures: usize,
}

/// A period from `days` days ago to today.
fn last_days(days: u64) -> pb::Period {
    period(today() - Days::new(days), today())
}

/// This calendar year up to today.
fn this_year() -> pb::Period {
    let start = today().with_ordinal(1).expect("the first day of the year");
    period(start, today())
}

fn kpis(names: &[&str]) -> Vec<String> {
    names.iter().map(|n| (*n).to_owned()).collect()
}

/// A saved report over the last 30 days by week.
fn report(i: usize) -> pb::Report {
    pb::Report {
        display_name: format!("Monthly sales {i}"),
        kpis: kpis(&[
            "sales.won_revenue",
            "sales.win_rate",
            "customers.new",
            "support.tickets_created",
        ]),
        relative_period: pb::RelativePeriod::Last30Days as i32,
        granularity: pb::Granularity::Week as i32,
        ..Default::default()
    }
}

async fn create_report(reporting: &mut Reporting, i: usize) -> String {
    reporting
        .create_report(pb::CreateReportRequest {
            report: Some(report(i)),
            request_id: String::new(),
        })
        .await
        .must("CreateReport")
        .name
}

/// Erases `contacts` through contacts and waits until every service
/// confirmed each erasure to reporting.
async fn erase(suite: &Suite, contacts: &[String]) {
    let mut admin = suite.contacts(TENANT, ADMIN);
    for contact in contacts {
        admin
            .erase_contact(EraseContactRequest {
                name: contact.clone(),
            })
            .await
            .must("EraseContact");
    }
    let mut reporting = suite.reporting(TENANT, ADMIN);
    for contact in contacts {
        eventually_within(60, "every service confirms the erasure", async || {
            reporting
                .get_erasure_status(GetErasureStatusRequest {
                    contact: contact.clone(),
                })
                .await
                .is_ok_and(|s| s.into_inner().complete)
        })
        .await;
    }
}

/// Each read's statement count now, and what some of them answered.
async fn count_calls(
    reporting: &mut Reporting,
    history: &History,
    report: &str,
    erased: &str,
) -> (BTreeMap<&'static str, u32>, Seen) {
    let mut counts = BTreeMap::new();
    let mut seen = Seen::default();
    let every_kpi = all_kpis(reporting).await;
    let queries = [
        (
            "QueryKpis (every KPI, 30 days)",
            QueryKpisRequest {
                kpis: every_kpi,
                period: Some(last_days(29)),
                granularity: pb::Granularity::Unspecified as i32,
                filter: None,
            },
        ),
        (
            "QueryKpis (sales, owners and pipeline, by month)",
            QueryKpisRequest {
                kpis: kpis(&[
                    "sales.won_revenue",
                    "sales.deals_won",
                    "sales.win_rate",
                    "sales.average_deal_size",
                    "sales.sales_cycle_days",
                    "sales.pipeline_value_by_stage",
                    "customers.revenue_per_customer",
                    "marketing.attributed_revenue",
                ]),
                period: Some(this_year()),
                granularity: pb::Granularity::Month as i32,
                filter: Some(pb::KpiFilter {
                    owners: vec!["users/tester".into(), "ann".into()],
                    pipeline: history.won_usd.pipeline.clone(),
                    ..Default::default()
                }),
            },
        ),
        (
            "QueryKpis (sales and support, company, by day)",
            QueryKpisRequest {
                kpis: kpis(&[
                    "sales.won_revenue",
                    "sales.win_rate",
                    "customers.revenue_per_customer",
                    "support.tickets_created",
                    "support.backlog",
                    "support.first_response_time_median",
                    "support.resolution_time_p90",
                ]),
                period: Some(last_days(13)),
                granularity: pb::Granularity::Day as i32,
                filter: Some(pb::KpiFilter {
                    company: history.company.clone(),
                    ..Default::default()
                }),
            },
        ),
        (
            "QueryKpis (customers and forecast, by week)",
            QueryKpisRequest {
                kpis: kpis(&[
                    "customers.new",
                    "customers.lifetime_value",
                    "customers.retention_by_cohort",
                    "customers.churn_by_cohort",
                    "sales.forecast",
                    "sales.forecast_accuracy",
                    "marketing.roi",
                ]),
                period: Some(last_days(89)),
                granularity: pb::Granularity::Week as i32,
                filter: None,
            },
        ),
    ];
    for (call, query) in queries {
        let answered = reporting.query_kpis(counted(query)).await;
        counts.insert(call, statement_count(&answered, call));
        if call.starts_with("QueryKpis (every KPI") {
            seen.deals_won = answered
                .expect("answered")
                .into_inner()
                .results
                .iter()
                .find(|r| r.kpi == "sales.deals_won")
                .and_then(|r| r.lines.first())
                .and_then(|l| l.total)
                .and_then(|t| t.value)
                .unwrap_or_default();
        }
    }

    let ada = history.ada.name.clone();
    let view = GetCustomerViewRequest {
        contact: ada.clone(),
        page_size: 1000,
        page_token: String::new(),
        kinds: Vec::new(),
    };
    let viewed = reporting.get_customer_view(counted(view)).await;
    counts.insert(
        "GetCustomerView",
        statement_count(&viewed, "GetCustomerView"),
    );
    let viewed = viewed.expect("viewed").into_inner();
    seen.adas_deals = viewed.open_deals.len() + viewed.won_deals.len();
    seen.adas_timeline = viewed.timeline.len();
    let first = view_page(reporting, &ada, 2, "", &["deal", "ticket"])
        .await
        .expect("a first page");
    assert!(!first.next_page_token.is_empty(), "{first:?}");
    let next = GetCustomerViewRequest {
        contact: ada,
        page_size: 2,
        page_token: first.next_page_token,
        kinds: vec!["deal".into(), "ticket".into()],
    };
    let next = reporting.get_customer_view(counted(next)).await;
    counts.insert(
        "GetCustomerView (a later page, two kinds)",
        statement_count(&next, "GetCustomerView (a later page)"),
    );

    let got = reporting
        .get_report(counted(GetReportRequest {
            name: report.into(),
        }))
        .await;
    counts.insert("GetReport", statement_count(&got, "GetReport"));
    let listed = reporting
        .list_reports(counted(ListReportsRequest {
            page_size: 50,
            ..Default::default()
        }))
        .await;
    counts.insert("ListReports", statement_count(&listed, "ListReports"));
    seen.reports = listed.expect("listed").into_inner().reports.len();
    let run = reporting
        .run_report(counted(RunReportRequest {
            name: report.into(),
        }))
        .await;
    counts.insert("RunReport", statement_count(&run, "RunReport"));
    let exported = reporting
        .export_report(counted(ExportReportRequest {
            name: report.into(),
        }))
        .await;
    counts.insert("ExportReport", statement_count(&exported, "ExportReport"));
    let mut csv = Vec::new();
    let mut chunks = exported.expect("exported").into_inner();
    while let Some(chunk) = chunks.next().await {
        csv.extend(chunk.must_chunk().data);
    }
    assert!(
        String::from_utf8_lossy(&csv).contains("sales.won_revenue"),
        "the export holds the report's KPIs"
    );
    let chart = reporting
        .render_report_chart(counted(RenderReportChartRequest {
            name: report.into(),
            width: 0,
            height: 0,
        }))
        .await;
    counts.insert(
        "RenderReportChart",
        statement_count(&chart, "RenderReportChart"),
    );

    let status = reporting
        .get_erasure_status(counted(GetErasureStatusRequest {
            contact: erased.into(),
        }))
        .await;
    counts.insert(
        "GetErasureStatus",
        statement_count(&status, "GetErasureStatus"),
    );
    let statuses = reporting
        .list_erasure_statuses(counted(ListErasureStatusesRequest {
            page_size: 50,
            ..Default::default()
        }))
        .await;
    counts.insert(
        "ListErasureStatuses",
        statement_count(&statuses, "ListErasureStatuses"),
    );
    seen.erasures = statuses.expect("listed").into_inner().erasures.len();
    let model = reporting
        .get_read_model_status(counted(GetReadModelStatusRequest {}))
        .await;
    counts.insert(
        "GetReadModelStatus",
        statement_count(&model, "GetReadModelStatus"),
    );
    (counts, seen)
}

/// A chunk of an export, or a panic.
trait MustChunk {
    fn must_chunk(self) -> pb::ExportReportResponse;
}

impl MustChunk for Result<pb::ExportReportResponse, tonic::Status> {
    fn must_chunk(self) -> pb::ExportReportResponse {
        self.unwrap_or_else(|status| panic!("ExportReport chunk: {status:?}"))
    }
}

/// Feeds reporting a much larger history through the services: 100
/// customers (half at one of 10 companies) with a deal each, every fifth of
/// them Ada's instead, won, lost, in Proposal or new, owned by three
/// owners; 20 leads (5 converted); 30 tickets (answered, solved); a second
/// campaign read by some; 10 reports and 5 more erasures. Returns the
/// deals won.
async fn grow(suite: &Suite, history: &History, reporting: &mut Reporting) -> usize {
    let mut contacts = suite.contacts(TENANT, ADMIN);
    let mut companies = Vec::new();
    for i in 0..10 {
        companies.push(company(&mut contacts, &format!("Company {i}")).await);
    }
    let mut customers = Vec::new();
    for i in 0..100 {
        let at = if i % 2 == 0 {
            companies[i % companies.len()].as_str()
        } else {
            ""
        };
        let email = format!("customer{i}@grow.example");
        let c = contact(
            &mut contacts,
            "Customer",
            &i.to_string(),
            &email,
            at,
            i % 4 == 0,
        )
        .await;
        customers.push((c.name, at.to_owned(), email));
    }

    let mut sales = suite.sales(TENANT, ADMIN);
    let pipeline = history.won_usd.pipeline.clone();
    let won_stage = stage(&mut sales, &pipeline, "Closed won").await;
    let lost_stage = stage(&mut sales, &pipeline, "Closed lost").await;
    let proposal = stage(&mut sales, &pipeline, "Proposal").await;
    let mut won = 0;
    for (i, (customer, at, _)) in customers.iter().enumerate() {
        let (contact, company) = if i % 5 == 0 {
            (history.ada.name.as_str(), history.company.as_str())
        } else {
            (customer.as_str(), at.as_str())
        };
        let currency = if i % 2 == 0 { "EUR" } else { "USD" };
        let created = sales
            .create_opportunity(CreateOpportunityRequest {
                opportunity: Some(Opportunity {
                    display_name: format!("Deal {i}"),
                    amount: Some(money(currency, 100 + i as i64)),
                    contact: contact.into(),
                    company: company.into(),
                    owner: ["tester", "ann", "bob"][i % 3].into(),
                    expected_close_date: day(today() + Days::new(10 + i as u64)),
                    ..Default::default()
                }),
                request_id: String::new(),
            })
            .await
            .must("CreateOpportunity");
        let to = match i % 4 {
            0 => won_stage.as_str(),
            1 => lost_stage.as_str(),
            2 => proposal.as_str(),
            _ => continue,
        };
        won += usize::from(i % 4 == 0);
        sales
            .update_opportunity(UpdateOpportunityRequest {
                opportunity: Some(Opportunity {
                    stage: to.into(),
                    ..created
                }),
                update_mask: Some(prost_types::FieldMask {
                    paths: vec!["stage".into()],
                }),
            })
            .await
            .must("moving a deal");
    }
    for i in 0..20 {
        let (source, campaign) = if i % 2 == 0 {
            (LeadSource::Campaign, history.campaign.name.as_str())
        } else {
            (LeadSource::WebForm, "")
        };
        let created = lead(&mut sales, &format!("Grown{i}"), source, campaign).await;
        if i % 4 == 0 {
            convert(&mut sales, &created, money("EUR", 2_000)).await;
        }
    }

    let mut support = suite.support(TENANT, AGENT);
    let channels = [
        TicketChannel::Email,
        TicketChannel::Web,
        TicketChannel::Phone,
        TicketChannel::Chat,
    ];
    let priorities = [
        TicketPriority::Low,
        TicketPriority::Normal,
        TicketPriority::High,
        TicketPriority::Urgent,
    ];
    for i in 0..30 {
        let requester = if i % 3 == 0 {
            history.ada.name.as_str()
        } else {
            customers[i].0.as_str()
        };
        let opened = ticket(
            &mut support,
            requester,
            &format!("Problem {i}"),
            channels[i % channels.len()],
            priorities[i % priorities.len()],
        )
        .await;
        if i % 2 == 0 {
            reply(&mut support, &opened.name, "Looking into it").await;
        }
        if i % 6 == 0 {
            solve(&mut support, &opened.name).await;
        }
    }

    let mut m = suite.marketing(TENANT, MARKETER);
    let mut audience: Vec<&str> = customers[..20].iter().map(|c| c.0.as_str()).collect();
    audience.push(&history.ada.name);
    campaign_to(&mut m, "Autumn launch", &audience, money("EUR", 500)).await;
    suite
        .engage("ada@northwind.example", "Autumn launch", true)
        .await;
    for (_, _, email) in &customers[..3] {
        suite.engage(email, "Autumn launch", false).await;
    }

    for i in 1..=10 {
        create_report(reporting, i).await;
    }
    let gone: Vec<String> = customers[95..].iter().map(|c| c.0.clone()).collect();
    erase(suite, &gone).await;
    won
}

db_test!(statements_do_not_grow_with_the_data, statements_on);
async fn statements_on(backend: Backend) {
    let Some(suite) = Suite::start(backend).await else {
        return;
    };
    let history = History::make(&suite).await;
    let mut reporting = suite.reporting(TENANT, ADMIN);
    let report = create_report(&mut reporting, 0).await;
    let erased = contact(
        &mut suite.contacts(TENANT, ADMIN),
        "Eve",
        "Erased",
        "eve@example.com",
        "",
        false,
    )
    .await
    .name;
    erase(&suite, std::slice::from_ref(&erased)).await;
    suite.settled().await;
    let (small, before) = count_calls(&mut reporting, &history, &report, &erased).await;

    let won = grow(&suite, &history, &mut reporting).await;
    suite.settled().await;
    let (large, after) = count_calls(&mut reporting, &history, &report, &erased).await;
    eprintln!("statements per call ({backend:?}): {small:#?}");
    eprintln!("read model before: {before:?}, after: {after:?}");
    // The second measurement did read a much larger read model.
    assert_eq!(after.deals_won, before.deals_won + won as f64, "deals won");
    assert_eq!(after.adas_deals, before.adas_deals + 20 - 5, "Ada's deals");
    assert!(
        after.adas_timeline >= before.adas_timeline + 30,
        "{after:?}"
    );
    assert_eq!(after.reports, before.reports + 10, "reports");
    assert_eq!(after.erasures, before.erasures + 5, "erasures");
    assert_unchanged(
        &small,
        &large,
        "over the shared history, and with 100 more customers and deals, \
         20 leads, 30 tickets, a campaign, 10 reports and 5 erasures",
    );
}
