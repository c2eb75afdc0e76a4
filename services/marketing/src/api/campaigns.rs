//! Campaigns: drafts with their references checked, the workflow, the
//! ledger, and the public unsubscribe.

use chrono::Utc;
use crm_proto::marketing as pb;
use crm_shared::{
    auth::admitted,
    convert::{parse_etag, parse_name, required},
    db::Tenant,
    error::ApiError,
    idempotency::IdempotencyKey,
    store::{ListPlan, ListRequest},
    validate::update_paths,
};
use tonic::{Request, Response, Status};

use super::{
    MarketingApi, OffsetPage,
    convert::{campaign_draft, campaign_message, from_timestamp, recipient_message},
};
use crate::{
    domain::{
        campaign::{CAMPAIGN_FIELDS, Campaign, CampaignDraft},
        tracking::Engagement,
    },
    store,
};

/// The campaign with its counts, on the wire.
async fn shown(
    api: &MarketingApi,
    tenant: &Tenant,
    c: &Campaign,
) -> Result<pb::Campaign, ApiError> {
    Ok(campaign_message(c, api.store.counts(tenant, c).await?))
}

/// INVALID_ARGUMENT unless the draft's template, segments and lists exist.
async fn check_references(
    api: &MarketingApi,
    tenant: &Tenant,
    d: &CampaignDraft,
) -> Result<(), ApiError> {
    api.store
        .live_template(tenant, &d.template, "campaign.template")
        .await?;
    if let Some(test) = d.ab_test.as_ref().filter(|t| !t.template.is_empty()) {
        api.store
            .live_template(tenant, &test.template, "campaign.ab_test.template")
            .await?;
    }
    let a = &d.audience;
    api.store
        .live_segments(tenant, &a.segments, "campaign.audience.segments")
        .await?;
    api.store
        .live_segments(
            tenant,
            &a.excluded_segments,
            "campaign.audience.excluded_segments",
        )
        .await?;
    api.store
        .check_lists(tenant, &a.mailing_lists, "campaign.audience.mailing_lists")
        .await?;
    api.store
        .check_lists(
            tenant,
            &a.excluded_mailing_lists,
            "campaign.audience.excluded_mailing_lists",
        )
        .await
}

pub(super) async fn create_campaign(
    api: &MarketingApi,
    request: Request<pb::CreateCampaignRequest>,
) -> Result<Response<pb::Campaign>, Status> {
    let (principal, tenant) = admitted(&request)?;
    let r = request.into_inner();
    let request_id = IdempotencyKey::of(&r.request_id, &r)?;
    let mut draft = campaign_draft(&required(r.campaign, "campaign")?)?;
    draft.normalize_and_check("campaign")?;
    check_references(api, &tenant, &draft).await?;
    let c = api
        .store
        .create_campaign(&tenant, &principal.subject, draft, request_id)
        .await?;
    Ok(Response::new(shown(api, &tenant, &c).await?))
}

pub(super) async fn get_campaign(
    api: &MarketingApi,
    request: Request<pb::GetCampaignRequest>,
) -> Result<Response<pb::Campaign>, Status> {
    let (_, tenant) = admitted(&request)?;
    let id = parse_name(&request.get_ref().name, "campaigns", "name")?;
    let c = api.store.get_campaign(&tenant, id).await?;
    Ok(Response::new(shown(api, &tenant, &c).await?))
}

pub(super) async fn list_campaigns(
    api: &MarketingApi,
    request: Request<pb::ListCampaignsRequest>,
) -> Result<Response<pb::ListCampaignsResponse>, Status> {
    let (_, tenant) = admitted(&request)?;
    let r = request.into_inner();
    let plan = ListPlan::new(
        &api.page_tokens,
        ListRequest {
            resource: "campaigns",
            schema: &store::CAMPAIGN_FILTER,
            orderable: store::CAMPAIGN_ORDER,
            filter: &r.filter,
            order_by: &r.order_by,
            show_deleted: r.show_deleted,
            page_size: r.page_size,
            page_token: &r.page_token,
            include_total_size: false,
        },
    )?;
    let page = api
        .store
        .list_campaigns(&tenant, plan.query.clone())
        .await?;
    let mut counts = api.store.counts_of(&tenant, &page.items).await?;
    let campaigns = page
        .items
        .iter()
        .map(|c| campaign_message(c, counts.remove(&c.id).unwrap_or_default()))
        .collect();
    Ok(Response::new(pb::ListCampaignsResponse {
        next_page_token: plan.next_page_token(&api.page_tokens, &page),
        campaigns,
    }))
}

pub(super) async fn update_campaign(
    api: &MarketingApi,
    request: Request<pb::UpdateCampaignRequest>,
) -> Result<Response<pb::Campaign>, Status> {
    let (principal, tenant) = admitted(&request)?;
    let r = request.into_inner();
    let message = required(r.campaign, "campaign")?;
    let id = parse_name(&message.name, "campaigns", "campaign.name")?;
    let expected = parse_etag(&message.etag, "campaign.etag")?;
    let mask = r.update_mask.map(|m| m.paths).unwrap_or_default();
    let paths = update_paths(&mask, CAMPAIGN_FIELDS)?;
    let patch = campaign_draft(&message)?;
    // The references are checked against the draft as it will be.
    let mut next = api.store.get_campaign(&tenant, id).await?.draft;
    next.apply(&paths, &patch);
    next.normalize_and_check("campaign")?;
    check_references(api, &tenant, &next).await?;
    let updated = api
        .store
        .change_campaign(
            &tenant,
            &principal.subject,
            id,
            expected,
            |c| {
                if c.delete_time.is_some() {
                    return Err(ApiError::NotFound(c.name()));
                }
                c.check_editable(&paths)?;
                c.draft.apply(&paths, &patch);
                c.draft.normalize_and_check("campaign")
            },
            "CampaignUpdated",
        )
        .await?;
    Ok(Response::new(shown(api, &tenant, &updated).await?))
}

/// Moves a campaign along its workflow with `change`, recorded as `event`.
async fn transition(
    api: &MarketingApi,
    tenant: &Tenant,
    actor: &str,
    name: &str,
    change: impl FnOnce(&mut Campaign) -> Result<(), ApiError>,
    event: &'static str,
) -> Result<Response<pb::Campaign>, Status> {
    let id = parse_name(name, "campaigns", "name")?;
    let c = api
        .store
        .change_campaign(
            tenant,
            actor,
            id,
            None,
            |c| {
                if c.delete_time.is_some() {
                    return Err(ApiError::NotFound(c.name()));
                }
                change(c)
            },
            event,
        )
        .await?;
    Ok(Response::new(shown(api, tenant, &c).await?))
}

pub(super) async fn delete_campaign(
    api: &MarketingApi,
    request: Request<pb::DeleteCampaignRequest>,
) -> Result<Response<pb::Campaign>, Status> {
    let (principal, tenant) = admitted(&request)?;
    let name = &request.get_ref().name;
    transition(
        api,
        &tenant,
        &principal.subject,
        name,
        |c| {
            c.check_deletable()?;
            c.delete_time = Some(Utc::now());
            Ok(())
        },
        "CampaignDeleted",
    )
    .await
}

pub(super) async fn schedule_campaign(
    api: &MarketingApi,
    request: Request<pb::ScheduleCampaignRequest>,
) -> Result<Response<pb::Campaign>, Status> {
    let (principal, tenant) = admitted(&request)?;
    let r = request.get_ref();
    let send_time = match &r.send_time {
        None => None,
        Some(t) => {
            Some(from_timestamp(t).ok_or_else(|| ApiError::invalid("send_time", "not a time"))?)
        }
    };
    transition(
        api,
        &tenant,
        &principal.subject,
        &r.name,
        |c| c.schedule(send_time, Utc::now()),
        "CampaignScheduled",
    )
    .await
}

pub(super) async fn pause_campaign(
    api: &MarketingApi,
    request: Request<pb::PauseCampaignRequest>,
) -> Result<Response<pb::Campaign>, Status> {
    let (principal, tenant) = admitted(&request)?;
    let name = &request.get_ref().name;
    transition(
        api,
        &tenant,
        &principal.subject,
        name,
        Campaign::pause,
        "CampaignPaused",
    )
    .await
}

pub(super) async fn resume_campaign(
    api: &MarketingApi,
    request: Request<pb::ResumeCampaignRequest>,
) -> Result<Response<pb::Campaign>, Status> {
    let (principal, tenant) = admitted(&request)?;
    let name = &request.get_ref().name;
    transition(
        api,
        &tenant,
        &principal.subject,
        name,
        Campaign::resume,
        "CampaignResumed",
    )
    .await
}

pub(super) async fn cancel_campaign(
    api: &MarketingApi,
    request: Request<pb::CancelCampaignRequest>,
) -> Result<Response<pb::Campaign>, Status> {
    let (principal, tenant) = admitted(&request)?;
    let name = &request.get_ref().name;
    transition(
        api,
        &tenant,
        &principal.subject,
        name,
        |c| c.cancel(Utc::now()),
        "CampaignCancelled",
    )
    .await
}

pub(super) async fn list_campaign_recipients(
    api: &MarketingApi,
    request: Request<pb::ListCampaignRecipientsRequest>,
) -> Result<Response<pb::ListCampaignRecipientsResponse>, Status> {
    let (_, tenant) = admitted(&request)?;
    let r = request.into_inner();
    let id = parse_name(&r.parent, "campaigns", "parent")?;
    let page = OffsetPage::new(
        &api.page_tokens,
        format!("campaignRecipients:{id}"),
        r.page_size,
        &r.page_token,
    )?;
    let mut rows = api
        .store
        .list_recipients(&tenant, id, page.offset, page.limit())
        .await?;
    let next_page_token = page.finish(&api.page_tokens, &mut rows);
    Ok(Response::new(pb::ListCampaignRecipientsResponse {
        recipients: rows.iter().map(recipient_message).collect(),
        next_page_token,
    }))
}

/// Public: the link's token is the only credential (see `PUBLIC_METHODS`).
pub(super) async fn unsubscribe(
    api: &MarketingApi,
    request: Request<pb::UnsubscribeRequest>,
) -> Result<Response<pb::UnsubscribeResponse>, Status> {
    let token = request.get_ref().token.trim();
    if token.is_empty() {
        return Err(ApiError::invalid("token", "required: the unsubscribe link's token").into());
    }
    let contact = api.tracker.unsubscribe(token).await?;
    Ok(Response::new(pb::UnsubscribeResponse { contact }))
}

pub(super) async fn record_delivery_problem(
    api: &MarketingApi,
    request: Request<pb::RecordDeliveryProblemRequest>,
) -> Result<Response<pb::RecordDeliveryProblemResponse>, Status> {
    let (_, tenant) = admitted(&request)?;
    let r = request.into_inner();
    // Relays quote it with or without the angle brackets.
    let bare = r
        .message_id
        .trim()
        .trim_start_matches('<')
        .trim_end_matches('>');
    if bare.is_empty() || bare.len() > 998 {
        return Err(ApiError::invalid(
            "message_id",
            "required: a Message-ID, at most 998 characters",
        )
        .into());
    }
    let message_id = &format!("<{bare}>");
    let (kind, suppress) = match pb::DeliveryProblem::try_from(r.problem) {
        Ok(pb::DeliveryProblem::HardBounce) => (Engagement::Bounced, true),
        Ok(pb::DeliveryProblem::SoftBounce) => (Engagement::Bounced, false),
        Ok(pb::DeliveryProblem::Complaint) => (Engagement::Complained, true),
        _ => {
            return Err(
                ApiError::invalid("problem", "HARD_BOUNCE, SOFT_BOUNCE or COMPLAINT").into(),
            );
        }
    };
    let reason = r.reason.trim();
    if reason.chars().count() > 1000 {
        return Err(ApiError::invalid("reason", "at most 1000 characters").into());
    }
    let recipient = api.store.recipient_of_message(&tenant, message_id).await?;
    let suppress = suppress && !recipient.email.is_empty();
    if suppress {
        // The relay's words stay with the engagement (erased with the
        // person); the suppression keeps no address.
        let why = match kind {
            Engagement::Complained => format!("complaint about {message_id}"),
            _ => format!("hard bounce of {message_id}"),
        };
        api.store.suppress(&tenant, &recipient.email, &why).await?;
    }
    api.store
        .record_engagement(
            &tenant,
            recipient.campaign,
            &recipient.contact,
            kind,
            reason,
        )
        .await?;
    Ok(Response::new(pb::RecordDeliveryProblemResponse {
        recipient: Some(recipient_message(&recipient)),
        suppressed: suppress,
    }))
}
