//! Leads: duplicates reported, least-loaded assignment, the learned model,
//! idempotent creates, tenant isolation, roles, etags, overdue tasks.

use chrono::{Duration, Utc};
use crm_proto::{
    contacts::{Contact, CreateContactRequest, EmailAddress},
    sales::{
        AssignmentRule, AssignmentStrategy, ConvertLeadRequest, CreateAssignmentRuleRequest,
        CreateLeadRequest, CreateTaskRequest, GetLeadRequest, Lead, LeadSource, LeadStatus,
        ListLeadsRequest, ListTasksRequest, RescoreLeadsRequest, Task, TaskStatus,
        UpdateLeadRequest, UpdateTaskRequest,
    },
};
use crm_shared::convert::to_timestamp;
use crm_testkit::Backend;
use prost_types::FieldMask;
use tonic::Code;

use crate::{revenue::lead, support::*};

db_test!(duplicates_are_reported_not_merged, duplicates_on);
async fn duplicates_on(backend: Backend) {
    let Some(suite) = Suite::start(backend).await else {
        return;
    };
    let contact = suite
        .contacts(TENANT, ADMIN)
        .create_contact(CreateContactRequest {
            contact: Some(Contact {
                given_name: "Grace".into(),
                emails: vec![EmailAddress {
                    address: "grace@navy.example".into(),
                    label: String::new(),
                    primary: true,
                }],
                ..Default::default()
            }),
            request_id: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    let mut sales = suite.sales(TENANT, ADMIN);
    let first = sales
        .create_lead(CreateLeadRequest {
            lead: Some(lead("Grace", "Grace@Navy.example", "US", 5)),
            request_id: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(first.email, "grace@navy.example", "stored lower-case");
    assert_eq!(
        first.possible_duplicates,
        std::slice::from_ref(&contact.name)
    );
    let second = sales
        .create_lead(CreateLeadRequest {
            lead: Some(lead("G.", "grace@navy.example", "US", 5)),
            request_id: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(
        second.possible_duplicates.contains(&first.name),
        "{:?}",
        second.possible_duplicates
    );
    assert!(second.possible_duplicates.contains(&contact.name));
    let listed = sales
        .list_leads(ListLeadsRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.leads.len(), 2, "reported, not merged");
}

#[tokio::test]
async fn least_loaded_assignment_evens_out_the_desks() {
    let Some(suite) = Suite::start(Backend::Sqlite).await else {
        return;
    };
    let mut sales = suite.sales(TENANT, ADMIN);
    sales
        .create_assignment_rule(CreateAssignmentRuleRequest {
            assignment_rule: Some(AssignmentRule {
                display_name: "Everyone".into(),
                strategy: AssignmentStrategy::LeastLoaded as i32,
                members: vec!["ann".into(), "bob".into()],
                ..Default::default()
            }),
            request_id: String::new(),
        })
        .await
        .unwrap();
    let mut owners = Vec::new();
    for i in 0..4 {
        let created = sales
            .create_lead(CreateLeadRequest {
                lead: Some(lead(&format!("L{i}"), &format!("l{i}@x.example"), "", 0)),
                request_id: String::new(),
            })
            .await
            .unwrap()
            .into_inner();
        owners.push(created.owner);
    }
    owners.sort();
    assert_eq!(owners, ["ann", "ann", "bob", "bob"]);
}

db_test!(the_model_learns_from_closed_leads, model_on);
async fn model_on(backend: Backend) {
    let Some(suite) = Suite::start(backend).await else {
        return;
    };
    let mut sales = suite.sales(TENANT, ADMIN);
    // Referrals convert, web-form leads are disqualified.
    for i in 0..5 {
        let referral = Lead {
            source: LeadSource::Referral as i32,
            ..lead(&format!("R{i}"), &format!("r{i}@x.example"), "", 50)
        };
        let created = sales
            .create_lead(CreateLeadRequest {
                lead: Some(referral),
                request_id: String::new(),
            })
            .await
            .unwrap()
            .into_inner();
        sales
            .convert_lead(ConvertLeadRequest {
                name: created.name,
                ..Default::default()
            })
            .await
            .expect("convert a referral");
        let web = lead(&format!("W{i}"), &format!("w{i}@x.example"), "", 50);
        let created = sales
            .create_lead(CreateLeadRequest {
                lead: Some(web),
                request_id: String::new(),
            })
            .await
            .unwrap()
            .into_inner();
        sales
            .update_lead(UpdateLeadRequest {
                lead: Some(Lead {
                    status: LeadStatus::Disqualified as i32,
                    disqualify_reason: "no budget".into(),
                    ..created
                }),
                update_mask: Some(FieldMask {
                    paths: vec!["status".into(), "disqualify_reason".into()],
                }),
            })
            .await
            .expect("disqualify");
    }
    let rescored = sales
        .rescore_leads(RescoreLeadsRequest {})
        .await
        .unwrap()
        .into_inner();
    assert!(rescored.model_trained);
    assert_eq!(rescored.training_examples, 10);
    let fresh = Lead {
        source: LeadSource::Referral as i32,
        ..lead("New", "new@x.example", "", 50)
    };
    let scored = sales
        .create_lead(CreateLeadRequest {
            lead: Some(fresh),
            request_id: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(scored.score > 0, "{:?}", scored.score_factors);
    assert!(
        scored
            .score_factors
            .iter()
            .any(|f| f.label == "model: source is referral" && f.points > 0),
        "the reason is given: {:?}",
        scored.score_factors
    );
    let web = sales
        .create_lead(CreateLeadRequest {
            lead: Some(lead("Web", "web@x.example", "", 50)),
            request_id: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(web.score < scored.score, "{} < {}", web.score, scored.score);
}

db_test!(a_retried_capture_makes_one_lead, retried_capture_on);
async fn retried_capture_on(backend: Backend) {
    let Some(suite) = Suite::start(backend).await else {
        return;
    };
    let request = CreateLeadRequest {
        lead: Some(lead("Once", "once@x.example", "", 0)),
        request_id: "0190f0a0-1111-7000-8000-000000000001".into(),
    };
    let calls = (0..4).map(|_| {
        let mut sales = suite.sales(TENANT, ADMIN);
        let request = request.clone();
        tokio::spawn(async move {
            sales
                .create_lead(request)
                .await
                .map(|r| r.into_inner().name)
        })
    });
    let mut names = Vec::new();
    for call in calls {
        names.push(call.await.unwrap().expect("every retry succeeds"));
    }
    names.dedup();
    assert_eq!(names.len(), 1, "{names:?}");
    let listed = suite
        .sales(TENANT, ADMIN)
        .list_leads(ListLeadsRequest {
            include_total_size: true,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.total_size, 1);
}

db_test!(tenants_never_see_each_other, tenants_on);
async fn tenants_on(backend: Backend) {
    let Some(suite) = Suite::start(backend).await else {
        return;
    };
    let created = suite
        .sales(TENANT, ADMIN)
        .create_lead(CreateLeadRequest {
            lead: Some(lead("Mine", "mine@x.example", "", 0)),
            request_id: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    let mut other = suite.sales(OTHER_TENANT, ADMIN);
    let missing = other
        .get_lead(GetLeadRequest {
            name: created.name.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(missing.code(), Code::NotFound);
    let listed = other
        .list_leads(ListLeadsRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert!(listed.leads.is_empty());
    let convert = other
        .convert_lead(ConvertLeadRequest {
            name: created.name,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(convert.code(), Code::NotFound);
}

#[tokio::test]
async fn roles_and_etags_are_enforced() {
    let Some(suite) = Suite::start(Backend::Sqlite).await else {
        return;
    };
    let denied = suite
        .sales(TENANT, VIEWER)
        .create_lead(CreateLeadRequest {
            lead: Some(lead("V", "v@x.example", "", 0)),
            request_id: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied);
    let mut sales = suite.sales(TENANT, SALES);
    let created = sales
        .create_lead(CreateLeadRequest {
            lead: Some(lead("E", "e@x.example", "", 0)),
            request_id: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    let mask = || {
        Some(FieldMask {
            paths: vec!["title".into()],
        })
    };
    sales
        .update_lead(UpdateLeadRequest {
            lead: Some(Lead {
                title: "CTO".into(),
                ..created.clone()
            }),
            update_mask: mask(),
        })
        .await
        .expect("the first update");
    let stale = sales
        .update_lead(UpdateLeadRequest {
            lead: Some(Lead {
                title: "CEO".into(),
                ..created
            }),
            update_mask: mask(),
        })
        .await
        .unwrap_err();
    assert_eq!(stale.code(), Code::Aborted);
}

db_test!(overdue_tasks_are_listed, overdue_on);
async fn overdue_on(backend: Backend) {
    let Some(suite) = Suite::start(backend).await else {
        return;
    };
    let mut sales = suite.sales(TENANT, SALES);
    let lead = sales
        .create_lead(CreateLeadRequest {
            lead: Some(lead("T", "t@x.example", "", 0)),
            request_id: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    let task = |title: &str, due: chrono::DateTime<Utc>| CreateTaskRequest {
        task: Some(Task {
            title: title.into(),
            due_time: Some(to_timestamp(due)),
            lead: lead.name.clone(),
            ..Default::default()
        }),
        request_id: String::new(),
    };
    let late = sales
        .create_task(task("Call back", Utc::now() - Duration::hours(2)))
        .await
        .unwrap()
        .into_inner();
    sales
        .create_task(task("Send proposal", Utc::now() + Duration::days(2)))
        .await
        .unwrap();
    let overdue = |sales: &mut Sales| {
        let mut sales = sales.clone();
        async move {
            sales
                .list_tasks(ListTasksRequest {
                    overdue_only: true,
                    ..Default::default()
                })
                .await
                .unwrap()
                .into_inner()
                .tasks
                .into_iter()
                .map(|t| t.title)
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(overdue(&mut sales).await, ["Call back"]);
    assert_eq!(late.owner, "tester", "the creator by default");
    sales
        .update_task(UpdateTaskRequest {
            task: Some(Task {
                status: TaskStatus::Done as i32,
                ..late
            }),
            update_mask: Some(FieldMask {
                paths: vec!["status".into()],
            }),
        })
        .await
        .unwrap();
    assert!(
        overdue(&mut sales).await.is_empty(),
        "a done task is not overdue"
    );
}

db_test!(concurrent_captures_take_turns, concurrent_turns_on);
async fn concurrent_turns_on(backend: Backend) {
    let Some(suite) = Suite::start(backend).await else {
        return;
    };
    suite
        .sales(TENANT, ADMIN)
        .create_assignment_rule(CreateAssignmentRuleRequest {
            assignment_rule: Some(AssignmentRule {
                display_name: "Pair".into(),
                strategy: AssignmentStrategy::RoundRobin as i32,
                members: vec!["ann".into(), "bob".into()],
                ..Default::default()
            }),
            request_id: String::new(),
        })
        .await
        .unwrap();
    let captures = (0..8).map(|i| {
        let mut sales = suite.sales(TENANT, ADMIN);
        tokio::spawn(async move {
            sales
                .create_lead(CreateLeadRequest {
                    lead: Some(lead(&format!("C{i}"), &format!("c{i}@x.example"), "", 0)),
                    request_id: String::new(),
                })
                .await
                .map(|r| r.into_inner().owner)
        })
    });
    let mut owners = Vec::new();
    for capture in captures {
        owners.push(capture.await.unwrap().expect("a capture"));
    }
    let ann = owners.iter().filter(|o| *o == "ann").count();
    assert_eq!(ann, 4, "turns are not shared: {owners:?}");
}

db_test!(leads_are_listed_with_filter_order_and_pages, listing_on);
async fn listing_on(backend: Backend) {
    let Some(suite) = Suite::start(backend).await else {
        return;
    };
    let mut sales = suite.sales(TENANT, ADMIN);
    for (i, country) in ["DE", "FR", "DE", "DE", "IT"].iter().enumerate() {
        sales
            .create_lead(CreateLeadRequest {
                lead: Some(lead(
                    &format!("P{i}"),
                    &format!("p{i}@x.example"),
                    country,
                    i as i64 * 100,
                )),
                request_id: String::new(),
            })
            .await
            .unwrap();
    }
    let mut seen = Vec::new();
    let mut page_token = String::new();
    loop {
        let page = sales
            .list_leads(ListLeadsRequest {
                include_total_size: true,
                filter: r#"country = "DE""#.into(),
                order_by: "employee_count desc".into(),
                page_size: 2,
                page_token: page_token.clone(),
                ..Default::default()
            })
            .await
            .expect("a page")
            .into_inner();
        assert_eq!(page.total_size, 3);
        seen.extend(page.leads.into_iter().map(|l| l.employee_count));
        if page.next_page_token.is_empty() {
            break;
        }
        page_token = page.next_page_token;
    }
    assert_eq!(seen, [300, 200, 0], "every German lead once, largest first");
    let unfiltered_token = sales
        .list_leads(ListLeadsRequest {
            page_size: 2,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .next_page_token;
    // A token is bound to its query: reused with another filter, it is refused.
    let mismatch = sales
        .list_leads(ListLeadsRequest {
            filter: r#"country = "FR""#.into(),
            page_size: 2,
            page_token: unfiltered_token,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_names_field(&mismatch, "page_token");
}

db_test!(deleted_leads_and_deals_come_back, undelete_on);
async fn undelete_on(backend: Backend) {
    use crm_proto::sales::{
        CreateOpportunityRequest, DeleteLeadRequest, DeleteOpportunityRequest,
        ListOpportunitiesRequest, Opportunity, UndeleteLeadRequest, UndeleteOpportunityRequest,
    };
    let Some(suite) = Suite::start(backend).await else {
        return;
    };
    let mut sales = suite.sales(TENANT, ADMIN);
    let created = sales
        .create_lead(CreateLeadRequest {
            lead: Some(lead("U", "u@x.example", "", 0)),
            request_id: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    let deleted = sales
        .delete_lead(DeleteLeadRequest {
            name: created.name.clone(),
            etag: created.etag.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(deleted.delete_time.is_some());
    let got = sales
        .get_lead(GetLeadRequest {
            name: created.name.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(got.delete_time.is_some(), "Get still returns it");
    assert!(
        sales
            .list_leads(ListLeadsRequest::default())
            .await
            .unwrap()
            .into_inner()
            .leads
            .is_empty()
    );
    let with_deleted = ListLeadsRequest {
        show_deleted: true,
        ..Default::default()
    };
    assert_eq!(
        sales
            .list_leads(with_deleted)
            .await
            .unwrap()
            .into_inner()
            .leads
            .len(),
        1
    );
    let restored = sales
        .undelete_lead(UndeleteLeadRequest {
            name: created.name.clone(),
            etag: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(restored.delete_time.is_none());
    assert_eq!(
        sales
            .list_leads(ListLeadsRequest::default())
            .await
            .unwrap()
            .into_inner()
            .leads
            .len(),
        1
    );

    let deal = sales
        .create_opportunity(CreateOpportunityRequest {
            opportunity: Some(Opportunity {
                display_name: "D".into(),
                ..Default::default()
            }),
            request_id: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    sales
        .delete_opportunity(DeleteOpportunityRequest {
            name: deal.name.clone(),
            etag: String::new(),
        })
        .await
        .unwrap();
    assert!(
        sales
            .list_opportunities(ListOpportunitiesRequest::default())
            .await
            .unwrap()
            .into_inner()
            .opportunities
            .is_empty()
    );
    sales
        .undelete_opportunity(UndeleteOpportunityRequest {
            name: deal.name.clone(),
            etag: String::new(),
        })
        .await
        .unwrap();
    assert_eq!(
        sales
            .list_opportunities(ListOpportunitiesRequest::default())
            .await
            .unwrap()
            .into_inner()
            .opportunities
            .len(),
        1
    );
}

db_test!(
    an_undeleted_deal_is_announced_as_undeleted,
    undeleted_event_on
);
async fn undeleted_event_on(backend: Backend) {
    use crm_proto::sales::{
        CreateOpportunityRequest, DeleteOpportunityRequest, Opportunity, UndeleteOpportunityRequest,
    };
    let Some(suite) = Suite::start(backend).await else {
        return;
    };
    let mut sales = suite.sales(TENANT, ADMIN);
    let deal = sales
        .create_opportunity(CreateOpportunityRequest {
            opportunity: Some(Opportunity {
                display_name: "Back again".into(),
                ..Default::default()
            }),
            request_id: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    sales
        .delete_opportunity(DeleteOpportunityRequest {
            name: deal.name.clone(),
            etag: String::new(),
        })
        .await
        .unwrap();
    sales
        .undelete_opportunity(UndeleteOpportunityRequest {
            name: deal.name.clone(),
            etag: String::new(),
        })
        .await
        .unwrap();
    let types = suite.sales_event_types().await;
    let deal_events: Vec<&str> = types
        .iter()
        .map(String::as_str)
        .filter(|t| t.starts_with("crm.sales.v1.Opportunity"))
        .collect();
    assert_eq!(
        deal_events,
        [
            "crm.sales.v1.OpportunityCreated",
            "crm.sales.v1.OpportunityDeleted",
            "crm.sales.v1.OpportunityUndeleted",
        ],
        "{types:?}"
    );
}

db_test!(
    a_repeated_conversion_reports_the_reused_contact,
    reused_contact_on
);
async fn reused_contact_on(backend: Backend) {
    let Some(suite) = Suite::start(backend).await else {
        return;
    };
    let contact = suite
        .contacts(TENANT, ADMIN)
        .create_contact(CreateContactRequest {
            contact: Some(Contact {
                given_name: "Hedy".into(),
                emails: vec![EmailAddress {
                    address: "hedy@films.example".into(),
                    label: String::new(),
                    primary: true,
                }],
                ..Default::default()
            }),
            request_id: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    let mut sales = suite.sales(TENANT, ADMIN);
    let created = sales
        .create_lead(CreateLeadRequest {
            lead: Some(lead("Hedy", "hedy@films.example", "AT", 0)),
            request_id: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    let convert = ConvertLeadRequest {
        name: created.name,
        ..Default::default()
    };
    let first = sales
        .convert_lead(convert.clone())
        .await
        .expect("ConvertLead")
        .into_inner();
    assert_eq!(first.contact, contact.name);
    assert!(first.contact_reused, "the contact with the lead's email");

    let again = sales
        .convert_lead(convert)
        .await
        .expect("ConvertLead again")
        .into_inner();
    assert_eq!(again.contact, first.contact);
    assert_eq!(again.company, first.company);
    assert!(again.contact_reused, "reported as the first call did");
    assert_eq!(
        again.lead.map(|l| l.etag),
        first.lead.map(|l| l.etag),
        "the repeat wrote nothing"
    );
}
