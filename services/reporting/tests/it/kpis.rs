//! KPIs over a history made through the real services: every KPI reporting
//! knows, for today, equals what the test computes by hand from what it
//! did; the previous and year-ago periods hold nothing; a daily series
//! puts everything on its last day.

use chrono::Days;
use crm_proto::reporting::{self as pb, KpiUnit};

use crate::{harness::*, history::*};

db_test!(kpis_match_the_history, kpis_on);
async fn kpis_on(backend: Backend) {
    let Some(suite) = Suite::start(backend).await else {
        return;
    };
    let history = History::make(&suite).await;
    let ledger = &history.ledger;

    // The hand-computed values, spelled out for the KPIs the scenario is
    // about (the ledger computes the same; this guards the ledger).
    let expected = ledger.expected();
    let value = |kpi: &str, currency: &str, group: &str| {
        expected[kpi][&(currency.to_owned(), group.to_owned())]
    };
    assert_eq!(value("sales.win_rate", "", ""), Some(2.0 / 3.0));
    assert_eq!(value("sales.average_deal_size", "EUR", ""), Some(5_000.0));
    assert_eq!(value("sales.average_deal_size", "USD", ""), Some(700.0));
    assert_eq!(value("sales.leads_by_source", "", "campaign"), Some(1.0));
    assert_eq!(value("sales.leads_by_source", "", "web_form"), Some(1.0));
    assert_eq!(value("sales.lead_conversion_rate", "", ""), Some(0.5));
    assert_eq!(value("marketing.emails_sent", "", ""), Some(2.0));
    assert_eq!(value("marketing.open_rate", "", ""), Some(0.5));
    assert_eq!(value("marketing.click_rate", "", ""), Some(0.5));
    assert_eq!(value("support.tickets_by_channel", "", "email"), Some(1.0));
    assert_eq!(value("support.tickets_by_priority", "", "low"), Some(1.0));
    assert_eq!(value("support.backlog", "", ""), Some(2.0));
    assert_eq!(value("support.csat", "", ""), Some(1.0));
    assert_eq!(value("marketing.attributed_leads", "", ""), Some(1.0));
    assert_eq!(
        value("marketing.attributed_revenue", "EUR", ""),
        Some(5_000.0)
    );
    assert_eq!(value("marketing.roi", "EUR", ""), Some(4.0));
    assert_eq!(value("customers.new", "", ""), Some(2.0));
    assert_eq!(
        value("customers.revenue_per_customer", "USD", ""),
        Some(350.0)
    );
    assert_eq!(
        value("sales.pipeline_value_by_stage", "EUR", "Proposal"),
        Some(1_200.0)
    );

    let mut reporting = suite.reporting(TENANT, MANAGER);
    let defs = definitions(&mut reporting).await;
    let names: Vec<String> = defs.iter().map(|d| d.name.clone()).collect();
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(names, sorted, "definitions come sorted by name");
    let missing: Vec<&String> = expected.keys().filter(|k| !names.contains(k)).collect();
    assert!(missing.is_empty(), "KPIs not in the catalogue: {missing:?}");
    let unchecked: Vec<&String> = names
        .iter()
        .filter(|n| !expected.contains_key(*n))
        .collect();
    if !unchecked.is_empty() {
        eprintln!("KPIs this test asks for but does not check yet: {unchecked:?}");
    }
    let win_rate = defs
        .iter()
        .find(|d| d.name == "sales.win_rate")
        .expect("win rate");
    assert_eq!(win_rate.unit, KpiUnit::Ratio as i32);
    assert!(win_rate.filters.contains(&"pipeline".to_owned()));
    assert!(!win_rate.filters.contains(&"queue".to_owned()));
    let by_source = defs
        .iter()
        .find(|d| d.name == "sales.leads_by_source")
        .expect("by source");
    assert_eq!(by_source.group_by, "source");

    let response = assert_kpis_today(&suite, ledger, "today's KPIs").await;
    let yesterday = today() - Days::new(1);
    assert_eq!(response.previous_period, Some(period(yesterday, yesterday)));
    let year_ago = today()
        .checked_sub_months(chrono::Months::new(12))
        .expect("a year ago");
    assert_eq!(response.year_ago_period, Some(period(year_ago, year_ago)));
    assert!(response.as_of_time.is_some());
    // Rates carry what they were made of.
    let line = |kpi: &str| {
        response
            .results
            .iter()
            .find(|r| r.kpi == kpi)
            .and_then(|r| r.lines.first())
            .and_then(|l| l.total)
            .expect("a line")
    };
    let wins = line("sales.win_rate");
    assert_eq!((wins.numerator, wins.denominator), (2.0, 3.0));
    let opens = line("marketing.open_rate");
    assert_eq!((opens.numerator, opens.denominator), (1.0, 2.0));
    // The answers come in the order asked.
    let order: Vec<&str> = response.results.iter().map(|r| r.kpi.as_str()).collect();
    assert_eq!(order, names.iter().map(String::as_str).collect::<Vec<_>>());

    // Three days to today, day by day: everything on the last day.
    let start = today() - Days::new(2);
    let daily = query(
        &mut reporting,
        &names,
        period(start, today()),
        pb::Granularity::Day,
    )
    .await;
    let problems = differences(&daily, &expected);
    assert!(problems.is_empty(), "three days:\n{}", problems.join("\n"));
    assert_eq!(
        daily.previous_period,
        Some(period(start - Days::new(3), start - Days::new(1)))
    );
    for result in daily
        .results
        .iter()
        .filter(|r| expected.contains_key(&r.kpi))
    {
        for line in &result.lines {
            if result.kpi == SNAPSHOT {
                assert!(
                    line.buckets.is_empty(),
                    "{}: the present has no series",
                    result.kpi
                );
                continue;
            }
            let days: Vec<(String, String)> = line
                .buckets
                .iter()
                .map(|b| (b.start_date.clone(), b.end_date.clone()))
                .collect();
            let want: Vec<(String, String)> = (0..3)
                .map(|i| {
                    let d = day(start + Days::new(i));
                    (d.clone(), d)
                })
                .collect();
            assert_eq!(
                days, want,
                "{} {}/{}",
                result.kpi, line.currency, line.group
            );
            let empty = nothing(&result.kpi, result.unit);
            for bucket in &line.buckets[..2] {
                assert!(
                    same(bucket.value, empty),
                    "{} {}/{} on {}: {:?}, expected {empty:?}",
                    result.kpi,
                    line.currency,
                    line.group,
                    bucket.start_date,
                    bucket.value
                );
            }
            let total = line.total.as_ref().and_then(|t| t.value);
            assert!(
                same(line.buckets[2].value, total),
                "{} {}/{} today: {:?}, expected {total:?}",
                result.kpi,
                line.currency,
                line.group,
                line.buckets[2].value
            );
        }
    }
}
