//! Statements per call do not grow with the data (no N+1 queries): sales'
//! hot calls (a lead through the rules and scoring, its conversion, the
//! forecast, lists) report their statement count (`x-crm-db-statements`)
//! with a few leads and deals, and again with 100 more deals and 20 more
//! leads, and the counts must be equal. ConvertLead's call to contacts is not counted:
//! only sales' own statements are.

use std::collections::BTreeMap;

use chrono::{Duration, Utc};
use crm_proto::{
    common::Money,
    sales::{
        AssignmentRule, AssignmentStrategy, ConvertLeadRequest, CreateAssignmentRuleRequest,
        CreateLeadRequest, CreateOpportunityRequest, CreateScoringRuleRequest, GetForecastRequest,
        GetOpportunityRequest, ListLeadsRequest, ListOpportunitiesRequest, Opportunity,
        ScoringRule,
    },
};
use crm_shared::convert::to_timestamp;
use crm_testkit::{
    Backend,
    statements::{assert_unchanged, counted, statement_count},
};

use crate::{revenue::lead, support::*};

fn eur(units: i64) -> Money {
    Money {
        currency_code: "EUR".into(),
        units,
        nanos: 0,
    }
}

async fn deal(sales: &mut Sales, i: usize) -> Opportunity {
    sales
        .create_opportunity(CreateOpportunityRequest {
            opportunity: Some(Opportunity {
                display_name: format!("Deal {i}"),
                amount: Some(eur(1_000 + i as i64)),
                expected_close_date: (Utc::now() + Duration::days(10))
                    .format("%Y-%m-%d")
                    .to_string(),
                ..Default::default()
            }),
            request_id: String::new(),
        })
        .await
        .must("CreateOpportunity")
}

/// Each hot call's statement count now; `run` keeps the leads apart.
async fn count_calls(sales: &mut Sales, run: &str) -> BTreeMap<&'static str, u32> {
    let mut counts = BTreeMap::new();
    let create = CreateLeadRequest {
        lead: Some(lead(run, &format!("{run}@engines.example"), "DE", 1200)),
        request_id: String::new(),
    };
    let created = sales.create_lead(counted(create)).await;
    counts.insert(
        "CreateLead (rules, scoring)",
        statement_count(&created, "CreateLead"),
    );
    let convert = ConvertLeadRequest {
        name: created.expect("created").into_inner().name,
        create_opportunity: true,
        amount: Some(eur(10_000)),
        expected_close_date: (Utc::now() + Duration::days(20))
            .format("%Y-%m-%d")
            .to_string(),
        ..Default::default()
    };
    let converted = sales.convert_lead(counted(convert)).await;
    counts.insert(
        "ConvertLead (with a deal)",
        statement_count(&converted, "ConvertLead"),
    );
    let deal = converted
        .expect("converted")
        .into_inner()
        .opportunity
        .expect("a deal");
    let forecast = GetForecastRequest {
        period_start: Some(to_timestamp(Utc::now() - Duration::days(30))),
        period_end: Some(to_timestamp(Utc::now() + Duration::days(60))),
        owner: String::new(),
        team: vec![],
    };
    let forecast = sales.get_forecast(counted(forecast)).await;
    counts.insert("GetForecast", statement_count(&forecast, "GetForecast"));
    let get = GetOpportunityRequest { name: deal.name };
    let got = sales.get_opportunity(counted(get)).await;
    counts.insert("GetOpportunity", statement_count(&got, "GetOpportunity"));
    let list = ListOpportunitiesRequest {
        page_size: 50,
        ..Default::default()
    };
    let listed = sales.list_opportunities(counted(list)).await;
    counts.insert(
        "ListOpportunities",
        statement_count(&listed, "ListOpportunities"),
    );
    let list = ListLeadsRequest {
        page_size: 50,
        filter: r#"country = "DE""#.into(),
        ..Default::default()
    };
    let listed = sales.list_leads(counted(list)).await;
    counts.insert("ListLeads", statement_count(&listed, "ListLeads"));
    counts
}

db_test!(statements_do_not_grow_with_the_data, statements_on);
async fn statements_on(backend: Backend) {
    let Some(suite) = Suite::start(backend).await else {
        return;
    };
    let mut sales = suite.sales(TENANT, ADMIN);
    sales
        .create_scoring_rule(CreateScoringRuleRequest {
            scoring_rule: Some(ScoringRule {
                display_name: "Enterprise size".into(),
                filter: "employee_count >= 500".into(),
                points: 30,
                ..Default::default()
            }),
            request_id: String::new(),
        })
        .await
        .must("a scoring rule");
    sales
        .create_assignment_rule(CreateAssignmentRuleRequest {
            assignment_rule: Some(AssignmentRule {
                display_name: "DACH".into(),
                priority: 1,
                filter: r#"country = "DE""#.into(),
                strategy: AssignmentStrategy::RoundRobin as i32,
                members: vec!["ann".into(), "bob".into()],
                ..Default::default()
            }),
            request_id: String::new(),
        })
        .await
        .must("an assignment rule");
    for i in 0..3 {
        deal(&mut sales, i).await;
    }
    let small = count_calls(&mut sales, "Small").await;
    for i in 3..103 {
        deal(&mut sales, i).await;
        if i % 5 == 0 {
            let more = CreateLeadRequest {
                lead: Some(lead(
                    &format!("More{i}"),
                    &format!("more{i}@engines.example"),
                    "DE",
                    900,
                )),
                request_id: String::new(),
            };
            sales.create_lead(more).await.must("CreateLead");
        }
    }
    // More rules of each kind: a capture still checks each kind in one statement.
    for (name, filter) in [
        ("Germany", r#"country = "DE""#),
        ("Large", "employee_count >= 1000"),
    ] {
        sales
            .create_scoring_rule(CreateScoringRuleRequest {
                scoring_rule: Some(ScoringRule {
                    display_name: name.into(),
                    filter: filter.into(),
                    points: 5,
                    ..Default::default()
                }),
                request_id: String::new(),
            })
            .await
            .must("another scoring rule");
    }
    sales
        .create_assignment_rule(CreateAssignmentRuleRequest {
            assignment_rule: Some(AssignmentRule {
                display_name: "Enterprise".into(),
                priority: 5,
                filter: "employee_count >= 1000".into(),
                strategy: AssignmentStrategy::RoundRobin as i32,
                members: vec!["eve".into()],
                ..Default::default()
            }),
            request_id: String::new(),
        })
        .await
        .must("another assignment rule");
    let large = count_calls(&mut sales, "Large").await;
    eprintln!("statements per call ({backend:?}): {small:?}");
    assert_unchanged(
        &small,
        &large,
        "with 4 deals, 1 lead and a rule of each kind, and with 104 deals, 22 leads and 3 scoring and 2 assignment rules",
    );
}
