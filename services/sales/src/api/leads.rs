//! Leads: capture, reads, edits, soft delete, manual assignment and
//! conversion into a contact (and maybe an opportunity).

use chrono::Utc;
use crm_proto::sales as pb;
use crm_shared::{
    auth::admitted,
    convert::{parse_etag, parse_name, required},
    idempotency::IdempotencyKey,
    store::{ListPlan, ListRequest},
    validate::{MAX_SHORT, Violations, update_paths},
};
use tonic::{Request, Response, Status};

use super::{
    SalesApi, caller,
    convert::{converted_message, lead_draft, lead_message, lifecycle_stage},
};
use crate::{
    domain::{
        self,
        conversion::{self, Conversion, ConvertRequest, ConvertedTo},
    },
    store,
};

pub(super) async fn create_lead(
    api: &SalesApi,
    request: Request<pb::CreateLeadRequest>,
) -> Result<Response<pb::Lead>, Status> {
    let (principal, tenant, credentials) = caller(&request)?;
    let r = request.into_inner();
    let request_id = IdempotencyKey::of(&r.request_id, &r)?;
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
    let (_, tenant) = admitted(&request)?;
    let id = parse_name(&request.get_ref().name, "leads", "name")?;
    Ok(Response::new(lead_message(
        &api.store.get_lead(&tenant, id).await?,
    )))
}

pub(super) async fn list_leads(
    api: &SalesApi,
    request: Request<pb::ListLeadsRequest>,
) -> Result<Response<pb::ListLeadsResponse>, Status> {
    let (_, tenant) = admitted(&request)?;
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
            include_total_size: r.include_total_size,
        },
    )?;
    let page = api.store.list_leads(&tenant, plan.query.clone()).await?;
    let leads = &page.items;
    Ok(Response::new(pb::ListLeadsResponse {
        next_page_token: plan.next_page_token(&api.page_tokens, &page),
        leads: leads.iter().map(lead_message).collect(),
        total_size: page.total_size(),
    }))
}

pub(super) async fn update_lead(
    api: &SalesApi,
    request: Request<pb::UpdateLeadRequest>,
) -> Result<Response<pb::Lead>, Status> {
    let (principal, tenant) = admitted(&request)?;
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
    let (principal, tenant) = admitted(&request)?;
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
    let (principal, tenant) = admitted(&request)?;
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
    let (principal, tenant) = admitted(&request)?;
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
    let (principal, tenant, credentials) = caller(&request)?;
    let r = request.into_inner();
    let id = parse_name(&r.name, "leads", "name")?;
    let lead = api.store.get_lead(&tenant, id).await?;
    let asked = ConvertRequest {
        create_opportunity: r.create_opportunity,
        opportunity_display_name: &r.opportunity_display_name,
        amount: r.amount.clone().map(Into::into),
        pipeline: &r.pipeline,
        expected_close_date: &r.expected_close_date,
    };
    let plan = match conversion::plan(&lead, &asked)? {
        Conversion::Convert(plan) => *plan,
        Conversion::Repeat => {
            let opportunity = api.store.converted_opportunity(&tenant, &lead).await?;
            return Ok(Response::new(converted_message(
                &lead,
                opportunity.as_ref(),
            )));
        }
    };
    let opportunity = match plan.opportunity {
        Some(draft) => Some(
            api.store
                .prepare_opportunity(&tenant, &principal.subject, draft, lead.name())
                .await?,
        ),
        None => None,
    };
    // The contact and company are made with request ids derived from the
    // lead: a retry after a failure below finds them instead of making
    // duplicates, and the lead is only marked converted at the very end.
    let company = if plan.find_company {
        api.contacts.company_for(&credentials, &lead).await?
    } else {
        String::new()
    };
    let (contact, contact_reused) = api
        .contacts
        .contact_for(
            &credentials,
            &lead,
            &company,
            lifecycle_stage(plan.contact_stage),
        )
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
            ConvertedTo {
                contact,
                company,
                contact_reused,
            },
            opportunity,
        )
        .await?;
    Ok(Response::new(converted_message(
        &lead,
        opportunity.as_ref(),
    )))
}
