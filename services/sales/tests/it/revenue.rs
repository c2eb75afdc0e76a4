//! The whole way: a lead captured, assigned, scored, converted into a contact
//! and an opportunity, moved to won, and counted in the forecast and the
//! pipeline analysis.

use chrono::{Duration, Utc};
use crm_proto::{
    common::Money,
    contacts::GetContactRequest,
    sales::{
        AnalyzePipelineRequest, AssignmentRule, AssignmentStrategy, ConvertLeadRequest,
        CreateAssignmentRuleRequest, CreateLeadRequest, CreateOpportunityRequest,
        CreateScoringRuleRequest, GetForecastRequest, GetPipelineRequest, Lead, LeadSource,
        LeadStatus, ListPipelinesRequest, Opportunity, OpportunityState, ScoringRule,
        UpdateOpportunityRequest,
    },
};
use crm_shared::convert::to_timestamp;
use crm_testkit::Backend;
use prost_types::FieldMask;

use crate::support::*;

fn eur(units: i64) -> Money {
    Money {
        currency_code: "EUR".into(),
        units,
        nanos: 0,
    }
}

pub fn lead(given: &str, email: &str, country: &str, employees: i64) -> Lead {
    Lead {
        given_name: given.into(),
        family_name: "Lovelace".into(),
        email: email.into(),
        company_name: format!("{given} Engines"),
        country: country.into(),
        employee_count: employees,
        source: LeadSource::WebForm as i32,
        ..Default::default()
    }
}

db_test!(a_lead_becomes_revenue, a_lead_becomes_revenue_on);
async fn a_lead_becomes_revenue_on(backend: Backend) {
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
        .expect("a scoring rule");
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
        .expect("an assignment rule");

    // Captured, assigned by the territory rule in turn, scored with reasons.
    let first = sales
        .create_lead(CreateLeadRequest {
            lead: Some(lead("Ada", "ada@engines.example", "DE", 1200)),
            request_id: String::new(),
        })
        .await
        .expect("CreateLead")
        .into_inner();
    assert_eq!(first.owner, "ann");
    assert!(
        first.assignment_reason.contains("DACH"),
        "{}",
        first.assignment_reason
    );
    assert_eq!(first.score, 30);
    assert_eq!(first.score_factors[0].label, "rule: Enterprise size");
    assert_eq!(first.status, LeadStatus::New as i32);
    let second = sales
        .create_lead(CreateLeadRequest {
            lead: Some(lead("Bea", "bea@engines.example", "DE", 20)),
            request_id: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!((second.owner.as_str(), second.score), ("bob", 0));
    let elsewhere = sales
        .create_lead(CreateLeadRequest {
            lead: Some(lead("Cy", "cy@engines.example", "FR", 20)),
            request_id: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        elsewhere.owner, "tester",
        "no rule matched: the creator owns it"
    );

    // Converted: a contact and a company in contacts, an opportunity here.
    let convert = ConvertLeadRequest {
        name: first.name.clone(),
        create_opportunity: true,
        opportunity_display_name: String::new(),
        amount: Some(eur(10_000)),
        pipeline: String::new(),
        expected_close_date: (Utc::now() + Duration::days(20))
            .format("%Y-%m-%d")
            .to_string(),
    };
    let converted = sales
        .convert_lead(convert.clone())
        .await
        .expect("ConvertLead")
        .into_inner();
    let lead = converted.lead.clone().unwrap();
    assert_eq!(lead.status, LeadStatus::Converted as i32);
    assert!(converted.contact.starts_with("contacts/"));
    assert!(converted.company.starts_with("companies/"));
    assert!(!converted.contact_reused);
    let deal = converted.opportunity.clone().expect("an opportunity");
    assert_eq!(deal.contact, converted.contact);
    assert_eq!(deal.source_lead, first.name);
    assert_eq!(deal.state, OpportunityState::Open as i32);
    let contact = suite
        .contacts(TENANT, ADMIN)
        .get_contact(GetContactRequest {
            name: converted.contact.clone(),
        })
        .await
        .expect("the contact exists in contacts")
        .into_inner();
    assert_eq!(contact.emails[0].address, "ada@engines.example");
    assert_eq!(contact.company, converted.company);

    // A retry returns the first result and makes nothing new.
    let again = sales
        .convert_lead(convert)
        .await
        .expect("ConvertLead again")
        .into_inner();
    assert_eq!(again.contact, converted.contact);
    assert_eq!(again.opportunity.unwrap().name, deal.name);

    // Moved through the stages to won.
    let pipeline = sales
        .get_pipeline(GetPipelineRequest {
            name: deal.pipeline.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(pipeline.is_default);
    let stage = |label: &str| {
        pipeline
            .stages
            .iter()
            .find(|s| s.display_name == label)
            .unwrap()
            .name
            .clone()
    };
    let mut current = deal.clone();
    for label in ["Proposal", "Closed won"] {
        current = sales
            .update_opportunity(UpdateOpportunityRequest {
                opportunity: Some(Opportunity {
                    stage: stage(label),
                    ..current.clone()
                }),
                update_mask: Some(FieldMask {
                    paths: vec!["stage".into()],
                }),
            })
            .await
            .unwrap_or_else(|e| panic!("moving to {label}: {e:?}"))
            .into_inner();
    }
    assert_eq!(current.state, OpportunityState::Won as i32);
    assert!(current.close_time.is_some());
    let history: Vec<&str> = current
        .stage_history
        .iter()
        .map(|c| c.stage.as_str())
        .collect();
    assert_eq!(
        history,
        [stage("Prospecting"), stage("Proposal"), stage("Closed won")]
    );

    // An open deal in another currency, expected in the period.
    sales
        .create_opportunity(CreateOpportunityRequest {
            opportunity: Some(Opportunity {
                display_name: "US expansion".into(),
                amount: Some(Money {
                    currency_code: "USD".into(),
                    units: 4_000,
                    nanos: 0,
                }),
                stage: stage("Negotiation"),
                expected_close_date: (Utc::now() + Duration::days(10))
                    .format("%Y-%m-%d")
                    .to_string(),
                ..Default::default()
            }),
            request_id: String::new(),
        })
        .await
        .expect("an open deal");

    let period_start = Utc::now() - Duration::days(30);
    let period_end = Utc::now() + Duration::days(60);
    let forecast = sales
        .get_forecast(GetForecastRequest {
            period_start: Some(to_timestamp(period_start)),
            period_end: Some(to_timestamp(period_end)),
            owner: String::new(),
            team: vec![],
        })
        .await
        .expect("GetForecast")
        .into_inner();
    let line = |currency: &str| {
        forecast
            .lines
            .iter()
            .find(|l| l.currency_code == currency)
            .unwrap()
            .clone()
    };
    assert_eq!(
        forecast.lines.len(),
        2,
        "one line per currency: {forecast:?}"
    );
    assert_eq!(line("EUR").closed_won, Some(eur(10_000)));
    assert_eq!(line("EUR").won_count, 1);
    let usd = line("USD");
    assert_eq!(usd.weighted_pipeline.unwrap().units, 3_000, "4,000 at 75%");
    assert_eq!(usd.commit.unwrap().units, 4_000, "75% is committed");
    assert_eq!(usd.closed_won.unwrap().units, 0);

    let analysis = sales
        .analyze_pipeline(AnalyzePipelineRequest {
            pipeline: String::new(),
            period_start: Some(to_timestamp(period_start)),
            period_end: Some(to_timestamp(period_end)),
        })
        .await
        .expect("AnalyzePipeline")
        .into_inner();
    let numbers = |label: &str| {
        analysis
            .stages
            .iter()
            .find(|s| s.display_name == label)
            .unwrap()
            .clone()
    };
    assert_eq!(numbers("Proposal").entered_count, 1);
    assert_eq!(numbers("Proposal").conversion_rate, 1.0);
    assert_eq!(numbers("Closed won").current_count, 1);
    assert_eq!(numbers("Negotiation").current_count, 1);
    assert_eq!(numbers("Prospecting").conversion_rate, 1.0);

    let pipelines = sales
        .list_pipelines(ListPipelinesRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        pipelines.pipelines.len(),
        1,
        "one default pipeline, made once"
    );

    let types = suite.sales_event_types().await;
    for expected in [
        "crm.sales.v1.LeadCreated",
        "crm.sales.v1.LeadConverted",
        "crm.sales.v1.OpportunityCreated",
        "crm.sales.v1.OpportunityStageChanged",
        "crm.sales.v1.OpportunityWon",
    ] {
        assert!(
            types.iter().any(|t| t == expected),
            "{expected} in {types:?}"
        );
    }
    assert_eq!(
        types
            .iter()
            .filter(|t| *t == "crm.sales.v1.LeadConverted")
            .count(),
        1,
        "the retried conversion wrote no second event"
    );
}
