//! Segments (checked and previewed through contacts) and lists (members
//! added by contact or by email).

use crm_proto::marketing as pb;
use crm_shared::{
    auth::admitted,
    convert::{parse_etag, parse_name, required},
    error::ApiError,
    idempotency::IdempotencyKey,
    validate::{is_email, update_paths},
};
use tonic::{Request, Response, Status};

use super::{
    MarketingApi, OffsetPage, caller,
    convert::{list_draft, list_message, segment_draft, segment_message},
    plain_plan,
};
use crate::domain::audience::{MAX_MEMBERS_PER_CALL, SEGMENT_FIELDS};

pub(super) async fn create_segment(
    api: &MarketingApi,
    request: Request<pb::CreateSegmentRequest>,
) -> Result<Response<pb::Segment>, Status> {
    let (principal, tenant, credentials) = caller(&request)?;
    let r = request.into_inner();
    let request_id = IdempotencyKey::of(&r.request_id, &r)?;
    let mut draft = segment_draft(&required(r.segment, "segment")?);
    draft.normalize_and_check("segment")?;
    // Contacts knows its filter grammar: ask it now, not at send time.
    api.directory
        .preview(&credentials, &draft.filter, 1, "segment.filter")
        .await?;
    let segment = api
        .store
        .create_segment(&tenant, &principal.subject, draft, request_id)
        .await?;
    Ok(Response::new(segment_message(&segment)))
}

pub(super) async fn get_segment(
    api: &MarketingApi,
    request: Request<pb::GetSegmentRequest>,
) -> Result<Response<pb::Segment>, Status> {
    let (_, tenant) = admitted(&request)?;
    let id = parse_name(&request.get_ref().name, "segments", "name")?;
    Ok(Response::new(segment_message(
        &api.store.get_segment(&tenant, id).await?,
    )))
}

pub(super) async fn list_segments(
    api: &MarketingApi,
    request: Request<pb::ListSegmentsRequest>,
) -> Result<Response<pb::ListSegmentsResponse>, Status> {
    let (_, tenant) = admitted(&request)?;
    let r = request.into_inner();
    let plan = plain_plan(
        &api.page_tokens,
        "segments",
        r.page_size,
        &r.page_token,
        r.show_deleted,
    )?;
    let page = api.store.list_segments(&tenant, plan.query.clone()).await?;
    Ok(Response::new(pb::ListSegmentsResponse {
        next_page_token: plan.next_page_token(&api.page_tokens, &page),
        segments: page.items.iter().map(segment_message).collect(),
    }))
}

pub(super) async fn update_segment(
    api: &MarketingApi,
    request: Request<pb::UpdateSegmentRequest>,
) -> Result<Response<pb::Segment>, Status> {
    let (principal, tenant, credentials) = caller(&request)?;
    let r = request.into_inner();
    let message = required(r.segment, "segment")?;
    let id = parse_name(&message.name, "segments", "segment.name")?;
    let expected = parse_etag(&message.etag, "segment.etag")?;
    let mask = r.update_mask.map(|m| m.paths).unwrap_or_default();
    let paths = update_paths(&mask, SEGMENT_FIELDS)?;
    let patch = segment_draft(&message);
    if paths.contains(&"filter") {
        api.directory
            .preview(&credentials, patch.filter.trim(), 1, "segment.filter")
            .await?;
    }
    let updated = api
        .store
        .change_segment(
            &tenant,
            &principal.subject,
            id,
            expected,
            |s| {
                if s.delete_time.is_some() {
                    return Err(ApiError::NotFound(s.name()));
                }
                s.draft.apply(&paths, &patch);
                s.draft.normalize_and_check("segment")
            },
            "SegmentUpdated",
        )
        .await?;
    Ok(Response::new(segment_message(&updated)))
}

pub(super) async fn delete_segment(
    api: &MarketingApi,
    request: Request<pb::DeleteSegmentRequest>,
) -> Result<Response<pb::Segment>, Status> {
    let (principal, tenant) = admitted(&request)?;
    let r = request.into_inner();
    let id = parse_name(&r.name, "segments", "name")?;
    let expected = parse_etag(&r.etag, "etag")?;
    refuse_if_used(api, &tenant, &r.name).await?;
    let deleted = api
        .store
        .change_segment(
            &tenant,
            &principal.subject,
            id,
            expected,
            |s| {
                s.delete_time.get_or_insert_with(chrono::Utc::now);
                Ok(())
            },
            "SegmentDeleted",
        )
        .await?;
    Ok(Response::new(segment_message(&deleted)))
}

/// FAILED_PRECONDITION while a campaign still to be sent names the group:
/// it would find its audience gone.
async fn refuse_if_used(
    api: &MarketingApi,
    tenant: &crm_shared::db::Tenant,
    group: &str,
) -> Result<(), ApiError> {
    match api.store.campaign_using(tenant, group).await? {
        Some(campaign) => Err(ApiError::FailedPrecondition(format!(
            "{campaign} is not finished and names {group}: cancel it or take the group out first"
        ))),
        None => Ok(()),
    }
}

pub(super) async fn preview_segment(
    api: &MarketingApi,
    request: Request<pb::PreviewSegmentRequest>,
) -> Result<Response<pb::PreviewSegmentResponse>, Status> {
    let (_, tenant, credentials) = caller(&request)?;
    let r = request.into_inner();
    let sample = if r.sample_size == 0 {
        10
    } else {
        r.sample_size
    };
    if !(1..=100).contains(&sample) {
        return Err(ApiError::invalid("sample_size", "1 to 100").into());
    }
    let (filter, field) = if r.name.is_empty() {
        if r.filter.trim().is_empty() {
            return Err(ApiError::invalid("name", "required: a segment, or a filter").into());
        }
        (r.filter.trim().to_owned(), "filter")
    } else {
        let id = parse_name(&r.name, "segments", "name")?;
        (
            api.store.get_segment(&tenant, id).await?.draft.filter,
            "name",
        )
    };
    let (count, contacts) = api
        .directory
        .preview(&credentials, &filter, sample, field)
        .await?;
    Ok(Response::new(pb::PreviewSegmentResponse {
        contact_count: count,
        sample_contacts: contacts,
    }))
}

pub(super) async fn create_mailing_list(
    api: &MarketingApi,
    request: Request<pb::CreateMailingListRequest>,
) -> Result<Response<pb::MailingList>, Status> {
    let (principal, tenant) = admitted(&request)?;
    let r = request.into_inner();
    let request_id = IdempotencyKey::of(&r.request_id, &r)?;
    let mut draft = list_draft(&required(r.mailing_list, "mailing_list")?);
    draft.normalize_and_check("mailing_list")?;
    let list = api
        .store
        .create_list(&tenant, &principal.subject, draft, request_id)
        .await?;
    Ok(Response::new(list_message(&list)))
}

pub(super) async fn get_mailing_list(
    api: &MarketingApi,
    request: Request<pb::GetMailingListRequest>,
) -> Result<Response<pb::MailingList>, Status> {
    let (_, tenant) = admitted(&request)?;
    let id = parse_name(&request.get_ref().name, "mailingLists", "name")?;
    Ok(Response::new(list_message(
        &api.store.get_list(&tenant, id).await?,
    )))
}

pub(super) async fn list_mailing_lists(
    api: &MarketingApi,
    request: Request<pb::ListMailingListsRequest>,
) -> Result<Response<pb::ListMailingListsResponse>, Status> {
    let (_, tenant) = admitted(&request)?;
    let r = request.into_inner();
    let plan = plain_plan(
        &api.page_tokens,
        "mailingLists",
        r.page_size,
        &r.page_token,
        false,
    )?;
    let page = api.store.list_lists(&tenant, plan.query.clone()).await?;
    Ok(Response::new(pb::ListMailingListsResponse {
        next_page_token: plan.next_page_token(&api.page_tokens, &page),
        mailing_lists: page.items.iter().map(list_message).collect(),
    }))
}

pub(super) async fn delete_mailing_list(
    api: &MarketingApi,
    request: Request<pb::DeleteMailingListRequest>,
) -> Result<Response<pb::MailingList>, Status> {
    let (principal, tenant) = admitted(&request)?;
    let id = parse_name(&request.get_ref().name, "mailingLists", "name")?;
    refuse_if_used(api, &tenant, &request.get_ref().name).await?;
    let list = api
        .store
        .delete_list(&tenant, &principal.subject, id)
        .await?;
    Ok(Response::new(list_message(&list)))
}

pub(super) async fn add_list_members(
    api: &MarketingApi,
    request: Request<pb::AddListMembersRequest>,
) -> Result<Response<pb::AddListMembersResponse>, Status> {
    let (_, tenant, credentials) = caller(&request)?;
    let r = request.into_inner();
    let id = parse_name(&r.mailing_list, "mailingLists", "mailing_list")?;
    if r.contacts.len() + r.emails.len() > MAX_MEMBERS_PER_CALL {
        return Err(ApiError::invalid(
            "contacts",
            format!("at most {MAX_MEMBERS_PER_CALL} contacts and emails together"),
        )
        .into());
    }
    if r.contacts.is_empty() && r.emails.is_empty() {
        return Err(ApiError::invalid("contacts", "required: contacts or emails").into());
    }
    api.store.live_list(&tenant, id).await?;
    let mut members = Vec::with_capacity(r.contacts.len() + r.emails.len());
    for (i, contact) in r.contacts.iter().enumerate() {
        let field = format!("contacts[{i}]");
        parse_name(contact, "contacts", &field)?;
        api.contacts
            .check_contact(&credentials, contact, &field)
            .await?;
        members.push(contact.clone());
    }
    for (i, email) in r.emails.iter().enumerate() {
        let email = email.trim().to_lowercase();
        if !is_email(&email) {
            return Err(ApiError::invalid(format!("emails[{i}]"), "not an email address").into());
        }
        members.push(
            api.directory
                .contact_for_email(&credentials, &email, "marketing list")
                .await?,
        );
    }
    let added = api.store.add_members(&tenant, id, &members).await?;
    Ok(Response::new(pb::AddListMembersResponse {
        added_count: i32::try_from(added).unwrap_or(i32::MAX),
        mailing_list: Some(list_message(&api.store.get_list(&tenant, id).await?)),
    }))
}

pub(super) async fn remove_list_members(
    api: &MarketingApi,
    request: Request<pb::RemoveListMembersRequest>,
) -> Result<Response<pb::RemoveListMembersResponse>, Status> {
    let (_, tenant) = admitted(&request)?;
    let r = request.into_inner();
    let id = parse_name(&r.mailing_list, "mailingLists", "mailing_list")?;
    if r.contacts.len() > MAX_MEMBERS_PER_CALL {
        return Err(ApiError::invalid(
            "contacts",
            format!("at most {MAX_MEMBERS_PER_CALL} contacts"),
        )
        .into());
    }
    for (i, contact) in r.contacts.iter().enumerate() {
        parse_name(contact, "contacts", &format!("contacts[{i}]"))?;
    }
    let removed = api.store.remove_members(&tenant, id, &r.contacts).await?;
    Ok(Response::new(pb::RemoveListMembersResponse {
        removed_count: i32::try_from(removed).unwrap_or(i32::MAX),
        mailing_list: Some(list_message(&api.store.get_list(&tenant, id).await?)),
    }))
}

pub(super) async fn list_list_members(
    api: &MarketingApi,
    request: Request<pb::ListListMembersRequest>,
) -> Result<Response<pb::ListListMembersResponse>, Status> {
    let (_, tenant) = admitted(&request)?;
    let r = request.into_inner();
    let id = parse_name(&r.parent, "mailingLists", "parent")?;
    let page = OffsetPage::new(
        &api.page_tokens,
        format!("listMembers:{id}"),
        r.page_size,
        &r.page_token,
    )?;
    let mut rows = api
        .store
        .list_members(&tenant, id, page.offset, page.limit())
        .await?;
    let next_page_token = page.finish(&api.page_tokens, &mut rows);
    Ok(Response::new(pb::ListListMembersResponse {
        members: rows
            .into_iter()
            .map(|m| pb::ListMember {
                name: format!(
                    "mailingLists/{id}/members/{}",
                    m.contact.trim_start_matches("contacts/")
                ),
                contact: m.contact,
                add_time: Some(crm_shared::convert::to_timestamp(m.add_time)),
            })
            .collect(),
        next_page_token,
    }))
}
