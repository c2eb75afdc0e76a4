//! Sales' audit log: its writes, rules included, each leave an entry naming
//! the call and the changed fields.

use crm_proto::sales::{
    CreateLeadRequest, CreateScoringRuleRequest, DeleteScoringRuleRequest, GetLeadRequest,
    ScoringRule, UpdateLeadRequest,
};
use crm_testkit::Backend;
use prost_types::{FieldMask, value::Kind};

use crate::{revenue::lead, support::*};

db_test!(every_write_is_audited, every_write_is_audited_on);
async fn every_write_is_audited_on(backend: Backend) {
    let Some(suite) = Suite::start(backend).await else {
        return;
    };
    let mut sales = suite.sales(TENANT, ADMIN);
    let rule = sales
        .create_scoring_rule(CreateScoringRuleRequest {
            scoring_rule: Some(ScoringRule {
                display_name: "Big".into(),
                filter: "employee_count >= 500".into(),
                points: 30,
                ..Default::default()
            }),
            request_id: String::new(),
        })
        .await
        .must("CreateScoringRule");
    sales
        .delete_scoring_rule(DeleteScoringRuleRequest {
            name: rule.name.clone(),
        })
        .await
        .must("DeleteScoringRule");
    let rule_history = suite
        .sales_audit(&format!("resource = \"{}\"", rule.name))
        .await;
    let calls: Vec<(&str, &str)> = rule_history
        .iter()
        .map(|e| (e.event_type.as_str(), e.method.as_str()))
        .collect();
    assert_eq!(
        calls,
        [
            (
                "crm.sales.v1.ScoringRuleDeleted",
                "/crm.sales.v1.SalesService/DeleteScoringRule"
            ),
            (
                "crm.sales.v1.ScoringRuleCreated",
                "/crm.sales.v1.SalesService/CreateScoringRule"
            ),
        ]
    );
    assert!(
        rule_history[1].changes.iter().any(|c| c.field == "points"),
        "the created rule's fields: {:?}",
        rule_history[1]
    );

    let created = sales
        .create_lead(CreateLeadRequest {
            lead: Some(lead("Grace", "grace@example.com", "US", 40)),
            request_id: String::new(),
        })
        .await
        .must("CreateLead");
    let mut edit = created.clone();
    edit.company_name = "Navy".into();
    sales
        .update_lead(UpdateLeadRequest {
            lead: Some(edit),
            update_mask: Some(FieldMask {
                paths: vec!["company_name".into()],
            }),
        })
        .await
        .must("UpdateLead");
    let history = suite
        .sales_audit(&format!(
            "resource = \"{}\" AND changed_fields:\"company_name\"",
            created.name
        ))
        .await;
    let update = history
        .iter()
        .find(|e| e.event_type == "crm.sales.v1.LeadUpdated")
        .expect("the update's entry");
    let company = update
        .changes
        .iter()
        .find(|c| c.field == "company_name")
        .expect("company_name changed");
    let after = company.after.as_ref().and_then(|v| v.kind.clone());
    assert_eq!(after, Some(Kind::StringValue("Navy".into())));
    assert_eq!(update.actor, "tester");

    // A new scoring rule rescores the lead (derived data: no entry); the next
    // change to it is not blamed for the new score.
    sales
        .create_scoring_rule(CreateScoringRuleRequest {
            scoring_rule: Some(ScoringRule {
                display_name: "Americas".into(),
                filter: "country = \"US\"".into(),
                points: 25,
                ..Default::default()
            }),
            request_id: String::new(),
        })
        .await
        .must("CreateScoringRule");
    let rescored = sales
        .get_lead(GetLeadRequest {
            name: created.name.clone(),
        })
        .await
        .must("GetLead");
    assert_ne!(rescored.score, created.score, "the rule moved the score");
    let mut edit = rescored.clone();
    edit.title = "Rear Admiral".into();
    sales
        .update_lead(UpdateLeadRequest {
            lead: Some(edit),
            update_mask: Some(FieldMask {
                paths: vec!["title".into()],
            }),
        })
        .await
        .must("UpdateLead title");
    let latest = suite
        .sales_audit(&format!(
            "resource = \"{}\" AND changed_fields:\"title\"",
            created.name
        ))
        .await;
    let fields: Vec<&str> = latest[0].changes.iter().map(|c| c.field.as_str()).collect();
    assert_eq!(fields, ["title"], "only what the update changed");
}
