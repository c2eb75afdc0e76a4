//! Queues, agent profiles and routing rules.

use chrono::Utc;
use crm_proto::support as pb;
use crm_shared::{
    auth::{Role, admitted},
    convert::{parse_etag, parse_name, required},
    error::ApiError,
    idempotency::IdempotencyKey,
    validate::update_paths,
};
use tonic::{Request, Response, Status};

use super::{
    ADMINS, SupportApi,
    convert::{agent_message, queue_draft, queue_message, rule_draft, rule_message},
    fixed_plan,
};
use crate::domain::routing::{AGENT_FIELDS, QUEUE_FIELDS, agent_subject, normalize_skills};

pub(super) async fn create_queue(
    api: &SupportApi,
    request: Request<pb::CreateQueueRequest>,
) -> Result<Response<pb::Queue>, Status> {
    let (principal, tenant) = admitted(&request)?;
    let r = request.into_inner();
    let request_id = IdempotencyKey::of(&r.request_id, &r)?;
    let mut draft = queue_draft(&required(r.queue, "queue")?, "queue")?;
    draft.normalize_and_check("queue")?;
    let created = api
        .store
        .create_queue(&tenant, &principal.subject, draft, request_id)
        .await?;
    Ok(Response::new(queue_message(&created)))
}

pub(super) async fn get_queue(
    api: &SupportApi,
    request: Request<pb::GetQueueRequest>,
) -> Result<Response<pb::Queue>, Status> {
    let (_, tenant) = admitted(&request)?;
    let id = parse_name(&request.get_ref().name, "queues", "name")?;
    Ok(Response::new(queue_message(
        &api.store.get_queue(&tenant, id).await?,
    )))
}

pub(super) async fn list_queues(
    api: &SupportApi,
    request: Request<pb::ListQueuesRequest>,
) -> Result<Response<pb::ListQueuesResponse>, Status> {
    let (_, tenant) = admitted(&request)?;
    let r = request.into_inner();
    let plan = fixed_plan(
        &api.page_tokens,
        "queues",
        &[("create_time", "create_time")],
        r.page_size,
        &r.page_token,
        r.show_deleted,
    )?;
    let page = api.store.list_queues(&tenant, plan.query.clone()).await?;
    Ok(Response::new(pb::ListQueuesResponse {
        next_page_token: plan.next_page_token(&api.page_tokens, &page),
        queues: page.items.iter().map(queue_message).collect(),
    }))
}

pub(super) async fn update_queue(
    api: &SupportApi,
    request: Request<pb::UpdateQueueRequest>,
) -> Result<Response<pb::Queue>, Status> {
    let (principal, tenant) = admitted(&request)?;
    let r = request.into_inner();
    let message = required(r.queue, "queue")?;
    let id = parse_name(&message.name, "queues", "queue.name")?;
    let expected = parse_etag(&message.etag, "queue.etag")?;
    let mask = r.update_mask.map(|m| m.paths).unwrap_or_default();
    let paths = update_paths(&mask, QUEUE_FIELDS)?;
    let changes = queue_draft(&message, "queue")?;
    let updated = api
        .store
        .update_queue(
            &tenant,
            &principal.subject,
            id,
            expected,
            |q| {
                q.draft.apply(&paths, &changes);
                q.draft.normalize_and_check("queue")
            },
            "QueueUpdated",
        )
        .await?;
    Ok(Response::new(queue_message(&updated)))
}

pub(super) async fn delete_queue(
    api: &SupportApi,
    request: Request<pb::DeleteQueueRequest>,
) -> Result<Response<pb::Queue>, Status> {
    let (principal, tenant) = admitted(&request)?;
    let r = request.into_inner();
    let id = parse_name(&r.name, "queues", "name")?;
    let expected = parse_etag(&r.etag, "etag")?;
    let deleted = api
        .store
        .update_queue(
            &tenant,
            &principal.subject,
            id,
            expected,
            |q| {
                q.delete_time = Some(Utc::now());
                Ok(())
            },
            "QueueDeleted",
        )
        .await?;
    Ok(Response::new(queue_message(&deleted)))
}

pub(super) async fn get_agent(
    api: &SupportApi,
    request: Request<pb::GetAgentRequest>,
) -> Result<Response<pb::Agent>, Status> {
    let (_, tenant) = admitted(&request)?;
    let name = &request.get_ref().name;
    let subject = agent_subject(name, "name")?;
    let agent = api
        .store
        .find_agent(&tenant, subject)
        .await?
        .ok_or_else(|| ApiError::NotFound(name.clone()))?;
    Ok(Response::new(agent_message(&agent)))
}

pub(super) async fn list_agents(
    api: &SupportApi,
    request: Request<pb::ListAgentsRequest>,
) -> Result<Response<pb::ListAgentsResponse>, Status> {
    let (_, tenant) = admitted(&request)?;
    let r = request.into_inner();
    let plan = fixed_plan(
        &api.page_tokens,
        "agents",
        &[("subject", "subject")],
        r.page_size,
        &r.page_token,
        false,
    )?;
    let page = api.store.list_agents(&tenant, plan.query.clone()).await?;
    Ok(Response::new(pb::ListAgentsResponse {
        next_page_token: plan.next_page_token(&api.page_tokens, &page),
        agents: page.items.iter().map(agent_message).collect(),
    }))
}

pub(super) async fn update_agent(
    api: &SupportApi,
    request: Request<pb::UpdateAgentRequest>,
) -> Result<Response<pb::Agent>, Status> {
    let (principal, tenant) = admitted(&request)?;
    let r = request.into_inner();
    let message = required(r.agent, "agent")?;
    let subject = agent_subject(&message.name, "agent.name")?.to_owned();
    // An agent may set their own availability and skills; anyone else's
    // profile is a manager's.
    if subject != principal.subject
        && !principal
            .roles
            .iter()
            .any(|role| ADMINS.contains(role) || *role == Role::Service)
    {
        return Err(ApiError::PermissionDenied(format!(
            "only a manager or admin may change {}",
            message.name
        ))
        .into());
    }
    let expected = parse_etag(&message.etag, "agent.etag")?;
    let mask = r.update_mask.map(|m| m.paths).unwrap_or_default();
    let paths = update_paths(&mask, AGENT_FIELDS)?;
    let updated = api
        .store
        .update_agent(
            &tenant,
            &principal.subject,
            &subject,
            expected,
            r.allow_missing,
            |a| {
                for path in &paths {
                    match *path {
                        "display_name" => a.display_name = message.display_name.clone(),
                        "skills" => {
                            a.skills = message.skills.clone();
                            normalize_skills(&mut a.skills);
                        }
                        "available" => a.available = message.available,
                        _ => {}
                    }
                }
                a.normalize_and_check("agent")
            },
        )
        .await?;
    Ok(Response::new(agent_message(&updated)))
}

pub(super) async fn create_routing_rule(
    api: &SupportApi,
    request: Request<pb::CreateRoutingRuleRequest>,
) -> Result<Response<pb::RoutingRule>, Status> {
    let (principal, tenant) = admitted(&request)?;
    let r = request.into_inner();
    let request_id = IdempotencyKey::of(&r.request_id, &r)?;
    let mut draft = rule_draft(&required(r.routing_rule, "routing_rule")?, "routing_rule")?;
    draft.normalize_and_check("routing_rule")?;
    let created = api
        .store
        .create_rule(&tenant, &principal.subject, draft, request_id)
        .await?;
    Ok(Response::new(rule_message(&created)))
}

pub(super) async fn list_routing_rules(
    api: &SupportApi,
    request: Request<pb::ListRoutingRulesRequest>,
) -> Result<Response<pb::ListRoutingRulesResponse>, Status> {
    let (_, tenant) = admitted(&request)?;
    let r = request.into_inner();
    let plan = fixed_plan(
        &api.page_tokens,
        "routingRules",
        &[("priority", "priority"), ("create_time", "create_time")],
        r.page_size,
        &r.page_token,
        false,
    )?;
    let page = api.store.list_rules(&tenant, plan.query.clone()).await?;
    Ok(Response::new(pb::ListRoutingRulesResponse {
        next_page_token: plan.next_page_token(&api.page_tokens, &page),
        routing_rules: page.items.iter().map(rule_message).collect(),
    }))
}

pub(super) async fn delete_routing_rule(
    api: &SupportApi,
    request: Request<pb::DeleteRoutingRuleRequest>,
) -> Result<Response<pb::RoutingRule>, Status> {
    let (principal, tenant) = admitted(&request)?;
    let id = parse_name(&request.get_ref().name, "routingRules", "name")?;
    let deleted = api
        .store
        .delete_rule(&tenant, &principal.subject, id)
        .await?;
    Ok(Response::new(rule_message(&deleted)))
}
