//! What reporting refuses (bad KPIs, periods and filters name their field),
//! who may ask what, what a filter narrows to, and tenants that see
//! nothing of each other.

use chrono::Days;
use crm_proto::reporting::{self as pb, GetCustomerViewRequest, KpiFilter, QueryKpisRequest};
use tonic::Code;

use crate::{harness::*, history::*};

fn request(
    kpis: &[&str],
    period: Option<pb::Period>,
    filter: Option<KpiFilter>,
) -> QueryKpisRequest {
    QueryKpisRequest {
        kpis: kpis.iter().map(|k| (*k).to_owned()).collect(),
        period,
        granularity: pb::Granularity::Unspecified as i32,
        filter,
    }
}

fn only(response: &pb::QueryKpisResponse) -> Option<f64> {
    assert_eq!(response.results.len(), 1);
    let lines = &response.results[0].lines;
    assert_eq!(lines.len(), 1, "{lines:?}");
    lines[0].total.as_ref().and_then(|t| t.value)
}

db_test!(refusals_and_isolation, refusals_on);
async fn refusals_on(backend: Backend) {
    let Some(suite) = Suite::start(backend).await else {
        return;
    };
    let history = History::make(&suite).await;
    suite.settled().await;
    let mut manager = suite.reporting(TENANT, MANAGER);
    let today = Some(period(today(), today()));

    // Each bad part of a query names its field.
    let cases: Vec<(QueryKpisRequest, &str, &str)> = vec![
        (
            request(&["sales.nope"], today.clone(), None),
            "kpis[0]",
            "an unknown KPI",
        ),
        (
            request(&["sales.win_rate", "sales.nope"], today.clone(), None),
            "kpis[1]",
            "an unknown second KPI",
        ),
        (request(&[], today.clone(), None), "kpis", "no KPI"),
        (
            request(
                &["sales.win_rate"],
                Some(period(
                    crate::harness::today(),
                    crate::harness::today() - Days::new(1),
                )),
                None,
            ),
            "period.end_date",
            "an end before the start",
        ),
        (
            request(
                &["sales.win_rate"],
                Some(pb::Period {
                    start_date: "yesterday".into(),
                    end_date: day(crate::harness::today()),
                }),
                None,
            ),
            "period.start_date",
            "a start that is no date",
        ),
        (
            request(&["sales.win_rate"], None, None),
            "period",
            "no period",
        ),
        (
            request(
                &["sales.win_rate"],
                today.clone(),
                Some(KpiFilter {
                    queue: "queues/1".into(),
                    ..Default::default()
                }),
            ),
            "filter.queue",
            "a filter the KPI does not know",
        ),
        (
            request(
                &["sales.win_rate"],
                today.clone(),
                Some(KpiFilter {
                    pipeline: "pipes/1".into(),
                    ..Default::default()
                }),
            ),
            "filter.pipeline",
            "a pipeline that is no pipeline's name",
        ),
        (
            request(
                &["support.tickets_created"],
                today.clone(),
                Some(KpiFilter {
                    channel: "pigeon".into(),
                    ..Default::default()
                }),
            ),
            "filter.channel",
            "an unknown channel",
        ),
        (
            request(
                &["marketing.emails_sent"],
                today.clone(),
                Some(KpiFilter {
                    owners: vec!["users/".into()],
                    ..Default::default()
                }),
            ),
            "filter.owners[0]",
            "an empty owner",
        ),
    ];
    for (bad, field, what) in cases {
        let status = manager.query_kpis(bad).await.expect_err(what);
        assert_invalid_field(&status, field, what);
    }
    let daily_decade = QueryKpisRequest {
        granularity: pb::Granularity::Day as i32,
        ..request(
            &["sales.deals_won"],
            Some(period(
                crate::harness::today() - Days::new(500),
                crate::harness::today(),
            )),
            None,
        )
    };
    let status = manager
        .query_kpis(daily_decade)
        .await
        .expect_err("500 days by day");
    assert_invalid_field(&status, "granularity", "a daily series too long");

    // A filter narrows to what it names.
    let narrowed = |kpi: &str, filter: KpiFilter| request(&[kpi], today.clone(), Some(filter));
    let sent = manager
        .query_kpis(narrowed(
            "marketing.emails_sent",
            KpiFilter {
                campaign: history.campaign.name.clone(),
                ..Default::default()
            },
        ))
        .await
        .must("emails of the campaign");
    assert_eq!(only(&sent), Some(2.0));
    let none = manager
        .query_kpis(narrowed(
            "marketing.emails_sent",
            KpiFilter {
                campaign: "campaigns/0".into(),
                ..Default::default()
            },
        ))
        .await
        .must("emails of no campaign");
    assert_eq!(only(&none), Some(0.0));
    let by_mail = manager
        .query_kpis(narrowed(
            "support.tickets_created",
            KpiFilter {
                channel: "email".into(),
                ..Default::default()
            },
        ))
        .await
        .must("tickets by email");
    assert_eq!(only(&by_mail), Some(1.0));
    let pipeline = history.won_usd.pipeline.clone();
    let in_pipeline = manager
        .query_kpis(narrowed(
            "sales.win_rate",
            KpiFilter {
                pipeline,
                ..Default::default()
            },
        ))
        .await
        .must("win rate in the default pipeline");
    assert_eq!(only(&in_pipeline), Some(2.0 / 3.0));
    let at_northwind = manager
        .query_kpis(narrowed(
            "sales.deals_won",
            KpiFilter {
                company: history.company.clone(),
                ..Default::default()
            },
        ))
        .await
        .must("deals won at Northwind");
    assert_eq!(only(&at_northwind), Some(1.0));

    // Roles: KPIs are for managers and admins; a sales rep reads the view.
    let mut rep = suite.reporting(TENANT, SALES);
    let denied = rep
        .query_kpis(request(&["sales.win_rate"], today.clone(), None))
        .await
        .expect_err("a sales rep's KPIs");
    assert_eq!(denied.code(), Code::PermissionDenied);
    let seen = view(&mut rep, &history.ada.name).await;
    assert_eq!(seen.display_name, "Ada Lovelace");
    assert!(
        !definitions(&mut rep).await.is_empty(),
        "a rep may list the KPIs"
    );
    let anonymous =
        crm_proto::reporting::reporting_service_client::ReportingServiceClient::with_interceptor(
            channel_to(suite.reporting.addr),
            bearer(None),
        )
        .get_customer_view(GetCustomerViewRequest {
            contact: history.ada.name.clone(),
            ..Default::default()
        })
        .await
        .expect_err("no token");
    assert_eq!(anonymous.code(), Code::Unauthenticated);

    // Another tenant sees nothing of this one.
    let mut other = suite.reporting(OTHER_TENANT, ADMIN);
    let kpis = all_kpis(&mut other).await;
    let theirs = query(
        &mut other,
        &kpis,
        period(crate::harness::today(), crate::harness::today()),
        pb::Granularity::Unspecified,
    )
    .await;
    let problems = differences(&theirs, &Ledger::default().expected());
    assert!(
        problems.is_empty(),
        "another tenant:\n{}",
        problems.join("\n")
    );
    let hidden = view_page(&mut other, &history.ada.name, 10, "", &[])
        .await
        .expect_err("another tenant's contact");
    assert_eq!(hidden.code(), Code::NotFound);
    // And this tenant's answers are still its own.
    assert_kpis_today(&suite, &history.ledger, "the first tenant").await;
}
