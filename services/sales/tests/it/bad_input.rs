//! Bad input: INVALID_ARGUMENT naming the field, nothing written.

use crm_proto::{
    common::Money,
    sales::{
        AssignmentRule, AssignmentStrategy, CreateAssignmentRuleRequest, CreateLeadRequest,
        CreateOpportunityRequest, CreatePipelineRequest, Lead, LeadSource, ListLeadsRequest,
        Opportunity, Pipeline, Stage, StageKind,
    },
};
use crm_testkit::Backend;

use crate::{revenue::lead, support::*};

db_test!(bad_input_names_the_field, bad_input_on);
async fn bad_input_on(backend: Backend) {
    let Some(suite) = Suite::start(backend).await else {
        return;
    };
    let mut sales = suite.sales(TENANT, ADMIN);
    let create = |lead: Lead| CreateLeadRequest {
        lead: Some(lead),
        request_id: String::new(),
    };

    let no_source = Lead {
        source: 0,
        ..lead("A", "a@x.example", "", 0)
    };
    assert_names_field(
        &sales.create_lead(create(no_source)).await.unwrap_err(),
        "lead.source",
    );
    let bad_email = lead("A", "not-an-email", "", 0);
    assert_names_field(
        &sales.create_lead(create(bad_email)).await.unwrap_err(),
        "lead.email",
    );
    let bad_country = lead("A", "a@x.example", "Germany", 0);
    assert_names_field(
        &sales.create_lead(create(bad_country)).await.unwrap_err(),
        "lead.country",
    );
    let unknown_status = Lead {
        status: 99,
        ..lead("A", "a@x.example", "", 0)
    };
    assert_names_field(
        &sales.create_lead(create(unknown_status)).await.unwrap_err(),
        "lead.status",
    );
    let too_long = Lead {
        title: "x".repeat(300),
        source: LeadSource::Event as i32,
        ..lead("A", "a@x.example", "", 0)
    };
    assert_names_field(
        &sales.create_lead(create(too_long)).await.unwrap_err(),
        "lead.title",
    );
    let bad_request_id = CreateLeadRequest {
        lead: Some(lead("A", "a@x.example", "", 0)),
        request_id: "nope".into(),
    };
    assert_names_field(
        &sales.create_lead(bad_request_id).await.unwrap_err(),
        "request_id",
    );

    let bad_rule = sales
        .create_assignment_rule(CreateAssignmentRuleRequest {
            assignment_rule: Some(AssignmentRule {
                display_name: "R".into(),
                filter: "salary > 5".into(),
                strategy: AssignmentStrategy::RoundRobin as i32,
                members: vec!["ann".into()],
                ..Default::default()
            }),
            request_id: String::new(),
        })
        .await
        .unwrap_err();
    assert_names_field(&bad_rule, "assignment_rule.filter");

    let no_won_stage = sales
        .create_pipeline(CreatePipelineRequest {
            pipeline: Some(Pipeline {
                display_name: "P".into(),
                stages: vec![Stage {
                    display_name: "Only".into(),
                    probability: 0.5,
                    kind: StageKind::Open as i32,
                    ..Default::default()
                }],
                ..Default::default()
            }),
            request_id: String::new(),
        })
        .await
        .unwrap_err();
    assert_names_field(&no_won_stage, "pipeline.stages");

    let opportunity = |o: Opportunity| CreateOpportunityRequest {
        opportunity: Some(o),
        request_id: String::new(),
    };
    let deal = || Opportunity {
        display_name: "Deal".into(),
        amount: Some(Money {
            currency_code: "EUR".into(),
            units: 5,
            nanos: 0,
        }),
        ..Default::default()
    };
    let bad_stage = Opportunity {
        stage: "pipelines/0190f0a0-0000-7000-8000-000000000000/stages/x".into(),
        ..deal()
    };
    assert_names_field(
        &sales
            .create_opportunity(opportunity(bad_stage))
            .await
            .unwrap_err(),
        "opportunity.stage",
    );
    let missing_contact = Opportunity {
        contact: "contacts/0190f0a0-0000-7000-8000-000000000000".into(),
        ..deal()
    };
    assert_names_field(
        &sales
            .create_opportunity(opportunity(missing_contact))
            .await
            .unwrap_err(),
        "opportunity.contact",
    );
    let bad_currency = Opportunity {
        amount: Some(Money {
            currency_code: "eur".into(),
            units: 5,
            nanos: 0,
        }),
        ..deal()
    };
    assert_names_field(
        &sales
            .create_opportunity(opportunity(bad_currency))
            .await
            .unwrap_err(),
        "opportunity.amount.currency_code",
    );
    let bad_date = Opportunity {
        expected_close_date: "next week".into(),
        ..deal()
    };
    assert_names_field(
        &sales
            .create_opportunity(opportunity(bad_date))
            .await
            .unwrap_err(),
        "opportunity.expected_close_date",
    );

    let negative = sales
        .list_leads(ListLeadsRequest {
            page_size: -1,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_names_field(&negative, "page_size");
    let bad_filter = sales
        .list_leads(ListLeadsRequest {
            filter: "score >".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_names_field(&bad_filter, "filter");

    let listed = sales
        .list_leads(ListLeadsRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert!(listed.leads.is_empty(), "nothing was written");
}

db_test!(
    the_most_negative_nanos_name_the_field,
    the_most_negative_nanos_on
);
/// nanos = i32::MIN has no absolute value: it panicked the handler in debug
/// builds and passed validation in release ones; it is INVALID_ARGUMENT.
async fn the_most_negative_nanos_on(backend: Backend) {
    let Some(suite) = Suite::start(backend).await else {
        return;
    };
    let mut sales = suite.sales(TENANT, ADMIN);
    let status = sales
        .create_opportunity(CreateOpportunityRequest {
            opportunity: Some(Opportunity {
                display_name: "Deal".into(),
                amount: Some(Money {
                    currency_code: "EUR".into(),
                    units: 0,
                    nanos: i32::MIN,
                }),
                ..Default::default()
            }),
            request_id: String::new(),
        })
        .await
        .unwrap_err();
    assert_names_field(&status, "opportunity.amount.nanos");
}

/// Keyset pages over a column that may be NULL (an open deal has no
/// close_time): every opportunity comes once, NULLs last, in both directions.
async fn pages_over_a_nullable_column_on(backend: Backend) {
    let Some(suite) = Suite::start(backend).await else {
        return;
    };
    let mut sales = suite.sales(TENANT, ADMIN);
    let mut created = Vec::new();
    for i in 0..11 {
        let deal = sales
            .create_opportunity(CreateOpportunityRequest {
                opportunity: Some(Opportunity {
                    display_name: format!("Deal {i}"),
                    amount: Some(Money {
                        currency_code: "EUR".into(),
                        units: 5,
                        nanos: 0,
                    }),
                    ..Default::default()
                }),
                request_id: String::new(),
            })
            .await
            .must("CreateOpportunity");
        created.push(deal.name);
    }
    for order_by in ["close_time", "close_time desc", "display_name desc"] {
        let mut seen = Vec::new();
        let mut page_token = String::new();
        loop {
            let page = sales
                .list_opportunities(crm_proto::sales::ListOpportunitiesRequest {
                    page_size: 3,
                    page_token: page_token.clone(),
                    order_by: order_by.into(),
                    ..Default::default()
                })
                .await
                .must("ListOpportunities");
            seen.extend(page.opportunities.into_iter().map(|o| o.name));
            if page.next_page_token.is_empty() {
                break;
            }
            page_token = page.next_page_token;
        }
        let mut sorted = seen.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted.len(), seen.len(), "{order_by}: no repeats");
        let mut expected = created.clone();
        expected.sort();
        assert_eq!(sorted, expected, "{order_by}: every deal once");
    }
}
db_test!(
    pages_over_a_nullable_column,
    pages_over_a_nullable_column_on
);
