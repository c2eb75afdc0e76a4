//! Leads: capture, reads, edits, soft delete, manual assignment and
//! conversion into a contact (and maybe an opportunity).

use chrono::Utc;
use crm_proto::{contacts::LifecycleStage, sales as pb};
use crm_shared::{
    auth::{Role, authorize},
    convert::{parse_etag, parse_name, required},
    error::ApiError,
    idempotency::parse_request_id,
    store::{ListPlan, ListRequest},
    validate::{MAX_SHORT, Violations, update_paths},
};
use tonic::{Request, Response, Status};

use super::{
    SELLERS, SalesApi, caller,
    convert::{lead_draft, lead_message, opportunity_message},
    total,
};
use crate::{
    domain::{self, lead::LeadStatus, opportunity::OpportunityDraft},
    store,
};

pub(super) async fn create_lead(
    api: &SalesApi,
    request: Request<pb::CreateLeadRequest>,
) -> Result<Response<pb::Lead>, Status> {
    let (principal, tenant, credentials) = caller(&request, SELLERS)?;
    let r = request.into_inner();
    let request_id = parse_request_id(&r.request_id)?;
    let mut draft = lead_draft(&required(r.lead, "lead")?, true)?;
    draft.normalize_and_check("lead")?;
    // Capture must not fail because contacts is down: the duplicate check
    // against contacts is best effort; against open leads it always runs.
    let contact_matches = if draft.email.is_empty() {
        vec![]
    } else {
        match api.contacts.with_email(&credentials, &draft.email).await {
            Ok(found) => found,
            Err(error) => {
                tracing::warn!(%error, "contacts unavailable: lead captured without the contact duplicate check");
                vec![]
            }
        }
    };
    let lead = api
        .store
        .create_lead(
            &tenant,
            &principal.subject,
            draft,
            request_id,
            contact_matches,
        )
        .await?;
    Ok(Response::new(lead_message(&lead)))
}

pub(super) async fn get_lead(
    api: &SalesApi,
    request: Request<pb::GetLeadRequest>,
) -> Result<Response<pb::Lead>, Status> {
    let (_, tenant) = authorize(&request, Role::READERS)?;
    let id = parse_name(&request.get_ref().name, "leads", "name")?;
    Ok(Response::new(lead_message(
        &api.store.get_lead(&tenant, id).await?,
    )))
}

pub(super) async fn list_leads(
    api: &SalesApi,
    request: Request<pb::ListLeadsRequest>,
) -> Result<Response<pb::ListLeadsResponse>, Status> {
    let (_, tenant) = authorize(&request, Role::READERS)?;
    let r = request.into_inner();
    let plan = ListPlan::new(
        &api.page_tokens,
        ListRequest {
            resource: "leads",
            schema: &store::LEAD_FILTER,
            orderable: store::LEAD_ORDER,
            filter: &r.filter,
            order_by: &r.order_by,
            show_deleted: r.show_deleted,
            page_size: r.page_size,
            page_token: &r.page_token,
        },
    )?;
    let (leads, count) = api.store.list_leads(&tenant, plan.query.clone()).await?;
    Ok(Response::new(pb::ListLeadsResponse {
        next_page_token: plan.next_page_token(&api.page_tokens, leads.len(), count),
        leads: leads.iter().map(lead_message).collect(),
        total_size: total(count),
    }))
}

pub(super) async fn update_lead(
    api: &SalesApi,
    request: Request<pb::UpdateLeadRequest>,
) -> Result<Response<pb::Lead>, Status> {
    let (principal, tenant) = authorize(&request, SELLERS)?;
    let r = request.into_inner();
    let message = required(r.lead, "lead")?;
    let id = parse_name(&message.name, "leads", "lead.name")?;
    let expected = parse_etag(&message.etag, "lead.etag")?;
    let mask = r.update_mask.map(|m| m.paths).unwrap_or_default();
    let paths = update_paths(&mask, domain::lead::WRITABLE_FIELDS)?;
    let changes = lead_draft(&message, false)?;
    let lead = api
        .store
        .update_lead(
            &tenant,
            &principal.subject,
            id,
            expected,
            |lead| {
                lead.draft.apply(&paths, &changes);
                lead.draft.normalize_and_check("lead")
            },
            "LeadUpdated",
        )
        .await?;
    Ok(Response::new(lead_message(&lead)))
}

pub(super) async fn delete_lead(
    api: &SalesApi,
    request: Request<pb::DeleteLeadRequest>,
) -> Result<Response<pb::Lead>, Status> {
    let (principal, tenant) = authorize(&request, SELLERS)?;
    let r = request.into_inner();
    let id = parse_name(&r.name, "leads", "name")?;
    let expected = parse_etag(&r.etag, "etag")?;
    let lead = api
        .store
        .update_lead(
            &tenant,
            &principal.subject,
            id,
            expected,
            |lead| {
                lead.delete_time.get_or_insert_with(Utc::now);
                Ok(())
            },
            "LeadDeleted",
        )
        .await?;
    Ok(Response::new(lead_message(&lead)))
}

pub(super) async fn undelete_lead(
    api: &SalesApi,
    request: Request<pb::UndeleteLeadRequest>,
) -> Result<Response<pb::Lead>, Status> {
    let (principal, tenant) = authorize(&request, SELLERS)?;
    let r = request.into_inner();
    let id = parse_name(&r.name, "leads", "name")?;
    let expected = parse_etag(&r.etag, "etag")?;
    let lead = api
        .store
        .update_lead(
            &tenant,
            &principal.subject,
            id,
            expected,
            |lead| {
                lead.delete_time = None;
                Ok(())
            },
            "LeadUndeleted",
        )
        .await?;
    Ok(Response::new(lead_message(&lead)))
}

pub(super) async fn assign_lead(
    api: &SalesApi,
    request: Request<pb::AssignLeadRequest>,
) -> Result<Response<pb::Lead>, Status> {
    let (principal, tenant) = authorize(&request, SELLERS)?;
    let r = request.into_inner();
    let id = parse_name(&r.name, "leads", "name")?;
    let expected = parse_etag(&r.etag, "etag")?;
    let owner = r.owner.trim().to_owned();
    let mut v = Violations::default();
    v.text("owner", &owner, MAX_SHORT);
    if owner.is_empty() {
        v.add("owner", "required");
    }
    v.finish()?;
    let by = principal.subject.clone();
    let lead = api
        .store
        .update_lead(
            &tenant,
            &principal.subject,
            id,
            expected,
            |lead| {
                lead.owner = owner;
                lead.assignment_reason = format!("manual, by {by}");
                Ok(())
            },
            "LeadAssigned",
        )
        .await?;
    Ok(Response::new(lead_message(&lead)))
}

pub(super) async fn convert_lead(
    api: &SalesApi,
    request: Request<pb::ConvertLeadRequest>,
) -> Result<Response<pb::ConvertLeadResponse>, Status> {
    let (principal, tenant, credentials) = caller(&request, SELLERS)?;
    let r = request.into_inner();
    let id = parse_name(&r.name, "leads", "name")?;
    let lead = api.store.get_lead(&tenant, id).await?;
    if lead.delete_time.is_some() {
        return Err(ApiError::NotFound(lead.name()).into());
    }
    if lead.draft.status == LeadStatus::Converted {
        // A retry: the first conversion's result.
        let opportunity = api.store.converted_opportunity(&tenant, &lead).await?;
        return Ok(Response::new(pb::ConvertLeadResponse {
            contact: lead.converted_contact.clone(),
            company: lead.converted_company.clone(),
            contact_reused: false,
            opportunity: opportunity.as_ref().map(opportunity_message),
            lead: Some(lead_message(&lead)),
        }));
    }
    if lead.draft.status == LeadStatus::Disqualified {
        return Err(ApiError::FailedPrecondition(format!(
            "{} is disqualified; requalify it first",
            lead.name()
        ))
        .into());
    }
    // Check the opportunity before anything is written anywhere.
    let opportunity = if r.create_opportunity {
        let display_name = if r.opportunity_display_name.trim().is_empty() {
            format!("{} deal", lead.draft.display_name())
        } else {
            r.opportunity_display_name.clone()
        };
        let draft = OpportunityDraft {
            display_name,
            amount: Some(required(r.amount, "amount")?.into()),
            pipeline: r.pipeline.clone(),
            stage: String::new(),
            expected_close_date: domain::opportunity::parse_date(
                &r.expected_close_date,
                "expected_close_date",
            )?,
            owner: lead.owner.clone(),
            contact: String::new(),
            company: String::new(),
            line_items: vec![],
            close_reason: String::new(),
        };
        Some(
            api.store
                .prepare_opportunity(&tenant, &principal.subject, draft, lead.name())
                .await?,
        )
    } else {
        None
    };
    // The contact and company are made with request ids derived from the
    // lead: a retry after a failure below finds them instead of making
    // duplicates, and the lead is only marked converted at the very end.
    let company = if lead.draft.company_name.is_empty() {
        String::new()
    } else {
        api.contacts.company_for(&credentials, &lead).await?
    };
    let stage = if opportunity.is_some() {
        LifecycleStage::Opportunity
    } else {
        LifecycleStage::SalesQualified
    };
    let (contact, reused) = api
        .contacts
        .contact_for(&credentials, &lead, &company, stage)
        .await?;
    let opportunity = opportunity.map(|mut o| {
        o.draft.contact = contact.clone();
        o.draft.company = company.clone();
        o
    });
    let (lead, opportunity) = api
        .store
        .mark_converted(
            &tenant,
            &principal.subject,
            id,
            contact.clone(),
            company.clone(),
            opportunity,
        )
        .await?;
    Ok(Response::new(pb::ConvertLeadResponse {
        lead: Some(lead_message(&lead)),
        contact: lead.converted_contact.clone(),
        contact_reused: reused,
        company: lead.converted_company.clone(),
        opportunity: opportunity.as_ref().map(opportunity_message),
    }))
}
