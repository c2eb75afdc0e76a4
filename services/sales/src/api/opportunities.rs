//! Opportunities (deals): their contact and company are checked with the
//! contacts service before they are written.

use crm_proto::sales as pb;
use crm_shared::{
    auth::admitted,
    client::Credentials,
    convert::{parse_etag, parse_name, required},
    error::ApiError,
    idempotency::IdempotencyKey,
    store::{ListPlan, ListRequest},
    validate::update_paths,
};
use tonic::{Request, Response, Status};

use super::{
    SalesApi, caller,
    convert::{opportunity_draft, opportunity_message},
};
use crate::{domain, store};

impl SalesApi {
    /// Checks an opportunity's contact and company (when set) with the contacts service.
    async fn check_references(
        &self,
        credentials: &Credentials,
        contact: &str,
        company: &str,
    ) -> Result<(), ApiError> {
        if !contact.is_empty() {
            self.contacts
                .check_contact(credentials, contact, "opportunity.contact")
                .await?;
        }
        if !company.is_empty() {
            self.contacts
                .check_company(credentials, company, "opportunity.company")
                .await?;
        }
        Ok(())
    }
}

pub(super) async fn create_opportunity(
    api: &SalesApi,
    request: Request<pb::CreateOpportunityRequest>,
) -> Result<Response<pb::Opportunity>, Status> {
    let (principal, tenant, credentials) = caller(&request)?;
    let r = request.into_inner();
    let request_id = IdempotencyKey::of(&r.request_id, &r)?;
    let mut draft = opportunity_draft(&required(r.opportunity, "opportunity")?)?;
    draft.normalize_and_check("opportunity")?;
    api.check_references(&credentials, &draft.contact, &draft.company)
        .await?;
    let prepared = api
        .store
        .prepare_opportunity(&tenant, &principal.subject, draft, String::new())
        .await?;
    let created = api
        .store
        .create_opportunity(&tenant, &principal.subject, prepared, request_id)
        .await?;
    Ok(Response::new(opportunity_message(&created)))
}

pub(super) async fn get_opportunity(
    api: &SalesApi,
    request: Request<pb::GetOpportunityRequest>,
) -> Result<Response<pb::Opportunity>, Status> {
    let (_, tenant) = admitted(&request)?;
    let id = parse_name(&request.get_ref().name, "opportunities", "name")?;
    Ok(Response::new(opportunity_message(
        &api.store.get_opportunity(&tenant, id).await?,
    )))
}

pub(super) async fn list_opportunities(
    api: &SalesApi,
    request: Request<pb::ListOpportunitiesRequest>,
) -> Result<Response<pb::ListOpportunitiesResponse>, Status> {
    let (_, tenant) = admitted(&request)?;
    let r = request.into_inner();
    let plan = ListPlan::new(
        &api.page_tokens,
        ListRequest {
            resource: "opportunities",
            schema: &store::OPPORTUNITY_FILTER,
            orderable: store::OPPORTUNITY_ORDER,
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
        .list_opportunities(&tenant, plan.query.clone())
        .await?;
    let deals = &page.items;
    Ok(Response::new(pb::ListOpportunitiesResponse {
        next_page_token: plan.next_page_token(&api.page_tokens, &page),
        opportunities: deals.iter().map(opportunity_message).collect(),
        total_size: page.total_size(),
    }))
}

pub(super) async fn update_opportunity(
    api: &SalesApi,
    request: Request<pb::UpdateOpportunityRequest>,
) -> Result<Response<pb::Opportunity>, Status> {
    let (principal, tenant, credentials) = caller(&request)?;
    let r = request.into_inner();
    let message = required(r.opportunity, "opportunity")?;
    let id = parse_name(&message.name, "opportunities", "opportunity.name")?;
    let expected = parse_etag(&message.etag, "opportunity.etag")?;
    let mask = r.update_mask.map(|m| m.paths).unwrap_or_default();
    let paths = update_paths(&mask, domain::opportunity::WRITABLE_FIELDS)?;
    let changes = opportunity_draft(&message)?;
    let changed = |field: &str, value: &'_ String| {
        if paths.contains(&field) {
            value.clone()
        } else {
            String::new()
        }
    };
    api.check_references(
        &credentials,
        &changed("contact", &changes.contact),
        &changed("company", &changes.company),
    )
    .await?;
    let updated = api
        .store
        .update_opportunity(&tenant, &principal.subject, id, expected, &paths, &changes)
        .await?;
    Ok(Response::new(opportunity_message(&updated)))
}

pub(super) async fn delete_opportunity(
    api: &SalesApi,
    request: Request<pb::DeleteOpportunityRequest>,
) -> Result<Response<pb::Opportunity>, Status> {
    let (principal, tenant) = admitted(&request)?;
    let r = request.into_inner();
    let id = parse_name(&r.name, "opportunities", "name")?;
    let expected = parse_etag(&r.etag, "etag")?;
    let deleted = api
        .store
        .set_opportunity_deleted(&tenant, &principal.subject, id, expected, true)
        .await?;
    Ok(Response::new(opportunity_message(&deleted)))
}

pub(super) async fn undelete_opportunity(
    api: &SalesApi,
    request: Request<pb::UndeleteOpportunityRequest>,
) -> Result<Response<pb::Opportunity>, Status> {
    let (principal, tenant) = admitted(&request)?;
    let r = request.into_inner();
    let id = parse_name(&r.name, "opportunities", "name")?;
    let expected = parse_etag(&r.etag, "etag")?;
    let restored = api
        .store
        .set_opportunity_deleted(&tenant, &principal.subject, id, expected, false)
        .await?;
    Ok(Response::new(opportunity_message(&restored)))
}
