//! Assignment rules (who gets a new lead) and scoring rules (what a lead is
//! worth), and rescoring every open lead.

use crm_proto::sales as pb;
use crm_shared::{
    auth::admitted,
    convert::{parse_name, required},
    error::ApiError,
    filter::parse_filter,
    idempotency::IdempotencyKey,
    validate::{MAX_SHORT, Violations},
};
use tonic::{Request, Response, Status};

use super::{
    SalesApi,
    convert::{rule_draft, rule_message, scoring_rule_message},
    simple_plan, total,
};
use crate::store;

/// Checks that a rule filter parses over the lead fields.
fn check_rule_filter(filter: &str, field: &str) -> Result<(), ApiError> {
    parse_filter(&store::LEAD_FILTER, filter)
        .map(|_| ())
        .map_err(|e| ApiError::invalid(field, e.message))
}

pub(super) async fn create_assignment_rule(
    api: &SalesApi,
    request: Request<pb::CreateAssignmentRuleRequest>,
) -> Result<Response<pb::AssignmentRule>, Status> {
    let (principal, tenant) = admitted(&request)?;
    let r = request.into_inner();
    let request_id = IdempotencyKey::of(&r.request_id, &r)?;
    let mut draft = rule_draft(&required(r.assignment_rule, "assignment_rule")?)?;
    draft.normalize_and_check("assignment_rule")?;
    check_rule_filter(&draft.filter, "assignment_rule.filter")?;
    let rule = api
        .store
        .create_assignment_rule(&tenant, &principal.subject, draft, request_id)
        .await?;
    Ok(Response::new(rule_message(&rule)))
}

pub(super) async fn list_assignment_rules(
    api: &SalesApi,
    request: Request<pb::ListAssignmentRulesRequest>,
) -> Result<Response<pb::ListAssignmentRulesResponse>, Status> {
    let (_, tenant) = admitted(&request)?;
    let r = request.into_inner();
    let plan = simple_plan(
        &api.page_tokens,
        "assignmentRules",
        r.page_size,
        &r.page_token,
    )?;
    let page = api
        .store
        .list_assignment_rules(&tenant, plan.query.clone())
        .await?;
    let rules = &page.items;
    Ok(Response::new(pb::ListAssignmentRulesResponse {
        next_page_token: plan.next_page_token(&api.page_tokens, &page),
        assignment_rules: rules.iter().map(rule_message).collect(),
    }))
}

pub(super) async fn delete_assignment_rule(
    api: &SalesApi,
    request: Request<pb::DeleteAssignmentRuleRequest>,
) -> Result<Response<pb::AssignmentRule>, Status> {
    let (principal, tenant) = admitted(&request)?;
    let id = parse_name(&request.get_ref().name, "assignmentRules", "name")?;
    Ok(Response::new(rule_message(
        &api.store
            .delete_assignment_rule(&tenant, &principal.subject, id)
            .await?,
    )))
}

pub(super) async fn create_scoring_rule(
    api: &SalesApi,
    request: Request<pb::CreateScoringRuleRequest>,
) -> Result<Response<pb::ScoringRule>, Status> {
    let (principal, tenant) = admitted(&request)?;
    let r = request.into_inner();
    let request_id = IdempotencyKey::of(&r.request_id, &r)?;
    let rule = required(r.scoring_rule, "scoring_rule")?;
    let display_name = rule.display_name.trim().to_owned();
    let mut v = Violations::default();
    v.text("scoring_rule.display_name", &display_name, MAX_SHORT);
    if display_name.is_empty() {
        v.add("scoring_rule.display_name", "required");
    }
    if !(-1000..=1000).contains(&rule.points) {
        v.add("scoring_rule.points", "between -1000 and 1000");
    }
    v.finish()?;
    check_rule_filter(&rule.filter, "scoring_rule.filter")?;
    let created = api
        .store
        .create_scoring_rule(
            &tenant,
            &principal.subject,
            display_name,
            rule.filter,
            rule.points,
            request_id,
        )
        .await?;
    api.store.rescore_all(&tenant).await?;
    Ok(Response::new(scoring_rule_message(&created)))
}

pub(super) async fn list_scoring_rules(
    api: &SalesApi,
    request: Request<pb::ListScoringRulesRequest>,
) -> Result<Response<pb::ListScoringRulesResponse>, Status> {
    let (_, tenant) = admitted(&request)?;
    let r = request.into_inner();
    let plan = simple_plan(&api.page_tokens, "scoringRules", r.page_size, &r.page_token)?;
    let page = api
        .store
        .list_scoring_rules(&tenant, plan.query.clone())
        .await?;
    let rules = &page.items;
    Ok(Response::new(pb::ListScoringRulesResponse {
        next_page_token: plan.next_page_token(&api.page_tokens, &page),
        scoring_rules: rules.iter().map(scoring_rule_message).collect(),
    }))
}

pub(super) async fn delete_scoring_rule(
    api: &SalesApi,
    request: Request<pb::DeleteScoringRuleRequest>,
) -> Result<Response<pb::ScoringRule>, Status> {
    let (principal, tenant) = admitted(&request)?;
    let id = parse_name(&request.get_ref().name, "scoringRules", "name")?;
    let rule = api
        .store
        .delete_scoring_rule(&tenant, &principal.subject, id)
        .await?;
    api.store.rescore_all(&tenant).await?;
    Ok(Response::new(scoring_rule_message(&rule)))
}

pub(super) async fn rescore_leads(
    api: &SalesApi,
    request: Request<pb::RescoreLeadsRequest>,
) -> Result<Response<pb::RescoreLeadsResponse>, Status> {
    let (_, tenant) = admitted(&request)?;
    let (rescored, trained, examples) = api.store.rescore_all(&tenant).await?;
    Ok(Response::new(pb::RescoreLeadsResponse {
        rescored: total(rescored),
        model_trained: trained,
        training_examples: total(examples as u64),
    }))
}
