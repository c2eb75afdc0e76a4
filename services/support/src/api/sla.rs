//! Business calendars and SLA policies.

use chrono::Utc;
use crm_proto::support as pb;
use crm_shared::{
    auth::admitted,
    convert::{parse_etag, parse_name, required},
    idempotency::IdempotencyKey,
    validate::update_paths,
};
use tonic::{Request, Response, Status};

use super::{
    SupportApi,
    convert::{calendar_draft, calendar_message, policy_draft, policy_message},
    fixed_plan,
};
use crate::domain::sla::CALENDAR_FIELDS;

pub(super) async fn create_business_calendar(
    api: &SupportApi,
    request: Request<pb::CreateBusinessCalendarRequest>,
) -> Result<Response<pb::BusinessCalendar>, Status> {
    let (principal, tenant) = admitted(&request)?;
    let r = request.into_inner();
    let request_id = IdempotencyKey::of(&r.request_id, &r)?;
    let draft = calendar_draft(&required(r.business_calendar, "business_calendar")?);
    draft.calendar("business_calendar")?;
    let created = api
        .store
        .create_calendar(&tenant, &principal.subject, draft, request_id)
        .await?;
    Ok(Response::new(calendar_message(&created)))
}

pub(super) async fn get_business_calendar(
    api: &SupportApi,
    request: Request<pb::GetBusinessCalendarRequest>,
) -> Result<Response<pb::BusinessCalendar>, Status> {
    let (_, tenant) = admitted(&request)?;
    let id = parse_name(&request.get_ref().name, "businessCalendars", "name")?;
    Ok(Response::new(calendar_message(
        &api.store.get_calendar(&tenant, id).await?,
    )))
}

pub(super) async fn list_business_calendars(
    api: &SupportApi,
    request: Request<pb::ListBusinessCalendarsRequest>,
) -> Result<Response<pb::ListBusinessCalendarsResponse>, Status> {
    let (_, tenant) = admitted(&request)?;
    let r = request.into_inner();
    let plan = fixed_plan(
        &api.page_tokens,
        "businessCalendars",
        &[("create_time", "create_time")],
        r.page_size,
        &r.page_token,
        false,
    )?;
    let page = api
        .store
        .list_calendars(&tenant, plan.query.clone())
        .await?;
    Ok(Response::new(pb::ListBusinessCalendarsResponse {
        next_page_token: plan.next_page_token(&api.page_tokens, &page),
        business_calendars: page.items.iter().map(calendar_message).collect(),
    }))
}

pub(super) async fn update_business_calendar(
    api: &SupportApi,
    request: Request<pb::UpdateBusinessCalendarRequest>,
) -> Result<Response<pb::BusinessCalendar>, Status> {
    let (principal, tenant) = admitted(&request)?;
    let r = request.into_inner();
    let message = required(r.business_calendar, "business_calendar")?;
    let id = parse_name(&message.name, "businessCalendars", "business_calendar.name")?;
    let expected = parse_etag(&message.etag, "business_calendar.etag")?;
    let mask = r.update_mask.map(|m| m.paths).unwrap_or_default();
    let paths = update_paths(&mask, CALENDAR_FIELDS)?;
    let changes = calendar_draft(&message);
    let updated = api
        .store
        .update_calendar(
            &tenant,
            &principal.subject,
            id,
            expected,
            |c| {
                c.draft.apply(&paths, &changes);
                c.draft.calendar("business_calendar").map(drop)
            },
            "BusinessCalendarUpdated",
        )
        .await?;
    Ok(Response::new(calendar_message(&updated)))
}

pub(super) async fn delete_business_calendar(
    api: &SupportApi,
    request: Request<pb::DeleteBusinessCalendarRequest>,
) -> Result<Response<pb::BusinessCalendar>, Status> {
    let (principal, tenant) = admitted(&request)?;
    let r = request.into_inner();
    let id = parse_name(&r.name, "businessCalendars", "name")?;
    let expected = parse_etag(&r.etag, "etag")?;
    let deleted = api
        .store
        .update_calendar(
            &tenant,
            &principal.subject,
            id,
            expected,
            |c| {
                c.delete_time = Some(Utc::now());
                Ok(())
            },
            "BusinessCalendarDeleted",
        )
        .await?;
    Ok(Response::new(calendar_message(&deleted)))
}

pub(super) async fn create_sla_policy(
    api: &SupportApi,
    request: Request<pb::CreateSlaPolicyRequest>,
) -> Result<Response<pb::SlaPolicy>, Status> {
    let (principal, tenant) = admitted(&request)?;
    let r = request.into_inner();
    let request_id = IdempotencyKey::of(&r.request_id, &r)?;
    let mut draft = policy_draft(&required(r.sla_policy, "sla_policy")?)?;
    draft.normalize_and_check("sla_policy")?;
    let created = api
        .store
        .create_policy(&tenant, &principal.subject, draft, request_id)
        .await?;
    Ok(Response::new(policy_message(&created)))
}

pub(super) async fn get_sla_policy(
    api: &SupportApi,
    request: Request<pb::GetSlaPolicyRequest>,
) -> Result<Response<pb::SlaPolicy>, Status> {
    let (_, tenant) = admitted(&request)?;
    let id = parse_name(&request.get_ref().name, "slaPolicies", "name")?;
    Ok(Response::new(policy_message(
        &api.store.get_policy(&tenant, id).await?,
    )))
}

pub(super) async fn list_sla_policies(
    api: &SupportApi,
    request: Request<pb::ListSlaPoliciesRequest>,
) -> Result<Response<pb::ListSlaPoliciesResponse>, Status> {
    let (_, tenant) = admitted(&request)?;
    let r = request.into_inner();
    let plan = fixed_plan(
        &api.page_tokens,
        "slaPolicies",
        &[("priority", "priority"), ("create_time", "create_time")],
        r.page_size,
        &r.page_token,
        false,
    )?;
    let page = api.store.list_policies(&tenant, plan.query.clone()).await?;
    Ok(Response::new(pb::ListSlaPoliciesResponse {
        next_page_token: plan.next_page_token(&api.page_tokens, &page),
        sla_policies: page.items.iter().map(policy_message).collect(),
    }))
}

pub(super) async fn delete_sla_policy(
    api: &SupportApi,
    request: Request<pb::DeleteSlaPolicyRequest>,
) -> Result<Response<pb::SlaPolicy>, Status> {
    let (principal, tenant) = admitted(&request)?;
    let id = parse_name(&request.get_ref().name, "slaPolicies", "name")?;
    let deleted = api
        .store
        .delete_policy(&tenant, &principal.subject, id)
        .await?;
    Ok(Response::new(policy_message(&deleted)))
}
