//! Tasks: follow-ups linked to a lead, contact or opportunity, which must
//! exist when the task is made.

use chrono::Utc;
use crm_proto::sales as pb;
use crm_shared::{
    auth::admitted,
    convert::{parse_etag, parse_name, required},
    error::ApiError,
    idempotency::IdempotencyKey,
    store::{ListPlan, ListRequest},
    validate::update_paths,
};
use tonic::{Request, Response, Status};

use super::{
    SalesApi, caller,
    convert::{task_draft, task_message},
};
use crate::{domain, store};

pub(super) async fn create_task(
    api: &SalesApi,
    request: Request<pb::CreateTaskRequest>,
) -> Result<Response<pb::Task>, Status> {
    let (principal, tenant, credentials) = caller(&request)?;
    let r = request.into_inner();
    let request_id = IdempotencyKey::of(&r.request_id, &r)?;
    let mut draft = task_draft(&required(r.task, "task")?)?;
    draft.normalize_and_check("task")?;
    if draft.owner.is_empty() {
        draft.owner = principal.subject.clone();
    }
    if !draft.lead.is_empty()
        && api
            .store
            .live_leads(&tenant, std::slice::from_ref(&draft.lead))
            .await?
            .is_empty()
    {
        return Err(
            ApiError::invalid("task.lead", format!("{} does not exist", draft.lead)).into(),
        );
    }
    if !draft.opportunity.is_empty() {
        let id = parse_name(&draft.opportunity, "opportunities", "task.opportunity")?;
        match api.store.get_opportunity(&tenant, id).await {
            Ok(o) if o.delete_time.is_none() => {}
            Ok(_) | Err(ApiError::NotFound(_)) => {
                return Err(ApiError::invalid(
                    "task.opportunity",
                    format!("{} does not exist", draft.opportunity),
                )
                .into());
            }
            Err(other) => return Err(other.into()),
        }
    }
    if !draft.contact.is_empty() {
        api.contacts
            .check_contact(&credentials, &draft.contact, "task.contact")
            .await?;
    }
    let created = api
        .store
        .create_task(&tenant, &principal.subject, draft, request_id)
        .await?;
    Ok(Response::new(task_message(&created)))
}

pub(super) async fn get_task(
    api: &SalesApi,
    request: Request<pb::GetTaskRequest>,
) -> Result<Response<pb::Task>, Status> {
    let (_, tenant) = admitted(&request)?;
    let id = parse_name(&request.get_ref().name, "tasks", "name")?;
    Ok(Response::new(task_message(
        &api.store.get_task(&tenant, id).await?,
    )))
}

pub(super) async fn list_tasks(
    api: &SalesApi,
    request: Request<pb::ListTasksRequest>,
) -> Result<Response<pb::ListTasksResponse>, Status> {
    let (_, tenant) = admitted(&request)?;
    let r = request.into_inner();
    let plan = ListPlan::new(
        &api.page_tokens,
        ListRequest {
            resource: if r.overdue_only {
                "tasks-overdue"
            } else {
                "tasks"
            },
            schema: &store::TASK_FILTER,
            orderable: store::TASK_ORDER,
            filter: &r.filter,
            order_by: &r.order_by,
            show_deleted: r.show_deleted,
            page_size: r.page_size,
            page_token: &r.page_token,
            include_total_size: r.include_total_size,
        },
    )?;
    let page = api
        .store
        .list_tasks(&tenant, plan.query.clone(), r.overdue_only)
        .await?;
    let tasks = &page.items;
    Ok(Response::new(pb::ListTasksResponse {
        next_page_token: plan.next_page_token(&api.page_tokens, &page),
        tasks: tasks.iter().map(task_message).collect(),
        total_size: page.total_size(),
    }))
}

pub(super) async fn update_task(
    api: &SalesApi,
    request: Request<pb::UpdateTaskRequest>,
) -> Result<Response<pb::Task>, Status> {
    let (principal, tenant) = admitted(&request)?;
    let r = request.into_inner();
    let message = required(r.task, "task")?;
    let id = parse_name(&message.name, "tasks", "task.name")?;
    let expected = parse_etag(&message.etag, "task.etag")?;
    let mask = r.update_mask.map(|m| m.paths).unwrap_or_default();
    let paths = update_paths(&mask, domain::task::WRITABLE_FIELDS)?;
    let changes = task_draft(&message)?;
    let updated = api
        .store
        .update_task(
            &tenant,
            &principal.subject,
            id,
            expected,
            |task| {
                if task.delete_time.is_some() {
                    return Err(ApiError::NotFound(task.name()));
                }
                task.draft.apply(&paths, &changes);
                task.draft.normalize_and_check("task")
            },
            "TaskUpdated",
        )
        .await?;
    Ok(Response::new(task_message(&updated)))
}

pub(super) async fn delete_task(
    api: &SalesApi,
    request: Request<pb::DeleteTaskRequest>,
) -> Result<Response<pb::Task>, Status> {
    let (principal, tenant) = admitted(&request)?;
    let r = request.into_inner();
    let id = parse_name(&r.name, "tasks", "name")?;
    let expected = parse_etag(&r.etag, "etag")?;
    let deleted = api
        .store
        .update_task(
            &tenant,
            &principal.subject,
            id,
            expected,
            |task| {
                task.delete_time.get_or_insert_with(Utc::now);
                Ok(())
            },
            "TaskDeleted",
        )
        .await?;
    Ok(Response::new(task_message(&deleted)))
}
